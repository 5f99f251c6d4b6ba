//! Software updates (docs/updates.md): RAUC installs a signed bundle into
//! the root slot not booted; gated decides when (never while a mode forces
//! the gates, never during a passage or a print), reboots into it, and on
//! the next boot marks the slot good only once the appliance works. A slot
//! that does not become healthy in time is rebooted away from; after the
//! bootloader's attempts it boots the old slot, which reports the rollback.
//!
//! What an update did is kept in `update.json` in the state directory, not
//! in the database: a new slot whose gated cannot open the store must still
//! be able to say so and reboot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gated_api::types::{UpdateSlot, UpdateView};
use hal::supervise::DeviceState;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::central::api::{UpdateOffer, UpdateReport, UpdateResult};
use crate::central::client::Session;
use crate::config::in_window;
use crate::modes::{Mode, ModeView};

/// RAUC's D-Bus API (rauc.readthedocs.io, "D-Bus API"), on the system bus.
#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/"
)]
pub trait Installer {
    fn install_bundle(
        &self,
        source: &str,
        args: HashMap<&str, zbus::Variant<'_>>,
    ) -> zbus::Result<()>;
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, zbus::OwnedVariant>)>>;
    #[zbus(signal)]
    fn completed(&self, result: i32) -> zbus::Result<()>;
    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
}

/// The record of the last update, in the state directory.
pub const RECORD_FILE: &str = "update.json";

/// Results an update goes through.
pub mod result {
    pub const INSTALLING: &str = "installing";
    /// In the other slot; the reboot into it is next (or under way).
    pub const INSTALLED: &str = "installed";
    /// The new slot passed its health check and was marked good.
    pub const GOOD: &str = "good";
    /// Refused or failed before anything changed; the old slot runs on.
    pub const FAILED: &str = "failed";
    /// The new slot booted but never became healthy (or did not boot), and
    /// the bootloader went back to the old one.
    pub const ROLLED_BACK: &str = "rolled back";
}

/// `update.json`: the last update.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub version: String,
    pub result: String,
    pub detail: String,
    pub at_ms: i64,
    /// Bootnames: where it was installed, and the slot it came from.
    pub to_slot: String,
    pub from_slot: String,
    /// Boots of the new slot that failed the health check.
    #[serde(default)]
    pub failed_boots: u32,
}

impl Record {
    pub fn load(state_dir: &Path) -> Option<Record> {
        let path = state_dir.join(RECORD_FILE);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(path = %path.display(), "unreadable update record, ignored: {e}");
                None
            }
        }
    }

    /// One more boot of the new slot that failed, and why.
    fn failed_boot(self, detail: String) -> Record {
        Record {
            detail,
            failed_boots: self.failed_boots + 1,
            ..self
        }
    }

    /// Written whole or not at all: a power cut leaves the old record.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = state_dir.join(format!("{RECORD_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("record serializes"))?;
        f.sync_all()?;
        std::fs::rename(&tmp, state_dir.join(RECORD_FILE))?;
        std::fs::File::open(state_dir)?.sync_all()
    }
}

/// Work a reboot must not cut: a passage under way at a lane, a ticket
/// being printed. Counted while it lasts.
#[derive(Debug, Clone)]
pub struct Activity(Arc<watch::Sender<u32>>);

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(watch::Sender::new(0)))
    }
}

/// Held while the work lasts.
#[derive(Debug)]
pub struct Busy(Arc<watch::Sender<u32>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Activity {
    pub fn begin(&self) -> Busy {
        self.0.send_modify(|n| *n += 1);
        Busy(self.0.clone())
    }

    pub fn busy(&self) -> bool {
        *self.0.borrow() > 0
    }

    /// Returns once nothing is under way.
    pub async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// The running image's version: `IMAGE_VERSION`, else `VERSION_ID`, of os-release.
pub fn image_version(os_release: &Path) -> String {
    let text = std::fs::read_to_string(os_release).unwrap_or_default();
    let field = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
    };
    field("IMAGE_VERSION")
        .or_else(|| field("VERSION_ID"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// RAUC's own words, and what they mean for an engineer.
pub fn explain(rauc_error: &str) -> String {
    let e = rauc_error;
    let words = if e.contains("mapper") || e.contains("loop device") {
        "this device cannot mount the bundle (its kernel lacks loop devices or dm-verity)"
    } else if e.contains("signature") || e.contains("Verify error") {
        "the bundle is not signed by a key this device trusts"
    } else if e.contains("Invalid bundle format")
        || e.contains("bundle size")
        || e.contains("verity")
        || e.contains("squashfs")
    {
        "the file is not a complete, undamaged RAUC bundle (cut short or corrupted)"
    } else if e.contains("ompatible") {
        "the bundle is for another kind of device"
    } else if e.contains("No such file") || e.contains("Failed to open") {
        "the bundle file cannot be read"
    } else if e.contains("No space") {
        "the slot or the download directory is full"
    } else {
        "RAUC could not install it"
    };
    format!("{words} (RAUC: {e})")
}

/// Why an install was refused at once.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Mode(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

/// When to reboot into an installed update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// As soon as no passage or print is under way.
    Now,
    /// In the configured quiet window (at once when none is configured).
    Window,
}

impl std::str::FromStr for Reboot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "now" | "" => Ok(Reboot::Now),
            "window" => Ok(Reboot::Window),
            other => Err(format!(
                "{other:?} is not a reboot choice: \"now\" or \"window\""
            )),
        }
    }
}

/// Settings from `[update]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub os_release: PathBuf,
    pub window: Option<(u16, u16)>,
    pub window_text: String,
    pub tz: jiff::tz::TimeZone,
    pub health_deadline: Duration,
    pub health_requires_central: bool,
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Settings {
            state_dir: c.state_dir.get_ref().clone(),
            os_release: c.update.os_release.get_ref().clone(),
            window: c.update.window(),
            window_text: c
                .update
                .quiet_window
                .as_ref()
                .map(|w| w.get_ref().clone())
                .unwrap_or_default(),
            tz: c.time_zone(),
            health_deadline: Duration::from_secs((*c.update.health_deadline_s.get_ref()).into()),
            health_requires_central: c.update.health_requires_central,
        }
    }
}

/// Where the link finds the updates once they exist (they start after it).
pub type Slot = Arc<std::sync::OnceLock<Updates>>;

/// The device's updates: status, installs, the health check.
#[derive(Debug, Clone)]
pub struct Updates {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    view: watch::Sender<UpdateView>,
    modes: watch::Receiver<ModeView>,
    activity: Activity,
    session: watch::Receiver<Option<Arc<Session>>>,
    /// One install at a time.
    running: std::sync::Mutex<bool>,
}

async fn rauc() -> Result<InstallerProxy<'static>, String> {
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| format!("no system bus: {e}"))?;
    InstallerProxy::new(&conn)
        .await
        .map_err(|e| format!("RAUC: {e}"))
}

/// RAUC and the slot it says was booted; an error says why updates cannot run.
async fn rauc_booted() -> Result<(InstallerProxy<'static>, String), String> {
    let r = rauc().await?;
    let booted = r
        .boot_slot()
        .await
        .map_err(|e| format!("no answer from RAUC ({e})"))?;
    Ok((r, booted))
}

/// The same RAUC without the property cache.
async fn fresh(cached: &InstallerProxy<'_>) -> Result<InstallerProxy<'static>, String> {
    InstallerProxy::builder(cached.inner().connection())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("RAUC: {e}"))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn value_str(m: &HashMap<String, zbus::OwnedVariant>, key: &str) -> String {
    m.get(key)
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default()
}

/// The root filesystem slots RAUC knows.
async fn slots(rauc: &InstallerProxy<'_>) -> Result<Vec<UpdateSlot>, String> {
    let raw = rauc
        .get_slot_status()
        .await
        .map_err(|e| format!("no answer from RAUC ({e})"))?;
    let mut slots: Vec<UpdateSlot> = raw
        .iter()
        .filter(|(_, m)| value_str(m, "class") == "rootfs")
        .map(|(name, m)| UpdateSlot {
            name: name.clone(),
            bootname: value_str(m, "bootname"),
            state: value_str(m, "state"),
            boot_status: value_str(m, "boot-status"),
            version: value_str(m, "bundle.version"),
        })
        .collect();
    slots.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(slots)
}

impl Updates {
    pub fn new(
        settings: Settings,
        modes: watch::Receiver<ModeView>,
        activity: Activity,
        session: watch::Receiver<Option<Arc<Session>>>,
    ) -> Self {
        let record = Record::load(&settings.state_dir);
        let view = UpdateView {
            image_version: image_version(&settings.os_release),
            operation: "idle".into(),
            health: "checking".into(),
            ..Default::default()
        };
        let updates = Updates {
            inner: Arc::new(Inner {
                settings,
                view: watch::Sender::new(view),
                modes,
                activity,
                session,
                running: std::sync::Mutex::new(false),
            }),
        };
        if let Some(r) = record {
            updates.set_last(&r);
        }
        updates
    }

    fn set(&self, f: impl FnOnce(&mut UpdateView)) {
        self.inner.view.send_modify(f);
    }

    fn set_last(&self, r: &Record) {
        self.set(|v| {
            v.last_version = r.version.clone();
            v.last_result = r.result.clone();
            v.last_detail = r.detail.clone();
            v.last_at_ms = r.at_ms;
        });
    }

    fn save(&self, r: &Record) {
        if let Err(e) = r.save(&self.inner.settings.state_dir) {
            error!("cannot write the update record: {e}");
        }
        self.set_last(r);
    }

    /// The status, with RAUC's slots read now.
    pub async fn view(&self) -> UpdateView {
        let read = async {
            let (r, booted) = rauc_booted().await?;
            Ok::<_, String>((slots(&r).await?, booted))
        };
        match read.await {
            Ok((s, b)) => self.set(|v| {
                v.slots = s;
                v.booted_slot = b;
                v.unavailable.clear();
            }),
            Err(e) => self.set(|v| v.unavailable = e),
        }
        self.inner.view.borrow().clone()
    }

    pub fn report(&self) -> UpdateReport {
        let v = self.inner.view.borrow();
        UpdateReport {
            image_version: v.image_version.clone(),
            booted_slot: v.booted_slot.clone(),
            operation: v.operation.clone(),
            last: (!v.last_result.is_empty()).then(|| UpdateResult {
                version: v.last_version.clone(),
                result: v.last_result.clone(),
                detail: v.last_detail.clone(),
                at_ms: v.last_at_ms,
            }),
        }
    }

    /// Why the mode forbids touching the slots and rebooting now, if it does.
    fn forbidden(&self) -> Option<String> {
        let m = self.inner.modes.borrow();
        match m.mode {
            Mode::PowerFallback | Mode::FireAlarm | Mode::Shutdown => Some(format!(
                "the device is in {} ({}): no update until it ends",
                m.mode.as_str().replace('_', " "),
                m.cause
            )),
            Mode::Normal | Mode::Offline => None,
        }
    }

    /// Starts installing `source` (a bundle path on the device, or an
    /// `https://` URL on the central system); returns once it has started.
    pub fn install(
        &self,
        source: &str,
        reboot: Reboot,
        sha256: Option<String>,
        by: &str,
    ) -> Result<(), Refused> {
        if let Some(why) = self.forbidden() {
            return Err(Refused::Mode(why));
        }
        let source = source.trim();
        if source.is_empty() {
            return Err(Refused::Invalid("name a bundle file or URL".into()));
        }
        let is_url = source.starts_with("https://") || source.starts_with("http://");
        if !is_url && !Path::new(source).is_absolute() {
            return Err(Refused::Invalid(format!(
                "{source}: give the bundle's absolute path on the device, or a URL"
            )));
        }
        // Whether the file exists is RAUC's to say: gated's own view of the
        // file system is narrower (PrivateTmp, ProtectSystem).
        {
            let mut running = self.inner.running.lock().expect("update lock");
            if *running {
                return Err(Refused::Busy(format!(
                    "an update is already {}",
                    self.inner.view.borrow().operation
                )));
            }
            *running = true;
        }
        info!(source, by, ?reboot, "update requested");
        let me = self.clone();
        let source = source.to_owned();
        tokio::spawn(async move {
            me.run_install(&source, is_url, reboot, sha256).await;
            *me.inner.running.lock().expect("update lock") = false;
        });
        Ok(())
    }

    fn fail(&self, version: &str, detail: String) {
        error!(version, "update failed: {detail}");
        self.save(&Record {
            version: version.to_owned(),
            result: result::FAILED.into(),
            detail,
            at_ms: now_ms(),
            ..Default::default()
        });
        self.set(|v| {
            v.operation = "idle".into();
            v.progress_percent = 0;
            v.progress_message.clear();
        });
    }

    /// Waits until nothing is under way and the mode allows it.
    async fn hold(&self, why: &str) {
        let mut modes = self.inner.modes.clone();
        loop {
            let waiting = match self.forbidden() {
                Some(m) => m,
                None if self.inner.activity.busy() => {
                    format!("{why} waits for the passage or print under way")
                }
                None => return,
            };
            self.set(|v| {
                v.operation = "waiting".into();
                v.progress_message = waiting;
            });
            tokio::select! {
                _ = modes.changed() => {}
                () = self.inner.activity.idle() => {}
            }
        }
    }

    async fn run_install(
        &self,
        source: &str,
        is_url: bool,
        reboot: Reboot,
        sha256: Option<String>,
    ) {
        let mut version = String::new();
        let path = if is_url {
            match self.download(source, sha256.as_deref()).await {
                Ok(p) => p,
                Err(e) => return self.fail("", e),
            }
        } else {
            PathBuf::from(source)
        };
        self.hold("the install").await;
        let rauc = match rauc().await {
            Ok(r) => r,
            Err(e) => return self.fail("", format!("updates are not available: {e}")),
        };
        let from = rauc.boot_slot().await.unwrap_or_default();
        self.set(|v| {
            v.operation = "installing".into();
            v.progress_percent = 0;
            v.progress_message = "starting".into();
            v.reboot = match reboot {
                Reboot::Window if !self.inner.settings.window_text.is_empty() => {
                    self.inner.settings.window_text.clone()
                }
                _ => "now".into(),
            };
        });
        // Kept until RAUC answers: a power cut in between is reported at
        // the next boot, not lost.
        self.save(&Record {
            version: String::new(),
            result: result::INSTALLING.into(),
            detail: format!("installing {source}"),
            at_ms: now_ms(),
            from_slot: from.clone(),
            ..Default::default()
        });
        let mut completed = match rauc.receive_completed().await {
            Ok(s) => s,
            Err(e) => return self.fail("", format!("RAUC: {e}")),
        };
        let mut progress = rauc.receive_progress_changed().await;
        if let Err(e) = rauc
            .install_bundle(&path.to_string_lossy(), HashMap::new())
            .await
        {
            return self.fail("", explain(&e.to_string()));
        }
        use futures_util::StreamExt;
        let code = loop {
            tokio::select! {
                c = completed.next() => match c.as_ref().and_then(|c| c.args().ok()) {
                    Some(a) => break a.result,
                    None => return self.fail("", "RAUC went away during the install".into()),
                },
                Some(p) = progress.next() => {
                    if let Ok((percent, message, _)) = p.get().await {
                        self.set(|v| {
                            v.progress_percent = percent.clamp(0, 100) as u32;
                            v.progress_message = message;
                        });
                    }
                }
            }
        };
        if code != 0 {
            // Read now, not from the cache: RAUC sets it just before Completed.
            let why = match fresh(&rauc).await {
                Ok(r) => r.last_error().await.unwrap_or_default(),
                Err(e) => e,
            };
            return self.fail(&version, explain(&why));
        }
        // The slot written: the rootfs slot not booted, with its new version.
        let target = slots(&rauc)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|s| s.bootname != from && !s.bootname.is_empty());
        if let Some(t) = &target {
            version = t.version.clone();
        }
        let record = Record {
            version: version.clone(),
            result: result::INSTALLED.into(),
            detail: format!(
                "installed into slot {}",
                target.as_ref().map(|t| t.bootname.as_str()).unwrap_or("?")
            ),
            at_ms: now_ms(),
            to_slot: target.map(|t| t.bootname).unwrap_or_default(),
            from_slot: from,
            failed_boots: 0,
        };
        info!(
            version,
            slot = record.to_slot,
            "update installed; rebooting into it next"
        );
        self.save(&record);
        self.set(|v| {
            v.operation = "installed".into();
            v.progress_percent = 100;
        });
        if is_url {
            let _ = std::fs::remove_file(&path);
        }
        if reboot == Reboot::Window {
            self.wait_for_window().await;
        }
        self.hold("the reboot").await;
        self.set(|v| v.operation = "rebooting".into());
        reboot_now(&format!("update {version} installed")).await;
    }

    async fn download(&self, url: &str, sha256: Option<&str>) -> Result<PathBuf, String> {
        let session = self.inner.session.borrow().clone().ok_or_else(|| {
            "this device is not enrolled with a central system: it cannot fetch a bundle".to_owned()
        })?;
        let dir = self.inner.settings.state_dir.join("updates");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("bundle.raucb");
        self.set(|v| {
            v.operation = "downloading".into();
            v.progress_percent = 0;
            v.progress_message = url.to_owned();
        });
        let me = self.clone();
        let got = session
            .download(url, &path, move |done, total| {
                if let Some(t) = total.filter(|t| *t > 0) {
                    me.set(|v| v.progress_percent = (done * 100 / t) as u32);
                }
            })
            .await
            .map_err(|e| format!("download: {e}"))?;
        if let Some(want) = sha256
            && !want.eq_ignore_ascii_case(&got)
        {
            let _ = std::fs::remove_file(&path);
            return Err(format!(
                "the bundle from {url} has SHA-256 {got}, not the {want} the central system named: not installed"
            ));
        }
        info!(url, sha256 = got, "bundle downloaded");
        Ok(path)
    }

    async fn wait_for_window(&self) {
        let Some((from, to)) = self.inner.settings.window else {
            return;
        };
        loop {
            let now = jiff::Timestamp::now().to_zoned(self.inner.settings.tz.clone());
            let minute = (now.hour() as u16) * 60 + now.minute() as u16;
            if in_window(minute, (from, to)) {
                return;
            }
            self.set(|v| {
                v.operation = "installed".into();
                v.progress_message = format!(
                    "rebooting in the quiet window {}",
                    self.inner.settings.window_text
                );
            });
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }

    /// The central system's word: install `offer` when this device runs
    /// another version and has not already failed with that one.
    pub fn offer(&self, offer: &UpdateOffer) {
        let v = self.inner.view.borrow().clone();
        if offer.version == v.image_version || v.operation != "idle" {
            return;
        }
        if v.last_version == offer.version
            && [
                result::FAILED,
                result::ROLLED_BACK,
                result::INSTALLED,
                result::INSTALLING,
            ]
            .contains(&v.last_result.as_str())
        {
            return;
        }
        if !v.unavailable.is_empty() {
            return;
        }
        info!(
            version = offer.version,
            url = offer.url,
            "the central system names an update"
        );
        if let Err(e) = self.install(
            &offer.url,
            Reboot::Window,
            Some(offer.sha256.clone()),
            "central system",
        ) {
            // Held for the next heartbeat: a fire alarm or a power cut ends.
            info!("the central system's update waits: {e}");
        }
    }

    /// The health check of this boot (docs/updates.md, "Healthy").
    pub async fn check_health(&self, checks: Health) {
        let state_dir = self.inner.settings.state_dir.clone();
        let (rauc, booted) = match rauc_booted().await {
            Ok(r) => r,
            Err(e) => {
                info!("updates unavailable: {e}");
                self.set(|v| {
                    v.unavailable = e;
                    v.health = "not checked: no RAUC".into();
                });
                return;
            }
        };
        self.set(|v| v.booted_slot = booted.clone());
        let mut record = Record::load(&state_dir);
        if let Some(r) = record.clone().filter(|r| r.result == result::INSTALLING) {
            // RAUC never answered before this boot: the power went, or the
            // device restarted, in the middle of the install.
            let failed = Record {
                result: result::FAILED.into(),
                detail: format!(
                    "{} was interrupted (a power cut or a restart); slot {booted} runs on",
                    r.detail
                ),
                at_ms: now_ms(),
                ..r
            };
            warn!("update interrupted: {}", failed.detail);
            self.save(&failed);
            record = Some(failed);
        }
        let pending = record
            .as_ref()
            .filter(|r| r.result == result::INSTALLED && !r.to_slot.is_empty());
        let trial = pending.is_some_and(|r| r.to_slot == booted);
        if let Some(r) = pending.cloned()
            && !trial
            && r.from_slot == booted
        {
            // Installed into the other slot, and yet we run in the old one:
            // the bootloader fell back.
            let why = if r.detail.starts_with("installed into") {
                "the new slot did not start (the bootloader went back to this one)".to_owned()
            } else {
                r.detail.clone()
            };
            let rolled = Record {
                result: result::ROLLED_BACK.into(),
                detail: format!("version {} in slot {}: {why}", r.version, r.to_slot),
                at_ms: now_ms(),
                ..r
            };
            warn!(
                version = rolled.version,
                "update rolled back: {}", rolled.detail
            );
            if let Err(e) = rauc.mark("bad", "other").await {
                warn!("RAUC could not mark slot {} bad: {e}", rolled.to_slot);
            }
            self.save(&rolled);
            record = Some(rolled);
        }
        let deadline = self.inner.settings.health_deadline;
        let verdict =
            tokio::time::timeout(deadline, checks.wait(trial, &self.inner.settings)).await;
        match verdict {
            Ok(()) => {
                match rauc.mark("good", "booted").await {
                    Ok((slot, msg)) => info!(slot, "healthy: {msg}"),
                    Err(e) => warn!("healthy, but RAUC could not mark the slot good: {e}"),
                }
                self.set(|v| v.health = "good".into());
                if trial && let Some(r) = record {
                    let good = Record {
                        result: result::GOOD.into(),
                        detail: format!("slot {booted} healthy and marked good"),
                        at_ms: now_ms(),
                        ..r
                    };
                    info!(version = good.version, "update good");
                    self.save(&good);
                }
            }
            Err(_) => {
                let missing = checks.missing(trial, &self.inner.settings);
                let why = format!(
                    "not healthy {} s after start: {missing}",
                    deadline.as_secs()
                );
                self.set(|v| v.health = format!("failed: {why}"));
                if trial && let Some(r) = record {
                    error!(
                        version = r.version,
                        "the new slot is not healthy: {why}; rebooting (the bootloader falls back after its attempts)"
                    );
                    self.save(&r.failed_boot(why));
                    self.set(|v| v.operation = "rebooting".into());
                    reboot_now("update not healthy").await;
                } else {
                    warn!("{why} (this slot was good before: no reboot)");
                }
            }
        }
    }
}

/// Called when the store cannot be opened: on a new slot's first boots that
/// is a failed health check (a downgrade that refuses a newer schema), so
/// the device reboots toward the old slot; the store is left as it is.
pub async fn store_refused(state_dir: &Path, why: &str) {
    let Ok(Some(r)) = on_trial(state_dir).await else {
        return;
    };
    error!(
        version = r.version,
        "the new slot cannot open the store: {why}; rebooting"
    );
    let detail = format!("the store could not be opened: {why}");
    if let Err(e) = r.failed_boot(detail).save(state_dir) {
        error!("cannot write the update record: {e}");
    }
    reboot_now("update cannot open the store").await;
}

/// The record of the update, when the booted slot is the one it installed
/// and that slot has not proven itself yet.
async fn on_trial(state_dir: &Path) -> Result<Option<Record>, String> {
    let Some(r) = Record::load(state_dir).filter(|r| r.result == result::INSTALLED) else {
        return Ok(None);
    };
    let (_, booted) = rauc_booted().await?;
    Ok((booted == r.to_slot).then_some(r))
}

/// How long after boot the watchdog (`gatectl update watchdog`, run by
/// gated-update-watchdog.timer) gives a new slot: past this, a slot still on
/// trial is rebooted away from even if gated never started to judge it.
pub const WATCHDOG_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The watchdog's verdict on this boot.
#[derive(Debug, PartialEq, Eq)]
pub enum Watchdog {
    /// No update on trial in the booted slot.
    NothingOnTrial,
    /// The slot is on trial and gated never marked it good: rebooted.
    Rebooted(String),
}

/// Outside gated, for a new slot whose gated never starts (a configuration
/// it refuses, a crash at start): still on trial this long after boot means
/// not healthy, so the device reboots and the bootloader counts the attempt.
pub async fn watchdog(state_dir: &Path) -> Result<Watchdog, String> {
    let Some(r) = on_trial(state_dir).await? else {
        return Ok(Watchdog::NothingOnTrial);
    };
    let why = format!(
        "version {} in slot {} was still not healthy {} min after boot{}",
        r.version,
        r.to_slot,
        WATCHDOG_AFTER.as_secs() / 60,
        if r.detail.starts_with("installed into") {
            " (gated never judged it: did it start?)".to_owned()
        } else {
            format!(" ({})", r.detail)
        }
    );
    error!("{why}; rebooting");
    r.failed_boot(why.clone())
        .save(state_dir)
        .map_err(|e| format!("cannot write the update record: {e}"))?;
    crate::modes::Logind::reboot().await?;
    Ok(Watchdog::Rebooted(why))
}

async fn reboot_now(why: &str) {
    info!("rebooting: {why}");
    if let Err(e) = crate::modes::Logind::reboot().await {
        error!("reboot failed: {e}");
    }
}

/// What must hold for this boot to count as healthy.
#[derive(Debug)]
pub struct Health {
    /// Every configured device that reports a connection state.
    pub devices: Vec<(String, watch::Receiver<DeviceState>)>,
    /// The kiosk's printer, if any: Some(Ok) once it answered.
    pub printer: Option<watch::Receiver<Option<Result<hal::printer::Status, String>>>>,
    pub link: watch::Receiver<crate::central::sync::SyncStatus>,
}

impl Health {
    /// Returns once healthy. gated is READY and its store is open when this
    /// runs; a boot after an update also needs every device to have answered
    /// and, where configured, the central system.
    async fn wait(&self, trial: bool, s: &Settings) {
        if !trial {
            return;
        }
        for (_, rx) in &self.devices {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|d| matches!(d, DeviceState::Connected)).await;
        }
        if let Some(p) = &self.printer {
            let mut p = p.clone();
            let _ = p.wait_for(|s| matches!(s, Some(Ok(_)))).await;
        }
        if s.health_requires_central {
            let mut l = self.link.clone();
            let _ = l
                .wait_for(|l| l.mode == crate::central::sync::Mode::Online)
                .await;
        }
    }

    /// What has not held, in words.
    fn missing(&self, trial: bool, s: &Settings) -> String {
        if !trial {
            return "nothing".into();
        }
        let mut missing: Vec<String> = self
            .devices
            .iter()
            .filter(|(_, rx)| !matches!(*rx.borrow(), DeviceState::Connected))
            .map(|(name, rx)| format!("{name} never answered ({})", *rx.borrow()))
            .collect();
        if let Some(p) = &self.printer
            && !matches!(*p.borrow(), Some(Ok(_)))
        {
            missing.push("the printer never answered".into());
        }
        if s.health_requires_central
            && self.link.borrow().mode != crate::central::sync::Mode::Online
        {
            missing.push("the central system never answered".into());
        }
        if missing.is_empty() {
            "the check did not finish".into()
        } else {
            missing.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_window_may_wrap_midnight() {
        let night = (23 * 60, 4 * 60);
        assert!(in_window(23 * 60, night));
        assert!(in_window(2 * 60, night));
        assert!(!in_window(4 * 60, night), "the end is outside");
        assert!(!in_window(12 * 60, night));
        let early = (2 * 60, 5 * 60);
        assert!(in_window(2 * 60, early));
        assert!(!in_window(23 * 60, early));
    }

    #[test]
    fn rauc_errors_are_told_in_words() {
        assert!(
            explain("signature verification failed: Verify error: self-signed certificate")
                .starts_with("the bundle is not signed by a key this device trusts")
        );
        assert!(
            explain("Invalid bundle format: Signature size is 0")
                .starts_with("the file is not a complete, undamaged RAUC bundle")
        );
        assert!(
            explain("Compatible mismatch: Expected 'a' but bundle manifest has 'b'")
                .starts_with("the bundle is for another kind of device")
        );
        assert!(
            explain("Failed mounting bundle: Failed to open /dev/mapper/control")
                .starts_with("this device cannot mount the bundle")
        );
    }

    #[test]
    fn the_image_version_comes_from_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("os-release");
        std::fs::write(&p, "ID=x\nVERSION_ID=\"12\"\nIMAGE_VERSION=\"2026.12.1\"\n").unwrap();
        assert_eq!(image_version(&p), "2026.12.1");
        std::fs::write(&p, "ID=x\nVERSION_ID=12\n").unwrap();
        assert_eq!(image_version(&p), "12");
        assert_eq!(image_version(&dir.path().join("none")), "unknown");
    }
}

//! Enrollment by setup code, at the device itself: a lane's scanner, the
//! kiosk's setup screen, or `gatectl provision` with the code's text. Every
//! refusal says why in both languages, for the lane display and the kiosk;
//! nothing is written before the central system said yes, and then the
//! credentials last (`identity`), so nothing is left half-enrolled.
//!
//! The setup code chooses a central system; the device decides whether to
//! trust it. With `[central] ca_file` the TLS handshake must chain to that
//! CA, whatever URL the code names; without one (the public web PKI) only
//! the configured `[central] url` is accepted.

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::central::enroll::{self, Enrolled, Failure};
use crate::central::setup_code::{self, SetupCode, SetupCodeError};
use crate::central::sync::{Mode as LinkMode, SyncStatus};
use crate::config::Config;
use crate::store::Db;

/// How long an enrollment's answer has before gated starts again.
const RESTART_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a setup code was refused: a reason's name (as in the vectors and
/// logs) and what to tell the engineer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub en: String,
    pub zh: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.en)
    }
}

fn refuse(reason: &'static str, en: impl Into<String>, zh: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        en: en.into(),
        zh: zh.into(),
    }
}

/// The device's side of enrollment by setup code; one per gated, shared by
/// the lanes, the kiosk's D-Bus interface and Engineer1.
#[derive(Debug, Clone)]
pub struct Setup {
    config: Arc<Config>,
    db: Db,
    /// Told when gated must start again under the id enrollment gave it.
    restart: Arc<Notify>,
    /// One enrollment at a time (two scanners, the kiosk and gatectl).
    busy: Arc<tokio::sync::Mutex<()>>,
    /// Seen enrolled once: a lane's every scan asks, the files are read
    /// until then only.
    enrolled: Arc<std::sync::atomic::AtomicBool>,
}

impl Setup {
    pub fn new(config: Arc<Config>, db: Db, restart: Arc<Notify>) -> Self {
        Setup {
            config,
            db,
            restart,
            busy: Default::default(),
            enrolled: Default::default(),
        }
    }

    /// Not enrolled (or enrolled as another device than gated.toml says,
    /// or cut short): the device waits for a setup code. The files the
    /// link itself goes by decide.
    pub fn waiting(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.enrolled.load(Ordering::Relaxed) {
            return false;
        }
        let enrolled = crate::central::identity::enrolled(
            self.config.state_dir.get_ref(),
            self.config.device_id.get_ref(),
            &self.config.role.to_string(),
        )
        .is_ok();
        self.enrolled.store(enrolled, Ordering::Relaxed);
        !enrolled
    }

    /// Enrolls with a setup code's text, or a pairing code typed alone
    /// (the configured central system and device id): see [`target`].
    pub async fn enroll(&self, text: &str, by: &str) -> Result<(Target, Enrolled), Refusal> {
        let _one = self.busy.lock().await;
        let t = target(&self.config, None, text)?;
        info!(central = t.central, device = t.device_id, by, "enrolling");
        let enrolled = enroll::enroll(
            &self.config,
            Some(&self.db),
            &t.central,
            &t.code,
            &t.device_id,
        )
        .await
        .map_err(|e| {
            let r = explain(&e);
            warn!(reason = r.reason, "enrollment refused: {}", r.en);
            r
        })?;
        info!(device = enrolled.device_id, "enrolled");
        Ok((t, enrolled))
    }

    /// After an enrollment, once its caller has answered (the display, the
    /// D-Bus reply): a device whose gated.toml names no id starts again as
    /// the device it now is, since nonces, passages and peers carry the id
    /// from the start.
    pub fn restart_if_needed(&self, device_id: &str) {
        if !self.config.device_id.get_ref().is_empty() {
            return;
        }
        info!("gated.toml names no device id: starting again as {device_id}");
        let restart = self.restart.clone();
        tokio::spawn(async move {
            // The reply on its way first: it is sent when the method returns.
            tokio::time::sleep(RESTART_AFTER).await;
            restart.notify_one();
        });
    }

    /// Waits (at most `limit`) for the link to come up after an enrollment,
    /// so what is shown next is what the device found, not its start-up.
    pub async fn settle(mut s: watch::Receiver<SyncStatus>, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async {
            while s.borrow_and_update().mode != LinkMode::Online {
                if s.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// Whom to enroll with, as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub central: String,
    pub code: String,
    pub device_id: String,
    /// The scenic area a setup code names (shown, not trusted).
    pub site: Option<String>,
}

/// What `text` enrolls with: a setup code names the central system and the
/// device ([`check`]); a pairing code alone takes `central` (default: the
/// configured one) and gated.toml's device id, which it then needs.
pub fn target(config: &Config, central: Option<&str>, text: &str) -> Result<Target, Refusal> {
    if setup_code::claims(text) {
        let c = check(config, text)?;
        return Ok(Target {
            central: c.central,
            code: c.code,
            device_id: c.device_id,
            site: c.site,
        });
    }
    let code = text.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(refuse(
            "garbled",
            "type the pairing code, or scan the setup code",
            "请输入配对码或扫描设置码",
        ));
    }
    let id = config.device_id.get_ref();
    if id.is_empty() {
        return Err(refuse(
            "no_device_id",
            "gated.toml names no device id: enroll with the device's setup code, which names it",
            "配置中没有设备编号：请扫描设置码",
        ));
    }
    Ok(Target {
        central: central.unwrap_or(config.central.url.get_ref()).to_owned(),
        code: code.to_owned(),
        device_id: id.clone(),
        site: None,
    })
}

/// Everything that can be refused before asking the central system.
pub fn check(config: &Config, text: &str) -> Result<SetupCode, Refusal> {
    let code = setup_code::parse(text).map_err(|e| match e {
        SetupCodeError::NotASetupCode => refuse(
            "not_a_setup_code",
            "not a setup code: scan the setup code the central system printed for this device",
            "这不是设置码：请扫描中心系统为本设备生成的设置码",
        ),
        SetupCodeError::UnknownVersion(v) => refuse(
            "unknown_version",
            format!(
                "setup code version {v}: this device reads version {}; update its software",
                setup_code::VERSION
            ),
            "设置码版本过新：请先更新设备软件",
        ),
        SetupCodeError::Garbled(why) => refuse(
            "garbled",
            format!("the setup code cannot be read ({why}): scan it again"),
            "设置码无法识别：请重新扫描",
        ),
    })?;
    let role = config.role.to_string();
    if code.role != role {
        return Err(refuse(
            "other_role",
            format!(
                "this setup code is for a {}; this device is a {role}",
                code.role
            ),
            format!(
                "此设置码用于{}，本设备是{}",
                role_zh(&code.role),
                role_zh(&role)
            ),
        ));
    }
    let id = config.device_id.get_ref();
    if !id.is_empty() && *id != code.device_id {
        return Err(refuse(
            "other_device",
            format!(
                "this setup code is for device {}; this device is {id}",
                code.device_id
            ),
            format!("此设置码属于设备{}，本设备是{id}", code.device_id),
        ));
    }
    let configured = config.central.url.get_ref();
    if config.central.ca_file.is_none() && code.central != *configured {
        return Err(refuse(
            "untrusted_central",
            format!(
                "the setup code names {}, but this device trusts only {configured} (no [central] ca_file to check another against)",
                code.central
            ),
            "设置码指向未受信任的中心系统",
        ));
    }
    Ok(code)
}

fn role_zh(role: &str) -> &'static str {
    match role {
        "kiosk" => "自助售票机",
        _ => "闸机",
    }
}

/// The central system's answer, or the lack of one, for the engineer.
pub fn explain(e: &enroll::EnrollError) -> Refusal {
    let chain = error_chain(e);
    match enroll::explain(e) {
        Failure::Code(m) if m.contains("code_used") => {
            refuse("code_used", m, "设置码已被使用：请向中心申请新的设置码")
        }
        Failure::Code(m) if m.contains("code_expired") => {
            refuse("code_expired", m, "设置码已过期：请向中心申请新的设置码")
        }
        Failure::Code(m) if m.contains("code_mismatch") => {
            refuse("code_mismatch", m, "设置码与本设备不符")
        }
        Failure::Code(m) => refuse("code_unknown", m, "设置码无效：请向中心申请新的设置码"),
        _ if chain.contains("certificate") || chain.contains("UnknownIssuer") => refuse(
            "untrusted_central",
            format!(
                "the central system's certificate is not from the CA this device trusts: {chain}"
            ),
            "中心系统证书不受信任",
        ),
        Failure::Offline(_) => refuse(
            "offline",
            format!("the central system cannot be reached: {chain}"),
            "无法连接中心系统：检查网络",
        ),
        Failure::Other(m) => refuse("failed", m, "设置失败"),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let t = c.to_string();
        if !s.contains(&t) {
            s += ": ";
            s += &t;
        }
        source = c.source();
    }
    s
}

//! A fake RAUC (`de.pengutronix.rauc`, interface `Installer` at `/`) on a
//! private bus, for what the real one cannot do here (no device mapper, no
//! bootloader): two root slots A and B, a booted slot the test chooses, and
//! installs that report progress and complete (or fail) as RAUC's do. It
//! records every `Mark` and `InstallBundle`. The real `rauc service` from
//! Debian is used where it can be: refusing bundles (tests/tests/updates.rs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::object_server::SignalEmitter;

/// One root slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub bootname: String,
    pub version: String,
    pub boot_status: String,
}

/// What the fake holds; tests read and change it.
#[derive(Debug, Clone)]
pub struct State {
    pub booted: String,
    pub slots: Vec<Slot>,
    /// (state, slot identifier) of every `Mark`, in order.
    pub marks: Vec<(String, String)>,
    /// Every bundle path given to `InstallBundle`.
    pub installs: Vec<String>,
    /// The version an install writes into the other slot.
    pub bundle_version: String,
    /// Set: the next install fails with this as `LastError`.
    pub fail_with: Option<String>,
}

struct Installer {
    state: Arc<Mutex<State>>,
    operation: String,
    last_error: String,
    progress: (i32, String, i32),
}

#[zbus::interface(name = "de.pengutronix.rauc.Installer")]
impl Installer {
    async fn install_bundle(
        &mut self,
        #[zbus(connection)] conn: &zbus::Connection,
        source: &str,
        _args: HashMap<String, zbus::OwnedVariant>,
    ) -> zbus::fdo::Result<()> {
        if self.operation != "idle" {
            return Err(zbus::fdo::Error::Failed(
                "already processing a different method".into(),
            ));
        }
        self.state.lock().unwrap().installs.push(source.to_owned());
        self.operation = "installing".into();
        let conn = conn.clone();
        // RAUC answers at once and reports the rest through Progress and Completed.
        tokio::spawn(async move {
            let iface = conn
                .object_server()
                .interface::<_, Installer>("/")
                .await
                .expect("the fake's interface");
            for (pct, msg) in [
                (0, "Installing"),
                (20, "Checking bundle"),
                (40, "Checking bundle done."),
                (60, "Copying image to rootfs.1"),
                (100, "Installing done."),
            ] {
                let mut i = iface.get_mut().await;
                i.progress = (pct, msg.to_owned(), 1);
                let _ = i.progress_changed(iface.signal_emitter()).await;
                drop(i);
                tokio::task::yield_now().await;
            }
            let mut i = iface.get_mut().await;
            let result = {
                let mut s = i.state.lock().unwrap();
                match s.fail_with.take() {
                    Some(e) => Err(e),
                    None => {
                        let booted = s.booted.clone();
                        let version = s.bundle_version.clone();
                        if let Some(other) = s.slots.iter_mut().find(|x| x.bootname != booted) {
                            other.version = version;
                            other.boot_status = "good".into();
                        }
                        Ok(())
                    }
                }
            };
            i.operation = "idle".into();
            i.last_error = result.clone().err().unwrap_or_default();
            let _ = i.operation_changed(iface.signal_emitter()).await;
            let _ = i.last_error_changed(iface.signal_emitter()).await;
            drop(i);
            let _ =
                Installer::completed(iface.signal_emitter(), if result.is_ok() { 0 } else { 1 })
                    .await;
        });
        Ok(())
    }

    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::fdo::Result<(String, String)> {
        let mut s = self.state.lock().unwrap();
        s.marks.push((state.to_owned(), slot_identifier.to_owned()));
        let booted = s.booted.clone();
        let slot = s
            .slots
            .iter_mut()
            .find(|x| match slot_identifier {
                "booted" => x.bootname == booted,
                "other" => x.bootname != booted,
                name => x.name == name,
            })
            .ok_or_else(|| zbus::fdo::Error::Failed(format!("no slot {slot_identifier}")))?;
        slot.boot_status = state.to_owned();
        Ok((
            slot.name.clone(),
            format!("marked slot {} as {state}", slot.name),
        ))
    }

    fn get_slot_status(&self) -> Vec<(String, HashMap<String, zbus::OwnedVariant>)> {
        let s = self.state.lock().unwrap();
        s.slots
            .iter()
            .map(|x| {
                let mut m: HashMap<String, zbus::OwnedVariant> = HashMap::new();
                let mut put = |k: &str, v: &str| {
                    m.insert(k.into(), zbus::Variant::from(v).try_into().unwrap());
                };
                put("class", "rootfs");
                put("bootname", &x.bootname);
                put("boot-status", &x.boot_status);
                put(
                    "state",
                    if x.bootname == s.booted {
                        "booted"
                    } else {
                        "inactive"
                    },
                );
                if !x.version.is_empty() {
                    put("bundle.version", &x.version);
                }
                (x.name.clone(), m)
            })
            .collect()
    }

    #[zbus(signal)]
    async fn completed(emitter: &SignalEmitter<'_>, result: i32) -> zbus::Result<()>;

    #[zbus(property)]
    fn operation(&self) -> String {
        self.operation.clone()
    }

    #[zbus(property)]
    fn last_error(&self) -> String {
        self.last_error.clone()
    }

    #[zbus(property)]
    fn progress(&self) -> (i32, String, i32) {
        self.progress.clone()
    }

    #[zbus(property)]
    fn boot_slot(&self) -> String {
        self.state.lock().unwrap().booted.clone()
    }

    #[zbus(property)]
    fn compatible(&self) -> String {
        "scenicpark-qemux86-64".into()
    }
}

/// The fake, serving while it lives.
pub struct FakeRauc {
    _conn: zbus::Connection,
    pub state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeRauc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRauc")
            .field("state", &self.state)
            .finish()
    }
}

impl FakeRauc {
    /// Serves on the bus at `address`, booted from `booted` (`A` or `B`),
    /// slot A at `version_a` and B at `version_b`.
    pub async fn start(address: &str, booted: &str, version_a: &str, version_b: &str) -> Self {
        let slot = |name: &str, bootname: &str, version: &str| Slot {
            name: name.into(),
            bootname: bootname.into(),
            version: version.into(),
            boot_status: "good".into(),
        };
        let state = Arc::new(Mutex::new(State {
            booted: booted.into(),
            slots: vec![
                slot("rootfs.0", "A", version_a),
                slot("rootfs.1", "B", version_b),
            ],
            marks: Vec::new(),
            installs: Vec::new(),
            bundle_version: String::new(),
            fail_with: None,
        }));
        let installer = Installer {
            state: state.clone(),
            operation: "idle".into(),
            last_error: String::new(),
            progress: (0, String::new(), 0),
        };
        let conn = zbus::connection::Builder::address(address)
            .serve_at("/", installer)
            .name("de.pengutronix.rauc")
            .build()
            .await
            .expect("fake RAUC on the bus");
        FakeRauc { _conn: conn, state }
    }

    pub fn marks(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().marks.clone()
    }

    pub fn installs(&self) -> Vec<String> {
        self.state.lock().unwrap().installs.clone()
    }
}

//! gated's life cycle: start every subsystem the role needs, tell systemd we
//! are ready, keep the watchdog fed, and stop in order on SIGTERM.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::config::{Config, Role};
use crate::store::Db;
use crate::systemd;

/// systemd's default stop timeout is longer; ours is a promise to the units.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error(
        "state directory {path} is in use by another gated (lock file {path}/gated.lock is held)"
    )]
    AlreadyRunning { path: PathBuf },
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("{0}")]
    Store(crate::store::StoreError),
    #[error("lanes: {0}")]
    Lanes(crate::lanes::LanesError),
}

/// The state directory, locked for this process: two daemons on one database
/// and one set of devices would corrupt both.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl StateDir {
    pub fn open(path: &Path) -> Result<Self, StartError> {
        let err = |source| StartError::StateDir {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(err)?;
        // The database holds the ID-hash key and tokens: gated's eyes only.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("gated.lock"))
            .map_err(err)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                StartError::AlreadyRunning {
                    path: path.to_owned(),
                }
            } else {
                err(errno.into())
            }
        })?;
        Ok(StateDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How gated stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Signal,
    /// Enrolled under a device id gated.toml does not name: start again
    /// (the same program, the same arguments) as that device.
    Restart,
}

/// Runs gated until SIGTERM or SIGINT, or until it must start again.
pub async fn run(config: Config) -> Result<Stopped, StartError> {
    // Signal handlers first: a SIGTERM during start-up must still stop us cleanly.
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;

    // Shared with Engineer1 (provisioning reads the device's id, role and CA).
    let config = std::sync::Arc::new(config);
    let state = StateDir::open(config.state_dir.get_ref())?;
    info!(path = %state.path().display(), "state directory ready");
    // The one writer (and one reader) every part of gated shares.
    let db = match Db::open(&state.path().join("gated.db")) {
        Ok(db) => db,
        Err(e) => {
            // On a new slot's first boots, a store it cannot open is a
            // failed health check: back to the old slot, the store untouched.
            crate::update::store_refused(state.path(), &e.to_string()).await;
            return Err(StartError::Store(e));
        }
    };
    let reads = crate::reads::channel();
    // Enrollment by setup code: the lanes' scanners, Kiosk1, Engineer1.
    let restart = std::sync::Arc::new(tokio::sync::Notify::new());
    let setup = crate::setup::Setup::new(config.clone(), db.clone(), restart.clone());
    // Counted by occupancy, shown on lane displays, reported in the heartbeat.
    let (occupancy_tx, occupancy_rx) = tokio::sync::watch::channel(Default::default());
    // Passages and prints under way: an update's reboot waits for them.
    let activity = crate::update::Activity::default();
    // Set once every part runs; the heartbeat and the lanes' service code show it.
    let health_slot = crate::health::Slot::default();
    // Spoken prompts: lanes only (a kiosk talks through its screen).
    let voice = config
        .voice
        .as_ref()
        .filter(|_| config.role == Role::Lane)
        .map(|v| crate::voice::Voice::start(v.get_ref(), config.time_zone()));
    let (lanes, lanes_handle, registry) = match config.role {
        Role::Lane => {
            let (tasks, handle, registry) = crate::lanes::start(
                &config,
                db.clone(),
                &reads,
                &occupancy_rx,
                &activity,
                voice.as_ref(),
                &crate::lanes::FieldCodes {
                    setup: setup.clone(),
                    health: health_slot.clone(),
                },
            )
            .await
            .map_err(StartError::Lanes)?;
            (tasks, Some(handle), Some(registry))
        }
        Role::Kiosk => (tokio::task::JoinSet::new(), None, None),
    };
    let lane_iface = crate::dbus::LaneIface {
        lanes: lanes_handle.clone().zip(registry.clone()),
        tz: config.time_zone(),
    };
    let (fleet_tx, fleet) = tokio::sync::watch::channel(crate::peers::FleetStatus::default());
    // Set once the modes run; the heartbeat reports it and passes on offers.
    let updates_slot = crate::update::Slot::default();
    let link = crate::central::sync::start(
        &config,
        db.clone(),
        lanes_handle.clone(),
        fleet.clone(),
        occupancy_rx,
        updates_slot.clone(),
        health_slot.clone(),
    )
    .map_err(StartError::Store)?;
    let sync = link.tasks;
    let mut services = tokio::task::JoinSet::new();
    crate::peers::start(
        &config,
        db.clone(),
        lanes_handle.as_ref().map(crate::lane::Engine::head),
        link.status.clone(),
        link.session.clone(),
        fleet_tx,
        &mut services,
    );
    let power = crate::power::start(&config, &mut services);
    // The operating mode: UPS, fire inputs, central link, operator.
    let (fire_tx, fire_rx) = tokio::sync::mpsc::channel(16);
    if let Some(r) = &registry {
        crate::modes::fire_from_gates(r, &fire_tx);
    }
    if let Some(spec) = &config.fire.gpio {
        crate::modes::fire_from_line(spec.get_ref(), config.fire.gpio_active_low, &fire_tx);
    }
    drop(fire_tx);
    let (modes, modes_task) = crate::modes::start(crate::modes::Inputs {
        nonces: db
            .writer()
            .nonces(config.device_id.get_ref())
            .map_err(StartError::Store)?,
        settings: crate::modes::Settings::from_config(&config),
        power: power.clone(),
        link: link.status.clone(),
        fire: fire_rx,
        lanes: lanes_handle.clone().zip(registry.clone()),
        store: db.clone(),
        upload_now: link.upload_now.clone(),
        logind: crate::modes::Logind,
    });
    if let Some(v) = &voice {
        services.spawn(crate::voice::follow_modes(v.clone(), modes.view.clone()));
    }
    let occupancy = crate::occupancy::start(
        &config,
        db.clone(),
        lanes_handle.clone(),
        link.status.clone(),
        fleet.clone(),
        occupancy_tx,
        &mut services,
    )
    .map_err(StartError::Store)?;
    let kiosk = match config.role {
        Role::Kiosk => Some(
            crate::kiosk_role::start(
                &config,
                db.clone(),
                link.session.clone(),
                link.status.clone(),
                modes.view.clone(),
                occupancy.view.clone(),
                activity.clone(),
                &mut services,
            )
            .map_err(StartError::Store)?,
        ),
        Role::Lane => None,
    };
    let updates = crate::update::Updates::new(
        crate::update::Settings::from_config(&config),
        modes.view.clone(),
        activity,
        link.session.clone(),
    );
    let _ = updates_slot.set(updates.clone());
    let health_sources = crate::health::Sources {
        status: link.status.clone(),
        power: power.clone(),
        reads: reads.clone(),
        kiosk: kiosk.clone(),
        lanes: registry.clone(),
        voice,
        state_dir: state.path().to_owned(),
    };
    let _ = health_slot.set(health_sources.clone());
    // The bus is how the kiosk UI and gatectl reach gated; lanes work without it.
    let reader = crate::dbus::Reader::new(db.clone(), config.time_zone(), config.operating_day());
    let device = crate::dbus::Device {
        reader: reader.clone(),
        role: config.role.to_string(),
        device_id: config.device_id.get_ref().clone(),
        status: link.status.clone(),
        fleet,
        occupancy: occupancy.view.clone(),
        power: power.clone(),
        modes: modes.clone(),
        health: health_sources.clone(),
    };
    let engineer = crate::dbus::Engineer {
        power: power.clone(),
        config: config.clone(),
        kiosk: kiosk.clone(),
        lanes: registry.clone(),
        reads: reads.clone(),
        resync: link.resync.clone(),
        modes: modes.clone(),
        occupancy: occupancy.clone(),
        reader,
        updates: updates.clone(),
        setup: setup.clone(),
    };
    // Held until gated stops: the name goes with the connection.
    let bus = match crate::dbus::serve(device, lane_iface, engineer).await {
        Ok(conn) => {
            info!(name = crate::dbus::BUS_NAME, "D-Bus API served");
            services.spawn(crate::dbus::follow(
                conn.clone(),
                link.status.clone(),
                power.clone(),
                modes.view.clone(),
                occupancy.view.clone(),
                kiosk.clone(),
            ));
            if let Some(k) = &kiosk {
                crate::kiosk_role::forward_reads(
                    &config,
                    k.clone(),
                    conn.clone(),
                    &reads,
                    &mut services,
                );
            }
            Some(conn)
        }
        Err(e) => {
            warn!(
                "D-Bus API not available: {e} (the kiosk UI and gatectl status cannot reach gated)"
            );
            None
        }
    };

    let status = format!(
        "role {}, device {}, {} lane(s)",
        config.role,
        config.device_id.get_ref(),
        config.lanes.len()
    );
    systemd::ready(&status);
    info!("gated ready: {status}");
    // Ready, the store open: the rest of this boot's health check.
    let mut devices = reads.receivers();
    for lane in registry.iter().flat_map(|r| r.iter()) {
        if !devices
            .iter()
            .any(|(n, _)| *n == format!("gate {}", lane.gate_name))
        {
            devices.push((format!("gate {}", lane.gate_name), lane.gate.watch_state()));
        }
    }
    let health = crate::update::Health {
        devices,
        printer: kiosk
            .as_ref()
            .filter(|_| config.devices.printer.is_some())
            .map(|k| k.watch_printer()),
        link: link.status.clone(),
    };
    services.spawn(async move { updates.check_health(health).await });

    let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
    if let Some(w) = &watchdog {
        info!(
            period_ms = w.period().as_millis() as u64,
            "systemd watchdog armed"
        );
    }
    let (cause, stopped) = loop {
        tokio::select! {
            _ = term.recv() => break ("SIGTERM received", Stopped::Signal),
            _ = int.recv() => break ("SIGINT received", Stopped::Signal),
            _ = restart.notified() => break ("enrolled under a new device id", Stopped::Restart),
            _ = tick(&mut watchdog) => systemd::watchdog(),
        }
    };
    info!("{cause}, stopping");
    systemd::stopping();
    if tokio::time::timeout(SHUTDOWN_GRACE, shutdown(lanes, sync, services, state))
        .await
        .is_err()
    {
        warn!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    modes_task.abort();
    drop(bus);
    info!("gated stopped");
    Ok(stopped)
}

/// Stops subsystems in reverse order of start. Every passage was committed
/// before it was reported, so stopping mid-passage loses nothing recorded.
async fn shutdown(
    mut lanes: tokio::task::JoinSet<()>,
    mut sync: tokio::task::JoinSet<()>,
    mut services: tokio::task::JoinSet<()>,
    state: StateDir,
) {
    services.shutdown().await;
    // The outbox is durable: stopping the upload mid-batch loses nothing.
    sync.shutdown().await;
    lanes.shutdown().await;
    drop(state);
}

async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(w) => {
            w.tick().await;
        }
        None => std::future::pending().await,
    }
}

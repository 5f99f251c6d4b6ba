//! The device's operating mode: one state machine fed by the
//! UPS, the fire-alarm inputs, the central link and the operator, driving
//! every lane's gate and the kiosk's sale. Every transition is logged with
//! its cause, announced on D-Bus (`Device1.ModeChanged`) and queued for the
//! central system as an event.
//!
//! Priority: shutdown > fire alarm > power fallback > offline > normal. Fire
//! opens every gate whatever else holds; on UPS power each lane takes its
//! `power_fail_mode`. Leaving a mode returns to the one below by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hal::gate::{Gate, GateEvent, GateMode};
use hal::power::PowerState;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::central::sync::{Mode as LinkMode, SyncStatus};
use crate::lanes::LaneRegistry;
use crate::power::PowerView;
use crate::store::Db;
use crate::store::outbox::OutboxEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Normal,
    Offline,
    PowerFallback,
    Shutdown,
    FireAlarm,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Offline => "offline",
            Mode::PowerFallback => "power_fallback",
            Mode::Shutdown => "shutdown",
            Mode::FireAlarm => "fire_alarm",
        }
    }
}

/// What the device is doing and why (D-Bus `Device1`, `gatectl status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModeView {
    pub mode: Mode,
    /// Why, for people: "mains lost for 2 s (ON BATTERY, 80 %)".
    pub cause: String,
    pub since_ms: i64,
    /// The fire input cleared, but the gates stay open until `gatectl alarm reset`.
    pub fire_reset_pending: bool,
    /// Lane groups in peak mode.
    pub peak_groups: Vec<String>,
}

/// Normal mode's cause. A device starts in normal mode; until its first
/// verdict that is what it shows, and a first verdict of any other mode is
/// a transition like any other.
const ALL_CLEAR: &str = "all clear";

impl ModeView {
    fn starting() -> Self {
        ModeView {
            mode: Mode::Normal,
            cause: ALL_CLEAR.into(),
            since_ms: now_ms(),
            fire_reset_pending: false,
            peak_groups: Vec::new(),
        }
    }
}

/// Operator commands (Engineer1).
#[derive(Debug)]
pub enum Command {
    /// Ends a latched fire alarm once its input has cleared.
    AlarmReset {
        by: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Peak {
        group: String,
        on: bool,
        by: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What the rest of gated holds: the current mode and a way to command it.
#[derive(Debug, Clone)]
pub struct Modes {
    pub view: watch::Receiver<ModeView>,
    pub commands: mpsc::Sender<Command>,
}

impl Modes {
    pub async fn command(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| "gated is stopping".to_owned())?;
        rx.await.map_err(|_| "gated is stopping".to_owned())?
    }
}

/// How the device powers itself off (logind on the system bus; recorded by
/// a fake logind in tests).
pub trait PowerOff: Send + Sync + 'static {
    /// Takes a delay inhibitor: logind waits for it before shutting down.
    fn inhibit(
        &mut self,
        why: &str,
    ) -> impl std::future::Future<Output = Result<zbus::OwnedFd, String>> + Send;
    fn power_off(&mut self) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Login1Manager {
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::Result<zbus::OwnedFd>;
    fn power_off(&self, interactive: bool) -> zbus::Result<()>;
    fn reboot(&self, interactive: bool) -> zbus::Result<()>;
}

/// logind on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` chooses another).
#[derive(Debug, Default)]
pub struct Logind;

impl Logind {
    async fn proxy() -> Result<Login1ManagerProxy<'static>, String> {
        let conn = zbus::Connection::system()
            .await
            .map_err(|e| format!("system bus: {e}"))?;
        Login1ManagerProxy::new(&conn)
            .await
            .map_err(|e| format!("logind: {e}"))
    }
}

impl Logind {
    /// Reboots the device (into a new slot after an update, or away from
    /// one that is not healthy).
    pub async fn reboot() -> Result<(), String> {
        Self::proxy()
            .await?
            .reboot(false)
            .await
            .map_err(|e| format!("logind Reboot: {e}"))
    }
}

impl PowerOff for Logind {
    async fn inhibit(&mut self, why: &str) -> Result<zbus::OwnedFd, String> {
        Self::proxy()
            .await?
            .inhibit("shutdown", "gated", why, "delay")
            .await
            .map_err(|e| format!("logind Inhibit: {e}"))
    }

    async fn power_off(&mut self) -> Result<(), String> {
        Self::proxy()
            .await?
            .power_off(false)
            .await
            .map_err(|e| format!("logind PowerOff: {e}"))
    }
}

/// What the state machine watches and drives.
#[allow(missing_debug_implementations)] // holds a database connection and channels
pub struct Inputs<P: PowerOff> {
    /// The nonces of the mode events (see `store::outbox`).
    pub nonces: crate::store::outbox::Nonces,
    pub settings: Settings,
    pub power: watch::Receiver<PowerView>,
    pub link: watch::Receiver<SyncStatus>,
    /// Fire inputs: (source, active) from every gate's events and any
    /// dedicated line.
    pub fire: mpsc::Receiver<(String, bool)>,
    pub lanes: Option<(crate::lane::Engine, LaneRegistry)>,
    /// Durable events and the WAL checkpoint.
    pub store: Db,
    /// Asks the central link to upload the outbox now.
    pub upload_now: Arc<tokio::sync::Notify>,
    pub logind: P,
}

/// The `[power]`, `[fire]` and `[peak]` settings the machine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub debounce: Duration,
    /// Zero: no limit.
    pub grace: Duration,
    pub low_percent: f64,
    pub fire_reset_by_engineer: bool,
    pub peak: crate::tickets::admission::Relax,
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Settings {
            debounce: Duration::from_millis(c.power.debounce_ms),
            grace: Duration::from_secs(c.power.grace_s),
            low_percent: c.power.low_percent,
            fire_reset_by_engineer: c.fire.reset_by_engineer,
            peak: crate::tickets::admission::Relax {
                exit_first: c.peak.ignore_exit_first,
                reentry_wait: c.peak.ignore_reentry_wait,
            },
        }
    }
}

/// Forwards every gate's fire input into one channel.
pub fn fire_from_gates(registry: &LaneRegistry, tx: &mpsc::Sender<(String, bool)>) {
    let mut seen = std::collections::HashSet::new();
    for lane in registry.iter() {
        // Lanes may share a gate: one follower per gate.
        if !seen.insert(lane.gate_name.clone()) {
            continue;
        }
        let mut events = lane.gate.events();
        let (tx, source) = (tx.clone(), format!("gate of lane {}", lane.name));
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(GateEvent::Fire { active }) => {
                        if tx.send((source.clone(), active)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }
}

/// Follows a fire-alarm contact of its own (`[fire] gpio`).
pub fn fire_from_line(spec: &str, active_low: bool, tx: &mpsc::Sender<(String, bool)>) {
    let source = format!("fire input {spec}");
    let line = crate::config::gpio_line(spec).and_then(|(chip, line)| {
        hal::gpio::cdev::CdevInput::open(&chip, line, "gated-fire").map_err(|e| e.to_string())
    });
    match line {
        Ok(line) => follow_fire_line(source, line, active_low, tx),
        Err(e) => error!("{source}: {e}: fire alarms from this line are not seen"),
    }
}

/// Debounced changes of a fire-alarm line into the fire channel.
pub fn follow_fire_line<I: hal::gpio::InputLine>(
    source: String,
    line: I,
    active_low: bool,
    tx: &mpsc::Sender<(String, bool)>,
) {
    let mut changes = hal::gpio::debounced(line, active_low, Duration::from_millis(50));
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            match change {
                Ok(active) => {
                    if tx.send((source.clone(), active)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    error!("{source}: {e}: fire alarms from this line are no longer seen");
                    return;
                }
            }
        }
    });
}

/// Starts the state machine; it runs until the returned task is dropped.
pub fn start<P: PowerOff>(inputs: Inputs<P>) -> (Modes, tokio::task::JoinHandle<()>) {
    let (tx, view) = watch::channel(ModeView::starting());
    let (commands, rx) = mpsc::channel(8);
    let task = tokio::spawn(Machine::new(inputs, tx).run(rx));
    (Modes { view, commands }, task)
}

struct Machine<P: PowerOff> {
    inputs: Inputs<P>,
    tx: watch::Sender<ModeView>,
    fire: BTreeMap<String, bool>,
    fire_latched: bool,
    /// When mains was lost (None on mains or unknown).
    lost_at: Option<Instant>,
    shut_down: bool,
}

impl<P: PowerOff> Machine<P> {
    fn new(inputs: Inputs<P>, tx: watch::Sender<ModeView>) -> Self {
        Machine {
            inputs,
            tx,
            fire: BTreeMap::new(),
            fire_latched: false,
            lost_at: None,
            shut_down: false,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.power_changed();
        self.settle().await;
        loop {
            // The next instant the power rules change their verdict by time alone.
            let deadline = self.next_deadline();
            tokio::select! {
                // Without a UPS (or a link) the watch is closed: that branch sleeps.
                Ok(()) = self.inputs.power.changed() => self.power_changed(),
                Ok(()) = self.inputs.link.changed() => {}
                Some((source, active)) = self.inputs.fire.recv() => {
                    info!(source, active, "fire-alarm input");
                    self.fire.insert(source, active);
                    if active {
                        self.fire_latched = true;
                    } else if !self.inputs.settings.fire_reset_by_engineer && !self.fire_active() {
                        self.fire_latched = false;
                    }
                }
                Some(cmd) = commands.recv() => self.command(cmd).await,
                _ = sleep_until(deadline) => {}
            }
            self.settle().await;
        }
    }

    fn fire_active(&self) -> bool {
        self.fire.values().any(|a| *a)
    }

    fn power_changed(&mut self) {
        let on_battery = self.inputs.power.borrow().on_battery();
        match (on_battery, self.lost_at) {
            (true, None) => self.lost_at = Some(Instant::now()),
            (false, Some(_)) => self.lost_at = None,
            _ => {}
        }
    }

    /// Why the central link is down, once it has tried and failed. A link
    /// that is still making its first attempt is not offline: every start
    /// would otherwise record a spurious offline→normal transition.
    fn link_failure(&self) -> Option<String> {
        let link = self.inputs.link.borrow();
        if link.mode == LinkMode::Offline {
            link.last_error.clone()
        } else {
            None
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let lost = self.lost_at?;
        let s = &self.inputs.settings;
        let mut next = vec![lost + s.debounce];
        if !s.grace.is_zero() {
            next.push(lost + s.grace);
        }
        next.into_iter().filter(|t| *t > Instant::now()).min()
    }

    /// The mode the inputs call for, and its cause.
    fn verdict(&self) -> (Mode, String, bool) {
        let power = self.inputs.power.borrow().clone();
        let s = &self.inputs.settings;
        let held = self.lost_at.map(|t| t.elapsed());
        let state = power.state.clone();
        // Shutdown: the UPS orders it, the battery is low, or the grace time is over.
        let shutdown_cause = match (&state, held) {
            (Some(PowerState::ForcedShutdown), _) => {
                Some("the UPS ordered a shutdown (FSD)".to_owned())
            }
            (Some(PowerState::BatteryLow { .. }), _) => {
                Some(format!("battery low ({})", power.describe()))
            }
            (
                Some(PowerState::OnBattery {
                    percent: Some(p), ..
                }),
                Some(h),
            ) if *p <= s.low_percent && h >= s.debounce => Some(format!(
                "battery at {p:.0} % (limit {:.0} %)",
                s.low_percent
            )),
            (Some(_), Some(h)) if !s.grace.is_zero() && h >= s.grace => Some(format!(
                "on battery for {} s (grace time {} s)",
                h.as_secs(),
                s.grace.as_secs()
            )),
            _ => None,
        };
        let fallback = held.is_some_and(|h| h >= s.debounce);
        let pending = self.fire_latched && !self.fire_active();
        if let Some(cause) = shutdown_cause {
            (Mode::Shutdown, cause, pending)
        } else if self.fire_latched {
            let cause = if pending {
                "fire alarm cleared; waiting for `gatectl alarm reset`".to_owned()
            } else {
                let sources: Vec<&str> = self
                    .fire
                    .iter()
                    .filter(|(_, a)| **a)
                    .map(|(s, _)| s.as_str())
                    .collect();
                format!("fire alarm from {}", sources.join(", "))
            };
            (Mode::FireAlarm, cause, pending)
        } else if fallback {
            (
                Mode::PowerFallback,
                format!(
                    "mains lost for {} ms ({})",
                    held.unwrap_or_default().as_millis(),
                    power.describe()
                ),
                pending,
            )
        } else if let Some(e) = self.link_failure() {
            // The link's errors mostly name the central system already.
            let cause = if e.starts_with("central system") {
                e
            } else {
                format!("central system unreachable: {e}")
            };
            (Mode::Offline, cause, pending)
        } else {
            (Mode::Normal, ALL_CLEAR.to_owned(), pending)
        }
    }

    /// Moves to the mode the inputs call for: gates first, then the record.
    async fn settle(&mut self) {
        if self.shut_down {
            return;
        }
        let (mode, cause, pending) = self.verdict();
        let old = self.tx.borrow().clone();
        // The lanes hold which groups are in peak mode.
        let peak_groups = match &self.inputs.lanes {
            Some((lanes, _)) => lanes.relaxed_groups(),
            None => Vec::new(),
        };
        // Same mode: the cause stays as it was at the transition ("mains
        // lost for 2001 ms"); the battery figures are the power view's.
        if old.mode == mode && old.fire_reset_pending == pending && old.peak_groups == peak_groups {
            return;
        }
        if old.mode != mode {
            self.drive_gates(mode).await;
        }
        let view = ModeView {
            mode,
            cause: cause.clone(),
            since_ms: if old.mode == mode {
                old.since_ms
            } else {
                now_ms()
            },
            fire_reset_pending: pending,
            peak_groups,
        };
        if old.mode != mode {
            if mode == Mode::Normal {
                info!(from = old.mode.as_str(), "mode normal: {cause}");
            } else {
                warn!(from = old.mode.as_str(), "mode {}: {cause}", mode.as_str());
            }
            let power = self.inputs.power.borrow().describe();
            self.record(OutboxEvent::ModeChange {
                from: old.mode.as_str().to_owned(),
                to: mode.as_str().to_owned(),
                cause: cause.clone(),
                power,
                at_ms: now_ms(),
            })
            .await;
        }
        let entering = old.mode != mode;
        self.tx.send_replace(view);
        if entering && matches!(mode, Mode::PowerFallback | Mode::FireAlarm) {
            // Make what happened so far durable and try to upload it while
            // the network lasts.
            self.checkpoint().await;
            self.inputs.upload_now.notify_one();
        }
        if entering && mode == Mode::Shutdown {
            self.shutdown(&cause).await;
        }
    }

    /// Every lane's gate for `mode`: fire opens all, the power fallback takes
    /// each lane's own power-fail mode, otherwise the operator's mode again.
    async fn drive_gates(&self, mode: Mode) {
        let Some((_, registry)) = &self.inputs.lanes else {
            return;
        };
        let fire = self.fire_latched;
        let commands = registry.iter().map(|lane| async move {
            let forced = match mode {
                _ if fire => Some((GateMode::Free, "fire alarm")),
                Mode::PowerFallback | Mode::Shutdown => {
                    Some((lane.power_fail_mode.gate_mode(), "power fallback"))
                }
                _ => None,
            };
            if let Err(e) = lane.force(forced).await {
                error!(lane = lane.name, "gate did not take its {mode:?} mode: {e}");
            }
        });
        futures_util::future::join_all(commands).await;
    }

    /// Inhibitor taken → gates safe → flushed → PowerOff; never by exiting.
    async fn shutdown(&mut self, cause: &str) {
        self.shut_down = true;
        warn!("shutting down: {cause}");
        let inhibitor = match self
            .inputs
            .logind
            .inhibit("opening the gates and saving every record before power-off")
            .await
        {
            Ok(fd) => Some(fd),
            Err(e) => {
                error!("{e}; shutting down without a delay inhibitor");
                None
            }
        };
        self.drive_gates(Mode::Shutdown).await;
        self.record(OutboxEvent::Shutdown {
            cause: cause.to_string(),
            at_ms: now_ms(),
        })
        .await;
        self.checkpoint().await;
        info!("gates in their fail-safe state and records flushed; powering off");
        if let Err(e) = self.inputs.logind.power_off().await {
            error!("{e}: the device stays up with its gates in their fail-safe state");
        }
        drop(inhibitor);
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AlarmReset { by, reply } => {
                let r = if self.fire_active() {
                    Err("the fire-alarm input is still active: it must clear first".to_owned())
                } else if !self.fire_latched {
                    Err("no fire alarm to reset".to_owned())
                } else {
                    self.fire_latched = false;
                    warn!(by, "fire alarm reset by an engineer");
                    self.record(OutboxEvent::AlarmReset {
                        by: by.clone(),
                        at_ms: now_ms(),
                    })
                    .await;
                    Ok(())
                };
                let _ = reply.send(r);
            }
            Command::Peak {
                group,
                on,
                by,
                reply,
            } => {
                let r = match &self.inputs.lanes {
                    None => Err("this device has no lanes".to_owned()),
                    Some((_, registry)) if !registry.iter().any(|l| l.group == group) => {
                        let mut groups: Vec<&str> =
                            registry.iter().map(|l| l.group.as_str()).collect();
                        groups.sort_unstable();
                        groups.dedup();
                        Err(format!(
                            "no lane group {group:?}; groups: {}",
                            groups.join(", ")
                        ))
                    }
                    Some((lanes, _)) => {
                        lanes.set_relax(&group, on.then_some(self.inputs.settings.peak));
                        warn!(group, on, by, "peak mode switched by an operator");
                        self.record(OutboxEvent::Peak {
                            group: group.clone(),
                            on,
                            by: by.clone(),
                            at_ms: now_ms(),
                        })
                        .await;
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    /// A durable event for the central system.
    async fn record(&mut self, event: OutboxEvent) {
        let at_ms = now_ms();
        let nonce = self.inputs.nonces.next("modes");
        let kind = event.kind();
        let r = self
            .inputs
            .store
            .write(move |s| s.queue(&nonce, &event, at_ms))
            .await;
        if let Err(e) = r {
            error!("could not record the {kind} event: {e}");
        }
    }

    /// Folds the WAL into the database file.
    async fn checkpoint(&mut self) {
        match self.inputs.store.write(|s| s.checkpoint()).await {
            Ok(true) => info!("state made durable (WAL checkpoint)"),
            Ok(false) => warn!(
                "WAL checkpoint incomplete (a reader was busy); every commit is durable anyway"
            ),
            Err(e) => error!("WAL checkpoint failed: {e}"),
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

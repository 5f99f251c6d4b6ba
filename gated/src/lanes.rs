//! The lane role at run time: starts every configured lane's devices, turns
//! what they read into presentations, and runs each through the lane
//! transaction. Lanes run concurrently; a broken device degrades only its
//! lane and is reported.

use std::collections::HashMap;

use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::{GateHandle, GateMode, ModbusAddress, RegisterMap};
use hal::iccard::IcEvent;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{Config, LaneDirection};
use crate::lane::{Admission, Engine, Medium, Presentation};
use crate::store::Db;
use crate::store::passages::FreePassage;
use crate::tickets::admission::{self, LaneNow, Route};
use crate::tickets::token::LocalMinute;
use crate::voice::Prompt;

#[derive(Debug, thiserror::Error)]
pub enum LanesError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Lane(#[from] crate::lane::LaneError),
    #[error("gate {name}: {why}")]
    Gate { name: String, why: String },
}

/// One lane as engineers see it (D-Bus `Lane1`): its gate, mode and last decisions.
#[derive(Debug)]
pub struct LaneState {
    pub name: String,
    pub group: String,
    pub direction: String,
    pub gate_name: String,
    pub gate: GateHandle,
    pub power_fail_mode: crate::config::PowerFailMode,
    /// The operator's mode (Lane1.SetMode).
    mode: std::sync::Mutex<GateMode>,
    /// A mode the device's state forces (fire alarm, power fallback), over
    /// the operator's, and why.
    forced: std::sync::Mutex<Option<(GateMode, &'static str)>>,
    /// Woken whenever the mode in force may have changed.
    mode_changed: tokio::sync::Notify,
    last: std::sync::Mutex<std::collections::VecDeque<Decision>>,
}

impl LaneState {
    pub fn new(name: &str, lane: &crate::config::Lane, gate: GateHandle) -> Self {
        LaneState {
            name: name.to_owned(),
            group: lane.group.clone(),
            direction: lane.direction.as_str().to_owned(),
            gate_name: lane.gate.get_ref().clone(),
            gate,
            power_fail_mode: lane.power_fail_mode,
            mode: std::sync::Mutex::new(GateMode::Normal),
            forced: std::sync::Mutex::new(None),
            mode_changed: tokio::sync::Notify::new(),
            last: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

/// Why an operator's lane command was refused.
#[derive(Debug, thiserror::Error)]
pub enum LaneCommandError {
    #[error("{0}: every lane command is refused until it ends")]
    Forced(&'static str),
    #[error("gate: {0}")]
    Gate(#[from] hal::gate::GateError),
}

pub use gated_api::types::Decision;

/// A decision as `Lane1.Lanes` shows it.
fn decision(
    at_ms: i64,
    medium: &str,
    outcome: &str,
    ticket_id: Option<u64>,
    persons: u32,
    reason: Option<&str>,
) -> Decision {
    Decision {
        at_ms,
        medium: medium.to_owned(),
        outcome: outcome.to_owned(),
        ticket_id,
        persons,
        reason: reason.map(str::to_owned),
    }
}

/// How many decisions each lane remembers.
const LAST_DECISIONS: usize = 10;

impl LaneState {
    /// The mode in force: the device's (fire, power) over the operator's.
    pub fn mode(&self) -> GateMode {
        match *self.forced.lock().expect("forced mode") {
            Some((m, _)) => m,
            None => *self.mode.lock().expect("lane mode"),
        }
    }

    /// What forces the lane's mode now, if anything.
    pub fn forced_by(&self) -> Option<&'static str> {
        self.forced.lock().expect("forced mode").map(|(_, why)| why)
    }

    /// Refused while the device forces the lane's mode.
    pub fn check_not_forced(&self) -> Result<(), LaneCommandError> {
        match self.forced_by() {
            Some(why) => Err(LaneCommandError::Forced(why)),
            None => Ok(()),
        }
    }

    /// The operator's mode: sets the gate's mode, then the lane's (scans
    /// are refused while locked).
    pub async fn set_mode(&self, mode: GateMode) -> Result<(), LaneCommandError> {
        self.check_not_forced()?;
        hal::gate::Gate::set_mode(&self.gate, mode).await?;
        *self.mode.lock().expect("lane mode") = mode;
        self.mode_changed.notify_waiters();
        Ok(())
    }

    /// The device forces a mode (Some) or hands the lane back to its
    /// operator's mode (None). The lane follows at once; then the gate.
    pub async fn force(
        &self,
        forced: Option<(GateMode, &'static str)>,
    ) -> Result<(), hal::gate::GateError> {
        *self.forced.lock().expect("forced mode") = forced;
        self.mode_changed.notify_waiters();
        hal::gate::Gate::set_mode(&self.gate, self.mode()).await
    }

    /// Returns once the lane is in normal mode (at once if it is).
    async fn normal(&self) {
        loop {
            let changed = self.mode_changed.notified();
            if self.mode() == GateMode::Normal {
                return;
            }
            changed.await;
        }
    }

    pub fn last(&self) -> Vec<Decision> {
        self.last
            .lock()
            .expect("decisions")
            .iter()
            .cloned()
            .collect()
    }

    fn remember(&self, d: Decision) {
        let mut last = self.last.lock().expect("decisions");
        if last.len() == LAST_DECISIONS {
            last.pop_front();
        }
        last.push_back(d);
    }
}

/// Every lane of the device, by name.
pub type LaneRegistry = std::sync::Arc<Vec<std::sync::Arc<LaneState>>>;

/// The scenic area's civil time now, in minutes since 2000-01-01.
pub fn local_now(tz: &jiff::tz::TimeZone) -> LocalMinute {
    local_minute(jiff::Timestamp::now(), tz)
}

/// An instant in `tz`'s civil time, in minutes since 2000-01-01.
pub fn local_minute(at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> LocalMinute {
    let dt = at.to_zoned(tz.clone()).datetime();
    let epoch = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    let minutes = dt.duration_since(epoch).as_secs() / 60;
    minutes.max(0) as LocalMinute
}

/// What a field engineer's codes reach at a lane: enrollment by setup code
/// while the device is not enrolled, the health for a service code.
#[derive(Debug, Clone)]
pub struct FieldCodes {
    pub setup: crate::setup::Setup,
    pub health: crate::health::Slot,
}

/// Starts every lane of `config`; the tasks run until the set is dropped.
pub async fn start(
    config: &Config,
    db: Db,
    reads: &crate::reads::Reads,
    occupancy: &tokio::sync::watch::Receiver<gated_api::types::OccupancyView>,
    activity: &crate::update::Activity,
    voice: Option<&crate::voice::Voice>,
    codes: &FieldCodes,
) -> Result<(JoinSet<()>, Engine, LaneRegistry), LanesError> {
    let tz = config.time_zone();
    if db.writer().setting("id_hash_key")?.is_none() {
        warn!(
            "no ID-hash key provisioned: ID cards cannot be matched to tickets until the device is enrolled"
        );
    }
    let lanes = Engine::for_day(db, config.device_id.get_ref(), config.operating_day())?;

    // One task per gate device, shared by the lanes that use it.
    let mut gates: HashMap<String, GateHandle> = HashMap::new();
    for (name, g) in &config.devices.gates {
        let g = g.get_ref();
        let fail = |why| LanesError::Gate {
            name: name.clone(),
            why,
        };
        let handle = match (&g.modbus, &g.gpio) {
            (Some(addr), _) => {
                let address: ModbusAddress = addr.get_ref().parse().map_err(fail)?;
                let map = RegisterMap::load(g.map.get_ref()).map_err(fail)?;
                modbus::spawn(ModbusSettings {
                    poll: std::time::Duration::from_millis(g.poll_ms.max(1)),
                    passage_timeout: std::time::Duration::from_millis(g.passage_timeout_ms),
                    tailgate_window: std::time::Duration::from_millis(g.tailgate_window_ms),
                    ..ModbusSettings::new(address, g.unit, map)
                })
            }
            (None, Some(file)) => {
                let gpio = hal::gate::gpio::GpioConfig::load(file.get_ref()).map_err(fail)?;
                gpio.open(name).map_err(fail)?
            }
            (None, None) => return Err(fail("no gate backend configured".into())),
        };
        gates.insert(name.clone(), handle);
    }

    let mut tasks = JoinSet::new();
    let mut registry = Vec::new();
    for (name, lane) in &config.lanes {
        let lane = lane.get_ref();
        let gate = gates[lane.gate.get_ref()].clone();
        let (tx, rx) = mpsc::channel::<Presented>(16);
        let d = &config.devices;
        let mut sources = Vec::new();
        let exit_side = lane.exit_scanners.iter().map(|s| (s, true));
        for (s, exit) in lane.scanners.iter().map(|s| (s, false)).chain(exit_side) {
            let sc = d.scanners[s.get_ref()].get_ref();
            let Some(port) = sc.hal_port() else {
                continue;
            };
            let mut dev = hal::scanner::spawn(s.get_ref(), port);
            reads.watch(format!("scanner {}", s.get_ref()), dev.watch_state());
            let (tx, reads, device) = (tx.clone(), reads.clone(), s.get_ref().clone());
            sources.push(tokio::spawn(async move {
                while let Some(scan) = dev.next().await {
                    reads.send(crate::reads::code(&device, &scan.text));
                    let p = Presented {
                        medium: Medium::Code(scan.text),
                        kind: "qr",
                        exit,
                    };
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
            }));
        }
        if let Some(r) = &lane.id_reader {
            let rd = d.id_readers[r.get_ref()].get_ref();
            let baud = rd
                .baud
                .as_ref()
                .map_or(hal::idcard::DEFAULT_BAUD, |b| *b.get_ref());
            let mut dev = hal::idcard::spawn(r.get_ref(), rd.port.get_ref(), baud);
            reads.watch(format!("id-reader {}", r.get_ref()), dev.watch_state());
            let (tx, lanes, reads, device) = (
                tx.clone(),
                lanes.clone(),
                reads.clone(),
                r.get_ref().clone(),
            );
            sources.push(tokio::spawn(async move {
                while let Some(read) = dev.next().await {
                    reads.send(crate::reads::id_card(&device, &read.card.id_number));
                    // The number is hashed here and goes no further.
                    let Some(hash) = lanes.holder_hash(&read.card.id_number) else {
                        warn!("ID card read, but no ID-hash key is provisioned");
                        continue;
                    };
                    let p = Presented {
                        medium: Medium::Holder(hash),
                        kind: "id-card",
                        exit: false,
                    };
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
            }));
        }
        if let Some(r) = &lane.ic_reader {
            let rd = d.ic_readers[r.get_ref()].get_ref();
            let baud = rd.baud.as_ref().map_or(9600, |b| *b.get_ref());
            let mut dev = hal::iccard::spawn(r.get_ref(), rd.port.get_ref(), baud);
            reads.watch(format!("ic-reader {}", r.get_ref()), dev.watch_state());
            let (tx, reads, device) = (tx.clone(), reads.clone(), r.get_ref().clone());
            sources.push(tokio::spawn(async move {
                while let Some(ev) = dev.next().await {
                    match ev {
                        IcEvent::Present { uid, .. } => {
                            reads.send(crate::reads::ic_card(&device, &uid));
                            let p = Presented {
                                medium: Medium::Card(uid),
                                kind: "ic-card",
                                exit: false,
                            };
                            if tx.send(p).await.is_err() {
                                return;
                            }
                        }
                        IcEvent::Removed { reader, .. } => info!(reader, "card removed"),
                    }
                }
            }));
        }
        drop(tx);
        let display = lane.display.as_ref().map(|n| {
            let dev = d.displays[n.get_ref()].get_ref();
            hal::display::LineDisplay::new(
                dev.port.get_ref(),
                dev.baud.as_ref().map_or(9600, |b| *b.get_ref()),
            )
        });
        let state = std::sync::Arc::new(LaneState::new(name, lane, gate.clone()));
        registry.push(state.clone());
        // Passages the gate counts by itself (free mode) go to the central system too.
        let mut events = hal::gate::Gate::events(&gate);
        let (ev_lanes, ev_lane) = (lanes.clone(), name.clone());
        let (ev_group, ev_tz) = (lane.group.clone(), tz.clone());
        sources.push(tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let hal::gate::GateEvent::Passage { direction, count } = ev {
                    record_free(&ev_lanes, &ev_lane, &ev_group, &ev_tz, direction, count).await;
                }
            }
        }));
        if lane.free_exit {
            sources.push(tokio::spawn(free_exit(
                gate.clone(),
                state.clone(),
                lanes.clone(),
                lane.group.clone(),
                tz.clone(),
            )));
        }
        // Modbus controllers keep their counters across a restart of gated.
        let gate_ledger = config.devices.gates[lane.gate.get_ref()]
            .get_ref()
            .modbus
            .is_some()
            .then(|| lane.gate.get_ref().clone());
        let ctx = LaneCtx {
            gate_ledger,
            state,
            display,
            name: name.clone(),
            group: lane.group.clone(),
            direction: lane.direction,
            lanes: lanes.clone(),
            gate,
            tz: tz.clone(),
            occupancy: occupancy.clone(),
            notice: None,
            free_exit: lane.free_exit,
            activity: activity.clone(),
            voice: voice.cloned(),
            setup: codes.setup.clone(),
            health: codes.health.clone(),
            device_id: config.device_id.get_ref().clone(),
        };
        info!(lane = name, group = lane.group, "lane ready");
        tasks.spawn(async move {
            ctx.run(rx).await;
            for s in sources {
                s.abort();
            }
        });
    }
    Ok((tasks, lanes, std::sync::Arc::new(registry)))
}

/// A free-exit lane: the exit side is authorised again after every passage
/// (and every passage timeout), so anyone leaves without a ticket and every
/// person is counted, with the same ledger as the gate's free mode. Entries
/// stay intrusions. While the device or an operator forces another mode,
/// the gate's own mode rules (its free passages are counted as events).
async fn free_exit(
    gate: GateHandle,
    state: std::sync::Arc<LaneState>,
    lanes: Engine,
    group: String,
    tz: jiff::tz::TimeZone,
) {
    use hal::gate::{Direction, Gate, Outcome};
    info!(
        lane = state.name,
        "free exit: visitors leave without a ticket, counted"
    );
    loop {
        state.normal().await;
        let persons = match gate.open(Direction::Exit, 1).await {
            Outcome::Passed { persons } => persons,
            // Two at once through a free exit is no offence: both counted.
            Outcome::Alarm { persons, .. } => persons,
            Outcome::NotPassed => continue,
            Outcome::Fault { why } => {
                warn!(
                    lane = state.name,
                    "free exit: gate fault, trying again: {why}"
                );
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if persons == 0 {
            continue;
        }
        record_free(&lanes, &state.name, &group, &tz, Direction::Exit, persons).await;
    }
}

/// Keeps persons the gate let through without a ticket (free mode,
/// tailgaters, a free exit), now; an error is logged, the lane goes on.
async fn record_free(
    lanes: &Engine,
    lane: &str,
    group: &str,
    tz: &jiff::tz::TimeZone,
    direction: hal::gate::Direction,
    persons: u32,
) {
    let free = FreePassage {
        lane: lane.to_owned(),
        lane_group: group.to_owned(),
        direction,
        persons,
        at_ms: jiff::Timestamp::now().as_millisecond(),
        local_minute: local_now(tz),
        seq: 0,
    };
    if let Err(e) = lanes.blocking(move |l| l.record_free_passage(&free)).await {
        error!(lane, "could not record free passages: {e}");
    }
}

/// One read at one of the lane's devices.
struct Presented {
    medium: Medium,
    kind: &'static str,
    /// Read on the exit side of a two-way lane.
    exit: bool,
}

/// Shows a message on a lane's display; a broken display is reported and
/// never stops the lane.
async fn show(display: &mut Option<hal::display::LineDisplay>, lane: &str, zh: &str, en: &str) {
    if let Some(d) = display
        && let Err(e) = d.show(format!("{zh} {en}").trim()).await
    {
        warn!(lane, "display: {e}");
    }
}

struct LaneCtx {
    /// The gate's name, when its counters outlive gated.
    gate_ledger: Option<String>,
    state: std::sync::Arc<LaneState>,
    display: Option<hal::display::LineDisplay>,
    name: String,
    group: String,
    direction: LaneDirection,
    lanes: Engine,
    gate: GateHandle,
    tz: jiff::tz::TimeZone,
    /// The site's occupancy: its notice is shown between visitors.
    occupancy: tokio::sync::watch::Receiver<gated_api::types::OccupancyView>,
    /// The notice last shown.
    notice: Option<&'static crate::occupancy::TierNotice>,
    /// The exit is open for everyone: a ticket shown is waved through.
    free_exit: bool,
    /// Marks a passage under way (an update's reboot waits for it).
    activity: crate::update::Activity,
    voice: Option<crate::voice::Voice>,
    /// Enrollment by setup code while the device is not enrolled.
    setup: crate::setup::Setup,
    /// The device's health, shown for an engineer's service code.
    health: crate::health::Slot,
    device_id: String,
}

/// How long a lane waits for its link after a setup before it shows the health.
const HEALTH_AFTER_SETUP: std::time::Duration = std::time::Duration::from_secs(10);

/// What an unenrolled lane shows, and says, between scans.
const SETUP_WAITING: (&str, &str) = (
    "等待设置：请扫描设置码",
    "Waiting for setup: scan the setup code",
);

/// The health summary as one line of a lane display: the level, then what
/// is not green.
fn health_line(h: &crate::central::api::HealthReport) -> (String, String) {
    let bad: Vec<_> = h.items.iter().filter(|i| i.level != "green").collect();
    let level_zh = match h.level.as_str() {
        "green" => "正常",
        "amber" => "注意",
        _ => "故障",
    };
    let zh = std::iter::once(format!("设备{level_zh}"))
        .chain(bad.iter().map(|i| i.name_zh.clone()))
        .collect::<Vec<_>>()
        .join(" ");
    let en = if bad.is_empty() {
        format!("Health GREEN: all {} OK", h.items.len())
    } else {
        format!(
            "Health {}: {}",
            h.level.to_uppercase(),
            bad.iter()
                .map(|i| format!("{} {} ({})", i.level, i.subsystem, i.detail))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    (zh, en)
}

/// How long a decision stays on the display before the occupancy notice returns.
const NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(4);

impl LaneCtx {
    /// Tells the visitor; a broken display is reported and never stops the lane.
    async fn show(&mut self, zh: &str, en: &str) {
        show(&mut self.display, &self.name, zh, en).await;
    }

    /// Speaks, if the device has a voice; never waits.
    fn say(&self, p: crate::voice::Prompt) {
        if let Some(v) = &self.voice {
            v.say(p);
        }
    }

    /// Settles passages announced before a kill, before the next scan.
    async fn reconcile(&self) {
        let Some(gate_name) = &self.gate_ledger else {
            return;
        };
        for _ in 0..50 {
            // The unlock is taken back before the counter is read: a visitor
            // who had not walked yet cannot walk afterwards, uncounted.
            match hal::gate::Gate::withdraw_unlocks(&self.gate).await {
                Ok(status) => {
                    let gate_name = gate_name.clone();
                    let settled = self
                        .lanes
                        .blocking(move |l| l.reconcile(&gate_name, &status))
                        .await;
                    match settled {
                        Ok((0, 0)) => {}
                        Ok((recorded, dropped)) => info!(
                            lane = self.name,
                            recorded, dropped, "announced passages settled by the gate's counters"
                        ),
                        Err(e) => {
                            error!(lane = self.name, "could not settle announced passages: {e}")
                        }
                    }
                    return;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        warn!(
            lane = self.name,
            "gate unreachable: announced passages stay for the next start"
        );
    }

    /// Shows the occupancy notice at an entry lane when it changed, or
    /// `again` after a decision replaced it.
    async fn show_notice(&mut self, again: bool) {
        if self.direction == LaneDirection::Exit {
            return;
        }
        let view = self.occupancy.borrow_and_update().clone();
        let now = crate::occupancy::lane_notice(&view, &self.group);
        // Unchanged: shown again only to replace a decision, and only if non-empty.
        let repeat = again && now.is_some();
        if now == self.notice && !repeat {
            return;
        }
        use crate::occupancy::TierNotice;
        if now != self.notice {
            info!(lane = self.name, "display notice: {}", TierNotice::en(now));
            if let Some(n) = now {
                self.say(crate::voice::Prompt::Occupancy(n.prompt));
            }
        }
        self.notice = now;
        // Below the first tier the line goes blank again.
        self.show(TierNotice::zh(now), TierNotice::en(now)).await;
    }

    /// Not enrolled: a setup code enrolls the device; with no key to check
    /// tickets with, anything else is told that the lane waits for one.
    /// `Some`: the medium is the lane's to decide as usual.
    async fn provisioning(&mut self, medium: Medium) -> Option<Medium> {
        use crate::central::setup_code;
        use crate::voice::Prompt;
        let text = match medium {
            Medium::Code(t) if setup_code::claims(&t) => t,
            _ if !self.lanes.has_keys() => {
                self.show(SETUP_WAITING.0, SETUP_WAITING.1).await;
                self.say(Prompt::SetupWaiting);
                return None;
            }
            m => return Some(m),
        };
        self.show("正在设置…", "Setting up…").await;
        let by = format!("setup code at lane {}", self.name);
        match self.setup.enroll(&text, &by).await {
            Ok((target, e)) => {
                let site = target.site.map(|s| format!(" {s}")).unwrap_or_default();
                self.show(
                    &format!("设置完成：{}{site}", e.device_id),
                    &format!("Setup complete: {}", e.device_id),
                )
                .await;
                self.say(Prompt::SetupDone);
                self.setup.restart_if_needed(&e.device_id);
                // Then what the device found, unless gated starts again
                // under its new id (it shows its state after the restart).
                if !self.device_id.is_empty()
                    && let Some(sources) = self.health.get()
                {
                    crate::setup::Setup::settle(sources.status.clone(), HEALTH_AFTER_SETUP).await;
                    let (zh, en) = health_line(&sources.summary());
                    self.show(&zh, &en).await;
                }
            }
            Err(r) => {
                self.show(
                    &format!("设置失败：{}", r.zh),
                    &format!("Setup failed: {}", r.en),
                )
                .await;
                self.say(Prompt::SetupFailed);
            }
        }
        None
    }

    /// An engineer's service code: the display answers with the health.
    async fn service(&mut self, text: &str) {
        use crate::central::service_code;
        let now = jiff::Timestamp::now().as_millisecond();
        let lanes = self.lanes.clone();
        match service_code::verify(text, |id| lanes.signing_key(id), &self.device_id, now) {
            Ok(_) => {
                let Some(sources) = self.health.get() else {
                    self.show("设备正在启动", "Still starting").await;
                    return;
                };
                let (zh, en) = health_line(&sources.summary());
                info!(lane = self.name, "service code: showing the health: {en}");
                self.show(&zh, &en).await;
            }
            Err(e) => {
                warn!(lane = self.name, "service code refused: {e}");
                self.show("维护码无效", &format!("Service code refused: {e}"))
                    .await;
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Presented>) {
        self.reconcile().await;
        // Not enrolled, and no key to check a ticket with: a device never
        // enrolled (one cut short keeps its keys and checks tickets offline).
        if self.setup.waiting() && !self.lanes.has_keys() {
            self.show(SETUP_WAITING.0, SETUP_WAITING.1).await;
            self.say(crate::voice::Prompt::SetupWaiting);
        } else {
            self.show_notice(false).await;
        }
        let mut shown_at: Option<tokio::time::Instant> = None;
        loop {
            let back = async move {
                match shown_at {
                    Some(t) => tokio::time::sleep_until(t + NOTICE_AFTER).await,
                    None => std::future::pending().await,
                }
            };
            let presented = tokio::select! {
                p = rx.recv() => p,
                Ok(()) = self.occupancy.changed(), if shown_at.is_none() => {
                    self.show_notice(false).await;
                    continue;
                }
                () = back => {
                    shown_at = None;
                    self.show_notice(true).await;
                    continue;
                }
            };
            let Some(Presented { medium, kind, exit }) = presented else {
                break;
            };
            shown_at = Some(tokio::time::Instant::now());
            let medium = if self.setup.waiting() {
                match self.provisioning(medium).await {
                    Some(m) => m,
                    None => {
                        // The result stays until the next scan.
                        shown_at = None;
                        continue;
                    }
                }
            } else {
                medium
            };
            if let Medium::Code(t) = &medium
                && crate::central::service_code::claims(t)
            {
                let t = t.clone();
                self.service(&t).await;
                continue;
            }
            let at_ms = jiff::Timestamp::now().as_millisecond();
            let nonce = self.lanes.nonce(&self.name);
            let scan = Presentation {
                lane: &self.name,
                lane_group: &self.group,
                medium: &medium,
                nonce: &nonce,
                now: local_now(&self.tz),
                at_ms,
                gate_ledger: self.gate_ledger.as_deref(),
            };
            let lane = LaneNow {
                mode: self.state.mode(),
                exit_lane: self.direction == LaneDirection::Exit,
                peak: self.lanes.relaxed(&self.group),
            };
            let route = if self.free_exit && lane.mode == GateMode::Normal {
                Route::Free
            } else {
                admission::route(lane, exit)
            };
            let mut told = false;
            let result = match route {
                Route::Refuse(reason) => Ok(Admission::Refused(reason)),
                Route::Free => {
                    self.show("请通行", "Please pass").await;
                    self.say(Prompt::Pass);
                    self.state
                        .remember(decision(at_ms, kind, "free", None, 0, None));
                    info!(
                        lane = self.name,
                        medium = kind,
                        "free passage: waved through"
                    );
                    continue;
                }
                // A reboot for an update waits for the visitor to pass.
                Route::Enter | Route::Leave => {
                    let _busy = self.activity.begin();
                    let entry = matches!(route, Route::Enter);
                    let dir = if entry {
                        hal::gate::Direction::Entry
                    } else {
                        hal::gate::Direction::Exit
                    };
                    let mut unlocks = self.gate.unlocks();
                    let before = unlocks.borrow_and_update()[dir.index()];
                    let (lanes, gate) = (&self.lanes, &self.gate);
                    let transaction = async move {
                        if entry {
                            lanes.admit(gate, &scan).await
                        } else {
                            lanes.let_out(gate, &scan).await
                        }
                    };
                    tokio::pin!(transaction);
                    // Told to walk once the gate is unlocked, while it waits
                    // for the visitor: the gate first, then the words.
                    loop {
                        tokio::select! {
                            r = &mut transaction => break r,
                            Ok(()) = unlocks.changed(), if !told => {
                                if unlocks.borrow_and_update()[dir.index()] != before {
                                    told = true;
                                    show(&mut self.display, &self.name, "请通行", "Please pass").await;
                                    if let Some(v) = &self.voice {
                                        v.say(Prompt::Pass);
                                    }
                                }
                            }
                        }
                    }
                }
            };
            let (outcome, ticket, persons, reason) = match &result {
                Ok(Admission::Refused(r)) => ("refused", None, 0, Some(r.code())),
                Ok(Admission::Admitted { ticket_id, persons }) => {
                    ("admitted", Some(*ticket_id), *persons, None)
                }
                Ok(Admission::NotPassed { ticket_id }) => ("not_passed", Some(*ticket_id), 0, None),
                Ok(Admission::Alarm {
                    ticket_id, persons, ..
                }) => ("alarm", Some(*ticket_id), *persons, None),
                Ok(Admission::GateFault { ticket_id, .. }) => {
                    ("gate_fault", Some(*ticket_id), 0, None)
                }
                Err(_) => ("error", None, 0, None),
            };
            self.state
                .remember(decision(at_ms, kind, outcome, ticket, persons, reason));
            let (zh, en) = match &result {
                Ok(Admission::Refused(reason)) => reason.message(),
                Ok(Admission::Admitted { .. }) => ("请通行", "Please pass"),
                Ok(Admission::NotPassed { .. }) => {
                    ("未通行，票仍有效", "Not passed: your ticket is still valid")
                }
                Ok(Admission::Alarm { .. }) => ("请一人一票通行", "One person per ticket, please"),
                Ok(Admission::GateFault { .. }) | Err(_) => {
                    ("暂停服务，请找工作人员", "Out of service: please ask staff")
                }
            };
            // "Please pass" is on the display since the unlock.
            if !(told && matches!(result, Ok(Admission::Admitted { .. }))) {
                self.show(zh, en).await;
            }
            match &result {
                Ok(Admission::Refused(reason)) => self.say(Prompt::Refused(*reason)),
                // Said at the unlock, unless the gate never showed it.
                Ok(Admission::Admitted { .. }) if !told => self.say(Prompt::Pass),
                Ok(Admission::Admitted { .. }) => {}
                Ok(Admission::NotPassed { .. }) => self.say(Prompt::NotPassed),
                Ok(Admission::Alarm { .. }) => self.say(Prompt::Tailgating),
                Ok(Admission::GateFault { .. }) | Err(_) => self.say(Prompt::OutOfService),
            }
            match result {
                Ok(Admission::Refused(reason)) => {
                    let (zh, en) = reason.message();
                    info!(
                        lane = self.name,
                        medium = kind,
                        reason = reason.code(),
                        "refused: {en} / {zh}"
                    );
                }
                Ok(Admission::Admitted { ticket_id, persons }) => {
                    info!(
                        lane = self.name,
                        medium = kind,
                        ticket = ticket_id,
                        persons,
                        nonce,
                        "admitted"
                    );
                }
                Ok(Admission::NotPassed { ticket_id }) => {
                    info!(
                        lane = self.name,
                        ticket = ticket_id,
                        "not passed: the ticket stays valid"
                    );
                }
                Ok(Admission::Alarm {
                    ticket_id,
                    kind: alarm,
                    persons,
                }) => {
                    warn!(lane = self.name, ticket = ticket_id, persons, alarm = ?alarm, nonce, "alarm");
                }
                Ok(Admission::GateFault { ticket_id, why }) => {
                    error!(
                        lane = self.name,
                        ticket = ticket_id,
                        "gate fault, nothing recorded: {why}"
                    );
                }
                Err(e) => error!(lane = self.name, "could not record the passage: {e}"),
            }
        }
    }
}

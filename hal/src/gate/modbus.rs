//! Gates behind a Modbus controller (RTU on RS485, or TCP through a gateway).
//!
//! One task owns the Modbus connection: it polls the counters and inputs,
//! runs the authorisations, and rebuilds the connection after any timeout or
//! transport error (tokio-modbus has no response timeout of its own, and
//! after one the framing may be out of step). Passages are counted from the
//! controller's counters, wrap-safe; nothing else ever counts as a passage.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::Slave;
use tracing::{info, warn};

use super::map::{Format, ModeControl, Permission, Point, RegisterMap, Table, counter_delta};
use super::{
    AlarmKind, Cmd, Direction, GateError, GateEvent, GateHandle, GateMode, GateStatus,
    ModbusAddress, Outcome,
};
use crate::AbortOnDrop;
use crate::supervise::{Backoff, DeviceState, FAILED_AFTER};

/// Counter jumps larger than this between two reads mean the controller was
/// reset (or replaced), not that this many people walked through.
pub const MAX_PLAUSIBLE_DELTA: u32 = 1000;

#[derive(Debug, Clone)]
pub struct ModbusSettings {
    pub address: ModbusAddress,
    pub unit: u8,
    pub map: RegisterMap,
    /// Bound on every Modbus call.
    pub call_timeout: Duration,
    /// How often counters and inputs are read.
    pub poll: Duration,
    /// How long an authorisation waits for its passages.
    pub passage_timeout: Duration,
    /// After the last authorised passage, how long a further passage the same
    /// way still counts as tailgating on this authorisation.
    pub tailgate_window: Duration,
    pub backoff: Backoff,
}

impl ModbusSettings {
    pub fn new(address: ModbusAddress, unit: u8, map: RegisterMap) -> Self {
        ModbusSettings {
            address,
            unit,
            map,
            call_timeout: Duration::from_millis(300),
            poll: Duration::from_millis(50),
            passage_timeout: Duration::from_secs(10),
            tailgate_window: Duration::from_millis(300),
            backoff: Backoff::default(),
        }
    }
}

/// Starts the connection task (inside a tokio runtime).
pub fn spawn(settings: ModbusSettings) -> GateHandle {
    let (tx, rx) = mpsc::channel(16);
    let (events, _) = broadcast::channel(64);
    let (state_tx, state) = watch::channel(DeviceState::Connecting);
    let (unlocked, unlocks) = watch::channel([0; 2]);
    let task = tokio::spawn(run(settings, rx, events.clone(), state_tx, unlocked));
    GateHandle::new(tx, events, state, unlocks, vec![AbortOnDrop(task)])
}

/// An authorisation under way.
struct Auth {
    persons: u32,
    passed: u32,
    /// Pulse maps: passages granted so far (one pulse each).
    granted: u32,
    alarm: Option<AlarmKind>,
    deadline: Instant,
    /// Set when everyone passed: the outcome waits out the tailgate window.
    complete_at: Option<Instant>,
    reply: oneshot::Sender<Outcome>,
}

/// What the task remembers across reconnections.
struct Gatekeeper {
    s: ModbusSettings,
    device: String,
    events: broadcast::Sender<GateEvent>,
    unlocked: watch::Sender<[u64; 2]>,
    auths: [Option<Auth>; 2],
    counters: Option<[u32; 2]>,
    mode: Option<GateMode>,
    fire: Option<bool>,
    alarm: Option<bool>,
    error: Option<u32>,
}

/// The connection: every call bounded and its errors named.
struct Link {
    ctx: Context,
    device: String,
    timeout: Duration,
}

impl Link {
    async fn connect(s: &ModbusSettings, device: &str) -> Result<Link, String> {
        let slave = Slave(s.unit);
        let ctx = match &s.address {
            ModbusAddress::Tcp(hostport) => {
                let stream = tokio::time::timeout(s.call_timeout * 3, TcpStream::connect(hostport))
                    .await
                    .map_err(|_| format!("{device}: connect timed out"))?
                    .map_err(|e| format!("{device}: cannot connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                tokio_modbus::client::tcp::attach_slave(stream, slave)
            }
            ModbusAddress::Rtu { port, baud } => {
                let serial = crate::serial::open(port, *baud)?;
                tokio_modbus::client::rtu::attach_slave(serial, slave)
            }
        };
        Ok(Link {
            ctx,
            device: device.to_owned(),
            timeout: s.call_timeout,
        })
    }

    async fn read(&mut self, p: Point) -> Result<u32, GateError> {
        let n = p.format.registers();
        let what = format!("{:?} {:#06x}", p.table, p.address);
        let words: Vec<u16> = match p.table {
            Table::Holding => {
                let call = self.ctx.read_holding_registers(p.address, n);
                bounded(&self.device, self.timeout, what, call).await?
            }
            Table::Input => {
                let call = self.ctx.read_input_registers(p.address, n);
                bounded(&self.device, self.timeout, what, call).await?
            }
            Table::Coil => {
                let call = self.ctx.read_coils(p.address, 1);
                let bits: Vec<bool> = bounded(&self.device, self.timeout, what, call).await?;
                vec![bits.first().copied().unwrap_or(false) as u16]
            }
            Table::Discrete => {
                let call = self.ctx.read_discrete_inputs(p.address, 1);
                let bits: Vec<bool> = bounded(&self.device, self.timeout, what, call).await?;
                vec![bits.first().copied().unwrap_or(false) as u16]
            }
        };
        if words.len() < n as usize {
            return Err(GateError::Io {
                device: self.device.clone(),
                why: format!("short answer reading {:#06x}", p.address),
            });
        }
        Ok(p.format.decode(&words))
    }

    async fn write(&mut self, p: Point, value: u16) -> Result<(), GateError> {
        let what = format!("{:?} {:#06x}", p.table, p.address);
        match p.table {
            // FC16 even for one register, as the LOT SDK does.
            Table::Holding => {
                let values = [value];
                let call = self.ctx.write_multiple_registers(p.address, &values);
                bounded(&self.device, self.timeout, what, call).await
            }
            Table::Coil => {
                let call = self.ctx.write_single_coil(p.address, value != 0);
                bounded(&self.device, self.timeout, what, call).await
            }
            _ => Err(GateError::Unsupported {
                device: self.device.clone(),
                why: format!("{what} is read-only"),
            }),
        }
    }
}

/// Runs one Modbus call with a deadline, naming what failed.
async fn bounded<T>(
    device: &str,
    timeout: Duration,
    what: String,
    call: impl std::future::Future<Output = tokio_modbus::Result<T>>,
) -> Result<T, GateError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(GateError::Timeout {
            device: device.to_owned(),
            ms: timeout.as_millis(),
        }),
        Ok(Err(e)) => Err(GateError::Io {
            device: device.to_owned(),
            why: format!("{what}: {e}"),
        }),
        Ok(Ok(Err(code))) => Err(GateError::Exception {
            device: device.to_owned(),
            code: format!("{code:?}"),
            what,
        }),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

async fn run(
    s: ModbusSettings,
    mut rx: mpsc::Receiver<Cmd>,
    events: broadcast::Sender<GateEvent>,
    state: watch::Sender<DeviceState>,
    unlocked: watch::Sender<[u64; 2]>,
) {
    let device = format!("gate {} unit {}", s.address, s.unit);
    let mut g = Gatekeeper {
        device: device.clone(),
        s,
        events,
        unlocked,
        auths: [None, None],
        counters: None,
        mode: None,
        fire: None,
        alarm: None,
        error: None,
    };
    let mut attempt = 0u32;
    loop {
        let why = match Link::connect(&g.s, &device).await {
            Ok(mut link) => match g.poll(&mut link).await {
                Ok(()) => {
                    attempt = 0;
                    info!(device, "connected");
                    state.send_replace(DeviceState::Connected);
                    match g.serve(&mut link, &mut rx).await {
                        None => return, // handle dropped
                        Some(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        attempt += 1;
        warn!(device, attempt, "{why}");
        state.send_replace(if attempt >= FAILED_AFTER {
            DeviceState::Failed { error: why.clone() }
        } else {
            DeviceState::Reconnecting {
                attempt,
                error: why.clone(),
            }
        });
        // Commands keep being answered (with the reason) while disconnected.
        let wait = tokio::time::sleep(g.s.backoff.delay(attempt));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(cmd) => g.refuse(cmd, &why),
                },
            }
            g.expire_unconnected(&why);
        }
        g.expire_unconnected(&why);
    }
}

impl Gatekeeper {
    fn emit(&self, e: GateEvent) {
        let _ = self.events.send(e);
    }

    fn not_connected(&self, why: &str) -> GateError {
        GateError::NotConnected {
            device: self.device.clone(),
            why: why.to_owned(),
        }
    }

    fn refuse(&mut self, cmd: Cmd, why: &str) {
        match cmd {
            Cmd::Open { reply, .. } => {
                let _ = reply.send(Outcome::Fault {
                    why: self.not_connected(why).to_string(),
                });
            }
            Cmd::SetMode { reply, .. } => {
                let _ = reply.send(Err(self.not_connected(why)));
            }
            Cmd::Status { reply } | Cmd::WithdrawUnlocks { reply } => {
                let _ = reply.send(Err(self.not_connected(why)));
            }
        }
    }

    /// Authorisations whose time ran out while the gate was unreachable: what
    /// happened at the gate is unknown, so they end in a fault, not a guess.
    fn expire_unconnected(&mut self, why: &str) {
        let now = Instant::now();
        for slot in &mut self.auths {
            if slot.as_ref().is_some_and(|a| a.deadline <= now)
                && let Some(a) = slot.take()
            {
                let _ = a.reply.send(Outcome::Fault {
                    why: format!(
                        "{}: lost during the passage ({why}); passage unknown",
                        self.device
                    ),
                });
            }
        }
    }

    /// Runs commands and polls until the link fails (Some(error)) or the
    /// handle is dropped (None).
    async fn serve(&mut self, link: &mut Link, rx: &mut mpsc::Receiver<Cmd>) -> Option<GateError> {
        let mut tick = tokio::time::interval(self.s.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return None,
                    Some(cmd) => self.command(link, cmd).await,
                },
                _ = tick.tick() => self.poll(link).await,
            };
            match result {
                Ok(()) => {}
                // An exception is the controller's answer: the link is fine.
                Err(e @ GateError::Exception { .. }) => {
                    warn!(device = self.device, "{e}");
                    self.emit(GateEvent::Fault { why: e.to_string() });
                }
                Err(e) => return Some(e),
            }
        }
    }

    async fn command(&mut self, link: &mut Link, cmd: Cmd) -> Result<(), GateError> {
        match cmd {
            Cmd::Status { reply } => {
                let r = self.read_status(link).await;
                let err = r.as_ref().err().cloned();
                let _ = reply.send(r);
                err.map_or(Ok(()), Err)
            }
            Cmd::WithdrawUnlocks { reply } => {
                let r = self.withdraw_unlocks(link).await;
                let err = r.as_ref().err().cloned();
                let _ = reply.send(r);
                err.map_or(Ok(()), Err)
            }
            Cmd::SetMode { mode, reply } => {
                let r = self.write_mode(link, mode).await;
                if r.is_ok() {
                    self.mode = Some(mode);
                }
                let err = r.as_ref().err().cloned();
                let _ = reply.send(r);
                err.map_or(Ok(()), Err)
            }
            Cmd::Open {
                dir,
                persons,
                reply,
            } => {
                if persons == 0 {
                    let _ = reply.send(Outcome::Fault {
                        why: "an authorisation is for at least 1 person".into(),
                    });
                    return Ok(());
                }
                if self.auths[dir.index()].is_some() {
                    let _ = reply.send(Outcome::Fault {
                        why: format!("{}: {dir:?} passage already under way", self.device),
                    });
                    return Ok(());
                }
                let grant = match self.s.map.permission {
                    Permission::Count { max, .. } => persons.min(max as u32) as u16,
                    Permission::Pulse => 1,
                };
                if let Err(e) = link.write(self.permission_point(dir), grant).await {
                    let _ = reply.send(Outcome::Fault { why: e.to_string() });
                    return Err(e);
                }
                self.auths[dir.index()] = Some(Auth {
                    persons,
                    passed: 0,
                    granted: grant as u32,
                    alarm: None,
                    deadline: Instant::now() + self.s.passage_timeout,
                    complete_at: None,
                    reply,
                });
                self.unlocked.send_modify(|n| n[dir.index()] += 1);
                Ok(())
            }
        }
    }

    /// Closes the permission points no authorisation of ours is using: a
    /// controller keeps an unlock it was given until someone walks (or its
    /// own timeout), also across a restart of gated. Then the status.
    async fn withdraw_unlocks(&mut self, link: &mut Link) -> Result<GateStatus, GateError> {
        for dir in [Direction::Entry, Direction::Exit] {
            if self.auths[dir.index()].is_none() {
                link.write(self.permission_point(dir), self.closed_value())
                    .await?;
            }
        }
        self.read_status(link).await
    }

    fn permission_point(&self, dir: Direction) -> Point {
        match dir {
            Direction::Entry => self.s.map.entry_permission,
            Direction::Exit => self.s.map.exit_permission,
        }
    }

    fn closed_value(&self) -> u16 {
        match self.s.map.permission {
            Permission::Count { closed, .. } => closed,
            Permission::Pulse => 0,
        }
    }

    async fn write_mode(&mut self, link: &mut Link, mode: GateMode) -> Result<(), GateError> {
        match self.s.map.mode {
            Some(ModeControl::Register {
                point,
                normal,
                locked,
                free,
            }) => {
                let v = match mode {
                    GateMode::Normal => normal,
                    GateMode::Locked => locked,
                    GateMode::Free => free,
                };
                link.write(point, v).await
            }
            Some(ModeControl::Coils { free, locked }) => {
                link.write(free, (mode == GateMode::Free) as u16).await?;
                link.write(locked, (mode == GateMode::Locked) as u16).await
            }
            None => Err(GateError::Unsupported {
                device: self.device.clone(),
                why: format!("register map \"{}\" has no mode control", self.s.map.name),
            }),
        }
    }

    async fn read_opt(link: &mut Link, p: Option<Point>) -> Result<Option<u32>, GateError> {
        match p {
            Some(p) => link.read(p).await.map(Some),
            None => Ok(None),
        }
    }

    async fn read_status(&mut self, link: &mut Link) -> Result<GateStatus, GateError> {
        let m = self.s.map.clone();
        let entry_counter = link.read(m.entry_counter).await?;
        let exit_counter = link.read(m.exit_counter).await?;
        let mode = match m.mode {
            Some(ModeControl::Register {
                point,
                normal,
                locked,
                free,
            }) => {
                let v = link.read(point).await? as u16;
                Some(if v == free {
                    GateMode::Free
                } else if v == locked {
                    GateMode::Locked
                } else {
                    let _ = normal;
                    GateMode::Normal
                })
            }
            Some(ModeControl::Coils { free, locked }) => {
                let (f, l) = (link.read(free).await?, link.read(locked).await?);
                Some(if f != 0 {
                    GateMode::Free
                } else if l != 0 {
                    GateMode::Locked
                } else {
                    GateMode::Normal
                })
            }
            None => None,
        };
        Ok(GateStatus {
            mode,
            entry_counter,
            exit_counter,
            entry_occupied: Self::read_opt(link, m.entry_occupied)
                .await?
                .map(|v| v != 0),
            exit_occupied: Self::read_opt(link, m.exit_occupied).await?.map(|v| v != 0),
            error: Self::read_opt(link, m.error).await?,
            fire: Self::read_opt(link, m.fire).await?.map(|v| v != 0),
            alarm: match m.alarm {
                Some(a) => Some(
                    link.read(Point {
                        table: a.table,
                        address: a.address,
                        format: Format::U16,
                    })
                    .await?
                        != 0,
                ),
                None => None,
            },
        })
    }

    /// Reads counters and inputs, attributes passages, settles authorisations.
    async fn poll(&mut self, link: &mut Link) -> Result<(), GateError> {
        let m = self.s.map.clone();
        let now = [
            link.read(m.entry_counter).await?,
            link.read(m.exit_counter).await?,
        ];
        let bits = [m.entry_counter.format.bits(), m.exit_counter.format.bits()];
        let mut deltas = [0u32; 2];
        if let Some(old) = self.counters {
            for i in 0..2 {
                deltas[i] = counter_delta(old[i], now[i], bits[i]);
            }
            if deltas.iter().any(|&d| d > MAX_PLAUSIBLE_DELTA) {
                let why = format!(
                    "{}: counters jumped from {old:?} to {now:?}: controller reset?",
                    self.device
                );
                warn!("{why}");
                self.emit(GateEvent::Fault { why });
                deltas = [0, 0];
            }
        }
        self.counters = Some(now);

        if let Some(a) = m.alarm {
            let active = link
                .read(Point {
                    table: a.table,
                    address: a.address,
                    format: Format::U16,
                })
                .await?
                != 0;
            if active && self.alarm != Some(true) {
                self.emit(GateEvent::Alarm { kind: a.kind });
                for auth in self.auths.iter_mut().flatten() {
                    auth.alarm.get_or_insert(a.kind);
                }
            }
            self.alarm = Some(active);
        }
        if let Some(p) = m.fire {
            let active = link.read(p).await? != 0;
            if self.fire != Some(active) {
                if self.fire.is_some() || active {
                    self.emit(GateEvent::Fire { active });
                }
                self.fire = Some(active);
            }
        }
        if let Some(p) = m.error {
            let code = link.read(p).await?;
            // A new non-zero code is reported once.
            if code != 0 && self.error != Some(code) {
                self.emit(GateEvent::Fault {
                    why: format!("{}: controller error code {code}", self.device),
                });
            }
            self.error = Some(code);
        }

        for dir in [Direction::Entry, Direction::Exit] {
            let k = deltas[dir.index()];
            if k == 0 {
                continue;
            }
            match &mut self.auths[dir.index()] {
                Some(auth) => {
                    let room = auth.persons - auth.passed;
                    let mine = k.min(room);
                    auth.passed += mine;
                    if k > mine {
                        auth.alarm = Some(AlarmKind::Tailgating);
                        self.emit(GateEvent::Alarm {
                            kind: AlarmKind::Tailgating,
                        });
                        // Whoever slipped through is inside all the same.
                        self.emit(GateEvent::Passage {
                            direction: dir,
                            count: k - mine,
                        });
                    }
                }
                None if self.mode == Some(GateMode::Free) => {
                    self.emit(GateEvent::Passage {
                        direction: dir,
                        count: k,
                    });
                }
                None => {
                    // Nobody was authorised this way: someone pushed through.
                    let kind = if self.auths[dir.other().index()].is_some() {
                        AlarmKind::Reverse
                    } else {
                        AlarmKind::Intrusion
                    };
                    if let Some(other) = &mut self.auths[dir.other().index()] {
                        other.alarm.get_or_insert(kind);
                    }
                    self.emit(GateEvent::Alarm { kind });
                }
            }
        }
        self.settle(link).await
    }

    async fn settle(&mut self, link: &mut Link) -> Result<(), GateError> {
        let now = Instant::now();
        for dir in [Direction::Entry, Direction::Exit] {
            let window = self.s.tailgate_window;
            let Some(auth) = &mut self.auths[dir.index()] else {
                continue;
            };
            let done = auth.passed >= auth.persons;
            if done && auth.complete_at.is_none() {
                auth.complete_at = Some(now + window);
            }
            if auth.complete_at.is_some_and(|t| t > now) {
                continue;
            }
            let expired = auth.deadline <= now;
            if !done && !expired {
                // Pulse maps: the next person's pulse once the last one passed.
                if auth.passed >= auth.granted {
                    let p = self.permission_point(dir);
                    link.write(p, 1).await?;
                    if let Some(a) = &mut self.auths[dir.index()] {
                        a.granted += 1;
                    }
                }
                continue;
            }
            if !done {
                // Close what is left of the authorisation, then count once more:
                // someone may have passed between the last read and the close.
                let closed = self.closed_value();
                link.write(self.permission_point(dir), closed).await?;
                let p = match dir {
                    Direction::Entry => self.s.map.entry_counter,
                    Direction::Exit => self.s.map.exit_counter,
                };
                let c = link.read(p).await?;
                if let Some(counters) = &mut self.counters {
                    let late = counter_delta(counters[dir.index()], c, p.format.bits());
                    counters[dir.index()] = c;
                    if let Some(a) = &mut self.auths[dir.index()] {
                        a.passed = (a.passed + late).min(a.persons);
                    }
                }
            }
            let auth = self.auths[dir.index()].take().expect("checked above");
            let outcome = match (auth.alarm, auth.passed) {
                (Some(kind), persons) => Outcome::Alarm { kind, persons },
                (None, 0) => Outcome::NotPassed,
                (None, persons) => Outcome::Passed { persons },
            };
            let _ = auth.reply.send(outcome);
        }
        Ok(())
    }
}

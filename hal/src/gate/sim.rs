//! Simulated gates: a model of a three-roller turnstile or a wing gate, with
//! scripted visitors, served as a Modbus controller over TCP or RTU (on a
//! PTY) with any register map, and wired to simulated GPIO lines.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::Service;

use super::map::{Format, ModeControl, Permission, Point, RegisterMap, Table};
use super::{Direction, GateMode};
use crate::pty::Pty;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    /// Arms unlock for one rotation per passage and relock; a second person
    /// on one authorisation is physically stopped.
    Turnstile,
    /// Wings open for the passage; two people can slip through on one
    /// authorisation (the sensors count both), and the wings open in fire mode.
    WingGate,
}

/// The gate's mechanics and sensors.
#[derive(Debug)]
pub struct Model {
    pub kind: GateKind,
    /// Passages allowed per direction (`u16::MAX` = free), or 0/1 for pulse maps.
    perm: [u16; 2],
    counters: [u32; 2],
    mode: GateMode,
    fire: bool,
    alarm: bool,
    error: u16,
    /// Visitors walk through the moment a passage is authorised.
    auto_walk: bool,
    /// Visitors walk at a random delay up to this after an authorisation.
    hesitation: Option<(Duration, u64)>,
    /// Visitors authorised and not yet walking: (direction, delay).
    waiting: Vec<(Direction, Duration)>,
    free_value: u16,
}

impl Model {
    fn allowed(&self, dir: Direction) -> bool {
        if self.fire || self.mode == GateMode::Free {
            return true;
        }
        self.mode != GateMode::Locked && self.perm[dir.index()] != 0
    }

    fn consume(&mut self, dir: Direction) {
        let p = &mut self.perm[dir.index()];
        if *p != self.free_value && *p > 0 {
            *p -= 1;
        }
    }

    fn pass(&mut self, dir: Direction, n: u32) {
        let c = &mut self.counters[dir.index()];
        *c = c.wrapping_add(n);
    }

    /// The first visitor of an authorisation, for auto-walk.
    fn on_permission(&mut self, dir: Direction) {
        let granted = self.perm[dir.index()];
        if let Some((max, rng)) = &mut self.hesitation
            && granted != self.free_value
        {
            for _ in 0..granted {
                // A small LCG: the same delays for the same seed.
                *rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let ms = (*rng >> 33) % (max.as_millis() as u64 + 1);
                self.waiting.push((dir, Duration::from_millis(ms)));
            }
            return;
        }
        if self.auto_walk {
            while self.perm[dir.index()] != 0 && self.perm[dir.index()] != self.free_value {
                self.consume(dir);
                self.pass(dir, 1);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Faults {
    silent: bool,
    exception: Option<ExceptionCode>,
    delay: Duration,
}

#[derive(Debug)]
struct Shared {
    model: Mutex<Model>,
    faults: Mutex<Faults>,
    /// Bumped on every request answered, reads too (tests wait on it).
    writes: watch::Sender<u64>,
    /// Hesitant visitors on their way (see `set_hesitant_visitors`).
    walking: watch::Sender<usize>,
    map: RegisterMap,
    unit: u8,
}

/// A simulated gate controller. Clone the handle freely.
#[derive(Debug, Clone)]
pub struct SimGate {
    shared: Arc<Shared>,
}

impl SimGate {
    pub fn new(kind: GateKind, map: RegisterMap, unit: u8) -> Self {
        let free_value = match map.permission {
            Permission::Count { free, .. } => free,
            Permission::Pulse => u16::MAX,
        };
        SimGate {
            shared: Arc::new(Shared {
                model: Mutex::new(Model {
                    kind,
                    perm: [0, 0],
                    counters: [0, 0],
                    mode: GateMode::Normal,
                    fire: false,
                    alarm: false,
                    error: 0,
                    auto_walk: false,
                    hesitation: None,
                    waiting: Vec::new(),
                    free_value,
                }),
                faults: Mutex::default(),
                writes: watch::Sender::new(0),
                walking: watch::Sender::new(0),
                map,
                unit,
            }),
        }
    }

    fn model<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.shared.model.lock().expect("sim model"))
    }

    fn faults<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(&mut self.shared.faults.lock().expect("sim faults"))
    }

    // --- visitors -----------------------------------------------------------

    /// A visitor walks through in `dir`; true if the gate let them.
    pub fn walk(&self, dir: Direction) -> bool {
        self.model(|m| {
            if !m.allowed(dir) {
                return false;
            }
            m.consume(dir);
            m.pass(dir, 1);
            true
        })
    }

    /// Two visitors try to pass on one authorisation; returns how many did.
    pub fn tailgate(&self, dir: Direction) -> u32 {
        self.model(|m| {
            if !m.allowed(dir) {
                return 0;
            }
            m.consume(dir);
            match m.kind {
                GateKind::WingGate => {
                    m.pass(dir, 2);
                    2
                }
                GateKind::Turnstile => {
                    m.pass(dir, 1);
                    // The arms relock after one rotation: the second person
                    // needs a passage of their own.
                    if m.allowed(dir) {
                        m.consume(dir);
                        m.pass(dir, 1);
                        2
                    } else {
                        1
                    }
                }
            }
        })
    }

    /// A visitor pushes through against `dir`'s authorisation, going the
    /// other way; true if they got through.
    pub fn push_wrong_way(&self, authorised: Direction) -> bool {
        let wrong = authorised.other();
        self.model(|m| match m.kind {
            // Locked arms do not turn the other way.
            GateKind::Turnstile => false,
            // Open wings are open both ways: the sensors count a reverse passage.
            GateKind::WingGate if m.allowed(authorised) || m.allowed(wrong) => {
                m.pass(wrong, 1);
                true
            }
            GateKind::WingGate => false,
        })
    }

    /// Someone climbs over or the lane is blocked: the alarm input goes active.
    pub fn set_alarm(&self, active: bool) {
        self.model(|m| m.alarm = active);
    }

    pub fn set_fire(&self, active: bool) {
        self.model(|m| m.fire = active);
    }

    pub fn set_error(&self, code: u16) {
        self.model(|m| m.error = code);
    }

    pub fn set_counters(&self, entry: u32, exit: u32) {
        self.model(|m| m.counters = [entry, exit]);
    }

    pub fn set_auto_walk(&self, on: bool) {
        self.model(|m| m.auto_walk = on);
    }

    /// Visitors as in the field: each one authorised walks once, after a
    /// random delay up to `max` (from `seed`), whatever happened to gated
    /// meanwhile; one whose unlock was taken back finds the gate shut and
    /// leaves. `None`: they walk only when told (or with auto-walk).
    pub fn set_hesitant_visitors(&self, max: Option<Duration>, seed: u64) {
        self.model(|m| m.hesitation = max.map(|d| (d, seed)));
    }

    /// Waits until every hesitant visitor has walked or left.
    pub async fn visitors_gone(&self) {
        let mut rx = self.shared.walking.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Starts the visitors an authorisation just let loose.
    fn send_visitors(&self) {
        for (dir, delay) in self.model(|m| std::mem::take(&mut m.waiting)) {
            self.shared.walking.send_modify(|n| *n += 1);
            let sim = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                sim.walk(dir);
                sim.shared.walking.send_modify(|n| *n -= 1);
            });
        }
    }

    pub fn counters(&self) -> [u32; 2] {
        self.model(|m| m.counters)
    }

    /// Requests answered so far (reads and writes): a test counts a
    /// backend's polls with it.
    pub fn answered(&self) -> u64 {
        *self.shared.writes.borrow()
    }

    pub fn permission(&self, dir: Direction) -> u16 {
        self.model(|m| m.perm[dir.index()])
    }

    pub fn mode(&self) -> GateMode {
        self.model(|m| m.mode)
    }

    /// Whether the wings/arms let people through freely now (fire or free mode).
    pub fn is_open(&self) -> bool {
        self.model(|m| m.fire || m.mode == GateMode::Free)
    }

    /// Waits until the client has written something `f` accepts.
    pub async fn wait_until(&self, f: impl Fn(&SimGate) -> bool) {
        let mut rx = self.shared.writes.subscribe();
        loop {
            if f(self) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    // --- faults --------------------------------------------------------------

    /// A silent controller answers nothing (unplugged bus, wrong unit id).
    pub fn set_silent(&self, silent: bool) {
        self.faults(|f| f.silent = silent);
    }

    /// The next request is answered with this exception.
    pub fn inject_exception(&self, code: ExceptionCode) {
        self.faults(|f| f.exception = Some(code));
    }

    pub fn set_delay(&self, delay: Duration) {
        self.faults(|f| f.delay = delay);
    }

    // --- serving ---------------------------------------------------------------

    /// Serves Modbus TCP on `addr` (port 0 picks one); returns the bound address.
    pub async fn serve_tcp(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, TcpServer)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let sim = self.clone();
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _addr| {
                let sim = sim.clone();
                async move { Ok(Some((ModbusService { sim }, stream))) }
            };
            let _ = server.serve(&on_connected, |_err| {}).await;
        });
        Ok((local, TcpServer { task }))
    }

    /// Serves Modbus RTU on a PTY linked at `link`, through a relay that can
    /// corrupt bytes on the wire (for CRC errors).
    pub fn serve_rtu(&self, link: &Path, baud: u32) -> std::io::Result<RtuServer> {
        let controller_side = Pty::open()?;
        let host_side = Pty::open_at(link)?;
        let serial = tokio_serial::SerialStream::open(&tokio_serial::new(
            controller_side.path().to_string_lossy(),
            baud,
        ))
        .map_err(std::io::Error::from)?;
        let sim = self.clone();
        let server = tokio::spawn(async move {
            let _ = tokio_modbus::server::rtu::Server::new(serial)
                .serve_forever(ModbusService { sim })
                .await;
        });
        let corrupt = Arc::new(Mutex::new(false));
        let relay = tokio::spawn(relay(controller_side, host_side, corrupt.clone()));
        Ok(RtuServer {
            tasks: [server, relay],
            corrupt,
        })
    }
}

/// Copies bytes between the controller's PTY and the host's PTY.
async fn relay(controller: Pty, host: Pty, corrupt: Arc<Mutex<bool>>) {
    let mut a = [0u8; 512];
    let mut b = [0u8; 512];
    loop {
        tokio::select! {
            r = host.read(&mut a) => match r {
                Ok(n) if n > 0 => { if controller.write_all(&a[..n]).await.is_err() { return } }
                _ => return,
            },
            r = controller.read(&mut b) => match r {
                Ok(n) if n > 0 => {
                    if std::mem::take(&mut *corrupt.lock().expect("flag")) {
                        b[n - 1] ^= 0xFF; // the CRC's last byte
                    }
                    if host.write_all(&b[..n]).await.is_err() { return }
                }
                _ => return,
            },
        }
    }
}

/// A running TCP server; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct TcpServer {
    task: JoinHandle<()>,
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running RTU server on a PTY.
#[derive(Debug)]
pub struct RtuServer {
    tasks: [JoinHandle<()>; 2],
    corrupt: Arc<Mutex<bool>>,
}

impl RtuServer {
    /// Flips a byte of the next answer on the wire.
    pub fn corrupt_next_answer(&self) {
        *self.corrupt.lock().expect("flag") = true;
    }
}

impl Drop for RtuServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct ModbusService {
    sim: SimGate,
}

type Answer = Result<Option<Response>, ExceptionCode>;

impl Service for ModbusService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let sim = self.sim.clone();
        Box::pin(async move {
            let (silent, exception, delay) =
                sim.faults(|f| (f.silent, f.exception.take(), f.delay));
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if silent || req.slave != sim.shared.unit {
                return Ok(None);
            }
            if let Some(code) = exception {
                return Err(code);
            }
            let answer = answer(&sim, req.request);
            sim.send_visitors();
            if answer.is_ok() {
                sim.shared.writes.send_modify(|n| *n += 1);
            }
            answer.map(Some)
        })
    }
}

fn word(format: Format, value: u32, index: u16) -> u16 {
    match (format, index) {
        (Format::U16, _) => value as u16,
        (Format::U32LowFirst, 0) | (Format::U32HighFirst, 1) => value as u16,
        _ => (value >> 16) as u16,
    }
}

/// Every point of the map with its current value.
fn points(map: &RegisterMap, m: &Model) -> Vec<(Point, u32)> {
    let u = |t: Table, a: u16| Point {
        table: t,
        address: a,
        format: Format::U16,
    };
    let mut v = vec![
        (map.entry_permission, m.perm[0] as u32),
        (map.exit_permission, m.perm[1] as u32),
        (map.entry_counter, m.counters[0]),
        (map.exit_counter, m.counters[1]),
    ];
    // Occupancy is momentary in this model: a passage is instant.
    v.extend(map.entry_occupied.map(|p| (p, 0)));
    v.extend(map.exit_occupied.map(|p| (p, 0)));
    v.extend(map.error.map(|p| (p, m.error as u32)));
    v.extend(map.fire.map(|p| (p, m.fire as u32)));
    v.extend(map.alarm.map(|a| (u(a.table, a.address), m.alarm as u32)));
    match map.mode {
        Some(ModeControl::Register {
            point,
            normal,
            locked,
            free,
        }) => {
            let value = match m.mode {
                GateMode::Normal => normal,
                GateMode::Locked => locked,
                GateMode::Free => free,
            };
            v.push((point, value as u32));
        }
        Some(ModeControl::Coils { free, locked }) => {
            v.push((free, (m.mode == GateMode::Free) as u32));
            v.push((locked, (m.mode == GateMode::Locked) as u32));
        }
        None => {}
    }
    v
}

fn read(
    map: &RegisterMap,
    m: &Model,
    table: Table,
    addr: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    let all = points(map, m);
    (addr..addr.saturating_add(count))
        .map(|a| {
            all.iter()
                .find(|(p, _)| {
                    p.table == table && (p.address..p.address + p.format.registers()).contains(&a)
                })
                .map(|(p, v)| word(p.format, *v, a - p.address))
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

fn write(
    map: &RegisterMap,
    m: &mut Model,
    table: Table,
    addr: u16,
    value: u16,
) -> Result<(), ExceptionCode> {
    let at = |p: &Point| p.table == table && p.address == addr;
    if at(&map.entry_permission) {
        m.perm[0] = value;
        m.on_permission(Direction::Entry);
        return Ok(());
    }
    if at(&map.exit_permission) {
        m.perm[1] = value;
        m.on_permission(Direction::Exit);
        return Ok(());
    }
    match map.mode {
        Some(ModeControl::Register {
            point,
            normal,
            locked,
            free,
        }) if at(&point) => {
            m.mode = if value == free {
                GateMode::Free
            } else if value == locked {
                GateMode::Locked
            } else if value == normal {
                GateMode::Normal
            } else {
                return Err(ExceptionCode::IllegalDataValue);
            };
            Ok(())
        }
        Some(ModeControl::Coils { free, .. }) if at(&free) => {
            m.mode = if value != 0 {
                GateMode::Free
            } else {
                GateMode::Normal
            };
            Ok(())
        }
        Some(ModeControl::Coils { locked, .. }) if at(&locked) => {
            if value != 0 {
                m.mode = GateMode::Locked;
            } else if m.mode == GateMode::Locked {
                m.mode = GateMode::Normal;
            }
            Ok(())
        }
        _ => Err(ExceptionCode::IllegalDataAddress),
    }
}

fn answer(sim: &SimGate, req: Request<'static>) -> Result<Response, ExceptionCode> {
    let map = &sim.shared.map;
    sim.model(|m| match req {
        Request::ReadHoldingRegisters(a, n) => {
            read(map, m, Table::Holding, a, n).map(Response::ReadHoldingRegisters)
        }
        Request::ReadInputRegisters(a, n) => {
            read(map, m, Table::Input, a, n).map(Response::ReadInputRegisters)
        }
        Request::ReadCoils(a, n) => read(map, m, Table::Coil, a, n)
            .map(|w| Response::ReadCoils(w.into_iter().map(|v| v != 0).collect())),
        Request::ReadDiscreteInputs(a, n) => read(map, m, Table::Discrete, a, n)
            .map(|w| Response::ReadDiscreteInputs(w.into_iter().map(|v| v != 0).collect())),
        Request::WriteMultipleRegisters(a, values) => {
            for (i, v) in values.iter().enumerate() {
                write(map, m, Table::Holding, a + i as u16, *v)?;
            }
            Ok(Response::WriteMultipleRegisters(a, values.len() as u16))
        }
        Request::WriteSingleRegister(a, v) => {
            write(map, m, Table::Holding, a, v)?;
            Ok(Response::WriteSingleRegister(a, v))
        }
        Request::WriteSingleCoil(a, v) => {
            write(map, m, Table::Coil, a, v as u16)?;
            Ok(Response::WriteSingleCoil(a, v))
        }
        _ => Err(ExceptionCode::IllegalFunction),
    })
}

// --- GPIO ----------------------------------------------------------------------

use super::gpio::{GpioLines, GpioSettings, UnlockMode};
pub use crate::gpio::sim::SimLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Unlock(Direction),
    Stop,
}

#[derive(Debug)]
struct GpioModel {
    kind: GateKind,
    s: GpioSettings,
    /// Logical state of the outputs gated drives.
    unlock: [bool; 2],
    stop: bool,
    /// Passages granted by pulses, with when (the controller's own timeout).
    /// tokio's clock, so tests may pause it.
    grants: [Vec<tokio::time::Instant>; 2],
    fire: bool,
    /// Raw levels of the "passage done" lines.
    done: [tokio::sync::mpsc::UnboundedSender<bool>; 2],
    /// Passages to signal, one contact closure each, in order.
    passages: [tokio::sync::mpsc::UnboundedSender<()>; 2],
    alarm: tokio::sync::mpsc::UnboundedSender<bool>,
    fire_line: tokio::sync::mpsc::UnboundedSender<bool>,
}

impl GpioModel {
    fn free(&self) -> bool {
        self.fire || (self.unlock[0] && self.unlock[1] && !self.stop)
    }

    fn allowed(&mut self, dir: Direction) -> bool {
        if self.free() {
            return true;
        }
        if self.stop {
            return false;
        }
        match self.s.unlock {
            UnlockMode::Level => self.unlock[dir.index()],
            UnlockMode::Pulse => {
                let timeout = self.s.passage_timeout;
                self.grants[dir.index()].retain(|t| t.elapsed() < timeout);
                !self.grants[dir.index()].is_empty()
            }
        }
    }

    fn consume(&mut self, dir: Direction) {
        if !self.free()
            && self.s.unlock == UnlockMode::Pulse
            && !self.grants[dir.index()].is_empty()
        {
            self.grants[dir.index()].remove(0);
        }
    }

    /// One passage signalled on the "passage done" contact.
    fn done_pulse(&self, dir: Direction) {
        let _ = self.passages[dir.index()].send(());
    }
}

/// A turnstile or wing gate behind dry contacts, with scripted visitors.
#[derive(Debug, Clone)]
pub struct SimGpioGate {
    m: Arc<Mutex<GpioModel>>,
    outputs: watch::Sender<u64>,
}

/// A simulated output line (what gated drives).
#[derive(Debug)]
pub struct SimPin {
    which: Out,
    gate: SimGpioGate,
}

impl embedded_hal::digital::ErrorType for SimPin {
    type Error = std::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.gate.drive(self.which, false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.gate.drive(self.which, true);
        Ok(())
    }
}

impl SimGpioGate {
    /// A gate and the lines to hand to [`super::gpio::GpioGate::spawn`]
    /// (inside a tokio runtime).
    pub fn new(kind: GateKind, s: GpioSettings) -> (Self, GpioLines<SimPin, SimLine>) {
        use tokio::sync::mpsc::unbounded_channel;
        let (entry_tx, entry_rx) = unbounded_channel();
        let (exit_tx, exit_rx) = unbounded_channel();
        let (alarm_tx, alarm_rx) = unbounded_channel();
        let (fire_tx, fire_rx) = unbounded_channel();
        // Each passage closes the contact and opens it again, held well past
        // the debounce period each way, as a real contact is; passages in
        // quick succession queue up instead of merging.
        let passages = [entry_tx.clone(), exit_tx.clone()].map(|line| {
            let (tx, mut rx) = unbounded_channel::<()>();
            let hold = s.debounce * 4 + Duration::from_millis(1);
            let active = !s.done_active_low;
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    let _ = line.send(active);
                    tokio::time::sleep(hold).await;
                    let _ = line.send(!active);
                    tokio::time::sleep(hold).await;
                }
            });
            tx
        });
        let gate = SimGpioGate {
            m: Arc::new(Mutex::new(GpioModel {
                kind,
                s,
                unlock: [false, false],
                stop: false,
                grants: [Vec::new(), Vec::new()],
                fire: false,
                done: [entry_tx, exit_tx],
                passages,
                alarm: alarm_tx,
                fire_line: fire_tx,
            })),
            outputs: watch::Sender::new(0),
        };
        let line = |rx, active_low: bool| SimLine::new(rx, active_low);
        let pin = |which| SimPin {
            which,
            gate: gate.clone(),
        };
        let lines = GpioLines {
            unlock_entry: pin(Out::Unlock(Direction::Entry)),
            unlock_exit: pin(Out::Unlock(Direction::Exit)),
            stop: Some(pin(Out::Stop)),
            entry_done: line(entry_rx, s.done_active_low),
            exit_done: line(exit_rx, s.done_active_low),
            alarm: Some(line(alarm_rx, s.alarm_active_low)),
            fire: Some(line(fire_rx, s.fire_active_low)),
        };
        (gate, lines)
    }

    fn model<R>(&self, f: impl FnOnce(&mut GpioModel) -> R) -> R {
        f(&mut self.m.lock().expect("sim model"))
    }

    fn drive(&self, which: Out, high: bool) {
        self.model(|m| {
            let active = high != m.s.outputs_active_low;
            match which {
                Out::Stop => m.stop = active,
                Out::Unlock(d) => {
                    let rising = active && !m.unlock[d.index()];
                    m.unlock[d.index()] = active;
                    if rising && m.s.unlock == UnlockMode::Pulse {
                        m.grants[d.index()].push(tokio::time::Instant::now());
                    }
                }
            }
        });
        self.outputs.send_modify(|n| *n += 1);
    }

    /// Whether an unlock output is active now.
    pub fn unlocked(&self, dir: Direction) -> bool {
        self.model(|m| m.unlock[dir.index()])
    }

    pub fn stopped(&self) -> bool {
        self.model(|m| m.stop)
    }

    /// Passages granted and not yet used.
    pub fn grants(&self, dir: Direction) -> usize {
        self.model(|m| m.grants[dir.index()].len())
    }

    pub fn is_open(&self) -> bool {
        self.model(|m| m.free())
    }

    /// Waits until gated has driven the outputs into a state `f` accepts.
    pub async fn wait_until(&self, f: impl Fn(&SimGpioGate) -> bool) {
        let mut rx = self.outputs.subscribe();
        while !f(self) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn walk(&self, dir: Direction) -> bool {
        self.model(|m| {
            if !m.allowed(dir) {
                return false;
            }
            m.consume(dir);
            m.done_pulse(dir);
            true
        })
    }

    pub fn tailgate(&self, dir: Direction) -> u32 {
        self.model(|m| {
            if !m.allowed(dir) {
                return 0;
            }
            m.consume(dir);
            m.done_pulse(dir);
            if m.kind == GateKind::WingGate || m.allowed(dir) {
                if m.kind == GateKind::Turnstile {
                    m.consume(dir);
                }
                m.done_pulse(dir);
                2
            } else {
                1
            }
        })
    }

    pub fn push_wrong_way(&self, authorised: Direction) -> bool {
        self.model(|m| {
            let open = m.allowed(authorised);
            if m.kind == GateKind::WingGate && open {
                m.done_pulse(authorised.other());
                true
            } else {
                false
            }
        })
    }

    /// A glitch on the entry "passage done" line: shorter than the debounce
    /// period, it must not count.
    pub fn glitch(&self, dir: Direction) {
        self.model(|m| {
            let active = !m.s.done_active_low;
            let _ = m.done[dir.index()].send(active);
            let _ = m.done[dir.index()].send(!active);
        });
    }

    pub fn set_alarm(&self, active: bool) {
        self.model(|m| {
            let _ = m.alarm.send(active != m.s.alarm_active_low);
        });
    }

    pub fn set_fire(&self, active: bool) {
        self.model(|m| {
            m.fire = active;
            let _ = m.fire_line.send(active != m.s.fire_active_low);
        });
    }
}

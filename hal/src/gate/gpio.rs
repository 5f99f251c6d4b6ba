//! Gates wired by dry contacts to GPIO lines, the way most turnstile and
//! wing-gate controllers are (PERCO-style dry-contact interface): outputs "unlock entry", "unlock exit" and an optional "stop";
//! inputs "entry passage done", "exit passage done", "alarm" and "fire".
//!
//! Outputs are embedded-hal 1.0 `OutputPin`s, so the same driver runs on
//! linux-embedded-hal's character-device pins and on rppal (feature `rpi`).
//! Inputs are [`InputLine`]s with edge events: gpio-cdev line events here,
//! rppal interrupts on a Pi, simulated lines in tests.

use std::io;
use std::time::Duration;

use embedded_hal::digital::OutputPin;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{
    AlarmKind, Cmd, Direction, GateError, GateEvent, GateHandle, GateMode, GateStatus, Outcome,
};
use crate::AbortOnDrop;
#[cfg(feature = "rpi")]
pub use crate::gpio::rpi;
pub use crate::gpio::{InputLine, cdev};
use crate::supervise::DeviceState;

/// How the unlock outputs authorise a passage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnlockMode {
    /// One passage per pulse of this length.
    Pulse,
    /// Open for as long as the output is held.
    Level,
}

/// Polarity and timing of the contacts.
#[derive(Debug, Clone, Copy)]
pub struct GpioSettings {
    pub unlock: UnlockMode,
    pub pulse: Duration,
    /// Outputs drive the contact by pulling low (relay or open collector to GND).
    pub outputs_active_low: bool,
    pub done_active_low: bool,
    pub alarm_active_low: bool,
    /// The fire input is normally closed: the alarm opens it.
    pub fire_active_low: bool,
    pub debounce: Duration,
    pub passage_timeout: Duration,
    /// After the last authorised passage, how long a further passage the same
    /// way still counts as tailgating on this authorisation.
    pub tailgate_window: Duration,
    pub alarm_kind: AlarmKind,
}

impl Default for GpioSettings {
    fn default() -> Self {
        GpioSettings {
            unlock: UnlockMode::Pulse,
            // PERCO: the minimum signal is 100 ms.
            pulse: Duration::from_millis(200),
            outputs_active_low: true,
            done_active_low: true,
            alarm_active_low: true,
            fire_active_low: false,
            debounce: Duration::from_millis(20),
            passage_timeout: Duration::from_secs(5),
            tailgate_window: Duration::from_millis(300),
            alarm_kind: AlarmKind::Intrusion,
        }
    }
}

/// The lines of one gate.
#[derive(Debug)]
pub struct GpioLines<O, I> {
    pub unlock_entry: O,
    pub unlock_exit: O,
    pub stop: Option<O>,
    pub entry_done: I,
    pub exit_done: I,
    pub alarm: Option<I>,
    pub fire: Option<I>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Done(Direction),
    Alarm,
    Fire,
}

struct Auth {
    persons: u32,
    passed: u32,
    granted: u32,
    alarm: Option<AlarmKind>,
    /// When the outcome is given: the passage timeout, or the end of the
    /// tailgate window once everyone passed.
    settle_at: Instant,
    reply: oneshot::Sender<Outcome>,
}

struct Driver<O> {
    name: String,
    s: GpioSettings,
    unlock: [O; 2],
    stop: Option<O>,
    auths: [Option<Auth>; 2],
    counters: [u32; 2],
    mode: GateMode,
    fire: Option<bool>,
    alarm: Option<bool>,
    events: broadcast::Sender<GateEvent>,
    broken: Option<String>,
    state: watch::Sender<DeviceState>,
    unlocked: watch::Sender<[u64; 2]>,
}

/// Starts the gate's tasks; `name` names it in errors.
pub fn spawn<O, I>(name: &str, lines: GpioLines<O, I>, s: GpioSettings) -> GateHandle
where
    O: OutputPin + Send + 'static,
    I: InputLine,
{
    let (tx, rx) = mpsc::channel(16);
    let (in_tx, in_rx) = mpsc::channel(64);
    let (events, _) = broadcast::channel(64);
    let mut tasks = Vec::new();
    let mut watch = |line: I, which: Which, active_low| {
        let tx = in_tx.clone();
        let mut changes = crate::gpio::debounced(line, active_low, s.debounce);
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                if tx.send((which, change)).await.is_err() {
                    return;
                }
            }
        })));
    };
    watch(
        lines.entry_done,
        Which::Done(Direction::Entry),
        s.done_active_low,
    );
    watch(
        lines.exit_done,
        Which::Done(Direction::Exit),
        s.done_active_low,
    );
    if let Some(a) = lines.alarm {
        watch(a, Which::Alarm, s.alarm_active_low);
    }
    if let Some(f) = lines.fire {
        watch(f, Which::Fire, s.fire_active_low);
    }
    let (state_tx, state) = watch::channel(DeviceState::Connected);
    let (unlocked, unlocks) = watch::channel([0; 2]);
    let mut d = Driver {
        name: name.to_owned(),
        s,
        unlock: [lines.unlock_entry, lines.unlock_exit],
        stop: lines.stop,
        auths: [None, None],
        counters: [0, 0],
        mode: GateMode::Normal,
        fire: None,
        alarm: None,
        events: events.clone(),
        broken: None,
        state: state_tx,
        unlocked,
    };
    // Start with every contact released.
    d.release_all();
    tasks.push(AbortOnDrop(tokio::spawn(d.run(rx, in_rx))));
    GateHandle::new(tx, events, state, unlocks, tasks)
}

impl<O: OutputPin + Send + 'static> Driver<O> {
    fn emit(&self, e: GateEvent) {
        let _ = self.events.send(e);
    }

    /// A line failed: every later authorisation is refused with the reason.
    fn break_down(&mut self, why: String) {
        self.state
            .send_replace(DeviceState::Failed { error: why.clone() });
        self.broken = Some(why);
    }

    fn set(&mut self, out: Option<Direction>, active: bool) -> Result<(), GateError> {
        let high = active != self.s.outputs_active_low;
        let pin = match out {
            Some(d) => &mut self.unlock[d.index()],
            None => match &mut self.stop {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        let r = if high { pin.set_high() } else { pin.set_low() };
        r.map_err(|e| GateError::Io {
            device: self.name.clone(),
            why: format!("cannot drive output: {e:?}"),
        })
    }

    fn release_all(&mut self) {
        for out in [Some(Direction::Entry), Some(Direction::Exit), None] {
            if let Err(e) = self.set(out, false) {
                self.break_down(e.to_string());
            }
        }
    }

    async fn pulse(&mut self, dir: Direction) -> Result<(), GateError> {
        self.set(Some(dir), true)?;
        tokio::time::sleep(self.s.pulse).await;
        self.set(Some(dir), false)
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        mut inputs: mpsc::Receiver<(Which, io::Result<bool>)>,
    ) {
        loop {
            let deadline = self.auths.iter().flatten().map(|a| a.settle_at).min();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => {
                        self.release_all();
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                },
                Some((which, r)) = inputs.recv() => match r {
                    Ok(active) => self.input(which, active).await,
                    Err(e) => {
                        let why = format!("{}: input {which:?} failed: {e}", self.name);
                        self.break_down(why.clone());
                        self.emit(GateEvent::Fault { why });
                    }
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.settle();
                }
            }
        }
    }

    async fn command(&mut self, cmd: Cmd) {
        match cmd {
            // A held unlock level was released when the task started; a
            // pulse cannot be taken back. GPIO counters do not outlive
            // gated, so nothing is settled by them.
            Cmd::Status { reply } | Cmd::WithdrawUnlocks { reply } => {
                let _ = reply.send(Ok(GateStatus {
                    mode: Some(self.mode),
                    entry_counter: self.counters[0],
                    exit_counter: self.counters[1],
                    entry_occupied: None,
                    exit_occupied: None,
                    error: None,
                    fire: self.fire,
                    alarm: self.alarm,
                }));
            }
            Cmd::SetMode { mode, reply } => {
                let _ = reply.send(self.set_mode(mode));
            }
            Cmd::Open {
                dir,
                persons,
                reply,
            } => {
                if let Some(why) = &self.broken {
                    let _ = reply.send(Outcome::Fault { why: why.clone() });
                    return;
                }
                if persons == 0
                    || self.auths[dir.index()].is_some()
                    || self.mode != GateMode::Normal
                {
                    let why = if persons == 0 {
                        "an authorisation is for at least 1 person".to_owned()
                    } else if self.mode != GateMode::Normal {
                        format!("{}: gate is {:?}, not normal", self.name, self.mode)
                    } else {
                        format!("{}: {dir:?} passage already under way", self.name)
                    };
                    let _ = reply.send(Outcome::Fault { why });
                    return;
                }
                let r = match self.s.unlock {
                    UnlockMode::Pulse => self.pulse(dir).await,
                    UnlockMode::Level => self.set(Some(dir), true),
                };
                if let Err(e) = r {
                    let _ = reply.send(Outcome::Fault { why: e.to_string() });
                    return;
                }
                self.auths[dir.index()] = Some(Auth {
                    persons,
                    passed: 0,
                    granted: 1,
                    alarm: None,
                    settle_at: Instant::now() + self.s.passage_timeout,
                    reply,
                });
                self.unlocked.send_modify(|n| n[dir.index()] += 1);
            }
        }
    }

    fn set_mode(&mut self, mode: GateMode) -> Result<(), GateError> {
        match mode {
            GateMode::Normal => {
                self.set(Some(Direction::Entry), false)?;
                self.set(Some(Direction::Exit), false)?;
                self.set(None, false)?;
            }
            // Holding both unlock inputs keeps both directions open.
            GateMode::Free => {
                self.set(None, false)?;
                self.set(Some(Direction::Entry), true)?;
                self.set(Some(Direction::Exit), true)?;
            }
            GateMode::Locked => {
                if self.stop.is_none() {
                    return Err(GateError::Unsupported {
                        device: self.name.clone(),
                        why: "no stop line is wired: the gate cannot be locked".into(),
                    });
                }
                self.set(Some(Direction::Entry), false)?;
                self.set(Some(Direction::Exit), false)?;
                self.set(None, true)?;
            }
        }
        self.mode = mode;
        Ok(())
    }

    async fn input(&mut self, which: Which, active: bool) {
        match which {
            Which::Fire => {
                self.fire = Some(active);
                self.emit(GateEvent::Fire { active });
            }
            Which::Alarm => {
                self.alarm = Some(active);
                if active {
                    let kind = self.s.alarm_kind;
                    for a in self.auths.iter_mut().flatten() {
                        a.alarm.get_or_insert(kind);
                    }
                    self.emit(GateEvent::Alarm { kind });
                }
            }
            // A passage is counted when its contact becomes active.
            Which::Done(_) if !active => {}
            Which::Done(dir) => {
                self.counters[dir.index()] = self.counters[dir.index()].wrapping_add(1);
                match &mut self.auths[dir.index()] {
                    Some(a) if a.passed < a.granted && a.passed < a.persons => a.passed += 1,
                    Some(a) => {
                        a.alarm = Some(AlarmKind::Tailgating);
                        self.emit(GateEvent::Alarm {
                            kind: AlarmKind::Tailgating,
                        });
                        // Whoever slipped through is inside all the same.
                        self.emit(GateEvent::Passage {
                            direction: dir,
                            count: 1,
                        });
                    }
                    None if self.mode == GateMode::Free => {
                        self.emit(GateEvent::Passage {
                            direction: dir,
                            count: 1,
                        });
                    }
                    None => {
                        let kind = match &mut self.auths[dir.other().index()] {
                            Some(other) => {
                                other.alarm.get_or_insert(AlarmKind::Reverse);
                                AlarmKind::Reverse
                            }
                            None => AlarmKind::Intrusion,
                        };
                        self.emit(GateEvent::Alarm { kind });
                    }
                }
                // Pulse mode: the next person of a group gets their pulse now.
                let next = self.auths[dir.index()].as_ref().is_some_and(|a| {
                    a.passed == a.granted && a.passed < a.persons && a.alarm.is_none()
                });
                if next && self.s.unlock == UnlockMode::Pulse {
                    if let Err(e) = self.pulse(dir).await {
                        self.break_down(e.to_string());
                    } else if let Some(a) = &mut self.auths[dir.index()] {
                        a.granted += 1;
                    }
                }
                let window = self.s.tailgate_window;
                if let Some(a) = &mut self.auths[dir.index()] {
                    if self.s.unlock == UnlockMode::Level {
                        a.granted = a.persons;
                    }
                    if a.passed >= a.persons {
                        a.settle_at = a.settle_at.min(Instant::now() + window);
                        // Level mode: close behind the last person at once.
                        if self.s.unlock == UnlockMode::Level
                            && let Err(e) = self.set(Some(dir), false)
                        {
                            self.break_down(e.to_string());
                        }
                    }
                }
            }
        }
    }

    /// Ends the authorisations whose time has come.
    fn settle(&mut self) {
        let now = Instant::now();
        for dir in [Direction::Entry, Direction::Exit] {
            let done = self.auths[dir.index()]
                .as_ref()
                .is_some_and(|a| a.settle_at <= now);
            if !done {
                continue;
            }
            let a = self.auths[dir.index()].take().expect("checked");
            if self.s.unlock == UnlockMode::Level
                && let Err(e) = self.set(Some(dir), false)
            {
                self.break_down(e.to_string());
            }
            let outcome = match (a.alarm, a.passed) {
                (Some(kind), persons) => Outcome::Alarm { kind, persons },
                (None, 0) => Outcome::NotPassed,
                (None, persons) => Outcome::Passed { persons },
            };
            let _ = a.reply.send(outcome);
        }
    }
}

/// A GPIO gate described in a file (`gatectl probe gate --gpio FILE`, and a
/// lane's gate in gated.toml): which chip, which lines, which polarity.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// `/dev/gpiochipN`
    pub chip: String,
    #[serde(default = "default_unlock")]
    pub unlock: UnlockMode,
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub passage_timeout_ms: u64,
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
    pub lines: GpioLineNumbers,
    #[serde(default)]
    pub polarity: Polarity,
}

fn default_unlock() -> UnlockMode {
    UnlockMode::Pulse
}
fn default_pulse_ms() -> u64 {
    200
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_debounce_ms() -> u64 {
    20
}

/// Line offsets on the chip.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLineNumbers {
    pub unlock_entry: u32,
    pub unlock_exit: u32,
    pub stop: Option<u32>,
    pub entry_done: u32,
    pub exit_done: u32,
    pub alarm: Option<u32>,
    pub fire: Option<u32>,
}

/// Which lines are active low (contacts to GND); the defaults suit PERCO-style wiring.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Polarity {
    pub outputs_active_low: bool,
    pub done_active_low: bool,
    pub alarm_active_low: bool,
    pub fire_active_low: bool,
}

impl Default for Polarity {
    fn default() -> Self {
        let d = GpioSettings::default();
        Polarity {
            outputs_active_low: d.outputs_active_low,
            done_active_low: d.done_active_low,
            alarm_active_low: d.alarm_active_low,
            fire_active_low: d.fire_active_low,
        }
    }
}

impl GpioConfig {
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn settings(&self) -> GpioSettings {
        GpioSettings {
            unlock: self.unlock,
            pulse: Duration::from_millis(self.pulse_ms),
            passage_timeout: Duration::from_millis(self.passage_timeout_ms),
            debounce: Duration::from_millis(self.debounce_ms),
            outputs_active_low: self.polarity.outputs_active_low,
            done_active_low: self.polarity.done_active_low,
            alarm_active_low: self.polarity.alarm_active_low,
            fire_active_low: self.polarity.fire_active_low,
            ..GpioSettings::default()
        }
    }

    /// Opens the lines on the GPIO character device and starts the gate.
    pub fn open(&self, name: &str) -> Result<GateHandle, String> {
        let c = &self.chip;
        let e = |what: &str, line: u32, err: io::Error| format!("{c} line {line} ({what}): {err}");
        let out = |what: &str, line: u32| {
            cdev::output(c, line, "gated").map_err(|err| e(what, line, err))
        };
        let inp = |what: &str, line: u32| {
            cdev::CdevInput::open(c, line, "gated").map_err(|err| e(what, line, err))
        };
        let l = &self.lines;
        let lines = GpioLines {
            unlock_entry: out("unlock entry", l.unlock_entry)?,
            unlock_exit: out("unlock exit", l.unlock_exit)?,
            stop: l.stop.map(|n| out("stop", n)).transpose()?,
            entry_done: inp("entry passage done", l.entry_done)?,
            exit_done: inp("exit passage done", l.exit_done)?,
            alarm: l.alarm.map(|n| inp("alarm", n)).transpose()?,
            fire: l.fire.map(|n| inp("fire", n)).transpose()?,
        };
        Ok(spawn(name, lines, self.settings()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpio_gate_file_parses_with_defaults() {
        let c: GpioConfig = toml::from_str(
            "chip = \"/dev/gpiochip0\"\n[lines]\nunlock_entry = 17\nunlock_exit = 18\nentry_done = 22\nexit_done = 23\nfire = 25\n",
        )
        .unwrap();
        let s = c.settings();
        assert_eq!(s.unlock, UnlockMode::Pulse);
        assert_eq!(s.pulse, Duration::from_millis(200));
        assert!(s.outputs_active_low && !s.fire_active_low);
        assert_eq!(c.lines.fire, Some(25));
        let err =
            toml::from_str::<GpioConfig>("chip = \"x\"\n[lines]\nunlock_entry = 1\n").unwrap_err();
        assert!(
            err.to_string().contains("missing field `unlock_exit`"),
            "{err}"
        );
    }

    #[test]
    fn opening_a_missing_chip_names_chip_line_and_role() {
        let c: GpioConfig = toml::from_str(
            "chip = \"/dev/gpiochip-none\"\n[lines]\nunlock_entry = 17\nunlock_exit = 18\nentry_done = 22\nexit_done = 23\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { c.open("g").unwrap_err() });
        assert!(
            err.starts_with("/dev/gpiochip-none line 17 (unlock entry): "),
            "{err}"
        );
    }
}

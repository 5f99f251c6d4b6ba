//! Gates: three-roller turnstiles and wing gates, whatever drives them.
//!
//! One trait, [`Gate`]: `open(direction, persons)` resolves with what really
//! happened, counted from the gate's own feedback (passage counters or
//! passage-done contacts), never assumed from the open command.

pub mod gpio;
pub mod map;
pub mod modbus;
#[cfg(feature = "sim")]
pub mod sim;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::AbortOnDrop;
use crate::supervise::DeviceState;

pub use map::{AlarmKind, RegisterMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Entry,
    Exit,
}

impl Direction {
    pub fn other(self) -> Self {
        match self {
            Direction::Entry => Direction::Exit,
            Direction::Exit => Direction::Entry,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// `entry` or `exit`, as configured and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Entry => "entry",
            Direction::Exit => "exit",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "entry" => Ok(Direction::Entry),
            "exit" => Ok(Direction::Exit),
            _ => Err(format!("`{s}` is not a direction: entry or exit")),
        }
    }
}

/// What one authorisation ended in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// `persons` went through (may be fewer than authorised if the rest
    /// turned back before the passage timeout).
    Passed { persons: u32 },
    /// Nobody went through before the passage timeout; the gate is closed again.
    NotPassed,
    /// Tailgating, intrusion or reverse passage during the authorisation.
    Alarm { kind: AlarmKind, persons: u32 },
    /// The gate could not be driven or read: whether anyone passed is unknown.
    Fault { why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    Normal,
    /// Open for everyone (anti-panic, fire, power-fail "open").
    Free,
    Locked,
}

impl GateMode {
    /// `normal`, `free` or `locked`, as commands and answers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::Normal => "normal",
            GateMode::Free => "free",
            GateMode::Locked => "locked",
        }
    }
}

impl std::str::FromStr for GateMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(GateMode::Normal),
            "free" => Ok(GateMode::Free),
            "locked" => Ok(GateMode::Locked),
            _ => Err(format!("`{s}` is not a gate mode: normal, free or locked")),
        }
    }
}

/// A snapshot of the gate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GateStatus {
    pub mode: Option<GateMode>,
    pub entry_counter: u32,
    pub exit_counter: u32,
    pub entry_occupied: Option<bool>,
    pub exit_occupied: Option<bool>,
    /// The controller's own error code, 0 = none.
    pub error: Option<u32>,
    pub fire: Option<bool>,
    pub alarm: Option<bool>,
}

impl GateStatus {
    /// The passage counter of one direction.
    pub fn counter(&self, d: Direction) -> u32 {
        match d {
            Direction::Entry => self.entry_counter,
            Direction::Exit => self.exit_counter,
        }
    }
}

/// Things the gate reports by itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GateEvent {
    /// Passages not belonging to an authorisation: in free mode, and
    /// whoever slipped through on someone else's (after the tailgating alarm).
    Passage {
        direction: Direction,
        count: u32,
    },
    Alarm {
        kind: AlarmKind,
    },
    Fire {
        active: bool,
    },
    Fault {
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{device}: not connected ({why})")]
    NotConnected { device: String, why: String },
    #[error("{device}: no answer within {ms} ms")]
    Timeout { device: String, ms: u128 },
    #[error("{device}: Modbus exception {code} at {what}")]
    Exception {
        device: String,
        code: String,
        what: String,
    },
    #[error("{device}: {why}")]
    Io { device: String, why: String },
    #[error("{device}: {why}")]
    Unsupported { device: String, why: String },
}

/// What a lane needs of its gate.
pub trait Gate: Send + Sync {
    /// Authorises `persons` passages in `direction` and waits for the outcome.
    fn open(&self, direction: Direction, persons: u32) -> impl Future<Output = Outcome> + Send;
    fn set_mode(&self, mode: GateMode) -> impl Future<Output = Result<(), GateError>> + Send;
    fn status(&self) -> impl Future<Output = Result<GateStatus, GateError>> + Send;
    /// Takes back every unlock the gate still holds that no authorisation
    /// of this handle is waiting on (one given before gated restarted),
    /// then reads the status: the counters then say for certain whether
    /// the visitor went through, because nobody can go through after.
    fn withdraw_unlocks(&self) -> impl Future<Output = Result<GateStatus, GateError>> + Send;
    /// Unsolicited events: passages in free mode, alarms, fire, faults.
    fn events(&self) -> broadcast::Receiver<GateEvent>;
}

/// What a handle asks of a backend's task.
pub(crate) enum Cmd {
    Open {
        dir: Direction,
        persons: u32,
        reply: oneshot::Sender<Outcome>,
    },
    SetMode {
        mode: GateMode,
        reply: oneshot::Sender<Result<(), GateError>>,
    },
    Status {
        reply: oneshot::Sender<Result<GateStatus, GateError>>,
    },
    WithdrawUnlocks {
        reply: oneshot::Sender<Result<GateStatus, GateError>>,
    },
}

/// A running gate, whatever drives it: a handle to the backend's task
/// (cheap to clone); the task stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct GateHandle {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<GateEvent>,
    state: watch::Receiver<DeviceState>,
    unlocks: watch::Receiver<[u64; 2]>,
    _tasks: Arc<Vec<AbortOnDrop>>,
}

impl GateHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<Cmd>,
        events: broadcast::Sender<GateEvent>,
        state: watch::Receiver<DeviceState>,
        unlocks: watch::Receiver<[u64; 2]>,
        tasks: Vec<AbortOnDrop>,
    ) -> Self {
        GateHandle {
            tx,
            events,
            state,
            unlocks,
            _tasks: Arc::new(tasks),
        }
    }

    /// How many authorisations the gate has accepted, by
    /// [`Direction::index`]: a count moves the moment an unlock is in force
    /// (the controller acknowledged it, or the relay is set), while `open`
    /// still waits for the visitor. A lane tells the visitor to walk then.
    pub fn unlocks(&self) -> watch::Receiver<[u64; 2]> {
        self.unlocks.clone()
    }

    /// The connection to the gate: `connected`, `reconnecting: why`, ….
    pub fn watch_state(&self) -> watch::Receiver<DeviceState> {
        self.state.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    fn stopped() -> GateError {
        GateError::Io {
            device: "gate".into(),
            why: "gate task stopped".into(),
        }
    }
}

impl Gate for GateHandle {
    async fn open(&self, dir: Direction, persons: u32) -> Outcome {
        self.ask(|reply| Cmd::Open {
            dir,
            persons,
            reply,
        })
        .await
        .unwrap_or(Outcome::Fault {
            why: "gate task stopped".into(),
        })
    }

    async fn set_mode(&self, mode: GateMode) -> Result<(), GateError> {
        self.ask(|reply| Cmd::SetMode { mode, reply })
            .await
            .unwrap_or_else(|| Err(Self::stopped()))
    }

    async fn status(&self) -> Result<GateStatus, GateError> {
        self.ask(|reply| Cmd::Status { reply })
            .await
            .unwrap_or_else(|| Err(Self::stopped()))
    }

    async fn withdraw_unlocks(&self) -> Result<GateStatus, GateError> {
        self.ask(|reply| Cmd::WithdrawUnlocks { reply })
            .await
            .unwrap_or_else(|| Err(Self::stopped()))
    }

    fn events(&self) -> broadcast::Receiver<GateEvent> {
        self.events.subscribe()
    }
}

/// Where a Modbus gate controller is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusAddress {
    /// `tcp://HOST:PORT`
    Tcp(String),
    /// `rtu:/dev/PATH@BAUD`
    Rtu { port: PathBuf, baud: u32 },
}

impl std::fmt::Display for ModbusAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModbusAddress::Tcp(hp) => write!(f, "tcp://{hp}"),
            ModbusAddress::Rtu { port, baud } => write!(f, "rtu:{}@{baud}", port.display()),
        }
    }
}

impl std::str::FromStr for ModbusAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(hostport) = s.strip_prefix("tcp://") {
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if ok {
                return Ok(ModbusAddress::Tcp(hostport.to_owned()));
            }
            return Err(format!(
                "`{s}` is not tcp://HOST:PORT (for example tcp://192.0.2.10:502)"
            ));
        }
        if let Some(rest) = s.strip_prefix("rtu:") {
            if let Some((port, baud)) = rest.rsplit_once('@')
                && let Ok(baud) = baud.parse::<u32>()
                && port.starts_with('/')
            {
                return Ok(ModbusAddress::Rtu {
                    port: PathBuf::from(port),
                    baud,
                });
            }
            return Err(format!(
                "`{s}` is not rtu:/dev/PATH@BAUD (for example rtu:/dev/gate-rs485@9600)"
            ));
        }
        Err(format!(
            "`{s}` is neither tcp://HOST:PORT nor rtu:/dev/PATH@BAUD"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modbus_addresses_parse() {
        assert_eq!(
            "rtu:/dev/gate-rs485@9600".parse::<ModbusAddress>(),
            Ok(ModbusAddress::Rtu {
                port: "/dev/gate-rs485".into(),
                baud: 9600
            })
        );
        assert_eq!(
            "tcp://[::1]:502".parse::<ModbusAddress>(),
            Ok(ModbusAddress::Tcp("[::1]:502".into()))
        );
        assert_eq!(
            "tcp://[::1]:502"
                .parse::<ModbusAddress>()
                .unwrap()
                .to_string(),
            "tcp://[::1]:502"
        );
        assert!("tcp://host".parse::<ModbusAddress>().is_err());
        assert!("rtu:/dev/x".parse::<ModbusAddress>().is_err());
        assert!("/dev/x".parse::<ModbusAddress>().is_err());
    }
}

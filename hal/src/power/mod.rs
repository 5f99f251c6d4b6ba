//! Power and UPS: is the appliance on mains or on battery, and how long is
//! left. Three sources, one stream of [`PowerState`]s: a GPIO power-fail
//! line, UPower over D-Bus, or NUT's `upsd` over TCP.

pub mod nut;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "upower")]
pub mod upower;

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::Device;
use crate::gpio::InputLine;
use crate::supervise::DeviceState;

/// What the UPS says.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PowerState {
    OnMains,
    OnBattery {
        percent: Option<f64>,
        seconds_left: Option<u64>,
    },
    /// The UPS (or its warning level) says the battery is about to run out.
    BatteryLow {
        percent: Option<f64>,
        seconds_left: Option<u64>,
    },
    /// NUT's FSD: the primary monitor ordered every client to shut down now.
    ForcedShutdown,
}

impl PowerState {
    pub fn on_battery(&self) -> bool {
        !matches!(self, PowerState::OnMains)
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let left = |f: &mut std::fmt::Formatter<'_>, p: &Option<f64>, s: &Option<u64>| {
            if let Some(p) = p {
                write!(f, ", {p:.0} %")?;
            }
            if let Some(s) = s {
                write!(f, ", {s} s left")?;
            }
            Ok(())
        };
        match self {
            PowerState::OnMains => f.write_str("on mains"),
            PowerState::OnBattery {
                percent,
                seconds_left,
            } => {
                f.write_str("ON BATTERY")?;
                left(f, percent, seconds_left)
            }
            PowerState::BatteryLow {
                percent,
                seconds_left,
            } => {
                f.write_str("BATTERY LOW")?;
                left(f, percent, seconds_left)
            }
            PowerState::ForcedShutdown => f.write_str("FORCED SHUTDOWN (UPS FSD)"),
        }
    }
}

/// A GPIO power-fail line (a UPS HAT's "power lost" output, an industrial
/// DC-UPS's "AC fail" contact): active = mains lost. Sends the state at start
/// and every debounced change.
pub fn spawn_gpio<I: InputLine>(
    name: &str,
    line: I,
    active_low: bool,
    debounce: Duration,
) -> Device<PowerState> {
    let (tx, rx) = mpsc::channel(16);
    let (state_tx, state_rx) = watch::channel(DeviceState::Connecting);
    let name = name.to_owned();
    let task = tokio::spawn(async move {
        let mut changes = crate::gpio::debounced(line, active_low, debounce);
        state_tx.send_replace(DeviceState::Connected);
        let mut sent_any = false;
        // The watcher only reports an inactive line by silence: say "on mains" once first.
        loop {
            let first = if sent_any {
                changes.recv().await
            } else {
                match tokio::time::timeout(debounce * 2 + Duration::from_millis(1), changes.recv())
                    .await
                {
                    Ok(c) => c,
                    Err(_) => Some(Ok(false)),
                }
            };
            match first {
                Some(Ok(lost)) => {
                    sent_any = true;
                    let s = if lost {
                        PowerState::OnBattery {
                            percent: None,
                            seconds_left: None,
                        }
                    } else {
                        PowerState::OnMains
                    };
                    if tx.send(s).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    state_tx.send_replace(DeviceState::Failed {
                        error: format!("{name}: {e}"),
                    });
                    return;
                }
                None => return,
            }
        }
    });
    Device::new(rx, state_rx, task)
}

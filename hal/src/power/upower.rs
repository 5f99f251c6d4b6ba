//! UPower over D-Bus: `OnBattery` on the daemon, and the display device's
//! percentage, time to empty and warning level, all followed through
//! property-change signals (no polling).

use futures_util::StreamExt;

use super::PowerState;
use crate::Device;
use crate::supervise::spawn_supervised;

#[zbus::proxy(
    interface = "org.freedesktop.UPower",
    default_service = "org.freedesktop.UPower",
    default_path = "/org/freedesktop/UPower"
)]
pub trait UPower {
    #[zbus(property)]
    fn on_battery(&self) -> zbus::Result<bool>;
    fn get_display_device(&self) -> zbus::Result<zbus::OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.UPower.Device",
    default_service = "org.freedesktop.UPower"
)]
pub trait UPowerDevice {
    #[zbus(property)]
    fn percentage(&self) -> zbus::Result<f64>;
    /// Seconds; 0 = unknown.
    #[zbus(property)]
    fn time_to_empty(&self) -> zbus::Result<i64>;
    /// 1 none, 2 discharging (UPS), 3 low, 4 critical, 5 action.
    #[zbus(property)]
    fn warning_level(&self) -> zbus::Result<u32>;
}

/// UPower's warning level from which the battery counts as low.
pub const WARNING_LOW: u32 = 3;

/// Which bus UPower is on.
#[derive(Debug, Clone)]
pub enum Bus {
    System,
    /// A bus address (tests: a private dbus-daemon).
    Address(String),
}

async fn connect(bus: &Bus) -> zbus::Result<zbus::Connection> {
    match bus {
        Bus::System => zbus::Connection::system().await,
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str()).build().await,
    }
}

fn state(
    on_battery: bool,
    percent: Option<f64>,
    secs: Option<i64>,
    level: Option<u32>,
) -> PowerState {
    let seconds_left = secs.filter(|s| *s > 0).map(|s| s as u64);
    if !on_battery {
        PowerState::OnMains
    } else if level.is_some_and(|l| l >= WARNING_LOW) {
        PowerState::BatteryLow {
            percent,
            seconds_left,
        }
    } else {
        PowerState::OnBattery {
            percent,
            seconds_left,
        }
    }
}

/// Follows UPower; sends the state at start and on every change.
pub fn spawn(bus: Bus) -> Device<PowerState> {
    spawn_supervised("upower".to_owned(), 16, move |connected, tx| {
        let bus = bus.clone();
        async move {
            let e = |e: zbus::Error| format!("UPower: {e}");
            let conn = connect(&bus).await.map_err(e)?;
            let up = UPowerProxy::new(&conn).await.map_err(e)?;
            let path = up.get_display_device().await.map_err(e)?;
            let dev = UPowerDeviceProxy::builder(&conn)
                .path(path)
                .build()
                .await
                .map_err(e)?;
            // Subscribe before the first read, so no change falls in between.
            let mut on_batt = up.receive_on_battery_changed().await;
            let mut pct = dev.receive_percentage_changed().await;
            let mut tte = dev.receive_time_to_empty_changed().await;
            let mut lvl = dev.receive_warning_level_changed().await;
            let mut now = (
                up.on_battery().await.map_err(e)?,
                dev.percentage().await.ok(),
                dev.time_to_empty().await.ok(),
                dev.warning_level().await.ok(),
            );
            connected.up();
            let mut last = None;
            loop {
                let s = state(now.0, now.1, now.2, now.3);
                if last.as_ref() != Some(&s) {
                    last = Some(s.clone());
                    if tx.send(s).await.is_err() {
                        return Ok(());
                    }
                }
                tokio::select! {
                    Some(c) = on_batt.next() => now.0 = c.get().await.map_err(e)?,
                    Some(c) = pct.next() => now.1 = c.get().await.ok(),
                    Some(c) = tte.next() => now.2 = c.get().await.ok(),
                    Some(c) = lvl.next() => now.3 = c.get().await.ok(),
                    else => return Err("UPower: the bus connection closed".into()),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_upower_properties() {
        assert_eq!(
            state(false, Some(100.0), Some(0), Some(1)),
            PowerState::OnMains
        );
        assert_eq!(
            state(true, Some(80.0), Some(1200), Some(2)),
            PowerState::OnBattery {
                percent: Some(80.0),
                seconds_left: Some(1200)
            }
        );
        // TimeToEmpty 0 means unknown.
        assert_eq!(
            state(true, Some(8.0), Some(0), Some(4)),
            PowerState::BatteryLow {
                percent: Some(8.0),
                seconds_left: None
            }
        );
    }
}

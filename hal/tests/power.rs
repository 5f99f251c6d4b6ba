//! UPS sources against their simulated counterparts: NUT over real TCP,
//! UPower on a real private dbus-daemon, a GPIO power-fail line simulated.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hal::DeviceState;
use hal::gpio::sim::SimLine;
use hal::power::nut::{self, NutTarget};
use hal::power::sim::{SimUPower, SimUpsd};
use hal::power::upower::{self, Bus};
use hal::power::{self, PowerState};

fn on_battery(p: f64, s: u64) -> PowerState {
    PowerState::OnBattery {
        percent: Some(p),
        seconds_left: Some(s),
    }
}

#[tokio::test]
async fn nut_states_follow_ups_status() {
    let (upsd, addr) = SimUpsd::start("127.0.0.1:0".parse().unwrap(), "eaton")
        .await
        .unwrap();
    let target: NutTarget = format!("{addr}/eaton").parse().unwrap();
    let mut src = nut::spawn(target, Duration::from_millis(10));
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);

    upsd.set("ups.status", "OB DISCHRG");
    upsd.set("battery.charge", "57");
    upsd.set("battery.runtime", "610");
    assert_eq!(src.next().await.unwrap(), on_battery(57.0, 610));
    upsd.set("ups.status", "OB LB");
    assert_eq!(
        src.next().await.unwrap(),
        PowerState::BatteryLow {
            percent: Some(57.0),
            seconds_left: Some(610)
        }
    );
    upsd.set("ups.status", "OB LB FSD");
    assert_eq!(src.next().await.unwrap(), PowerState::ForcedShutdown);
    upsd.set("ups.status", "OL CHRG");
    // A UPS without a runtime variable is fine.
    upsd.unset("battery.runtime");
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
}

#[tokio::test]
async fn nut_reports_errors_and_reconnects() {
    let (upsd, addr) = SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
        .await
        .unwrap();
    let wrong = nut::spawn(
        format!("{addr}/nosuch").parse().unwrap(),
        Duration::from_millis(10),
    );
    let s = wrong
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap()
        .to_string();
    assert!(s.contains("ERR UNKNOWN-UPS"), "{s}");

    let mut src = nut::spawn(
        format!("{addr}/ups").parse().unwrap(),
        Duration::from_millis(10),
    );
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
    drop(upsd); // upsd restarts
    src.watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap();
    let (upsd, _) = SimUpsd::start(addr, "ups").await.unwrap();
    upsd.set("ups.status", "OB");
    // After reconnecting, the state found is sent.
    assert_eq!(
        src.next().await.unwrap(),
        PowerState::OnBattery {
            percent: Some(100.0),
            seconds_left: Some(1800)
        }
    );
}

/// A private bus, killed on drop.
struct Bus_ {
    child: Child,
    address: String,
}

impl Bus_ {
    fn start() -> Self {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) is needed");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        Bus_ {
            child,
            address: line.trim().to_owned(),
        }
    }
}

impl Drop for Bus_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn settles_on(src: &mut hal::Device<PowerState>, want: PowerState) {
    while src.next().await.unwrap() != want {}
}

#[tokio::test]
async fn upower_properties_are_followed_by_signal() {
    let bus = Bus_::start();
    let sim = SimUPower::start(&bus.address).await.unwrap();
    let mut src = upower::spawn(Bus::Address(bus.address.clone()));
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);

    sim.set_on_battery(true).await.unwrap();
    assert_eq!(
        src.next().await.unwrap(),
        PowerState::OnBattery {
            percent: Some(100.0),
            seconds_left: None
        }
    );
    // Three property signals each time, in any order: the stream settles on
    // the state they describe together.
    sim.set_battery(30.0, 900, 2).await.unwrap();
    settles_on(&mut src, on_battery(30.0, 900)).await;
    sim.set_battery(5.0, 120, 4).await.unwrap();
    settles_on(
        &mut src,
        PowerState::BatteryLow {
            percent: Some(5.0),
            seconds_left: Some(120),
        },
    )
    .await;
    sim.set_on_battery(false).await.unwrap();
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
}

#[tokio::test]
async fn upower_missing_is_reported() {
    let bus = Bus_::start();
    let src = upower::spawn(Bus::Address(bus.address.clone()));
    let s = src
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap()
        .to_string();
    assert!(
        s.contains("UPower: org.freedesktop.DBus.Error.ServiceUnknown"),
        "{s}"
    );
}

#[tokio::test]
async fn gpio_power_fail_line_with_debounce() {
    // Active high (a UPS HAT's PLD line goes high when power is lost).
    let (line, sim) = SimLine::pair(false);
    let debounce = Duration::from_millis(5);
    let mut src = power::spawn_gpio("pld", sim, false, debounce);
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
    // A brownout flicker shorter than the debounce is ignored...
    line.send(true).unwrap();
    line.send(false).unwrap();
    // ...a real loss is not.
    line.send(true).unwrap();
    assert_eq!(
        src.next().await.unwrap(),
        PowerState::OnBattery {
            percent: None,
            seconds_left: None
        }
    );
    line.send(false).unwrap();
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
}

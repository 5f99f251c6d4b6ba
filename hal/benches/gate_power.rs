//! Gates and power inputs, measured against their simulators:
//!
//!     cargo bench -p hal --features sim --bench gate_power
//!
//! - Modbus: `open()` → confirmed `Passed` with a visitor who walks at once and
//!   a simulator with zero delay: what our side adds (polling, round trips).
//! - UPS and fire inputs: the change at the source → the event at a subscriber.
//!
//! Needs `dbus-daemon` for the UPower figure. Prints Markdown table rows.

use std::time::{Duration, Instant};

use hal::DeviceState;
use hal::gate::gpio::{self, GpioSettings};
use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::sim::{GateKind, SimGate, SimGpioGate};
use hal::gate::{Direction, Gate, GateEvent, ModbusAddress, Outcome, RegisterMap};
use hal::gpio::sim::SimLine;
use hal::power::{self, PowerState};

const CMD: &str = "`cargo bench -p hal --features sim --bench gate_power`";

fn row(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "| {what} ({} samples) | {CMD} | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        v.len(),
        at(0.5),
        at(0.99),
        v.last().unwrap().as_secs_f64() * 1e3
    );
}

async fn modbus_open(poll: Duration, n: usize) -> Vec<Duration> {
    let map = RegisterMap::load("lot").unwrap();
    let sim = SimGate::new(GateKind::Turnstile, map.clone(), 1);
    sim.set_auto_walk(true);
    let (addr, _server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut s = ModbusSettings::new(ModbusAddress::Tcp(addr.to_string()), 1, map);
    s.poll = poll;
    s.tailgate_window = Duration::ZERO;
    let gate = modbus::spawn(s);
    gate.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(
            gate.open(Direction::Entry, 1).await,
            Outcome::Passed { persons: 1 }
        );
        v.push(t.elapsed());
    }
    v
}

async fn modbus_fire(poll: Duration, n: usize) -> Vec<Duration> {
    let map = RegisterMap::load("coil-example").unwrap();
    let sim = SimGate::new(GateKind::WingGate, map.clone(), 1);
    let (addr, _server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut s = ModbusSettings::new(ModbusAddress::Tcp(addr.to_string()), 1, map);
    s.poll = poll;
    let gate = modbus::spawn(s);
    gate.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    let mut events = gate.events();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let on = i % 2 == 0;
        let t = Instant::now();
        sim.set_fire(on);
        loop {
            if events.recv().await.unwrap() == (GateEvent::Fire { active: on }) {
                break;
            }
        }
        v.push(t.elapsed());
    }
    v
}

async fn gpio_fire(n: usize) -> Vec<Duration> {
    let s = GpioSettings::default();
    let (sim, lines) = SimGpioGate::new(GateKind::WingGate, s);
    let gate = gpio::spawn("bench", lines, s);
    let mut events = gate.events();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let on = i % 2 == 0;
        let t = Instant::now();
        sim.set_fire(on);
        while events.recv().await.unwrap() != (GateEvent::Fire { active: on }) {}
        v.push(t.elapsed());
    }
    v
}

async fn gpio_power_fail(n: usize) -> Vec<Duration> {
    let (line, sim) = SimLine::pair(false);
    let mut src = power::spawn_gpio("bench", sim, false, GpioSettings::default().debounce);
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let lost = i % 2 == 0;
        let t = Instant::now();
        line.send(lost).unwrap();
        assert_eq!(src.next().await.unwrap().on_battery(), lost);
        v.push(t.elapsed());
    }
    v
}

async fn nut(poll: Duration, n: usize) -> Vec<Duration> {
    let (upsd, addr) = power::sim::SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
        .await
        .unwrap();
    let mut src = power::nut::spawn(format!("{addr}/ups").parse().unwrap(), poll);
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let lost = i % 2 == 0;
        let t = Instant::now();
        upsd.set("ups.status", if lost { "OB" } else { "OL" });
        assert_eq!(src.next().await.unwrap().on_battery(), lost);
        v.push(t.elapsed());
    }
    v
}

async fn upower(n: usize) -> Option<Vec<Duration>> {
    let mut daemon = std::process::Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut address = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(daemon.stdout.take()?),
        &mut address,
    )
    .ok()?;
    let address = address.trim().to_owned();
    let sim = power::sim::SimUPower::start(&address).await.ok()?;
    let mut src = power::upower::spawn(power::upower::Bus::Address(address));
    assert_eq!(src.next().await.unwrap(), PowerState::OnMains);
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let lost = i % 2 == 0;
        let t = Instant::now();
        sim.set_on_battery(lost).await.unwrap();
        assert_eq!(src.next().await.unwrap().on_battery(), lost);
        v.push(t.elapsed());
    }
    let _ = daemon.kill();
    Some(v)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        row(
            "Modbus TCP open → confirmed passage, poll 10 ms, tailgate window 0",
            modbus_open(Duration::from_millis(10), 300).await,
        );
        row(
            "Modbus TCP open → confirmed passage, poll 50 ms (default), tailgate window 0",
            modbus_open(Duration::from_millis(50), 200).await,
        );
        row(
            "fire input on the Modbus controller → `Fire` event, poll 50 ms (default)",
            modbus_fire(Duration::from_millis(50), 100).await,
        );
        row(
            "fire input on a GPIO line → `Fire` event, debounce 20 ms (default)",
            gpio_fire(200).await,
        );
        row(
            "UPS power-fail GPIO line → `PowerState` event, debounce 20 ms (default)",
            gpio_power_fail(200).await,
        );
        row(
            "UPS via NUT upsd → `PowerState` event, poll 500 ms",
            nut(Duration::from_millis(500), 40).await,
        );
        match upower(200).await {
            Some(v) => row("UPS via UPower `OnBattery` signal → `PowerState` event", v),
            None => println!("(UPower figure skipped: no dbus-daemon)"),
        }
    });
}

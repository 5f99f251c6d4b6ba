//! Operating-mode latencies with the release gated against the simulators:
//! a lane device with 4 lanes on 4 Modbus TCP gates (polled every 10 ms),
//! the UPS as UPower on a private dbus-daemon (a signal, no polling).
//!
//! - UPS signal (UPower OnBattery) → every gate commanded to its power-fail
//!   mode, with `debounce_ms = 0` (the configured debounce adds to it on a
//!   real device, by design);
//! - UPS signal → the transition durable (its outbox row committed, seen by
//!   another connection);
//! - fire input on one controller → every gate open.
//!
//! `cargo build --release --workspace --features hal/sim && cargo bench -p tests --bench modes`
//! (`MODES_BENCH_ROUNDS` changes the number of rounds, 100 by default.)

use std::time::{Duration, Instant};

use hal::gate::GateMode;
use hal::gate::map::RegisterMap;
use hal::gate::sim::{GateKind, SimGate};
use hal::power::sim::SimUPower;
use tests::latency::report;
use tests::procs::{Bus, Gated};

const LANES: usize = 4;

async fn all(gates: &[SimGate], mode: GateMode) {
    for g in gates {
        g.wait_until(|g| g.mode() == mode).await;
    }
}

fn mode_rows(state: &std::path::Path) -> i64 {
    let db = tests::procs::db(state);
    db.query_row(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'mode_change'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("MODES_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bus = Bus::start(&d.join("bus"), None).await;
    let ups = SimUPower::start(&bus.address).await.unwrap();
    let mut gates = Vec::new();
    let mut servers = Vec::new();
    let mut toml = format!(
        "role = \"lane\"\ndevice_id = \"bench-modes\"\nstate_dir = \"{}/state\"\n\
         [central]\nurl = \"https://central.invalid/api/v1\"\n\
         [power]\nupower = true\ndebounce_ms = 0\ngrace_s = 0\n",
        d.display()
    );
    for i in 0..LANES {
        // Controllers with a fire input (the coil example map).
        let g = SimGate::new(
            GateKind::WingGate,
            RegisterMap::load("coil-example").unwrap(),
            1,
        );
        let (addr, s) = g.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let pty = hal::pty::Pty::open_at(&d.join(format!("scanner{i}"))).unwrap();
        std::mem::forget(pty);
        toml.push_str(&format!(
            "[devices.scanners.s{i}]\nport = \"{}/scanner{i}\"\n\
             [devices.gates.g{i}]\nmodbus = \"tcp://{addr}\"\nmap = \"coil-example\"\npoll_ms = 10\n\
             [lanes.lane-{i}]\ndirection = \"entry\"\ngroup = \"main\"\ngate = \"g{i}\"\nscanners = [\"s{i}\"]\npower_fail_mode = \"open\"\n",
            d.display()
        ));
        gates.push(g);
        servers.push(s);
    }
    std::fs::write(d.join("gated.toml"), toml).unwrap();
    let state = d.join("state");
    let mut gated = Gated::start_on_bus(&d.join("gated.toml"), &bus.address);
    gated
        .wait_for_all(&[&["gated ready"], &["power: on mains"]])
        .await;
    for g in &gates {
        g.wait_until(|g| g.mode() == GateMode::Normal).await;
    }
    // gated's log must be read, or a full pipe stalls it.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return gated,
                _ = gated.read_for(Duration::from_millis(500)) => {}
            }
        }
    });

    let (mut commanded, mut durable, mut fire) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = mode_rows(&state);
        let t = Instant::now();
        ups.set_on_battery(true).await.unwrap();
        all(&gates, GateMode::Free).await;
        commanded.push(t.elapsed());
        while mode_rows(&state) == before {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        durable.push(t.elapsed());
        ups.set_on_battery(false).await.unwrap();
        all(&gates, GateMode::Normal).await;
    }
    for _ in 0..rounds {
        let t = Instant::now();
        gates[LANES - 1].set_fire(true);
        all(&gates, GateMode::Free).await;
        fire.push(t.elapsed());
        gates[LANES - 1].set_fire(false);
        all(&gates, GateMode::Normal).await;
    }
    let _ = stop.send(());
    drain.await.unwrap().stop().await;
    report(
        &format!("UPower OnBattery → {LANES} gates commanded to their power-fail mode"),
        commanded,
    );
    report(
        "UPower OnBattery → the transition committed to disk",
        durable,
    );
    report(
        &format!("fire input on one Modbus controller (polled every 10 ms) → {LANES} gates open"),
        fire,
    );
}

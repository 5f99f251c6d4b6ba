//! The kiosk app's start and memory, against a kiosk device (gated,
//! central-sim, simulators on a private bus):
//!
//! - cold start: the release `kiosk` binary started 10 times on Xvfb
//!   (winit, software renderer), time until it reports its home screen;
//!   its RSS once the home screen shows the sale state;
//! - memory over use: 100 purchases tapped through the screens (Slint's
//!   testing backend, in this process), RSS on the home screen before and
//!   after.
//!
//! `cargo build --release --workspace --features hal/sim && cargo bench -p tests --bench kiosk_ui`
//! (needs Xvfb: `scripts/dev test` installs it)

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiosk::{Problem, Screen};
use serde_json::json;
use tests::kiosk_screen::Screens;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let s = Screens::start();

    // Cold start of the real binary on a virtual screen, against this gated.
    let mut xvfb = Command::new("Xvfb")
        .args([":58", "-screen", "0", "1080x1920x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt install xvfb)");
    let socket = std::path::Path::new("/tmp/.X11-unix/X58");
    let up = Instant::now();
    while !socket.exists() {
        assert!(up.elapsed() < Duration::from_secs(30), "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = s.k.dir.path().join("kiosk-ui.toml");
    std::fs::write(&cfg, "language = \"en\"\n").unwrap();
    let bin = tests::procs::bin("kiosk");
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut kiosk = Command::new(&bin)
            .args(["--config", cfg.to_str().unwrap()])
            .env("DISPLAY", ":58")
            .env("SLINT_BACKEND", "winit-software")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &s.k.bus.address)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(kiosk.stderr.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("home screen shown") => break,
                Some(Ok(l)) => eprintln!("kiosk: {l}"),
                Some(Err(_)) | None => panic!("kiosk exited before its home screen"),
            }
        }
        starts.push(t.elapsed());
        // Settled: connected to gated and showing the sale state.
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kib(kiosk.id()));
        kiosk.kill().unwrap();
        kiosk.wait().unwrap();
    }
    xvfb.kill().unwrap();
    xvfb.wait().unwrap();
    starts.sort();
    rss.sort();
    println!(
        "kiosk cold start to home screen (release, winit + software renderer on Xvfb): p50 {:.0} ms, max {:.0} ms (10 starts)",
        starts[5].as_secs_f64() * 1e3,
        starts[9].as_secs_f64() * 1e3
    );
    println!(
        "kiosk RSS on the home screen: p50 {:.1} MiB, max {:.1} MiB",
        rss[5] as f64 / 1024.0,
        rss[9] as f64 / 1024.0
    );

    // 100 purchases through the screens; memory of this (test) process.
    let me = std::process::id();
    let purchase = |i: usize| {
        s.tap("Buy tickets");
        s.wait_screen(Screen::Buy);
        s.add("Adult day ticket", "", 1 + i % 3);
        s.tap("Next");
        s.wait_screen(Screen::Confirm);
        s.tap("Pay");
        s.wait_screen(Screen::Pay);
        s.block_on(s.k.scanner.scan(&format!("2876543210{:06}", i + 1)))
            .unwrap();
        s.wait_screen(Screen::Done);
        s.tap("Done");
        s.wait_screen(Screen::Home);
        assert_ne!(s.g().get_problem(), Problem::Failed);
    };
    // Enough places for every purchase.
    s.block_on(s.k.central.admin(
        "/sim/quota",
        json!({ "product_id": 1, "date": tests::kiosk_device::today(), "start_minute": 0, "capacity": 100000 }),
    ));
    for i in 0..10 {
        purchase(i);
    }
    let before = rss_kib(me);
    let t = Instant::now();
    for i in 10..110 {
        purchase(i);
    }
    let took = t.elapsed();
    let after = rss_kib(me);
    println!(
        "100 purchases through the screens (paid by code, printed): {:.1} s; RSS on the home screen {:.1} MiB before, {:.1} MiB after ({:+.1} MiB)",
        took.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0
    );
}

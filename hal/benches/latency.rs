//! Time from the last byte a device sends to the event reaching a
//! subscriber, through a real PTY and the real backends.
//!
//!     cargo bench -p hal --features sim --bench latency
//!
//! Prints one Markdown table row per measurement, for docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use hal::DeviceState;
use hal::idcard::{self, sim::SimIdReader, sim::test_cards};
use hal::pty::Pty;
use hal::scanner::{self, ScannerPort, sim::SimScanner};

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99), *v.last().unwrap())
}

fn row(what: &str, n: usize, v: Vec<Duration>) {
    let (p50, p99, max) = percentiles(v);
    println!(
        "| {what} ({n} samples) | `cargo bench -p hal --features sim --bench latency` | p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs |",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
}

async fn scanner_latency(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimScanner::new(Pty::open_at(&dir.path().join("s")).unwrap());
    let mut dev = scanner::spawn(
        "bench",
        ScannerPort::Serial {
            path: sim.pty.path().to_owned(),
            baud: 115_200,
        },
    );
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let code = format!("T1.BENCH{i:06}");
        sim.raw(code.as_bytes()).await.unwrap();
        // The terminator is the last byte: the clock starts when it is written.
        sim.raw(b"\r").await.unwrap();
        let sent = Instant::now();
        let scan = dev.next().await.unwrap();
        out.push(sent.elapsed());
        assert_eq!(scan.text, code);
    }
    out
}

async fn idcard_latency(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("id");
    let sim = SimIdReader::start(Pty::open_at(&link).unwrap());
    let mut dev = idcard::spawn_with(
        "bench",
        &link,
        115_200,
        Duration::from_millis(2),
        Duration::from_secs(2),
    );
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    let cards = test_cards();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        sim.present(cards[i % cards.len()].clone());
        let read = dev.next().await.unwrap();
        let received = Instant::now();
        out.push(received - sim.card_sent_at().unwrap());
        assert_eq!(read.card, cards[i % cards.len()]);
        sim.remove();
        sim.wait_commands(2).await;
    }
    out
}

fn main() {
    // Same runtime shape as gated: multi-threaded, two workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm up, then measure.
        scanner_latency(100).await;
        row(
            "serial scanner: last byte of a code → `Scan` at the subscriber",
            5000,
            scanner_latency(5000).await,
        );
        idcard_latency(20).await;
        row(
            "ID-card reader: last byte of the card-data answer → `IdCardRead` at the subscriber",
            500,
            idcard_latency(500).await,
        );
    });
}

//! Sync benchmarks against central-sim on loopback, over TLS, with the
//! release binaries: a full download of 1,000,000 tickets (time and gated's
//! peak RSS), central sale → valid at the lane (p50/p95), outbox drain rate.
//!
//! `cargo build --release --workspace --features hal/sim && cargo bench -p tests --bench sync`
//! (`SYNC_BENCH_TICKETS` changes the download size.)

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::latency::percentile;
use tests::procs::{CentralSim, Gated, cursor, db_count, gatectl, wait_until};

fn kiosk_config(dir: &Path, central: &CentralSim) -> std::path::PathBuf {
    let printer = dir.join("printer");
    // Kept open for the run: the printer's PTY lives as long as its master.
    std::mem::forget(hal::pty::Pty::open_at(&printer).unwrap());
    let toml = format!(
        "role = \"kiosk\"\ndevice_id = \"bench-1\"\nstate_dir = \"{}\"\n\
         [central]\nurl = \"{}\"\nca_file = \"{}\"\n[devices.printer]\nport = \"{}\"\n",
        dir.join("state").display(),
        central.at.api,
        central.at.ca_file.display(),
        printer.display()
    );
    let path = dir.join("gated.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn peak_rss_kib(pid: u32) -> u64 {
    rss_kib(pid, "VmHWM:")
}

/// A `/proc/PID/status` memory line (`VmRSS:`, `VmHWM:`), in KiB.
fn rss_kib(pid: u32, line: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("SYNC_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let t = Instant::now();
    let made = central.admin("/sim/tickets", json!({ "count": n })).await;
    let last = made["seq"].as_u64().unwrap();
    println!(
        "central-sim made {n} tickets in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let config = kiosk_config(dir.path(), &central);
    let state = dir.path().join("state");
    let code = central.pairing_code("bench-1", "kiosk", 600).await;
    let (rc, out, err) =
        gatectl(&["provision", "--code", &code, "-c", config.to_str().unwrap()]).await;
    assert_eq!(rc, 0, "{out}{err}");

    // 1. Full download, applied to SQLite.
    let t = Instant::now();
    let gated = Gated::start(&config);
    let pid = gated.child.id().unwrap();
    wait_until("full download", Duration::from_secs(600), || {
        cursor(&state) == last
    })
    .await;
    let took = t.elapsed();
    let rss = peak_rss_kib(pid);
    assert_eq!(db_count(&state, "SELECT COUNT(*) FROM tickets") as u64, n);
    println!(
        "full download of {n} tickets: {:.1} s ({:.0} tickets/s), gated peak RSS {:.1} MiB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        rss as f64 / 1024.0
    );

    // 2. Sale on central → ticket in the lane's store (long poll).
    let mut lat = Vec::new();
    for i in 0..100 {
        let t = Instant::now();
        let sold = central
            .admin(
                "/sim/sell",
                json!({ "id_number": format!("11010119800101{i:04}") }),
            )
            .await;
        let id = sold["ticket_id"].as_i64().unwrap();
        let q = format!("SELECT COUNT(*) FROM tickets WHERE id = {id}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while db_count(&state, &q) == 0 {
            assert!(Instant::now() < deadline, "sale {id} never arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "central sale → in the device's store: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (100 sales)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.95).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    gated.stop().await;

    // 3. Outbox drain: 20,000 queued events, gated started.
    let events = 20_000;
    {
        let c = rusqlite::Connection::open(state.join("gated.db")).unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..events as i64 {
            tx.execute(
                "INSERT INTO outbox (nonce, kind, body, created_ms) VALUES (?1, 'passage', ?2, ?3)",
                rusqlite::params![
                    format!("bench-{i}"),
                    json!({"ticket_id": i, "lane": "east-1", "direction": "entry", "persons": 1})
                        .to_string(),
                    i
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let t = Instant::now();
    let gated = Gated::start(&config);
    wait_until("outbox drained", Duration::from_secs(600), || {
        db_count(&state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    let took = t.elapsed();
    let stats = central.stats().await;
    assert_eq!(stats.events_stored, events);
    println!(
        "outbox drain: {events} events in {:.2} s ({:.0} events/s, batches of {})",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        gated::central::sync::PUSH_BATCH
    );

    // 4. Idle: caught up, outbox empty, nobody at the kiosk; a few seconds
    // of heartbeats, long polls and printer polls.
    let pid = gated.child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mib = |line| rss_kib(pid, line) as f64 / 1024.0;
    println!(
        "gated idle (kiosk role, {n} tickets stored, online): RSS {:.1} MiB ({:.1} anonymous, {:.1} file-backed: mostly gated's own code)",
        mib("VmRSS:"),
        mib("RssAnon:"),
        mib("RssFile:")
    );
    gated.stop().await;
}

//! The fleet, measured with release gated processes as separate devices of
//! one site on loopback (each with its own state directory, scanner PTY and
//! Modbus TCP turnstile), and release central-sim:
//!
//! - a passage committed at one device → the row in every other device's
//!   store (refusal-ready there), through the central system (site network
//!   off) and through the site network (central-sim killed), 3 and 10
//!   devices;
//! - a site-wide burst of 1,000 passages in one minute across 10 devices,
//!   both paths up: propagation, and each gated's CPU time and RSS;
//! - the lane decision (scan → unlock command at the turnstile) at one
//!   device, idle peers vs. 3 peers each admitting 10 visitors a second.
//!
//! Arrival is seen by a thread per device that watches its database
//! (`PRAGMA data_version`, then the new passage rows) every millisecond; the
//! commit at the origin is seen the same way, so both ends carry the same
//! delay and the figures are good to about a millisecond.
//!
//! `cargo build --release --workspace --features hal/sim && cargo bench -p tests --bench fleet`
//! (`FLEET_BENCH_SAMPLES`: passages per propagation run, 200 by default;
//! `FLEET_BENCH_BURST_S`: the burst's length, 60 s.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hal::gate::Direction;
use hal::gate::RegisterMap;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use serde_json::json;
use tests::latency::report;
use tests::procs::{CentralSim, Gated, gatectl};

/// When each device first held each ticket's passage.
type Seen = Arc<Mutex<HashMap<(usize, i64), Instant>>>;

struct Device {
    state: PathBuf,
    scanner: SimScanner,
    gate: SimGate,
    _server: TcpServer,
    pid: u32,
    /// The peers it has followed (from its log).
    following: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Reads gated's log for ever (so it never blocks on a full pipe);
    /// aborting it drops gated, which kills it.
    log: tokio::task::JoinHandle<()>,
}

struct Site {
    _dir: tempfile::TempDir,
    central: CentralSim,
    devices: Vec<Device>,
    tokens: Vec<(i64, String)>,
    seen: Seen,
    stop: Arc<AtomicBool>,
    watchers: Vec<std::thread::JoinHandle<()>>,
}

impl Site {
    /// `n` lane devices, `tickets` sold before they start; `peers`: the
    /// site network on; `walk`: visitors walk through at once.
    async fn new(n: usize, tickets: usize, peers: bool, walk: bool) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
        let mut tokens = Vec::with_capacity(tickets);
        for _ in 0..tickets {
            let t = central.admin("/sim/sell", json!({})).await;
            tokens.push((
                t["ticket_id"].as_i64().unwrap(),
                t["token"].as_str().unwrap().to_owned(),
            ));
        }
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut devices = Vec::new();
        let mut watchers = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("dev-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let id = format!("lane-{i:02}");
            let scanner = SimScanner::new(Pty::open_at(&d.join("scanner")).unwrap());
            let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
            gate.set_auto_walk(walk);
            let (addr, server) = gate
                .serve_tcp("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let listen = if peers { "127.0.0.1:0" } else { "" };
            let config = d.join("gated.toml");
            std::fs::write(
                &config,
                format!(
                    "role = \"lane\"\ndevice_id = \"{id}\"\nstate_dir = \"{d}/state\"\n\
                     [central]\nurl = \"{url}\"\nca_file = \"{ca}\"\nheartbeat_s = 1\n\
                     [peers]\nlisten = \"{listen}\"\n\
                     [devices.scanners.qr]\nport = \"{d}/scanner\"\n\
                     [devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 10\ntailgate_window_ms = 0\n\
                     [lanes.{id}-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g\"\nscanners = [\"qr\"]\n",
                    d = d.display(),
                    url = central.at.api,
                    ca = central.at.ca_file.display(),
                ),
            )
            .unwrap();
            let code = central.pairing_code(&id, "lane", 600).await;
            let (rc, out, err) =
                gatectl(&["provision", "--code", &code, "-c", config.to_str().unwrap()]).await;
            assert_eq!(rc, 0, "provision {id}: {out}{err}");
            let mut gated = Gated::start(&config);
            gated
                .wait_for_all(&[
                    &["device=\"qr\"", "connected"],
                    &["device=\"gate tcp://", "connected"],
                ])
                .await;
            let pid = gated.child.id().unwrap();
            let following: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
            let f = following.clone();
            let log = tokio::spawn(async move {
                loop {
                    for line in gated.read_for(Duration::from_millis(100)).await {
                        if let Some(rest) = line.split("following peer ").nth(1) {
                            let peer = rest.split_whitespace().next().unwrap_or("").to_owned();
                            f.lock().unwrap().insert(peer);
                        }
                    }
                }
            });
            let state = d.join("state");
            watchers.push(watch(i, state.clone(), seen.clone(), stop.clone()));
            devices.push(Device {
                state,
                scanner,
                gate,
                _server: server,
                pid,
                following,
                log,
            });
        }
        let site = Site {
            _dir: dir,
            central,
            devices,
            tokens,
            seen,
            stop,
            watchers,
        };
        // Every sale downloaded everywhere (the feed is quiet then).
        let last = site.central.stats().await.last_seq;
        for d in &site.devices {
            while tests::procs::cursor(&d.state) < last {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // With the site network on: every device follows every other one
        // (each learns the others' addresses from the catalog first).
        if peers {
            for d in &site.devices {
                while d.following.lock().unwrap().len() < n - 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        site
    }

    /// Scans ticket `k` at device `at`.
    async fn scan(&self, at: usize, k: usize) {
        self.devices[at]
            .scanner
            .scan(&self.tokens[k].1)
            .await
            .unwrap();
    }

    /// Waits until every device holds ticket `k`'s passage; returns, for
    /// each other device, how long after the one at `origin` it got it.
    async fn spread(&self, k: usize, origin: usize, bound: Duration) -> Vec<Duration> {
        let ticket = self.tokens[k].0;
        let deadline = Instant::now() + bound;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                let at: Vec<Option<&Instant>> = (0..self.devices.len())
                    .map(|i| seen.get(&(i, ticket)))
                    .collect();
                if let Some(all) = at.iter().copied().collect::<Option<Vec<_>>>() {
                    return all
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != origin)
                        .map(|(_, t)| t.saturating_duration_since(*all[origin]))
                        .collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "ticket {ticket} from device {origin} did not reach every device"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn shut(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.watchers {
            w.join().unwrap();
        }
        for d in self.devices {
            d.log.abort();
            let _ = d.log.await;
        }
    }
}

/// A thread that stamps each passage row the first time it sees it.
fn watch(
    i: usize,
    state: PathBuf,
    seen: Seen,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let db = loop {
            if let Ok(c) = rusqlite::Connection::open_with_flags(
                state.join("gated.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            ) {
                break c;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (mut version, mut last_id) = (-1i64, 0i64);
        while !stop.load(Ordering::Relaxed) {
            let v: i64 = db
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .unwrap_or(version);
            if v != version {
                version = v;
                let now = Instant::now();
                let mut st = db
                    .prepare_cached("SELECT id, ticket_id FROM passages WHERE id > ?1 ORDER BY id")
                    .unwrap();
                let rows: Vec<(i64, i64)> = st
                    .query_map([last_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|r| r.collect())
                    .unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                for (id, ticket) in rows {
                    last_id = last_id.max(id);
                    seen.entry((i, ticket)).or_insert(now);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// Passages one after another at each device in turn, each awaited everywhere.
async fn propagation(n: usize, samples: usize, through_peers: bool) {
    let warm = n;
    let mut site = Site::new(n, warm + samples, through_peers, true).await;
    if through_peers {
        site.central.kill().await;
    }
    // One passage from each device first: every link has carried one.
    for k in 0..warm {
        site.scan(k, k).await;
        site.spread(k, k, Duration::from_secs(60)).await;
    }
    let mut lat = Vec::new();
    for k in warm..warm + samples {
        let origin = k % n;
        site.scan(origin, k).await;
        lat.extend(site.spread(k, origin, Duration::from_secs(30)).await);
    }
    let path = if through_peers {
        "the site network, central-sim killed"
    } else {
        "the central system, site network off"
    };
    report(
        &format!("committed at one device → in every other's store, {n} devices, through {path}"),
        lat,
    );
    site.shut().await;
}

/// CPU time (user + system, clock ticks) and RSS / peak RSS (KiB) of `pid`.
fn usage(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command: state is field 3, utime 14 and stime 15.
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, kib("VmRSS:"), kib("VmHWM:"))
}

/// 1,000 passages a minute across 10 devices, both paths up.
async fn burst(seconds: u64) {
    const N: usize = 10;
    let total = (1000 * seconds / 60) as usize;
    let site = Site::new(N, N + total, true, true).await;
    for k in 0..N {
        site.scan(k, k).await;
        site.spread(k, k, Duration::from_secs(60)).await;
    }
    let before: Vec<_> = site.devices.iter().map(|d| usage(d.pid)).collect();
    let start = Instant::now();
    let every = Duration::from_secs(seconds) / total as u32;
    for j in 0..total {
        tokio::time::sleep_until((start + every * j as u32).into()).await;
        site.scan(j % N, N + j).await;
    }
    let mut lat = Vec::new();
    for j in 0..total {
        lat.extend(site.spread(N + j, j % N, Duration::from_secs(60)).await);
    }
    let wall = start.elapsed().as_secs_f64();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as f64;
    report(
        &format!("burst: {total} passages in {seconds} s across {N} devices, propagation"),
        lat,
    );
    for (i, d) in site.devices.iter().enumerate() {
        let (t, rss, hwm) = usage(d.pid);
        println!(
            "  device {i}: CPU {:.1} % of one core, RSS {:.1} MiB, peak {:.1} MiB",
            (t - before[i].0) as f64 / ticks / wall * 100.0,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    site.shut().await;
}

/// Scan → unlock command at device 0's turnstile, `samples` times, while
/// `busy` peers each admit a visitor every 100 ms.
async fn decision(samples: usize, busy: bool) {
    const PEERS: usize = 3;
    let traffic = if busy { samples * 4 } else { 0 };
    let site = Site::new(
        1 + PEERS,
        samples + 1 + PEERS + traffic * PEERS,
        true,
        false,
    )
    .await;
    for g in &site.devices[1..] {
        g.gate.set_auto_walk(true);
    }
    // Links warmed, as above.
    for k in 0..=PEERS {
        site.scan(k, k).await;
        if k == 0 {
            site.devices[0]
                .gate
                .wait_until(|g| g.permission(Direction::Entry) > 0)
                .await;
            site.devices[0].gate.walk(Direction::Entry);
        }
        site.spread(k, k, Duration::from_secs(60)).await;
    }
    let site = Arc::new(site);
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    if busy {
        for p in 1..=PEERS {
            let (site, stop) = (site.clone(), stop.clone());
            load.push(tokio::spawn(async move {
                let first = 1 + PEERS + samples + (p - 1) * traffic;
                let mut next = Instant::now();
                for k in first..first + traffic {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    site.scan(p, k).await;
                    next += Duration::from_millis(100);
                    tokio::time::sleep_until(next.into()).await;
                }
            }));
        }
        // The traffic is flowing before the first sample.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lane = &site.devices[0];
    let mut lat = Vec::new();
    for k in 1 + PEERS..1 + PEERS + samples {
        let passed = lane.gate.counters()[0];
        lane.scanner.scan(&site.tokens[k].1).await.unwrap();
        let t0 = Instant::now();
        lane.gate
            .wait_until(|g| g.permission(Direction::Entry) > 0)
            .await;
        lat.push(t0.elapsed());
        lane.gate.walk(Direction::Entry);
        lane.gate.wait_until(|g| g.counters()[0] > passed).await;
        // The passage committed before the next visitor.
        let ticket = site.tokens[k].0;
        while !site.seen.lock().unwrap().contains_key(&(0, ticket)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let arrived = site
        .seen
        .lock()
        .unwrap()
        .keys()
        .filter(|(i, _)| *i == 0)
        .count();
    report(
        &format!(
            "lane decision (scan → unlock at the turnstile), {}; device 0 holds {arrived} passages",
            if busy {
                "3 peers each admitting a visitor every 100 ms"
            } else {
                "3 idle peers"
            }
        ),
        lat,
    );
    Arc::into_inner(site).unwrap().shut().await;
}

/// A passage at a lane device that fills the site (its instantaneous
/// capacity is one visitor) → a kiosk device has stopped selling today (its
/// log says so). Each visitor enters, the kiosk's tier goes to 100 %, the
/// visitor leaves, and it goes back to 0 before the next one.
async fn tier_crossing(samples: usize, through_peers: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut central = CentralSim::start(&d.join("central"), "127.0.0.1:0").await;
    let mut tokens = Vec::new();
    for _ in 0..samples {
        let t = central.admin("/sim/sell", json!({})).await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    let listen = if through_peers { "127.0.0.1:0" } else { "" };
    let occupancy = "[occupancy]\ninstant_capacity = 1\nstop_sales_at = 100\n";
    let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
    gate.set_auto_walk(true);
    let (addr, _server) = gate
        .serve_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let scanner = SimScanner::new(Pty::open_at(&d.join("scanner")).unwrap());
    let exit = SimScanner::new(Pty::open_at(&d.join("exit")).unwrap());
    let _printer = hal::printer::sim::SimPrinter::start(Pty::open_at(&d.join("printer")).unwrap());
    let mut started = Vec::new();
    for (id, role, devices) in [
        (
            "lane-a",
            "lane",
            format!(
                "[devices.scanners.qr]\nport = \"{d}/scanner\"\n[devices.scanners.out]\nport = \"{d}/exit\"\n\
                 [devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 10\ntailgate_window_ms = 0\n\
                 [lanes.a-1]\ndirection = \"both\"\ngroup = \"east\"\ngate = \"g\"\nscanners = [\"qr\"]\nexit_scanners = [\"out\"]\n",
                d = d.display()
            ),
        ),
        (
            "kiosk-k",
            "kiosk",
            format!("[devices.printer]\nport = \"{}/printer\"\n", d.display()),
        ),
    ] {
        let config = d.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "role = \"{role}\"\ndevice_id = \"{id}\"\nstate_dir = \"{d}/{id}\"\n\
                 [central]\nurl = \"{url}\"\nca_file = \"{ca}\"\nheartbeat_s = 1\n\
                 [peers]\nlisten = \"{listen}\"\n{occupancy}{devices}",
                d = d.display(),
                url = central.at.api,
                ca = central.at.ca_file.display(),
            ),
        )
        .unwrap();
        let code = central.pairing_code(id, role, 600).await;
        let (rc, out, err) =
            gatectl(&["provision", "--code", &code, "-c", config.to_str().unwrap()]).await;
        assert_eq!(rc, 0, "provision {id}: {out}{err}");
        started.push(Gated::start(&config));
    }
    let mut kiosk = started.pop().unwrap();
    let mut lane = started.pop().unwrap();
    lane.wait_for_all(&[
        &["device=\"qr\"", "connected"],
        &["device=\"out\"", "connected"],
        &["device=\"gate tcp://", "connected"],
    ])
    .await;
    if through_peers {
        lane.wait_for(&["following peer kiosk-k"]).await;
        kiosk.wait_for(&["following peer lane-a"]).await;
        central.kill().await;
    }
    let log = tokio::spawn(async move {
        loop {
            for l in lane.read_for(Duration::from_secs(1)).await {
                if std::env::var_os("SHOW_GATED_LOG").is_some() {
                    eprintln!("lane: {l}");
                }
            }
        }
    });
    let mut lat = Vec::new();
    for token in &tokens {
        let passed = gate.counters()[0];
        scanner.scan(token).await.unwrap();
        gate.wait_until(|g| g.counters()[0] > passed).await;
        // The lane has committed once the turnstile counted (it reads the
        // counter, then commits): from here to the kiosk's new tier.
        let t0 = Instant::now();
        loop {
            let line = kiosk.next_line().await.expect("the kiosk runs");
            if line.contains("capacity tier of the site") && line.contains("→ 100%") {
                lat.push(t0.elapsed());
                break;
            }
        }
        let left = gate.counters()[1];
        exit.scan(token).await.unwrap();
        gate.wait_until(|g| g.counters()[1] > left).await;
        loop {
            let line = kiosk.next_line().await.expect("the kiosk runs");
            if line.contains("capacity tier of the site") && line.contains("→ 0%") {
                break;
            }
        }
    }
    report(
        &format!(
            "passage filling the site at a lane → the kiosk stops selling today, through {}",
            if through_peers {
                "the site network, central-sim killed"
            } else {
                "the central system, site network off"
            }
        ),
        lat,
    );
    log.abort();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let samples = env("FLEET_BENCH_SAMPLES", 200) as usize;
    // FLEET_BENCH_ONLY: a comma-separated choice of propagation, burst,
    // decision, tier (all by default).
    let only = std::env::var("FLEET_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    if run("propagation") {
        for n in [3, 10] {
            propagation(n, samples, false).await;
            propagation(n, samples, true).await;
        }
    }
    if run("burst") {
        burst(env("FLEET_BENCH_BURST_S", 60)).await;
    }
    if run("decision") {
        decision(300, false).await;
        decision(300, true).await;
    }
    if run("tier") {
        tier_crossing(samples, false).await;
        tier_crossing(samples, true).await;
    }
}

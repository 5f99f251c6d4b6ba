//! gated's link to the central system, end to end over TLS with the test CA
//! pinned: central-sim, gated and gatectl as processes, lane devices on the
//! hal simulators (PTYs, Modbus TCP).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hal::gate::RegisterMap;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::idcard::sim::{SimIdReader, test_cards};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use serde_json::json;
use tests::procs::{
    Bus, CentralSim, Gated, cursor, db, db_count, gatectl, gatectl_on_bus, wait_until,
};

/// Generous bounds: these wait for events, they do not measure them.
const BOUND: Duration = Duration::from_secs(30);

/// A device's folder: gated.toml and its state directory.
struct Device {
    dir: tempfile::TempDir,
}

impl Device {
    fn config(&self) -> PathBuf {
        self.dir.path().join("gated.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config_str(&self) -> String {
        self.config().display().to_string()
    }
}

/// A kiosk device (its printer a PTY) enrolled with nothing yet.
fn kiosk(central: &CentralSim, device_id: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let printer = dir.path().join("printer");
    // Kept open for the device's lifetime by leaking: a PTY's path lives as long as its master.
    std::mem::forget(Pty::open_at(&printer).unwrap());
    let toml = format!(
        "role = \"kiosk\"\ndevice_id = \"{device_id}\"\nstate_dir = \"{}\"\n\
         [central]\nurl = \"{}\"\nca_file = \"{}\"\nheartbeat_s = 1\n\
         [peers]\nlisten = \"\"\n\
         [devices.printer]\nport = \"{}\"\n",
        dir.path().join("state").display(),
        central.at.api,
        central.at.ca_file.display(),
        printer.display()
    );
    std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
    Device { dir }
}

/// A lane device: one entry lane with a QR scanner, an ID-card reader and a turnstile.
struct LaneDevice {
    device: Device,
    scanner: SimScanner,
    id_reader: SimIdReader,
    gate: SimGate,
    _server: TcpServer,
    ups: hal::power::sim::SimUpsd,
}

async fn lane(central: &CentralSim, device_id: &str) -> LaneDevice {
    let dir = tempfile::tempdir().unwrap();
    let scanner = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
    let id_reader = SimIdReader::start(Pty::open_at(&dir.path().join("id-reader")).unwrap());
    let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
    gate.set_auto_walk(true);
    let (addr, server) = gate
        .serve_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (ups, ups_addr) = hal::power::sim::SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
        .await
        .unwrap();
    let toml = format!(
        "role = \"lane\"\ndevice_id = \"{device_id}\"\nstate_dir = \"{state}\"\n\
         [central]\nurl = \"{url}\"\nca_file = \"{ca}\"\nheartbeat_s = 1\n\
         [peers]\nlisten = \"\"\n\
         [devices.scanners.qr]\nport = \"{d}/scanner\"\n\
         [devices.id_readers.id]\nport = \"{d}/id-reader\"\n\
         [devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 10\npassage_timeout_ms = 2000\n\
         [lanes.east-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g\"\nscanners = [\"qr\"]\nid_reader = \"id\"\n\
         [power]\nnut = \"{ups_addr}/ups\"\npoll_ms = 50\n",
        state = dir.path().join("state").display(),
        url = central.at.api,
        ca = central.at.ca_file.display(),
        d = dir.path().display(),
    );
    std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
    LaneDevice {
        device: Device { dir },
        scanner,
        id_reader,
        gate,
        _server: server,
        ups,
    }
}

/// A lane device enrolled with a central-sim of its own, and a private bus
/// for its gated.
struct BusLane {
    dir: tempfile::TempDir,
    central: CentralSim,
    bus: Bus,
    lane: LaneDevice,
}

async fn bus_lane(device_id: &str) -> BusLane {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
    let bus = Bus::start(&dir.path().join("bus"), None).await;
    let lane = lane(&central, device_id).await;
    provision(&central, &lane.device, device_id, "lane").await;
    BusLane {
        dir,
        central,
        bus,
        lane,
    }
}

async fn provision(central: &CentralSim, device: &Device, device_id: &str, role: &str) {
    let code = central.pairing_code(device_id, role, 600).await;
    let (rc, out, err) = gatectl(&["provision", "--code", &code, "-c", &device.config_str()]).await;
    assert_eq!(rc, 0, "provision failed: {out}{err}");
}

/// The link's mode as the running gated on `bus` reports it (Device1.Mode,
/// through gatectl).
fn mode_of(bus: &str, config: &str) -> String {
    let out = std::process::Command::new(tests::procs::bin("gatectl"))
        .args(["--json", "status", "-c", config])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["central"]["mode"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_with_a_good_a_used_an_expired_and_a_mismatched_code() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let device = kiosk(&central, "kiosk-7");
    let cfg = device.config_str();

    // A code made for another device is refused and stays usable by it.
    let other = central.pairing_code("kiosk-8", "kiosk", 600).await;
    let (rc, _, err) = gatectl(&["provision", "--code", &other, "-c", &cfg]).await;
    assert_eq!(rc, 1);
    assert!(
        err.contains("code_mismatch") && err.contains("kiosk-8"),
        "{err}"
    );

    let expired = central.pairing_code("kiosk-7", "kiosk", -1).await;
    let (rc, _, err) = gatectl(&["provision", "--code", &expired, "-c", &cfg]).await;
    assert_eq!(rc, 1);
    assert!(
        err.contains("expired") && err.contains("new pairing code"),
        "{err}"
    );

    let (rc, _, err) = gatectl(&["provision", "--code", "00000000", "-c", &cfg]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!device.state().join("credentials.json").exists());

    let good = central.pairing_code("kiosk-7", "kiosk", 600).await;
    let (rc, out, err) = gatectl(&["provision", "--code", &good, "-c", &cfg]).await;
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("device id     kiosk-7"), "{out}");
    assert!(out.contains("role          kiosk"), "{out}");
    assert!(out.contains("signing keys  #1"), "{out}");
    // What was received is shown; the secrets are not.
    let creds = std::fs::read_to_string(device.state().join("credentials.json")).unwrap();
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    let token = creds["access"]["token"].as_str().unwrap();
    assert!(!out.contains(token), "the access token was printed");
    let key = std::fs::read_to_string(device.state().join("device.key")).unwrap();
    assert!(!out.contains(key.trim()));
    use std::os::unix::fs::PermissionsExt;
    for f in ["device.key", "credentials.json"] {
        let mode = std::fs::metadata(device.state().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let dir_mode = std::fs::metadata(device.state())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // The ID-hash key is in gated's database, and is what central-sim hashes with.
    let stored: i64 = db_count(
        &device.state(),
        "SELECT length(value) FROM device_settings WHERE name = 'id_hash_key'",
    );
    assert_eq!(stored, 32);

    let (rc, _, err) = gatectl(&["provision", "--code", &good, "-c", &cfg]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("already used"), "{err}");

    // --json for scripts: no secrets either.
    let again = central.pairing_code("kiosk-7", "kiosk", 600).await;
    let (rc, out, _) = gatectl(&["--json", "provision", "--code", &again, "-c", &cfg]).await;
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["device"]["device_id"], "kiosk-7");
    assert!(!out.contains(token));
}

/// How many descriptors process `pid` holds on `db`, opened for writing
/// and for reading only (from /proc: the access mode in each fd's flags).
fn db_connections(pid: u32, db: &Path) -> (usize, usize) {
    let db = db.canonicalize().unwrap();
    let (mut writers, mut readers) = (0, 0);
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = fd.unwrap();
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(db.as_path()) {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        // O_ACCMODE: 0 read only, 2 read and write.
        match flags & 0o3 {
            0 => readers += 1,
            _ => writers += 1,
        }
    }
    (writers, readers)
}

/// Tables a sync writes, as text, to compare two stores.
fn dump(state: &Path) -> String {
    let c = db(state);
    let mut out = String::new();
    for sql in [
        "SELECT id, serial, product_id, valid_from, valid_until, entries_allowed, group_size, hex(holder_hash), card_uid FROM tickets ORDER BY id",
        "SELECT ticket_id, reason FROM revoked ORDER BY ticket_id",
        "SELECT ticket_id, reason FROM blocked ORDER BY ticket_id",
        "SELECT id, name, lane_groups, entries_allowed, slot_start, slot_end FROM products ORDER BY id",
        "SELECT key_id, hex(public_key), valid_from, valid_until FROM signing_keys ORDER BY key_id",
    ] {
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line += &format!("{v:?}|");
                }
                Ok(line)
            })
            .unwrap();
        for row in rows {
            out += &row.unwrap();
            out.push('\n');
        }
    }
    out
}

const HOLDER_INDEX: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'tickets_by_holder'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_full_download_resumes_and_applying_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let made = central
        .admin("/sim/tickets", json!({ "count": 100_000 }))
        .await;
    let last_seq = made["seq"].as_u64().unwrap();
    // A refund in the feed too.
    let refund = central
        .admin("/sim/refund", json!({ "ticket_id": 17 }))
        .await;
    let device = kiosk(&central, "kiosk-1");
    provision(&central, &device, "kiosk-1", "kiosk").await;
    // The enrollment announced the site's new device list: the feed's head.
    let head = refund["seq"].as_u64().unwrap() + 1;
    let state = device.state();

    // Slow pages, so the download is still under way when the power goes.
    central
        .admin("/sim/fail", json!({ "mode": "slow", "slow_ms": 100 }))
        .await;
    let mut gated = Gated::start(&device.config());
    gated.wait_for(&["after cursor 0"]).await;
    wait_until("half the download", BOUND, || cursor(&state) >= 50_000).await;
    gated.kill().await;
    let interrupted = cursor(&state);
    assert!(
        interrupted >= 50_000 && interrupted < last_seq,
        "killed at cursor {interrupted}"
    );
    // Every stored page is whole: the tickets match the cursor exactly.
    assert_eq!(
        db_count(&state, "SELECT COUNT(*) FROM tickets") as u64,
        interrupted
    );
    // The holder index waits for the end of the download …
    assert_eq!(db_count(&state, HOLDER_INDEX), 0);

    central.admin("/sim/fail", json!({ "mode": "none" })).await;
    let mut gated = Gated::start(&device.config());
    gated
        .wait_for(&[&format!("after cursor {interrupted}")])
        .await;
    wait_until("the whole download", BOUND, || cursor(&state) == head).await;
    gated.stop().await;
    assert_eq!(db_count(&state, "SELECT COUNT(*) FROM tickets"), 100_000);
    // … and is there with the last page, so an ID card is found by index.
    assert_eq!(db_count(&state, HOLDER_INDEX), 1);
    let plan: String = db(&state)
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM tickets WHERE holder_hash = x'00'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("tickets_by_holder"), "{plan}");
    assert_eq!(
        db_count(&state, "SELECT COUNT(*) FROM revoked WHERE ticket_id = 17"),
        1
    );
    let first = dump(&state);

    // The same changes again, from the start: the store is the same.
    {
        let c = rusqlite::Connection::open(state.join("gated.db")).unwrap();
        c.execute(
            "UPDATE device_settings SET value = CAST('0' AS BLOB) WHERE name IN ('sync.cursor', 'sync.catalog_version')",
            [],
        )
        .unwrap();
    }
    let mut gated = Gated::start(&device.config());
    gated.wait_for(&["after cursor 0"]).await;
    wait_until("the download again", BOUND, || cursor(&state) == head).await;
    gated.stop().await;
    assert_eq!(dump(&state), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_kill_and_an_outage_and_drains_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let addr = central.api_addr();
    let lane = lane(&central, "lane-1").await;
    provision(&central, &lane.device, "lane-1", "lane").await;
    let state = lane.device.state();
    let bus = Bus::start(&dir.path().join("bus"), None).await;
    let cfg = lane.device.config_str();
    let mut tokens = Vec::new();
    for _ in 0..6 {
        let t = central.admin("/sim/sell", json!({})).await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated
        .wait_for_all(&[&["catalog updated"], &["device=\"qr\"", "connected"]])
        .await;

    // Online: a passage is uploaded.
    lane.scanner.scan(&tokens[0]).await.unwrap();
    gated.wait_for(&["admitted"]).await;
    wait_until("the first event uploaded", BOUND, || {
        db_count(&state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    // A start with the central system reachable is no mode change: the link's
    // first attempt is not an outage.
    let kinds: Vec<String> = central
        .events()
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["passage"], "events uploaded after a clean start");

    // The central system goes away; passages go on and queue up.
    central.kill().await;
    for t in &tokens[1..4] {
        lane.scanner.scan(t).await.unwrap();
        gated.wait_for(&["admitted"]).await;
    }
    wait_until("offline", BOUND, || {
        mode_of(&bus.address, &cfg) == "offline"
    })
    .await;
    // Three passages, and the device's move to offline mode.
    let passages_queued = "SELECT COUNT(*) FROM outbox WHERE kind = 'passage'";
    assert_eq!(db_count(&state, passages_queued), 3);
    assert_eq!(
        db_count(
            &state,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'mode_change' AND body LIKE '%\"to\":\"offline\"%'"
        ),
        1
    );

    // Power cut: gated dies; on restart the outbox is still there.
    gated.kill().await;
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated.wait_for(&["device=\"qr\"", "connected"]).await;
    lane.scanner.scan(&tokens[4]).await.unwrap();
    gated.wait_for(&["admitted"]).await;
    assert_eq!(db_count(&state, passages_queued), 4);
    let queued = db_count(&state, "SELECT COUNT(*) FROM outbox");
    let (rc, out, _) = gatectl_on_bus(&bus.address, &["status", "-c", &cfg]).await;
    assert_eq!(rc, 0);
    assert!(out.contains("OFFLINE since"), "{out}");
    assert!(
        out.contains(&format!("outbox        {queued} event(s)")),
        "{out}"
    );
    assert!(
        !out.contains("unreachable: central system unreachable"),
        "{out}"
    );

    // Back, on the same address with the same data.
    let central = CentralSim::start(dir.path(), &addr).await;
    wait_until("the outbox drained", BOUND, || {
        db_count(&state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    wait_until("online", BOUND, || mode_of(&bus.address, &cfg) == "online").await;
    lane.scanner.scan(&tokens[5]).await.unwrap();
    gated.wait_for(&["admitted"]).await;
    wait_until("the last event uploaded", BOUND, || {
        db_count(&state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    gated.stop().await;

    // Every passage gated recorded is at the central system exactly once.
    let mut recorded: Vec<String> = db(&state)
        .prepare("SELECT nonce FROM passages ORDER BY nonce")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    recorded.sort();
    let central_nonces = central.event_nonces("passage").await;
    assert_eq!(recorded.len(), 6);
    assert_eq!(central_nonces, recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_sale_reaches_the_lane_by_long_poll_and_a_refund_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let lane = lane(&central, "lane-2").await;
    provision(&central, &lane.device, "lane-2", "lane").await;
    let state = lane.device.state();
    let bus = Bus::start(&dir.path().join("bus"), None).await;
    // The device clock is 10 minutes off the central system's.
    central
        .admin(
            "/sim/fail",
            json!({ "mode": "none", "clock_offset_ms": 600_000 }),
        )
        .await;
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated
        .wait_for_all(&[
            &["catalog updated"],
            &["the device clock is", "s off the central system"],
            &["device=\"id\"", "connected"],
        ])
        .await;
    // Lanes, link, modes and the bus share one writer connection (and one reader).
    let (writers, readers) = db_connections(gated.child.id().unwrap(), &state.join("gated.db"));
    assert_eq!(
        (writers, readers),
        (1, 1),
        "gated.db opened for writing {writers}×, reading {readers}×"
    );

    // Sold online, bound to an ID card: only the change feed can tell the lane.
    // Once the device is caught up, its request for changes is held open.
    let deadline = tokio::time::Instant::now() + BOUND;
    while central.stats().await.longpoll_waiting == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no long poll held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wakes_before = central.stats().await.longpoll_wakes;
    let card = test_cards()[0].clone();
    let sold = central
        .admin("/sim/sell", json!({ "id_number": card.id_number }))
        .await;
    let id = sold["ticket_id"].as_i64().unwrap();
    wait_until("the sale at the lane", BOUND, || {
        db_count(
            &state,
            &format!("SELECT COUNT(*) FROM tickets WHERE id = {id}"),
        ) == 1
    })
    .await;
    // It came through a held request that the sale woke (long poll, config long_poll_s = 25).
    assert!(central.stats().await.longpoll_wakes > wakes_before);
    lane.id_reader.present(card);
    let line = gated.wait_for(&["admitted"]).await;
    assert!(line.contains(&format!("ticket={id}")), "{line}");
    lane.id_reader.remove();

    // The skew is shown, and did not make the valid ticket invalid.
    let (_, out, _) = gatectl_on_bus(
        &bus.address,
        &["--json", "status", "-c", &lane.device.config_str()],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let skew = v["central"]["clock_skew_ms"].as_i64().unwrap();
    assert!((598_000..=602_000).contains(&skew), "{out}");
    assert_eq!(v["central"]["clock_skew_reported"], true);
    let (_, out, _) =
        gatectl_on_bus(&bus.address, &["status", "-c", &lane.device.config_str()]).await;
    assert!(out.contains("clock skew    +"), "{out}");
    assert!(out.contains("set the time (NTP)"), "{out}");

    // The device's token expires: it signs a new challenge and carries on.
    central.admin("/sim/expire-tokens", json!({})).await;

    // A refund reaches the lane as fast, and the next scan fails.
    let other = central.admin("/sim/sell", json!({})).await;
    let other_id = other["ticket_id"].as_i64().unwrap();
    central
        .admin("/sim/refund", json!({ "ticket_id": other_id }))
        .await;
    wait_until("the refund at the lane", BOUND, || {
        db_count(
            &state,
            &format!("SELECT COUNT(*) FROM revoked WHERE ticket_id = {other_id}"),
        ) == 1
    })
    .await;
    gated.wait_for(&["access token renewed"]).await;
    lane.scanner
        .scan(other["token"].as_str().unwrap())
        .await
        .unwrap();
    let line = gated.wait_for(&["refused"]).await;
    assert!(line.contains("reason=\"revoked\""), "{line}");
    gated.stop().await;
}

/// Every path and method of docs/central-api.yaml is served by central-sim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_sim_serves_every_documented_route_over_tls() {
    let doc = std::fs::read_to_string(tests::repo_root().join("docs/central-api.yaml")).unwrap();
    let mut routes = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.starts_with("paths:");
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ") {
            let m = m.trim_end_matches(':');
            if ["get", "post", "put", "delete", "patch"].contains(&m) {
                routes.push((m.to_owned(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 13, "{routes:?}");
    for p in [
        "enroll",
        "auth/challenge",
        "auth/token",
        "catalog",
        "availability",
        "changes",
        "events",
        "orders",
        "pickup",
        "heartbeat",
    ] {
        assert!(
            routes.iter().any(|(_, r)| r == &format!("/{p}")),
            "{p} is not documented"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(dir.path(), "127.0.0.1:0").await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&central.at.ca_file).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    for (method, path) in &routes {
        let url = format!("{}{}", central.at.api, path.replace("{order_no}", "O1"));
        let req = match method.as_str() {
            "get" => http.get(&url),
            _ => http.post(&url).json(&json!({})),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(
            status != 404 && status != 405
                || body.contains("code_unknown")
                || body.contains("device_unknown"),
            "{method} {path}: {status} {body}"
        );
    }
    // Without the pinned CA, the certificate is refused.
    let plain = reqwest::Client::new();
    let e = plain
        .get(format!("{}/catalog", central.at.api))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").to_lowercase().contains("certificate"),
        "{e:?}"
    );
}

/// An engineer locks a lane, reopens it, and lets one person through, with
/// gatectl through the running gated (Lane1); all of it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_changes_a_lane_through_gatectl() {
    let BusLane {
        dir: _dir,
        central,
        bus,
        lane,
    } = bus_lane("lane-3").await;
    let state = lane.device.state();
    let cfg = lane.device.config_str();
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated
        .wait_for_all(&[
            &["catalog updated"],
            &["D-Bus API served"],
            &["device=\"qr\"", "connected"],
        ])
        .await;
    let t1 = central.admin("/sim/sell", json!({})).await;

    let (rc, _, err) = gatectl_on_bus(&bus.address, &["lane", "east-1", "mode", "locked"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(lane.gate.mode(), hal::gate::GateMode::Locked);
    lane.scanner
        .scan(t1["token"].as_str().unwrap())
        .await
        .unwrap();
    let line = gated.wait_for(&["refused"]).await;
    assert!(line.contains("lane_closed"), "{line}");

    let (rc, _, _) = gatectl_on_bus(&bus.address, &["lane", "east-1", "mode", "normal"]).await;
    assert_eq!(rc, 0);
    lane.scanner
        .scan(t1["token"].as_str().unwrap())
        .await
        .unwrap();
    gated.wait_for(&["admitted"]).await;

    let (rc, out, err) = gatectl_on_bus(&bus.address, &["lane", "east-1", "open"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("opened once (entry)") && out.contains("passed"),
        "{out}"
    );
    gated.wait_for(&["lane opened once by an engineer"]).await;
    wait_until("the manual opening uploaded", BOUND, || {
        db_count(&state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    let events = central.events().await;
    assert!(
        events.iter().any(|e| e["kind"] == "manual_open"),
        "{events:?}"
    );
    // Who locked the lane and who opened it again reach the operators.
    let modes: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "lane_mode")
        .filter_map(|e| e["body"]["mode"].as_str())
        .collect();
    assert_eq!(modes, ["locked", "normal"], "{events:?}");

    let (rc, out, _) = gatectl_on_bus(&bus.address, &["status", "-c", &cfg]).await;
    assert_eq!(rc, 0);
    let lane_line = out
        .lines()
        .find(|l| l.starts_with("  lanes"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        lane_line.contains("normal") && lane_line.contains("in    1"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("gate of east-1") && l.ends_with("connected")),
        "{out}"
    );
    // Self-tests: the gate answers; the scanner reads what the engineer scans.
    let (rc, out, _) = gatectl_on_bus(&bus.address, &["test", "gate", "east-1"]).await;
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("PASS  gate of east-1 answers: mode normal"),
        "{out}"
    );
    let addr = bus.address.clone();
    let test = tokio::spawn(async move { gatectl_on_bus(&addr, &["test", "scanner", "qr"]).await });
    gated.wait_for(&["self-test: waiting for a read"]).await;
    lane.scanner.scan("HELLO-ENGINEER").await.unwrap();
    let (rc, out, _) = test.await.unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("Scan any code with qr"), "{out}");
    assert!(
        out.contains("PASS  qr read a 14-character code starting \"HELLO-\""),
        "{out}"
    );
    let (rc, out, _) = gatectl_on_bus(&bus.address, &["test", "ups"]).await;
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("PASS  UPS answers (nut 127.0.0.1:"), "{out}");
    assert!(out.contains("on mains"), "{out}");
    lane.ups.set("ups.status", "OB");
    lane.ups.set("battery.charge", "80");
    gated.wait_for(&["power: ON BATTERY"]).await;
    let (_, out, _) = gatectl_on_bus(&bus.address, &["status", "-c", &cfg]).await;
    assert!(out.contains("power         ON BATTERY, 80 %"), "{out}");
    lane.ups.set("ups.status", "OL");
    gated.wait_for(&["power: on mains"]).await;
    let (rc, out, _) = gatectl_on_bus(&bus.address, &["logs", "-c", &cfg]).await;
    assert_eq!(rc, 0);
    assert!(out.contains("entry at lane east-1: ticket"), "{out}");

    let (rc, _, err) = gatectl_on_bus(&bus.address, &["lane", "west-9", "mode", "free"]).await;
    assert_eq!(rc, 1);
    assert!(
        err.contains("no lane \"west-9\"") && err.contains("east-1"),
        "{err}"
    );
    let (rc, _, err) = gatectl_on_bus(&bus.address, &["lane", "east-1", "mode", "sideways"]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("InvalidArgument"), "{err}");
    gated.stop().await;
}

/// Without a UPS the power view never changes; gated must keep its bus
/// name all the same (it once dropped the connection with the watcher of
/// power changes, found by the QEMU image test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_without_a_ups_stays_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
    let bus = Bus::start(&dir.path().join("bus"), None).await;
    let lane = lane(&central, "lane-5").await;
    let toml = std::fs::read_to_string(lane.device.config()).unwrap();
    let (without_ups, _) = toml.split_once("[power]").unwrap();
    std::fs::write(lane.device.config(), without_ups).unwrap();
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated
        .wait_for_all(&[&["D-Bus API served"], &["gated ready"]])
        .await;
    for _ in 0..3 {
        let (rc, out, err) =
            gatectl_on_bus(&bus.address, &["status", "-c", &lane.device.config_str()]).await;
        assert_eq!(rc, 0, "{err}");
        assert!(out.contains("east-1"), "{out}");
        assert!(out.contains("power         no UPS configured"), "{out}");
        assert!(!out.contains("not reachable on D-Bus"), "{out}");
    }
    gated.stop().await;
}

/// In free mode the gate counts by itself. A visitor in and another out
/// between two polls are two events: both are recorded and both reach the
/// central system (they used to share one nonce, and the second was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_and_an_exit_counted_in_one_poll_are_both_uploaded() {
    let BusLane {
        dir: _dir,
        central,
        bus,
        lane,
    } = bus_lane("lane-free").await;
    let mut gated = Gated::start_on_bus(&lane.device.config(), &bus.address);
    gated
        .wait_for_all(&[&["catalog updated"], &["D-Bus API served"]])
        .await;
    let (rc, _, err) = gatectl_on_bus(&bus.address, &["lane", "east-1", "mode", "free"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(lane.gate.mode(), hal::gate::GateMode::Free);
    for round in 1..=3 {
        // Both counters move at once: one poll sees both.
        lane.gate.set_counters(round, round);
        let deadline = tokio::time::Instant::now() + BOUND;
        let mut nonces = central.event_nonces("free_passage").await;
        while nonces.len() < 2 * round as usize && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            nonces = central.event_nonces("free_passage").await;
        }
        assert_eq!(
            nonces.len(),
            2 * round as usize,
            "round {round}: {nonces:?}"
        );
    }
    let events = central.events().await;
    let free: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "free_passage")
        .map(|e| {
            let body = &e["body"];
            (
                body["direction"].as_str().unwrap().to_owned(),
                body["persons"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        free.iter().filter(|(d, _)| d == "entry").count(),
        3,
        "{free:?}"
    );
    assert_eq!(
        free.iter().filter(|(d, _)| d == "exit").count(),
        3,
        "{free:?}"
    );
    assert!(free.iter().all(|(_, p)| *p == 1), "{free:?}");
    gated.stop().await;
}

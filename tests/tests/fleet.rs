//! The fleet: several gated processes as separate devices of one site, each
//! with its own state directory, bus, scanner and turnstile, with
//! central-sim; the site network between them runs through proxies the test
//! cuts and heals, and central-sim is killed and started again for real.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hal::display::sim::SimDisplay;
use hal::gate::RegisterMap;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use serde_json::{Value, json};
use tests::procs::{Bus, CentralSim, Gated, db, gatectl, gatectl_on_bus, wait_until};
use tests::proxy::{Link, Proxy};

/// Generous: these bound waits for events, they do not measure them.
const BOUND: Duration = Duration::from_secs(30);

/// One lane device of the site.
struct Device {
    id: String,
    dir: tempfile::TempDir,
    scanner: SimScanner,
    /// The lane's exit-side reader (one turnstile, used both ways).
    exit_scanner: SimScanner,
    /// The lane's display: decisions, and the occupancy notice between visitors.
    display: SimDisplay,
    gate: SimGate,
    /// Its UPS (NUT): mains lost puts the lanes in their power-fail mode.
    ups: hal::power::sim::SimUpsd,
    _server: TcpServer,
    bus: Bus,
    /// What the other devices dial: the site network's link to this one.
    proxy: Proxy,
    gated: Option<Gated>,
}

impl Device {
    /// `extra`: more of gated.toml (whole sections).
    async fn new(central: &CentralSim, id: &str, seed: u64, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let scanner = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
        let exit_scanner = SimScanner::new(Pty::open_at(&dir.path().join("scanner-out")).unwrap());
        let display = SimDisplay::start(Pty::open_at(&dir.path().join("display")).unwrap());
        let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
        gate.set_auto_walk(true);
        // Visitors hesitate before they walk through.
        gate.set_hesitant_visitors(Some(Duration::from_millis(300)), seed);
        let (addr, server) = gate
            .serve_tcp("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let bus = Bus::start(&dir.path().join("bus"), None).await;
        let (ups, ups_addr) =
            hal::power::sim::SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
                .await
                .unwrap();
        let proxy = Proxy::start().await;
        let toml = format!(
            "role = \"lane\"\ndevice_id = \"{id}\"\nstate_dir = \"{state}\"\n\
             [central]\nurl = \"{url}\"\nca_file = \"{ca}\"\nheartbeat_s = 300\nlong_poll_s = 25\n\
             [peers]\nlisten = \"127.0.0.1:0\"\nadvertise = \"{advertise}\"\n\
             [power]\nnut = \"{ups_addr}/ups\"\npoll_ms = 50\ndebounce_ms = 0\ngrace_s = 3600\n\
             [devices.scanners.qr]\nport = \"{d}/scanner\"\n\
             [devices.scanners.qr-out]\nport = \"{d}/scanner-out\"\n\
             [devices.displays.d]\nport = \"{d}/display\"\n\
             [devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 10\npassage_timeout_ms = 5000\n\
             [lanes.{id}-1]\ndirection = \"both\"\ngroup = \"east\"\ngate = \"g\"\n\
             scanners = [\"qr\"]\nexit_scanners = [\"qr-out\"]\ndisplay = \"d\"\n{extra}",
            state = dir.path().join("state").display(),
            url = central.at.api,
            ca = central.at.ca_file.display(),
            advertise = proxy.addr,
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
        let code = central.pairing_code(id, "lane", 600).await;
        let (rc, out, err) = gatectl(&["provision", "--code", &code, "-c", &config(&dir)]).await;
        assert_eq!(rc, 0, "provision {id}: {out}{err}");
        Device {
            id: id.into(),
            dir,
            scanner,
            exit_scanner,
            display,
            gate,
            ups,
            _server: server,
            bus,
            proxy,
            gated: None,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts gated and points the proxy at where it listens.
    async fn start(&mut self) {
        let mut g = Gated::start_on_bus(&self.dir.path().join("gated.toml"), &self.bus.address);
        let line = g.wait_for(&["site network: listening on"]).await;
        let listen: SocketAddr = field(&line, "listen=").parse().unwrap();
        self.proxy.set_target(listen);
        self.gated = Some(g);
    }

    fn log(&mut self) -> &mut Gated {
        self.gated.as_mut().expect("gated running")
    }

    async fn status(&self) -> Value {
        let (_, out, _) = gatectl_on_bus(
            &self.bus.address,
            &["--json", "status", "-c", &config(&self.dir)],
        )
        .await;
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }

    /// Scans a code on the entry side and returns the lane's decision line.
    async fn scan(&mut self, code: &str) -> String {
        self.scanner.scan(code).await.unwrap();
        self.decision().await
    }

    async fn decision(&mut self) -> String {
        loop {
            let line = self.log().wait_for(&["lane="]).await;
            if ["admitted", "refused:", "not passed", "alarm", "fault"]
                .iter()
                .any(|o| line.contains(o))
            {
                return line;
            }
        }
    }

    async fn admitted(&mut self, code: &str) {
        let line = self.scan(code).await;
        assert!(line.contains("admitted"), "{}: {line}", self.id);
    }

    async fn refused_as_used(&mut self, code: &str) {
        self.refused(code, "already_used").await;
    }

    async fn refused(&mut self, code: &str, reason: &str) {
        let line = self.scan(code).await;
        assert!(
            line.contains(&format!("reason=\"{reason}\"")),
            "{}: {line}",
            self.id
        );
    }

    /// Leaves through the lane's exit side.
    async fn leaves(&mut self, code: &str) {
        self.exit_scanner.scan(code).await.unwrap();
        let line = self.decision().await;
        assert!(line.contains("admitted"), "{} exit: {line}", self.id);
    }

    /// Entries per ticket as this device has recorded them (every device's passages).
    fn usage(&self) -> BTreeMap<i64, i64> {
        db(&self.state())
            .prepare(
                "SELECT ticket_id, SUM(persons) FROM passages WHERE direction = 'entry' GROUP BY ticket_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn has_passage(&self, ticket: i64) -> bool {
        self.usage().contains_key(&ticket)
    }
}

fn config(dir: &tempfile::TempDir) -> String {
    dir.path().join("gated.toml").display().to_string()
}

/// `key=value` out of a log line (the value up to the next space).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[at..]
        .split([' ', ','])
        .next()
        .unwrap()
        .trim_matches('"')
}

/// `what` within BOUND, or the test fails saying what did not happen.
async fn wait<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {BOUND:?}"))
}

/// Waits until `sql` counts exactly one row at each of `devices`.
async fn at_each(devices: &[Device], what: &str, sql: &str) {
    for d in devices {
        let state = d.state();
        wait_until(what, BOUND, || tests::procs::db_count(&state, sql) == 1).await;
    }
}

/// Every peer of every device reachable.
async fn all_reachable(devices: &[Device]) {
    let deadline = tokio::time::Instant::now() + BOUND * 2;
    'again: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers never all reachable"
        );
        for d in devices {
            let s = d.status().await;
            let peers = s["fleet"]["peers"].as_array().cloned().unwrap_or_default();
            if peers.len() != devices.len() - 1 || peers.iter().any(|p| p["reachable"] != true) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'again;
            }
        }
        return;
    }
}

async fn sell(central: &CentralSim) -> (i64, String) {
    let t = central.admin("/sim/sell", json!({})).await;
    (
        t["ticket_id"].as_i64().unwrap(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

async fn site(central: &CentralSim, n: usize) -> Vec<Device> {
    site_with(central, n, "").await
}

/// The same, each device's gated.toml ending with `extra`.
async fn site_with(central: &CentralSim, n: usize, extra: &str) -> Vec<Device> {
    let mut devices = Vec::new();
    for i in 0..n {
        let id = format!("lane-{}", (b'a' + i as u8) as char);
        devices.push(Device::new(central, &id, i as u64 + 1, extra).await);
    }
    for d in &mut devices {
        d.start().await;
    }
    // Each learns the others from the catalog once their heartbeats told
    // the central system where they listen.
    all_reachable(&devices).await;
    devices
}

/// Entries per ticket as central-sim received them (each passage event once).
async fn central_usage(central: &CentralSim) -> (BTreeMap<i64, i64>, usize) {
    let events = central.events().await;
    let passages: Vec<&Value> = events.iter().filter(|e| e["kind"] == "passage").collect();
    let mut usage = BTreeMap::new();
    for e in &passages {
        let body = &e["body"];
        let body: Value = match body {
            Value::String(s) => serde_json::from_str(s).unwrap(),
            v => v.clone(),
        };
        if body["direction"] == "entry" {
            *usage
                .entry(body["ticket_id"].as_i64().unwrap())
                .or_insert(0) += body["persons"].as_i64().unwrap();
        }
    }
    (usage, passages.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_used_at_one_device_is_refused_at_every_other_with_the_central_system_up_or_down()
{
    let dir = tempfile::tempdir().unwrap();
    let mut central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
    let api = central.api_addr();
    let mut devices = site(&central, 3).await;
    let sold: Vec<(i64, String)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(sell(&central).await);
        }
        v
    };
    for (id, _) in &sold {
        let sql = format!("SELECT COUNT(*) FROM tickets WHERE id = {id}");
        at_each(&devices, "every sale at every device", &sql).await;
    }

    // 1. Central up, site network cut: the passage reaches the others through the central system.
    for d in &devices {
        d.proxy.set(Link::Cut);
    }
    let (t1, code1) = &sold[0];
    devices[0].admitted(code1).await;
    let sql = format!("SELECT COUNT(*) FROM passages WHERE ticket_id = {t1}");
    at_each(
        &devices[1..],
        "the passage through the central system",
        &sql,
    )
    .await;
    devices[1].refused_as_used(code1).await;
    devices[2].refused_as_used(code1).await;
    for d in &devices {
        d.proxy.set(Link::Up);
    }
    all_reachable(&devices).await;

    // 2. Central down, site network up: through the peers.
    central.kill().await;
    let (t2, code2) = &sold[1];
    devices[1].admitted(code2).await;
    for i in [0, 2] {
        let t = *t2;
        let d = &devices[i];
        wait_until("the passage through the site network", BOUND, || {
            d.has_passage(t)
        })
        .await;
        devices[i].refused_as_used(code2).await;
    }

    // 3. A peer down during a passage, back later: it catches up by cursor
    // before its next scan of that ticket.
    let c = devices[2].gated.take().unwrap();
    c.kill().await;
    let (t3, code3) = &sold[2];
    devices[0].admitted(code3).await;
    devices[2].start().await;
    devices[2].log().wait_for(&["following peer lane-a"]).await;
    let t = *t3;
    wait_until("lane-c caught up with lane-a", BOUND, || {
        devices[2].has_passage(t)
    })
    .await;
    devices[2].refused_as_used(code3).await;

    // 4. Two devices scan one ticket inside the propagation window (the
    // site network cut, the central system down): both admit, once each;
    // the later passage is marked conflict everywhere once it is known, and
    // the ticket is refused at every device.
    for d in &devices {
        d.proxy.set(Link::Cut);
    }
    let (t4, code4) = &sold[3];
    devices[0].admitted(code4).await;
    devices[1].admitted(code4).await;
    for d in &devices {
        d.proxy.set(Link::Up);
    }
    let sql = format!("SELECT COUNT(*) FROM passages WHERE ticket_id = {t4} AND conflict = 1");
    at_each(&devices, "the conflict marked at every device", &sql).await;
    devices[2].refused_as_used(code4).await;
    devices[0].refused_as_used(code4).await;
    // Device1 counts what the database holds.
    let deadline = tokio::time::Instant::now() + BOUND;
    while devices[1].status().await["fleet"]["conflicts"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "conflict not in the status"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, text, _) = gatectl_on_bus(
        &devices[1].bus.address,
        &["status", "-c", &config(&devices[1].dir)],
    )
    .await;
    assert!(text.contains("1 CONFLICT(S)"), "{text}");
    assert!(
        text.contains("lane-a") && text.contains("reachable"),
        "{text}"
    );

    // 5. Everything healed: the central system has each passage once, and
    // every device's usage of every ticket equals the central system's.
    central = CentralSim::start(&dir.path().join("central"), &api).await;
    let admitted = 5; // t1@a, t2@b, t3@a, t4@a, t4@b
    let deadline = tokio::time::Instant::now() + BOUND * 2;
    loop {
        let (usage, events) = central_usage(&central).await;
        let agree = events == admitted && devices.iter().all(|d| d.usage() == usage);
        if agree {
            assert_eq!(usage[t1], 1);
            assert_eq!(usage[t4], 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreement: central {usage:?} ({events} passage events), devices {:?}",
            devices.iter().map(Device::usage).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The conflict reached the central system once, however many devices found it.
    let conflicts = central.event_nonces("conflict").await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");

    // 6. Re-entry across devices: a ticket that lets its holder in again
    // after an exit, entered at A, is refused at B until it leaves there;
    // that exit lets it in again at A, and only once.
    central
        .admin(
            "/sim/products",
            json!({
                "id": 9, "name": "园内通票", "name_en": "Day ticket, re-entry after exit",
                "price_cents": 15000, "real_name": false, "lane_groups": [],
                "entries_allowed": 0, "per_day_limit": 0,
                "reentry_after_exit": true, "reentry_minutes": 0,
                "weekdays": 127, "slots": [{ "start_minute": 0, "end_minute": 1440 }]
            }),
        )
        .await;
    let t = central.admin("/sim/sell", json!({ "product_id": 9 })).await;
    let (t5, code5) = (
        t["ticket_id"].as_i64().unwrap(),
        t["token"].as_str().unwrap(),
    );
    let sql = format!("SELECT COUNT(*) FROM tickets WHERE id = {t5}");
    at_each(&devices, "the re-entry ticket at every device", &sql).await;
    devices[0].admitted(code5).await;
    let entered =
        format!("SELECT COUNT(*) FROM passages WHERE ticket_id = {t5} AND direction = 'entry'");
    at_each(&devices[1..2], "the entry at lane-b", &entered).await;
    devices[1].refused(code5, "exit_first").await;
    devices[1].leaves(code5).await;
    let left =
        format!("SELECT COUNT(*) FROM passages WHERE ticket_id = {t5} AND direction = 'exit'");
    at_each(&devices[..1], "the exit at lane-a", &left).await;
    devices[0].admitted(code5).await;
    devices[0].refused(code5, "exit_first").await;
    for mut d in devices {
        d.gated.take().unwrap().stop().await;
    }
}

/// Dials `addr` as a device holding `key`, says hello, and returns the
/// first message it gets (Err: the connection was refused or dropped).
async fn dial(
    addr: SocketAddr,
    key: &ed25519_dalek::SigningKey,
    expected: [u8; 32],
) -> Result<String, String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let certified = gated::peers::tls::certified_key(key)?;
    let config = gated::peers::tls::client_config(certified, expected)?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(gated::peers::tls::server_name(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"{\"type\":\"hello\",\"device_id\":\"intruder\",\"cursor\":0}\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let n = tokio::time::timeout(BOUND, BufReader::new(tls).read_line(&mut line))
        .await
        .map_err(|_| "silence".to_owned())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed".into());
    }
    Ok(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_tampered_and_revoked_peers_are_refused_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
    let mut devices = site(&central, 3).await;
    let a_key: [u8; 32] = gated::peers::parse_key(
        devices[0].status().await["fleet"]["public_key"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let a_listen: SocketAddr = devices[0].status().await["fleet"]["listening"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Forged: a key that is no device of the site.
    let stranger = gated::central::identity::generate_key();
    let r = dial(a_listen, &stranger, a_key).await;
    assert!(r.is_err(), "a stranger was served: {r:?}");
    devices[0]
        .log()
        .wait_for(&["peer refused", "is no device of this site"])
        .await;

    // Replayed: what lane-b sent to lane-a on one connection, sent again
    // on a new one, is a handshake that cannot complete.
    let recorded = devices[0].proxy.recorded();
    let session = recorded.iter().max_by_key(|r| r.len()).cloned().unwrap();
    assert!(session.len() > 100, "nothing recorded");
    let mut tcp = tokio::net::TcpStream::connect(a_listen).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &session)
        .await
        .unwrap();
    devices[0]
        .log()
        .wait_for(&["peer connection from", "refused: TLS handshake failed"])
        .await;
    drop(tcp);

    // Tampered: one bit changed in what lane-b sends (its passages, its
    // pings) fails the connection at the follower; nothing is recorded from
    // it; once the link is clean again it catches up.
    devices[1].proxy.set(Link::Tamper { after: 400 });
    for i in [0, 2] {
        devices[i]
            .log()
            .wait_for(&["peer lane-b unreachable", "decrypt"])
            .await;
    }
    devices[1].proxy.set(Link::Up);
    all_reachable(&devices).await;

    // Re-provisioned while running: lane-b enrolls again with a new key;
    // it presents that key from then on, and the others learn it from the
    // catalog, so the site network carries on without a restart.
    let old_key = devices[1].status().await["fleet"]["public_key"].clone();
    let code = central.pairing_code("lane-b", "lane", 600).await;
    let (rc, out, err) = gatectl_on_bus(
        &devices[1].bus.address,
        &["provision", "--code", &code, "-c", &config(&devices[1].dir)],
    )
    .await;
    assert_eq!(rc, 0, "provision again: {out}{err}");
    let deadline = tokio::time::Instant::now() + BOUND;
    while devices[1].status().await["fleet"]["public_key"] == old_key {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lane-b still presents its old key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    devices[0].log().wait_for(&["following peer lane-b"]).await;
    devices[1].log().wait_for(&["following peer lane-a"]).await;
    all_reachable(&devices).await;

    // Revoked: the central system revokes lane-c; the others drop it and
    // refuse it, and it no longer follows or is followed.
    central
        .admin("/sim/devices/revoke", json!({ "device_id": "lane-c" }))
        .await;
    devices[0]
        .log()
        .wait_for(&["peer refused: device lane-c is revoked"])
        .await;
    let s = devices[0].status().await;
    let peers: Vec<&str> = s["fleet"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["lane-b"], "{s:#}");
    assert!(s["fleet"]["refused"].as_u64().unwrap() >= 3, "{s:#}");
    for mut d in devices {
        d.gated.take().unwrap().stop().await;
    }
}

/// The site's occupancy as `device` sees it (`gatectl --json capacity`).
async fn occupancy(device: &Device) -> Value {
    let (_, out, _) = gatectl_on_bus(
        &device.bus.address,
        &["--json", "capacity", "-c", &config(&device.dir)],
    )
    .await;
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

/// Waits until every device's view of the whole site satisfies `f`.
async fn site_is(devices: &[Device], what: &str, f: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    for d in devices {
        loop {
            let o = occupancy(d).await;
            if f(&o["site"]) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the site is not {what}: {o:#}",
                d.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupancy_adds_up_across_devices_and_a_full_site_refuses_entries_until_someone_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
    // The approved capacity comes with the catalog; gated.toml sets none.
    central
        .admin(
            "/sim/capacity",
            json!({ "scope": "site", "instant_capacity": 3 }),
        )
        .await;
    let mut devices = site_with(&central, 3, "").await;
    site_is(&devices, "the catalog's capacity", |s| {
        s["instant_capacity"] == 3
    })
    .await;
    let mut sold = Vec::new();
    for _ in 0..6 {
        sold.push(sell(&central).await.1);
    }
    let inside = |n: u64| move |s: &Value| s["inside"] == n;

    // In at A and B, out at C: every device counts the same.
    devices[0].admitted(&sold[0]).await;
    devices[1].admitted(&sold[1]).await;
    site_is(&devices, "2 inside", inside(2)).await;
    devices[2].leaves(&sold[0]).await;
    site_is(&devices, "1 inside after an exit at C", |s| {
        s["inside"] == 1 && s["entries"] == 2 && s["exits"] == 1
    })
    .await;

    // Full: every entry lane refuses new entries; the exit stays open.
    devices[0].admitted(&sold[2]).await;
    devices[1].admitted(&sold[3]).await;
    site_is(&devices, "full", |s| s["full"] == true && s["tier"] == 100).await;
    devices[2].refused(&sold[4], "capacity_full").await;
    devices[0].refused(&sold[4], "capacity_full").await;
    let (_, text, _) = gatectl_on_bus(
        &devices[1].bus.address,
        &["capacity", "-c", &config(&devices[1].dir)],
    )
    .await;
    assert!(text.contains("FULL: entries refused"), "{text}");
    assert!(text.contains("inside     3 of     3"), "{text}");
    // Every lane display says so between visitors, in both languages.
    for d in &devices {
        let shown = wait(
            "the full notice on the lane display",
            d.display.wait_until(|v| {
                v.last().is_some_and(|l| {
                    l == "景区游客已满，请稍候入园 The park is full: please wait a moment"
                })
            }),
        )
        .await;
        assert!(shown.len() >= 2, "{}: {shown:?}", d.id);
    }

    // A supervisor's override at C admits past the capacity there, recorded
    // with its reason; turned off, C refuses again.
    let bus_c = devices[2].bus.address.clone();
    let ctl = |args: &'static [&'static str]| {
        let bus = bus_c.clone();
        async move { gatectl_on_bus(&bus, args).await }
    };
    let (rc, out, err) = ctl(&[
        "capacity",
        "override",
        "site",
        "on",
        "--reason",
        "school group with its guide",
    ])
    .await;
    assert_eq!(rc, 0, "{out}{err}");
    devices[2].admitted(&sold[5]).await;
    let (_, text, _) = gatectl_on_bus(
        &devices[2].bus.address,
        &["capacity", "-c", &config(&devices[2].dir)],
    )
    .await;
    assert!(
        text.contains("FULL, OVERRIDDEN") && text.contains("school group"),
        "{text}"
    );
    let (rc, out, err) = ctl(&["capacity", "override", "site", "off"]).await;
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, _, err) = ctl(&["capacity", "override", "nowhere", "on", "--reason", "x"]).await;
    assert!(rc != 0 && err.contains("no scope nowhere"), "{err}");
    site_is(&devices, "4 inside", inside(4)).await;
    devices[2].refused(&sold[4], "capacity_full").await;

    // Two leave: the next visitor comes in.
    devices[2].leaves(&sold[1]).await;
    devices[2].leaves(&sold[2]).await;
    site_is(&devices, "below capacity again", |s| s["full"] == false).await;
    // 2 of 3 is below the first tier: the notice goes.
    wait(
        "the lane display cleared",
        devices[0]
            .display
            .wait_until(|v| v.last().is_some_and(|l| l.is_empty())),
    )
    .await;
    devices[2].admitted(&sold[4]).await;
    site_is(&devices, "6 in, 3 out", |s| {
        s["entries"] == 6 && s["exits"] == 3
    })
    .await;

    // The tier crossings reached the central system as events.
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let tiers: Vec<Value> = central
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "capacity_tier")
            .collect();
        let overridden = central.event_nonces("capacity_override").await.len();
        if overridden == 2
            && tiers
                .iter()
                .any(|e| e["body"].to_string().contains("\"to\":100"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no tier event: {tiers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Mains lost at C: its turnstile turns freely and counts the visitors
    // itself; every device counts them.
    devices[2].ups.set("ups.status", "OB DISCHRG");
    tokio::time::timeout(
        BOUND,
        devices[2]
            .gate
            .wait_until(|g| g.mode() != hal::gate::GateMode::Normal),
    )
    .await
    .expect("C's turnstile in its power-fail mode");
    assert!(devices[2].gate.walk(hal::gate::Direction::Entry));
    assert!(devices[2].gate.walk(hal::gate::Direction::Entry));
    site_is(&devices, "with the free passages", |s| {
        s["entries"] == 8 && s["inside"] == 5
    })
    .await;
    devices[2].ups.set("ups.status", "OL");

    // The central system down, the site network up: the counts stay the same
    // everywhere.
    let mut central = central;
    central.kill().await;
    devices[0].leaves(&sold[3]).await;
    site_is(&devices, "an exit through the peers", |s| {
        s["exits"] == 4 && s["inside"] == 4
    })
    .await;

    // The site network cut too: each device sees only its own passages, says
    // so, and holds the capacity lower by its margin (10 % of 3 → 2).
    for d in &devices {
        d.proxy.set(Link::Cut);
    }
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let o = occupancy(&devices[0]).await;
        if o["isolated"] == true {
            assert_eq!(o["site"]["instant_capacity"], 2, "{o:#}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never isolated: {o:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text, _) = gatectl_on_bus(
        &devices[0].bus.address,
        &["capacity", "-c", &config(&devices[0].dir)],
    )
    .await;
    assert!(text.contains("ISOLATED"), "{text}");
    for d in &devices {
        d.proxy.set(Link::Up);
    }
    all_reachable(&devices).await;

    // A device restarted mid-day has its counts from its store at once.
    devices[1].gated.take().unwrap().kill().await;
    devices[1].start().await;
    site_is(&devices[1..2], "the same after a restart", |s| {
        s["entries"] == 8 && s["exits"] == 4
    })
    .await;

    for mut d in devices {
        d.gated.take().unwrap().stop().await;
    }
}

//! gated's lane role as a process, as systemd starts it, against the
//! simulators: serial scanners, an ID-card and an IC-card reader on real PTYs,
//! and turnstile or wing-gate controllers on real Modbus TCP. The tests read
//! gated's log as an engineer would, and its database afterwards.

use std::process::Stdio;

use ed25519_dalek::SigningKey;
use gated::store::Store;
use gated::tickets::token::{self, LocalMinute, Payload};
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::gate::{Direction, RegisterMap};
use hal::iccard::sim::SimIcReader;
use hal::idcard::sim::{SimIdReader, test_cards};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use rusqlite::params;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ID_KEY: &[u8] = b"lane-test-id-key";

/// gated's log, line by line.
struct Log(tokio::io::Lines<BufReader<tokio::process::ChildStderr>>);

impl Log {
    /// Waits for a line containing every one of `parts`; panics if gated exits first.
    async fn wait_for(&mut self, parts: &[&str]) -> String {
        while let Some(line) = self.0.next_line().await.unwrap() {
            if std::env::var_os("SHOW_GATED_LOG").is_some() {
                eprintln!("gated: {line}");
            }
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
        panic!("gated exited before logging {parts:?}");
    }
}

struct Lane {
    scanner: SimScanner,
    gate: SimGate,
    _server: TcpServer,
}

struct Harness {
    dir: tempfile::TempDir,
    key: SigningKey,
    now: LocalMinute,
    lanes: Vec<Lane>,
    exit_scanner: Option<SimScanner>,
    display: hal::display::sim::SimDisplay,
    id_reader: SimIdReader,
    ic_reader: SimIcReader,
    child: Child,
    log: Log,
}

impl Harness {
    /// `kinds`: one lane per gate kind; the first lane also has the ID and IC readers.
    async fn start(kinds: &[GateKind]) -> Self {
        Self::start_with(kinds, false).await
    }

    /// `two_way`: the first lane is direction "both", with an exit-side scanner.
    async fn start_with(kinds: &[GateKind], two_way: bool) -> Self {
        Self::start_shaped(kinds, two_way, false).await
    }

    /// `free_exit`: the first lane is an exit where visitors leave without a ticket.
    async fn start_shaped(kinds: &[GateKind], two_way: bool, free_exit: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let now = gated::lanes::local_now(&jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
        {
            let mut s = Store::open(&state.join("gated.db")).unwrap();
            s.put_signing_key(1, &key.verifying_key().to_bytes())
                .unwrap();
            s.put_setting("id_hash_key", ID_KEY).unwrap();
            let c = s.conn();
            c.execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
                .unwrap();
            c.execute(
                "INSERT INTO products (id, name, entries_allowed, per_day_limit) VALUES (2, 'Annual pass', 0, 2)",
                [],
            )
            .unwrap();
            let holder = token::holder_hash(ID_KEY, &test_cards()[1].id_number).unwrap();
            c.execute(
                "INSERT INTO tickets (id, product_id, valid_from, valid_until, holder_hash) VALUES (77, 1, ?1, ?2, ?3)",
                params![now - 60, now + 600, &holder[..]],
            )
            .unwrap();
            c.execute(
                "INSERT INTO tickets (id, product_id, valid_from, valid_until, card_uid) VALUES (88, 2, ?1, ?2, '04A1B2C3')",
                params![now - 60, now + 600],
            )
            .unwrap();
            c.execute(
                "INSERT INTO revoked (ticket_id, reason) VALUES (66, 'refunded')",
                [],
            )
            .unwrap();
        }
        let mut toml = format!(
            "role = \"lane\"\ndevice_id = \"lane-test\"\nstate_dir = \"{}\"\n[central]\nurl = \"http://127.0.0.1:1/api/v1\"\n\
             [devices.id_readers.id]\nport = \"{d}/id-reader\"\n[devices.ic_readers.ic]\nport = \"{d}/ic-reader\"\n",
            state.display(),
            d = dir.path().display()
        );
        let mut lanes = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let scanner =
                SimScanner::new(Pty::open_at(&dir.path().join(format!("scanner{i}"))).unwrap());
            let gate = SimGate::new(*kind, RegisterMap::load("lot").unwrap(), 1);
            let (addr, server) = gate
                .serve_tcp("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            toml += &format!(
                "[devices.scanners.qr{i}]\nport = \"{}\"\n[devices.gates.g{i}]\nmodbus = \"tcp://{addr}\"\n\
                 poll_ms = 10\npassage_timeout_ms = 500\ntailgate_window_ms = 100\n\
                 [lanes.east-{i}]\ndirection = \"{}\"\ngroup = \"east\"\ngate = \"g{i}\"\nscanners = [\"qr{i}\"]\n{}{}{}",
                scanner.pty.path().display(),
                match i {
                    0 if two_way => "both",
                    0 if free_exit => "exit",
                    _ => "entry",
                },
                if i == 0 {
                    "id_reader = \"id\"\nic_reader = \"ic\"\ndisplay = \"disp\"\n"
                } else {
                    ""
                },
                if two_way && i == 0 {
                    "exit_scanners = [\"qx\"]\n"
                } else {
                    ""
                },
                if free_exit && i == 0 {
                    "free_exit = true\n"
                } else {
                    ""
                }
            );
            lanes.push(Lane {
                scanner,
                gate,
                _server: server,
            });
        }
        let display = hal::display::sim::SimDisplay::start(
            Pty::open_at(&dir.path().join("display")).unwrap(),
        );
        toml += &format!(
            "[devices.displays.disp]\nport = \"{}/display\"\n",
            dir.path().display()
        );
        let exit_scanner = two_way.then(|| {
            let sc = SimScanner::new(Pty::open_at(&dir.path().join("exit-scanner")).unwrap());
            toml += &format!(
                "[devices.scanners.qx]\nport = \"{}\"\n",
                sc.pty.path().display()
            );
            sc
        });
        let id_reader = SimIdReader::start(Pty::open_at(&dir.path().join("id-reader")).unwrap());
        let ic_reader = SimIcReader::start(
            Pty::open_at(&dir.path().join("ic-reader")).unwrap(),
            std::time::Duration::from_millis(50),
        );
        let config = dir.path().join("gated.toml");
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gated"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = Log(BufReader::new(child.stderr.take().unwrap()).lines());
        // Every scanner, reader and gate connected (in any order) before the first visitor.
        let mut waiting: Vec<String> = (0..kinds.len())
            .map(|i| format!("device=\"qr{i}\""))
            .collect();
        if two_way {
            waiting.push("device=\"qx\"".to_owned());
        }
        waiting.extend(["device=\"id\"".to_owned(), "device=\"ic\"".to_owned()]);
        let mut gates_up = 0;
        while !waiting.is_empty() || gates_up < kinds.len() {
            let line = log.wait_for(&["connected"]).await;
            waiting.retain(|d| !line.contains(d.as_str()));
            if line.contains("device=\"gate tcp://") {
                gates_up += 1;
            }
        }
        Harness {
            dir,
            key,
            now,
            lanes,
            exit_scanner,
            display,
            id_reader,
            ic_reader,
            child,
            log,
        }
    }

    fn token(&self, ticket_id: u64, f: impl FnOnce(&mut Payload)) -> String {
        let mut p = Payload {
            key_id: 1,
            ticket_id,
            product_id: 1,
            valid_from: self.now - 60,
            valid_until: self.now + 600,
            entries: 1,
            holder: None,
            group: None,
            seed: [1; 8],
        };
        f(&mut p);
        token::encode(&p, &self.key)
    }

    async fn scan(&self, lane: usize, code: &str) {
        self.lanes[lane].scanner.scan(code).await.unwrap();
    }

    /// Stops gated and reads what it recorded: (ticket, persons) per passage.
    async fn stop(self) -> Vec<(i64, i64)> {
        self.stop_keeping().await.0
    }

    /// [`Self::stop`], keeping the database.
    async fn stop_keeping(mut self) -> (Vec<(i64, i64)>, rusqlite::Connection, tempfile::TempDir) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        let db = rusqlite::Connection::open(self.dir.path().join("state/gated.db")).unwrap();
        let passages = db
            .prepare("SELECT ticket_id, persons FROM passages ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (passages, db, self.dir)
    }
}

#[tokio::test]
async fn a_valid_qr_passes_once_and_bad_tickets_are_refused_with_reasons() {
    let mut h = Harness::start(&[GateKind::Turnstile]).await;
    h.lanes[0].gate.set_auto_walk(true);
    let ticket = h.token(5001, |_| {});
    h.scan(0, &ticket).await;
    h.log
        .wait_for(&["admitted", "ticket=5001", "persons=1"])
        .await;
    h.scan(0, &ticket).await;
    let line = h
        .log
        .wait_for(&["refused", "reason=\"already_used\""])
        .await;
    assert!(line.contains("Ticket already used / 票已使用"), "{line}");

    let forged = token::encode(
        &token::parse(&ticket).unwrap().0,
        &SigningKey::from_bytes(&[4; 32]),
    );
    h.scan(0, &forged).await;
    h.log.wait_for(&["refused", "reason=\"forged\""]).await;
    h.scan(0, &h.token(5002, |p| p.key_id = 9)).await;
    h.log.wait_for(&["refused", "reason=\"unknown_key\""]).await;
    h.scan(0, &h.token(66, |_| {})).await;
    h.log.wait_for(&["refused", "reason=\"revoked\""]).await;
    let now = h.now;
    h.scan(0, &h.token(5003, |p| p.valid_until = now - 1)).await;
    h.log.wait_for(&["refused", "reason=\"expired\""]).await;
    h.scan(0, &h.token(5004, |p| p.valid_from = now + 5)).await;
    h.log
        .wait_for(&["refused", "reason=\"not_yet_valid\""])
        .await;

    assert_eq!(h.lanes[0].gate.counters()[0], 1, "the gate opened once");
    // What the visitors read on the lane's display, in order.
    let shown = h.display.wait_for(7).await;
    assert_eq!(shown[0], "请通行 Please pass");
    assert_eq!(shown[1], "票已使用 Ticket already used");
    assert_eq!(shown[6], "票尚未到使用时间 Ticket not valid yet");
    assert_eq!(h.stop().await, [(5001, 1)]);
}

#[tokio::test]
async fn a_group_of_three_opens_three_times_and_records_three() {
    let mut h = Harness::start(&[GateKind::Turnstile]).await;
    h.scan(0, &h.token(6001, |p| p.group = Some(3))).await;
    let gate = &h.lanes[0].gate;
    gate.wait_until(|s| s.permission(Direction::Entry) == 3)
        .await;
    for _ in 0..3 {
        assert!(gate.walk(Direction::Entry));
    }
    h.log
        .wait_for(&["admitted", "ticket=6001", "persons=3"])
        .await;
    assert_eq!(h.stop().await, [(6001, 3)]);
}

#[tokio::test]
async fn a_visitor_who_does_not_pass_keeps_the_ticket_and_tailgating_is_an_alarm() {
    let mut h = Harness::start(&[GateKind::WingGate]).await;
    let ticket = h.token(7001, |_| {});
    h.scan(0, &ticket).await;
    h.log.wait_for(&["not passed", "ticket=7001"]).await;
    // Same ticket again: still valid; two slip through on it this time.
    h.scan(0, &ticket).await;
    let gate = &h.lanes[0].gate;
    gate.wait_until(|s| s.permission(Direction::Entry) == 1)
        .await;
    assert_eq!(gate.tailgate(Direction::Entry), 2);
    h.log
        .wait_for(&["alarm", "ticket=7001", "Tailgating"])
        .await;
    assert_eq!(h.stop().await, [(7001, 1)]);
}

#[tokio::test]
async fn an_id_card_opens_its_real_name_ticket_and_an_annual_pass_obeys_its_daily_limit() {
    let mut h = Harness::start(&[GateKind::Turnstile]).await;
    h.lanes[0].gate.set_auto_walk(true);
    h.id_reader.present(test_cards()[1].clone());
    let line = h
        .log
        .wait_for(&["admitted", "medium=\"id-card\"", "ticket=77"])
        .await;
    let card = &test_cards()[1];
    assert!(
        !line.contains(&card.id_number) && !line.contains(&card.name),
        "{line}"
    );

    for _ in 0..2 {
        h.ic_reader.present("04A1B2C3");
        h.log
            .wait_for(&["admitted", "medium=\"ic-card\"", "ticket=88"])
            .await;
        h.ic_reader.remove();
        // The card is lifted (and seen gone) before it is tapped again.
        h.log.wait_for(&["card removed", "reader=\"ic\""]).await;
    }
    h.ic_reader.present("04A1B2C3");
    h.log.wait_for(&["refused", "reason=\"daily_limit\""]).await;
    assert_eq!(h.stop().await, [(77, 1), (88, 1), (88, 1)]);
}

#[tokio::test]
async fn two_lanes_racing_for_one_ticket_admit_it_once() {
    let mut h = Harness::start(&[GateKind::Turnstile, GateKind::Turnstile]).await;
    h.lanes[0].gate.set_auto_walk(true);
    h.lanes[1].gate.set_auto_walk(true);
    let ticket = h.token(8001, |_| {});
    tokio::join!(h.scan(0, &ticket), h.scan(1, &ticket));
    // One lane admits, the other refuses (in use, or already used): in either order.
    let (mut admitted, mut refused) = (false, false);
    while !(admitted && refused) {
        let line = h.log.wait_for(&["lane=\"east-"]).await;
        admitted |= line.contains("admitted") && line.contains("ticket=8001");
        refused |=
            line.contains("refused") && (line.contains("in_use") || line.contains("already_used"));
    }
    let opened = h.lanes[0].gate.counters()[0] + h.lanes[1].gate.counters()[0];
    assert_eq!(opened, 1, "exactly one gate let the visitor through");
    assert_eq!(h.stop().await, [(8001, 1)]);
}

#[tokio::test]
async fn a_two_way_lane_lets_in_on_one_side_and_out_on_the_other() {
    let mut h = Harness::start_with(&[GateKind::Turnstile], true).await;
    h.lanes[0].gate.set_auto_walk(true);
    let ticket = h.token(9001, |p| p.entries = 0);
    h.scan(0, &ticket).await;
    h.log.wait_for(&["admitted", "ticket=9001"]).await;
    h.exit_scanner
        .as_ref()
        .unwrap()
        .scan(&ticket)
        .await
        .unwrap();
    h.log.wait_for(&["admitted", "ticket=9001"]).await;
    assert_eq!(h.lanes[0].gate.counters(), [1, 1], "one passage each way");
    let db_rows = h.stop().await;
    assert_eq!(db_rows, [(9001, 1), (9001, 1)]);
}

#[tokio::test]
async fn a_free_exit_lets_everyone_out_without_a_ticket_and_counts_each_one() {
    // Wing gates: open wings let two through on one unlock.
    let mut h = Harness::start_shaped(&[GateKind::WingGate], false, true).await;
    let gate = &h.lanes[0].gate;
    // Visitors leave one after another, each when they get to the arms.
    for _ in 0..3 {
        gate.wait_until(|g| g.permission(Direction::Exit) > 0).await;
        assert!(gate.walk(Direction::Exit), "the exit side is open");
        assert!(!gate.walk(Direction::Entry), "the entry side stays shut");
    }
    // Two close together on one unlock: both counted, no alarm.
    gate.wait_until(|g| g.permission(Direction::Exit) > 0).await;
    assert_eq!(gate.tailgate(Direction::Exit), 2);
    // A ticket shown at the free exit is waved through, not used up.
    let ticket = h.token(5101, |_| {});
    h.scan(0, &ticket).await;
    h.log.wait_for(&["lane=\"east-0\"", "waved through"]).await;
    gate.wait_until(|g| g.permission(Direction::Exit) > 0).await;
    let (ticketed, db, _dir) = h.stop_keeping().await;
    assert_eq!(ticketed, [], "no ticket was used");
    let (exits, rows): (i64, i64) = db
        .query_row(
            "SELECT SUM(persons), COUNT(*) FROM free_passages WHERE direction = 'exit' AND origin IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // One row per unlock, and the one who slipped through on the fourth.
    assert_eq!((exits, rows), (5, 5), "every person out");
    let entries: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM free_passages WHERE direction = 'entry'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(entries, 0);
}

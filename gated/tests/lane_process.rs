//! gated's lane role as a process, as systemd starts it, against the
//! simulators: a serial scanner and an ID-card reader on real PTYs and the
//! turnstile controller on real Modbus TCP. The test reads gated's log lines
//! as an engineer would, and its database afterwards.

use std::process::Stdio;

use ed25519_dalek::SigningKey;
use gated::store::Store;
use gated::tickets::token::{self, Payload};
use hal::gate::RegisterMap;
use hal::gate::sim::{GateKind, SimGate};
use hal::idcard::sim::{SimIdReader, test_cards};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use rusqlite::params;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ID_KEY: &[u8] = b"lane-test-id-key";

/// gated's log, line by line.
struct Log(tokio::io::Lines<BufReader<tokio::process::ChildStderr>>);

impl Log {
    /// Waits for a line containing every one of `parts`; panics if gated exits first.
    async fn wait_for(&mut self, parts: &[&str]) -> String {
        while let Some(line) = self.0.next_line().await.unwrap() {
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
        panic!("gated exited before logging {parts:?}");
    }
}

#[tokio::test]
async fn lane_role_admits_refuses_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let key = SigningKey::from_bytes(&[3; 32]);
    // Now, in the area's time zone (the test runs on any date).
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let now = gated::lanes::local_now(&tz);
    {
        let mut s = Store::open(&state.join("gated.db")).unwrap();
        s.put_signing_key(1, &key.verifying_key().to_bytes())
            .unwrap();
        s.put_setting("id_hash_key", ID_KEY).unwrap();
        let c = s.conn();
        c.execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
            .unwrap();
        let card = &test_cards()[1];
        let holder = token::holder_hash(ID_KEY, &card.id_number);
        c.execute(
            "INSERT INTO tickets (id, product_id, valid_from, valid_until, holder_hash) VALUES (77, 1, ?1, ?2, ?3)",
            params![now - 60, now + 600, &holder[..]],
        )
        .unwrap();
    }

    let scanner = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
    let id_reader = SimIdReader::start(Pty::open_at(&dir.path().join("id-reader")).unwrap());
    let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
    gate.set_auto_walk(true);
    let (addr, _server) = gate
        .serve_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let config = dir.path().join("gated.toml");
    std::fs::write(
        &config,
        format!(
            r#"role = "lane"
device_id = "lane-test"
state_dir = "{state}"
[central]
url = "http://127.0.0.1:1/api/v1"
[devices.scanners.qr]
port = "{dir}/scanner"
[devices.id_readers.id]
port = "{dir}/id-reader"
[devices.gates.g]
modbus = "tcp://{addr}"
[lanes.east-1]
direction = "entry"
group = "east"
gate = "g"
scanners = ["qr"]
id_reader = "id"
"#,
            state = state.display(),
            dir = dir.path().display()
        ),
    )
    .unwrap();
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
    log.wait_for(&["gated ready"]).await;
    log.wait_for(&["device=\"qr\"", "connected"]).await;

    let ticket = token::encode(
        &Payload {
            key_id: 1,
            ticket_id: 5001,
            product_id: 1,
            valid_from: now - 60,
            valid_until: now + 600,
            entries: 1,
            holder: None,
            group: None,
            seed: [1; 8],
        },
        &key,
    );
    scanner.scan(&ticket).await.unwrap();
    log.wait_for(&["admitted", "ticket=5001", "persons=1"])
        .await;
    scanner.scan(&ticket).await.unwrap();
    let refused = log.wait_for(&["refused", "reason=\"already_used\""]).await;
    assert!(
        refused.contains("Ticket already used / 票已使用"),
        "{refused}"
    );

    let forged = token::encode(
        &token::parse(&ticket).unwrap().0,
        &SigningKey::from_bytes(&[4; 32]),
    );
    scanner.scan(&forged).await.unwrap();
    log.wait_for(&["refused", "reason=\"forged\""]).await;

    // A real-name ticket opened by the holder's ID card.
    id_reader.present(test_cards()[1].clone());
    let line = log.wait_for(&["admitted", "ticket=77"]).await;
    let card = &test_cards()[1];
    assert!(
        !line.contains(&card.id_number) && !line.contains(&card.name),
        "{line}"
    );

    assert_eq!(
        gate.counters()[0],
        2,
        "the gate opened for the two admissions only"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let db = rusqlite::Connection::open(state.join("gated.db")).unwrap();
    let rows: Vec<(i64, i64)> = db
        .prepare("SELECT ticket_id, persons FROM passages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [(5001, 1), (77, 1)]);
    let outbox: i64 = db
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'passage'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outbox, 2);
}

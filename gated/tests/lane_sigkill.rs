//! gated is killed with SIGKILL at random instants while a lane admits a
//! stream of visitors; it is restarted each time. Afterwards: every passage
//! the lane reported is in the database (it was committed before it was
//! reported), none is recorded twice, and the database holds exactly the
//! passages the gate counted.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use gated::store::Store;
use gated::tickets::token::{self, Payload};
use hal::gate::RegisterMap;
use hal::gate::sim::{GateKind, SimGate};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KILLS: u32 = 200;

/// The nonce of a passage the lane reported in this log line, if any.
fn admitted_nonce(line: &str) -> Option<String> {
    if !line.contains("admitted") {
        return None;
    }
    let n = line.split("nonce=").nth(1)?;
    Some(n.split_whitespace().next()?.trim_matches('"').to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reported_passage_is_lost_or_doubled_across_200_kills() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let key = SigningKey::from_bytes(&[8; 32]);
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let now = gated::lanes::local_now(&tz);
    {
        let mut s = Store::open(&state.join("gated.db")).unwrap();
        s.put_signing_key(1, &key.verifying_key().to_bytes())
            .unwrap();
        s.conn()
            .execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
            .unwrap();
    }
    let scanner = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
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
            "role = \"lane\"\ndevice_id = \"kill-test\"\nstate_dir = \"{}\"\n[central]\nurl = \"http://127.0.0.1:1/api/v1\"\n\
             [devices.scanners.qr]\nport = \"{}\"\n[devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 5\ntailgate_window_ms = 0\n\
             [lanes.l1]\ndirection = \"entry\"\ngroup = \"g\"\ngate = \"g\"\nscanners = [\"qr\"]\n",
            state.display(),
            scanner.pty.path().display()
        ),
    )
    .unwrap();

    // A fixed pseudo-random sequence: the same kill instants every run.
    let mut x: u64 = 0x5eed;
    let mut rand = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut reported: HashSet<String> = HashSet::new();
    let mut next_ticket = 1u64;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gated"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Up to the scanner and the gate being connected (both are reopened each round).
        let (mut scanner_up, mut gate_up) = (false, false);
        while let Some(l) = lines.next_line().await.unwrap() {
            scanner_up |= l.contains("device=\"qr\"") && l.contains("connected");
            gate_up |= l.contains("device=\"gate tcp://") && l.contains("connected");
            if scanner_up && gate_up {
                break;
            }
        }
        // A few visitors, then the kill at a random instant among them.
        let visitors = 1 + rand(4);
        for _ in 0..visitors {
            let t = token::encode(
                &Payload {
                    key_id: 1,
                    ticket_id: next_ticket,
                    product_id: 1,
                    valid_from: now - 60,
                    valid_until: now + 600,
                    entries: 1,
                    holder: None,
                    group: None,
                    seed: next_ticket.to_be_bytes(),
                },
                &key,
            );
            next_ticket += 1;
            scanner.scan(&t).await.unwrap();
        }
        let kill_after = Duration::from_micros(rand(80_000));
        let reader = async {
            while let Ok(Some(l)) = lines.next_line().await {
                reported.extend(admitted_nonce(&l));
            }
        };
        // Read the log until the kill instant; what was reported by then counts.
        let _ = tokio::time::timeout(kill_after, reader).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        // Drain what the killed process wrote before it died.
        while let Ok(Some(l)) = lines.next_line().await {
            reported.extend(admitted_nonce(&l));
        }
        let _ = round;
    }

    let db = rusqlite::Connection::open(state.join("gated.db")).unwrap();
    let recorded: Vec<(String, i64)> = db
        .prepare("SELECT nonce, ticket_id FROM passages")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let nonces: HashSet<&str> = recorded.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&String> = reported
        .iter()
        .filter(|n| !nonces.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "reported but not recorded: {missing:?}");
    let tickets: HashSet<i64> = recorded.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        tickets.len(),
        recorded.len(),
        "a single-entry ticket was recorded twice"
    );
    // Passages cut off by a kill are settled by the gate's counter at the
    // next start (announced before the gate opened).
    assert_eq!(
        recorded.len() as u32,
        gate.counters()[0],
        "passages recorded vs counted by the gate"
    );
    let outbox: i64 = db
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'passage'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        outbox as usize,
        recorded.len(),
        "every passage has its outbox event"
    );
    assert!(
        reported.len() > KILLS as usize / 4,
        "too few admissions to prove anything: {}",
        reported.len()
    );
    eprintln!(
        "{KILLS} kills: {} passages reported, {} recorded, {} counted by the gate",
        reported.len(),
        recorded.len(),
        gate.counters()[0]
    );
}

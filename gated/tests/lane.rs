//! The lane transaction against a real SQLite file and the simulated gate
//! controller on real Modbus TCP: decide → reserve → open → commit or annul.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use gated::lane::{Admission, Engine, Medium, Presentation, Relax};
use gated::store::{Db, Store};
use gated::tickets::rules::{MINUTES_PER_DAY, Reason};
use gated::tickets::token::{self, LocalMinute, Payload};
use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::gate::{Direction, GateHandle, ModbusAddress, RegisterMap};
use rusqlite::params;

// 2026-01-05 09:00, a Monday.
const NOW: LocalMinute = 9501 * MINUTES_PER_DAY + 9 * 60;
const ID_KEY: &[u8] = b"device-id-hash-key";

struct Rig {
    _dir: tempfile::TempDir,
    lanes: Engine,
    sim: SimGate,
    gate: GateHandle,
    _server: TcpServer,
    key: SigningKey,
    n: std::sync::atomic::AtomicU32,
}

async fn rig(kind: GateKind) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
    let key = SigningKey::from_bytes(&[1; 32]);
    store
        .put_signing_key(1, &key.verifying_key().to_bytes())
        .unwrap();
    let c = store.conn();
    // 1: single entry; 2: annual pass, 2 entries a day, exit before re-entry.
    c.execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
        .unwrap();
    c.execute(
        "INSERT INTO products (id, name, entries_allowed, per_day_limit, reentry_after_exit) VALUES (2, 'Annual pass', 0, 2, 0)",
        [],
    )
    .unwrap();
    // 3: a park pass, any number of entries, exit first and 30 min between entries.
    c.execute(
        "INSERT INTO products (id, name, entries_allowed, per_day_limit, reentry_after_exit, reentry_minutes) VALUES (3, 'Park pass', 0, 0, 1, 30)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO tickets (id, product_id, valid_from, valid_until, card_uid) VALUES (30, 3, ?1, ?2, '04C0FFEE')",
        params![NOW - MINUTES_PER_DAY, NOW + MINUTES_PER_DAY],
    )
    .unwrap();
    let holder = token::holder_hash(ID_KEY, "11010519491231002X").unwrap();
    c.execute(
        "INSERT INTO tickets (id, serial, product_id, valid_from, valid_until, holder_hash) VALUES (10, 'SN-10', 1, ?1, ?2, ?3)",
        params![NOW - 60, NOW + 600, &holder[..]],
    )
    .unwrap();
    c.execute(
        "INSERT INTO tickets (id, product_id, valid_from, valid_until, card_uid) VALUES (20, 2, ?1, ?2, '04A1B2C3')",
        params![NOW - MINUTES_PER_DAY, NOW + 300 * MINUTES_PER_DAY],
    )
    .unwrap();
    c.execute(
        "INSERT INTO revoked (ticket_id, reason) VALUES (99, 'refunded')",
        [],
    )
    .unwrap();
    let lanes = Engine::new(Db::with_writer(store).unwrap(), "lane-test").unwrap();

    let map = RegisterMap::load("lot").unwrap();
    let sim = SimGate::new(kind, map.clone(), 1);
    let (addr, server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut s = ModbusSettings::new(ModbusAddress::Tcp(addr.to_string()), 1, map);
    s.poll = Duration::from_millis(10);
    s.passage_timeout = Duration::from_millis(300);
    s.tailgate_window = Duration::from_millis(50);
    let gate = modbus::spawn(s);
    gate.watch_state()
        .wait_for(|s| *s == hal::DeviceState::Connected)
        .await
        .unwrap();
    Rig {
        _dir: dir,
        lanes,
        sim,
        gate,
        _server: server,
        key,
        n: Default::default(),
    }
}

fn scan<'a>(lane: &'a str, medium: &'a Medium, nonce: &'a str) -> Presentation<'a> {
    Presentation {
        lane,
        lane_group: "east",
        medium,
        nonce,
        now: NOW,
        at_ms: 0,
        gate_ledger: None,
    }
}

impl Rig {
    fn token(&self, ticket_id: u64, f: impl FnOnce(&mut Payload)) -> String {
        let mut p = Payload {
            key_id: 1,
            ticket_id,
            product_id: 1,
            valid_from: NOW - 60,
            valid_until: NOW + 600,
            entries: 1,
            holder: None,
            group: None,
            seed: [7; 8],
        };
        f(&mut p);
        token::encode(&p, &self.key)
    }

    async fn admit(&self, m: Medium) -> Admission {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lanes
            .admit(&self.gate, &scan("east-1", &m, &format!("scan-{n}")))
            .await
            .unwrap()
    }

    fn entries(&self, ticket_id: u64) -> u32 {
        self.lanes.usage(ticket_id, NOW).unwrap().entries
    }
}

#[tokio::test]
async fn a_valid_qr_passes_once_and_is_refused_the_second_time() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let t = r.token(1001, |_| {});
    assert_eq!(
        r.admit(Medium::Code(t.clone())).await,
        Admission::Admitted {
            ticket_id: 1001,
            persons: 1
        }
    );
    assert_eq!(
        r.admit(Medium::Code(t)).await,
        Admission::Refused(Reason::AlreadyUsed)
    );
    assert_eq!(r.entries(1001), 1);
    assert_eq!(r.sim.counters()[0], 1, "the gate opened once");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reasons() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let forged = token::encode(
        &token::parse(&r.token(1002, |_| {})).unwrap().0,
        &SigningKey::from_bytes(&[2; 32]),
    );
    assert_eq!(
        r.admit(Medium::Code(forged)).await,
        Admission::Refused(Reason::Forged)
    );
    assert_eq!(
        r.admit(Medium::Code(r.token(1003, |p| p.key_id = 9))).await,
        Admission::Refused(Reason::UnknownKey)
    );
    assert_eq!(
        r.admit(Medium::Code(r.token(99, |_| {}))).await,
        Admission::Refused(Reason::Revoked)
    );
    assert_eq!(
        r.admit(Medium::Code(r.token(1004, |p| p.valid_until = NOW - 1)))
            .await,
        Admission::Refused(Reason::Expired)
    );
    assert_eq!(
        r.admit(Medium::Code(r.token(1005, |p| p.valid_from = NOW + 1)))
            .await,
        Admission::Refused(Reason::NotYetValid)
    );
    assert_eq!(
        r.admit(Medium::Code("hello".into())).await,
        Admission::Refused(Reason::UnknownTicket)
    );
    assert_eq!(r.sim.counters(), [0, 0], "the gate never opened");
}

#[tokio::test]
async fn a_key_outside_its_validity_no_longer_verifies() {
    let r = rig(GateKind::Turnstile).await;
    let old = SigningKey::from_bytes(&[9; 32]);
    // Key 2 was retired yesterday (rotation).
    {
        let store = Store::open(&r._dir.path().join("gated.db")).unwrap();
        store
            .put_signing_key(2, &old.verifying_key().to_bytes())
            .unwrap();
    }
    let conn = rusqlite::Connection::open(r._dir.path().join("gated.db")).unwrap();
    conn.execute(
        "UPDATE signing_keys SET valid_until = ?1 WHERE key_id = 2",
        [NOW - MINUTES_PER_DAY],
    )
    .unwrap();
    let lanes = Engine::new(
        Db::open(&r._dir.path().join("gated.db")).unwrap(),
        "lane-test",
    )
    .unwrap();
    let p = token::parse(&r.token(1011, |p| p.key_id = 2)).unwrap().0;
    let t = Medium::Code(token::encode(&p, &old));
    assert_eq!(
        lanes
            .admit(&r.gate, &scan("east-1", &t, "k"))
            .await
            .unwrap(),
        Admission::Refused(Reason::UnknownKey)
    );
}

#[tokio::test]
async fn a_group_of_three_records_three_passages() {
    let r = rig(GateKind::Turnstile).await;
    let t = r.token(1006, |p| p.group = Some(3));
    let sim = r.sim.clone();
    let walkers = tokio::spawn(async move {
        sim.wait_until(|s| s.permission(Direction::Entry) == 3)
            .await;
        for _ in 0..3 {
            assert!(sim.walk(Direction::Entry));
        }
    });
    assert_eq!(
        r.admit(Medium::Code(t)).await,
        Admission::Admitted {
            ticket_id: 1006,
            persons: 3
        }
    );
    walkers.await.unwrap();
    assert_eq!(r.entries(1006), 3);
}

#[tokio::test]
async fn a_visitor_who_does_not_pass_keeps_the_ticket() {
    let r = rig(GateKind::Turnstile).await;
    let t = r.token(1007, |_| {});
    assert_eq!(
        r.admit(Medium::Code(t.clone())).await,
        Admission::NotPassed { ticket_id: 1007 }
    );
    assert_eq!(r.entries(1007), 0);
    r.sim.set_auto_walk(true);
    assert_eq!(
        r.admit(Medium::Code(t)).await,
        Admission::Admitted {
            ticket_id: 1007,
            persons: 1
        }
    );
}

#[tokio::test]
async fn tailgating_raises_an_alarm_recorded_against_the_lane() {
    let r = rig(GateKind::WingGate).await;
    let t = r.token(1008, |_| {});
    let sim = r.sim.clone();
    tokio::spawn(async move {
        sim.wait_until(|s| s.permission(Direction::Entry) == 1)
            .await;
        sim.tailgate(Direction::Entry);
    });
    assert_eq!(
        r.admit(Medium::Code(t)).await,
        Admission::Alarm {
            ticket_id: 1008,
            kind: hal::gate::AlarmKind::Tailgating,
            persons: 1
        }
    );
    assert_eq!(r.entries(1008), 1, "the ticket holder's own passage counts");
}

#[tokio::test]
async fn an_id_card_opens_its_real_name_ticket() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let holder = token::holder_hash(ID_KEY, "11010519491231002x").unwrap();
    assert_eq!(
        r.admit(Medium::Holder(holder)).await,
        Admission::Admitted {
            ticket_id: 10,
            persons: 1
        }
    );
    let stranger = token::holder_hash(ID_KEY, "440304199003071234").unwrap();
    assert_eq!(
        r.admit(Medium::Holder(stranger)).await,
        Admission::Refused(Reason::UnknownTicket)
    );
    assert_eq!(
        r.admit(Medium::Code("SN-10".into())).await,
        Admission::Refused(Reason::AlreadyUsed)
    );
}

#[tokio::test]
async fn an_annual_pass_obeys_its_daily_limit() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let card = Medium::Card("04A1B2C3".into());
    assert!(matches!(
        r.admit(card.clone()).await,
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        r.admit(card.clone()).await,
        Admission::Admitted { .. }
    ));
    assert_eq!(r.admit(card).await, Admission::Refused(Reason::DailyLimit));
}

#[tokio::test]
async fn two_lanes_racing_for_one_ticket_admit_it_once() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let t = Medium::Code(r.token(1009, |_| {}));
    let (lane_a, lane_b) = (scan("east-1", &t, "race-a"), scan("east-2", &t, "race-b"));
    let (a, b) = tokio::join!(
        r.lanes.admit(&r.gate, &lane_a),
        r.lanes.admit(&r.gate, &lane_b)
    );
    let results = [a.unwrap(), b.unwrap()];
    let admitted = results
        .iter()
        .filter(|x| matches!(x, Admission::Admitted { .. }))
        .count();
    assert_eq!(admitted, 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|x| matches!(x, Admission::Refused(Reason::InUse | Reason::AlreadyUsed))),
        "{results:?}"
    );
    assert_eq!(r.entries(1009), 1);
}

#[tokio::test]
async fn a_replayed_commit_records_nothing_twice() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let t = Medium::Code(r.token(1010, |p| p.entries = 0));
    r.lanes
        .admit(&r.gate, &scan("east-1", &t, "same-nonce"))
        .await
        .unwrap();
    r.lanes
        .admit(&r.gate, &scan("east-1", &t, "same-nonce"))
        .await
        .unwrap();
    assert_eq!(r.entries(1010), 1);
}

/// Peak mode lifts, for its lane group only, the re-entry rules it names.
#[tokio::test]
async fn peak_mode_lifts_anti_passback_and_the_reentry_wait_for_its_group() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let card = || Medium::Card("04C0FFEE".into());
    assert!(matches!(r.admit(card()).await, Admission::Admitted { .. }));
    assert_eq!(r.admit(card()).await, Admission::Refused(Reason::ExitFirst));
    // Another group's peak changes nothing here.
    let both = Relax {
        exit_first: true,
        reentry_wait: true,
    };
    r.lanes.set_relax("west", Some(both));
    assert_eq!(r.admit(card()).await, Admission::Refused(Reason::ExitFirst));
    // Anti-passback lifted, the 30-minute wait kept.
    r.lanes.set_relax(
        "east",
        Some(Relax {
            exit_first: true,
            reentry_wait: false,
        }),
    );
    assert_eq!(
        r.admit(card()).await,
        Admission::Refused(Reason::ReentryTooSoon)
    );
    r.lanes.set_relax("east", Some(both));
    assert!(matches!(r.admit(card()).await, Admission::Admitted { .. }));
    assert_eq!(r.entries(30), 2);
    r.lanes.set_relax("east", None);
    assert_eq!(r.admit(card()).await, Admission::Refused(Reason::ExitFirst));
}

/// Fail closed: when the revocation list cannot be read, a signed token
/// (which needs no ticket row) must not pass as "not revoked".
#[tokio::test]
async fn a_ticket_is_refused_when_the_revocation_list_cannot_be_read() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let conn = rusqlite::Connection::open(r._dir.path().join("gated.db")).unwrap();
    conn.execute("ALTER TABLE revoked RENAME TO revoked_elsewhere", [])
        .unwrap();
    assert_eq!(
        r.admit(Medium::Code(r.token(99, |_| {}))).await,
        Admission::Refused(Reason::CannotCheck),
        "the refunded ticket 99 must not pass while the revocation list is unreadable"
    );
    assert_eq!(
        r.admit(Medium::Code(r.token(1012, |_| {}))).await,
        Admission::Refused(Reason::CannotCheck)
    );
    assert_eq!(r.sim.counters(), [0, 0], "the gate never opened");
}

/// Fail closed: a signing key whose validity the device cannot read is not
/// pinned at all (it used to become a key that never expires).
#[tokio::test]
async fn a_signing_key_with_an_unreadable_validity_is_not_pinned() {
    let r = rig(GateKind::Turnstile).await;
    r.sim.set_auto_walk(true);
    let retired = SigningKey::from_bytes(&[9; 32]);
    let hex_key = |k: &SigningKey| hex::encode(k.verifying_key().to_bytes());
    let key = |key_id, public_key, valid_from: Option<&str>, valid_until: Option<&str>| {
        gated::central::api::SigningKey {
            key_id,
            public_key,
            valid_from: valid_from.map(str::to_owned),
            valid_until: valid_until.map(str::to_owned),
        }
    };
    let catalog = gated::central::api::Catalog {
        version: 2,
        scenic_area: "test".into(),
        signing_keys: vec![
            key(1, hex_key(&r.key), None, None),
            key(2, hex_key(&retired), None, Some("2026-01-04 soon")),
            key(3, hex_key(&retired), Some("yesterday"), None),
        ],
        lane_groups: vec![],
        products: vec![],
        devices: vec![],
        revoked_devices: vec![],
        capacity: Default::default(),
    };
    let mut store = Store::open(&r._dir.path().join("gated.db")).unwrap();
    gated::central::sync::apply_catalog(&mut store, &catalog).unwrap();
    // The catalog has no products: put back the one the tokens name.
    store
        .conn()
        .execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
        .unwrap();
    let lanes = Engine::new(Db::with_writer(store).unwrap(), "lane-test").unwrap();
    for (key_id, ticket) in [(2, 1013), (3, 1014)] {
        let p = token::parse(&r.token(ticket, |p| p.key_id = key_id))
            .unwrap()
            .0;
        let t = Medium::Code(token::encode(&p, &retired));
        assert_eq!(
            lanes
                .admit(&r.gate, &scan("east-1", &t, &format!("k{key_id}")))
                .await
                .unwrap(),
            Admission::Refused(Reason::UnknownKey),
            "key {key_id}"
        );
    }
    // The readable key still verifies.
    let t = Medium::Code(r.token(1015, |_| {}));
    assert!(matches!(
        lanes
            .admit(&r.gate, &scan("east-1", &t, "k1"))
            .await
            .unwrap(),
        Admission::Admitted { .. }
    ));
}

/// Two free passages the gate reported in the same millisecond (an entry
/// and an exit from one poll) are two events and two counted passages:
/// their nonces come from the outbox's sequence, not from the clock (the
/// second one used to be lost), and both are numbered in the device's own
/// sequence, after its ticket passages, for the peers to follow.
#[tokio::test]
async fn free_passages_in_the_same_millisecond_are_both_recorded() {
    let r = rig(GateKind::Turnstile).await;
    let before = *r.lanes.head().borrow();
    for direction in [hal::gate::Direction::Entry, hal::gate::Direction::Exit] {
        let free = gated::store::passages::FreePassage {
            lane: "east-1".into(),
            lane_group: "east".into(),
            direction,
            persons: 1,
            at_ms: 1_000,
            local_minute: 0,
            seq: 0,
        };
        r.lanes.record_free_passage(&free).unwrap();
    }
    assert_eq!(*r.lanes.head().borrow(), before + 2);
    let conn = rusqlite::Connection::open(r._dir.path().join("gated.db")).unwrap();
    let mut st = conn
        .prepare("SELECT nonce, body FROM outbox WHERE kind = 'free_passage' ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ne!(rows[0].0, rows[1].0);
    assert!(
        rows[0].1.contains("\"entry\"") && rows[1].1.contains("\"exit\""),
        "{rows:?}"
    );
    let counted: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM free_passages WHERE origin IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 2);
}

//! Lane decision latency with 1,000,000 tickets in the store: from a scan
//! received to the gate's open command (lookup, revocation check, usage,
//! rules, reservation), on one core.
//!
//!     cargo bench -p gated --bench decide
//!
//! Prints Markdown table rows for docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use gated::lane::{Engine, Medium};
use gated::store::{Db, Store};
use gated::tickets::token::{self, Payload};
use rusqlite::params;

const TICKETS: u64 = 1_000_000;
const NOW: u32 = 9501 * 1440 + 9 * 60;
const CMD: &str = "`cargo bench -p gated --bench decide`";

fn row(what: &str, v: Vec<Duration>, total: Duration) {
    row_of("decisions", what, v, total);
}

fn row_of(unit: &str, what: &str, mut v: Vec<Duration>, total: Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "| {what} ({} {unit}, {TICKETS} tickets in the store) | {CMD} | p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {:.0} {unit}/s on one core |",
        v.len(),
        at(0.5),
        at(0.99),
        v.last().unwrap().as_secs_f64() * 1e6,
        v.len() as f64 / total.as_secs_f64()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gated.db");
    let key = SigningKey::from_bytes(&[5; 32]);
    let t0 = Instant::now();
    {
        let mut s = Store::open(&path).unwrap();
        s.put_signing_key(1, &key.verifying_key().to_bytes())
            .unwrap();
        let c = s.conn();
        c.execute(
            "INSERT INTO products (id, name, entries_allowed) VALUES (1, 'Adult', 0)",
            [],
        )
        .unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut st = tx
                .prepare("INSERT INTO tickets (id, serial, product_id, valid_from, valid_until) VALUES (?1, ?2, 1, ?3, ?4)")
                .unwrap();
            for i in 0..TICKETS {
                st.execute(params![i as i64, format!("SN{i:09}"), NOW - 60, NOW + 600])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    eprintln!(
        "store of {TICKETS} tickets built in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let lanes = Engine::new(Db::open(&path).unwrap(), "bench").unwrap();

    // Pseudo-random serials (a fixed LCG: the same run every time).
    let mut x: u64 = 12345;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % TICKETS
    };
    let n = 20_000;
    let media: Vec<Medium> = (0..n)
        .map(|_| Medium::Code(format!("SN{:09}", next())))
        .collect();
    let mut v = Vec::with_capacity(n);
    let start = Instant::now();
    for m in &media {
        let t = Instant::now();
        let d = lanes.decide(m, NOW, "east", hal::gate::Direction::Entry);
        v.push(t.elapsed());
        assert!(d.is_ok());
    }
    row(
        "serial-number ticket: lookup + rules + reservation",
        v,
        start.elapsed(),
    );

    let tokens: Vec<Medium> = (0..n as u64)
        .map(|i| {
            let p = Payload {
                key_id: 1,
                ticket_id: TICKETS + i,
                product_id: 1,
                valid_from: NOW - 60,
                valid_until: NOW + 600,
                entries: 1,
                holder: None,
                group: None,
                seed: i.to_be_bytes(),
            };
            Medium::Code(token::encode(&p, &key))
        })
        .collect();
    let mut v = Vec::with_capacity(n);
    let start = Instant::now();
    for m in &tokens {
        let t = Instant::now();
        let d = lanes.decide(m, NOW, "east", hal::gate::Direction::Entry);
        v.push(t.elapsed());
        assert!(d.is_ok());
    }
    row(
        "signed QR token: Ed25519 verify + revocation + rules + reservation",
        v,
        start.elapsed(),
    );

    // For scale, in the same run: the signature check alone on the same
    // tokens, what any decision on a token costs at least.
    let vk = key.verifying_key();
    let parsed: Vec<_> = tokens
        .iter()
        .map(|m| {
            let Medium::Code(text) = m else {
                unreachable!("tokens are codes")
            };
            let (_, bytes, sig) = token::parse(text).unwrap();
            (token::signed_message(&bytes), sig)
        })
        .collect();
    let mut v = Vec::with_capacity(n);
    let start = Instant::now();
    for (msg, sig) in &parsed {
        let t = Instant::now();
        let ok = vk.verify_strict(msg, sig).is_ok();
        v.push(t.elapsed());
        assert!(ok);
    }
    row_of(
        "verifications",
        "bare Ed25519 `verify_strict` of the same tokens, for scale",
        v,
        start.elapsed(),
    );

    // Keeping the occupancy counts: one recount (what each commit at any
    // device of the site triggers) over a peak day's passages of the site.
    let day_passages = 60_000;
    {
        let mut s = Store::open(&path).unwrap();
        let tx = s.conn().transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO passages (nonce, ticket_id, lane, direction, persons, at_ms,
                         local_day, local_minute, seq, lane_group, entries_allowed, group_size)
                     VALUES (?1, ?2, 'l', ?3, 1, ?4, ?5, ?6, NULL, ?7, 1, 1)",
                )
                .unwrap();
            for i in 0..day_passages {
                let minute = NOW - 300 + (i % 290) as u32;
                st.execute(params![
                    format!("peer-{}/l/{i}", i % 10),
                    i as i64,
                    if i % 3 == 0 { "exit" } else { "entry" },
                    i as i64,
                    minute / 1440,
                    minute,
                    ["east", "west", "north", "cable-car", "museum"][i % 5],
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let caps = gated::occupancy::Capacities {
        daily: Some(80_000),
        instant: Some(30_000),
        groups: [("cable-car".to_owned(), (None, Some(600)))].into(),
        tiers: vec![80, 90, 95, 100],
        stop_sales_at: 80,
        when_full: gated::tickets::admission::WhenFull {
            admit_reentry: true,
        },
        day: Default::default(),
        check_out_at_day_end: true,
        offline_margin: 10,
    };
    // Counted afresh, as at a start of gated.
    let mut v = Vec::with_capacity(50);
    let start = Instant::now();
    for _ in 0..50 {
        let t = Instant::now();
        let view = caps.count(&store, NOW, false).unwrap();
        v.push(t.elapsed());
        assert!(view.site.entries >= 40_000, "{:?}", view.site);
    }
    row_of(
        "counts",
        &format!(
            "occupancy counted afresh (gated starting) over {day_passages} passages of the day, 5 lane groups"
        ),
        v,
        start.elapsed(),
    );
    // The running device: one more passage committed, then its recount.
    let mut tally = gated::occupancy::Tally::default();
    caps.recount(&mut tally, &store, NOW, false).unwrap();
    let mut v = Vec::with_capacity(500);
    let start = Instant::now();
    for i in 0..500 {
        store
            .conn()
            .execute(
                "INSERT INTO passages (nonce, ticket_id, lane, direction, persons, at_ms,
                     local_day, local_minute, seq, lane_group, entries_allowed, group_size)
                 VALUES (?1, ?2, 'l', 'entry', 1, 0, ?3, ?4, NULL, 'east', 1, 1)",
                params![format!("new/l/{i}"), i as i64, NOW / 1440, NOW],
            )
            .unwrap();
        let t = Instant::now();
        let view = caps.recount(&mut tally, &store, NOW, false).unwrap();
        v.push(t.elapsed());
        assert_eq!(view.site.entries, 40_000 + i as u64 + 1);
    }
    row_of(
        "recounts",
        &format!("occupancy recount after one more passage, {day_passages} already counted"),
        v,
        start.elapsed(),
    );
}

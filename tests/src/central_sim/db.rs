//! central-sim's own SQLite file: devices, catalog, tickets and their change
//! feed, orders, and the events devices uploaded.

use std::path::Path;

use ed25519_dalek::SigningKey;
use gated::central::api::{Product, Slot};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pairing_codes (
    code TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL,
    lane_groups TEXT NOT NULL, expires_ms INTEGER NOT NULL, used_ms INTEGER);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, role TEXT NOT NULL, lane_groups TEXT NOT NULL,
    public_key BLOB NOT NULL, enrolled_ms INTEGER NOT NULL,
    peer_address TEXT, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS challenges (
    challenge TEXT PRIMARY KEY, device_id TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, device_id TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (
    product_id INTEGER NOT NULL, date TEXT NOT NULL, start_minute INTEGER NOT NULL,
    capacity INTEGER NOT NULL, PRIMARY KEY (product_id, date, start_minute));
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY, order_no TEXT, record TEXT NOT NULL, token TEXT,
    holder_hash TEXT, price_cents INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tickets_by_order ON tickets(order_no);
CREATE INDEX IF NOT EXISTS tickets_by_holder ON tickets(holder_hash);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    nonce TEXT PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    device_time_ms INTEGER NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_no TEXT PRIMARY KEY, order_code TEXT NOT NULL UNIQUE, client_ref TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL, phone TEXT, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats (
    device_id TEXT PRIMARY KEY, json TEXT NOT NULL, received_ms INTEGER NOT NULL);
"#;

/// Slots everyone can rely on: the day ticket is valid all day, so tests
/// pass at any hour; the others show time slots at the kiosk.
pub fn seed_products() -> Vec<Product> {
    let all_day = vec![Slot {
        start_minute: 0,
        end_minute: 1440,
    }];
    let halves = vec![
        Slot {
            start_minute: 8 * 60,
            end_minute: 12 * 60,
        },
        Slot {
            start_minute: 12 * 60,
            end_minute: 17 * 60,
        },
    ];
    vec![
        Product {
            id: 1,
            name: "成人票".into(),
            name_en: "Adult day ticket".into(),
            price_cents: 12000,
            real_name: false,
            lane_groups: vec![],
            entries_allowed: 1,
            per_day_limit: 0,
            reentry_after_exit: false,
            reentry_minutes: 0,
            weekdays: 127,
            slots: all_day.clone(),
        },
        Product {
            id: 2,
            name: "儿童票".into(),
            name_en: "Child ticket".into(),
            price_cents: 6000,
            real_name: false,
            lane_groups: vec![],
            entries_allowed: 1,
            per_day_limit: 0,
            reentry_after_exit: false,
            reentry_minutes: 0,
            weekdays: 127,
            slots: halves,
        },
        Product {
            id: 3,
            name: "实名票".into(),
            name_en: "Real-name ticket".into(),
            price_cents: 10000,
            real_name: true,
            lane_groups: vec![],
            entries_allowed: 1,
            per_day_limit: 0,
            reentry_after_exit: false,
            reentry_minutes: 0,
            weekdays: 127,
            slots: all_day,
        },
    ]
}

pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    // A database from before the site peers: add their columns.
    for column in ["peer_address TEXT", "revoked INTEGER NOT NULL DEFAULT 0"] {
        let _ = conn.execute(&format!("ALTER TABLE devices ADD COLUMN {column}"), []);
    }
    let seeded: Option<i64> = conn
        .query_row("SELECT 1 FROM products LIMIT 1", [], |r| r.get(0))
        .optional()?;
    if seeded.is_none() {
        for p in seed_products() {
            conn.execute(
                "INSERT INTO products (id, json) VALUES (?1, ?2)",
                params![p.id, serde_json::to_string(&p).expect("product")],
            )?;
        }
        meta_put(&conn, "catalog_version", b"1")?;
    }
    Ok(conn)
}

pub fn meta(conn: &Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

pub fn meta_put(conn: &Connection, name: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map(|_| ())
}

/// The ticket-signing key and the ID-hash key, made once per database.
pub fn keys(conn: &Connection) -> rusqlite::Result<(SigningKey, Vec<u8>)> {
    let get = |name: &str, len: usize| -> rusqlite::Result<Vec<u8>> {
        if let Some(v) = meta(conn, name)? {
            return Ok(v);
        }
        let mut v = vec![0u8; len];
        getrandom::fill(&mut v).expect("random");
        meta_put(conn, name, &v)?;
        Ok(v)
    };
    let seed: [u8; 32] = get("signing_key", 32)?.try_into().expect("32 bytes");
    Ok((SigningKey::from_bytes(&seed), get("id_hash_key", 32)?))
}

pub fn max_seq(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|s| s as u64)
}

/// The catalog changed (a device's peer address, a revocation): a new
/// version, announced in the change feed. Returns the feed's newest sequence.
pub fn bump_catalog(conn: &Connection) -> rusqlite::Result<u64> {
    let version = catalog_version(conn)? + 1;
    meta_put(conn, "catalog_version", version.to_string().as_bytes())?;
    conn.execute(
        "INSERT INTO changes (body) VALUES (?1)",
        [
            serde_json::to_string(&gated::central::api::Change::Catalog { version })
                .expect("change"),
        ],
    )?;
    max_seq(conn)
}

/// The site's devices for the catalog, and the revoked ones' ids.
pub fn site_devices(
    conn: &Connection,
) -> rusqlite::Result<(Vec<gated::central::api::SiteDevice>, Vec<String>)> {
    let mut st = conn.prepare(
        "SELECT device_id, role, public_key, peer_address, revoked FROM devices ORDER BY device_id",
    )?;
    let mut devices = Vec::new();
    let mut revoked = Vec::new();
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)? != 0,
        ))
    })?;
    for row in rows {
        let (device_id, role, key, peer_address, is_revoked) = row?;
        if is_revoked {
            revoked.push(device_id);
        } else {
            devices.push(gated::central::api::SiteDevice {
                device_id,
                role,
                public_key: hex::encode(key),
                peer_address,
            });
        }
    }
    Ok((devices, revoked))
}

/// The capacities set through the control panel: "site" or a lane group →
/// its capacities (in `meta`, as JSON).
pub fn capacities(
    conn: &Connection,
) -> rusqlite::Result<std::collections::BTreeMap<String, gated::central::api::Capacity>> {
    Ok(meta(conn, "capacities")?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

/// Update offers by device id (`*`: every device without its own).
pub fn rollouts(
    conn: &Connection,
) -> rusqlite::Result<std::collections::BTreeMap<String, gated::central::api::UpdateOffer>> {
    Ok(meta(conn, "rollouts")?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

pub fn catalog_version(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(meta(conn, "catalog_version")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1))
}

pub fn products(conn: &Connection) -> rusqlite::Result<Vec<Product>> {
    let mut st = conn.prepare("SELECT json FROM products ORDER BY id")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?).expect("stored product"));
    }
    Ok(out)
}

//! The control panel (`/sim/…`, plain HTTP on loopback): what the central
//! system's operators and payment providers would do, and the failures a
//! test needs. Not part of the contract.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use gated::central::api::{self, Change};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::contract::{self, Fail};
use super::{FailMode, Sim, db, real_now_ms};

/// The scenic area's time zone (as gated's default).
pub const TIME_ZONE: &str = "Asia/Shanghai";

pub fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route("/sim/pairing-codes", post(pairing_code))
        .route("/sim/service-codes", post(service_code))
        .route("/sim/devices", get(devices))
        .route("/sim/sell", post(sell))
        .route("/sim/tickets", post(generate))
        .route("/sim/refund", post(refund))
        .route("/sim/fail", post(fail))
        .route("/sim/quota", post(quota))
        .route("/sim/orders", get(orders))
        .route("/sim/orders/{order_no}/paid", post(paid))
        .route("/sim/orders/{order_no}/expire", post(expire))
        .route("/sim/online-order", post(online_order))
        .route("/sim/passage", post(passage))
        .route("/sim/devices/revoke", post(revoke_device))
        .route("/sim/products", post(put_product))
        .route("/sim/capacity", post(put_capacity))
        .route("/sim/rollout", post(put_rollout))
        .route("/sim/expire-tokens", post(expire_tokens))
        .route("/sim/stats", get(stats))
        .route("/sim/events", get(events))
        .with_state(sim)
}

/// `CODE,DEVICE,ROLE[,GROUP…]`, valid for a day (the demo's code).
pub fn seed_pairing_code(conn: &Connection, spec: &str) -> Result<(), String> {
    let mut parts = spec.split(',');
    let (Some(code), Some(device), Some(role)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "--pairing-code {spec:?}: expected CODE,DEVICE,ROLE[,GROUP…]"
        ));
    };
    let groups: Vec<&str> = parts.collect();
    conn.execute(
        "INSERT INTO pairing_codes (code, device_id, role, lane_groups, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (code) DO UPDATE SET device_id = excluded.device_id, role = excluded.role,
             lane_groups = excluded.lane_groups, expires_ms = excluded.expires_ms, used_ms = NULL",
        params![code, device, role, groups.join(","), real_now_ms() + 86_400_000],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(TIME_ZONE).expect("bundled or system tzdata"))
        .date()
}

#[derive(Debug, Deserialize)]
struct PairingCode {
    device_id: String,
    role: String,
    #[serde(default)]
    lane_groups: Vec<String>,
    /// Negative: already expired (tests).
    #[serde(default = "default_ttl")]
    ttl_s: i64,
    /// The central URL the setup code names (default: this central-sim's).
    central: Option<String>,
}

fn default_ttl() -> i64 {
    600
}

async fn pairing_code(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<PairingCode>,
) -> Result<Json<Value>, Fail> {
    // Eight digits an engineer can type on a touchscreen.
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random");
    let code = format!("{:08}", u32::from_le_bytes(b) % 100_000_000);
    let expires = real_now_ms() + req.ttl_s * 1000;
    sim.db().execute(
        "INSERT INTO pairing_codes (code, device_id, role, lane_groups, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![code, req.device_id, req.role, req.lane_groups.join(","), expires],
    )?;
    // The QR code a field engineer scans at the device (docs/setup-code.md).
    let setup = gated::central::setup_code::encode(&gated::central::setup_code::SetupCode {
        central: req.central.unwrap_or_else(|| sim.api_url.clone()),
        code: code.clone(),
        device_id: req.device_id,
        role: req.role,
        site: Some(sim.site.clone()),
        lane_group: req.lane_groups.first().cloned(),
        expires_at_ms: Some(expires),
    });
    Ok(Json(
        json!({ "code": code, "expires_at_ms": expires, "setup_code": setup }),
    ))
}

#[derive(Debug, Deserialize)]
struct ServiceCodeReq {
    /// One device, or `*` for every device of the site.
    device_id: String,
    /// Negative: already expired (tests).
    #[serde(default = "default_ttl")]
    ttl_s: i64,
}

/// An engineer's service code: scanned at a lane, its display shows the
/// device's health (signed with the ticket-signing key, key id 1).
async fn service_code(State(sim): State<Arc<Sim>>, Json(req): Json<ServiceCodeReq>) -> Json<Value> {
    let expires = real_now_ms() + req.ttl_s * 1000;
    let text = gated::central::service_code::issue(
        &gated::central::service_code::ServiceCode {
            key_id: 1,
            expires_at_ms: expires,
            device_id: req.device_id,
        },
        &sim.signing_key,
    );
    Json(json!({ "service_code": text, "expires_at_ms": expires }))
}

/// Every device the central system knows, enrolled or only expected (a
/// pairing code issued, never used), with its last heartbeat and health:
/// a device enrolled but silent shows as such, not as enrolled.
async fn devices(State(sim): State<Arc<Sim>>) -> Result<Json<Vec<Value>>, Fail> {
    let conn = sim.db();
    let now = real_now_ms();
    let mut out: Vec<Value> = conn
        .prepare(
            "SELECT d.device_id, d.role, d.enrolled_ms, d.revoked, h.json, h.received_ms
             FROM devices d LEFT JOIN heartbeats h ON h.device_id = d.device_id
             ORDER BY d.device_id",
        )?
        .query_map([], |r| {
            let beat: Option<String> = r.get(4)?;
            let received: Option<i64> = r.get(5)?;
            let revoked: bool = r.get(3)?;
            let beat: Option<api::Heartbeat> = beat.and_then(|b| serde_json::from_str(&b).ok());
            let state = match (revoked, received) {
                (true, _) => "revoked",
                (false, None) => "enrolled, no heartbeat yet",
                (false, Some(t)) if now - t > 3 * 60_000 => "silent",
                (false, Some(_)) => "reporting",
            };
            Ok(json!({
                "device_id": r.get::<_, String>(0)?,
                "role": r.get::<_, String>(1)?,
                "enrolled_ms": r.get::<_, i64>(2)?,
                "state": state,
                "last_heartbeat_ms": received,
                "health": beat.and_then(|b| b.health),
            }))
        })?
        .collect::<Result<_, _>>()?;
    let expected = conn
        .prepare(
            "SELECT device_id, role FROM pairing_codes
             WHERE used_ms IS NULL AND device_id NOT IN (SELECT device_id FROM devices)
             GROUP BY device_id ORDER BY device_id",
        )?
        .query_map([], |r| {
            Ok(json!({
                "device_id": r.get::<_, String>(0)?,
                "role": r.get::<_, String>(1)?,
                "state": "not enrolled",
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    out.extend(expected);
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
struct Sell {
    #[serde(default = "one")]
    product_id: u32,
    /// Visit date; today in the scenic area by default.
    date: Option<String>,
    /// Binds the ticket to this ID card (stored as its keyed hash).
    id_number: Option<String>,
}

fn one() -> u32 {
    1
}

fn product(conn: &Connection, id: u32) -> Result<api::Product, Fail> {
    db::products(conn)?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| {
            Fail(
                StatusCode::NOT_FOUND,
                "product_unknown",
                format!("no product {id}"),
            )
        })
}

fn date_or_today(date: Option<&str>) -> Result<jiff::civil::Date, Fail> {
    match date {
        Some(d) => d.parse().map_err(|_| {
            Fail(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("date {d:?}"),
            )
        }),
        None => Ok(today()),
    }
}

/// A ticket sold through another channel (web shop, travel agency).
async fn sell(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<Sell>,
) -> Result<Json<api::IssuedTicket>, Fail> {
    let date = date_or_today(req.date.as_deref())?;
    let ticket = {
        let conn = sim.db();
        let p = product(&conn, req.product_id)?;
        let holder = req
            .id_number
            .as_deref()
            .map(|n| gated::tickets::token::holder_hash(&sim.id_hash_key, n).map(hex::encode))
            .transpose()
            .map_err(|e| Fail(StatusCode::BAD_REQUEST, "bad_id_number", e.to_string()))?;
        let visit = contract::Visit {
            date,
            slot: p.slots[0],
            holder,
            group_size: 1,
        };
        contract::issue(&conn, &sim, &p, visit, None)?
    };
    sim.seq.send_replace(db::max_seq(&sim.db())?);
    Ok(Json(ticket))
}

#[derive(Debug, Deserialize)]
struct Generate {
    count: u32,
    #[serde(default = "one")]
    product_id: u32,
    date: Option<String>,
}

/// Bulk tickets for downloads: ID-bound (holder hash of a made-up number),
/// no token kept. Returns the id range.
async fn generate(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<Generate>,
) -> Result<Json<Value>, Fail> {
    let date = date_or_today(req.date.as_deref())?;
    let s = sim.clone();
    let (first, last) = tokio::task::spawn_blocking(move || -> Result<(i64, i64), Fail> {
        let mut conn = s.db();
        let p = product(&conn, req.product_id)?;
        let slot = p.slots[0];
        let civil = |m: u16| {
            (date.at(0, 0, 0, 0) + jiff::SignedDuration::from_mins(m.into()))
                .strftime("%Y-%m-%dT%H:%M")
                .to_string()
        };
        let (from, until) = (civil(slot.start_minute), civil(slot.end_minute));
        let tx = conn.transaction()?;
        let mut first = None;
        let mut last = 0;
        {
            let mut ins_t = tx.prepare(
                "INSERT INTO tickets (record, holder_hash, price_cents) VALUES ('', ?1, ?2)",
            )?;
            let mut set = tx.prepare("UPDATE tickets SET record = ?2 WHERE id = ?1")?;
            let mut ins_c = tx.prepare("INSERT INTO changes (body) VALUES (?1)")?;
            for i in 0..req.count {
                let number = format!("110101199001{i:06}");
                let hash = hex::encode(
                    gated::tickets::token::holder_hash(&s.id_hash_key, &number).expect("digits"),
                );
                ins_t.execute(params![hash, p.price_cents])?;
                let id = tx.last_insert_rowid();
                first.get_or_insert(id);
                last = id;
                let record = api::TicketRecord {
                    id: id as u64,
                    serial: Some(format!("S{id:010}")),
                    product_id: p.id,
                    valid_from: from.clone(),
                    valid_until: until.clone(),
                    entries_allowed: None,
                    group_size: 1,
                    holder_hash: Some(hash),
                    card_uid: None,
                };
                set.execute(params![id, serde_json::to_string(&record).expect("record")])?;
                ins_c.execute([serde_json::to_string(&Change::Ticket(record)).expect("change")])?;
            }
        }
        tx.commit()?;
        Ok((first.unwrap_or(0), last))
    })
    .await
    .expect("generate task")?;
    let seq = db::max_seq(&sim.db())?;
    sim.seq.send_replace(seq);
    Ok(Json(
        json!({ "first_id": first, "last_id": last, "seq": seq }),
    ))
}

#[derive(Debug, Deserialize)]
struct Refund {
    ticket_id: u64,
    #[serde(default = "refunded")]
    reason: String,
}

fn refunded() -> String {
    "refunded".into()
}

async fn refund(State(sim): State<Arc<Sim>>, Json(req): Json<Refund>) -> Result<Json<Value>, Fail> {
    let seq = {
        let conn = sim.db();
        let n = conn.execute(
            "UPDATE tickets SET revoked = 1 WHERE id = ?1",
            [req.ticket_id as i64],
        )?;
        if n == 0 {
            return Err(Fail(
                StatusCode::NOT_FOUND,
                "ticket_unknown",
                format!("no ticket {}", req.ticket_id),
            ));
        }
        let change = Change::Revoke {
            ticket_id: req.ticket_id,
            reason: req.reason,
        };
        conn.execute(
            "INSERT INTO changes (body) VALUES (?1)",
            [serde_json::to_string(&change).expect("change")],
        )?;
        db::max_seq(&conn)?
    };
    sim.seq.send_replace(seq);
    Ok(Json(json!({ "seq": seq })))
}

#[derive(Debug, Deserialize)]
struct FailReq {
    mode: FailMode,
    #[serde(default)]
    slow_ms: u64,
    #[serde(default)]
    clock_offset_ms: i64,
}

async fn fail(State(sim): State<Arc<Sim>>, Json(req): Json<FailReq>) -> Json<Value> {
    sim.set_fail(req.mode, req.slow_ms, req.clock_offset_ms);
    tracing::info!(mode = ?req.mode, slow_ms = req.slow_ms, clock_offset_ms = req.clock_offset_ms, "failure mode set");
    Json(json!({ "mode": req.mode }))
}

#[derive(Debug, Deserialize)]
struct Quota {
    product_id: u32,
    date: String,
    start_minute: u16,
    capacity: u32,
}

async fn quota(State(sim): State<Arc<Sim>>, Json(q): Json<Quota>) -> Result<Json<Value>, Fail> {
    sim.db().execute(
        "INSERT INTO quotas (product_id, date, start_minute, capacity) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (product_id, date, start_minute) DO UPDATE SET capacity = excluded.capacity",
        params![q.product_id, q.date, q.start_minute, q.capacity],
    )?;
    Ok(Json(json!({})))
}

/// The visitor paid the QR with a wallet app.
async fn paid(
    State(sim): State<Arc<Sim>>,
    Path(no): Path<String>,
) -> Result<Json<api::Order>, Fail> {
    Ok(Json(contract::pay_order(&sim, &no)?))
}

async fn expire_tokens(State(sim): State<Arc<Sim>>) -> Result<Json<Value>, Fail> {
    let n = sim
        .db()
        .execute("UPDATE access_tokens SET expires_ms = 0", [])?;
    Ok(Json(json!({ "expired": n })))
}

/// Counters and what devices reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimStats {
    pub last_seq: u64,
    /// Distinct events stored (one per nonce).
    pub events_stored: u64,
    pub events_received: u64,
    pub duplicates_received: u64,
    pub changes_requests: u64,
    pub longpoll_wakes: u64,
    pub longpoll_waiting: u64,
    pub heartbeats: Vec<api::Heartbeat>,
}

async fn stats(State(sim): State<Arc<Sim>>) -> Result<Json<SimStats>, Fail> {
    let conn = sim.db();
    let events_stored: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let heartbeats = conn
        .prepare("SELECT json FROM heartbeats ORDER BY device_id")?
        .query_map([], |r| r.get::<_, String>(0))?
        .map(|j| j.map(|j| serde_json::from_str(&j).expect("stored heartbeat")))
        .collect::<Result<_, _>>()?;
    let s = &sim.stats;
    Ok(Json(SimStats {
        last_seq: db::max_seq(&conn)?,
        events_stored: events_stored as u64,
        events_received: s.events_received.load(Ordering::Relaxed),
        duplicates_received: s.duplicates_received.load(Ordering::Relaxed),
        changes_requests: s.changes_requests.load(Ordering::Relaxed),
        longpoll_wakes: s.longpoll_wakes.load(Ordering::Relaxed),
        longpoll_waiting: s.longpoll_waiting.load(Ordering::Relaxed),
        heartbeats,
    }))
}

/// Every order, oldest first: number, device, status, total, what was
/// bought (a payment provider's view: what it can mark paid).
async fn orders(State(sim): State<Arc<Sim>>) -> Result<Json<Vec<Value>>, Fail> {
    let conn = sim.db();
    let out = conn
        .prepare("SELECT device_id, json FROM orders ORDER BY rowid")?
        .query_map([], |r| {
            let order: api::Order =
                serde_json::from_str(&r.get::<_, String>(1)?).expect("stored order");
            Ok(json!({
                "order_no": order.order_no,
                "device_id": r.get::<_, String>(0)?,
                "status": order.status,
                "total_cents": order.total_cents,
                "items": order.items,
                "tickets": order.tickets.len(),
            }))
        })?
        .collect::<Result<_, _>>()?;
    Ok(Json(out))
}

/// Every stored event: nonce, device, kind.
async fn events(State(sim): State<Arc<Sim>>) -> Result<Json<Vec<Value>>, Fail> {
    let conn = sim.db();
    let rows = conn
        .prepare("SELECT nonce, device_id, kind, body FROM events ORDER BY received_ms, nonce")?
        .query_map([], |r| {
            let body: String = r.get(3)?;
            Ok(json!({
                "nonce": r.get::<_, String>(0)?,
                "device_id": r.get::<_, String>(1)?,
                "kind": r.get::<_, String>(2)?,
                "body": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            }))
        })?
        .collect::<Result<_, _>>()?;
    Ok(Json(rows))
}

/// The order's payment window closes now.
async fn expire(State(sim): State<Arc<Sim>>, Path(no): Path<String>) -> Result<Json<Value>, Fail> {
    let conn = sim.db();
    let json: String =
        conn.query_row("SELECT json FROM orders WHERE order_no = ?1", [&no], |r| {
            r.get(0)
        })?;
    let mut o: api::Order = serde_json::from_str(&json).expect("stored order");
    o.expires_at_ms = real_now_ms() - 1;
    conn.execute(
        "UPDATE orders SET json = ?2 WHERE order_no = ?1",
        params![no, serde_json::to_string(&o).expect("order")],
    )?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct OnlineOrder {
    #[serde(default = "one")]
    product_id: u32,
    #[serde(default = "one_u16")]
    quantity: u16,
    /// One per ticket for a real-name product.
    #[serde(default)]
    id_numbers: Vec<String>,
    phone: Option<String>,
    date: Option<String>,
}

fn one_u16() -> u16 {
    1
}

/// An order bought and paid on the web shop (for pickup at a kiosk).
async fn online_order(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<OnlineOrder>,
) -> Result<Json<api::Order>, Fail> {
    let date = date_or_today(req.date.as_deref())?;
    let no = {
        let conn = sim.db();
        let p = product(&conn, req.product_id)?;
        let holders = req
            .id_numbers
            .iter()
            .map(|n| gated::tickets::token::holder_hash(&sim.id_hash_key, n).map(hex::encode))
            .collect::<Result<_, _>>()
            .map_err(|e| Fail(StatusCode::BAD_REQUEST, "bad_id_number", e.to_string()))?;
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("random");
        let order = api::Order {
            order_no: format!(
                "W{}{:06}",
                date.strftime("%Y%m%d"),
                u32::from_le_bytes(b) % 1_000_000
            ),
            order_code: format!(
                "OC:{}",
                gated::central::identity::random_hex(10).to_uppercase()
            ),
            status: api::OrderStatus::Unpaid,
            date: date.to_string(),
            total_cents: p.price_cents * u32::from(req.quantity),
            expires_at_ms: real_now_ms() + contract::ORDER_TTL_MS,
            items: vec![api::OrderItem {
                product_id: p.id,
                start_minute: p.slots[0].start_minute,
                quantity: req.quantity,
                holders,
                group: false,
            }],
            tickets: vec![],
            phone_suffix: contract::phone_suffix(req.phone.as_deref()),
        };
        contract::insert_order(&conn, &order, &order.order_no, "web", req.phone.as_deref())?;
        order.order_no
    };
    Ok(Json(contract::pay_order(&sim, &no)?))
}

#[derive(Debug, Deserialize)]
struct Passage {
    ticket_id: u64,
    #[serde(default = "one")]
    persons: u32,
}

/// A lane somewhere admitted this ticket (as if its event was uploaded).
async fn passage(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<Passage>,
) -> Result<Json<Value>, Fail> {
    let nonce = format!("sim-lane/sim/{}", gated::central::identity::random_hex(8));
    let event = gated::central::api::Event {
        nonce: nonce.clone(),
        kind: "passage".into(),
        device_time_ms: real_now_ms(),
        body: json!({
            "ticket_id": req.ticket_id, "direction": "entry", "persons": req.persons,
            "lane": "sim", "lane_group": "sim", "at_ms": real_now_ms(),
            "local_time": gated::central::format_civil(gated::lanes::local_now(
                &jiff::tz::TimeZone::get(TIME_ZONE).expect("the scenic area's zone"),
            )),
        }),
    };
    let seq = {
        let conn = sim.db();
        contract::store_event(&conn, "sim-lane", &event)?;
        db::max_seq(&conn)?
    };
    sim.seq.send_replace(seq);
    Ok(Json(json!({ "nonce": nonce })))
}

#[derive(Debug, Deserialize)]
struct RevokeDevice {
    device_id: String,
}

/// The device is no longer trusted: its API calls are refused and the
/// catalog tells its peers to refuse it too.
async fn revoke_device(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<RevokeDevice>,
) -> Result<Json<Value>, Fail> {
    let seq = {
        let conn = sim.db();
        let n = conn.execute(
            "UPDATE devices SET revoked = 1 WHERE device_id = ?1",
            [&req.device_id],
        )?;
        if n == 0 {
            return Err(Fail(
                axum::http::StatusCode::NOT_FOUND,
                "device_unknown",
                format!("no device {}", req.device_id),
            ));
        }
        db::bump_catalog(&conn)?
    };
    sim.seq.send_replace(seq);
    Ok(Json(json!({ "revoked": req.device_id })))
}

/// Adds a product or replaces one, as an operator would in the back
/// office; the devices learn it with the catalog.
#[derive(Debug, Deserialize)]
struct ScopeCapacity {
    /// "site" or a lane group.
    scope: String,
    #[serde(flatten)]
    capacity: api::Capacity,
}

/// Sets the approved capacities of the site or a lane group; the catalog
/// carries them to every device.
async fn put_capacity(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<ScopeCapacity>,
) -> Result<Json<Value>, Fail> {
    let seq = {
        let conn = sim.db();
        let mut all = db::capacities(&conn)?;
        all.insert(req.scope.clone(), req.capacity);
        let json = serde_json::to_vec(&all).expect("capacities serialize");
        db::meta_put(&conn, "capacities", &json)?;
        db::bump_catalog(&conn)?
    };
    sim.seq.send_replace(seq);
    Ok(Json(json!({ "scope": req.scope, "seq": seq })))
}

/// `POST /sim/rollout {"device_id": "lane-1" or "*", "version", "url",
/// "sha256"}`: the heartbeat answer names this update to the device(s); an
/// empty version ends the rollout.
#[derive(Debug, Deserialize)]
struct Rollout {
    device_id: String,
    version: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    sha256: String,
}

async fn put_rollout(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<Rollout>,
) -> Result<Json<Value>, Fail> {
    let conn = sim.db();
    let mut all = db::rollouts(&conn)?;
    if req.version.is_empty() {
        all.remove(&req.device_id);
    } else {
        all.insert(
            req.device_id.clone(),
            gated::central::api::UpdateOffer {
                version: req.version.clone(),
                url: req.url,
                sha256: req.sha256,
            },
        );
    }
    db::meta_put(
        &conn,
        "rollouts",
        &serde_json::to_vec(&all).expect("rollouts serialize"),
    )?;
    Ok(Json(
        json!({ "device_id": req.device_id, "version": req.version }),
    ))
}

async fn put_product(
    State(sim): State<Arc<Sim>>,
    Json(product): Json<api::Product>,
) -> Result<Json<Value>, Fail> {
    let seq = {
        let conn = sim.db();
        let json = serde_json::to_string(&product).map_err(|e| {
            Fail(
                StatusCode::BAD_REQUEST,
                "bad_product",
                format!("product {}: {e}", product.id),
            )
        })?;
        conn.execute(
            "INSERT INTO products (id, json) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET json = excluded.json",
            params![product.id, json],
        )?;
        db::bump_catalog(&conn)?
    };
    sim.seq.send_replace(seq);
    Ok(Json(json!({ "product_id": product.id, "seq": seq })))
}

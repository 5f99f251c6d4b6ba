//! The Central API v1 as central-sim serves it, over TLS, with the failure
//! modes the control panel switches on.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::{Signature, VerifyingKey};
use gated::central::api::{self, ApiError, Change, OrderStatus};
use hyper_util::rt::TokioIo;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{FailMode, Sim, db, real_now_ms};

/// Every route of the contract, relative to the server's root.
pub const PREFIX: &str = "/api/v1";

const TOKEN_TTL_MS: i64 = 3_600_000;
const CHALLENGE_TTL_MS: i64 = 60_000;
/// Unpaid orders (and their QR) expire after this.
pub const ORDER_TTL_MS: i64 = 15 * 60_000;
const DEFAULT_CAPACITY: u32 = 200;
pub const SCENIC_AREA: &str = "青山景区 Green Hills Scenic Area";

/// An error answer with the contract's body.
#[derive(Debug)]
pub struct Fail(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.1.to_owned(),
            message: self.2,
        };
        (self.0, Json(body)).into_response()
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> Fail {
    Fail(StatusCode::BAD_REQUEST, "bad_request", msg.into())
}

type R<T> = Result<Json<T>, Fail>;

pub fn router(sim: Arc<Sim>) -> axum::Router {
    use api::paths::*;
    let p = |path: &str| format!("{PREFIX}/{path}");
    axum::Router::new()
        .route(&p(ENROLL), post(enroll))
        .route(&p(AUTH_CHALLENGE), post(challenge))
        .route(&p(AUTH_TOKEN), post(token))
        .route(&p(CATALOG), get(catalog))
        .route(&p(AVAILABILITY), get(availability))
        .route(&p(CHANGES), get(changes))
        .route(&p(EVENTS), post(events))
        .route(&p(ORDERS), post(create_order))
        .route(&format!("{PREFIX}/{ORDERS}/{{order_no}}"), get(get_order))
        .route(&format!("{PREFIX}/{ORDERS}/{{order_no}}/pay"), post(pay))
        .route(
            &format!("{PREFIX}/{ORDERS}/{{order_no}}/cancel"),
            post(cancel),
        )
        .route(&p(PICKUP), get(pickup))
        .route(&p(HEARTBEAT), post(heartbeat))
        .route(&format!("{PREFIX}/bundles/{{name}}"), get(bundle))
        .route(
            &format!("{PREFIX}/{TICKETS}/{{ticket_id}}"),
            get(ticket_status),
        )
        .fallback(|| async {
            Fail(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .with_state(sim)
}

/// Accepts TLS connections and serves the API on each, misbehaving on request.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, sim: Arc<Sim>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let router = router(sim.clone());
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router, sim) = (acceptor.clone(), router.clone(), sim.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (router, sim) = (router.clone(), sim.clone());
                    async move {
                        match sim.fail_mode() {
                            // hyper closes the connection without an answer.
                            FailMode::Drop => {
                                return Err(std::io::Error::other("dropped on purpose"));
                            }
                            FailMode::Error => {
                                return Ok(Fail(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "internal",
                                    "central-sim told to fail".into(),
                                )
                                .into_response());
                            }
                            FailMode::Slow => {
                                let ms = sim.slow_ms.load(Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            FailMode::None => {}
                        }
                        router
                            .oneshot(req.map(axum::body::Body::new))
                            .await
                            .map_err(|e: Infallible| match e {})
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn random_hex(n: usize) -> String {
    gated::central::identity::random_hex(n)
}

/// The device a bearer token stands for.
fn device(sim: &Sim, headers: &HeaderMap) -> Result<String, Fail> {
    let unauthorized = |m: &str| Fail(StatusCode::UNAUTHORIZED, "unauthorized", m.to_owned());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("no bearer token"))?;
    // One look: the token's device, its expiry, and whether it is revoked.
    let found: Option<(String, i64, bool)> = sim
        .db()
        .query_row(
            "SELECT t.device_id, t.expires_ms, COALESCE(d.revoked, 0) != 0
             FROM access_tokens t LEFT JOIN devices d ON d.device_id = t.device_id
             WHERE t.token = ?1",
            [token],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if found.as_ref().is_some_and(|f| f.2) {
        return Err(Fail(
            StatusCode::FORBIDDEN,
            "device_revoked",
            "this device is revoked".into(),
        ));
    }
    match found {
        Some((d, exp, _)) if exp > real_now_ms() => Ok(d),
        Some(_) => Err(unauthorized("token expired")),
        None => Err(unauthorized("unknown token")),
    }
}

fn issue_token(conn: &Connection, device_id: &str) -> rusqlite::Result<api::AccessToken> {
    let token = random_hex(32);
    let expires_at_ms = real_now_ms() + TOKEN_TTL_MS;
    conn.execute(
        "INSERT INTO access_tokens (token, device_id, expires_ms) VALUES (?1, ?2, ?3)",
        params![token, device_id, expires_at_ms],
    )?;
    Ok(api::AccessToken {
        token,
        expires_at_ms,
    })
}

fn signing_keys(sim: &Sim) -> Vec<api::SigningKey> {
    vec![api::SigningKey {
        key_id: 1,
        public_key: hex::encode(sim.signing_key.verifying_key().to_bytes()),
        valid_from: None,
        valid_until: None,
    }]
}

async fn enroll(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<api::EnrollRequest>,
) -> R<api::EnrollResponse> {
    let public = hex::decode(&req.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| bad("public_key must be an Ed25519 public key in hex"))?;
    let conn = sim.db();
    let code: Option<(String, String, String, i64, Option<i64>)> = conn
        .query_row(
            "SELECT device_id, role, lane_groups, expires_ms, used_ms FROM pairing_codes WHERE code = ?1",
            [req.code.trim()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((device_id, role, groups, expires, used)) = code else {
        return Err(Fail(
            StatusCode::NOT_FOUND,
            "code_unknown",
            "this pairing code does not exist: check it or ask for a new one".into(),
        ));
    };
    if used.is_some() {
        return Err(Fail(
            StatusCode::CONFLICT,
            "code_used",
            "this pairing code was already used: ask for a new one".into(),
        ));
    }
    if expires <= real_now_ms() {
        return Err(Fail(
            StatusCode::GONE,
            "code_expired",
            "this pairing code has expired: ask for a new one".into(),
        ));
    }
    if device_id != req.device_id || role != req.role {
        return Err(Fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "code_mismatch",
            format!(
                "this code is for device {device_id} ({role}), but the device is {} ({}); \
                 the code was not used",
                req.device_id, req.role
            ),
        ));
    }
    let now = real_now_ms();
    conn.execute(
        "UPDATE pairing_codes SET used_ms = ?2 WHERE code = ?1",
        params![req.code.trim(), now],
    )?;
    conn.execute(
        "INSERT INTO devices (device_id, role, lane_groups, public_key, enrolled_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device_id) DO UPDATE SET role = excluded.role, lane_groups = excluded.lane_groups,
             public_key = excluded.public_key, enrolled_ms = excluded.enrolled_ms, revoked = 0",
        params![device_id, role, groups, &public.to_bytes()[..], now],
    )?;
    // The site's device list (and its keys) changed: peers learn it.
    sim.seq.send_replace(db::bump_catalog(&conn)?);
    let access = issue_token(&conn, &device_id)?;
    Ok(Json(api::EnrollResponse {
        device_id,
        role,
        lane_groups: groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        signing_keys: signing_keys(&sim),
        id_hash_key: hex::encode(&sim.id_hash_key),
        access,
        server_time_ms: sim.now_ms(),
    }))
}

async fn challenge(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<api::ChallengeRequest>,
) -> R<api::Challenge> {
    let conn = sim.db();
    let known: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM devices WHERE device_id = ?1",
            [&req.device_id],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Err(Fail(
            StatusCode::NOT_FOUND,
            "device_unknown",
            format!("no enrolled device {}", req.device_id),
        ));
    }
    let challenge = random_hex(32);
    let expires_at_ms = real_now_ms() + CHALLENGE_TTL_MS;
    conn.execute(
        "INSERT INTO challenges (challenge, device_id, expires_ms) VALUES (?1, ?2, ?3)",
        params![challenge, req.device_id, expires_at_ms],
    )?;
    Ok(Json(api::Challenge {
        challenge,
        expires_at_ms,
    }))
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<api::TokenRequest>,
) -> R<api::AccessToken> {
    let unauthorized = |e: &'static str, m: &str| Fail(StatusCode::UNAUTHORIZED, e, m.to_owned());
    let conn = sim.db();
    // One use per challenge, whatever the outcome.
    let found: Option<(String, i64)> = conn
        .query_row(
            "DELETE FROM challenges WHERE challenge = ?1 RETURNING device_id, expires_ms",
            [&req.challenge],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match found {
        Some((d, exp)) if d == req.device_id && exp > real_now_ms() => {}
        _ => {
            return Err(unauthorized(
                "challenge_unknown",
                "challenge unknown, used or expired",
            ));
        }
    }
    let public: Vec<u8> = conn.query_row(
        "SELECT public_key FROM devices WHERE device_id = ?1",
        [&req.device_id],
        |r| r.get(0),
    )?;
    let key = VerifyingKey::from_bytes(&public.try_into().expect("stored 32 bytes"))
        .map_err(|_| unauthorized("bad_signature", "device key unusable"))?;
    let sig = hex::decode(&req.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| unauthorized("bad_signature", "signature is not 64 bytes of hex"))?;
    let mut msg = api::CHALLENGE_DOMAIN.to_vec();
    msg.extend_from_slice(&hex::decode(&req.challenge).unwrap_or_default());
    key.verify_strict(&msg, &sig).map_err(|_| {
        unauthorized(
            "bad_signature",
            "signature does not verify with the enrolled key",
        )
    })?;
    Ok(Json(issue_token(&conn, &req.device_id)?))
}

async fn catalog(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> R<api::Catalog> {
    device(&sim, &headers)?;
    let conn = sim.db();
    let (devices, revoked_devices) = db::site_devices(&conn)?;
    let mut capacities = db::capacities(&conn)?;
    let mut lane_groups: Vec<api::LaneGroup> = ["main", "north", "south"]
        .iter()
        .map(|g| api::LaneGroup {
            name: (*g).to_owned(),
            title: format!("{g} entrance"),
            capacity: capacities.remove(*g).unwrap_or_default(),
        })
        .collect();
    let site = capacities.remove("site").unwrap_or_default();
    // Groups given a capacity through the control panel are groups too.
    lane_groups.extend(capacities.into_iter().map(|(g, capacity)| api::LaneGroup {
        title: g.clone(),
        name: g,
        capacity,
    }));
    Ok(Json(api::Catalog {
        devices,
        revoked_devices,
        version: db::catalog_version(&conn)?,
        scenic_area: SCENIC_AREA.into(),
        signing_keys: signing_keys(&sim),
        lane_groups,
        products: db::products(&conn)?,
        capacity: site,
    }))
}

#[derive(Debug, Deserialize)]
struct DateQuery {
    date: String,
}

fn parse_date(text: &str) -> Result<jiff::civil::Date, Fail> {
    text.parse()
        .map_err(|_| bad(format!("date {text:?} is not YYYY-MM-DD")))
}

/// Tickets held for (product, date, slot): paid orders and unpaid ones not expired.
fn held(
    conn: &Connection,
    product_id: u32,
    date: &str,
    start: u16,
    except: Option<&str>,
) -> rusqlite::Result<u32> {
    let mut st =
        conn.prepare_cached("SELECT json FROM orders WHERE json LIKE ?1 AND order_no IS NOT ?2")?;
    let rows = st.query_map(params![format!("%\"date\":\"{date}\"%"), except], |r| {
        r.get::<_, String>(0)
    })?;
    let now = real_now_ms();
    let mut n = 0;
    for json in rows {
        let o: api::Order = serde_json::from_str(&json?).expect("stored order");
        let live = o.status == OrderStatus::Paid
            || (o.status == OrderStatus::Unpaid && o.expires_at_ms > now);
        if live {
            n += o
                .items
                .iter()
                .filter(|i| i.product_id == product_id && i.start_minute == start)
                .map(|i| u32::from(i.quantity))
                .sum::<u32>();
        }
    }
    Ok(n)
}

fn capacity(conn: &Connection, product_id: u32, date: &str, start: u16) -> rusqlite::Result<u32> {
    Ok(conn
        .query_row(
            "SELECT capacity FROM quotas WHERE product_id = ?1 AND date = ?2 AND start_minute = ?3",
            params![product_id, date, start],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(DEFAULT_CAPACITY))
}

async fn availability(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<DateQuery>,
) -> R<api::Availability> {
    device(&sim, &headers)?;
    let date = parse_date(&q.date)?.to_string();
    let conn = sim.db();
    let mut slots = Vec::new();
    for p in db::products(&conn)? {
        for s in &p.slots {
            let cap = capacity(&conn, p.id, &date, s.start_minute)?;
            let held = held(&conn, p.id, &date, s.start_minute, None)?;
            slots.push(api::SlotQuota {
                product_id: p.id,
                start_minute: s.start_minute,
                capacity: cap,
                remaining: cap.saturating_sub(held),
            });
        }
    }
    Ok(Json(api::Availability { date, slots }))
}

#[derive(Debug, Deserialize)]
struct ChangesQuery {
    #[serde(default)]
    cursor: u64,
    limit: Option<u32>,
    #[serde(default)]
    wait: u64,
}

fn page(
    conn: &Connection,
    cursor: u64,
    limit: u32,
) -> rusqlite::Result<(Vec<(u64, String)>, bool)> {
    let mut st =
        conn.prepare_cached("SELECT seq, body FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let mut rows: Vec<(u64, String)> = st
        .query_map(params![cursor as i64, limit + 1], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

async fn changes(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, Fail> {
    device(&sim, &headers)?;
    sim.stats.changes_requests.fetch_add(1, Ordering::Relaxed);
    let limit = q.limit.unwrap_or(5000);
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit must be 1..10000"));
    }
    let wait = Duration::from_secs(q.wait.min(30));
    let mut rows = page(&sim.db(), q.cursor, limit)?;
    if rows.0.is_empty() && !wait.is_zero() {
        let mut rx = sim.seq.subscribe();
        sim.stats.longpoll_waiting.fetch_add(1, Ordering::Relaxed);
        let woke = tokio::time::timeout(wait, rx.wait_for(|s| *s > q.cursor)).await;
        sim.stats.longpoll_waiting.fetch_sub(1, Ordering::Relaxed);
        if woke.is_ok_and(|r| r.is_ok()) {
            sim.stats.longpoll_wakes.fetch_add(1, Ordering::Relaxed);
            rows = page(&sim.db(), q.cursor, limit)?;
        }
    }
    let (rows, more) = rows;
    let next = rows.last().map_or(q.cursor, |r| r.0);
    // The stored bodies are already JSON: splice them rather than re-encode.
    let mut body = String::with_capacity(rows.iter().map(|r| r.1.len() + 1).sum::<usize>() + 96);
    body.push_str("{\"changes\":[");
    for (i, (_, b)) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(b);
    }
    body.push_str(&format!(
        "],\"next_cursor\":{next},\"more\":{more},\"server_time_ms\":{}}}",
        sim.now_ms()
    ));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn events(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(batch): Json<api::EventBatch>,
) -> R<api::EventAck> {
    let device_id = device(&sim, &headers)?;
    if batch.events.len() > 1000 {
        return Err(Fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "at most 1000 events per batch".into(),
        ));
    }
    let mut conn = sim.db();
    let tx = conn.transaction()?;
    let mut ack = api::EventAck {
        accepted: vec![],
        duplicates: vec![],
    };
    let mut fed = false;
    for e in batch.events {
        match store_event(&tx, &device_id, &e)? {
            Stored::Duplicate => ack.duplicates.push(e.nonce),
            Stored::New { fed: f } => {
                fed |= f;
                ack.accepted.push(e.nonce);
            }
        }
    }
    tx.commit()?;
    if fed {
        sim.seq.send_replace(db::max_seq(&conn)?);
    }
    drop(conn);
    sim.stats.events_received.fetch_add(
        (ack.accepted.len() + ack.duplicates.len()) as u64,
        Ordering::Relaxed,
    );
    sim.stats
        .duplicates_received
        .fetch_add(ack.duplicates.len() as u64, Ordering::Relaxed);
    Ok(Json(ack))
}

/// What [`store_event`] did.
pub enum Stored {
    /// Its nonce was stored before (a retry).
    Duplicate,
    /// Stored now; `fed`: it became a `passage` change.
    New { fed: bool },
}

/// Stores an event once by nonce; a passage's first storing also puts it
/// in the change feed, so every device of the site learns it once.
pub fn store_event(conn: &Connection, device_id: &str, e: &api::Event) -> rusqlite::Result<Stored> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO events (nonce, device_id, kind, device_time_ms, body, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            e.nonce,
            device_id,
            e.kind,
            e.device_time_ms,
            e.body.to_string(),
            real_now_ms()
        ])?;
    if n == 0 {
        return Ok(Stored::Duplicate);
    }
    let shared = shared_passage(device_id, e);
    if let Some(p) = &shared {
        conn.prepare_cached("INSERT INTO changes (body) VALUES (?1)")?
            .execute([serde_json::to_string(&Change::Passage(p.clone())).expect("change")])?;
    }
    Ok(Stored::New {
        fed: shared.is_some(),
    })
}

/// The change a `passage` or `free_passage` event makes in the feed.
fn shared_passage(device_id: &str, e: &api::Event) -> Option<api::PassageRecord> {
    if e.kind != "passage" && e.kind != "free_passage" {
        return None;
    }
    let b = &e.body;
    let at_ms = b["at_ms"].as_i64().unwrap_or(e.device_time_ms);
    // An event that does not say its local time: the site's, from its clock.
    let local_time = b["local_time"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let tz = jiff::tz::TimeZone::get(super::admin::TIME_ZONE).expect("the site's zone");
            let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or_default();
            gated::central::format_civil(gated::lanes::local_minute(at, &tz))
        });
    let ticket_id = if e.kind == "passage" {
        Some(b["ticket_id"].as_u64()?)
    } else {
        None
    };
    Some(api::PassageRecord {
        nonce: e.nonce.clone(),
        device_id: device_id.to_owned(),
        ticket_id,
        lane: b["lane"].as_str().unwrap_or_default().to_owned(),
        lane_group: b["lane_group"].as_str().unwrap_or_default().to_owned(),
        direction: b["direction"].as_str().unwrap_or("entry").to_owned(),
        persons: b["persons"].as_u64().unwrap_or(1) as u32,
        at_ms,
        local_time,
        entries_allowed: b["entries_allowed"].as_u64().unwrap_or(0) as u32,
        group_size: b["group_size"].as_u64().unwrap_or(1) as u16,
        seq: b["seq"].as_u64().unwrap_or(0),
    })
}

fn load_order(conn: &Connection, order_no: &str) -> Result<api::Order, Fail> {
    let json: Option<String> = conn
        .query_row(
            "SELECT json FROM orders WHERE order_no = ?1",
            [order_no],
            |r| r.get(0),
        )
        .optional()?;
    let mut o: api::Order = serde_json::from_str(&json.ok_or_else(|| {
        Fail(
            StatusCode::NOT_FOUND,
            "order_unknown",
            format!("no order {order_no}"),
        )
    })?)
    .expect("stored order");
    if o.status == OrderStatus::Unpaid && o.expires_at_ms <= real_now_ms() {
        o.status = OrderStatus::Expired;
        save_order(conn, &o)?;
    }
    Ok(o)
}

fn save_order(conn: &Connection, o: &api::Order) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE orders SET json = ?2 WHERE order_no = ?1",
        params![o.order_no, serde_json::to_string(o).expect("order")],
    )
    .map(|_| ())
}

fn sold_out(
    conn: &Connection,
    o_date: &str,
    items: &[api::OrderItem],
    except: Option<&str>,
) -> Result<(), Fail> {
    for item in items {
        let cap = capacity(conn, item.product_id, o_date, item.start_minute)?;
        let held = held(conn, item.product_id, o_date, item.start_minute, except)?;
        if held + u32::from(item.quantity) > cap {
            return Err(Fail(
                StatusCode::CONFLICT,
                "sold_out",
                format!(
                    "product {} at {:02}:{:02} on {o_date}: {} left, {} asked",
                    item.product_id,
                    item.start_minute / 60,
                    item.start_minute % 60,
                    cap.saturating_sub(held),
                    item.quantity
                ),
            ));
        }
    }
    Ok(())
}

async fn create_order(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(req): Json<api::CreateOrder>,
) -> R<api::Order> {
    let device_id = device(&sim, &headers)?;
    let invalid = |m: String| Fail(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    let date = parse_date(&req.date)?;
    let conn = sim.db();
    let existing: Option<String> = conn
        .query_row(
            "SELECT order_no FROM orders WHERE client_ref = ?1",
            [&req.client_ref],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(no) = existing {
        return Ok(Json(load_order(&conn, &no)?));
    }
    if req.items.is_empty() {
        return Err(invalid("an order needs at least one item".into()));
    }
    let products = db::products(&conn)?;
    let mut total = 0u32;
    for item in &req.items {
        let p = products
            .iter()
            .find(|p| p.id == item.product_id)
            .ok_or_else(|| invalid(format!("no product {}", item.product_id)))?;
        if !p.slots.iter().any(|s| s.start_minute == item.start_minute) {
            return Err(invalid(format!(
                "product {} has no slot at minute {}",
                p.id, item.start_minute
            )));
        }
        if !(1..=20).contains(&item.quantity) {
            return Err(invalid("quantity must be 1..20".into()));
        }
        if item.group && p.real_name {
            return Err(invalid(format!(
                "{} is a real-name product: no group tickets",
                p.name_en
            )));
        }
        if p.real_name
            && (item.holders.len() != usize::from(item.quantity)
                || item
                    .holders
                    .iter()
                    .any(|h| h.len() != 32 || hex::decode(h).is_err()))
        {
            return Err(invalid(format!(
                "{} is a real-name product: one ID card (holder hash) per ticket",
                p.name_en
            )));
        }
        total += p.price_cents * u32::from(item.quantity);
    }
    sold_out(&conn, &date.to_string(), &req.items, None)?;
    let order = api::Order {
        order_no: format!(
            "O{}{:06}",
            date.strftime("%Y%m%d"),
            random_u32() % 1_000_000
        ),
        order_code: format!("OC:{}", random_hex(10).to_uppercase()),
        status: OrderStatus::Unpaid,
        date: date.to_string(),
        total_cents: total,
        expires_at_ms: real_now_ms() + ORDER_TTL_MS,
        items: req.items,
        tickets: vec![],
        phone_suffix: phone_suffix(req.phone.as_deref()),
    };
    insert_order(
        &conn,
        &order,
        &req.client_ref,
        &device_id,
        req.phone.as_deref(),
    )?;
    Ok(Json(order))
}

/// The last four digits of a phone number, kept for pickup.
pub fn phone_suffix(phone: Option<&str>) -> Option<String> {
    phone
        .filter(|p| p.len() >= 4)
        .map(|p| p[p.len() - 4..].to_owned())
}

/// Stores a new order.
pub fn insert_order(
    conn: &Connection,
    order: &api::Order,
    client_ref: &str,
    device_id: &str,
    phone: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO orders (order_no, order_code, client_ref, device_id, phone, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            order.order_no,
            order.order_code,
            client_ref,
            device_id,
            phone,
            serde_json::to_string(order).expect("order")
        ],
    )
    .map(|_| ())
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random");
    u32::from_le_bytes(b)
}

async fn get_order(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(no): Path<String>,
) -> R<api::Order> {
    device(&sim, &headers)?;
    Ok(Json(load_order(&sim.db(), &no)?))
}

/// Marks an order paid and issues its tickets (one per person), each a
/// signed token and a change for the lanes.
pub fn pay_order(sim: &Sim, order_no: &str) -> Result<api::Order, Fail> {
    let mut conn = sim.db();
    let mut o = load_order(&conn, order_no)?;
    if o.status != OrderStatus::Unpaid {
        return Err(Fail(
            StatusCode::CONFLICT,
            "not_payable",
            format!("order {order_no} is {:?}", o.status).to_lowercase(),
        ));
    }
    sold_out(&conn, &o.date, &o.items, Some(order_no))?;
    let date: jiff::civil::Date = o.date.parse().expect("stored date");
    let products = db::products(&conn)?;
    let tx = conn.transaction()?;
    for item in o.items.clone() {
        let p = products
            .iter()
            .find(|p| p.id == item.product_id)
            .expect("checked at order");
        let slot = p
            .slots
            .iter()
            .find(|s| s.start_minute == item.start_minute)
            .expect("checked at order");
        if item.group {
            // One ticket for the whole group.
            let visit = Visit {
                date,
                slot: *slot,
                holder: None,
                group_size: item.quantity,
            };
            let t = issue(&tx, sim, p, visit, Some(order_no))?;
            o.tickets.push(t);
            continue;
        }
        for i in 0..usize::from(item.quantity) {
            let holder = item.holders.get(i).cloned();
            let visit = Visit {
                date,
                slot: *slot,
                holder,
                group_size: 1,
            };
            let t = issue(&tx, sim, p, visit, Some(order_no))?;
            o.tickets.push(t);
        }
    }
    o.status = OrderStatus::Paid;
    save_order(&tx, &o)?;
    // Kiosks keep paid orders for pickup while offline.
    tx.execute(
        "INSERT INTO changes (body) VALUES (?1)",
        [serde_json::to_string(&Change::Order(o.clone())).expect("change")],
    )?;
    tx.commit()?;
    drop(conn);
    sim.seq.send_replace(db::max_seq(&sim.db())?);
    Ok(o)
}

/// What one ticket is for: a visit (date and slot), a holder, a group size.
#[derive(Debug, Clone)]
pub struct Visit {
    pub date: jiff::civil::Date,
    pub slot: api::Slot,
    /// Holder hash (hex) of a real-name ticket.
    pub holder: Option<String>,
    pub group_size: u16,
}

/// One ticket: record, token and change, inside the caller's transaction.
pub fn issue(
    tx: &Connection,
    sim: &Sim,
    p: &api::Product,
    visit: Visit,
    order_no: Option<&str>,
) -> rusqlite::Result<api::IssuedTicket> {
    let Visit {
        date,
        slot,
        holder,
        group_size,
    } = visit;
    let civil = |minute: u16| {
        let dt = date.at(0, 0, 0, 0) + jiff::SignedDuration::from_mins(minute.into());
        dt.strftime("%Y-%m-%dT%H:%M").to_string()
    };
    let (from, until) = (civil(slot.start_minute), civil(slot.end_minute));
    tx.execute(
        "INSERT INTO tickets (order_no, record, price_cents, holder_hash) VALUES (?1, '', ?2, ?3)",
        params![order_no, p.price_cents * u32::from(group_size), holder],
    )?;
    let id = tx.last_insert_rowid() as u64;
    let record = api::TicketRecord {
        id,
        serial: Some(format!("S{id:010}")),
        product_id: p.id,
        valid_from: from.clone(),
        valid_until: until.clone(),
        entries_allowed: None,
        group_size,
        holder_hash: holder.clone(),
        card_uid: None,
    };
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("random");
    let payload = gated::tickets::token::Payload {
        key_id: 1,
        ticket_id: id,
        product_id: p.id,
        valid_from: gated::central::parse_civil(&from).expect("civil"),
        valid_until: gated::central::parse_civil(&until).expect("civil"),
        entries: p.entries_allowed,
        holder: holder
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| h.try_into().ok()),
        group: (group_size > 1).then_some(group_size),
        seed,
    };
    let token = gated::tickets::token::encode(&payload, &sim.signing_key);
    tx.execute(
        "UPDATE tickets SET record = ?2, token = ?3 WHERE id = ?1",
        params![
            id as i64,
            serde_json::to_string(&record).expect("record"),
            token
        ],
    )?;
    tx.execute(
        "INSERT INTO changes (body) VALUES (?1)",
        [serde_json::to_string(&Change::Ticket(record.clone())).expect("change")],
    )?;
    Ok(api::IssuedTicket {
        ticket_id: id,
        serial: record.serial.expect("set above"),
        product_id: p.id,
        token,
        valid_from: from,
        valid_until: until,
        group_size,
        price_cents: p.price_cents * u32::from(group_size),
        holder_hash: holder,
    })
}

async fn pay(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(no): Path<String>,
    Json(req): Json<api::PayRequest>,
) -> R<api::Payment> {
    device(&sim, &headers)?;
    match req {
        api::PayRequest::Qr => {
            let o = load_order(&sim.db(), &no)?;
            if o.status != OrderStatus::Unpaid {
                return Err(Fail(
                    StatusCode::CONFLICT,
                    "not_payable",
                    format!("order {no} is {:?}", o.status).to_lowercase(),
                ));
            }
            Ok(Json(api::Payment {
                status: o.status,
                qr: Some(format!("https://pay.central-sim.test/qr/{no}")),
                expires_at_ms: o.expires_at_ms,
            }))
        }
        api::PayRequest::Code { code } => {
            if !(16..=24).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("a payment code is 16 to 24 digits"));
            }
            // The wallet declines codes ending in 0000 (how tests ask for it).
            if code.ends_with("0000") {
                return Err(Fail(
                    StatusCode::PAYMENT_REQUIRED,
                    "payment_declined",
                    "the wallet declined the payment: try another payment method".into(),
                ));
            }
            let o = pay_order(&sim, &no)?;
            Ok(Json(api::Payment {
                status: o.status,
                qr: None,
                expires_at_ms: o.expires_at_ms,
            }))
        }
    }
}

async fn cancel(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(no): Path<String>,
) -> R<api::Order> {
    device(&sim, &headers)?;
    let conn = sim.db();
    let mut o = load_order(&conn, &no)?;
    if o.status != OrderStatus::Unpaid {
        return Err(Fail(
            StatusCode::CONFLICT,
            "not_cancellable",
            format!("order {no} is {:?}", o.status).to_lowercase(),
        ));
    }
    o.status = OrderStatus::Cancelled;
    save_order(&conn, &o)?;
    Ok(Json(o))
}

#[derive(Debug, Deserialize)]
struct PickupQuery {
    order_code: Option<String>,
    id_hash: Option<String>,
    order_no: Option<String>,
    phone_suffix: Option<String>,
}

async fn pickup(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<PickupQuery>,
) -> R<api::Pickup> {
    device(&sim, &headers)?;
    let conn = sim.db();
    let numbers: Vec<String> = match (&q.order_code, &q.id_hash, &q.order_no, &q.phone_suffix) {
        (Some(code), None, None, None) => conn
            .prepare("SELECT order_no FROM orders WHERE order_code = ?1")?
            .query_map([code], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        (None, Some(hash), None, None) => conn
            .prepare("SELECT DISTINCT order_no FROM tickets WHERE holder_hash = ?1 AND order_no IS NOT NULL")?
            .query_map([hash.to_lowercase()], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        (None, None, Some(no), Some(suffix)) if suffix.len() == 4 => conn
            .prepare("SELECT order_no FROM orders WHERE order_no = ?1 AND phone LIKE '%' || ?2")?
            .query_map([no, suffix], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(bad(
                "give order_code, or id_hash, or order_no with a 4-digit phone_suffix",
            ));
        }
    };
    let mut orders = Vec::new();
    for no in numbers {
        let o = load_order(&conn, &no)?;
        if o.status == OrderStatus::Paid {
            orders.push(o);
        }
    }
    Ok(Json(api::Pickup { orders }))
}

async fn heartbeat(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(beat): Json<api::Heartbeat>,
) -> R<api::HeartbeatAck> {
    let device_id = device(&sim, &headers)?;
    let conn = sim.db();
    conn.execute(
        "INSERT INTO heartbeats (device_id, json, received_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO UPDATE SET json = excluded.json, received_ms = excluded.received_ms",
        params![device_id, serde_json::to_string(&beat).expect("beat"), real_now_ms()],
    )?;
    // A device's peer address is part of the catalog: a new one is a new catalog.
    if let Some(address) = beat.peers.as_ref().and_then(|p| p.address.as_deref()) {
        let changed = conn.execute(
            "UPDATE devices SET peer_address = ?2
             WHERE device_id = ?1 AND peer_address IS NOT ?2",
            params![device_id, address],
        )?;
        if changed == 1 {
            let seq = db::bump_catalog(&conn)?;
            sim.seq.send_replace(seq);
        }
    }
    // The rollout naming this device, else the one for every device.
    let rollouts = db::rollouts(&conn)?;
    let update = rollouts
        .get(&device_id)
        .or_else(|| rollouts.get("*"))
        .cloned();
    drop(conn);
    Ok(Json(api::HeartbeatAck {
        server_time_ms: sim.now_ms(),
        update,
    }))
}

/// An update bundle, to enrolled devices only.
async fn bundle(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Vec<u8>, Fail> {
    device(&sim, &headers)?;
    let not_found = || {
        Fail(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no bundle {name}"),
        )
    };
    if name.contains('/') || name.starts_with('.') {
        return Err(not_found());
    }
    tokio::fs::read(sim.bundles.join(&name))
        .await
        .map_err(|_| not_found())
}

async fn ticket_status(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> R<api::TicketStatus> {
    device(&sim, &headers)?;
    let conn = sim.db();
    let found: Option<(String, i64)> = conn
        .query_row(
            "SELECT record, revoked FROM tickets WHERE id = ?1",
            [id as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (record, revoked) = found.ok_or_else(|| {
        Fail(
            StatusCode::NOT_FOUND,
            "ticket_unknown",
            format!("no ticket {id}"),
        )
    })?;
    // Entries: persons of every uploaded entry passage of this ticket.
    let mut entries = 0u32;
    let mut st = conn.prepare_cached("SELECT body FROM events WHERE kind = 'passage'")?;
    for body in st.query_map([], |r| r.get::<_, String>(0))? {
        let v: serde_json::Value = serde_json::from_str(&body?).unwrap_or_default();
        if v["ticket_id"].as_u64() == Some(id) && v["direction"] == "entry" {
            entries += v["persons"].as_u64().unwrap_or(0) as u32;
        }
    }
    Ok(Json(api::TicketStatus {
        ticket: serde_json::from_str(&record).expect("stored record"),
        entries_used: entries,
        revoked: (revoked != 0).then(|| "refunded".to_owned()),
        blocked: None,
    }))
}

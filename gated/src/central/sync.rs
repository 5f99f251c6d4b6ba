//! Keeps the device in step with the central system, by itself:
//!
//! - **pull**: the catalog, then ticket changes after the stored cursor, one
//!   transaction per page with the new cursor in it (an interrupted download
//!   resumes where it stopped; a page applied twice changes nothing). When
//!   caught up it long-polls, so a sale or refund arrives within a round trip.
//! - **push**: the outbox in batches; an event leaves it only once the
//!   central system has acknowledged its nonce.
//! - **heartbeat**: status, versions, outbox depth and the device clock; the
//!   answer gives the clock skew, which is reported, never acted on.
//!
//! Failures make the device offline (visible in the status) and are retried
//! with jittered backoff; lanes keep validating from the store meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hal::supervise::Backoff;
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::api::{self, Change, ChangesPage, paths};
use super::client::{self, CALL_TIMEOUT, CentralError, Session};
use super::identity;
use crate::config::Config;
use crate::lane::Engine;
use crate::store::keys::{self, KeyRow};
use crate::store::outbox::{Nonces, OutboxError};
use crate::store::tickets::{TicketRow, feed};
use crate::store::{Db, Store, StoreError};
use crate::tickets::rules::Product;

/// `device_settings` rows this module owns.
pub const CURSOR: &str = "sync.cursor";
pub const CATALOG_VERSION: &str = "sync.catalog_version";
/// The catalog as last received (JSON), for the kiosk.
pub const CATALOG: &str = "catalog";

/// The catalog as last received (None: none yet).
pub fn stored_catalog(store: &Store) -> Result<Option<api::Catalog>, String> {
    let Some(raw) = store.setting(CATALOG).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| format!("stored catalog: {e}"))
}

/// A skew beyond this is reported (tickets are still checked on the device clock).
pub const SKEW_REPORTED_MS: i64 = 120_000;
/// Changes per page.
pub const PAGE_LIMIT: u32 = 5000;
/// Events per upload.
pub const PUSH_BATCH: u32 = 500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No credentials yet: `gatectl provision` first.
    #[default]
    Unprovisioned,
    Online,
    Offline,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Unprovisioned => "unprovisioned",
            Mode::Online => "online",
            Mode::Offline => "offline",
        })
    }
}

/// The link's state as gatectl and (later) D-Bus show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub mode: Mode,
    pub central_url: Option<String>,
    /// When `mode` last changed (Unix ms).
    pub since_ms: i64,
    /// Last successful exchange with the central system.
    pub last_sync_ms: Option<i64>,
    pub last_error: Option<String>,
    pub cursor: u64,
    pub catalog_version: u64,
    pub outbox_depth: u64,
    /// Central clock minus device clock.
    pub clock_skew_ms: Option<i64>,
    /// Changes of kinds this gated does not know, skipped since it started
    /// (a newer central system: update gated).
    pub skipped_changes: u64,
}

impl SyncStatus {
    pub fn skew_reported(&self) -> bool {
        self.clock_skew_ms
            .is_some_and(|s| s.unsigned_abs() > SKEW_REPORTED_MS as u64)
    }
}

/// Timings (config `[central]`).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long the central system may hold a long poll.
    pub long_poll: Duration,
    pub heartbeat: Duration,
    pub backoff: Backoff,
}

impl Timings {
    pub fn from_config(config: &Config) -> Self {
        Timings {
            long_poll: Duration::from_secs(config.central.long_poll_s.into()),
            heartbeat: Duration::from_secs(config.central.heartbeat_s.into()),
            backoff: Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Sets a `device_settings` row inside a transaction.
pub use crate::store::settings::put;

fn setting_u64(store: &Store, name: &str) -> Result<u64, StoreError> {
    Ok(store
        .setting(name)?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Replaces the pinned ticket-signing keys.
pub fn replace_signing_keys(
    tx: &Transaction<'_>,
    keys: &[api::SigningKey],
) -> rusqlite::Result<()> {
    let mut rows = Vec::new();
    for k in keys {
        let Some(public_key) = hex::decode(&k.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            warn!(
                key_id = k.key_id,
                "signing key is not 32 bytes of hex; skipped"
            );
            continue;
        };
        // Fail closed: a validity we cannot read pins nothing (it used to
        // become "always", a key that never expires).
        let civil = |t: &Option<String>| match t.as_deref() {
            None => Ok(None),
            Some(text) => super::parse_civil(text).map(Some).ok_or(text.to_owned()),
        };
        let (from, until) = match (civil(&k.valid_from), civil(&k.valid_until)) {
            (Ok(from), Ok(until)) => (from, until),
            (Err(text), _) | (_, Err(text)) => {
                warn!(
                    key_id = k.key_id,
                    "signing key validity {text:?} is not a civil time (YYYY-MM-DDTHH:MM); key not pinned"
                );
                continue;
            }
        };
        rows.push(KeyRow {
            key_id: k.key_id,
            public_key,
            valid_from: from,
            valid_until: until,
        });
    }
    keys::replace(tx, &rows)
}

/// Applies a catalog in one transaction.
pub fn apply_catalog(store: &mut Store, catalog: &api::Catalog) -> Result<(), StoreError> {
    let json = serde_json::to_vec(catalog).expect("catalog serializes");
    let products: Vec<(Product, &str)> = catalog
        .products
        .iter()
        .map(|p| {
            // Lanes admit during the product's sale slots, first start to last end.
            let start = p.slots.iter().map(|s| s.start_minute).min().unwrap_or(0);
            let end = p.slots.iter().map(|s| s.end_minute).max().unwrap_or(1440);
            let rules = Product {
                id: p.id,
                lane_groups: p.lane_groups.clone(),
                entries_allowed: p.entries_allowed,
                per_day_limit: p.per_day_limit,
                reentry_after_exit: p.reentry_after_exit,
                reentry_minutes: p.reentry_minutes,
                weekdays: p.weekdays,
                slot_start: start,
                slot_end: end,
            };
            (rules, p.name.as_str())
        })
        .collect();
    let path = store.path().to_owned();
    store
        .in_transaction(|tx| {
            replace_signing_keys(tx, &catalog.signing_keys)?;
            // Products are replaced whole; tickets of a withdrawn product are then refused.
            feed::replace_products(tx, &products)?;
            put(tx, CATALOG, &json)?;
            put(
                tx,
                crate::occupancy::CATALOG_CAPACITIES,
                &crate::occupancy::CatalogCapacities::of(catalog).to_json(),
            )?;
            put(tx, CATALOG_VERSION, catalog.version.to_string().as_bytes())
        })
        .map_err(|source| StoreError::Sqlite { path, source })
}

/// What applying a page found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub changes: usize,
    /// The newest catalog version the page announced.
    pub catalog: Option<u64>,
    /// Changes of kinds this gated does not know, skipped.
    pub skipped: usize,
}

/// Applies one page, fetched after cursor `from`, and moves the cursor, in
/// one transaction: either the whole page and its cursor are stored, or neither.
pub fn apply_page(
    store: &mut Store,
    from: u64,
    page: &ChangesPage,
    nonces: &Nonces,
) -> Result<Applied, StoreError> {
    let path = store.path().to_owned();
    let mut applied = Applied::default();
    // A download from the start defers the holder index; the last page builds it.
    let full_download = page.more && from == 0;
    let mut index_built = false;
    let run = |tx: &Transaction<'_>| -> Result<(), OutboxError> {
        if full_download {
            feed::defer_holder_index(tx)?;
        }
        for change in &page.changes {
            match change {
                Change::Ticket(t) => {
                    let (Some(from), Some(until)) = (
                        super::parse_civil(&t.valid_from),
                        super::parse_civil(&t.valid_until),
                    ) else {
                        warn!(ticket = t.id, "ticket with unreadable validity skipped");
                        continue;
                    };
                    let holder_hash = t
                        .holder_hash
                        .as_deref()
                        .and_then(|h| hex::decode(h).ok())
                        .and_then(|h| <[u8; 16]>::try_from(h).ok());
                    feed::put_ticket(
                        tx,
                        &TicketRow {
                            id: t.id,
                            serial: t.serial.as_deref(),
                            product_id: t.product_id,
                            valid_from: from,
                            valid_until: until,
                            entries_allowed: t.entries_allowed,
                            group_size: t.group_size,
                            holder_hash,
                            card_uid: t.card_uid.as_deref(),
                        },
                    )?;
                }
                Change::Revoke { ticket_id, reason } => feed::revoke(tx, *ticket_id, reason)?,
                Change::Block { ticket_id, reason } => feed::block(tx, *ticket_id, Some(reason))?,
                Change::Unblock { ticket_id } => feed::block(tx, *ticket_id, None)?,
                Change::Card {
                    ticket_id,
                    card_uid,
                } => feed::set_card(tx, *ticket_id, card_uid.as_deref())?,
                Change::Order(order) => {
                    crate::store::orders::upsert(tx, order, now_ms(), false, nonces)?;
                }
                Change::Passage(p) => {
                    crate::store::passages::record_shared(tx, p)?;
                }
                Change::Catalog { version } => {
                    applied.catalog = Some(applied.catalog.unwrap_or(0).max(*version));
                }
                Change::Unknown => {
                    applied.skipped += 1;
                    continue;
                }
            }
            applied.changes += 1;
        }
        if !page.more {
            index_built = feed::build_holder_index(tx)?;
        }
        Ok(put(tx, CURSOR, page.next_cursor.to_string().as_bytes())?)
    };
    store
        .in_transaction(run)
        .map_err(|e| StoreError::from_outbox(&path, e))?;
    announce_index(index_built);
    Ok(applied)
}

fn announce_index(built: bool) {
    if built {
        info!("caught up: the ID-card (holder) index is built");
    }
}

/// Caught up with nothing to apply: builds the holder index if a download
/// that ended between two pages left it deferred (a cheap check otherwise).
pub fn ensure_holder_index(store: &mut Store) -> Result<(), StoreError> {
    let path = store.path().to_owned();
    let built = store
        .in_transaction(|tx| feed::build_holder_index(tx))
        .map_err(|source| StoreError::Sqlite { path, source })?;
    announce_index(built);
    Ok(())
}

/// Starts the link; it waits for credentials if the device is not enrolled
/// yet and picks them up when `gatectl provision` writes them.
pub fn start(
    config: &Config,
    db: Db,
    lanes: Option<Engine>,
    fleet: watch::Receiver<crate::peers::FleetStatus>,
    occupancy: watch::Receiver<gated_api::types::OccupancyView>,
    updates: crate::update::Slot,
    health: crate::health::Slot,
) -> Result<Started, StoreError> {
    let state_dir = config.state_dir.get_ref().clone();
    let (nonces, status) = {
        let store = db.writer();
        let status = SyncStatus {
            cursor: setting_u64(&store, CURSOR)?,
            catalog_version: setting_u64(&store, CATALOG_VERSION)?,
            ..SyncStatus::default()
        };
        (store.nonces(config.device_id.get_ref())?, status)
    };
    let (tx, rx) = watch::channel(status);
    let (session_tx, session_rx) = watch::channel(None);
    let resync = Arc::new(tokio::sync::Notify::new());
    let upload_now = Arc::new(tokio::sync::Notify::new());
    let link = Link {
        resync: resync.clone(),
        upload_now: upload_now.clone(),
        session: session_tx,
        db,
        nonces,
        lanes,
        status: tx,
        state_dir,
        ca_file: config.central.ca_file.as_ref().map(|c| c.get_ref().clone()),
        device_id: config.device_id.get_ref().clone(),
        role: config.role.to_string(),
        timings: Timings::from_config(config),
        fleet,
        occupancy,
        updates,
        health,
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(Arc::new(link).run());
    Ok(Started {
        tasks,
        status: rx,
        session: session_rx,
        resync,
        upload_now,
    })
}

/// The running link: its tasks, its status, and the current session (for
/// the kiosk's calls to the central system).
#[derive(Debug)]
pub struct Started {
    pub tasks: JoinSet<()>,
    pub status: watch::Receiver<SyncStatus>,
    pub session: watch::Receiver<Option<Arc<Session>>>,
    /// Notified to drop the session and sync again at once (`SyncNow`):
    /// a new token, the catalog, the changes after the cursor.
    pub resync: Arc<tokio::sync::Notify>,
    /// Notified to upload the outbox now, without waiting for the next
    /// poll or the retry backoff (the power fallback, while the network lasts).
    pub upload_now: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct Link {
    resync: Arc<tokio::sync::Notify>,
    upload_now: Arc<tokio::sync::Notify>,
    session: watch::Sender<Option<Arc<Session>>>,
    db: Db,
    /// For the sale events of orders the changes bring.
    nonces: Nonces,
    lanes: Option<Engine>,
    status: watch::Sender<SyncStatus>,
    state_dir: PathBuf,
    ca_file: Option<PathBuf>,
    device_id: String,
    role: String,
    timings: Timings,
    /// The site network, reported in the heartbeat.
    fleet: watch::Receiver<crate::peers::FleetStatus>,
    /// The site's occupancy as counted here, reported in the heartbeat.
    occupancy: watch::Receiver<gated_api::types::OccupancyView>,
    /// The software and its updates: reported in the heartbeat, which
    /// brings the central system's update offers back.
    updates: crate::update::Slot,
    /// What works and what does not, reported in the heartbeat.
    health: crate::health::Slot,
}

impl Link {
    /// Waits for credentials, runs the session, and starts over when they change.
    async fn run(self: Arc<Self>) {
        let mut seen: Option<std::time::SystemTime> = None;
        let mut complained = String::new();
        loop {
            let modified = std::fs::metadata(self.state_dir.join(identity::CREDENTIALS_FILE))
                .and_then(|m| m.modified())
                .ok();
            if modified.is_some() && modified != seen {
                seen = modified;
                match self.session() {
                    Ok(session) => {
                        complained.clear();
                        let mut tasks = JoinSet::new();
                        let s = Arc::new(session);
                        self.session.send_replace(Some(s.clone()));
                        tasks.spawn(self.clone().pull(s.clone()));
                        tasks.spawn(self.clone().push(s.clone()));
                        tasks.spawn(self.clone().heartbeat(s));
                        // Until the credentials change (a new enrollment).
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                                _ = self.resync.notified() => {
                                    info!("sync requested: reconnecting to the central system");
                                    seen = None;
                                    break;
                                }
                            }
                            let now =
                                std::fs::metadata(self.state_dir.join(identity::CREDENTIALS_FILE))
                                    .and_then(|m| m.modified())
                                    .ok();
                            if now != seen {
                                info!("credentials changed: reconnecting to the central system");
                                break;
                            }
                        }
                        self.session.send_replace(None);
                        tasks.shutdown().await;
                        continue;
                    }
                    Err(why) => {
                        if why != complained {
                            warn!("not syncing: {why}");
                            complained = why.clone();
                        }
                        self.update(|s| {
                            s.mode = Mode::Unprovisioned;
                            s.last_error = Some(why);
                        });
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn session(&self) -> Result<Session, String> {
        let (creds, key) = identity::enrolled(&self.state_dir, &self.device_id, &self.role)?;
        let http = client::http_client(self.ca_file.as_deref()).map_err(|e| e.to_string())?;
        if let Some(lanes) = &self.lanes
            && let Err(e) = lanes.reload()
        {
            warn!("reloading keys after enrollment: {e}");
        }
        info!(central = creds.central_url, "central link starting");
        self.update(|s| {
            s.central_url = Some(creds.central_url.clone());
            if s.mode == Mode::Unprovisioned {
                s.mode = Mode::Offline;
                s.since_ms = now_ms();
            }
        });
        Ok(Session::new(
            http,
            &creds.central_url,
            &creds.device_id,
            key,
            Some(creds.access),
        ))
    }

    /// Changes the status (Device1 shows it; gatectl reads it there).
    fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        self.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn online(&self) {
        self.update(|s| {
            if s.mode != Mode::Online {
                info!("central system reachable: online");
                s.mode = Mode::Online;
                s.since_ms = now_ms();
            }
            s.last_sync_ms = Some(now_ms());
            s.last_error = None;
        });
    }

    fn offline(&self, e: &CentralError) {
        let why = e.to_string();
        self.update(|s| {
            if s.mode != Mode::Offline {
                warn!("central system unreachable, working offline: {why}");
                s.mode = Mode::Offline;
                s.since_ms = now_ms();
            }
            s.last_error = Some(why);
        });
    }

    async fn pull(self: Arc<Self>, session: Arc<Session>) {
        let cursor = self.status.borrow().cursor;
        info!(cursor, "fetching ticket changes after cursor {cursor}");
        let mut attempt = 0;
        let mut wait = Duration::ZERO;
        loop {
            match self.pull_once(&session, wait).await {
                Ok(more) => {
                    attempt = 0;
                    self.online();
                    wait = if more {
                        Duration::ZERO
                    } else {
                        self.timings.long_poll
                    };
                }
                Err(PullError::Central(e)) => {
                    self.offline(&e);
                    attempt += 1;
                    wait = Duration::ZERO;
                    tokio::time::sleep(jitter(self.timings.backoff.delay(attempt))).await;
                }
                Err(PullError::Store(e)) => {
                    tracing::error!("cannot apply changes: {e}");
                    attempt += 1;
                    tokio::time::sleep(jitter(self.timings.backoff.delay(attempt))).await;
                }
            }
        }
    }

    /// The changes after the cursor, page by page until caught up; Ok(true)
    /// when more pages follow (never: it goes on until the last). While a
    /// page is applied on a blocking thread, the next one is fetched.
    async fn pull_once(&self, session: &Session, wait: Duration) -> Result<bool, PullError> {
        let (cursor, catalog_version) = {
            let s = self.status.borrow();
            (s.cursor, s.catalog_version)
        };
        if catalog_version == 0 {
            self.refresh_catalog(session).await?;
        }
        let mut page = self.fetch(session, cursor, wait).await?;
        let mut cursor = cursor;
        loop {
            let (more, next) = (page.more, page.next_cursor);
            let nonces = self.nonces.clone();
            let unchanged = page.changes.is_empty() && next == cursor;
            let apply = async {
                if unchanged {
                    if !more {
                        self.db.write(ensure_holder_index).await?;
                    }
                    return Ok(Applied::default());
                }
                self.db
                    .write(move |s| apply_page(s, cursor, &page, &nonces))
                    .await
            };
            let (applied, following) = if more {
                let (a, f) = tokio::join!(apply, self.fetch(session, next, Duration::ZERO));
                (a?, Some(f))
            } else {
                (apply.await?, None)
            };
            if applied.changes > 0 {
                tracing::debug!(changes = applied.changes, cursor = next, "changes applied");
            }
            if applied.skipped > 0 {
                warn!(
                    skipped = applied.skipped,
                    cursor = next,
                    "{} changes of kinds this gated does not know were skipped (the central system is newer: update gated)",
                    applied.skipped
                );
            }
            cursor = next;
            self.update(|s| {
                s.cursor = next;
                s.skipped_changes += applied.skipped as u64;
            });
            self.online();
            let catalog_version = self.status.borrow().catalog_version;
            if applied.catalog.is_some_and(|v| v > catalog_version) {
                self.refresh_catalog(session).await?;
            }
            match following {
                Some(f) => page = f?,
                None => return Ok(false),
            }
        }
    }

    async fn fetch(
        &self,
        session: &Session,
        cursor: u64,
        wait: Duration,
    ) -> Result<ChangesPage, CentralError> {
        session
            .get(
                paths::CHANGES,
                &[
                    ("cursor", cursor.to_string()),
                    ("limit", PAGE_LIMIT.to_string()),
                    ("wait", wait.as_secs().to_string()),
                ],
                wait + CALL_TIMEOUT,
            )
            .await
    }

    async fn refresh_catalog(&self, session: &Session) -> Result<(), PullError> {
        let catalog: api::Catalog = session.get(paths::CATALOG, &[], CALL_TIMEOUT).await?;
        let version = catalog.version;
        let products = catalog.products.len();
        self.db.write(move |s| apply_catalog(s, &catalog)).await?;
        if let Some(lanes) = &self.lanes
            && let Err(e) = lanes.reload()
        {
            warn!("reloading the catalog into the lanes: {e}");
        }
        info!(version, products, "catalog updated");
        self.update(|s| s.catalog_version = version);
        Ok(())
    }

    async fn push(self: Arc<Self>, session: Arc<Session>) {
        let mut attempt = 0;
        // Seen before the outbox is read: a commit after the read wakes the pause.
        let mut head = self.lanes.as_ref().map(Engine::head);
        loop {
            if let Some(h) = head.as_mut() {
                h.borrow_and_update();
            }
            let batch = self
                .db
                .read(|s| {
                    let depth = s.outbox_depth()?;
                    let events = s
                        .outbox_batch(PUSH_BATCH as usize)?
                        .into_iter()
                        .map(|(nonce, kind, body, device_time_ms)| api::Event {
                            nonce,
                            kind,
                            body: serde_json::from_str(&body)
                                .unwrap_or(serde_json::Value::String(body)),
                            device_time_ms,
                        })
                        .collect::<Vec<_>>();
                    Ok::<_, StoreError>((depth, events))
                })
                .await;
            let (depth, events) = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("cannot read the outbox: {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            self.update(|s| s.outbox_depth = depth);
            if events.is_empty() {
                self.pause(Duration::from_millis(500), &mut head).await;
                continue;
            }
            let body = api::EventBatch {
                device_id: session.device_id().to_owned(),
                events,
            };
            match session.post::<_, api::EventAck>(paths::EVENTS, &body).await {
                Ok(ack) => {
                    attempt = 0;
                    self.online();
                    let done: Vec<String> =
                        ack.accepted.into_iter().chain(ack.duplicates).collect();
                    let n = done.len();
                    let removed = self
                        .db
                        .write(move |s| s.outbox_ack(done.iter().map(String::as_str)))
                        .await;
                    match removed {
                        Ok(()) => tracing::debug!(events = n, "events uploaded"),
                        Err(e) => tracing::error!("uploaded events stay in the outbox: {e}"),
                    }
                    if n == 0 {
                        // The server took none: do not spin on the same batch.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
                Err(e) => {
                    attempt += 1;
                    if e.is_transient() {
                        self.offline(&e);
                    } else {
                        warn!("events refused by the central system (kept): {e}");
                    }
                    // Commits do not cut a backoff short: a central system
                    // that is down is not asked again per passage.
                    self.pause(jitter(self.timings.backoff.delay(attempt)), &mut None)
                        .await;
                }
            }
        }
    }

    /// Waits `d`, or less when an upload is asked for or a passage is
    /// committed: a passage leaves at once, not on the next tick (while one
    /// batch is on its way, the next ones gather: small batches under load).
    async fn pause(&self, d: Duration, head: &mut Option<watch::Receiver<u64>>) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.upload_now.notified() => {}
            _ = crate::lane::next_commit(head) => {}
        }
    }

    async fn heartbeat(self: Arc<Self>, session: Arc<Session>) {
        let mut reported = false;
        let mut fleet = self.fleet.clone();
        loop {
            // The others learn where this device listens from the heartbeat:
            // a new address goes out at once, not a period later.
            let advertised = fleet.borrow_and_update().advertised.clone();
            let status = self.status.borrow().clone();
            let conflicts = self.db.read(|s| s.conflicts()).await.unwrap_or(0);
            let sent = now_ms();
            let beat = api::Heartbeat {
                device_id: session.device_id().to_owned(),
                role: self.role.clone(),
                mode: status.mode.to_string(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                outbox_depth: status.outbox_depth,
                cursor: status.cursor,
                device_time_ms: sent,
                peers: Some(fleet.borrow().report(conflicts)),
                occupancy: Some({
                    let o = self.occupancy.borrow();
                    api::OccupancyReport {
                        day_start: o.day_start.clone(),
                        entries: o.site.entries,
                        exits: o.site.exits,
                        inside: o.site.inside,
                        percent: o.site.percent,
                        tier: o.site.tier,
                        isolated: o.isolated,
                    }
                }),
                update: self.updates.get().map(crate::update::Updates::report),
                health: self.health.get().map(crate::health::Sources::summary),
            };
            match session
                .post::<_, api::HeartbeatAck>(paths::HEARTBEAT, &beat)
                .await
            {
                Ok(ack) => {
                    self.online();
                    if let (Some(offer), Some(u)) = (&ack.update, self.updates.get()) {
                        u.offer(offer);
                    }
                    let skew = ack.server_time_ms - (sent + now_ms()) / 2;
                    self.update(|s| s.clock_skew_ms = Some(skew));
                    let off = skew.unsigned_abs() > SKEW_REPORTED_MS as u64;
                    if off && !reported {
                        warn!(
                            skew_s = skew / 1000,
                            "the device clock is {} s off the central system's; tickets are still checked against the device clock: set the time (NTP)",
                            skew / 1000
                        );
                    } else if !off && reported {
                        info!("device clock agrees with the central system again");
                    }
                    reported = off;
                }
                Err(e) if e.is_transient() => self.offline(&e),
                Err(e) => warn!("heartbeat refused: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.timings.heartbeat) => {}
                Ok(_) = fleet.wait_for(|f| f.advertised != advertised) => {}
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error(transparent)]
    Central(#[from] CentralError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Between half and all of `d`: devices that lost the server together do
/// not come back in step.
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).expect("the kernel's random source");
    let f = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: u64) -> serde_json::Value {
        serde_json::json!({
            "kind": "ticket", "id": id, "product_id": 1, "group_size": 1,
            "valid_from": "2026-01-01T00:00", "valid_until": "2027-01-01T00:00",
        })
    }

    #[test]
    fn a_change_of_an_unknown_kind_is_skipped_and_the_rest_of_the_page_applies() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let nonces = store.nonces("lane-1").unwrap();
        let page: ChangesPage = serde_json::from_value(serde_json::json!({
            "changes": [
                ticket(1),
                { "kind": "capacity_forecast", "date": "2026-05-01", "visitors": 1200 },
                { "kind": "hologram" },
                ticket(2),
            ],
            "next_cursor": 4, "more": false, "server_time_ms": 0,
        }))
        .expect("a page with kinds this gated does not know still reads");
        let applied = apply_page(&mut store, 0, &page, &nonces).unwrap();
        assert_eq!((applied.changes, applied.skipped), (2, 2));
        let count: i64 = store
            .conn_ref()
            .query_row("SELECT COUNT(*) FROM tickets WHERE id IN (1, 2)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(count, 2);
        assert_eq!(setting_u64(&store, CURSOR).unwrap(), 4);
    }
}

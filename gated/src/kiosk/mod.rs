//! The kiosk role's services: sale with payment through the central system,
//! printing, pickup, query. The D-Bus layer (`dbus`) only translates.
//!
//! Nothing paid is lost: a paid order and its tickets are stored before the
//! first byte is printed; a ticket is marked printed (with an outbox event)
//! only after the printer confirmed the cut. A failed print leaves the rest
//! printable by order number; a kill anywhere loses nothing.

mod payment;
mod pickup;
mod printing;
mod query;
mod sale;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hal::printer::escpos::{Align, QrEcc, TicketBuilder};
use hal::printer::{Paper, PrinterError, SerialPrinter, Status, TicketPrinter};
use tokio::sync::watch;

use crate::central::api::{self, Order, OrderStatus, paths};
use crate::central::client::{CALL_TIMEOUT, CentralError, Session};
use crate::central::identity;
use crate::central::sync::{self, Mode, SyncStatus};
use crate::store::orders;
use crate::store::outbox::{self, Nonces, OutboxError, OutboxEvent};
use crate::store::{Db, Store};
use crate::tickets::admission;
use crate::tickets::token;

/// Why a kiosk call failed; each is a named D-Bus error a UI can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KioskError {
    #[error("{0}")]
    NotProvisioned(String),
    #[error("{0}")]
    Offline(String),
    #[error("{0}")]
    SoldOut(String),
    #[error("{0}")]
    PaymentDeclined(String),
    #[error("{0}")]
    NotPayable(String),
    #[error("{0}")]
    PrinterOutOfPaper(String),
    #[error("{0}")]
    PrinterNotReady(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyPrinted(String),
    /// Not now (e.g. the power fallback).
    #[error("{0}")]
    NotAvailable(String),
    #[error("{0}")]
    Failed(String),
}

use KioskError as E;

impl From<rusqlite::Error> for KioskError {
    fn from(e: rusqlite::Error) -> Self {
        E::Failed(format!("database: {e}"))
    }
}

impl From<OutboxError> for KioskError {
    fn from(e: OutboxError) -> Self {
        E::Failed(format!("database: {e}"))
    }
}

fn central_error(e: CentralError) -> KioskError {
    match e {
        CentralError::Status { status, body } => match (status, body.error.as_str()) {
            (_, "sold_out") => E::SoldOut(body.message),
            (_, "payment_declined") => E::PaymentDeclined(body.message),
            (_, "not_payable" | "not_cancellable") => E::NotPayable(body.message),
            (404, _) => E::NotFound(body.message),
            (400 | 422, _) => E::InvalidArgument(body.message),
            (s, _) if s >= 500 => E::Offline(format!("central system failed: {}", body.message)),
            _ => E::Failed(body.message),
        },
        e if e.is_transient() => E::Offline(e.to_string()),
        e => E::Failed(e.to_string()),
    }
}

fn printer_error(e: PrinterError) -> KioskError {
    match &e {
        PrinterError::NotReady { status, problem } | PrinterError::Failed { status, problem } => {
            if status.paper == Paper::Out {
                E::PrinterOutOfPaper(format!("printer out of paper ({problem})"))
            } else {
                E::PrinterNotReady(e.to_string())
            }
        }
        _ => E::PrinterNotReady(e.to_string()),
    }
}

/// An ID card read at the kiosk: only its keyed hash and masked fields are
/// kept, under a random handle the UI passes back.
#[derive(Debug, Clone)]
struct IdHandle {
    hash: [u8; 16],
    expires: Instant,
}

/// How long a read ID card may be used for an order or a pickup.
const HANDLE_TTL: Duration = Duration::from_secs(600);

pub use gated_api::types::{CatalogView, PickupView, ProductView, QueryView, SlotView};

/// What one order may hold (gated.toml `[kiosk]`); `CreateOrder` enforces
/// them and the app reads them to build its screens.
#[derive(Debug, Clone, Copy)]
pub struct SaleLimits {
    /// Tickets of one item.
    pub max_quantity: u16,
    /// Days ahead a ticket is sold for, today included.
    pub sale_horizon_days: u16,
}

impl SaleLimits {
    pub fn from_config(k: &crate::config::KioskSettings) -> Self {
        SaleLimits {
            max_quantity: *k.max_quantity.get_ref(),
            sale_horizon_days: *k.sale_horizon_days.get_ref(),
        }
    }
}

/// The kiosk's services, shared by the D-Bus interfaces.
#[derive(Debug)]
pub struct Kiosk {
    limits: SaleLimits,
    db: Db,
    nonces: Nonces,
    session: watch::Receiver<Option<Arc<Session>>>,
    status: watch::Receiver<SyncStatus>,
    printer: tokio::sync::Mutex<Option<SerialPrinter>>,
    /// The printer's last known state (None: not asked yet).
    printer_status: watch::Sender<Option<Result<Status, String>>>,
    handles: Mutex<HashMap<String, IdHandle>>,
    tz: jiff::tz::TimeZone,
    day: crate::tickets::rules::OperatingDay,
    /// The site's occupancy: no sale for today once it stops sales.
    occupancy: watch::Receiver<gated_api::types::OccupancyView>,
    /// The device's operating mode: no sale on UPS power or in a fire alarm.
    modes: watch::Receiver<crate::modes::ModeView>,
    /// Per-ticket print progress, for the UI's progress display.
    progress: tokio::sync::broadcast::Sender<PrintProgress>,
    /// Marks a print under way (an update's reboot waits for it).
    activity: crate::update::Activity,
}

/// How far the printing of an order has come: `printed` of `total` tickets
/// done (sent with 0 before the first one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintProgress {
    pub order_no: String,
    pub printed: u32,
    pub total: u32,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Kiosk {
    #[allow(clippy::too_many_arguments)] // the parts the daemon wires together
    pub fn new(
        db: Db,
        nonces: Nonces,
        session: watch::Receiver<Option<Arc<Session>>>,
        status: watch::Receiver<SyncStatus>,
        printer: Option<SerialPrinter>,
        tz: jiff::tz::TimeZone,
        day: crate::tickets::rules::OperatingDay,
        occupancy: watch::Receiver<gated_api::types::OccupancyView>,
        modes: watch::Receiver<crate::modes::ModeView>,
        limits: SaleLimits,
    ) -> Self {
        Kiosk {
            limits,
            db,
            nonces,
            session,
            status,
            printer: tokio::sync::Mutex::new(printer),
            printer_status: watch::Sender::new(None),
            handles: Mutex::new(HashMap::new()),
            tz,
            day,
            occupancy,
            modes,
            progress: tokio::sync::broadcast::Sender::new(16),
            activity: Default::default(),
        }
    }

    /// The order, its tickets and (when paid and sold here) its sale event,
    /// in one transaction: a kill never leaves half of it.
    async fn save_order(&self, order: &Order, sold_here: bool) -> Result<(), KioskError> {
        let order = order.clone();
        self.write(move |store, nonces| {
            Ok(store
                .in_transaction(|tx| orders::upsert(tx, &order, now_ms(), sold_here, nonces))?)
        })
        .await
    }

    /// Runs a write with the device's writer, on tokio's blocking pool: its
    /// fsync never holds a runtime worker that serves D-Bus and the printer.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store, &Nonces) -> Result<T, KioskError> + Send + 'static,
    ) -> Result<T, KioskError> {
        let nonces = self.nonces.clone();
        self.db.write(move |s| f(s, &nonces)).await
    }

    /// Follows print progress (for signals).
    pub fn watch_progress(&self) -> tokio::sync::broadcast::Receiver<PrintProgress> {
        self.progress.subscribe()
    }

    /// Runs a lookup (orders, tickets, the catalog) with the device's
    /// reader, on tokio's blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, KioskError> + Send + 'static,
    ) -> Result<T, KioskError> {
        self.db.read(f).await
    }

    /// Shares `activity` with the updates (set before the kiosk is shared).
    pub fn with_activity(mut self, activity: crate::update::Activity) -> Self {
        self.activity = activity;
        self
    }

    /// Follows the printer's state (for signals).
    pub fn watch_printer(&self) -> watch::Receiver<Option<Result<Status, String>>> {
        self.printer_status.subscribe()
    }

    /// Asks the printer for its status now.
    pub async fn refresh_printer(&self) -> Option<Result<Status, String>> {
        let mut p = self.printer.lock().await;
        let printer = p.as_mut()?;
        let s = printer.status().await.map_err(|e| e.to_string());
        self.printer_status.send_if_modified(|old| {
            let changed = old.as_ref() != Some(&s);
            *old = Some(s.clone());
            changed
        });
        Some(s)
    }

    fn session(&self) -> Result<Arc<Session>, KioskError> {
        let status = self.status.borrow().clone();
        match (self.session.borrow().clone(), status.mode) {
            (None, _) | (_, Mode::Unprovisioned) => Err(E::NotProvisioned(
                "this kiosk is not enrolled with the central system (gatectl provision)".into(),
            )),
            (Some(_), Mode::Offline) => Err(E::Offline(format!(
                "the central system is unreachable{}",
                status
                    .last_error
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))),
            (Some(s), Mode::Online) => Ok(s),
        }
    }

    /// What the home screen tells visitors about the park's occupancy
    /// (zh, en; empty below the first tier).
    pub fn visitor_notice(&self) -> (String, String) {
        let o = self.occupancy.borrow();
        (o.notice_zh.clone(), o.notice_en.clone())
    }

    /// Why the kiosk cannot sell right now (empty: it can).
    pub fn sale_blockers(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        let status = self.status.borrow().clone();
        match status.mode {
            Mode::Unprovisioned => reasons.push("not_provisioned".to_owned()),
            Mode::Offline => reasons.push("offline".to_owned()),
            Mode::Online => {}
        }
        // Online is not enough: the products and prices must be here too.
        if status.mode != Mode::Unprovisioned && status.catalog_version == 0 {
            reasons.push("no_catalog".to_owned());
        }
        match &*self.printer_status.borrow() {
            Some(Ok(s)) if s.paper == Paper::Out => reasons.push("printer_out_of_paper".into()),
            Some(Ok(s)) if !s.ready() => reasons.push("printer_not_ready".into()),
            Some(Err(_)) => reasons.push("printer_not_ready".into()),
            _ => {}
        }
        // On battery the kiosk does not start a sale it may not finish; a
        // print already under way completes and is recorded.
        match self.modes.borrow().mode {
            crate::modes::Mode::PowerFallback | crate::modes::Mode::Shutdown => {
                reasons.push("power_fallback".into())
            }
            crate::modes::Mode::FireAlarm => reasons.push("fire_alarm".into()),
            _ => {}
        }
        reasons
    }

    /// Remembers a read ID card; returns its handle for the UI.
    pub async fn remember_id(&self, id_number: &str) -> Option<String> {
        let key = self
            .read(|s| {
                s.setting("id_hash_key")
                    .map_err(|e| E::Failed(e.to_string()))
            })
            .await
            .ok()
            .flatten()?;
        let hash = token::holder_hash(&key, id_number).ok()?;
        let handle = identity::random_hex(12);
        let mut h = self.handles.lock().expect("handles");
        h.retain(|_, v| v.expires > Instant::now());
        h.insert(
            handle.clone(),
            IdHandle {
                hash,
                expires: Instant::now() + HANDLE_TTL,
            },
        );
        Some(handle)
    }

    fn holder(&self, handle: &str) -> Result<[u8; 16], KioskError> {
        let h = self.handles.lock().expect("handles");
        match h.get(handle) {
            Some(v) if v.expires > Instant::now() => Ok(v.hash),
            _ => Err(E::InvalidArgument(format!(
                "ID card handle {handle:?} is unknown or expired: read the card again"
            ))),
        }
    }

    async fn catalog_stored(&self) -> Result<api::Catalog, KioskError> {
        self.read(|s| sync::stored_catalog(s).map_err(E::Failed))
            .await?
            .ok_or_else(|| E::NotProvisioned("no catalog received yet".into()))
    }

    fn parse_date(date: &str) -> Result<jiff::civil::Date, KioskError> {
        date.parse()
            .map_err(|_| E::InvalidArgument(format!("date {date:?} is not YYYY-MM-DD")))
    }

    /// Today in the scenic area.
    pub fn today(&self) -> String {
        self.today_date().to_string()
    }

    fn today_date(&self) -> jiff::civil::Date {
        jiff::Timestamp::now().to_zoned(self.tz.clone()).date()
    }

    pub fn limits(&self) -> SaleLimits {
        self.limits
    }
}

//! The kiosk role's services: sale with payment through the central system,
//! printing, pickup, query. The D-Bus layer (`dbus`) only translates.
//!
//! Nothing paid is lost: a paid order and its tickets are stored before the
//! first byte is printed; a ticket is marked printed (with an outbox event)
//! only after the printer confirmed the cut. A failed print leaves the rest
//! printable by order number; a kill anywhere loses nothing.

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
use crate::store::Store;
use crate::store::orders;
use crate::store::outbox::{self, Nonces, OutboxError, OutboxEvent};
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

pub use gated_api::docs::{CatalogView, PickupView, ProductView, QueryView, SlotView};

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
    store: Arc<Mutex<Store>>,
    nonces: Nonces,
    session: watch::Receiver<Option<Arc<Session>>>,
    status: watch::Receiver<SyncStatus>,
    printer: tokio::sync::Mutex<Option<SerialPrinter>>,
    /// The printer's last known state (None: not asked yet).
    printer_status: watch::Sender<Option<Result<Status, String>>>,
    handles: Mutex<HashMap<String, IdHandle>>,
    tz: jiff::tz::TimeZone,
    /// The device's operating mode: no sale on UPS power or in a fire alarm.
    modes: watch::Receiver<crate::modes::ModeView>,
    /// Per-ticket print progress, for the UI's progress display.
    progress: tokio::sync::broadcast::Sender<PrintProgress>,
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
        store: Store,
        nonces: Nonces,
        session: watch::Receiver<Option<Arc<Session>>>,
        status: watch::Receiver<SyncStatus>,
        printer: Option<SerialPrinter>,
        tz: jiff::tz::TimeZone,
        modes: watch::Receiver<crate::modes::ModeView>,
        limits: SaleLimits,
    ) -> Self {
        Kiosk {
            limits,
            store: Arc::new(Mutex::new(store)),
            nonces,
            session,
            status,
            printer: tokio::sync::Mutex::new(printer),
            printer_status: watch::Sender::new(None),
            handles: Mutex::new(HashMap::new()),
            tz,
            modes,
            progress: tokio::sync::broadcast::Sender::new(16),
        }
    }

    /// The order, its tickets and (when paid and sold here) its sale event,
    /// in one transaction: a kill never leaves half of it.
    fn save_order(&self, order: &Order, sold_here: bool) -> Result<(), KioskError> {
        self.store()
            .in_transaction(|tx| orders::upsert(tx, order, now_ms(), sold_here, &self.nonces))?;
        Ok(())
    }

    /// Follows print progress (for signals).
    pub fn watch_progress(&self) -> tokio::sync::broadcast::Receiver<PrintProgress> {
        self.progress.subscribe()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store")
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
    pub fn remember_id(&self, id_number: &str) -> Option<String> {
        let key = self.store().setting("id_hash_key").ok().flatten()?;
        let hash = token::holder_hash(&key, id_number);
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

    fn catalog_stored(&self) -> Result<api::Catalog, KioskError> {
        let raw = self
            .store()
            .setting(sync::CATALOG)
            .map_err(|e| E::Failed(e.to_string()))?
            .ok_or_else(|| E::NotProvisioned("no catalog received yet".into()))?;
        serde_json::from_slice(&raw).map_err(|e| E::Failed(format!("stored catalog: {e}")))
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

    /// A date tickets are sold for: from today to the horizon's last day.
    fn check_sale_date(&self, date: jiff::civil::Date) -> Result<(), KioskError> {
        let today = self.today_date();
        let days = i64::from(self.limits.sale_horizon_days);
        let last = today
            .checked_add(jiff::Span::new().days(days - 1))
            .unwrap_or(jiff::civil::Date::MAX);
        if date < today {
            return Err(E::InvalidArgument(format!(
                "{date} is in the past (today is {today} in the scenic area)"
            )));
        }
        if date > last {
            return Err(E::InvalidArgument(format!(
                "tickets are sold at most {days} days ahead: {date} is after {last}"
            )));
        }
        Ok(())
    }

    /// Products, prices and remaining quota per slot for a date ("" = today).
    pub async fn catalog(&self, date: &str) -> Result<CatalogView, KioskError> {
        let date = if date.is_empty() {
            self.today()
        } else {
            Self::parse_date(date)?.to_string()
        };
        let catalog = self.catalog_stored()?;
        let availability: Option<api::Availability> = match self.session() {
            Ok(s) => Some(
                s.get(paths::AVAILABILITY, &[("date", date.clone())], CALL_TIMEOUT)
                    .await
                    .map_err(central_error)?,
            ),
            Err(_) => None,
        };
        let reasons = self.sale_blockers();
        Ok(CatalogView {
            scenic_area: catalog.scenic_area,
            date,
            sale_available: reasons.is_empty(),
            reasons,
            products: catalog
                .products
                .iter()
                .map(|p| ProductView {
                    id: p.id,
                    name: p.name.clone(),
                    name_en: p.name_en.clone(),
                    price_cents: p.price_cents,
                    real_name: p.real_name,
                    id_cards_per_ticket: u32::from(p.real_name),
                    slots: p
                        .slots
                        .iter()
                        .map(|s| SlotView {
                            start_minute: s.start_minute,
                            end_minute: s.end_minute,
                            remaining: availability.as_ref().and_then(|a| {
                                a.slots
                                    .iter()
                                    .find(|q| {
                                        q.product_id == p.id && q.start_minute == s.start_minute
                                    })
                                    .map(|q| q.remaining)
                            }),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// Creates an order: `items` are (product, slot start minute, quantity);
    /// real-name items take one ID handle per ticket, in order.
    pub async fn create_order(
        &self,
        date: &str,
        items: &[(u32, u16, u16)],
        id_handles: &[String],
        phone: &str,
        group: bool,
    ) -> Result<Order, KioskError> {
        let date = Self::parse_date(date)?;
        self.check_sale_date(date)?;
        let date = date.to_string();
        if items.is_empty() {
            return Err(E::InvalidArgument(
                "an order needs at least one item".into(),
            ));
        }
        if !phone.is_empty() && (phone.len() < 4 || !phone.bytes().all(|b| b.is_ascii_digit())) {
            return Err(E::InvalidArgument("a phone number is digits only".into()));
        }
        let catalog = self.catalog_stored()?;
        let mut handles = id_handles.iter();
        let mut out = Vec::new();
        for &(product_id, start_minute, quantity) in items {
            let p = catalog
                .products
                .iter()
                .find(|p| p.id == product_id)
                .ok_or_else(|| E::InvalidArgument(format!("no product {product_id}")))?;
            let max = self.limits.max_quantity;
            if quantity == 0 || quantity > max {
                return Err(E::InvalidArgument(format!("quantity must be 1 to {max}")));
            }
            if group && p.real_name {
                return Err(E::InvalidArgument(format!(
                    "{} / {} is sold per person (real name): no group ticket",
                    p.name, p.name_en
                )));
            }
            let mut holders = Vec::new();
            if p.real_name {
                for _ in 0..quantity {
                    let h = handles.next().ok_or_else(|| {
                        E::InvalidArgument(format!(
                            "{} / {} needs one ID card per ticket",
                            p.name, p.name_en
                        ))
                    })?;
                    holders.push(hex::encode(self.holder(h)?));
                }
            }
            out.push(api::OrderItem {
                product_id,
                start_minute,
                quantity,
                holders,
                group,
            });
        }
        if let Some(reason) = self.sale_blockers().first() {
            return Err(match reason.as_str() {
                "printer_out_of_paper" => {
                    E::PrinterOutOfPaper("printer out of paper: no sale".into())
                }
                "printer_not_ready" => E::PrinterNotReady("printer not ready: no sale".into()),
                "offline" => E::Offline("the central system is unreachable: no sale".into()),
                "no_catalog" => {
                    E::NotProvisioned("no catalog received from the central system yet".into())
                }
                "power_fallback" => {
                    E::NotAvailable("mains power is lost: no sale until it is back".into())
                }
                "fire_alarm" => E::NotAvailable("fire alarm: no sale until it ends".into()),
                _ => E::NotProvisioned("this kiosk is not enrolled".into()),
            });
        }
        let session = self.session()?;
        let request = api::CreateOrder {
            client_ref: identity::random_hex(12),
            date,
            items: out,
            phone: (!phone.is_empty()).then(|| phone.to_owned()),
        };
        let order: Order = session
            .post(paths::ORDERS, &request)
            .await
            .map_err(central_error)?;
        self.save_order(&order, true)?;
        Ok(order)
    }

    /// Starts payment: `qr` returns what to show, `code` pays with the
    /// visitor's scanned payment code at once.
    pub async fn pay(
        &self,
        order_no: &str,
        method: &str,
        code: &str,
    ) -> Result<api::Payment, KioskError> {
        let req = match method {
            "qr" => api::PayRequest::Qr,
            "code" => api::PayRequest::Code {
                code: code.trim().to_owned(),
            },
            m => {
                return Err(E::InvalidArgument(format!(
                    "payment method {m:?}: qr or code"
                )));
            }
        };
        let session = self.session()?;
        let payment: api::Payment = session
            .post(&format!("{}/{order_no}/pay", paths::ORDERS), &req)
            .await
            .map_err(central_error)?;
        if payment.status == OrderStatus::Paid {
            self.refresh_order(&session, order_no).await?;
        }
        Ok(payment)
    }

    /// Asks central for the order and stores it; a newly paid one gets its sale event.
    async fn refresh_order(&self, session: &Session, order_no: &str) -> Result<Order, KioskError> {
        let order: Order = session
            .get(&format!("{}/{order_no}", paths::ORDERS), &[], CALL_TIMEOUT)
            .await
            .map_err(central_error)?;
        self.save_order(&order, false)?;
        Ok(order)
    }

    /// The order's status now (asks central when online, else what is stored).
    pub async fn order_status(&self, order_no: &str) -> Result<OrderStatus, KioskError> {
        match self.session() {
            Ok(s) => Ok(self.refresh_order(&s, order_no).await?.status),
            Err(e) => orders::get(self.store().conn_ref(), order_no)?
                .map(|o| o.status)
                .ok_or(e),
        }
    }

    pub async fn cancel(&self, order_no: &str) -> Result<(), KioskError> {
        let session = self.session()?;
        let order: Order = session
            .post(
                &format!("{}/{order_no}/cancel", paths::ORDERS),
                &serde_json::json!({}),
            )
            .await
            .map_err(central_error)?;
        self.save_order(&order, false)?;
        Ok(())
    }

    fn ticket_bytes(
        &self,
        scenic_area: &str,
        order: &Order,
        t: &api::IssuedTicket,
        product: Option<&api::Product>,
    ) -> Result<Vec<u8>, KioskError> {
        let (name, name_en) = product.map_or(("门票", "Ticket"), |p| {
            (p.name.as_str(), p.name_en.as_str())
        });
        // Fullwidth yuan sign: GBK has no U+00A5.
        let yuan = format!("￥{}.{:02}", t.price_cents / 100, t.price_cents % 100);
        let (from, until) = (
            t.valid_from.get(11..).unwrap_or(""),
            t.valid_until.get(11..).unwrap_or(""),
        );
        let time = if from == "00:00" && until == "00:00" {
            "全天 All day".to_owned()
        } else {
            format!("{from}–{until}")
        };
        let b = TicketBuilder::new()
            .align(Align::Center)
            .bold(true)
            .size(2, 2)
            .line(scenic_area)
            .size(1, 1)
            .line(&format!("{name} {name_en}"))
            .bold(false)
            .line(&format!(
                "日期 Date  {}",
                t.valid_from.get(..10).unwrap_or(&t.valid_from)
            ))
            .line(&format!("时段 Time  {time}"))
            .line(&format!("票价 Price {yuan}"));
        let b = if t.group_size > 1 {
            b.bold(true)
                .line(&format!("团体票 Group ticket: {} 人 persons", t.group_size))
                .bold(false)
        } else {
            b
        };
        let b = b
            .qr(&t.token, 6, QrEcc::M)
            .map_err(|e| E::Failed(format!("ticket {}: {e}", t.ticket_id)))?
            .line(&format!("订单 Order  {}", order.order_no))
            .line(&format!("票号 Serial {}", t.serial))
            .feed(3);
        Ok(b.cut())
    }

    /// Prints every ticket of a paid order not printed here yet; returns how
    /// many were printed. On a printer problem the rest stay printable.
    pub async fn print(&self, order_no: &str) -> Result<u32, KioskError> {
        let order = orders::get(self.store().conn_ref(), order_no)?
            .ok_or_else(|| E::NotFound(format!("no paid order {order_no} on this kiosk")))?;
        if order.status != OrderStatus::Paid {
            return Err(E::NotPayable(format!("order {order_no} is not paid")));
        }
        let held = orders::held_mid_print(self.store().conn_ref(), order_no)?;
        let todo: Vec<api::IssuedTicket> = orders::tickets(self.store().conn_ref(), order_no)?
            .into_iter()
            .filter(|(t, printed)| printed.is_none() && !held.contains(&t.ticket_id))
            .map(|(t, _)| t)
            .collect();
        if todo.is_empty() && !held.is_empty() {
            return Err(E::AlreadyPrinted(format!(
                "ticket(s) {held:?} of order {order_no} were being printed when gated stopped: \
                 staff check the printer's output and reprint what did not come out"
            )));
        }
        if todo.is_empty() {
            return Err(E::AlreadyPrinted(format!(
                "every ticket of order {order_no} was printed (a reprint needs an engineer)"
            )));
        }
        self.print_tickets(&order, &todo, None).await
    }

    async fn print_tickets(
        &self,
        order: &Order,
        todo: &[api::IssuedTicket],
        reprint: Option<(&str, &str)>,
    ) -> Result<u32, KioskError> {
        let catalog = self.catalog_stored().ok();
        let scenic = catalog
            .as_ref()
            .map_or("", |c| c.scenic_area.as_str())
            .to_owned();
        let mut guard = self.printer.lock().await;
        let printer = guard
            .as_mut()
            .ok_or_else(|| E::PrinterNotReady("this device has no ticket printer".into()))?;
        let mut printed = 0;
        let total = todo.len() as u32;
        let report = |printed| {
            let _ = self.progress.send(PrintProgress {
                order_no: order.order_no.clone(),
                printed,
                total,
            });
        };
        report(0);
        for t in todo {
            let product = catalog
                .as_ref()
                .and_then(|c| c.products.iter().find(|p| p.id == t.product_id));
            let bytes = self.ticket_bytes(&scenic, order, t, product)?;
            // Durable before the first byte goes out (see the schema, 3).
            orders::print_started(self.store().conn_ref(), t.ticket_id, now_ms())?;
            match printer.print(&bytes).await {
                Ok(status) => {
                    self.printer_status.send_replace(Some(Ok(status)));
                    let at = now_ms();
                    // A first print is one per ticket (keyed); each reprint is its own.
                    let (nonce, event) = match reprint {
                        None => (
                            self.nonces.keyed("print", t.ticket_id),
                            OutboxEvent::Print {
                                order_no: order.order_no.clone(),
                                ticket_id: t.ticket_id,
                                serial: t.serial.clone(),
                            },
                        ),
                        Some((reason, _)) => (
                            self.nonces.next("kiosk"),
                            OutboxEvent::Reprint {
                                order_no: order.order_no.clone(),
                                ticket_id: t.ticket_id,
                                serial: t.serial.clone(),
                                reason: reason.to_owned(),
                            },
                        ),
                    };
                    self.store().in_transaction(|tx| {
                        orders::printed(tx, t.ticket_id, at, reprint)?;
                        outbox::queue(tx, &nonce, &event, at).map(|_| ())
                    })?;
                    printed += 1;
                    report(printed);
                }
                Err(e) => {
                    // The printer said it printed nothing, or a spoiled
                    // ticket: printable again. Silence or a broken link
                    // leave it held (it may have come out).
                    if matches!(
                        e,
                        PrinterError::NotReady { .. }
                            | PrinterError::Failed { .. }
                            | PrinterError::Open(_)
                    ) {
                        orders::print_not_started(self.store().conn_ref(), t.ticket_id)?;
                    }
                    if let PrinterError::NotReady { status, .. }
                    | PrinterError::Failed { status, .. } = &e
                    {
                        self.printer_status.send_replace(Some(Ok(*status)));
                    } else {
                        self.printer_status.send_replace(Some(Err(e.to_string())));
                    }
                    tracing::warn!(
                        order = order.order_no,
                        ticket = t.ticket_id,
                        printed,
                        "print stopped: {e}; the rest stay printable"
                    );
                    return Err(printer_error(e));
                }
            }
        }
        Ok(printed)
    }

    /// Paid orders for pickup: by `order_code` (scanned QR), by `id` (an ID
    /// handle), or by `phone` (order number + last four digits).
    pub async fn pickup(
        &self,
        by: &str,
        value: &str,
        phone_suffix: &str,
    ) -> Result<Vec<PickupView>, KioskError> {
        let (query, local): (Vec<(&str, String)>, Vec<String>) = match by {
            "order_code" if !value.is_empty() => (
                vec![("order_code", value.to_owned())],
                orders::find_by_code(self.store().conn_ref(), value)?,
            ),
            "id" => {
                let hash = self.holder(value)?;
                (
                    vec![("id_hash", hex::encode(hash))],
                    orders::find_by_holder(self.store().conn_ref(), &hash)?,
                )
            }
            "phone"
                if phone_suffix.len() == 4 && phone_suffix.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (
                    vec![
                        ("order_no", value.to_owned()),
                        ("phone_suffix", phone_suffix.to_owned()),
                    ],
                    orders::find_by_phone(self.store().conn_ref(), value, phone_suffix)?,
                )
            }
            _ => {
                return Err(E::InvalidArgument(
                    "pickup by order_code, id (an ID handle), or phone (order number + 4 digits)"
                        .into(),
                ));
            }
        };
        let mut numbers = local;
        // Online: the central system may know orders this kiosk has not seen yet.
        if let Ok(session) = self.session() {
            match session
                .get::<api::Pickup>(paths::PICKUP, &query, CALL_TIMEOUT)
                .await
            {
                Ok(found) => {
                    self.store().in_transaction(|tx| {
                        found
                            .orders
                            .iter()
                            .try_for_each(|o| orders::upsert(tx, o, now_ms(), false, &self.nonces))
                    })?;
                    for o in &found.orders {
                        if !numbers.contains(&o.order_no) {
                            numbers.push(o.order_no.clone());
                        }
                    }
                }
                Err(e) if e.is_transient() => tracing::info!("pickup from the local copy: {e}"),
                Err(e) => return Err(central_error(e)),
            }
        }
        let store = self.store();
        let conn = store.conn_ref();
        let mut out = Vec::new();
        for no in numbers {
            if let Some(o) = orders::get(conn, &no)? {
                let tickets = orders::tickets(conn, &no)?;
                out.push(PickupView {
                    order_no: no,
                    date: o.date,
                    tickets: tickets.len(),
                    unprinted: tickets.iter().filter(|(_, p)| p.is_none()).count(),
                });
            }
        }
        Ok(out)
    }

    /// What a scanned ticket is: product, validity, entries used and left.
    pub async fn query(&self, code: &str) -> Result<QueryView, KioskError> {
        let keys = self
            .store()
            .pinned_keys()
            .map_err(|e| E::Failed(e.to_string()))?;
        let catalog = self.catalog_stored().ok();
        let now = crate::lanes::local_now(&self.tz);
        // The lanes' own check: a key retired or not valid yet refuses here too.
        let payload = admission::token_ticket(code.trim(), &keys, now)
            .map_err(|r| E::InvalidArgument(format!("not a valid ticket: {}", r.message().1)))?;
        // A token always carries its entries (0 = unlimited).
        let entries = payload.entries_allowed.unwrap_or(0);
        let product = catalog
            .as_ref()
            .and_then(|c| c.products.iter().find(|p| p.id == payload.product_id));
        let revoked = self
            .store()
            .revocation(payload.id)
            .map_err(|e| E::Failed(e.to_string()))?;
        let blocked = None::<String>;
        let remote: Option<api::TicketStatus> = match self.session() {
            Ok(s) => s
                .get(
                    &format!("{}/{}", paths::TICKETS, payload.id),
                    &[],
                    CALL_TIMEOUT,
                )
                .await
                .ok(),
            Err(_) => None,
        };
        let revoked = remote.as_ref().and_then(|r| r.revoked.clone()).or(revoked);
        let blocked = remote.as_ref().and_then(|r| r.blocked.clone()).or(blocked);
        let used = remote.as_ref().map(|r| r.entries_used);
        let left = used.map(|u| match entries {
            0 => u32::MAX,
            n => u32::from(n).saturating_sub(u),
        });
        let (state, zh, en) = if revoked.is_some() {
            ("revoked", "该票已退票或作废", "Refunded or cancelled")
        } else if blocked.is_some() {
            (
                "blocked",
                "该票已被冻结，请咨询工作人员",
                "Blocked: please ask staff",
            )
        } else if now >= payload.valid_until {
            ("expired", "该票已过期", "Expired")
        } else if now < payload.valid_from {
            ("not_yet_valid", "该票尚未生效", "Not valid yet")
        } else if left == Some(0) {
            ("used", "该票已使用", "Already used")
        } else {
            ("valid", "该票有效", "Valid")
        };
        Ok(QueryView {
            ticket_id: payload.id,
            product: product.map_or_else(|| format!("#{}", payload.product_id), |p| p.name.clone()),
            product_en: product.map_or_else(String::new, |p| p.name_en.clone()),
            valid_from: crate::central::format_civil(payload.valid_from),
            valid_until: crate::central::format_civil(payload.valid_until),
            entries_allowed: entries,
            entries_used: used,
            entries_left: left.filter(|l| *l != u32::MAX),
            state: state.into(),
            message_zh: zh.into(),
            message_en: en.into(),
        })
    }

    /// Prints a test slip (not a ticket: no QR token) for the engineer's self-test.
    pub async fn print_test_slip(&self) -> Result<String, KioskError> {
        let slip = TicketBuilder::new()
            .align(Align::Center)
            .bold(true)
            .line("打印测试 PRINTER TEST")
            .bold(false)
            .line("非门票 NOT A TICKET")
            .line(
                &jiff::Timestamp::now()
                    .to_zoned(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string(),
            )
            .feed(3)
            .cut();
        let mut guard = self.printer.lock().await;
        let printer = guard
            .as_mut()
            .ok_or_else(|| E::PrinterNotReady("this device has no ticket printer".into()))?;
        match printer.print(&slip).await {
            Ok(status) => {
                self.printer_status.send_replace(Some(Ok(status)));
                Ok(status.problem().unwrap_or("ready").to_owned())
            }
            Err(e) => Err(printer_error(e)),
        }
    }

    /// Prints a ticket again, with the reason recorded (engineers only).
    pub async fn reprint(&self, ticket_id: u64, reason: &str, by: &str) -> Result<(), KioskError> {
        if reason.trim().len() < 3 {
            return Err(E::InvalidArgument("a reprint needs a reason".into()));
        }
        let order_no =
            orders::order_of_ticket(self.store().conn_ref(), ticket_id)?.ok_or_else(|| {
                E::NotFound(format!(
                    "ticket {ticket_id} is not in an order on this kiosk"
                ))
            })?;
        let order = orders::get(self.store().conn_ref(), &order_no)?
            .ok_or_else(|| E::NotFound(format!("order {order_no}")))?;
        let t = orders::tickets(self.store().conn_ref(), &order_no)?
            .into_iter()
            .find(|(t, _)| t.ticket_id == ticket_id)
            .map(|(t, _)| t)
            .ok_or_else(|| E::NotFound(format!("ticket {ticket_id}")))?;
        self.print_tickets(&order, &[t], Some((reason.trim(), by)))
            .await?;
        Ok(())
    }
}

//! gated's D-Bus API: one well-known name, versioned interfaces. The
//! introspection XML of each is kept in `gated/dbus/` (a test compares), and
//! `image/etc/dbus-1/system.d/cn.scenicpark.Gated.conf` says who may call what.
//!
//! Complex answers (catalog, order, pickup, query) are JSON strings whose
//! fields are documented in `docs/dbus.md`; errors are named
//! (`cn.scenicpark.Gated.Error.SoldOut` …) with a message a UI can show.

use std::sync::Arc;

use tokio::sync::watch;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::central::enroll::Failure;
use crate::central::sync::SyncStatus;
use crate::kiosk::{Kiosk, KioskError};
use crate::service_pin::{PinError, ServicePin};
use gated_api::docs::LaneView;

pub use gated_api::{BUS_NAME, Error, INTERFACES, OBJECT_PATH};

impl From<PinError> for Error {
    fn from(e: PinError) -> Self {
        let m = e.to_string();
        match e {
            PinError::NotSet => Error::NotAvailable(m),
            PinError::Wrong(..) => Error::WrongPin(m),
            PinError::Locked(_) => Error::Locked(m),
            PinError::NoSession => Error::NotAuthorized(m),
        }
    }
}

impl From<KioskError> for Error {
    fn from(e: KioskError) -> Self {
        match e {
            KioskError::NotProvisioned(m) => Error::NotProvisioned(m),
            KioskError::Offline(m) => Error::Offline(m),
            KioskError::SoldOut(m) => Error::SoldOut(m),
            KioskError::PaymentDeclined(m) => Error::PaymentDeclined(m),
            KioskError::NotPayable(m) => Error::NotPayable(m),
            KioskError::PrinterOutOfPaper(m) => Error::PrinterOutOfPaper(m),
            KioskError::PrinterNotReady(m) => Error::PrinterNotReady(m),
            KioskError::InvalidArgument(m) => Error::InvalidArgument(m),
            KioskError::NotFound(m) => Error::NotFound(m),
            KioskError::AlreadyPrinted(m) => Error::AlreadyPrinted(m),
            KioskError::NotAvailable(m) => Error::NotAvailable(m),
            KioskError::Failed(m) => Error::Failed(m),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("answer serializes")
}

/// `Device1`: what any device is and how its link is.
#[derive(Debug)]
pub struct Device {
    pub role: String,
    pub device_id: String,
    pub status: watch::Receiver<SyncStatus>,
    pub kiosk: Option<Arc<Kiosk>>,
    pub lanes: Option<crate::lanes::LaneRegistry>,
    pub power: watch::Receiver<crate::power::PowerView>,
    pub reads: crate::reads::Reads,
    pub modes: crate::modes::Modes,
    pub reader: Reader,
}

/// A read-only connection to gated's database for what the bus asks
/// (counts, the timeline); its reads run off the async threads.
#[derive(Debug, Clone)]
pub struct Reader {
    store: Arc<std::sync::Mutex<crate::store::Store>>,
    tz: jiff::tz::TimeZone,
}

impl Reader {
    pub fn new(store: crate::store::Store, tz: jiff::tz::TimeZone) -> Self {
        Reader {
            store: Arc::new(std::sync::Mutex::new(store)),
            tz,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store, &jiff::tz::TimeZone) -> Result<T, crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<T, Error> {
        let (store, tz) = (self.store.clone(), self.tz.clone());
        tokio::task::spawn_blocking(move || f(&store.lock().expect("reader"), &tz))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
            .map_err(|e| Error::Failed(e.to_string()))
    }
}

#[zbus::interface(name = "cn.scenicpark.Gated.Device1")]
impl Device {
    /// `lane` or `kiosk`.
    #[zbus(property)]
    fn role(&self) -> String {
        self.role.clone()
    }

    #[zbus(property)]
    fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// `unprovisioned`, `online` or `offline`.
    #[zbus(property)]
    fn mode(&self) -> String {
        self.status.borrow().mode.to_string()
    }

    #[zbus(property)]
    fn central_url(&self) -> String {
        self.status.borrow().central_url.clone().unwrap_or_default()
    }

    /// When `Mode` last changed (Unix ms).
    #[zbus(property)]
    fn mode_since_ms(&self) -> i64 {
        self.status.borrow().since_ms
    }

    /// Why the link last failed ("" = it did not).
    #[zbus(property)]
    fn last_error(&self) -> String {
        self.status.borrow().last_error.clone().unwrap_or_default()
    }

    /// How far the change feed was applied.
    #[zbus(property)]
    fn cursor(&self) -> u64 {
        self.status.borrow().cursor
    }

    #[zbus(property)]
    fn catalog_version(&self) -> u64 {
        self.status.borrow().catalog_version
    }

    /// The scenic area's time zone: days, slots and validity are in it.
    #[zbus(property)]
    fn time_zone(&self) -> String {
        self.reader.tz.iana_name().unwrap_or("UTC").to_owned()
    }

    /// What the store holds now: tickets known, revoked, blocked, the
    /// persons who entered today (the scenic area's day), and the events
    /// waiting for upload (`OutboxDepth` is as of the last upload attempt).
    #[zbus(out_args("tickets", "revoked", "blocked", "entered_today", "outbox"))]
    async fn counts(&self) -> Result<(u64, u64, u64, u64, u64), Error> {
        let c = self
            .reader
            .read(|s, tz| {
                s.counts(crate::tickets::rules::local_day(crate::lanes::local_now(
                    tz,
                )))
            })
            .await?;
        Ok((c.tickets, c.revoked, c.blocked, c.entered, c.outbox))
    }

    /// Unix ms of the last successful exchange; 0 = never.
    #[zbus(property)]
    fn last_sync_ms(&self) -> i64 {
        self.status.borrow().last_sync_ms.unwrap_or(0)
    }

    #[zbus(property)]
    fn outbox_depth(&self) -> u64 {
        self.status.borrow().outbox_depth
    }

    /// Central clock minus device clock, ms (0 until known).
    #[zbus(property)]
    fn clock_skew_ms(&self) -> i64 {
        self.status.borrow().clock_skew_ms.unwrap_or(0)
    }

    /// Mains or battery: `on mains`, `ON BATTERY, 80 %, 900 s left`,
    /// `BATTERY LOW …`, `unknown (…)`, `no UPS configured`.
    #[zbus(property)]
    fn power(&self) -> String {
        self.power.borrow().describe()
    }

    /// True while the UPS reports mains lost.
    #[zbus(property)]
    fn on_battery(&self) -> bool {
        self.power.borrow().on_battery()
    }

    /// What the device is doing: `normal`, `offline`, `power_fallback`,
    /// `shutdown` or `fire_alarm`.
    #[zbus(property)]
    fn operating_mode(&self) -> String {
        self.modes.view.borrow().mode.as_str().to_owned()
    }

    /// Why, for people: "mains lost for 2000 ms (ON BATTERY, 80 %)".
    #[zbus(property)]
    fn operating_mode_cause(&self) -> String {
        self.modes.view.borrow().cause.clone()
    }

    /// Unix ms when the operating mode was entered.
    #[zbus(property)]
    fn operating_mode_since_ms(&self) -> i64 {
        self.modes.view.borrow().since_ms
    }

    /// The fire input cleared; the gates stay open until `gatectl alarm reset`.
    #[zbus(property)]
    fn fire_reset_pending(&self) -> bool {
        self.modes.view.borrow().fire_reset_pending
    }

    /// Lane groups in peak mode.
    #[zbus(property)]
    fn peak_groups(&self) -> Vec<String> {
        self.modes.view.borrow().peak_groups.clone()
    }

    /// Every change of the operating mode, with its cause.
    #[zbus(signal)]
    pub async fn transition(
        emitter: &SignalEmitter<'_>,
        from: &str,
        to: &str,
        cause: &str,
    ) -> zbus::Result<()>;

    /// Attached devices and their state: (family, state).
    #[zbus(property)]
    fn devices(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(k) = &self.kiosk {
            let state = match &*k.watch_printer().borrow() {
                None => "unknown".to_owned(),
                Some(Ok(s)) => s.problem().unwrap_or("ready").to_owned(),
                Some(Err(e)) => format!("failed: {e}"),
            };
            out.push(("printer".to_owned(), state));
        }
        let p = self.power.borrow();
        if let Some(src) = &p.source {
            out.push((format!("ups ({src})"), p.connection.clone()));
        }
        drop(p);
        out.extend(self.reads.states());
        for l in self.lanes.iter().flat_map(|r| r.iter()) {
            out.push((
                format!("gate of {}", l.name),
                l.gate.watch_state().borrow().to_string(),
            ));
        }
        out
    }
}

/// `Kiosk1`: sale, payment, printing, pickup and query, for the kiosk UI,
/// and its PIN-protected service menu.
#[derive(Debug)]
pub struct KioskIface {
    pub kiosk: Option<Arc<Kiosk>>,
    pub pin: ServicePin,
    pub resync: Arc<tokio::sync::Notify>,
}

impl KioskIface {
    fn k(&self) -> Result<&Kiosk, Error> {
        self.kiosk
            .as_deref()
            .ok_or_else(|| Error::NotAvailable("this device is not a kiosk".into()))
    }

    /// The caller's service session is open, or `NotAuthorized`.
    async fn serviced(
        &self,
        header: &Header<'_>,
        conn: &zbus::Connection,
        token: &str,
    ) -> Result<(), Error> {
        let uid = caller_uid(header, conn).await;
        self.pin
            .check(token, uid, std::time::Instant::now())
            .map_err(|e| {
                tracing::warn!(uid, "service method refused: {e}");
                Error::from(e)
            })
    }
}

#[zbus::interface(name = "cn.scenicpark.Gated.Kiosk1")]
impl KioskIface {
    /// Products, prices, remaining quota per slot for `date` (YYYY-MM-DD, "" = today). JSON.
    async fn catalog(&self, date: &str) -> Result<String, Error> {
        Ok(json(&self.k()?.catalog(date).await?))
    }

    /// Creates an order; `items` are (product id, slot start minute, quantity);
    /// real-name products take one ID handle (from `IdCardRead`) per ticket. JSON order.
    async fn create_order(
        &self,
        date: &str,
        items: Vec<(u32, u16, u16)>,
        id_handles: Vec<String>,
        phone: &str,
    ) -> Result<String, Error> {
        Ok(json(
            &self
                .k()?
                .create_order(date, &items, &id_handles, phone, false)
                .await?
                .view(),
        ))
    }

    /// Creates an order for one tour-group ticket admitting `persons`
    /// (not for real-name products). JSON order.
    async fn create_group_order(
        &self,
        date: &str,
        product_id: u32,
        start_minute: u16,
        persons: u16,
        phone: &str,
    ) -> Result<String, Error> {
        if persons < 2 {
            return Err(Error::InvalidArgument(
                "a group ticket is for 2 or more persons".into(),
            ));
        }
        Ok(json(
            &self
                .k()?
                .create_order(
                    date,
                    &[(product_id, start_minute, persons)],
                    &[],
                    phone,
                    true,
                )
                .await?
                .view(),
        ))
    }

    /// `method` `qr`: returns the QR text to show and its expiry; `code`: pays
    /// with the scanned payment code. Returns (status, qr, expires_at_ms).
    #[zbus(out_args("status", "qr", "expires_at_ms"))]
    async fn pay(
        &self,
        order_no: &str,
        method: &str,
        code: &str,
    ) -> Result<(String, String, i64), Error> {
        let p = self.k()?.pay(order_no, method, code).await?;
        Ok((
            p.status.as_str().to_owned(),
            p.qr.unwrap_or_default(),
            p.expires_at_ms,
        ))
    }

    /// `unpaid`, `paid`, `expired`, `cancelled` or `refunded`.
    async fn order_status(&self, order_no: &str) -> Result<String, Error> {
        Ok(self.k()?.order_status(order_no).await?.as_str().to_owned())
    }

    async fn cancel(&self, order_no: &str) -> Result<(), Error> {
        Ok(self.k()?.cancel(order_no).await?)
    }

    /// Prints the paid order's tickets not printed yet; returns how many.
    async fn print(&self, order_no: &str) -> Result<u32, Error> {
        Ok(self.k()?.print(order_no).await?)
    }

    /// Paid orders for pickup: `by` is `order_code`, `id` (value: an ID
    /// handle) or `phone` (value: order number). JSON list.
    async fn pickup(&self, by: &str, value: &str, phone_suffix: &str) -> Result<String, Error> {
        Ok(json(&self.k()?.pickup(by, value, phone_suffix).await?))
    }

    /// What a scanned ticket is: product, validity, entries used and left. JSON.
    async fn query(&self, code: &str) -> Result<String, Error> {
        Ok(json(&self.k()?.query(code).await?))
    }

    /// Opens the service menu: the PIN is checked here (`[kiosk]
    /// service_pin_hash`), wrong ones are counted and, after five, refused
    /// for a minute. Returns a session token the `Service*` methods take,
    /// valid for the caller only and until 5 minutes without use.
    async fn open_service_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        pin: &str,
    ) -> Result<String, Error> {
        let uid = caller_uid(&header, conn).await;
        match self.pin.open(pin, uid, std::time::Instant::now()) {
            Ok(token) => {
                tracing::info!(uid, "service menu opened");
                Ok(token)
            }
            Err(e) => {
                tracing::warn!(uid, "service menu: {e}");
                Err(e.into())
            }
        }
    }

    async fn close_service_session(&self, token: &str) {
        self.pin.close(token);
    }

    /// The service menu's test print. Returns (passed, report).
    #[zbus(out_args("passed", "report"))]
    async fn service_test_print(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        token: &str,
    ) -> Result<(bool, String), Error> {
        self.serviced(&header, conn, token).await?;
        Ok(printer_self_test(self.k()?).await)
    }

    /// The service menu's "sync now" (`Engineer1.SyncNow`).
    async fn service_sync_now(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        token: &str,
    ) -> Result<(), Error> {
        self.serviced(&header, conn, token).await?;
        tracing::info!("sync requested from the kiosk's service menu");
        self.resync.notify_one();
        Ok(())
    }

    /// Tickets of one product in one order, at most.
    #[zbus(property)]
    fn max_quantity(&self) -> u32 {
        self.kiosk
            .as_ref()
            .map_or(0, |k| u32::from(k.limits().max_quantity))
    }

    /// Days ahead tickets are sold, today included.
    #[zbus(property)]
    fn sale_horizon_days(&self) -> u32 {
        self.kiosk
            .as_ref()
            .map_or(0, |k| u32::from(k.limits().sale_horizon_days))
    }

    /// Whether a sale can start now.
    #[zbus(property)]
    fn sale_available(&self) -> bool {
        self.kiosk
            .as_ref()
            .is_some_and(|k| k.sale_blockers().is_empty())
    }

    /// Why not: `not_provisioned`, `offline`, `printer_out_of_paper`, `printer_not_ready`.
    #[zbus(property)]
    fn out_of_service_reasons(&self) -> Vec<String> {
        match &self.kiosk {
            Some(k) => k.sale_blockers(),
            None => vec!["not_a_kiosk".into()],
        }
    }

    /// A code was scanned at the kiosk (ticket, order QR or payment code).
    #[zbus(signal)]
    pub async fn code_scanned(emitter: &SignalEmitter<'_>, code: &str) -> zbus::Result<()>;

    /// An ID card was read: a handle to pass back, and masked fields to show.
    #[zbus(signal)]
    pub async fn id_card_read(
        emitter: &SignalEmitter<'_>,
        handle: &str,
        name_masked: &str,
        number_masked: &str,
    ) -> zbus::Result<()>;

    /// Printing an order: `printed` of `total` tickets are out (0 before the first).
    #[zbus(signal)]
    pub async fn ticket_printed(
        emitter: &SignalEmitter<'_>,
        order_no: &str,
        printed: u32,
        total: u32,
    ) -> zbus::Result<()>;

    /// The printer's state changed (`ready`, `out of paper`, …).
    #[zbus(signal)]
    pub async fn printer_status(emitter: &SignalEmitter<'_>, state: &str) -> zbus::Result<()>;
}

/// `Lane1`: every lane's state, counters and last decisions; changing a
/// lane's mode and opening it once are for engineers (bus policy).
#[derive(Debug)]
pub struct LaneIface {
    pub lanes: Option<(crate::lane::Lanes, crate::lanes::LaneRegistry)>,
    pub tz: jiff::tz::TimeZone,
}

impl LaneIface {
    fn find(&self, lane: &str) -> Result<(&crate::lane::Lanes, &crate::lanes::LaneState), Error> {
        let (lanes, registry) = self
            .lanes
            .as_ref()
            .ok_or_else(|| Error::NotAvailable("this device has no lanes".into()))?;
        let state = registry.iter().find(|l| l.name == lane).ok_or_else(|| {
            let names: Vec<&str> = registry.iter().map(|l| l.name.as_str()).collect();
            Error::NotFound(format!("no lane {lane:?}; lanes: {}", names.join(", ")))
        })?;
        Ok((lanes, state))
    }
}

#[zbus::interface(name = "cn.scenicpark.Gated.Lane1")]
impl LaneIface {
    /// Every lane: name, group, direction, mode, gate connection, persons in
    /// and out today, and the last decisions. JSON list.
    async fn lanes(&self) -> Result<String, Error> {
        let Some((lanes, registry)) = &self.lanes else {
            return Ok("[]".into());
        };
        let today = crate::tickets::rules::local_day(crate::lanes::local_now(&self.tz));
        let names: Vec<String> = registry.iter().map(|l| l.name.clone()).collect();
        let counts = lanes
            .blocking(move |l| {
                names
                    .iter()
                    .map(|n| l.counts(n, today))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        let out: Vec<LaneView> = registry
            .iter()
            .zip(counts)
            .map(|(l, (entries_today, exits_today))| LaneView {
                name: l.name.clone(),
                group: l.group.clone(),
                direction: l.direction.clone(),
                mode: l.mode().as_str().to_owned(),
                forced_by: l.forced_by().map(str::to_owned),
                peak: lanes.relaxed(&l.group).is_some(),
                power_fail_mode: l.power_fail_mode.as_str().to_owned(),
                gate: l.gate.watch_state().borrow().to_string(),
                entries_today,
                exits_today,
                last: l.last(),
            })
            .collect();
        Ok(json(&out))
    }

    /// `normal`, `free` (open for everyone, the gate counts) or `locked`.
    async fn set_mode(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        lane: &str,
        mode: &str,
    ) -> Result<(), Error> {
        let (lanes, state) = self.find(lane)?;
        let mode: hal::gate::GateMode = mode
            .parse()
            .map_err(|e: String| Error::InvalidArgument(format!("{e} (normal, free or locked)")))?;
        let by = caller(&header, conn).await;
        state.set_mode(mode).await.map_err(|e| match e {
            crate::lanes::LaneCommandError::Forced(_) => Error::NotAvailable(e.to_string()),
            e => Error::Failed(e.to_string()),
        })?;
        tracing::warn!(
            lane,
            mode = mode.as_str(),
            by,
            "lane mode set by an engineer"
        );
        // Operators see who closed or freed a lane, and when.
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = crate::store::outbox::OutboxEvent::LaneMode {
            lane: lane.to_owned(),
            mode,
            by,
            at_ms,
        };
        let stream = lane.to_owned();
        lanes
            .blocking(move |l| l.record_event(&stream, &event, at_ms))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        Ok(())
    }

    /// Opens the gate for one person without a ticket (recorded with the
    /// caller); returns what the gate reported.
    async fn open_once(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        lane: &str,
        direction: &str,
    ) -> Result<String, Error> {
        let (lanes, state) = self.find(lane)?;
        let dir = match direction {
            "entry" | "" => hal::gate::Direction::Entry,
            "exit" => hal::gate::Direction::Exit,
            d => {
                return Err(Error::InvalidArgument(format!(
                    "direction {d:?}: entry or exit"
                )));
            }
        };
        state
            .check_not_forced()
            .map_err(|e| Error::NotAvailable(e.to_string()))?;
        let by = caller(&header, conn).await;
        let outcome = hal::gate::Gate::open(&state.gate, dir, 1).await;
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = crate::store::outbox::OutboxEvent::ManualOpen {
            lane: lane.to_owned(),
            direction: dir,
            by: by.clone(),
            outcome: outcome.clone(),
            at_ms,
        };
        let stream = lane.to_owned();
        lanes
            .blocking(move |l| l.record_event(&stream, &event, at_ms))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        tracing::warn!(lane, by, outcome = ?outcome, "lane opened once by an engineer");
        Ok(json(&outcome))
    }
}

/// `Engineer1`: what a field engineer may do (root or group gated-engineer).
#[derive(Debug)]
pub struct Engineer {
    pub config: Arc<crate::config::Config>,
    pub kiosk: Option<Arc<Kiosk>>,
    pub lanes: Option<crate::lanes::LaneRegistry>,
    pub reads: crate::reads::Reads,
    pub power: watch::Receiver<crate::power::PowerView>,
    pub resync: Arc<tokio::sync::Notify>,
    pub modes: crate::modes::Modes,
    pub reader: Reader,
}

/// How long a self-test waits for the engineer to scan or place a card.
pub const SELF_TEST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[zbus::interface(name = "cn.scenicpark.Gated.Engineer1")]
impl Engineer {
    /// The device's newest `count` events: passages, prints, reprints,
    /// order changes, events waiting for upload; (at_ms, kind, what).
    async fn logs(&self, count: u32) -> Result<Vec<(i64, String, String)>, Error> {
        let lines = self
            .reader
            .read(move |s, _| s.timeline(count.min(10_000)))
            .await?;
        Ok(lines
            .into_iter()
            .map(|e| (e.at_ms, e.kind, e.what))
            .collect())
    }

    /// Prints a ticket again; the reason and the caller are recorded.
    async fn reprint(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        ticket_id: u64,
        reason: &str,
    ) -> Result<(), Error> {
        let k = self
            .kiosk
            .as_deref()
            .ok_or_else(|| Error::NotAvailable("this device has no printer".into()))?;
        let by = caller(&header, conn).await;
        tracing::info!(ticket = ticket_id, by, reason, "reprint requested");
        Ok(k.reprint(ticket_id, reason, &by).await?)
    }

    /// Enrolls this device with the central system (`central` "" = the
    /// configured URL) using a one-time pairing code; the running link picks
    /// the new credentials up. Returns what was received, without secrets (JSON).
    async fn provision(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        central: &str,
        code: &str,
    ) -> Result<String, Error> {
        if code.trim().is_empty() {
            return Err(Error::InvalidArgument("a pairing code is needed".into()));
        }
        let url = if central.is_empty() {
            self.config.central.url.get_ref().clone()
        } else {
            central.to_owned()
        };
        let by = caller(&header, conn).await;
        tracing::info!(central = url, by, "provisioning requested");
        match crate::central::enroll::enroll(&self.config, &url, code).await {
            Ok(e) => Ok(json(&e)),
            Err(e) => Err(match crate::central::enroll::explain(&e) {
                Failure::Code(m) => Error::InvalidArgument(m),
                Failure::Offline(m) => Error::Offline(m),
                Failure::Other(m) => Error::Failed(m),
            }),
        }
    }

    /// Drops the link to the central system and syncs again at once: a new
    /// token, the catalog, the changes since the cursor, the outbox. For an
    /// engineer who fixed the network and does not want to wait for the backoff.
    async fn sync_now(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) {
        let by = caller(&header, conn).await;
        tracing::info!(by, "sync requested over D-Bus");
        self.resync.notify_one();
    }

    /// Ends a fire alarm kept after its input cleared (`[fire]
    /// reset_by_engineer`); refused while the input is still active.
    async fn alarm_reset(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        let by = caller(&header, conn).await;
        self.modes
            .command(|reply| crate::modes::Command::AlarmReset { by, reply })
            .await
            .map_err(Error::NotAvailable)
    }

    /// Peak mode for a lane group: its lanes admit entries only (exit lanes
    /// take entries, a two-way lane's exit side is closed) and the re-entry
    /// rules `[peak]` names are lifted; `on` false ends it.
    async fn set_peak(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        group: &str,
        on: bool,
    ) -> Result<(), Error> {
        let by = caller(&header, conn).await;
        let group = group.to_owned();
        self.modes
            .command(|reply| crate::modes::Command::Peak {
                group,
                on,
                by,
                reply,
            })
            .await
            .map_err(Error::NotFound)
    }

    /// A guided self-test of one device through the running gated:
    /// `printer` prints a test slip; `scanner`, `id-reader`, `ic-reader` wait
    /// for the engineer to scan or place something (`name` "" = any of the
    /// family); `gate` reads the gate of lane `name`. Returns (passed,
    /// report); a failed report says what to check.
    #[zbus(out_args("passed", "report"))]
    async fn self_test(&self, device: &str, name: &str) -> Result<(bool, String), Error> {
        match device {
            "printer" => {
                let k = self.kiosk.as_deref().ok_or_else(|| {
                    Error::NotAvailable("this device has no ticket printer".into())
                })?;
                Ok(printer_self_test(k).await)
            }
            "scanner" | "id-reader" | "ic-reader" => {
                let mut rx = self.reads.subscribe();
                tracing::info!(device, name, "self-test: waiting for a read");
                let wanted = |r: &crate::reads::Read| {
                    r.family == device && (name.is_empty() || r.device == name)
                };
                let got = tokio::time::timeout(SELF_TEST_WAIT, async {
                    loop {
                        match rx.recv().await {
                            Ok(r) if wanted(&r) => return Some(r),
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => return None,
                        }
                    }
                })
                .await;
                Ok(match got {
                    Ok(Some(r)) => (true, format!("{} read {}", r.device, r.summary)),
                    _ => (
                        false,
                        format!(
                            "no read from {} within {} s. Check: power LED on, cable seated, the port and baud rate in gated.toml; {}",
                            if name.is_empty() { device } else { name },
                            SELF_TEST_WAIT.as_secs(),
                            match device {
                                "scanner" => "scan any code with the scanner",
                                "id-reader" => "place an ID card flat on the reader",
                                _ => "hold a card on the reader",
                            }
                        ),
                    ),
                })
            }
            "gate" => {
                let registry = self
                    .lanes
                    .as_ref()
                    .ok_or_else(|| Error::NotAvailable("this device has no gates".into()))?;
                let lane = registry
                    .iter()
                    .find(|l| name.is_empty() || l.name == name)
                    .ok_or_else(|| Error::NotFound(format!("no lane {name:?}")))?;
                Ok(match hal::gate::Gate::status(&lane.gate).await {
                    Ok(s) if s.error.unwrap_or(0) == 0 => (
                        true,
                        format!(
                            "gate of {} answers: mode {}, counters in {} out {}, alarm {}, fire input {}",
                            lane.name,
                            s.mode
                                .map_or("unknown".into(), |m| format!("{m:?}").to_lowercase()),
                            s.entry_counter,
                            s.exit_counter,
                            yes_no(s.alarm),
                            yes_no(s.fire)
                        ),
                    ),
                    Ok(s) => (
                        false,
                        format!(
                            "gate of {} reports error code {}: see the controller's manual; check the arms/wings are free",
                            lane.name,
                            s.error.unwrap_or(0)
                        ),
                    ),
                    Err(e) => (
                        false,
                        format!(
                            "{e}. Check: controller powered, cable or network, Modbus address and unit in gated.toml"
                        ),
                    ),
                })
            }
            "ups" => {
                let p = self.power.borrow().clone();
                if p.source.is_none() {
                    return Err(Error::NotAvailable(
                        "no UPS configured ([power] in gated.toml)".into(),
                    ));
                }
                Ok(match &p.state {
                    Some(s) => (
                        true,
                        format!("UPS answers ({}): {s}", p.source.unwrap_or_default()),
                    ),
                    None => (
                        false,
                        format!(
                            "no answer from the UPS ({}: {}). Check: upsd running and reachable, the UPS name, the USB/serial cable to the UPS",
                            p.source.unwrap_or_default(),
                            p.connection
                        ),
                    ),
                })
            }
            d => Err(Error::InvalidArgument(format!(
                "device {d:?}: printer, scanner, id-reader, ic-reader, gate or ups"
            ))),
        }
    }
}

/// Prints a test slip: (passed, report), a failure saying what to check.
async fn printer_self_test(k: &Kiosk) -> (bool, String) {
    match k.print_test_slip().await {
        Ok(status) => (true, format!("printed a test slip; printer {status}")),
        Err(e) => (
            false,
            format!(
                "{e}. Check: paper roll loaded and cover closed, printer powered, cable and baud rate (gated.toml devices.printer)"
            ),
        ),
    }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "ACTIVE",
        Some(false) => "off",
        None => "not wired",
    }
}

/// "uid N" of the caller, as the bus daemon vouches for it.
async fn caller(header: &Header<'_>, conn: &zbus::Connection) -> String {
    match caller_uid(header, conn).await {
        Some(uid) => format!("uid {uid}"),
        None => header
            .sender()
            .map_or_else(|| "unknown".into(), |s| s.to_string()),
    }
}

/// The caller's uid, as the bus daemon vouches for it.
async fn caller_uid(header: &Header<'_>, conn: &zbus::Connection) -> Option<u32> {
    let sender = header.sender()?;
    let p = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    p.get_connection_unix_user(zbus::names::BusName::from(sender.to_owned()))
        .await
        .ok()
}

/// Masks an ID card for the screen: first character of the name, last four of the number.
pub fn mask(name: &str, number: &str) -> (String, String) {
    let mut chars = name.chars();
    let first: String = chars.next().into_iter().collect();
    let name = first + &"*".repeat(chars.count());
    let n = number.chars().count();
    let tail: String = number.chars().skip(n.saturating_sub(4)).collect();
    (name, "*".repeat(n.saturating_sub(4)) + &tail)
}

/// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` chooses another),
/// serves the interfaces and takes the well-known name.
pub async fn serve(
    device: Device,
    lanes: LaneIface,
    engineer: Engineer,
) -> zbus::Result<zbus::Connection> {
    let kiosk = KioskIface {
        kiosk: device.kiosk.clone(),
        pin: ServicePin::new(engineer.config.kiosk.pin_hash()),
        resync: engineer.resync.clone(),
    };
    zbus::connection::Builder::system()
        .serve_at(OBJECT_PATH, device)
        .serve_at(OBJECT_PATH, lanes)
        .serve_at(OBJECT_PATH, kiosk)
        .serve_at(OBJECT_PATH, engineer)
        .name(BUS_NAME)
        .build()
        .await
}

/// Sends `PropertiesChanged` for `Device1` and `Kiosk1` when the link or the printer changes.
pub async fn follow(
    conn: zbus::Connection,
    mut status: watch::Receiver<SyncStatus>,
    mut power: watch::Receiver<crate::power::PowerView>,
    mut modes: watch::Receiver<crate::modes::ModeView>,
    kiosk: Option<Arc<Kiosk>>,
) {
    let server = conn.object_server();
    let Ok(device) = server.interface::<_, Device>(OBJECT_PATH).await else {
        return;
    };
    let Ok(kiosk_iface) = server.interface::<_, KioskIface>(OBJECT_PATH).await else {
        return;
    };
    let mut printer = kiosk.as_ref().map(|k| k.watch_printer());
    let mut progress = kiosk.as_ref().map(|k| k.watch_progress());
    // Readers and gates reconnect on their own: their states are compared
    // every second and announced when they changed.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut devices_seen = device.get().await.devices();
    let mut last_mode = modes.borrow().mode;
    loop {
        let printer_changed = async {
            match &mut printer {
                Some(p) => p.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let printing = async {
            match &mut progress {
                Some(p) => loop {
                    match p.recv().await {
                        Ok(p) => return Some(p),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return None,
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            p = printing => {
                if let Some(p) = p {
                    let _ = KioskIface::ticket_printed(
                        kiosk_iface.signal_emitter(), &p.order_no, p.printed, p.total,
                    ).await;
                }
                continue;
            }
            _ = tick.tick() => {
                let d = device.get().await;
                let now = d.devices();
                if now != devices_seen {
                    devices_seen = now;
                    let _ = d.devices_changed(device.signal_emitter()).await;
                }
                continue;
            }
            r = status.changed() => {
                if r.is_err() {
                    return;
                }
                let d = device.get().await;
                let e = device.signal_emitter();
                let _ = d.mode_changed(e).await;
                let _ = d.last_sync_ms_changed(e).await;
                let _ = d.outbox_depth_changed(e).await;
                let _ = d.clock_skew_ms_changed(e).await;
                let _ = d.central_url_changed(e).await;
            }
            // No UPS configured: the power view never changes.
            Ok(()) = power.changed() => {
                let d = device.get().await;
                let e = device.signal_emitter();
                let _ = d.power_changed(e).await;
                let _ = d.on_battery_changed(e).await;
                let _ = d.devices_changed(e).await;
            }
            Ok(()) = modes.changed() => {
                let v = modes.borrow_and_update().clone();
                let d = device.get().await;
                let e = device.signal_emitter();
                if v.mode != last_mode {
                    let _ = Device::transition(e, last_mode.as_str(), v.mode.as_str(), &v.cause).await;
                    last_mode = v.mode;
                }
                let _ = d.operating_mode_changed(e).await;
                let _ = d.operating_mode_cause_changed(e).await;
                let _ = d.operating_mode_since_ms_changed(e).await;
                let _ = d.fire_reset_pending_changed(e).await;
                let _ = d.peak_groups_changed(e).await;
            }
            ok = printer_changed => {
                if !ok {
                    return;
                }
                let state = match printer.as_ref().map(|p| p.borrow().clone()) {
                    Some(Some(Ok(s))) => s.problem().unwrap_or("ready").to_owned(),
                    Some(Some(Err(e))) => format!("failed: {e}"),
                    _ => "unknown".to_owned(),
                };
                let _ = KioskIface::printer_status(kiosk_iface.signal_emitter(), &state).await;
                let _ = device.get().await.devices_changed(device.signal_emitter()).await;
            }
        }
        let k = kiosk_iface.get().await;
        let _ = k.sale_available_changed(kiosk_iface.signal_emitter()).await;
        let _ = k
            .out_of_service_reasons_changed(kiosk_iface.signal_emitter())
            .await;
    }
}

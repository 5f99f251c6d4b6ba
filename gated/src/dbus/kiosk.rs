//! `Kiosk1`: sale, payment, printing, pickup and query for the kiosk UI,
//! and the service menu behind the PIN.

use super::*;
use gated_api::types::{CatalogView, OrderView, PickupView, QueryView};

/// `Kiosk1`: sale, payment, printing, pickup and query, for the kiosk UI,
/// and its PIN-protected service menu.
#[derive(Debug)]
pub struct KioskIface {
    pub kiosk: Option<Arc<Kiosk>>,
    pub pin: ServicePin,
    pub resync: Arc<tokio::sync::Notify>,
    pub setup: crate::setup::Setup,
    pub health: crate::health::Sources,
}

/// How long the setup screen waits for the link after an enrollment, so
/// its result shows the device online (or why not).
const SETUP_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

impl KioskIface {
    /// Enrolls by a setup code's text or a typed pairing code, then says
    /// what the device found.
    async fn enroll(&self, code: &str, by: &str) -> Result<gated_api::types::SetupResult, Error> {
        let (target, enrolled) = self.setup.enroll(code, by).await.map_err(refusal)?;
        crate::setup::Setup::settle(self.health.status.clone(), SETUP_SETTLE).await;
        self.setup.restart_if_needed(&enrolled.device_id);
        Ok(gated_api::types::SetupResult {
            device_id: enrolled.device_id,
            central_url: enrolled.central_url,
            site: target.site.unwrap_or_default(),
            lane_groups: enrolled.lane_groups,
            clock_skew_ms: enrolled.clock_skew_ms,
            health: self.health.summary().into(),
        })
    }
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
    /// Products, prices, remaining quota per slot for `date` (YYYY-MM-DD, "" = today).
    #[zbus(out_args("catalog"))]
    async fn catalog(&self, date: &str) -> Result<CatalogView, Error> {
        Ok(self.k()?.catalog(date).await?)
    }

    /// Creates an order; `items` are (product id, slot start minute, quantity);
    /// real-name products take one ID handle (from `IdCardRead`) per ticket.
    #[zbus(out_args("order"))]
    async fn create_order(
        &self,
        date: &str,
        items: Vec<(u32, u16, u16)>,
        id_handles: Vec<String>,
        phone: &str,
    ) -> Result<OrderView, Error> {
        Ok(self
            .k()?
            .create_order(date, &items, &id_handles, phone, false)
            .await?
            .view())
    }

    /// Creates an order for one tour-group ticket admitting `persons`
    /// (not for real-name products).
    #[zbus(out_args("order"))]
    async fn create_group_order(
        &self,
        date: &str,
        product_id: u32,
        start_minute: u16,
        persons: u16,
        phone: &str,
    ) -> Result<OrderView, Error> {
        if persons < 2 {
            return Err(Error::InvalidArgument(
                "a group ticket is for 2 or more persons".into(),
            ));
        }
        Ok(self
            .k()?
            .create_order(
                date,
                &[(product_id, start_minute, persons)],
                &[],
                phone,
                true,
            )
            .await?
            .view())
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
    /// handle) or `phone` (value: order number).
    #[zbus(out_args("orders"))]
    async fn pickup(
        &self,
        by: &str,
        value: &str,
        phone_suffix: &str,
    ) -> Result<Vec<PickupView>, Error> {
        Ok(self.k()?.pickup(by, value, phone_suffix).await?)
    }

    /// What a scanned ticket is: product, validity, entries used and left.
    #[zbus(out_args("ticket"))]
    async fn query(&self, code: &str) -> Result<QueryView, Error> {
        Ok(self.k()?.query(code).await?)
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

    /// Enrolls the kiosk from its setup screen: `code` is a setup code's
    /// text (scanned) or a pairing code (typed; the configured central
    /// system and device id). Open to the kiosk only while the device is not
    /// enrolled: afterwards `ServiceProvision`, behind the service PIN.
    /// Returns what the device found once its link came up (or 10 s passed).
    #[zbus(out_args("result"))]
    async fn setup(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        code: &str,
    ) -> Result<gated_api::types::SetupResult, Error> {
        if !self.setup.waiting() {
            return Err(Error::NotAuthorized(
                "this device is enrolled: enrolling it again needs the service PIN".into(),
            ));
        }
        let by = format!("kiosk setup screen ({})", caller(&header, conn).await);
        self.enroll(code, &by).await
    }

    /// Enrolls the device again (moved to another site, replaced central
    /// system), from the service menu: as `Setup`, with the session of the
    /// service PIN.
    #[zbus(out_args("result"))]
    async fn service_provision(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        token: &str,
        code: &str,
    ) -> Result<gated_api::types::SetupResult, Error> {
        self.serviced(&header, conn, token).await?;
        let by = format!("kiosk service menu ({})", caller(&header, conn).await);
        self.enroll(code, &by).await
    }

    /// Whether the device waits for its setup (not enrolled): the kiosk
    /// shows its setup screen.
    #[zbus(property)]
    fn needs_setup(&self) -> bool {
        self.setup.waiting()
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

    /// The park's occupancy notice for the home screen, in Chinese and in
    /// English (both empty below the first capacity tier).
    #[zbus(property)]
    fn visitor_notice(&self) -> (String, String) {
        self.kiosk
            .as_ref()
            .map(|k| k.visitor_notice())
            .unwrap_or_default()
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

    /// An ID card was read: a handle to pass back, masked fields to show, and
    /// the card's kind (`resident`, `foreigner-2017`, `foreigner-2023`,
    /// `hk-macao-taiwan`).
    #[zbus(signal)]
    pub async fn id_card_read(
        emitter: &SignalEmitter<'_>,
        handle: &str,
        name_masked: &str,
        number_masked: &str,
        kind: &str,
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

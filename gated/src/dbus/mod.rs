//! gated's D-Bus API: one well-known name, versioned interfaces. The
//! introspection XML of each is kept in `gated/dbus/` (a test compares), and
//! `image/etc/dbus-1/system.d/cn.scenicpark.Gated.conf` says who may call what.
//!
//! Records (catalog, order, pickup, query, lanes …) are the `a{sv}`
//! dictionaries of `gated_api::types`, documented in `docs/dbus.md`; errors
//! are named (`cn.scenicpark.Gated.Error.SoldOut` …) with a message a UI can show.

mod device;
mod engineer;
mod kiosk;
mod lane;

pub use device::Device;
pub use engineer::{Engineer, SELF_TEST_WAIT};
pub use kiosk::KioskIface;
pub use lane::LaneIface;

use std::sync::Arc;

use tokio::sync::watch;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::central::enroll::Failure;
use crate::central::sync::SyncStatus;
use crate::kiosk::{Kiosk, KioskError};
use crate::service_pin::{PinError, ServicePin};

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

/// A setup code refused, as the error a caller can show.
pub(crate) fn refusal(r: crate::setup::Refusal) -> Error {
    match r.reason {
        "offline" => Error::Offline(r.en),
        "failed" => Error::Failed(r.en),
        _ => Error::InvalidArgument(r.en),
    }
}

/// The bus's reads of gated's database (counts, the timeline), through
/// the device's reader connection, off the async threads.
#[derive(Debug, Clone)]
pub struct Reader {
    db: crate::store::Db,
    tz: jiff::tz::TimeZone,
    day: crate::tickets::rules::OperatingDay,
}

impl Reader {
    pub fn new(
        db: crate::store::Db,
        tz: jiff::tz::TimeZone,
        day: crate::tickets::rules::OperatingDay,
    ) -> Self {
        Reader { db, tz, day }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store, &jiff::tz::TimeZone) -> Result<T, crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<T, Error> {
        let tz = self.tz.clone();
        self.db
            .read(move |s| f(s, &tz))
            .await
            .map_err(|e| Error::Failed(e.to_string()))
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

/// The printer's state as `Devices` and `PrinterStatus` say it.
pub(crate) fn printer_state(s: Option<&Result<hal::printer::Status, String>>) -> String {
    match s {
        None => "unknown".to_owned(),
        Some(Ok(s)) => s.problem().unwrap_or("ready").to_owned(),
        Some(Err(e)) => format!("failed: {e}"),
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

/// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` chooses another),
/// serves the interfaces and takes the well-known name.
pub async fn serve(
    device: Device,
    lanes: LaneIface,
    engineer: Engineer,
) -> zbus::Result<zbus::Connection> {
    let kiosk = KioskIface {
        kiosk: device.health.kiosk.clone(),
        pin: ServicePin::new(engineer.config.kiosk.pin_hash()),
        resync: engineer.resync.clone(),
        setup: engineer.setup.clone(),
        health: device.health.clone(),
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
    mut occupancy: watch::Receiver<gated_api::types::OccupancyView>,
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
    let tiers = |v: &gated_api::types::OccupancyView| -> Vec<(String, u8)> {
        std::iter::once(&v.site)
            .chain(&v.groups)
            .map(|g| (g.group.clone(), g.tier))
            .collect()
    };
    let mut last_tiers = tiers(&occupancy.borrow_and_update());
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
            Ok(()) = occupancy.changed() => {
                let v = occupancy.borrow_and_update().clone();
                let e = device.signal_emitter();
                for (scope, tier) in tiers(&v) {
                    if !last_tiers.contains(&(scope.clone(), tier)) {
                        let percent = std::iter::once(&v.site)
                            .chain(&v.groups)
                            .find(|g| g.group == scope)
                            .map_or(0, |g| g.percent);
                        let _ = Device::capacity_tier(e, &scope, tier, percent).await;
                    }
                }
                last_tiers = tiers(&v);
                let d = device.get().await;
                let _ = d.visitors_inside_changed(e).await;
                let _ = d.entries_today_changed(e).await;
                let _ = d.capacity_tier_reached_changed(e).await;
            }
            ok = printer_changed => {
                if !ok {
                    return;
                }
                let state = printer_state(printer.as_ref().and_then(|p| p.borrow().clone()).as_ref());
                let _ = KioskIface::printer_status(kiosk_iface.signal_emitter(), &state).await;
                let _ = device.get().await.devices_changed(device.signal_emitter()).await;
            }
        }
        let k = kiosk_iface.get().await;
        let _ = k.sale_available_changed(kiosk_iface.signal_emitter()).await;
        let _ = k
            .out_of_service_reasons_changed(kiosk_iface.signal_emitter())
            .await;
        let _ = k.visitor_notice_changed(kiosk_iface.signal_emitter()).await;
        let _ = k.needs_setup_changed(kiosk_iface.signal_emitter()).await;
    }
}

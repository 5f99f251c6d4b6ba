//! The kiosk role at run time: the services with their printer, the
//! printer's state followed, and what the kiosk's scanners and ID reader
//! read turned into D-Bus signals (an ID number is hashed here and goes no
//! further: the UI gets a handle and masked fields).

use std::sync::Arc;
use std::time::Duration;

use hal::idcard::sam;
use hal::printer::SerialPrinter;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

use crate::central::client::Session;
use crate::central::sync::SyncStatus;
use crate::config::Config;
use crate::dbus::{self, KioskIface};
use crate::kiosk::{Kiosk, SaleLimits};
use crate::store::{Db, StoreError};

/// How often the printer is asked for its state between prints.
const PRINTER_POLL: Duration = Duration::from_secs(5);

// Each argument is a distinct input of the kiosk from a different subsystem.
#[allow(clippy::too_many_arguments)]
pub fn start(
    config: &Config,
    db: Db,
    session: watch::Receiver<Option<Arc<Session>>>,
    status: watch::Receiver<SyncStatus>,
    modes: watch::Receiver<crate::modes::ModeView>,
    occupancy: watch::Receiver<gated_api::types::OccupancyView>,
    activity: crate::update::Activity,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<Kiosk>, StoreError> {
    let printer = config.devices.printer.as_ref().map(|p| {
        let p = p.get_ref();
        SerialPrinter::new(
            p.port.get_ref(),
            p.baud.as_ref().map_or(9600, |b| *b.get_ref()),
        )
    });
    let tz = config.time_zone();
    let nonces = db.writer().nonces(config.device_id.get_ref())?;
    let limits = SaleLimits::from_config(&config.kiosk);
    let kiosk = Arc::new(
        Kiosk::new(
            db,
            nonces,
            session,
            status,
            printer,
            tz,
            config.operating_day(),
            occupancy,
            modes,
            limits,
        )
        .with_activity(activity),
    );
    let k = kiosk.clone();
    tasks.spawn(async move {
        let mut settled = false;
        loop {
            match k.refresh_printer().await {
                Some(Err(e)) => tracing::debug!("printer status: {e}"),
                // Once the printer answers: what a stop left held mid-print.
                Some(Ok(_)) if !settled => match k.settle_held_prints().await {
                    Ok(()) => settled = true,
                    Err(e) => tracing::warn!("settling held prints: {e}"),
                },
                _ => {}
            }
            tokio::time::sleep(PRINTER_POLL).await;
        }
    });
    Ok(kiosk)
}

/// Scanners → `CodeScanned`, ID readers → `IdCardRead`.
pub fn forward_reads(
    config: &Config,
    kiosk: Arc<Kiosk>,
    conn: zbus::Connection,
    reads: &crate::reads::Reads,
    tasks: &mut JoinSet<()>,
) {
    let emitter = match zbus::object_server::SignalEmitter::new(&conn, dbus::OBJECT_PATH) {
        Ok(e) => e.into_owned(),
        Err(e) => {
            warn!("cannot emit signals: {e}");
            return;
        }
    };
    for (name, sc) in &config.devices.scanners {
        let sc = sc.get_ref();
        let Some(port) = sc.hal_port() else {
            continue;
        };
        let mut dev = hal::scanner::spawn(name, port);
        reads.watch(format!("scanner {name}"), dev.watch_state());
        let (emitter, reads, device) = (emitter.clone(), reads.clone(), name.clone());
        tasks.spawn(async move {
            while let Some(scan) = dev.next().await {
                reads.send(crate::reads::code(&device, &scan.text));
                if let Err(e) = KioskIface::code_scanned(&emitter, &scan.text).await {
                    warn!("CodeScanned: {e}");
                }
            }
        });
    }
    for (name, rd) in &config.devices.id_readers {
        let rd = rd.get_ref();
        let baud = rd
            .baud
            .as_ref()
            .map_or(hal::idcard::DEFAULT_BAUD, |b| *b.get_ref());
        let mut dev = hal::idcard::spawn(name, rd.port.get_ref(), baud);
        reads.watch(format!("id-reader {name}"), dev.watch_state());
        let (emitter, kiosk, reads, device) =
            (emitter.clone(), kiosk.clone(), reads.clone(), name.clone());
        tasks.spawn(async move {
            while let Some(read) = dev.next().await {
                reads.send(crate::reads::id_card(&device, &read.card.id_number));
                let Some(handle) = kiosk.remember_id(&read.card.id_number).await else {
                    warn!("ID card read, but no ID-hash key is provisioned");
                    continue;
                };
                // A foreigner's card may have no Chinese name: the Latin one, masked alike.
                let shown = if read.card.name.is_empty() {
                    &read.card.english_name
                } else {
                    &read.card.name
                };
                let (name, number) = (
                    sam::mask_name(shown),
                    sam::mask_id_tail(&read.card.id_number),
                );
                let kind = read.card.kind.code();
                if let Err(e) =
                    KioskIface::id_card_read(&emitter, &handle, &name, &number, kind).await
                {
                    warn!("IdCardRead: {e}");
                }
            }
        });
    }
}

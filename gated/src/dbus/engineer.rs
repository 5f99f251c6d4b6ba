//! `Engineer1`: what a field engineer may do: logs, reprints, provisioning,
//! sync, alarm reset, peak mode, guided self-tests.

use super::*;

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
    pub occupancy: crate::occupancy::Occupancy,
    /// The bus's reads, and (its `Db`) where Provision stores the keys received.
    pub reader: Reader,
    pub updates: crate::update::Updates,
    pub setup: crate::setup::Setup,
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
    /// the new credentials up. Returns what was received, without secrets.
    #[zbus(out_args("enrolled"))]
    async fn provision(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        central: &str,
        code: &str,
    ) -> Result<gated_api::types::Enrolled, Error> {
        if code.trim().is_empty() {
            return Err(Error::InvalidArgument("a pairing code is needed".into()));
        }
        let by = caller(&header, conn).await;
        if crate::central::setup_code::claims(code) {
            tracing::info!(by, "provisioning by setup code requested");
            let (_, e) = self.setup.enroll(code, &by).await.map_err(refusal)?;
            self.setup.restart_if_needed(&e.device_id);
            return Ok(e);
        }
        let central = Some(central).filter(|c| !c.is_empty());
        let t = crate::setup::target(&self.config, central, code).map_err(refusal)?;
        tracing::info!(central = t.central, by, "provisioning requested");
        crate::central::enroll::enroll(
            &self.config,
            Some(&self.reader.db),
            &t.central,
            &t.code,
            &t.device_id,
        )
        .await
        .map_err(|e| match crate::central::enroll::explain(&e) {
            Failure::Code(m) => Error::InvalidArgument(m),
            Failure::Offline(m) => Error::Offline(m),
            Failure::Other(m) => Error::Failed(m),
        })
    }

    /// Installs a RAUC bundle into the slot not booted: `source` is its
    /// absolute path on the device or a URL on the central system (fetched
    /// over the pinned TLS); `reboot` is `now` (as soon as no passage or
    /// print is under way) or `window` (the quiet window). Refused while a
    /// mode forces the gates. Returns once started: `UpdateStatus` follows it.
    async fn install_update(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        source: &str,
        reboot: &str,
    ) -> Result<(), Error> {
        let reboot: crate::update::Reboot = reboot.parse().map_err(Error::InvalidArgument)?;
        let by = caller(&header, conn).await;
        // RAUC's answer first: a device without it says so at once.
        let view = self.updates.view().await;
        if !view.unavailable.is_empty() {
            return Err(Error::NotAvailable(format!(
                "updates are not available here: {}",
                view.unavailable
            )));
        }
        use crate::update::Refused;
        self.updates
            .install(source, reboot, None, &by)
            .map_err(|e| match e {
                Refused::Mode(m) | Refused::Busy(m) | Refused::Unavailable(m) => {
                    Error::NotAvailable(m)
                }
                Refused::Invalid(m) => Error::InvalidArgument(m),
            })
    }

    /// The image version, the slots, the update under way and the last one.
    async fn update_status(&self) -> gated_api::types::UpdateView {
        self.updates.view().await
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

    /// A supervisor lets `scope` ("site" or a lane group) admit past its
    /// instantaneous capacity (`on`), or ends that. The reason and the
    /// caller are recorded, logged and reported; the override outlives a
    /// restart until it is turned off.
    async fn capacity_override(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        scope: &str,
        on: bool,
        reason: &str,
    ) -> Result<(), Error> {
        let by = caller(&header, conn).await;
        self.occupancy
            .set_override(scope, on, reason, &by)
            .await
            .map_err(Error::InvalidArgument)
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

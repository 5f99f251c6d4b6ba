//! `Device1`: what any device is, how its link is, its operating mode and
//! its devices.

use super::*;

/// `Device1`: what any device is and how its link is.
#[derive(Debug)]
pub struct Device {
    pub role: String,
    pub device_id: String,
    pub status: watch::Receiver<SyncStatus>,
    pub fleet: watch::Receiver<crate::peers::FleetStatus>,
    pub occupancy: watch::Receiver<gated_api::types::OccupancyView>,
    pub power: watch::Receiver<crate::power::PowerView>,
    pub health: crate::health::Sources,
    pub modes: crate::modes::Modes,
    pub reader: Reader,
}

#[zbus::interface(name = "cn.scenicpark.Gated.Device1")]
impl Device {
    /// The site network: where this device listens, its peers (reachable,
    /// last message, lag in passages), conflicts, skipped feed changes.
    #[zbus(out_args("fleet"))]
    async fn fleet(&self) -> Result<gated_api::types::FleetView, Error> {
        let f = self.fleet.borrow().clone();
        // Counted where it is kept (an indexed count), never stale.
        let conflicts = self.reader.read(|s, _| s.conflicts()).await?;
        let now = jiff::Timestamp::now().as_millisecond();
        Ok(gated_api::types::FleetView {
            listening: f.listening.clone(),
            advertised: f.advertised.clone(),
            public_key: f.public_key.clone(),
            lag: f.lag(),
            conflicts,
            refused: f.refused,
            skipped_changes: self.status.borrow().skipped_changes,
            peers: f
                .peers
                .iter()
                .map(|p| gated_api::types::PeerView {
                    device_id: p.device_id.clone(),
                    address: p.address.clone(),
                    reachable: p.reachable,
                    last_message_age_ms: p.last_message_ms.map(|t| (now - t).max(0)),
                    head: p.head,
                    cursor: p.cursor,
                    lag: p.lag(),
                    last_error: p.last_error.clone(),
                })
                .collect(),
        })
    }

    /// Visitors of the site and of each lane group in the operating day,
    /// from every device's passages, against the capacities and tiers.
    #[zbus(out_args("occupancy"))]
    async fn occupancy(&self) -> gated_api::types::OccupancyView {
        self.occupancy.borrow().clone()
    }

    /// Visitors in the site now (entries − exits in the operating day).
    #[zbus(property)]
    fn visitors_inside(&self) -> u64 {
        self.occupancy.borrow().site.inside
    }

    /// Persons in through the site's gates in the operating day.
    #[zbus(property)]
    fn entries_today(&self) -> u64 {
        self.occupancy.borrow().site.entries
    }

    /// The site's capacity tier reached (percent threshold, 0: below the first).
    #[zbus(property)]
    fn capacity_tier_reached(&self) -> u8 {
        self.occupancy.borrow().site.tier
    }

    /// The site (`scope` empty) or a lane group crossed a capacity tier.
    #[zbus(signal)]
    pub async fn capacity_tier(
        emitter: &SignalEmitter<'_>,
        scope: &str,
        tier: u8,
        percent: u32,
    ) -> zbus::Result<()>;

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
        let today = self
            .reader
            .day
            .around(crate::lanes::local_now(&self.reader.tz));
        let c = self.reader.read(move |s, _| s.counts(today)).await?;
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
    pub(super) fn devices(&self) -> Vec<(String, String)> {
        self.health.devices()
    }

    /// What works and what does not: green, amber or red per subsystem
    /// (central link, clock, each device, data partition, UPS), each line
    /// not green with what to check. The heartbeat carries the same.
    #[zbus(out_args("health"))]
    async fn health(&self) -> gated_api::types::HealthView {
        self.health.summary().into()
    }
}

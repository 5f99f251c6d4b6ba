//! A zbus proxy per interface, with every method, property and signal gated
//! serves (the introspection XML in `gated/dbus/` is the contract; a test
//! compares it with what gated serves). Records arrive as [`crate::types`].

use crate::types::{
    CatalogView, Enrolled, FleetView, GateOutcome, HealthView, LaneView, OccupancyView, OrderView,
    PickupView, QueryView, SetupResult, UpdateView,
};

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Device1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Device1 {
    /// (tickets, revoked, blocked, entered today, outbox) as stored now.
    fn counts(&self) -> zbus::Result<(u64, u64, u64, u64, u64)>;

    /// The site network: peers, lag, conflicts.
    fn fleet(&self) -> zbus::Result<FleetView>;

    /// Green, amber or red per subsystem, with what to check.
    fn health(&self) -> zbus::Result<HealthView>;

    /// The site's figures as properties (PropertiesChanged on every change).
    #[zbus(property)]
    fn visitors_inside(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn entries_today(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn capacity_tier_reached(&self) -> zbus::Result<u8>;

    /// Visitors of the site and its lane groups today, capacities, tiers.
    fn occupancy(&self) -> zbus::Result<OccupancyView>;

    /// The site (`scope` empty) or a lane group crossed a capacity tier.
    #[zbus(signal)]
    fn capacity_tier(&self, scope: &str, tier: u8, percent: u32) -> zbus::Result<()>;

    #[zbus(property)]
    fn role(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn device_id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn mode(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn central_url(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn mode_since_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn cursor(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn catalog_version(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn time_zone(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_sync_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn outbox_depth(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn clock_skew_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn power(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn on_battery(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn operating_mode(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn operating_mode_cause(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn operating_mode_since_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn fire_reset_pending(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn peak_groups(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn devices(&self) -> zbus::Result<Vec<(String, String)>>;

    #[zbus(signal)]
    fn transition(&self, from: String, to: String, cause: String) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Kiosk1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Kiosk1 {
    fn catalog(&self, date: &str) -> zbus::Result<CatalogView>;
    fn create_order(
        &self,
        date: &str,
        items: &[(u32, u16, u16)],
        id_handles: &[&str],
        phone: &str,
    ) -> zbus::Result<OrderView>;
    fn create_group_order(
        &self,
        date: &str,
        product_id: u32,
        start_minute: u16,
        persons: u16,
        phone: &str,
    ) -> zbus::Result<OrderView>;
    fn pay(&self, order_no: &str, method: &str, code: &str) -> zbus::Result<(String, String, i64)>;
    fn order_status(&self, order_no: &str) -> zbus::Result<String>;
    fn cancel(&self, order_no: &str) -> zbus::Result<()>;
    fn print(&self, order_no: &str) -> zbus::Result<u32>;
    fn pickup(&self, by: &str, value: &str, phone_suffix: &str) -> zbus::Result<Vec<PickupView>>;
    fn query(&self, code: &str) -> zbus::Result<QueryView>;
    fn open_service_session(&self, pin: &str) -> zbus::Result<String>;
    fn close_service_session(&self, token: &str) -> zbus::Result<()>;
    fn service_test_print(&self, token: &str) -> zbus::Result<(bool, String)>;
    fn service_sync_now(&self, token: &str) -> zbus::Result<()>;
    /// First enrollment from the setup screen (only while not enrolled).
    fn setup(&self, code: &str) -> zbus::Result<SetupResult>;
    /// Enrollment again, from the service menu.
    fn service_provision(&self, token: &str, code: &str) -> zbus::Result<SetupResult>;
    /// The device waits for its setup: the kiosk shows the setup screen.
    #[zbus(property)]
    fn needs_setup(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn max_quantity(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn sale_horizon_days(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn sale_available(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn out_of_service_reasons(&self) -> zbus::Result<Vec<String>>;
    /// The park's occupancy notice (Chinese, English; empty below the first tier).
    #[zbus(property)]
    fn visitor_notice(&self) -> zbus::Result<(String, String)>;

    #[zbus(signal)]
    fn code_scanned(&self, code: String) -> zbus::Result<()>;
    #[zbus(signal)]
    fn id_card_read(
        &self,
        handle: String,
        name_masked: String,
        number_masked: String,
        kind: String,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn ticket_printed(&self, order_no: String, printed: u32, total: u32) -> zbus::Result<()>;
    #[zbus(signal)]
    fn printer_status(&self, state: String) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Lane1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Lane1 {
    fn lanes(&self) -> zbus::Result<Vec<LaneView>>;
    fn set_mode(&self, lane: &str, mode: &str) -> zbus::Result<()>;
    fn open_once(&self, lane: &str, direction: &str) -> zbus::Result<GateOutcome>;
}

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Engineer1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Engineer1 {
    /// The newest events: (at_ms, kind, what).
    fn logs(&self, count: u32) -> zbus::Result<Vec<(i64, String, String)>>;
    fn reprint(&self, ticket_id: u64, reason: &str) -> zbus::Result<()>;
    /// What was received, without secrets.
    fn provision(&self, central: &str, code: &str) -> zbus::Result<Enrolled>;
    fn sync_now(&self) -> zbus::Result<()>;
    fn alarm_reset(&self) -> zbus::Result<()>;
    fn set_peak(&self, group: &str, on: bool) -> zbus::Result<()>;
    fn capacity_override(&self, scope: &str, on: bool, reason: &str) -> zbus::Result<()>;
    fn self_test(&self, device: &str, name: &str) -> zbus::Result<(bool, String)>;
    /// Installs a RAUC bundle (a path on the device, or a URL on the central
    /// system); `reboot` is `now` or `window`. Returns once it has started.
    fn install_update(&self, source: &str, reboot: &str) -> zbus::Result<()>;
    fn update_status(&self) -> zbus::Result<UpdateView>;
}

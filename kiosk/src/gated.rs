//! The kiosk's only link to the world: gated's D-Bus API (`docs/dbus.md`).
//! Proxies for the interfaces the kiosk user may call, and the JSON
//! documents gated answers with.

use serde::Deserialize;

pub const BUS_NAME: &str = "cn.scenicpark.Gated";
pub const OBJECT_PATH: &str = "/cn/scenicpark/Gated";

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Kiosk1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Kiosk1 {
    fn catalog(&self, date: &str) -> zbus::Result<String>;
    fn create_order(
        &self,
        date: &str,
        items: &[(u32, u16, u16)],
        id_handles: &[&str],
        phone: &str,
    ) -> zbus::Result<String>;
    fn pay(&self, order_no: &str, method: &str, code: &str) -> zbus::Result<(String, String, i64)>;
    fn order_status(&self, order_no: &str) -> zbus::Result<String>;
    fn cancel(&self, order_no: &str) -> zbus::Result<()>;
    fn print(&self, order_no: &str) -> zbus::Result<u32>;
    fn pickup(&self, by: &str, value: &str, phone_suffix: &str) -> zbus::Result<String>;
    fn query(&self, code: &str) -> zbus::Result<String>;
    fn open_service_session(&self, pin: &str) -> zbus::Result<String>;
    fn close_service_session(&self, token: &str) -> zbus::Result<()>;
    fn service_test_print(&self, token: &str) -> zbus::Result<(bool, String)>;
    fn service_sync_now(&self, token: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn max_quantity(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn sale_horizon_days(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn sale_available(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn out_of_service_reasons(&self) -> zbus::Result<Vec<String>>;

    #[zbus(signal)]
    fn code_scanned(&self, code: String) -> zbus::Result<()>;
    #[zbus(signal)]
    fn id_card_read(
        &self,
        handle: String,
        name_masked: String,
        number_masked: String,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn ticket_printed(&self, order_no: String, printed: u32, total: u32) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "cn.scenicpark.Gated.Device1",
    default_service = "cn.scenicpark.Gated",
    default_path = "/cn/scenicpark/Gated"
)]
pub trait Device1 {
    #[zbus(property)]
    fn role(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn device_id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn mode(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn central_url(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_sync_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn outbox_depth(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn clock_skew_ms(&self) -> zbus::Result<i64>;
    #[zbus(property)]
    fn power(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn devices(&self) -> zbus::Result<Vec<(String, String)>>;
}

/// The proxies, over one connection.
#[derive(Debug, Clone)]
pub struct Gated {
    pub kiosk: Kiosk1Proxy<'static>,
    pub device: Device1Proxy<'static>,
}

impl Gated {
    /// Connects to the bus at `address`, or to the system bus (or
    /// `DBUS_SYSTEM_BUS_ADDRESS`).
    pub async fn connect(address: Option<&str>) -> zbus::Result<Self> {
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        };
        let conn = builder.method_timeout(CALL_TIMEOUT).build().await?;
        Ok(Gated {
            kiosk: Kiosk1Proxy::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?,
            device: Device1Proxy::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?,
        })
    }
}

/// Calls that reach the central system take up to 15 s each, a print ~10 s
/// per ticket (docs/dbus.md, "Timeouts"); a group of 20 tickets fits.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);

/// The last part of a D-Bus error name (`SoldOut` for
/// `cn.scenicpark.Gated.Error.SoldOut`), and its message.
pub fn error_name(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => (
            name.as_str()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned(),
            msg.clone().unwrap_or_default(),
        ),
        other => ("Bus".to_owned(), other.to_string()),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogView {
    pub scenic_area: String,
    pub date: String,
    pub products: Vec<ProductView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProductView {
    pub id: u32,
    pub name: String,
    pub name_en: String,
    pub price_cents: u32,
    pub real_name: bool,
    pub id_cards_per_ticket: u32,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlotView {
    pub start_minute: u16,
    pub end_minute: u16,
    pub remaining: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub order_no: String,
    pub total_cents: u32,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PickupView {
    pub order_no: String,
    pub date: String,
    pub tickets: usize,
    pub unprinted: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueryView {
    pub product: String,
    pub product_en: String,
    pub valid_from: String,
    pub valid_until: String,
    pub entries_allowed: u16,
    pub entries_used: Option<u32>,
    pub entries_left: Option<u32>,
    pub state: String,
    pub message_zh: String,
    pub message_en: String,
}

/// Parses a JSON answer; a mismatch is gated and the kiosk disagreeing
/// about the API, reported like a bus error.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, zbus::Error> {
    serde_json::from_str(json).map_err(|e| zbus::Error::Failure(format!("{what}: {e}")))
}

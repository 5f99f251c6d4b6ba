//! The kiosk's only link to the world: gated's D-Bus API (`docs/dbus.md`),
//! through the proxies and records of `gated-api`.

pub use gated_api::types::{CatalogView, OrderView as Order, PickupView, QueryView};
pub use gated_api::{Device1Proxy, ErrorName, Kiosk1Proxy};

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

/// The error's name and its message.
pub fn error_name(e: &zbus::Error) -> (ErrorName, String) {
    gated_api::error_of(e)
}

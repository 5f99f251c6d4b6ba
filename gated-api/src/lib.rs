//! gated's D-Bus API, written once (docs/dbus.md explains it): the bus
//! name and path, the named errors, a zbus proxy per interface, and the
//! documents the answers carry. gated serves it; the kiosk app and gatectl
//! call it through these proxies, never by method names in strings.

pub mod docs;
mod proxies;

pub use proxies::{Device1Proxy, Engineer1Proxy, Kiosk1Proxy, Lane1Proxy};

pub const BUS_NAME: &str = "cn.scenicpark.Gated";
pub const OBJECT_PATH: &str = "/cn/scenicpark/Gated";
pub const DEVICE1: &str = "cn.scenicpark.Gated.Device1";
pub const KIOSK1: &str = "cn.scenicpark.Gated.Kiosk1";
pub const LANE1: &str = "cn.scenicpark.Gated.Lane1";
pub const ENGINEER1: &str = "cn.scenicpark.Gated.Engineer1";
pub const INTERFACES: [&str; 4] = [DEVICE1, KIOSK1, LANE1, ENGINEER1];

/// Every error a method answers, by name (`cn.scenicpark.Gated.Error.SoldOut`
/// …), with a message a UI can show.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "cn.scenicpark.Gated.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    NotProvisioned(String),
    Offline(String),
    SoldOut(String),
    PaymentDeclined(String),
    NotPayable(String),
    PrinterOutOfPaper(String),
    PrinterNotReady(String),
    InvalidArgument(String),
    NotFound(String),
    AlreadyPrinted(String),
    /// This device's role has no such service (e.g. sale on a lane).
    NotAvailable(String),
    /// The service PIN was wrong; the message says how many tries are left.
    WrongPin(String),
    /// Too many wrong PINs: the message says when to try again.
    Locked(String),
    /// A service method without an open service session (the PIN first).
    NotAuthorized(String),
    Failed(String),
}

/// What a client got back instead of an answer: one of gated's [`Error`]
/// names, or the bus's own (gated not running, a timeout, the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorName {
    NotProvisioned,
    Offline,
    SoldOut,
    PaymentDeclined,
    NotPayable,
    PrinterOutOfPaper,
    PrinterNotReady,
    InvalidArgument,
    NotFound,
    AlreadyPrinted,
    NotAvailable,
    WrongPin,
    Locked,
    NotAuthorized,
    Failed,
    /// Nobody owns the name: gated is not running (or not on this bus).
    NotRunning,
    /// The bus policy refused the call.
    AccessDenied,
    /// No answer in time, or the bus itself failed.
    Bus,
}

/// The error's name and its message.
pub fn error_of(e: &zbus::Error) -> (ErrorName, String) {
    use ErrorName as N;
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            let last = name.as_str().rsplit('.').next().unwrap_or_default();
            let n = match last {
                "NotProvisioned" => N::NotProvisioned,
                "Offline" => N::Offline,
                "SoldOut" => N::SoldOut,
                "PaymentDeclined" => N::PaymentDeclined,
                "NotPayable" => N::NotPayable,
                "PrinterOutOfPaper" => N::PrinterOutOfPaper,
                "PrinterNotReady" => N::PrinterNotReady,
                "InvalidArgument" => N::InvalidArgument,
                "NotFound" => N::NotFound,
                "AlreadyPrinted" => N::AlreadyPrinted,
                "NotAvailable" => N::NotAvailable,
                "WrongPin" => N::WrongPin,
                "Locked" => N::Locked,
                "NotAuthorized" => N::NotAuthorized,
                "ServiceUnknown" | "NameHasNoOwner" => N::NotRunning,
                "AccessDenied" => N::AccessDenied,
                "Failed" => N::Failed,
                _ => N::Bus,
            };
            (n, msg.clone().unwrap_or_default())
        }
        // No bus at that address at all: nothing there to answer.
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) => (N::NotRunning, e.to_string()),
        other => (N::Bus, other.to_string()),
    }
}

/// Parses a JSON document an answer carries; a mismatch means gated and
/// its client disagree about the API, reported like a bus error.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, zbus::Error> {
    serde_json::from_str(json).map_err(|e| zbus::Error::Failure(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_round_trip_through_the_bus_form() {
        let e = zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("cn.scenicpark.Gated.Error.SoldOut").unwrap(),
            Some("1 left, 2 asked".into()),
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        );
        assert_eq!(error_of(&e), (ErrorName::SoldOut, "1 left, 2 asked".into()));
        let gone = zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.DBus.Error.ServiceUnknown")
                .unwrap(),
            None,
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        );
        assert_eq!(error_of(&gone).0, ErrorName::NotRunning);
    }
}

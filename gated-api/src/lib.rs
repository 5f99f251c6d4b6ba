//! gated's D-Bus API, written once (docs/dbus.md explains it): the bus
//! name and path, the named errors, a zbus proxy per interface, and the
//! records the answers carry. gated serves it; the kiosk app and gatectl
//! call it through these proxies, never by method names in strings.

mod proxies;
pub mod types;

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

/// A record (or any D-Bus value) as JSON, for `gatectl --json`: a dictionary
/// becomes an object, an array an array, a variant what it holds.
pub fn to_json<T: serde::Serialize + zbus::Type>(v: &T) -> serde_json::Value {
    use zbus::wire::serialized::Context;
    // Through the wire form, as a client would see it: one conversion for every record.
    let ctxt = Context::new(zbus::wire::LE, 0);
    let value = zbus::wire::to_bytes(ctxt, &zbus::as_variant::Serialize(v))
        .and_then(|data| data.deserialize::<zbus::OwnedVariant>().map(|(v, _)| v))
        .expect("a record encodes and decodes as a D-Bus value");
    value_to_json(&value)
}

/// A D-Bus value as JSON (see [`to_json`]).
pub fn value_to_json(v: &zbus::Variant<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    use zbus::Variant as V;
    match v {
        V::U8(n) => J::from(*n),
        V::Bool(b) => J::from(*b),
        V::I16(n) => J::from(*n),
        V::U16(n) => J::from(*n),
        V::I32(n) => J::from(*n),
        V::U32(n) => J::from(*n),
        V::I64(n) => J::from(*n),
        V::U64(n) => J::from(*n),
        V::F64(n) => J::from(*n),
        V::Str(s) => J::from(s.as_str()),
        V::Signature(s) => J::from(s.to_string()),
        V::ObjectPath(p) => J::from(p.as_str()),
        V::Variant(inner) => value_to_json(inner),
        V::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        V::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| match k {
                    V::Str(s) => (s.to_string(), value_to_json(v)),
                    other => (value_to_json(other).to_string(), value_to_json(v)),
                })
                .collect(),
        ),
        V::Structure(s) => J::Array(s.fields().iter().map(value_to_json).collect()),
        #[allow(unreachable_patterns)]
        other => J::from(format!("{other:?}")),
    }
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

    #[test]
    fn a_record_is_a_dictionary_and_its_json_has_the_field_names() {
        use types::{Decision, LaneView};
        assert_eq!(<LaneView as zbus::Type>::SIGNATURE.to_string(), "a{sv}");
        let lane = LaneView {
            name: "east-1".into(),
            group: "east".into(),
            direction: "both".into(),
            mode: "normal".into(),
            forced_by: None,
            peak: false,
            power_fail_mode: "open".into(),
            gate: "connected".into(),
            entries_today: 3,
            exits_today: 1,
            last: vec![Decision {
                at_ms: 5,
                medium: "qr".into(),
                outcome: "refused".into(),
                ticket_id: Some(7),
                persons: 0,
                reason: Some("used".into()),
            }],
        };
        let j = to_json(&lane);
        assert_eq!(j["name"], "east-1");
        assert_eq!(j["entries_today"], 3);
        assert_eq!(j["last"][0]["reason"], "used");
        assert_eq!(j["last"][0]["ticket_id"], 7);
        // An absent optional field is an absent key, not a null or a default.
        assert!(j.as_object().unwrap().get("forced_by").is_none());
        // And the record comes back whole from its wire form.
        let ctxt = zbus::wire::serialized::Context::new(zbus::wire::LE, 0);
        let data = zbus::wire::to_bytes(ctxt, &lane).unwrap();
        assert_eq!(data.deserialize::<LaneView>().unwrap().0, lane);
    }
}

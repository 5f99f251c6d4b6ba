//! The documents gated's answers carry as JSON text (docs/dbus.md, "JSON
//! documents"): one definition, serialized by gated and read by clients.
//! Fields may be added within an interface version; readers ignore unknown ones.

use serde::{Deserialize, Serialize};

/// `Kiosk1.Catalog`: what is sold on a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogView {
    pub scenic_area: String,
    pub date: String,
    pub sale_available: bool,
    /// The same list as `OutOfServiceReasons`.
    pub reasons: Vec<String>,
    pub products: Vec<ProductView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    pub id: u32,
    pub name: String,
    pub name_en: String,
    pub price_cents: u32,
    pub real_name: bool,
    /// ID cards to read per ticket: 1 for a real-name product, else 0.
    pub id_cards_per_ticket: u32,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotView {
    pub start_minute: u16,
    /// Exclusive; 0–1440 is all day.
    pub end_minute: u16,
    /// Unknown while offline.
    pub remaining: Option<u32>,
}

/// `Kiosk1.CreateOrder`, `CreateGroupOrder`: the order made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_no: String,
    /// What the order's pickup QR encodes.
    pub order_code: String,
    /// `unpaid`, `paid`, `expired`, `cancelled` or `refunded`.
    pub status: String,
    pub date: String,
    pub total_cents: u32,
    /// When an unpaid order expires and its quota is released (Unix ms).
    pub expires_at_ms: i64,
    /// Tickets issued (0 until paid).
    pub tickets: u32,
    pub phone_suffix: Option<String>,
}

/// One of `Kiosk1.Pickup`'s answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupView {
    pub order_no: String,
    pub date: String,
    pub tickets: usize,
    /// Not printed on this kiosk yet.
    pub unprinted: usize,
}

/// `Kiosk1.Query`: what a scanned ticket is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryView {
    pub ticket_id: u64,
    pub product: String,
    pub product_en: String,
    pub valid_from: String,
    pub valid_until: String,
    /// 0 = unlimited.
    pub entries_allowed: u16,
    /// Known when the central system answered.
    pub entries_used: Option<u32>,
    pub entries_left: Option<u32>,
    /// `valid`, `used`, `revoked`, `blocked`, `expired`, `not_yet_valid`.
    pub state: String,
    pub message_zh: String,
    pub message_en: String,
}

/// One of `Lane1.Lanes`'s answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneView {
    pub name: String,
    pub group: String,
    /// `entry`, `exit` or `both`.
    pub direction: String,
    /// `normal`, `free` or `locked`: the mode in force.
    pub mode: String,
    /// `fire alarm` or `power fallback` while the device forces the gate.
    pub forced_by: Option<String>,
    pub peak: bool,
    /// `open`, `free` or `locked`.
    pub power_fail_mode: String,
    /// The gate's connection, as in `Device1.Devices`.
    pub gate: String,
    pub entries_today: u64,
    pub exits_today: u64,
    /// The last decisions, oldest first (in memory only).
    pub last: Vec<Decision>,
}

/// What a lane did with one presentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: i64,
    /// `qr`, `id-card` or `ic-card`.
    pub medium: String,
    /// `admitted`, `refused`, `not_passed`, `alarm`, `gate_fault`, `free`, `error`.
    pub outcome: String,
    pub ticket_id: Option<u64>,
    pub persons: u32,
    /// For `refused`: the reason code.
    pub reason: Option<String>,
}

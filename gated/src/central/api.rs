//! Central API v1 on the wire: the JSON bodies of `docs/central-api.yaml`.
//! gated's client and central-sim both use these types, so the two cannot
//! drift apart silently; the document is checked against central-sim's routes.
//!
//! Conventions: binary values (keys, hashes, signatures) are lowercase hex;
//! times on the device's or server's clock are Unix milliseconds; validity
//! windows are the scenic area's civil time, `YYYY-MM-DDTHH:MM`.

use serde::{Deserialize, Serialize};

/// Every path below is relative to the configured base URL (`…/api/v1`).
pub mod paths {
    pub const ENROLL: &str = "enroll";
    pub const AUTH_CHALLENGE: &str = "auth/challenge";
    pub const AUTH_TOKEN: &str = "auth/token";
    pub const CATALOG: &str = "catalog";
    pub const AVAILABILITY: &str = "availability";
    pub const CHANGES: &str = "changes";
    pub const EVENTS: &str = "events";
    pub const ORDERS: &str = "orders";
    pub const PICKUP: &str = "pickup";
    pub const HEARTBEAT: &str = "heartbeat";
    /// `tickets/{ticket_id}`: one ticket's state (kiosk query).
    pub const TICKETS: &str = "tickets";
}

/// The body of every 4xx/5xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// Stable, machine-readable: `code_unknown`, `code_used`, `sold_out` …
    pub error: String,
    /// For a person (engineer or visitor-facing UI).
    pub message: String,
}

// ---- enrollment and authentication ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollRequest {
    /// The one-time pairing code the field engineer typed or scanned.
    pub code: String,
    /// What gated.toml names this device; must match what the code was made for.
    pub device_id: String,
    /// `lane` or `kiosk`; must match the code.
    pub role: String,
    /// The device's own Ed25519 public key (the private key never leaves it).
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollResponse {
    pub device_id: String,
    pub role: String,
    pub lane_groups: Vec<String>,
    pub signing_keys: Vec<SigningKey>,
    /// HMAC key for holder hashes of ID numbers. Secret.
    pub id_hash_key: String,
    pub access: AccessToken,
    pub server_time_ms: i64,
}

/// A ticket-signing public key of the central system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningKey {
    pub key_id: u16,
    pub public_key: String,
    /// Civil time; absent = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// A bearer token; the device gets a new one by signing a challenge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChallengeRequest {
    pub device_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    /// Random bytes to sign, prefixed by [`CHALLENGE_DOMAIN`].
    pub challenge: String,
    pub expires_at_ms: i64,
}

/// What a device signs: this domain, then the challenge bytes.
pub const CHALLENGE_DOMAIN: &[u8] = b"scenic-device-auth/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRequest {
    pub device_id: String,
    pub challenge: String,
    pub signature: String,
}

// ---- catalog ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    /// Changes whenever anything below changes.
    pub version: u64,
    pub scenic_area: String,
    pub signing_keys: Vec<SigningKey>,
    pub lane_groups: Vec<LaneGroup>,
    pub products: Vec<Product>,
    /// The enrolled devices of this scenic area, lanes and kiosks: the
    /// site's peers.
    #[serde(default)]
    pub devices: Vec<SiteDevice>,
    /// Devices no longer trusted: refused as peers even if gated.toml lists them.
    #[serde(default)]
    pub revoked_devices: Vec<String>,
    /// The site's approved maximum capacities (LB/T 034-2014); each lane
    /// group may have its own. `[occupancy]` in gated.toml overrides each.
    #[serde(default)]
    pub capacity: Capacity,
}

/// Approved maximum capacities of the site or of a lane group (absent: none).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capacity {
    /// Visitors admitted in one operating day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_capacity: Option<u32>,
    /// Visitors inside at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant_capacity: Option<u32>,
}

/// A device of the site as its peers reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SiteDevice {
    pub device_id: String,
    pub role: String,
    /// Its Ed25519 public key (hex), the one it enrolled with.
    pub public_key: String,
    /// `host:port` of its peer endpoint, as it advertised it (absent: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaneGroup {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub capacity: Capacity,
}

/// A product and its entry rules (see `gated::tickets::rules`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Product {
    pub id: u32,
    pub name: String,
    pub name_en: String,
    pub price_cents: u32,
    /// One ID card per ticket at sale.
    pub real_name: bool,
    /// Lane groups it admits to; empty = every group.
    pub lane_groups: Vec<String>,
    /// 0 = unlimited within the validity window.
    pub entries_allowed: u16,
    pub per_day_limit: u16,
    pub reentry_after_exit: bool,
    pub reentry_minutes: u16,
    /// Bit 0 = Monday … bit 6 = Sunday.
    pub weekdays: u8,
    /// Time slots a visitor chooses from at sale (minutes of the day).
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Slot {
    pub start_minute: u16,
    /// Exclusive.
    pub end_minute: u16,
}

/// `GET availability?date=YYYY-MM-DD`: remaining quota per product and slot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Availability {
    pub date: String,
    pub slots: Vec<SlotQuota>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotQuota {
    pub product_id: u32,
    pub start_minute: u16,
    pub capacity: u32,
    pub remaining: u32,
}

// ---- ticket deltas ----

/// `GET changes?cursor=N&limit=M&wait=S`: changes after `cursor`, in order.
/// With `wait` > 0 and nothing new, the server holds the request up to that
/// many seconds and answers as soon as something changes (long poll).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    /// Pass back as `cursor`; equals the request's cursor when nothing is new.
    pub next_cursor: u64,
    /// More pages follow right away (a full download in progress).
    pub more: bool,
    pub server_time_ms: i64,
}

/// One change; applying it twice is the same as once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A ticket was issued or changed (whole record).
    Ticket(TicketRecord),
    Revoke {
        ticket_id: u64,
        reason: String,
    },
    Block {
        ticket_id: u64,
        reason: String,
    },
    Unblock {
        ticket_id: u64,
    },
    /// A contactless card was bound to a ticket (`card_uid` absent: unbound).
    Card {
        ticket_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_uid: Option<String>,
    },
    /// The catalog changed: fetch `catalog` again.
    Catalog {
        version: u64,
    },
    /// A paid order (whole), for pickup at kiosks while offline; lanes ignore it.
    Order(Order),
    /// A passage some device of the site recorded (this one's too): every
    /// device counts a ticket's usage from all of them, each once by nonce.
    Passage(PassageRecord),
    /// A kind this gated does not know (a newer central system): skipped
    /// and counted, so the rest of the feed still applies. Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketRecord {
    pub id: u64,
    /// Printed code for tickets without a signed token (pre-printed stock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    pub product_id: u32,
    pub valid_from: String,
    pub valid_until: String,
    /// Absent = the product's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries_allowed: Option<u16>,
    pub group_size: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_uid: Option<String>,
}

/// One passage as the site shares it: in the change feed (`kind: passage`)
/// and between peers. The same nonce everywhere, so it counts once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassageRecord {
    pub nonce: String,
    /// The device that recorded it.
    pub device_id: String,
    /// Absent: persons the gate counted with no ticket (free mode, manual
    /// opening, power fallback, fire alarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    pub lane: String,
    #[serde(default)]
    pub lane_group: String,
    /// `entry` or `exit`.
    pub direction: String,
    pub persons: u32,
    /// The recording device's clock.
    pub at_ms: i64,
    /// Scenic-area civil time at the device (`YYYY-MM-DDTHH:MM`): what the
    /// entry rules count days and waits in.
    pub local_time: String,
    /// The ticket's entries when admitted (0 = unlimited): what the
    /// conflict rule counts against.
    #[serde(default)]
    pub entries_allowed: u32,
    /// Persons one use of the ticket admits (a group ticket's size).
    #[serde(default = "one")]
    pub group_size: u16,
    /// Its number in the recording device's own sequence (1, 2, 3 …; 0 =
    /// not numbered): peers follow a device by this cursor.
    #[serde(default)]
    pub seq: u64,
}

fn one() -> u16 {
    1
}

// ---- events ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventBatch {
    pub device_id: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Unique per event; the server keeps the first and acknowledges repeats.
    pub nonce: String,
    /// `passage`, `alarm`, `sale`, `print`, `pickup` …
    pub kind: String,
    pub device_time_ms: i64,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventAck {
    /// Stored now.
    pub accepted: Vec<String>,
    /// Already stored earlier (a retry): as good as accepted.
    pub duplicates: Vec<String>,
}

// ---- orders and pickup ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateOrder {
    /// The device's idempotency key: creating twice returns the same order.
    pub client_ref: String,
    /// Visit date, `YYYY-MM-DD`.
    pub date: String,
    pub items: Vec<OrderItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderItem {
    pub product_id: u32,
    pub start_minute: u16,
    pub quantity: u16,
    /// Holder hashes for a real-name product, one per ticket.
    #[serde(default)]
    pub holders: Vec<String>,
    /// One tour-group ticket admitting `quantity` persons instead of one
    /// ticket per person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Unpaid,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    /// As the API, the store and D-Bus spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Unpaid => "unpaid",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }
}

impl Order {
    /// The order as `Kiosk1` answers it.
    pub fn view(&self) -> gated_api::types::OrderView {
        gated_api::types::OrderView {
            order_no: self.order_no.clone(),
            order_code: self.order_code.clone(),
            status: self.status.as_str().to_owned(),
            date: self.date.clone(),
            total_cents: self.total_cents,
            expires_at_ms: self.expires_at_ms,
            tickets: self.tickets.len() as u32,
            phone_suffix: self.phone_suffix.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    pub order_no: String,
    /// What a QR for pickup encodes.
    pub order_code: String,
    pub status: OrderStatus,
    pub date: String,
    pub total_cents: u32,
    /// Unpaid orders expire (quota is released).
    pub expires_at_ms: i64,
    pub items: Vec<OrderItem>,
    /// Issued when paid.
    pub tickets: Vec<IssuedTicket>,
    /// Last four digits of the buyer's phone (pickup by order number + phone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_suffix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedTicket {
    pub ticket_id: u64,
    pub serial: String,
    pub product_id: u32,
    /// The QR text (`T1:…`).
    pub token: String,
    pub valid_from: String,
    pub valid_until: String,
    pub group_size: u16,
    pub price_cents: u32,
    /// Real-name tickets: the holder's hash (pickup by ID card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_hash: Option<String>,
}

/// `GET tickets/{ticket_id}`: what the central system knows of one ticket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketStatus {
    pub ticket: TicketRecord,
    /// Persons admitted so far, as uploaded by every lane.
    pub entries_used: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// `POST orders/{order_no}/pay`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum PayRequest {
    /// Show a QR the visitor scans with a wallet app.
    Qr,
    /// The visitor's payment code, scanned at the kiosk.
    Code { code: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payment {
    pub status: OrderStatus,
    /// For `qr`: what the kiosk shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    pub expires_at_ms: i64,
}

/// `GET pickup?order_code=…` | `?id_hash=…` | `?order_no=…&phone_suffix=NNNN`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pickup {
    /// Paid orders found (none: an empty list, not an error).
    pub orders: Vec<Order>,
}

// ---- heartbeat ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    pub device_id: String,
    pub role: String,
    pub mode: String,
    pub version: String,
    pub outbox_depth: u64,
    pub cursor: u64,
    pub device_time_ms: i64,
    /// The site network as this device sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeerReport>,
    /// The site's occupancy as this device counts it (to compare devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy: Option<OccupancyReport>,
    /// The image, its slots and the last update (docs/updates.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateReport>,
    /// What works and what does not (`Device1.Health`): a device that
    /// reaches the central system again says what it found meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
}

/// The health summary: the worst level, and one line per subsystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthReport {
    /// `green`, `amber` or `red`: the worst of the items.
    pub level: String,
    pub items: Vec<HealthItem>,
}

/// One subsystem of [`HealthReport`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthItem {
    /// `central`, `clock`, `disk`, `ups`, `printer`, `scanner north-1` …
    pub subsystem: String,
    /// The subsystem's name in Chinese, for the kiosk and the lane display.
    pub name_zh: String,
    /// `green`, `amber` or `red`.
    pub level: String,
    /// What was found ("online", "offline for 12 min: connection refused").
    pub detail: String,
    /// What to check, when not green (English, Chinese).
    #[serde(default)]
    pub check_en: String,
    #[serde(default)]
    pub check_zh: String,
}

/// The heartbeat's part on software updates.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateReport {
    /// The running image's version.
    pub image_version: String,
    /// The slot booted (`A`, `B`; empty: not known).
    pub booted_slot: String,
    /// What is happening now: `idle`, `downloading`, `waiting`,
    /// `installing`, `installed`, `rebooting`.
    pub operation: String,
    /// The last update: its version and result (`installing`, `installed`,
    /// `good`, `failed`, `rolled back`), why, and when (Unix ms). Absent
    /// before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<UpdateResult>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateResult {
    pub version: String,
    pub result: String,
    pub detail: String,
    pub at_ms: i64,
}

/// The central system's word on what this device should run: a bundle to
/// install when it runs another version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateOffer {
    pub version: String,
    /// On the central system's own origin.
    pub url: String,
    /// SHA-256 of the bundle file, hex.
    pub sha256: String,
}

/// The heartbeat's part on occupancy: the whole site, this device's view.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OccupancyReport {
    /// The operating day's first minute, civil time.
    pub day_start: String,
    pub entries: u64,
    pub exits: u64,
    pub inside: u64,
    pub percent: u32,
    pub tier: u8,
    /// Neither the central system nor any peer was reachable.
    pub isolated: bool,
}

/// The heartbeat's part on the site peers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerReport {
    /// Where the other devices reach this one (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Peers known, and reachable now.
    pub known: u32,
    pub reachable: u32,
    /// Passages of peers this device has not received yet (as far as it knows).
    pub lag: u64,
    /// Passages marked `conflict`.
    pub conflicts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeartbeatAck {
    pub server_time_ms: i64,
    /// The version this device should run (absent: no rollout for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateOffer>,
}

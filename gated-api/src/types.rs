//! The records gated's methods answer with (docs/dbus.md, "Records"): one
//! definition, sent by gated and read by clients. Each is a D-Bus dictionary
//! `a{sv}` keyed by field name, so `busctl` and any binding see its shape,
//! and a record can grow: fields may be added within an interface version,
//! readers ignore keys they do not know, and an absent optional field is an
//! absent key.

use zbus::{DeserializeDict, SerializeDict, Type};

/// `Kiosk1.Catalog`: what is sold on a date.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct CatalogView {
    pub scenic_area: String,
    pub date: String,
    pub sale_available: bool,
    /// The same list as `OutOfServiceReasons`.
    pub reasons: Vec<String>,
    pub products: Vec<ProductView>,
}

#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
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

#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct SlotView {
    pub start_minute: u16,
    /// Exclusive; 0–1440 is all day.
    pub end_minute: u16,
    /// Unknown while offline.
    pub remaining: Option<u32>,
}

/// `Kiosk1.CreateOrder`, `CreateGroupOrder`: the order made.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
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
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct PickupView {
    pub order_no: String,
    pub date: String,
    pub tickets: u32,
    /// Not printed on this kiosk yet.
    pub unprinted: u32,
}

/// `Kiosk1.Query`: what a scanned ticket is.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
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
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
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
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
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

/// `Lane1.OpenOnce`: what the gate reported, named by `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct GateOutcome {
    /// `passed`, `not_passed`, `alarm` or `fault`.
    pub outcome: String,
    /// For `passed` and `alarm`.
    pub persons: Option<u32>,
    /// For `alarm`: `tailgating`, `intrusion` or `reverse`.
    pub kind: Option<String>,
    /// For `fault`: what failed.
    pub why: Option<String>,
}

/// `Engineer1.Provision`: what the device received, without the secrets.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct Enrolled {
    pub device_id: String,
    pub role: String,
    pub central_url: String,
    pub lane_groups: Vec<String>,
    pub signing_key_ids: Vec<u16>,
    /// Says that the key was received and stored; the key itself is never shown.
    pub id_hash_key: String,
    pub token_expires_at_ms: i64,
    pub clock_skew_ms: i64,
}

/// `Device1.Health`: what works and what does not, one line per subsystem
/// (the central link, the clock, each device, the data partition, the UPS).
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct HealthView {
    /// `green`, `amber` or `red`: the worst of the items.
    pub level: String,
    pub items: Vec<HealthLine>,
}

/// One subsystem of [`HealthView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct HealthLine {
    /// `central`, `clock`, `disk`, `ups`, `printer`, `scanner north-1` …
    pub subsystem: String,
    pub name_zh: String,
    /// `green`, `amber` or `red`.
    pub level: String,
    /// What was found.
    pub detail: String,
    /// What to check when not green (empty when green).
    pub check_en: String,
    pub check_zh: String,
}

/// `Kiosk1.Setup`: enrolled, and what the device found right after.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct SetupResult {
    pub device_id: String,
    pub central_url: String,
    /// Site and lane group named by the setup code (empty: none).
    pub site: String,
    pub lane_groups: Vec<String>,
    pub clock_skew_ms: i64,
    pub health: HealthView,
}

/// `Device1.Fleet`: the site network as this device sees it.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct FleetView {
    /// Where it listens for peers and the address it advertises (absent:
    /// no site network, or not provisioned yet).
    pub listening: Option<String>,
    pub advertised: Option<String>,
    /// Its Ed25519 public key (hex): what `[[peers.device]]` on another
    /// device names it by.
    pub public_key: Option<String>,
    /// Passages of all peers not received yet, as far as they said.
    pub lag: u64,
    /// Passages marked `conflict` (a ticket admitted at two devices inside
    /// the propagation window).
    pub conflicts: u64,
    /// Peer connections refused since start (unknown or revoked keys,
    /// failed handshakes).
    pub refused: u64,
    /// Changes of kinds this gated does not know, skipped since start.
    pub skipped_changes: u64,
    pub peers: Vec<PeerView>,
}

/// One peer in [`FleetView`].
#[derive(Debug, Clone, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct PeerView {
    pub device_id: String,
    pub address: String,
    pub reachable: bool,
    /// Milliseconds since it last sent anything (absent: never).
    pub last_message_age_ms: Option<i64>,
    /// Its passages: its newest, the newest this device has, the difference.
    pub head: u64,
    pub cursor: u64,
    pub lag: u64,
    pub last_error: Option<String>,
}

/// `Device1.Occupancy`: visitors of the site and of its lane groups in the
/// operating day, from every device's passages, with the capacities.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct OccupancyView {
    /// The operating day's first minute, "YYYY-MM-DD HH:MM" in the site's zone.
    pub day_start: String,
    /// The whole site (`group` is empty).
    pub site: GroupOccupancy,
    /// Each lane group with passages today or a capacity of its own.
    pub groups: Vec<GroupOccupancy>,
    /// Kiosks sell no ticket for today (the site reached `stop_sales_at`);
    /// later dates still sell.
    pub sales_stopped: bool,
    /// What kiosks and lane displays show visitors (empty below the first tier).
    pub notice_zh: String,
    pub notice_en: String,
    /// Neither the central system nor any peer is reachable: the figures
    /// are this device's own view, and the capacities are held
    /// `margin_percent` lower.
    pub isolated: bool,
    pub margin_percent: u8,
}

/// One scope of [`OccupancyView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct GroupOccupancy {
    pub group: String,
    /// Persons in and out today, with and without tickets.
    pub entries: u64,
    pub exits: u64,
    /// Entries − exits, never below 0.
    pub inside: u64,
    /// More exits than entries were counted (`inside` was held at 0).
    pub clamped: bool,
    pub daily_capacity: Option<u32>,
    pub instant_capacity: Option<u32>,
    /// Of the capacities set, the fuller one, in percent.
    pub percent: u32,
    /// The highest tier reached (0: below the first).
    pub tier: u8,
    /// At its instantaneous capacity: entry lanes refuse new entries,
    /// unless a supervisor overrode that.
    pub full: bool,
    /// A supervisor lets this scope admit past its capacity: the reason
    /// given and who asked (absent: no override).
    pub override_reason: Option<String>,
}

/// `Engineer1.UpdateStatus`: the device's software, its A/B slots and the
/// update under way or last made (docs/updates.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct UpdateView {
    /// The running image's version (`IMAGE_VERSION` in os-release).
    pub image_version: String,
    /// The slot booted (its bootname, `A` or `B`; empty: RAUC not reachable).
    pub booted_slot: String,
    /// Why updates are not possible here (empty: RAUC answers).
    pub unavailable: String,
    /// `idle`, `downloading`, `waiting` (for a passage or a print to end,
    /// or for the mode to allow it), `installing`, `installed` (rebooting
    /// next), `rebooting`.
    pub operation: String,
    /// 0–100, and what RAUC says it is doing.
    pub progress_percent: u32,
    pub progress_message: String,
    /// When the reboot into the new slot happens: `now` or the quiet window
    /// (`02:00-05:00`).
    pub reboot: String,
    /// This boot's health check: `checking`, `good`, or why it failed.
    pub health: String,
    pub slots: Vec<UpdateSlot>,
    /// The last update: its version, `installing`, `installed`, `good`,
    /// `failed` or `rolled back`, in words why, and when (Unix ms).
    pub last_version: String,
    pub last_result: String,
    pub last_detail: String,
    pub last_at_ms: i64,
}

/// One root filesystem slot of [`UpdateView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct UpdateSlot {
    /// RAUC's name (`rootfs.0`) and the bootloader's (`A`).
    pub name: String,
    pub bootname: String,
    /// `booted`, `active` or `inactive`.
    pub state: String,
    /// `good` or `bad`, as the bootloader has it.
    pub boot_status: String,
    /// The version of the bundle last installed into it (empty: the factory image).
    pub version: String,
}

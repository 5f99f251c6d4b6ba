//! `gated.toml`: what this device is and what is attached to it.
//!
//! The file is read once at start. Anything wrong with it is refused before a
//! single subsystem starts, with the file, line, key and what is wrong, so a
//! field engineer can fix it from the message alone. `gatectl config check`
//! runs exactly this code.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hal::gate::ModbusAddress;
use serde::Deserialize;
use toml::Spanned;

/// Where the default configuration is installed by the image.
pub const DEFAULT_PATH: &str = "/etc/gated/gated.toml";

/// What this device does; decides which subsystems start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Self-service kiosk: sale, pickup, query.
    Kiosk,
    /// Entrance lane(s): validate, open, confirm, record.
    Lane,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Kiosk => "kiosk",
            Role::Lane => "lane",
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub role: Role,
    /// Names this device to the central system. May be left out: then the
    /// setup code scanned at enrollment names it, and it is read back from
    /// the credentials at every start (`Config::resolve_device_id`).
    #[serde(default = "no_device_id")]
    pub device_id: Spanned<String>,
    /// Where gated keeps its database and state (systemd's StateDirectory).
    #[serde(default = "default_state_dir")]
    pub state_dir: Spanned<PathBuf>,
    /// The scenic area's time zone: validity windows, days and time slots
    /// are in its civil time.
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    /// When the scenic area's operating day begins ("HH:MM", its time zone):
    /// entries today, daily limits and occupancy count from it.
    #[serde(default = "default_day_start")]
    pub day_start: Spanned<String>,
    pub central: Central,
    #[serde(default)]
    pub devices: Devices,
    #[serde(default)]
    pub lanes: BTreeMap<String, Spanned<Lane>>,
    #[serde(default)]
    pub power: Power,
    #[serde(default)]
    pub fire: Fire,
    #[serde(default)]
    pub peak: Peak,
    #[serde(default)]
    pub kiosk: KioskSettings,
    /// The other devices of the site, exchanging passages directly.
    #[serde(default)]
    pub peers: Peers,
    /// Capacities of the site and its lane groups, and what each tier does.
    #[serde(default)]
    pub occupancy: Occupancy,
    /// Software updates through RAUC and the health check after one.
    #[serde(default)]
    pub update: Update,
    /// Spoken prompts at the lanes (none: the lanes are silent).
    pub voice: Option<Spanned<Voice>>,
}

/// `[voice]`: spoken prompts at the lanes through ALSA (docs/voice.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    /// The ALSA playback device.
    #[serde(default = "default_voice_device")]
    pub device: Spanned<String>,
    /// `zh`, `en` or `both` (Chinese, then English).
    #[serde(default = "default_voice_language")]
    pub language: Spanned<String>,
    /// Percent of the recorded level.
    #[serde(default = "default_voice_volume")]
    pub volume: Spanned<u8>,
    /// "HH:MM-HH:MM" (the scenic area's time) when `quiet_volume` applies.
    pub quiet_hours: Option<Spanned<String>>,
    /// Percent during quiet hours; 0 is silent.
    #[serde(default = "default_quiet_volume")]
    pub quiet_volume: Spanned<u8>,
    /// The default prompts shipped with gated.
    #[serde(default = "default_voice_sounds")]
    pub sounds: Spanned<PathBuf>,
    /// Recorded prompts here replace the defaults of the same name.
    #[serde(default = "default_voice_overrides")]
    pub overrides: Spanned<PathBuf>,
}

fn no_device_id() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}

impl Config {
    /// Takes the device id from the enrollment when gated.toml names none.
    /// Unreadable credentials (gatectl run by an engineer) leave it empty.
    pub fn resolve_device_id(&mut self) {
        if self.device_id.get_ref().is_empty()
            && let Ok(Some(c)) =
                crate::central::identity::load_credentials(self.state_dir.get_ref())
        {
            self.device_id = Spanned::new(0..0, c.device_id);
        }
    }

    /// The device id is not in gated.toml: enrollment names it.
    pub fn device_id_from_enrollment(&self) -> bool {
        self.device_id.span() == (0..0)
    }
}

fn default_voice_device() -> Spanned<String> {
    Spanned::new(0..0, "default".into())
}
fn default_voice_language() -> Spanned<String> {
    Spanned::new(0..0, "zh".into())
}
fn default_voice_volume() -> Spanned<u8> {
    Spanned::new(0..0, 100)
}
fn default_quiet_volume() -> Spanned<u8> {
    Spanned::new(0..0, 0)
}
fn default_voice_sounds() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/usr/share/gated/sounds"))
}
fn default_voice_overrides() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/gated/sounds"))
}

impl Voice {
    /// Quiet hours as minutes of the day, `[from, to)`; may wrap midnight.
    pub fn quiet(&self) -> Option<(u16, u16)> {
        parse_window(self.quiet_hours.as_ref()?)
    }
}

/// `[update]`: when a new slot counts as healthy, and when to reboot into it
/// (docs/updates.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// After booting a new slot, how long gated may take to become healthy
    /// (ready, store open, every configured device answered, the central
    /// link up if required) before it reboots and the bootloader falls back.
    #[serde(default = "default_health_deadline_s")]
    pub health_deadline_s: Spanned<u32>,
    /// A new slot is healthy only once the central system answered.
    #[serde(default)]
    pub health_requires_central: bool,
    /// Where the reboot into an installed update waits for ("HH:MM-HH:MM",
    /// the scenic area's time), unless the engineer asks for it at once.
    pub quiet_window: Option<Spanned<String>>,
    /// The running image's version is `IMAGE_VERSION` (else `VERSION_ID`) here.
    #[serde(default = "default_os_release")]
    pub os_release: Spanned<PathBuf>,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            health_deadline_s: default_health_deadline_s(),
            health_requires_central: false,
            quiet_window: None,
            os_release: default_os_release(),
        }
    }
}

fn default_health_deadline_s() -> Spanned<u32> {
    Spanned::new(0..0, 300)
}

fn default_os_release() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/os-release"))
}

impl Update {
    /// The quiet window as minutes of the day, `[from, to)`; may wrap midnight.
    pub fn window(&self) -> Option<(u16, u16)> {
        parse_window(self.quiet_window.as_ref()?)
    }
}

/// `[occupancy]`: the approved maximum capacities (LB/T 034-2014) of the
/// whole site and of lane groups, the warning tiers, and what they do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occupancy {
    /// Visitors the site may admit in one operating day (none: not set).
    pub daily_capacity: Option<Spanned<u32>>,
    /// Visitors the site may hold at once (none: not set).
    pub instant_capacity: Option<Spanned<u32>>,
    /// Warning tiers, percent of capacity, ascending.
    #[serde(default = "default_tiers")]
    pub tiers: Spanned<Vec<u8>>,
    /// The tier at which kiosks stop selling tickets for today (later
    /// dates still sell).
    #[serde(default = "default_stop_sales_at")]
    pub stop_sales_at: Spanned<u8>,
    /// At the instantaneous capacity: a ticket already admitted today may
    /// come back in (it was counted out when it left).
    #[serde(default = "yes")]
    pub admit_reentry_when_full: bool,
    /// Visitors still counted inside when the operating day ends are
    /// checked out (the new day starts empty); false: they carry over
    /// (a park with hotels).
    #[serde(default = "yes")]
    pub check_out_at_day_end: bool,
    /// With neither the central system nor any peer reachable, this device
    /// sees only its own passages: it holds the capacities this many
    /// percent lower.
    #[serde(default = "default_offline_margin")]
    pub offline_margin: Spanned<u8>,
    /// Capacities of single lane groups (scenic spots inside the site).
    #[serde(default)]
    pub groups: BTreeMap<String, Spanned<GroupCapacity>>,
}

impl Default for Occupancy {
    fn default() -> Self {
        Occupancy {
            daily_capacity: None,
            instant_capacity: None,
            tiers: default_tiers(),
            stop_sales_at: default_stop_sales_at(),
            admit_reentry_when_full: true,
            check_out_at_day_end: true,
            offline_margin: default_offline_margin(),
            groups: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCapacity {
    pub daily_capacity: Option<u32>,
    pub instant_capacity: Option<u32>,
}

fn default_tiers() -> Spanned<Vec<u8>> {
    Spanned::new(0..0, vec![80, 90, 95, 100])
}

fn default_offline_margin() -> Spanned<u8> {
    Spanned::new(0..0, 10)
}

fn default_stop_sales_at() -> Spanned<u8> {
    Spanned::new(0..0, 80)
}

/// A kiosk's sale limits and its service PIN: gated enforces them and the
/// kiosk app reads them over D-Bus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskSettings {
    /// The service menu's PIN as `gatectl pin-hash` prints it (salted and
    /// iterated); without it the service menu does not open.
    pub service_pin_hash: Option<Spanned<String>>,
    /// How many days ahead tickets are sold, today included (1–90).
    #[serde(default = "default_horizon")]
    pub sale_horizon_days: Spanned<u16>,
    /// Tickets of one product in one order (1–50).
    #[serde(default = "default_max_quantity")]
    pub max_quantity: Spanned<u16>,
}

impl Default for KioskSettings {
    fn default() -> Self {
        KioskSettings {
            service_pin_hash: None,
            sale_horizon_days: default_horizon(),
            max_quantity: default_max_quantity(),
        }
    }
}

fn default_horizon() -> Spanned<u16> {
    Spanned::new(0..0, 14)
}

fn default_max_quantity() -> Spanned<u16> {
    Spanned::new(0..0, 20)
}

impl KioskSettings {
    /// The configured PIN hash; `None` when none is set. Validation already
    /// refused a malformed one.
    pub fn pin_hash(&self) -> Option<crate::service_pin::PinHash> {
        self.service_pin_hash
            .as_ref()
            .and_then(|h| crate::service_pin::PinHash::parse(h.get_ref()).ok())
    }
}

/// The fire alarm: every gate's fire input (Modbus or GPIO), and a line of
/// its own for a device without gates (a kiosk).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fire {
    /// A fire-alarm contact on `/dev/gpiochipN:LINE`.
    pub gpio: Option<Spanned<String>>,
    /// The line is low in an alarm (default: a normally closed contact
    /// that opens, so the pulled-up line goes high).
    #[serde(default)]
    pub gpio_active_low: bool,
    /// After the input clears, the gates stay open until an engineer runs
    /// `gatectl alarm reset` (drop-arm turnstiles need their arms lifted).
    #[serde(default)]
    pub reset_by_engineer: bool,
}

/// Peak mode (switched by an operator): what it relaxes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peak {
    /// Anti-passback off: a ticket may enter again without an exit first.
    #[serde(default = "yes")]
    pub ignore_exit_first: bool,
    /// No minimum wait between a ticket's entries.
    #[serde(default = "yes")]
    pub ignore_reentry_wait: bool,
}

impl Default for Peak {
    fn default() -> Self {
        Peak {
            ignore_exit_first: true,
            ignore_reentry_wait: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// Where gated learns whether the appliance is on mains or on battery
/// (at most one source; none = not watched).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// NUT's upsd: `HOST:PORT[/UPSNAME]`.
    pub nut: Option<Spanned<String>>,
    /// UPower on the system bus.
    #[serde(default)]
    pub upower: bool,
    /// A power-fail line: `/dev/gpiochipN:LINE` (a UPS HAT's "power lost"
    /// output, an industrial DC-UPS's "AC fail" contact).
    pub gpio: Option<Spanned<String>>,
    /// The line is low when mains is lost (an open collector to GND).
    #[serde(default)]
    pub gpio_active_low: bool,
    /// How often NUT is asked.
    #[serde(default = "default_power_poll_ms")]
    pub poll_ms: u64,
    /// Mains must stay lost this long before the lanes go to their
    /// power-fail mode (brownouts flicker).
    #[serde(default = "default_power_debounce_ms")]
    pub debounce_ms: u64,
    /// On battery this long, the device shuts down (0 = only when the
    /// battery is low or the UPS orders it).
    #[serde(default = "default_power_grace_s")]
    pub grace_s: u64,
    /// At or below this charge (%), the battery counts as low even when the
    /// UPS does not say so.
    #[serde(default = "default_power_low_percent")]
    pub low_percent: f64,
}

impl Default for Power {
    fn default() -> Self {
        Power {
            nut: None,
            upower: false,
            gpio: None,
            gpio_active_low: false,
            poll_ms: default_power_poll_ms(),
            debounce_ms: default_power_debounce_ms(),
            grace_s: default_power_grace_s(),
            low_percent: default_power_low_percent(),
        }
    }
}

/// `/dev/gpiochipN:LINE` → (chip, line).
pub fn gpio_line(spec: &str) -> Result<(String, u32), String> {
    let (chip, line) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{spec:?}: expected /dev/gpiochipN:LINE"))?;
    let line = line
        .parse()
        .map_err(|_| format!("{spec:?}: the line after ':' must be a number"))?;
    Ok((chip.to_owned(), line))
}

fn default_power_poll_ms() -> u64 {
    500
}
fn default_power_debounce_ms() -> u64 {
    2000
}
fn default_power_grace_s() -> u64 {
    600
}
fn default_power_low_percent() -> f64 {
    20.0
}

impl Config {
    /// The scenic area's time zone (validated when the file was loaded).
    /// The operating day (validated at load; the default if unreadable).
    pub fn operating_day(&self) -> crate::tickets::rules::OperatingDay {
        parse_hhmm(self.day_start.get_ref())
            .map(|start| crate::tickets::rules::OperatingDay { start })
            .unwrap_or_default()
    }

    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(self.timezone.get_ref()).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

fn default_day_start() -> Spanned<String> {
    Spanned::new(0..0, "04:00".to_owned())
}

/// "HH:MM-HH:MM" as minutes of the day, `[from, to)`.
fn parse_window(w: &Spanned<String>) -> Option<(u16, u16)> {
    let (a, b) = w.get_ref().split_once('-')?;
    Some((parse_hhmm(a.trim())?, parse_hhmm(b.trim())?))
}

/// Whether `minute` of the day lies in `[from, to)`, which may wrap midnight.
pub fn in_window(minute: u16, (from, to): (u16, u16)) -> bool {
    if from < to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    }
}

/// Minutes after midnight of "HH:MM".
fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && m.to_string().len() <= 2).then_some(h * 60 + m)
}

fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Asia/Shanghai".to_owned())
}

fn default_state_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/var/lib/gated"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Central {
    /// Base URL of the central system's API v1.
    pub url: Spanned<String>,
    /// PEM file of the CA that signs the central system's certificate; when
    /// absent the system's roots are used.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// How long the central system may hold a request for changes (long
    /// poll); news reaches the device as soon as it exists.
    #[serde(default = "default_long_poll_s")]
    pub long_poll_s: u16,
    /// Seconds between heartbeats (status, outbox depth, clock).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u16,
}

/// `[peers]`: this device's endpoint for the other devices of the site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    /// Where this device listens for its peers (`host:port`; port 0 = any
    /// free port); `""` turns the site network off for this device.
    #[serde(default = "default_peer_listen")]
    pub listen: Spanned<String>,
    /// The address the other devices dial (`host:port`), told to the
    /// central system; by default this device's address on the way to the
    /// central system, with the port it listens on.
    pub advertise: Option<Spanned<String>>,
    /// Devices of the site known before the central system is reachable
    /// (a site installed offline); the catalog adds the rest.
    #[serde(default, rename = "device")]
    pub devices: Vec<Spanned<StaticPeer>>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            listen: default_peer_listen(),
            advertise: None,
            devices: Vec::new(),
        }
    }
}

fn default_peer_listen() -> Spanned<String> {
    Spanned::new(0..0, "0.0.0.0:7447".to_owned())
}

/// `[[peers.device]]`: one device of the site, written down by hand.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPeer {
    pub device_id: String,
    /// `host:port` of its peer endpoint.
    pub address: String,
    /// Its Ed25519 public key, 64 hex digits (`gatectl status` shows it).
    pub public_key: String,
}

fn default_long_poll_s() -> u16 {
    25
}

fn default_heartbeat_s() -> u16 {
    30
}

/// Devices attached to this unit, by family; lanes refer to them by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// The kiosk's thermal ticket printer (ESC/POS).
    pub printer: Option<Spanned<SerialDevice>>,
    #[serde(default)]
    pub scanners: BTreeMap<String, Spanned<Scanner>>,
    #[serde(default)]
    pub id_readers: BTreeMap<String, Spanned<SerialDevice>>,
    #[serde(default)]
    pub ic_readers: BTreeMap<String, Spanned<SerialDevice>>,
    #[serde(default)]
    pub gates: BTreeMap<String, Spanned<Gate>>,
    /// Lane displays: text panels taking one GB18030 line per message.
    #[serde(default)]
    pub displays: BTreeMap<String, Spanned<SerialDevice>>,
}

/// A device on a serial port (or a USB printer's byte stream).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialDevice {
    pub port: Spanned<PathBuf>,
    pub baud: Option<Spanned<u32>>,
}

/// A QR/barcode scanner: serial (one code per line) or a USB keyboard-type
/// scanner read through evdev. Exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanner {
    pub port: Option<Spanned<PathBuf>>,
    pub baud: Option<Spanned<u32>>,
    pub evdev: Option<Spanned<PathBuf>>,
}

impl Scanner {
    /// Where hal reads it (None only for a table validation refuses).
    pub fn hal_port(&self) -> Option<hal::scanner::ScannerPort> {
        match (&self.port, &self.evdev) {
            (Some(p), _) => Some(hal::scanner::ScannerPort::Serial {
                path: p.get_ref().clone(),
                baud: self.baud.as_ref().map_or(9600, |b| *b.get_ref()),
            }),
            (None, Some(e)) => Some(hal::scanner::ScannerPort::Evdev {
                path: e.get_ref().clone(),
            }),
            (None, None) => None,
        }
    }
}

/// A turnstile or wing gate controller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// A Modbus controller: `tcp://HOST:PORT` or `rtu:/dev/PATH@BAUD`.
    pub modbus: Option<Spanned<String>>,
    /// Or dry contacts on GPIO lines: a gate file naming the chip, lines and
    /// polarity (format: hal/README.md, "Gates").
    pub gpio: Option<Spanned<PathBuf>>,
    /// Modbus unit (slave) id.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Register map: `lot` (LOT Group's turnstile controllers), `coil-example`,
    /// or the path of a map file.
    #[serde(default = "default_map")]
    pub map: Spanned<String>,
    /// How often counters and inputs are read.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// How long an authorisation waits for its passages.
    #[serde(default = "default_passage_timeout_ms")]
    pub passage_timeout_ms: u64,
    /// After the last authorised passage, how long another one the same way
    /// still counts as tailgating (wing gates; 0 for turnstiles).
    #[serde(default = "default_tailgate_window_ms")]
    pub tailgate_window_ms: u64,
}

fn default_poll_ms() -> u64 {
    50
}
fn default_passage_timeout_ms() -> u64 {
    10_000
}
fn default_tailgate_window_ms() -> u64 {
    300
}

fn default_map() -> Spanned<String> {
    Spanned::new(0..0, "lot".to_owned())
}

fn default_unit() -> u8 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneDirection {
    Entry,
    Exit,
    /// One lane used both ways (the direction comes from the reader used).
    Both,
}

impl LaneDirection {
    /// As in gated.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            LaneDirection::Entry => "entry",
            LaneDirection::Exit => "exit",
            LaneDirection::Both => "both",
        }
    }
}

/// One entrance lane: readers, a gate, a direction and a lane group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lane {
    pub direction: LaneDirection,
    /// Lane group, as products name the groups they admit to.
    pub group: String,
    pub gate: Spanned<String>,
    #[serde(default)]
    pub scanners: Vec<Spanned<String>>,
    /// With direction "both": the scanners on the exit side (the others and
    /// the card readers admit entries).
    #[serde(default)]
    pub exit_scanners: Vec<Spanned<String>>,
    pub id_reader: Option<Spanned<String>>,
    pub ic_reader: Option<Spanned<String>>,
    /// The display that tells visitors what happened.
    pub display: Option<Spanned<String>>,
    /// What the gate does on UPS power: "open" (wing gates stay open),
    /// "free" (turnstile arms turn freely), both the controller's free
    /// passage, or "locked" (gates that stay where they are).
    #[serde(default)]
    pub power_fail_mode: PowerFailMode,
    /// An exit-only lane where visitors leave without a ticket: gated keeps
    /// the exit side unlocked and counts each passage (occupancy); entries
    /// through it are still intrusions. Readers are optional there.
    #[serde(default)]
    pub free_exit: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerFailMode {
    #[default]
    Open,
    Free,
    Locked,
}

impl PowerFailMode {
    /// As in gated.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerFailMode::Open => "open",
            PowerFailMode::Free => "free",
            PowerFailMode::Locked => "locked",
        }
    }

    pub fn gate_mode(self) -> hal::gate::GateMode {
        match self {
            PowerFailMode::Open | PowerFailMode::Free => hal::gate::GateMode::Free,
            PowerFailMode::Locked => hal::gate::GateMode::Locked,
        }
    }
}

/// Whether device nodes must exist when the configuration is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCheck {
    /// gated at start, and `gatectl config check` on the device.
    Present,
    /// `gatectl config check --skip-devices` on a laptop before deployment.
    Skip,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<(usize, usize)>,
    /// Dotted key, e.g. `devices.printer.port`; empty for the file as a whole.
    pub key: String,
    pub message: String,
    /// The offending source line with a caret under the span.
    snippet: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.line {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a configuration file (at least one problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Builds problems with positions from byte spans of one source text.
struct Reporter<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Reporter<'a> {
    fn problem(&self, key: &str, span: Option<Range<usize>>, message: String) -> Problem {
        let span = span.filter(|s| s.end > 0 || s.start > 0);
        let (line, snippet) = match span {
            Some(span) => {
                let (line, col) = line_col(self.source, span.start);
                (Some((line, col)), Some(snippet(self.source, span)))
            }
            None => (None, None),
        };
        Problem {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message,
            snippet,
        }
    }

    fn push(&mut self, key: &str, span: Range<usize>, message: String) {
        let p = self.problem(key, Some(span), message);
        self.problems.push(p);
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn snippet(source: &str, span: Range<usize>) -> String {
    let start = span.start.min(source.len());
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let text = &source[line_start..line_end];
    let (line_no, col) = line_col(source, start);
    let width = source[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let gutter = line_no.to_string().len();
    format!(
        "{:gutter$} |\n{line_no} | {text}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path, devices: DeviceCheck) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
            snippet: None,
        }],
    })?;
    parse(path, &source, devices)
}

/// Parses and validates `source`, reporting problems against `path`.
pub fn parse(path: &Path, source: &str, devices: DeviceCheck) -> Result<Config, ConfigError> {
    let mut reporter = Reporter {
        file: path,
        source,
        problems: Vec::new(),
    };
    let config = match deserialize(source) {
        Ok(c) => c,
        Err((key, span, message)) => {
            let p = reporter.problem(&key, span, message);
            return Err(ConfigError { problems: vec![p] });
        }
    };
    validate(&config, devices, &mut reporter);
    // In file order; problems of the file as a whole (no line) last.
    reporter
        .problems
        .sort_by_key(|p| p.line.map_or((usize::MAX, 0), |l| l));
    if reporter.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: reporter.problems,
        })
    }
}

/// Runs serde over the TOML and turns its error into (key, span, message).
fn deserialize(source: &str) -> Result<Config, (String, Option<Range<usize>>, String)> {
    let de = toml::de::Deserializer::parse(source)
        .map_err(|e| (String::new(), e.span(), e.message().to_owned()))?;
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut key = dotted_key(err.path());
        let inner = err.into_inner();
        let mut message = inner.message().to_owned();
        // serde reports a missing key against its parent table; name the key itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            key = if key.is_empty() {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            };
            message = "required key is missing".to_owned();
        } else if let Some(rest) = message.strip_prefix("unknown field `") {
            // The path already ends with the unknown key; keep serde's list of valid keys.
            message = format!("unknown key `{rest}");
        }
        (key, inner.span(), message)
    })
}

/// `devices.scanners.qr.port`, without the internal names `toml::Spanned` adds.
fn dotted_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        let part = match segment {
            Segment::Map { key } if key.starts_with("$__serde_spanned") => continue,
            Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
            Segment::Seq { index } => format!("[{index}]"),
            Segment::Unknown => continue,
        };
        if !key.is_empty() && !part.starts_with('[') {
            key.push('.');
        }
        key += &part;
    }
    key
}

fn validate(config: &Config, devices: DeviceCheck, r: &mut Reporter<'_>) {
    let id = config.device_id.get_ref();
    // Absent (empty, no span) is allowed: the setup code names the device.
    let id_ok = (!id.is_empty() || config.device_id_from_enrollment())
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        r.push(
            "device_id",
            config.device_id.span(),
            format!("`{id}` is not a device id: use 1 to 64 letters, digits, `-` or `_`"),
        );
    }

    if let Err(e) = jiff::tz::TimeZone::get(config.timezone.get_ref()) {
        r.push(
            "timezone",
            config.timezone.span(),
            format!(
                "`{}` is not a known time zone ({e}); for example \"Asia/Shanghai\"",
                config.timezone.get_ref()
            ),
        );
    }

    if parse_hhmm(config.day_start.get_ref()).is_none() {
        r.push(
            "day_start",
            config.day_start.span(),
            format!(
                "`{}` is not a time of day: write \"HH:MM\", for example \"04:00\"",
                config.day_start.get_ref()
            ),
        );
    }

    let state_dir = config.state_dir.get_ref();
    if !state_dir.is_absolute() {
        r.push(
            "state_dir",
            config.state_dir.span(),
            format!("`{}` must be an absolute path", state_dir.display()),
        );
    }

    validate_url(&config.central.url, r);
    // Like device nodes, the CA file is the device's: not checked on a laptop.
    if matches!(devices, DeviceCheck::Present)
        && let Some(ca) = &config.central.ca_file
        && !ca.get_ref().is_file()
    {
        r.push(
            "central.ca_file",
            ca.span(),
            format!("{} does not exist or is not a file", ca.get_ref().display()),
        );
    }

    validate_peers(&config.peers, r);
    validate_devices(&config.devices, devices, r);
    let sources = [
        config.power.nut.is_some(),
        config.power.upower,
        config.power.gpio.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        // Two sources: at least one is `nut` or `gpio`, which has a line.
        let (key, at) = match (&config.power.nut, &config.power.gpio) {
            (Some(n), _) => ("power.nut", n.span()),
            (None, Some(g)) => ("power.gpio", g.span()),
            (None, None) => unreachable!("only upower is a flag"),
        };
        r.push(
            key,
            at,
            "choose one UPS source: `nut`, `upower = true` or `gpio`, not several".into(),
        );
    }
    if let Some(g) = &config.power.gpio
        && let Err(e) = gpio_line(g.get_ref())
    {
        r.push("power.gpio", g.span(), e);
    }
    if let Some(g) = &config.fire.gpio
        && let Err(e) = gpio_line(g.get_ref())
    {
        r.push("fire.gpio", g.span(), e);
    }
    if let Some(nut) = &config.power.nut
        && let Err(e) = nut.get_ref().parse::<hal::power::nut::NutTarget>()
    {
        r.push("power.nut", nut.span(), e);
    }

    match config.role {
        Role::Kiosk => {
            if config.devices.printer.is_none() {
                r.problems.push(r.problem(
                    "devices.printer",
                    None,
                    "a kiosk needs a ticket printer: add a [devices.printer] table".into(),
                ));
            }
            if let Some((name, lane)) = config.lanes.iter().next() {
                r.push(
                    &format!("lanes.{name}"),
                    lane.span(),
                    "lanes are configured, but role is \"kiosk\": remove them or set role = \"lane\""
                        .into(),
                );
            }
        }
        Role::Lane => {
            if config.lanes.is_empty() {
                r.problems.push(r.problem(
                    "lanes",
                    None,
                    "role is \"lane\" but no lane is configured: add a [lanes.NAME] table".into(),
                ));
            }
        }
    }
    for (name, lane) in &config.lanes {
        validate_lane(name, lane.get_ref(), &config.devices, r);
    }
    validate_kiosk(&config.kiosk, r);
    validate_occupancy(&config.occupancy, r);
    validate_update(&config.update, r);
    if let Some(v) = &config.voice {
        validate_voice(v.get_ref(), r);
    }
}

fn validate_occupancy(o: &Occupancy, r: &mut Reporter<'_>) {
    let tiers = o.tiers.get_ref();
    if tiers.is_empty()
        || tiers.windows(2).any(|w| w[0] >= w[1])
        || tiers.iter().any(|t| !(1..=100).contains(t))
    {
        r.push(
            "occupancy.tiers",
            o.tiers.span(),
            format!("{tiers:?} are not tiers: write ascending percentages from 1 to 100, for example [80, 90, 95, 100]"),
        );
    }
    let margin = *o.offline_margin.get_ref();
    if margin >= 100 {
        r.push(
            "occupancy.offline_margin",
            o.offline_margin.span(),
            format!("{margin} % leaves no capacity: use 0 to 99"),
        );
    }
    let stop = *o.stop_sales_at.get_ref();
    if !(1..=100).contains(&stop) {
        r.push(
            "occupancy.stop_sales_at",
            o.stop_sales_at.span(),
            format!("{stop} is outside 1–100 (percent of capacity)"),
        );
    }
    for (key, c) in [
        ("daily_capacity", &o.daily_capacity),
        ("instant_capacity", &o.instant_capacity),
    ] {
        if let Some(c) = c
            && *c.get_ref() == 0
        {
            r.push(
                &format!("occupancy.{key}"),
                c.span(),
                "0 admits nobody: leave it out to set no capacity".into(),
            );
        }
    }
}

fn validate_voice(v: &Voice, r: &mut Reporter<'_>) {
    if !["zh", "en", "both"].contains(&v.language.get_ref().as_str()) {
        r.push(
            "voice.language",
            v.language.span(),
            format!(
                "{:?}: write \"zh\", \"en\" or \"both\"",
                v.language.get_ref()
            ),
        );
    }
    for (key, pct) in [("volume", &v.volume), ("quiet_volume", &v.quiet_volume)] {
        if *pct.get_ref() > 100 {
            r.push(
                &format!("voice.{key}"),
                pct.span(),
                format!(
                    "{}: a percentage of the recorded level, 0–100",
                    pct.get_ref()
                ),
            );
        }
    }
    if let Some(w) = &v.quiet_hours
        && (v.quiet().is_none() || v.quiet().is_some_and(|(a, b)| a == b))
    {
        r.push(
            "voice.quiet_hours",
            w.span(),
            format!(
                "{:?} is not a window: write \"HH:MM-HH:MM\" with two different times, for example \"21:00-07:00\"",
                w.get_ref()
            ),
        );
    }
}

fn validate_update(u: &Update, r: &mut Reporter<'_>) {
    if let Some(w) = &u.quiet_window
        && (u.window().is_none() || u.window().is_some_and(|(a, b)| a == b))
    {
        r.push(
            "update.quiet_window",
            w.span(),
            format!(
                "{:?} is not a window: write \"HH:MM-HH:MM\" with two different times, for example \"02:00-05:00\"",
                w.get_ref()
            ),
        );
    }
    let d = *u.health_deadline_s.get_ref();
    if !(2..=600).contains(&d) {
        r.push(
            "update.health_deadline_s",
            u.health_deadline_s.span(),
            format!("{d} s is outside 2–600: a new slot needs time to start its devices, and a bad one must not keep a lane down (the update watchdog reboots it 15 min after boot anyway)"),
        );
    }
}

fn validate_kiosk(k: &KioskSettings, r: &mut Reporter<'_>) {
    if let Some(h) = &k.service_pin_hash
        && let Err(e) = crate::service_pin::PinHash::parse(h.get_ref())
    {
        r.push("kiosk.service_pin_hash", h.span(), e);
    }
    let days = *k.sale_horizon_days.get_ref();
    if !(1..=90).contains(&days) {
        r.push(
            "kiosk.sale_horizon_days",
            k.sale_horizon_days.span(),
            format!("{days} is outside 1–90"),
        );
    }
    let max = *k.max_quantity.get_ref();
    if !(1..=50).contains(&max) {
        r.push(
            "kiosk.max_quantity",
            k.max_quantity.span(),
            format!("{max} is outside 1–50"),
        );
    }
}

fn validate_peers(p: &Peers, r: &mut Reporter<'_>) {
    let listen = p.listen.get_ref();
    if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
        r.push(
            "peers.listen",
            p.listen.span(),
            format!(
                "`{listen}` is not an address and port, like \"0.0.0.0:7447\" (or \"\" for none)"
            ),
        );
    }
    let host_port = |a: &str| {
        a.rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n != 0))
    };
    if let Some(a) = &p.advertise
        && !host_port(a.get_ref())
    {
        r.push(
            "peers.advertise",
            a.span(),
            format!(
                "`{}` is not a host and port, like \"192.168.1.20:7447\"",
                a.get_ref()
            ),
        );
    }
    for d in &p.devices {
        let dev = d.get_ref();
        if !host_port(&dev.address) {
            r.push(
                "peers.device.address",
                d.span(),
                format!(
                    "`{}` is not a host and port, like \"192.168.1.21:7447\"",
                    dev.address
                ),
            );
        }
        if crate::peers::parse_key(&dev.public_key).is_none() {
            r.push(
                "peers.device.public_key",
                d.span(),
                format!("the public key of `{}` is not 64 hex digits", dev.device_id),
            );
        }
    }
}

fn validate_url(url: &Spanned<String>, r: &mut Reporter<'_>) {
    match url::Url::parse(url.get_ref()) {
        Ok(u) if u.scheme() == "https" => {}
        Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => {}
        Ok(u) if u.scheme() == "http" => r.push(
            "central.url",
            url.span(),
            "plain http is only allowed to a loopback address: use https".into(),
        ),
        Ok(u) => r.push(
            "central.url",
            url.span(),
            format!("scheme `{}` is not supported: use https://", u.scheme()),
        ),
        Err(e) => r.push(
            "central.url",
            url.span(),
            format!("`{}` is not a URL: {e}", url.get_ref()),
        ),
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

fn check_node(key: &str, path: &Spanned<PathBuf>, devices: DeviceCheck, r: &mut Reporter<'_>) {
    if devices == DeviceCheck::Skip {
        return;
    }
    if let Err(e) = hal::node::check_char_device(path.get_ref()) {
        r.push(key, path.span(), e.to_string());
    }
}

fn validate_baud(key: &str, baud: Option<&Spanned<u32>>, r: &mut Reporter<'_>) {
    const STANDARD: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200];
    if let Some(b) = baud
        && !STANDARD.contains(b.get_ref())
    {
        r.push(
            key,
            b.span(),
            format!(
                "{} is not a standard baud rate (one of {STANDARD:?})",
                b.get_ref()
            ),
        );
    }
}

fn validate_devices(d: &Devices, check: DeviceCheck, r: &mut Reporter<'_>) {
    let serial = d
        .printer
        .iter()
        .map(|p| ("devices.printer".to_owned(), p))
        .chain(
            d.id_readers
                .iter()
                .map(|(n, p)| (format!("devices.id_readers.{n}"), p)),
        )
        .chain(
            d.ic_readers
                .iter()
                .map(|(n, p)| (format!("devices.ic_readers.{n}"), p)),
        )
        .chain(
            d.displays
                .iter()
                .map(|(n, p)| (format!("devices.displays.{n}"), p)),
        );
    for (key, dev) in serial {
        check_node(&format!("{key}.port"), &dev.get_ref().port, check, r);
        validate_baud(&format!("{key}.baud"), dev.get_ref().baud.as_ref(), r);
    }
    for (name, s) in &d.scanners {
        let key = format!("devices.scanners.{name}");
        match (&s.get_ref().port, &s.get_ref().evdev) {
            (Some(port), None) => check_node(&format!("{key}.port"), port, check, r),
            (None, Some(ev)) => check_node(&format!("{key}.evdev"), ev, check, r),
            (Some(_), Some(_)) => r.push(
                &key,
                s.span(),
                "a scanner is either serial (`port`) or evdev (`evdev`), not both".into(),
            ),
            (None, None) => r.push(
                &key,
                s.span(),
                "a scanner needs `port` (serial) or `evdev` (USB keyboard-type scanner)".into(),
            ),
        }
        validate_baud(&format!("{key}.baud"), s.get_ref().baud.as_ref(), r);
    }
    for (name, g) in &d.gates {
        let key = format!("devices.gates.{name}.modbus");
        let modbus = match (&g.get_ref().modbus, &g.get_ref().gpio) {
            (Some(m), None) => m,
            (None, Some(file)) => {
                if let Err(e) = hal::gate::gpio::GpioConfig::load(file.get_ref()) {
                    r.push(&format!("devices.gates.{name}.gpio"), file.span(), e);
                }
                continue;
            }
            (Some(_), Some(_)) => {
                r.push(
                    &format!("devices.gates.{name}"),
                    g.span(),
                    "a gate is either `modbus` or `gpio`, not both".into(),
                );
                continue;
            }
            (None, None) => {
                r.push(
                    &format!("devices.gates.{name}"),
                    g.span(),
                    "a gate needs `modbus` (a controller address) or `gpio` (a gate file)".into(),
                );
                continue;
            }
        };
        match modbus.get_ref().parse::<ModbusAddress>() {
            Ok(ModbusAddress::Rtu { port, baud }) => {
                check_node(&key, &Spanned::new(modbus.span(), port), check, r);
                validate_baud(&key, Some(&Spanned::new(modbus.span(), baud)), r);
            }
            Ok(ModbusAddress::Tcp(_)) => {}
            Err(e) => r.push(&key, modbus.span(), e),
        }
        let map = &g.get_ref().map;
        if let Err(e) = hal::gate::RegisterMap::load(map.get_ref()) {
            r.push(&format!("devices.gates.{name}.map"), map.span(), e);
        }
    }
}

fn validate_lane(name: &str, lane: &Lane, d: &Devices, r: &mut Reporter<'_>) {
    let key = |k: &str| format!("lanes.{name}.{k}");
    let reference =
        |r: &mut Reporter<'_>, k: &str, found: bool, family: &str, dev: &Spanned<String>| {
            if !found {
                r.push(
                    &key(k),
                    dev.span(),
                    format!("no device named `{}` in [devices.{family}]", dev.get_ref()),
                );
            }
        };
    reference(
        r,
        "gate",
        d.gates.contains_key(lane.gate.get_ref()),
        "gates",
        &lane.gate,
    );
    for s in &lane.scanners {
        reference(
            r,
            "scanners",
            d.scanners.contains_key(s.get_ref()),
            "scanners",
            s,
        );
    }
    for s in &lane.exit_scanners {
        let found = d.scanners.contains_key(s.get_ref());
        reference(r, "exit_scanners", found, "scanners", s);
        if lane.direction != LaneDirection::Both {
            r.push(
                &key("exit_scanners"),
                s.span(),
                "exit_scanners are for lanes with direction = \"both\"".into(),
            );
        }
    }
    if let Some(id) = &lane.id_reader {
        reference(
            r,
            "id_reader",
            d.id_readers.contains_key(id.get_ref()),
            "id_readers",
            id,
        );
    }
    if let Some(ic) = &lane.ic_reader {
        reference(
            r,
            "ic_reader",
            d.ic_readers.contains_key(ic.get_ref()),
            "ic_readers",
            ic,
        );
    }
    if let Some(disp) = &lane.display {
        reference(
            r,
            "display",
            d.displays.contains_key(disp.get_ref()),
            "displays",
            disp,
        );
    }
    if lane.group.trim().is_empty() {
        r.problems
            .push(r.problem(&key("group"), None, "lane group must not be empty".into()));
    }
    if lane.free_exit && lane.direction != LaneDirection::Exit {
        r.problems.push(r.problem(
            &key("free_exit"),
            None,
            "free_exit is for lanes with direction = \"exit\": an entry side must check tickets"
                .into(),
        ));
    }
    if !lane.free_exit
        && lane.scanners.is_empty()
        && lane.id_reader.is_none()
        && lane.ic_reader.is_none()
    {
        r.problems.push(r.problem(
            &format!("lanes.{name}"),
            None,
            "a lane needs at least one reader: `scanners`, `id_reader` or `ic_reader` (or, at an exit, `free_exit = true`)".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
role = "lane"
device_id = "north-gate-1"
state_dir = "/var/lib/gated"

[central]
url = "https://central.example.com/api/v1"

[devices.scanners.qr1]
port = "/dev/null"

[devices.gates.g1]
modbus = "tcp://127.0.0.1:1502"

[lanes.north-1]
direction = "entry"
group = "north"
gate = "g1"
scanners = ["qr1"]
"#;

    fn check(src: &str) -> Result<Config, ConfigError> {
        parse(Path::new("gated.toml"), src, DeviceCheck::Present)
    }

    #[test]
    fn good_config_loads() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.role, Role::Lane);
        assert_eq!(c.device_id.get_ref(), "north-gate-1");
        assert_eq!(c.lanes["north-1"].get_ref().direction, LaneDirection::Entry);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let src = GOOD.replace(
            "port = \"/dev/null\"",
            "port = \"/dev/null\"\nbaudrate = 9600",
        );
        let e = check(&src).unwrap_err();
        let p = &e.problems[0];
        assert_eq!(p.key, "devices.scanners.qr1.baudrate");
        assert_eq!(p.line.unwrap().0, 11);
        assert!(
            p.message.starts_with("unknown key `baudrate`"),
            "{}",
            p.message
        );
    }

    #[test]
    fn missing_key_is_named() {
        let src = GOOD.replace("role = \"lane\"\n", "");
        let e = check(&src).unwrap_err();
        assert_eq!(e.problems[0].key, "role");
        assert_eq!(e.problems[0].message, "required key is missing");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let src = GOOD
            .replace("\"g1\"\nscanners", "\"g2\"\nscanners")
            .replace("https://central", "ftp://central");
        let e = check(&src).unwrap_err();
        let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["central.url", "lanes.north-1.gate"]);
    }

    #[test]
    fn snippet_points_at_the_value() {
        let src = GOOD.replace("\"/dev/null\"", "\"/dev/nope\"");
        let e = check(&src).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("gated.toml:10:8: devices.scanners.qr1.port: /dev/nope does not exist"),
            "{text}"
        );
        assert!(
            text.contains("10 | port = \"/dev/nope\"\n   |        ^^^^^^^^^^^"),
            "{text}"
        );
    }

    #[test]
    fn skip_devices_ignores_missing_nodes_only() {
        let src = GOOD.replace("\"/dev/null\"", "\"/dev/nope\"");
        parse(Path::new("x"), &src, DeviceCheck::Skip).unwrap();
    }

    #[test]
    fn a_gate_is_modbus_or_gpio() {
        let neither = GOOD.replace("modbus = \"tcp://127.0.0.1:1502\"", "unit = 2");
        let e = check(&neither).unwrap_err();
        assert_eq!(e.problems[0].key, "devices.gates.g1");
        assert!(e.problems[0].message.contains("needs `modbus`"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gate.toml");
        std::fs::write(
            &file,
            "chip = \"/dev/gpiochip0\"\n[lines]\nunlock_entry = 1\nunlock_exit = 2\nentry_done = 3\nexit_done = 4\n",
        )
        .unwrap();
        let gpio = GOOD.replace(
            "modbus = \"tcp://127.0.0.1:1502\"",
            &format!("gpio = \"{}\"", file.display()),
        );
        let c = check(&gpio).unwrap();
        assert!(c.devices.gates["g1"].get_ref().gpio.is_some());

        let broken = GOOD.replace(
            "modbus = \"tcp://127.0.0.1:1502\"",
            "gpio = \"/nonexistent/gate.toml\"",
        );
        let e = check(&broken).unwrap_err();
        assert_eq!(e.problems[0].key, "devices.gates.g1.gpio");
        assert!(
            e.problems[0].message.contains("/nonexistent/gate.toml"),
            "{e}"
        );
    }

    #[test]
    fn the_voice_settings_are_checked() {
        let c = check(&format!(
            "{GOOD}\n[voice]\nquiet_hours = \"21:00-07:00\"\nquiet_volume = 30\n"
        ))
        .unwrap();
        let v = c.voice.as_ref().unwrap().get_ref();
        assert_eq!(v.quiet(), Some((21 * 60, 7 * 60)));
        assert_eq!(
            (v.device.get_ref().as_str(), v.language.get_ref().as_str()),
            ("default", "zh")
        );
        let bad =
            format!("{GOOD}\n[voice]\nlanguage = \"fr\"\nvolume = 120\nquiet_hours = \"night\"\n");
        let e = check(&bad).unwrap_err();
        let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["voice.language", "voice.volume", "voice.quiet_hours"],
            "{e}"
        );
        assert!(e.problems[0].message.contains("\"both\""), "{e}");
        let (line, _) = e.problems[1].line.expect("a line");
        assert!(
            bad.lines().nth(line - 1).unwrap().starts_with("volume"),
            "{e}"
        );
    }

    #[test]
    fn the_update_window_and_deadline_are_checked() {
        let c = check(&format!(
            "{GOOD}\n[update]\nquiet_window = \"23:30-04:00\"\n"
        ))
        .unwrap();
        assert_eq!(c.update.window(), Some((23 * 60 + 30, 4 * 60)));
        assert_eq!(*c.update.health_deadline_s.get_ref(), 300);
        let bad = format!("{GOOD}\n[update]\nquiet_window = \"2am\"\nhealth_deadline_s = 1\n");
        let e = check(&bad).unwrap_err();
        let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["update.quiet_window", "update.health_deadline_s"]);
        assert!(e.problems[0].message.contains("HH:MM-HH:MM"), "{e}");
        let (line, _) = e.problems[0].line.expect("a line");
        assert!(
            bad.lines()
                .nth(line - 1)
                .unwrap()
                .starts_with("quiet_window"),
            "{e}"
        );
    }

    #[test]
    fn kiosk_without_printer_is_refused() {
        let src = r#"
role = "kiosk"
device_id = "kiosk-1"
[central]
url = "https://c.example"
"#;
        let e = check(src).unwrap_err();
        assert_eq!(e.problems[0].key, "devices.printer");
    }

    #[test]
    fn kiosk_limits_and_pin_hash_are_checked_where_they_stand() {
        let c = check(GOOD).unwrap();
        assert!(c.kiosk.pin_hash().is_none());
        assert_eq!(*c.kiosk.max_quantity.get_ref(), 20);

        let hash = crate::service_pin::PinHash::new("2468", 10).unwrap();
        let good =
            format!("{GOOD}\n[kiosk]\nservice_pin_hash = \"{hash}\"\nsale_horizon_days = 30\n");
        let c = check(&good).unwrap();
        assert!(c.kiosk.pin_hash().unwrap().matches("2468"));
        assert_eq!(*c.kiosk.sale_horizon_days.get_ref(), 30);

        let bad = format!(
            "{GOOD}\n[kiosk]\nservice_pin_hash = \"2468\"\nsale_horizon_days = 0\nmax_quantity = 51\n"
        );
        let e = check(&bad).unwrap_err();
        let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kiosk.service_pin_hash",
                "kiosk.sale_horizon_days",
                "kiosk.max_quantity"
            ]
        );
        assert!(e.to_string().contains("gatectl pin-hash"), "{e}");
    }
}

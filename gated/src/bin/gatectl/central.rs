//! `gatectl provision` (enroll with the central system) and `gatectl status`
//! (what gated last recorded about its link, outbox and store).

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use gated::central::enroll;
use gated::central::sync;
use gated::config::{self, Config, DeviceCheck};
use gated_api::{Device1Proxy, Engineer1Proxy, ErrorName, Lane1Proxy};
use serde_json::json;

pub(crate) fn load(path: &Path) -> Result<Config, ExitCode> {
    let mut config = config::load(path, DeviceCheck::Skip).map_err(|e| {
        eprintln!("{e}");
        eprintln!("fix {} first (gatectl config check)", path.display());
        ExitCode::from(2)
    })?;
    config.resolve_device_id();
    Ok(config)
}

/// A time in the scenic area's time zone (`timezone` in gated.toml), the
/// one the tickets, slots and days are in, whatever the device's TZ says.
pub(crate) fn when(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

fn ago(ms: i64) -> String {
    let s = (jiff::Timestamp::now().as_millisecond() - ms) / 1000;
    match s {
        ..=0 => "just now".into(),
        1..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn skew_text(ms: i64) -> String {
    format!("{:+.1} s", ms as f64 / 1000.0)
}

/// Green, amber or red per subsystem, what to check under each line not green.
fn print_health(h: &gated_api::types::HealthView) {
    let count = |l: &str| h.items.iter().filter(|i| i.level == l).count();
    println!(
        "  health        {}: {} red, {} amber, {} green",
        h.level.to_uppercase(),
        count("red"),
        count("amber"),
        count("green")
    );
    let width = h
        .items
        .iter()
        .map(|i| i.subsystem.chars().count())
        .max()
        .unwrap_or(0);
    for i in &h.items {
        let mark = match i.level.as_str() {
            "green" => "ok  ",
            "amber" => "WARN",
            _ => "FAIL",
        };
        println!("    {mark}  {:<width$}  {}", i.subsystem, i.detail);
        if !i.check_en.is_empty() {
            println!("          {:<width$}  → {}", "", i.check_en);
        }
    }
}

pub fn provision(config_path: &Path, central: Option<&str>, code: &str, json: bool) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = central.unwrap_or(config.central.url.get_ref()).to_owned();
    // Through the running gated when there is one (it owns the state
    // directory and picks the credentials up); directly otherwise.
    let via_gated: Option<Result<serde_json::Value, String>> =
        match with_gated(async |g| g.engineer.provision(&url, code).await) {
            Ok(e) => Some(Ok(gated_api::to_json(&e))),
            Err(e) if e.name == ErrorName::NotRunning => None,
            Err(e) => Some(Err(e.to_string())),
        };
    let result = match via_gated {
        Some(r) => r,
        None => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            // A setup code names the central system and the device itself.
            let target = gated::setup::target(&config, Some(&url), code).map_err(|r| r.en);
            target.and_then(|t| {
                rt.block_on(enroll::enroll(
                    &config,
                    None,
                    &t.central,
                    &t.code,
                    &t.device_id,
                ))
                .map(|e| gated_api::to_json(&e))
                .map_err(|e| match enroll::explain(&e) {
                    enroll::Failure::Code(m) | enroll::Failure::Other(m) => m,
                    enroll::Failure::Offline(m) => format!("Offline: {m}"),
                })
            })
        }
    };
    match result {
        Ok(e) => {
            if json {
                println!(
                    "{:#}",
                    json!({ "enrolled": true, "device": e, "state_dir": config.state_dir.get_ref() })
                );
            } else {
                let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                let list = |k: &str, prefix: &str| {
                    let v: Vec<String> = e[k]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|x| {
                                    format!(
                                        "{prefix}{}",
                                        x.as_str()
                                            .map(str::to_owned)
                                            .unwrap_or_else(|| x.to_string())
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                let skew = e["clock_skew_ms"].as_i64().unwrap_or(0);
                println!("Enrolled with {}", s("central_url"));
                println!("  device id     {}", s("device_id"));
                println!("  role          {}", s("role"));
                println!("  lane groups   {}", list("lane_groups", ""));
                println!("  signing keys  {}", list("signing_key_ids", "#"));
                println!("  ID-hash key   {}", s("id_hash_key"));
                println!(
                    "  access token  received (stored, not shown), expires {}",
                    when(
                        e["token_expires_at_ms"].as_i64().unwrap_or(0),
                        &config.time_zone()
                    )
                );
                println!(
                    "  clock skew    {}{}",
                    skew_text(skew),
                    if skew.unsigned_abs() > sync::SKEW_REPORTED_MS as u64 {
                        "  ← set the device clock (NTP)"
                    } else {
                        ""
                    }
                );
                println!(
                    "Saved in {} (device.key and credentials.json, readable by their owner only).",
                    config.state_dir.get_ref().display()
                );
                println!("A running gated picks them up within a few seconds.");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let hint = if ["code_unknown", "code_used", "code_expired"]
                .iter()
                .any(|c| e.contains(c))
            {
                "ask the central system's operator for a new pairing code"
            } else if e.contains("code_mismatch") {
                "check device_id and role in gated.toml, or use the code made for this device"
            } else if e.starts_with("Offline") {
                "check the network, central.url and central.ca_file in gated.toml"
            } else {
                ""
            };
            if json {
                println!(
                    "{:#}",
                    json!({ "enrolled": false, "message": e, "hint": hint })
                );
            } else {
                eprintln!("gatectl: enrollment failed: {e}");
                if !hint.is_empty() {
                    eprintln!("  hint: {hint}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// `gatectl status`: everything comes from the running gated over D-Bus
/// (gated alone touches its database); without gated it says so.
pub fn status(config_path: &Path, json: bool) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tz = config.time_zone();
    // One connection, one moment: Device1's properties, the counts, the lanes.
    let snapshot = with_gated(async |g| {
        let iface = zbus::names::InterfaceName::try_from(gated_api::DEVICE1)?;
        let props = g.properties.get_all(iface).await?;
        let counts = g.device.counts().await?;
        // A lane list that cannot be read leaves the rest of the status.
        let lanes = g.lane.lanes().await.ok();
        let (fleet, occupancy) = (g.device.fleet().await.ok(), g.device.occupancy().await.ok());
        let health = g.device.health().await.ok();
        Ok((props, counts, lanes, fleet, occupancy, health))
    });
    let (props, (tickets, revoked, blocked, entered, outbox), lanes, fleet, occupancy, health) =
        match snapshot {
            Ok(s) => s,
            Err(e) => return not_running(&config, &e.to_string(), json),
        };
    let device = RunningDevice(props);
    let lanes: Vec<serde_json::Value> = lanes
        .map(|ls| ls.iter().map(gated_api::to_json).collect())
        .unwrap_or_default();
    let mode: String = device.prop("Mode").unwrap_or_default();
    let since: i64 = device.prop("ModeSinceMs").unwrap_or(0);
    let url: String = device.prop("CentralUrl").unwrap_or_default();
    let last_sync: i64 = device.prop("LastSyncMs").unwrap_or(0);
    let last_error: String = device.prop("LastError").unwrap_or_default();
    let cursor: u64 = device.prop("Cursor").unwrap_or(0);
    let catalog: u64 = device.prop("CatalogVersion").unwrap_or(0);
    // Known once a heartbeat was answered, which is a successful exchange.
    let skew: Option<i64> = (last_sync != 0)
        .then(|| device.prop("ClockSkewMs").ok())
        .flatten();
    let skew_reported = skew.is_some_and(|s| s.unsigned_abs() > sync::SKEW_REPORTED_MS as u64);
    let devices = device.devices();
    let power = device.power().ok();
    let op_mode = device.mode().ok();
    if json {
        println!(
            "{:#}",
            identified(
                &config,
                json!({
                    "central": {
                        "mode": mode,
                        "url": (!url.is_empty()).then_some(&url),
                        "since_ms": since,
                        "last_sync_ms": (last_sync != 0).then_some(last_sync),
                        "last_error": (!last_error.is_empty()).then_some(&last_error),
                        "cursor": cursor,
                        "catalog_version": catalog,
                        "clock_skew_ms": skew,
                        "clock_skew_reported": skew_reported,
                    },
                    "outbox_depth": outbox,
                    "tickets": tickets,
                    "revoked": revoked,
                    "blocked": blocked,
                    "persons_entered_today": entered,
                    "gated_running": true,
                    "lanes": lanes,
                    "power": power,
                    "operating_mode": op_mode.as_ref().map(|(m, c, since, peak)| json!({
                        "mode": m, "cause": c, "since_ms": since, "peak_groups": peak,
                    })),
                    "devices": devices.as_ref().ok().map(|d| d.iter().map(|(f, s)| json!({"device": f, "state": s})).collect::<Vec<_>>()),
                    "fleet": fleet.as_ref().map(gated_api::to_json),
                    "occupancy": occupancy.as_ref().map(gated_api::to_json),
                    "health": health.as_ref().map(gated_api::to_json),
                })
            )
        );
        return ExitCode::SUCCESS;
    }
    println!("{} {}", config.role, config.device_id.get_ref());
    if let Some(h) = &health {
        print_health(h);
    }
    let link = match mode.as_str() {
        "unprovisioned" => {
            "NOT PROVISIONED: scan the setup code at the device, or `gatectl provision --code CODE`"
                .to_owned()
        }
        "online" => format!("online since {}", when(since, &tz)),
        "offline" => format!("OFFLINE since {}", when(since, &tz)),
        other => other.to_owned(),
    };
    println!("  central       {link}");
    if !url.is_empty() {
        println!("                {url}");
    }
    if last_sync != 0 {
        println!(
            "  last sync     {} ({})",
            ago(last_sync),
            when(last_sync, &tz)
        );
    }
    if !last_error.is_empty() {
        println!("  last error    {last_error}");
    }
    match skew {
        Some(s) if skew_reported => println!(
            "  clock skew    {}  ← device clock is off by more than 2 min: set the time (NTP); tickets are still checked on the device clock",
            skew_text(s)
        ),
        Some(s) => println!("  clock skew    {}", skew_text(s)),
        None => println!("  clock skew    unknown (no heartbeat answered yet)"),
    }
    println!("  outbox        {outbox} event(s) waiting for upload");
    println!(
        "  tickets       {tickets} known, {revoked} revoked, {blocked} blocked (cursor {cursor}, catalog v{catalog})"
    );
    println!("  entries today {entered} person(s)");
    if let Some((m, cause, since, peak)) = &op_mode {
        let shout = if m == "normal" {
            m.clone()
        } else {
            m.to_uppercase()
        };
        println!(
            "  mode          {shout} since {}: {cause}",
            when(*since, &tz)
        );
        if !peak.is_empty() {
            println!("  peak          lane group(s) {}", peak.join(", "));
        }
    }
    if let Some(p) = &power {
        println!("  power         {p}");
    }
    match &devices {
        Ok(d) if d.is_empty() => println!("  devices       (none reported)"),
        Ok(d) => {
            for (i, (family, state)) in d.iter().enumerate() {
                let label = if i == 0 { "devices" } else { "" };
                println!("  {label:<13} {family:<16} {state}");
            }
        }
        Err(e) => println!("  devices       unknown ({e})"),
    }
    if let Some(f) = &fleet {
        print_fleet(f);
    }
    if let Some(o) = &occupancy {
        print_occupancy(o);
    }
    for (i, l) in lanes.iter().enumerate() {
        let label = if i == 0 { "lanes" } else { "" };
        let last = l["last"]
            .as_array()
            .and_then(|d| d.last())
            .map(|d| {
                format!(
                    "last: {}{}",
                    d["outcome"].as_str().unwrap_or(""),
                    d["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        // Why the mode is what it is, when the device forces it; peak mode.
        let mut notes = Vec::new();
        if let Some(by) = l["forced_by"].as_str() {
            notes.push(format!("({by})"));
        }
        if l["peak"] == true {
            notes.push("(peak)".to_owned());
        }
        notes.push(last);
        notes.retain(|n| !n.is_empty());
        let last = notes.join(" ");
        println!(
            "  {label:<13} {:<10} {:<6} {:<7} gate {:<12} in {:>4} out {:>4}  {last}",
            l["name"].as_str().unwrap_or(""),
            l["direction"].as_str().unwrap_or(""),
            l["mode"].as_str().unwrap_or(""),
            l["gate"].as_str().unwrap_or(""),
            l["entries_today"].as_u64().unwrap_or(0),
            l["exits_today"].as_u64().unwrap_or(0),
        );
    }
    ExitCode::SUCCESS
}

/// `gatectl capacity`: the site's and each lane group's visitors today
/// against their capacities, from the running gated.
pub fn capacity(config_path: &Path, json: bool) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let occupancy = match with_gated(async |g| Ok(g.device.occupancy().await?)) {
        Ok(o) => o,
        Err(e) => return not_running(&config, &e.to_string(), json),
    };
    if json {
        println!("{:#}", identified(&config, gated_api::to_json(&occupancy)));
    } else {
        println!("{} {}", config.role, config.device_id.get_ref());
        print_occupancy(&occupancy);
    }
    ExitCode::SUCCESS
}

/// `gatectl capacity override SCOPE on|off --reason TEXT`.
pub fn capacity_override(scope: &str, on: bool, reason: &str, json: bool) -> ExitCode {
    done(
        "capacity override",
        json!({ "scope": scope, "on": on }),
        with_gated(async |g| g.engineer.capacity_override(scope, on, reason).await)
            .map(|()| {
                if on {
                    format!("{scope} admits past its capacity until `gatectl capacity override {scope} off` (recorded: {reason})")
                } else {
                    format!("{scope} holds its capacity again")
                }
            })
            .map_err(|e| e.to_string()),
        json,
    )
}

/// One line per scope: in the park, entries and exits today, capacity, tier.
fn print_occupancy(o: &gated_api::types::OccupancyView) {
    let line = |label: &str, g: &gated_api::types::GroupOccupancy| {
        let cap = |c: Option<u32>| c.map_or("-".to_owned(), |c| c.to_string());
        let mut notes = Vec::new();
        if let (true, Some(why)) = (g.full, &g.override_reason) {
            notes.push(format!("FULL, OVERRIDDEN: entries admitted ({why})"));
        } else if g.full {
            notes.push("FULL: entries refused".to_owned());
        } else if g.tier > 0 {
            notes.push(format!("TIER {}%", g.tier));
        }
        if let (false, Some(why)) = (g.full, &g.override_reason) {
            notes.push(format!("override on ({why})"));
        }
        if g.clamped {
            notes.push("more exits than entries counted (held at 0)".to_owned());
        }
        println!(
            "  {label:<13} {:<10} inside {:>5} of {:>5}  today in {:>5} out {:>5} of {:>5}  {:>3}%  {}",
            if g.group.is_empty() {
                "site"
            } else {
                g.group.as_str()
            },
            g.inside,
            cap(g.instant_capacity),
            g.entries,
            g.exits,
            cap(g.daily_capacity),
            g.percent,
            notes.join(", ")
        );
    };
    line("occupancy", &o.site);
    for g in &o.groups {
        line("", g);
    }
    println!(
        "                operating day from {}",
        o.day_start.replace('T', " ")
    );
    if o.isolated {
        println!(
            "                ISOLATED: neither the central system nor any peer reachable; this device's own view, capacities held {} % lower",
            o.margin_percent
        );
    }
    if o.sales_stopped {
        println!("                KIOSK SALES FOR TODAY STOPPED (later dates still sell)");
    }
    if !o.notice_en.is_empty() {
        println!("                notice: {} / {}", o.notice_zh, o.notice_en);
    }
}

/// The site network: where this device listens, each peer, lag and conflicts.
fn print_fleet(f: &gated_api::types::FleetView) {
    match (&f.listening, &f.advertised) {
        (Some(l), Some(a)) => println!("  site network  listening on {l}, advertised as {a}"),
        (Some(l), None) => println!(
            "  site network  listening on {l}, advertising NOTHING: set peers.advertise so other devices reach this one"
        ),
        (None, _) => println!("  site network  off (peers.listen = \"\", or not provisioned yet)"),
    }
    if let Some(k) = &f.public_key {
        println!("                public key {k}");
    }
    if f.peers.is_empty() && f.listening.is_some() {
        println!(
            "  peers         none known yet (the catalog lists them once the central system is reached, or [[peers.device]])"
        );
    }
    for (i, p) in f.peers.iter().enumerate() {
        let label = if i == 0 { "peers" } else { "" };
        let heard = p
            .last_message_age_ms
            .map(|ms| format!("last message {:.1} s ago", ms as f64 / 1000.0))
            .unwrap_or_else(|| "never heard from".to_owned());
        let state = if p.reachable {
            format!("reachable, {heard}, lag {} passage(s)", p.lag)
        } else {
            format!(
                "UNREACHABLE ({}), {heard}, lag ≥ {}",
                p.last_error.as_deref().unwrap_or("not connected yet"),
                p.lag
            )
        };
        println!(
            "  {label:<13} {:<12} {:<21} {state}",
            p.device_id, p.address
        );
    }
    let conflicts = if f.conflicts > 0 {
        format!(
            "{} CONFLICT(S): a ticket admitted at two devices inside the propagation window (reported to the central system)",
            f.conflicts
        )
    } else {
        "no conflicts".to_owned()
    };
    println!(
        "  fleet         lag {} passage(s), {conflicts}, {} refused connection(s)",
        f.lag, f.refused
    );
    if f.skipped_changes > 0 {
        println!(
            "  feed          {} change(s) of kinds this gated does not know were skipped: update gated",
            f.skipped_changes
        );
    }
}

/// `fields` and the device's role, id and time zone (from gated.toml).
fn identified(config: &Config, fields: serde_json::Value) -> serde_json::Value {
    let mut v = json!({
        "role": config.role,
        "device_id": config.device_id.get_ref(),
        "time_zone": config.time_zone().iana_name(),
    });
    if let (Some(out), serde_json::Value::Object(more)) = (v.as_object_mut(), fields) {
        out.extend(more);
    }
    v
}

/// gated does not answer on the bus: say so, and what to do.
fn not_running(config: &Config, why: &str, json: bool) -> ExitCode {
    if json {
        println!(
            "{:#}",
            identified(config, json!({ "gated_running": false, "error": why }))
        );
    } else {
        println!("{} {}", config.role, config.device_id.get_ref());
        println!("  gated         NOT RUNNING: it does not answer on D-Bus ({why})");
        println!(
            "                the status comes from the running gated: `systemctl status gated`, `journalctl -u gated`;"
        );
        println!("                with gated stopped, `gatectl probe …` talks to single devices");
    }
    ExitCode::FAILURE
}

/// Why a call to gated failed: the error's name and gated's message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub name: ErrorName,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name {
            ErrorName::NotRunning => write!(f, "gated is not running ({})", self.message),
            name => write!(f, "{name:?}: {}", self.message),
        }
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        let (name, message) = gated_api::error_of(&e);
        Failure { name, message }
    }
}

/// gated's interfaces on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` picks another).
pub(crate) struct Gated {
    device: Device1Proxy<'static>,
    lane: Lane1Proxy<'static>,
    pub(crate) engineer: Engineer1Proxy<'static>,
    properties: zbus::fdo::PropertiesProxy<'static>,
}

/// Runs `f` against the running gated, on a runtime of its own.
pub(crate) fn with_gated<T>(f: impl AsyncFnOnce(&Gated) -> zbus::Result<T>) -> Result<T, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // No bus to connect to: nothing there runs gated either.
        let conn = zbus::Connection::system().await.map_err(|e| Failure {
            name: ErrorName::NotRunning,
            message: format!("no system bus: {e}"),
        })?;
        let g = Gated {
            device: Device1Proxy::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?,
            lane: Lane1Proxy::new(&conn).await?,
            engineer: Engineer1Proxy::new(&conn).await?,
            properties: zbus::fdo::PropertiesProxy::builder(&conn)
                .destination(gated_api::BUS_NAME)
                .path(gated_api::OBJECT_PATH)
                .build()
                .await?,
        };
        Ok(f(&g).await?)
    })
}

/// The running gated's Device1 properties, read in one call (one moment).
struct RunningDevice(HashMap<String, zbus::OwnedVariant>);

impl RunningDevice {
    fn prop<T>(&self, name: &str) -> Result<T, String>
    where
        T: TryFrom<zbus::OwnedVariant>,
        T::Error: std::fmt::Display,
    {
        let v = self
            .0
            .get(name)
            .ok_or_else(|| format!("no property {name}"))?;
        let v = v.try_clone().map_err(|e| e.to_string())?;
        T::try_from(v).map_err(|e| e.to_string())
    }

    /// The devices and their states.
    fn devices(&self) -> Result<Vec<(String, String)>, String> {
        self.prop("Devices")
    }

    /// The power as gated describes it.
    fn power(&self) -> Result<String, String> {
        self.prop("Power")
    }

    /// The operating mode: (mode, cause, since_ms, peak groups).
    fn mode(&self) -> Result<(String, String, i64, Vec<String>), String> {
        Ok((
            self.prop("OperatingMode")?,
            self.prop("OperatingModeCause")?,
            self.prop("OperatingModeSinceMs")?,
            self.prop("PeakGroups")?,
        ))
    }
}

/// `gatectl alarm reset`.
pub fn alarm_reset(json: bool) -> ExitCode {
    done(
        "alarm reset",
        json!({}),
        with_gated(async |g| g.engineer.alarm_reset().await)
            .map(|()| "fire alarm reset: the lanes return to their modes".to_owned())
            .map_err(|e| e.to_string()),
        json,
    )
}

/// `gatectl peak GROUP on|off`.
pub fn peak(group: &str, on: bool, json: bool) -> ExitCode {
    done(
        "peak",
        json!({}),
        with_gated(async |g| g.engineer.set_peak(group, on).await)
            .map(|()| {
                if on {
                    format!("peak mode on for lane group {group}")
                } else {
                    format!("peak mode off for lane group {group}")
                }
            })
            .map_err(|e| e.to_string()),
        json,
    )
}

/// Reports a command's result: `m` on stdout, or `gatectl: WHAT: error` on
/// stderr; with --json, `{ ...fields, "done": m }` or `{ ...fields, "error": e }`.
pub(crate) fn done(
    what: &str,
    mut fields: serde_json::Value,
    r: Result<String, String>,
    json: bool,
) -> ExitCode {
    let ok = r.is_ok();
    match (r, json) {
        (Ok(m), true) => {
            fields["done"] = m.into();
            println!("{fields}");
        }
        (Ok(m), false) => println!("{m}"),
        (Err(e), true) => {
            fields["error"] = e.into();
            println!("{fields}");
        }
        (Err(e), false) => eprintln!("gatectl: {what}: {e}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `gatectl lane NAME mode MODE` and `gatectl lane NAME open [DIRECTION]`.
pub fn lane(name: &str, action: &str, arg: &str, json: bool) -> ExitCode {
    let r: Result<String, String> = match action {
        "mode" => with_gated(async |g| g.lane.set_mode(name, arg).await)
            .map(|()| format!("lane {name}: mode {arg}"))
            .map_err(|e| e.to_string()),
        "open" => {
            let dir = if arg.is_empty() { "entry" } else { arg };
            with_gated(async |g| g.lane.open_once(name, dir).await)
                .map(|o| {
                    let detail = [o.persons.map(|p| format!("{p} person(s)")), o.kind, o.why];
                    let detail: Vec<String> = detail.into_iter().flatten().collect();
                    format!(
                        "lane {name} opened once ({dir}): {}{}",
                        o.outcome,
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", detail.join(", "))
                        }
                    )
                })
                .map_err(|e| e.to_string())
        }
        a => Err(format!("unknown lane action {a:?}")),
    };
    done(&format!("lane {name}"), json!({ "lane": name }), r, json)
}

/// `gatectl reprint`: through the running gated (Engineer1), reason recorded.
pub fn reprint(ticket: u64, reason: &str, json: bool) -> ExitCode {
    let r =
        with_gated(async |g| g.engineer.reprint(ticket, reason).await).map_err(|e| e.to_string());
    let ok = r.is_ok();
    match (r, json) {
        (Ok(()), true) => println!("{}", json!({ "reprinted": ticket, "reason": reason })),
        (Ok(()), false) => println!("ticket {ticket} reprinted; reason recorded: {reason}"),
        (Err(e), true) => println!("{}", json!({ "reprinted": null, "error": e })),
        (Err(e), false) => eprintln!("gatectl: reprint of ticket {ticket} failed: {e}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `gatectl test DEVICE [NAME]`: a guided self-test through the running gated.
pub fn self_test(device: &str, name: &str, json: bool) -> ExitCode {
    if !json {
        let what = if name.is_empty() { device } else { name };
        match device {
            "scanner" => println!(
                "Scan any code with {what} within {} s …",
                gated::dbus::SELF_TEST_WAIT.as_secs()
            ),
            "id-reader" => println!(
                "Place an ID card on {what} within {} s …",
                gated::dbus::SELF_TEST_WAIT.as_secs()
            ),
            "ic-reader" => println!(
                "Hold a card on {what} within {} s …",
                gated::dbus::SELF_TEST_WAIT.as_secs()
            ),
            "printer" => println!("Printing a test slip …"),
            _ => println!("Asking the {device} …"),
        }
    }
    let r =
        with_gated(async |g| g.engineer.self_test(device, name).await).map_err(|e| e.to_string());
    let passed = matches!(r, Ok((true, _)));
    match (r, json) {
        (Ok((p, report)), true) => println!(
            "{}",
            json!({ "device": device, "name": name, "passed": p, "report": report })
        ),
        (Ok((true, report)), false) => println!("PASS  {report}"),
        (Ok((false, report)), false) => println!("FAIL  {report}"),
        (Err(e), true) => println!(
            "{}",
            json!({ "device": device, "name": name, "passed": false, "error": e })
        ),
        (Err(e), false) => eprintln!("gatectl: cannot run the test: {e}"),
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `gatectl logs`: the device's recent events, newest first, from the
/// running gated (`Engineer1.Logs`).
pub fn logs(config_path: &Path, count: u32, json: bool) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tz = config.time_zone();
    let rows = match with_gated(async |g| g.engineer.logs(count).await) {
        Ok(r) => r,
        Err(e) => return not_running(&config, &e.to_string(), json),
    };
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(at, kind, what)| json!({ "at_ms": at, "kind": kind, "what": what }))
            .collect();
        println!("{:#}", json!(v));
    } else if rows.is_empty() {
        println!("no events recorded yet");
    } else {
        for (at, kind, what) in rows {
            println!("{}  {kind:<8} {what}", when(at, &tz));
        }
    }
    ExitCode::SUCCESS
}

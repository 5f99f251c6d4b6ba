//! `gatectl probe …`: talk to one device directly, without gated, to see
//! whether it is wired, powered and configured right. gated must not be
//! running on the same port (ports are opened exclusively).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hal::idcard::sam::{self, IdCard};
use hal::printer::escpos::{Align, QrEcc, TicketBuilder};
use hal::printer::{Paper, PrinterError, SerialPrinter, Status, TicketPrinter};
use hal::scanner::ScannerPort;
use hal::supervise::FAILED_AFTER;
use hal::{Device, DeviceState};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum Probe {
    /// Thermal ticket printer (ESC/POS): show its status, optionally print a test ticket.
    Printer {
        #[command(flatten)]
        port: SerialArgs,
        /// Print a test ticket with a QR code holding the device id and time.
        #[arg(long)]
        test_print: bool,
        /// Device id for the test ticket (default: from /etc/gated/gated.toml).
        #[arg(long)]
        device_id: Option<String>,
    },
    /// QR/barcode scanner: print each code as it is scanned.
    Scanner {
        /// Serial scanner port.
        #[arg(
            long,
            value_name = "PATH",
            conflicts_with = "evdev",
            required_unless_present = "evdev"
        )]
        port: Option<PathBuf>,
        /// Baud rate of a serial scanner.
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        /// USB keyboard-type scanner's event device (grabbed exclusively).
        #[arg(long, value_name = "PATH")]
        evdev: Option<PathBuf>,
        /// Stop after N codes (default: until Ctrl-C).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// 2nd-gen ID-card reader: wait for a card and show its fields (masked).
    IdReader {
        #[command(flatten)]
        port: SerialArgs,
        /// Seconds to wait for a card.
        #[arg(long, default_value_t = 30, value_name = "S")]
        timeout: u64,
        /// Show name, address and ID number unmasked (never do this in a log).
        #[arg(long)]
        show_pii: bool,
    },
    /// Turnstile or wing gate: open it once, set its mode, or watch its events.
    #[command(group(clap::ArgGroup::new("backend").required(true).args(["modbus", "gpio"])))]
    #[command(group(clap::ArgGroup::new("action").required(true).args(["open", "mode", "watch"])))]
    Gate {
        /// Modbus controller: tcp://HOST:PORT or rtu:/dev/PATH@BAUD.
        #[arg(long, value_name = "ADDRESS")]
        modbus: Option<String>,
        /// Modbus unit (slave) id.
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// Register map: `lot` (default), `coil-example`, or a map file.
        #[arg(long, default_value = "lot", value_name = "MAP")]
        map: String,
        /// GPIO gate: a file naming the chip, lines and polarity.
        #[arg(long, value_name = "FILE")]
        gpio: Option<PathBuf>,
        /// Authorise one passage (or --persons N) and report what happened.
        #[arg(long, value_name = "DIRECTION")]
        open: Option<hal::gate::Direction>,
        #[arg(long, default_value_t = 1, requires = "open")]
        persons: u32,
        /// Seconds to wait for the passage.
        #[arg(long, default_value_t = 10, value_name = "S")]
        timeout: u64,
        /// Set the mode: normal, free or locked.
        #[arg(long, value_name = "MODE")]
        mode: Option<hal::gate::GateMode>,
        /// Print passages, alarms, fire and faults as they happen.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after N events.
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },
    /// UPS: show whether the appliance is on mains or battery, and follow changes.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["upower", "nut", "gpio"])))]
    Ups {
        /// UPower on the system bus (USB-HID UPSes).
        #[arg(long)]
        upower: bool,
        /// UPower on another bus (a D-Bus address; for tests).
        #[arg(long, value_name = "ADDRESS", requires = "upower", hide = true)]
        bus: Option<String>,
        /// NUT's upsd: HOST:PORT[/UPSNAME].
        #[arg(long, value_name = "TARGET")]
        nut: Option<String>,
        /// A power-fail line: /dev/gpiochipN:LINE (active = mains lost).
        #[arg(long, value_name = "CHIP:LINE")]
        gpio: Option<String>,
        /// The power-fail line is active low.
        #[arg(long, requires = "gpio")]
        active_low: bool,
        /// Keep printing changes until Ctrl-C (or --count N).
        #[arg(long)]
        watch: bool,
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },
    /// Contactless IC-card reader: print card UIDs as cards come and go.
    IcReader {
        #[command(flatten)]
        port: SerialArgs,
        /// Stop after N events (default: until Ctrl-C).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct SerialArgs {
    /// Serial port (e.g. /dev/ticket-printer, /dev/ttyUSB0).
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    /// Baud rate (default: the device family's usual rate).
    #[arg(long)]
    baud: Option<u32>,
}

pub fn run(probe: Probe, json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatectl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match probe {
            Probe::Printer {
                port,
                test_print,
                device_id,
            } => {
                printer(
                    &port.port,
                    port.baud.unwrap_or(115_200),
                    test_print,
                    device_id,
                    json,
                )
                .await
            }
            Probe::Scanner {
                port,
                baud,
                evdev,
                count,
            } => {
                let port = match (port, evdev) {
                    (Some(path), _) => ScannerPort::Serial { path, baud },
                    (None, Some(path)) => ScannerPort::Evdev { path },
                    (None, None) => unreachable!("clap requires one"),
                };
                scanner(port, count, json).await
            }
            Probe::IdReader {
                port,
                timeout,
                show_pii,
            } => {
                id_reader(
                    &port.port,
                    port.baud.unwrap_or(hal::idcard::DEFAULT_BAUD),
                    timeout,
                    show_pii,
                    json,
                )
                .await
            }
            Probe::IcReader { port, count } => {
                ic_reader(&port.port, port.baud.unwrap_or(9600), count, json).await
            }
            Probe::Gate {
                modbus,
                unit,
                map,
                gpio,
                open,
                persons,
                timeout,
                mode,
                watch,
                count,
            } => {
                let action = match (open, mode, watch) {
                    (Some(dir), _, _) => {
                        GateAction::Open(dir, persons, Duration::from_secs(timeout))
                    }
                    (_, Some(m), _) => GateAction::Mode(m),
                    _ => GateAction::Watch(count),
                };
                match (modbus, gpio) {
                    (Some(addr), _) => modbus_gate(&addr, unit, &map, timeout, action, json).await,
                    (None, Some(file)) => match hal::gate::gpio::GpioConfig::load(&file)
                        .and_then(|c| c.open("probe"))
                    {
                        Ok(gate) => gate_probe(&gate, action, json).await,
                        Err(e) => Err(e),
                    },
                    (None, None) => unreachable!("clap requires a backend"),
                }
            }
            Probe::Ups {
                upower,
                bus,
                nut,
                gpio,
                active_low,
                watch,
                count,
            } => {
                let src = if upower {
                    Ok(hal::power::upower::spawn(match bus {
                        Some(a) => hal::power::upower::Bus::Address(a),
                        None => hal::power::upower::Bus::System,
                    }))
                } else if let Some(t) = nut {
                    t.parse()
                        .map(|t| hal::power::nut::spawn(t, Duration::from_secs(2)))
                } else if let Some(spec) = gpio {
                    power_fail_line(&spec, active_low)
                } else {
                    unreachable!("clap requires a source")
                };
                match src {
                    Ok(src) => ups(src, watch.then_some(count), json).await,
                    Err(e) => Err(e),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", json!({ "ok": false, "error": e }));
            }
            eprintln!("gatectl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn paper_text(p: Paper) -> &'static str {
    match p {
        Paper::Ok => "ok",
        Paper::NearEnd => "near end (replace the roll soon)",
        Paper::Out => "OUT",
    }
}

fn status_text(port: &Path, baud: u32, s: &Status) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "printer {} @ {baud}: {}\n  online   {}\n  paper    {}\n  cover    {}\n  cutter   {}\n  errors   {}\n",
        port.display(),
        s.problem()
            .map_or("ready".to_owned(), |p| format!("NOT READY: {p}")),
        yes_no(s.online),
        paper_text(s.paper),
        if s.cover_open { "OPEN" } else { "closed" },
        if s.cutter_error { "ERROR" } else { "ok" },
        match (s.unrecoverable_error, s.auto_recoverable_error) {
            (true, _) => "unrecoverable: power-cycle the printer",
            (_, true) => "head overheated or voltage out of range",
            _ => "none",
        }
    )
}

fn default_device_id() -> String {
    gated::config::load(
        Path::new(gated::config::DEFAULT_PATH),
        gated::config::DeviceCheck::Skip,
    )
    .map(|c| c.device_id.into_inner())
    .unwrap_or_else(|_| "unprovisioned".to_owned())
}

async fn printer(
    port: &Path,
    baud: u32,
    test_print: bool,
    device_id: Option<String>,
    json: bool,
) -> Result<(), String> {
    let mut p = SerialPrinter::new(port, baud);
    let status = p.status().await.map_err(|e| e.to_string())?;
    // Whether it answers GS r decides how a print is confirmed.
    let completion = p.completion().await.map_err(|e| e.to_string())?;
    // Whether it counts its cuts decides whether a ticket held by a crash
    // mid-print can be settled at the next start.
    let cuts = p.cut_count().await.map_err(|e| e.to_string())?;
    let mut printed = None;
    if test_print {
        let id = device_id.unwrap_or_else(default_device_id);
        let now = jiff::Zoned::now()
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string();
        let ticket = TicketBuilder::new()
            .align(Align::Center)
            .size(2, 2)
            .line("测试票 TEST")
            .size(1, 1)
            .line(&format!("设备 Device: {id}"))
            .line(&now)
            .qr(&format!("TEST {id} {now}"), 6, QrEcc::M)
            .map_err(|e| e.to_string())?
            .line("打印测试 Print test: not a ticket")
            .feed(2)
            .cut();
        printed = Some(p.print(&ticket).await);
    }
    if json {
        let mut v = json!({
            "ok": status.ready() && printed.as_ref().is_none_or(|r| r.is_ok()),
            "port": port,
            "baud": baud,
            "ready": status.ready(),
            "problem": status.problem(),
            "status": status,
            "completion": completion.describe(),
            "cut_counter": cuts,
        });
        if let Some(r) = &printed {
            v["test_print"] = match r {
                Ok(_) => json!("ok"),
                Err(e) => json!(e.to_string()),
            };
        }
        println!("{v:#}");
    } else {
        print!("{}", status_text(port, baud, &status));
        println!("prints are confirmed by: {}", completion.describe());
        match cuts {
            Some(n) => println!(
                "cut counter (GS g 2): {n} cuts; a ticket a crash leaves mid-print is settled by it at the next start"
            ),
            None => println!(
                "cut counter: none (no answer to GS g 2); a ticket a crash leaves mid-print waits for an engineer"
            ),
        }
        match &printed {
            Some(Ok(_)) => println!("\ntest ticket printed: check the QR code and the cut"),
            Some(Err(e)) => println!("\ntest print FAILED: {e}"),
            None => {}
        }
    }
    match printed {
        Some(Err(PrinterError::NotReady { problem, .. })) => {
            Err(format!("printer not ready: {problem}"))
        }
        Some(Err(e)) => Err(e.to_string()),
        _ if !status.ready() && !json => Err(format!(
            "printer not ready: {}",
            status.problem().unwrap_or("?")
        )),
        _ => Ok(()),
    }
}

/// Waits until the device is connected, or has failed [`FAILED_AFTER`]
/// attempts in a row (each attempt's error is logged as it happens): a probe
/// fails within seconds instead of retrying forever, but a single bad frame
/// does not fail it.
async fn connected<E>(dev: &Device<E>) -> Result<(), String> {
    let mut rx = dev.watch_state();
    let state = rx
        .wait_for(|s| matches!(s, DeviceState::Connected | DeviceState::Failed { .. }))
        .await
        .map_err(|_| "device task ended".to_owned())?
        .clone();
    match state {
        DeviceState::Failed { error } => Err(format!("{error} (after {FAILED_AFTER} attempts)")),
        _ => Ok(()),
    }
}

fn clock(at: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_default()
}

async fn until_ctrl_c<F: std::future::Future<Output = Result<(), String>>>(
    f: F,
) -> Result<(), String> {
    tokio::select! {
        r = f => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn scanner(port: ScannerPort, count: Option<u64>, json: bool) -> Result<(), String> {
    let mut dev = hal::scanner::spawn("probe", port);
    connected(&dev).await?;
    // stderr even with --json: stdout stays pure JSON.
    eprintln!("scanner connected: scan codes now (Ctrl-C stops)");
    until_ctrl_c(async {
        let mut n = 0;
        while count.is_none_or(|c| n < c) {
            let Some(scan) = dev.next().await else { break };
            if json {
                println!("{}", json!({ "text": scan.text, "at": clock(scan.at) }));
            } else {
                println!("[{}] {}", clock(scan.at), scan.text);
            }
            n += 1;
        }
        Ok(())
    })
    .await
}

async fn ic_reader(port: &Path, baud: u32, count: Option<u64>, json: bool) -> Result<(), String> {
    let mut dev = hal::iccard::spawn("probe", port, baud);
    connected(&dev).await?;
    // stderr even with --json: stdout stays pure JSON.
    eprintln!("IC-card reader connected: present cards now (Ctrl-C stops)");
    until_ctrl_c(async {
        let mut n = 0;
        while count.is_none_or(|c| n < c) {
            let Some(event) = dev.next().await else { break };
            let (what, uid, at) = match &event {
                hal::iccard::IcEvent::Present { uid, at, .. } => ("present", uid, at),
                hal::iccard::IcEvent::Removed { uid, at, .. } => ("removed", uid, at),
            };
            if json {
                println!("{}", json!({ "event": what, "uid": uid, "at": clock(*at) }));
            } else {
                println!("[{}] {what:<8} {uid}", clock(*at));
            }
            n += 1;
        }
        Ok(())
    })
    .await
}

/// The address masked like a name: first characters kept.
fn mask_address(a: &str) -> String {
    a.chars()
        .enumerate()
        .map(|(i, c)| if i < 3 { c } else { '*' })
        .collect()
}

fn card_json(c: &IdCard, show_pii: bool) -> serde_json::Value {
    let pii = |clear: &str, masked: String| if show_pii { clear.to_owned() } else { masked };
    json!({
        "kind": c.kind.names().1,
        "kind_zh": c.kind.names().0,
        "name": pii(&c.name, sam::mask_name(&c.name)),
        "english_name": pii(&c.english_name, sam::mask_name(&c.english_name)),
        "nationality": c.nationality,
        "pass_number": pii(&c.pass_number, sam::mask_id(&c.pass_number)),
        "issue_count": c.issue_count,
        "sex": c.sex,
        "nation": c.nation(),
        "birth": c.birth.map(|d| d.to_string()),
        "address": pii(&c.address, mask_address(&c.address)),
        "id_number": pii(&c.id_number, sam::mask_id(&c.id_number)),
        "issuer": c.issuer,
        "valid_from": c.valid_from.map(|d| d.to_string()),
        "valid_to": c.valid_to.map(|d| d.to_string()),
        "check_digit_ok": c.check_digit_ok(),
    })
}

async fn id_reader(
    port: &Path,
    baud: u32,
    timeout: u64,
    show_pii: bool,
    json: bool,
) -> Result<(), String> {
    let mut dev = hal::idcard::spawn("probe", port, baud);
    connected(&dev).await?;
    // stderr even with --json: stdout stays pure JSON.
    eprintln!("ID-card reader connected: place a card (waiting {timeout} s)");
    let read = tokio::time::timeout(Duration::from_secs(timeout), dev.next())
        .await
        .map_err(|_| format!("{}: no card presented within {timeout} s", port.display()))?
        .ok_or("reader task ended")?;
    let v = card_json(&read.card, show_pii);
    if json {
        println!("{v:#}");
    } else {
        let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
        let c = &read.card;
        println!("card        {} / {}", s("kind_zh"), s("kind"));
        println!("name        {}", s("name"));
        if !c.english_name.is_empty() {
            println!("name (en)   {}", s("english_name"));
        }
        println!("sex         {}", c.sex);
        if !c.nationality.is_empty() {
            match hal::idcard::nationality::names(&c.nationality) {
                Some((zh, en)) => println!("nationality {} {zh} / {en}", c.nationality),
                None => println!("nationality {} (not a GB/T 2659 code)", c.nationality),
            }
        }
        if !c.nation_code.is_empty() {
            println!("nation      {} ({})", s("nation"), c.nation_code);
        }
        println!("birth       {}", s("birth"));
        if !c.address.is_empty() {
            println!("address     {}", s("address"));
        }
        if !c.pass_number.is_empty() {
            println!(
                "pass        {}  (issue count {})",
                s("pass_number"),
                c.issue_count
            );
        }
        println!(
            "id number   {}  (check digit {})",
            s("id_number"),
            if read.card.check_digit_ok() {
                "ok"
            } else {
                "WRONG"
            }
        );
        println!("issuer      {}", s("issuer"));
        println!("valid       {} to {}", s("valid_from"), s("valid_to"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum GateAction {
    Open(hal::gate::Direction, u32, Duration),
    Mode(hal::gate::GateMode),
    Watch(Option<u64>),
}

async fn gate_probe<G: hal::gate::Gate>(
    gate: &G,
    action: GateAction,
    json: bool,
) -> Result<(), String> {
    match action {
        GateAction::Open(dir, persons, timeout) => {
            let before = gate.status().await.map_err(|e| e.to_string())?;
            let outcome =
                tokio::time::timeout(timeout + Duration::from_secs(2), gate.open(dir, persons))
                    .await
                    .map_err(|_| "the gate never answered the authorisation".to_owned())?;
            let after = gate.status().await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{:#}",
                    json!({
                        "ok": matches!(outcome, hal::gate::Outcome::Passed { .. }),
                        "direction": dir,
                        "persons": persons,
                        "outcome": outcome,
                        "before": before,
                        "after": after,
                    })
                );
            } else {
                let what = match &outcome {
                    hal::gate::Outcome::Passed { persons: p } => {
                        format!("passed ({p} of {persons})")
                    }
                    hal::gate::Outcome::NotPassed => {
                        "not_passed: nobody went through before the timeout".into()
                    }
                    hal::gate::Outcome::Alarm { kind, persons: p } => {
                        format!("alarm: {kind:?} ({p} passed)")
                    }
                    hal::gate::Outcome::Fault { why } => format!("fault: {why}"),
                };
                let dir = format!("{dir:?}").to_lowercase();
                println!("open {dir} for {persons}: {what}");
                println!(
                    "  entry counter  {} -> {}",
                    before.entry_counter, after.entry_counter
                );
                println!(
                    "  exit counter   {} -> {}",
                    before.exit_counter, after.exit_counter
                );
            }
            match outcome {
                hal::gate::Outcome::Fault { why } => Err(why),
                _ => Ok(()),
            }
        }
        GateAction::Mode(mode) => {
            gate.set_mode(mode).await.map_err(|e| e.to_string())?;
            let s = gate.status().await.map_err(|e| e.to_string())?;
            if json {
                println!("{:#}", json!({ "ok": true, "mode": mode, "status": s }));
            } else {
                println!(
                    "gate mode set to {}; the gate reports {}",
                    format!("{mode:?}").to_lowercase(),
                    s.mode
                        .map_or("no mode register".into(), |m| format!("{m:?}")
                            .to_lowercase())
                );
            }
            Ok(())
        }
        GateAction::Watch(count) => {
            let mut events = gate.events();
            let s = gate.status().await.map_err(|e| e.to_string())?;
            eprintln!(
                "watching the gate (entry {} / exit {} passages so far); Ctrl-C stops",
                s.entry_counter, s.exit_counter
            );
            until_ctrl_c(async {
                let mut n = 0;
                while count.is_none_or(|c| n < c) {
                    let e = events.recv().await.map_err(|e| e.to_string())?;
                    let at = clock(std::time::SystemTime::now());
                    if json {
                        let mut v = json!(e);
                        v["at"] = json!(at);
                        println!("{v}");
                    } else {
                        println!("[{at}] {e:?}");
                    }
                    n += 1;
                }
                Ok(())
            })
            .await
        }
    }
}

fn power_fail_line(spec: &str, active_low: bool) -> Result<Device<hal::power::PowerState>, String> {
    let (chip, line) = spec
        .rsplit_once(':')
        .and_then(|(c, l)| Some((c, l.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("`{spec}` is not CHIP:LINE (for example /dev/gpiochip0:6)"))?;
    let input = hal::gpio::cdev::CdevInput::open(chip, line, "gatectl")
        .map_err(|e| format!("{chip} line {line}: {e}"))?;
    Ok(hal::power::spawn_gpio(
        "power-fail line",
        input,
        active_low,
        Duration::from_millis(50),
    ))
}

async fn ups(
    mut src: Device<hal::power::PowerState>,
    watch: Option<Option<u64>>,
    json: bool,
) -> Result<(), String> {
    connected(&src).await?;
    let print = |s: &hal::power::PowerState| {
        if json {
            let mut v = json!(s);
            v["at"] = json!(clock(std::time::SystemTime::now()));
            println!("{v}");
        } else {
            println!("[{}] {s}", clock(std::time::SystemTime::now()));
        }
    };
    let first = src.next().await.ok_or("UPS source ended")?;
    print(&first);
    let Some(count) = watch else { return Ok(()) };
    until_ctrl_c(async {
        let mut n = 1;
        while count.is_none_or(|c| n < c) {
            let Some(s) = src.next().await else { break };
            print(&s);
            n += 1;
        }
        Ok(())
    })
    .await
}

async fn modbus_gate(
    addr: &str,
    unit: u8,
    map: &str,
    timeout: u64,
    action: GateAction,
    json: bool,
) -> Result<(), String> {
    use hal::gate::modbus::{self, ModbusSettings};
    let address = addr.parse()?;
    let map = hal::gate::RegisterMap::load(map)?;
    let gate = modbus::spawn(ModbusSettings {
        passage_timeout: Duration::from_secs(timeout),
        ..ModbusSettings::new(address, unit, map)
    });
    let state = gate
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Connected | DeviceState::Failed { .. }))
        .await
        .map_err(|_| "gate task ended".to_owned())?
        .clone();
    match state {
        DeviceState::Failed { error } => Err(format!("{error} (after {FAILED_AFTER} attempts)")),
        _ => gate_probe(&gate, action, json).await,
    }
}

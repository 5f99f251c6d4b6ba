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
        "name": pii(&c.name, sam::mask_name(&c.name)),
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
        println!("name        {}", s("name"));
        println!("sex         {}", read.card.sex);
        println!("nation      {} ({})", s("nation"), read.card.nation_code);
        println!("birth       {}", s("birth"));
        println!("address     {}", s("address"));
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

//! hal-sim: device simulators on pseudo-terminals, for the demo and for
//! trying gatectl probes without hardware. Each creates a PTY, links its
//! device end at `--pty PATH`, and takes commands on stdin.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hal::idcard::Sw3;
use hal::idcard::sam::{mask_id, mask_name};
use hal::idcard::sim::{Fault, SimIdReader, test_cards};
use hal::printer::Paper;
use hal::printer::sim::SimPrinter;
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Simulated devices speaking their real protocols on a pseudo-terminal.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    device: Device,
}

#[derive(Debug, Subcommand)]
enum Device {
    /// ESC/POS ticket printer. Prints each ticket it receives to stdout.
    /// stdin: `paper ok|near-end|out`, `cover open|closed`, `silent on|off`,
    /// `power cycle` (what is in its buffer is lost).
    Printer {
        /// Where to link the device end of the PTY (what gated opens).
        #[arg(long)]
        pty: PathBuf,
        /// Tickets left on the roll before the paper runs out.
        #[arg(long)]
        paper_left: Option<u32>,
        /// Ignore `GS r` (an optional ESC/POS command many printers lack).
        #[arg(long)]
        no_gs_r: bool,
        /// Ignore `GS g 2` (the maintenance counters; optional too).
        #[arg(long)]
        no_counters: bool,
        /// Milliseconds each ticket takes to print, up to its cut.
        #[arg(long, default_value_t = 0)]
        print_ms: u64,
    },
    /// Serial QR/barcode scanner. stdin: one code per line, sent with CR.
    Scanner {
        #[arg(long)]
        pty: PathBuf,
    },
    /// USB keyboard-type scanner as a kernel input device (uinput): types
    /// each stdin line with the US layout and Enter, as such a scanner does.
    /// Prints the event node (e.g. /dev/input/event3) once it exists.
    UinputScanner {
        /// The device's name (what `/proc/bus/input/devices` shows).
        #[arg(long, default_value = "hal-sim virtual scanner")]
        name: String,
    },
    /// A kiosk's touch panel as a kernel input device (uinput): a direct
    /// multi-touch screen, as libinput sees one. stdin: `tap X Y` (panel
    /// pixels from the top left), answered `tapped X Y` on stdout. Prints
    /// the event node first.
    UinputTouch {
        #[arg(long, default_value = "hal-sim virtual touch panel")]
        name: String,
        /// The panel's size in pixels (its axes' ranges).
        #[arg(long, default_value_t = 1080)]
        width: i32,
        #[arg(long, default_value_t = 1920)]
        height: i32,
    },
    /// 2nd-gen ID-card reader (SAM protocol). stdin: `present N` (a test
    /// card), `remove`, `fault checksum|truncate|status HEX`, `silent on|off`.
    IdReader {
        #[arg(long)]
        pty: PathBuf,
    },
    /// Contactless IC-card reader printing UIDs as hex lines.
    /// stdin: `present UID`, `remove`.
    IcReader {
        #[arg(long)]
        pty: PathBuf,
    },
    /// Gate controller over Modbus TCP (--tcp) or RTU on a PTY (--rtu).
    /// stdin: `walk entry|exit`, `tailgate entry|exit`, `push entry|exit`
    /// (against that direction's authorisation), `fire on|off`, `alarm on|off`,
    /// `silent on|off`, `auto-walk on|off`.
    Gate {
        /// Listen for Modbus TCP on HOST:PORT.
        #[arg(long, conflicts_with = "rtu", required_unless_present = "rtu")]
        tcp: Option<std::net::SocketAddr>,
        /// Serve Modbus RTU on a PTY linked at PATH.
        #[arg(long)]
        rtu: Option<PathBuf>,
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// Register map: lot, coil-example or a file.
        #[arg(long, default_value = "lot")]
        map: String,
        /// turnstile or wing.
        #[arg(long, default_value = "turnstile")]
        kind: String,
        /// Visitors walk through as soon as a passage is authorised.
        #[arg(long)]
        auto_walk: bool,
    },
    /// NUT upsd with one UPS. stdin: `set VAR VALUE` (e.g. `set ups.status OB LB`).
    Nut {
        #[arg(long, default_value = "127.0.0.1:3493")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "ups")]
        ups: String,
    },
    /// UPower service on a D-Bus bus. stdin: `battery on|off`,
    /// `level PERCENT SECONDS WARNING` (warning 3 = low, 4 = critical).
    Upower {
        /// Bus address (e.g. from `dbus-daemon --session --print-address`).
        #[arg(long)]
        bus: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli.device).await {
        eprintln!("hal-sim: {e}");
        std::process::exit(1);
    }
}

async fn run(device: Device) -> Result<(), String> {
    let open = |path: &PathBuf| {
        Pty::open_at(path).map_err(|e| format!("cannot create a PTY at {}: {e}", path.display()))
    };
    let mut stdin = Commands(BufReader::new(tokio::io::stdin()).lines());
    match device {
        Device::Printer {
            pty,
            paper_left,
            no_gs_r,
            no_counters,
            print_ms,
        } => {
            let pty = open(&pty)?;
            eprintln!("printer on {}", pty.path().display());
            let sim = SimPrinter::start(pty);
            sim.set_paper_left(paper_left);
            sim.set_gs_r(!no_gs_r);
            sim.set_counters(!no_counters);
            sim.set_print_time(std::time::Duration::from_millis(print_ms));
            let mut shown = 0;
            loop {
                tokio::select! {
                    tickets = sim.wait_for_tickets(shown + 1) => {
                        for t in &tickets[shown..] {
                            println!("--- ticket {} ---", shown + 1);
                            for l in &t.lines { println!("{l}"); }
                            for q in &t.qr { println!("[QR] {q}"); }
                            for b in &t.barcodes { println!("[barcode] {b}"); }
                            shown += 1;
                        }
                    }
                    line = stdin.next() => {
                        match line.split_whitespace().collect::<Vec<_>>()[..] {
                            ["paper", "ok"] => sim.set_paper(Paper::Ok),
                            ["paper", "near-end"] => sim.set_paper(Paper::NearEnd),
                            ["paper", "out"] => sim.set_paper(Paper::Out),
                            ["cover", "open"] => sim.set_cover_open(true),
                            ["cover", "closed"] => sim.set_cover_open(false),
                            ["power", "cycle"] => sim.power_cycle(),
                            ["silent", on] => sim.set_silent(on == "on"),
                            _ => eprintln!("? paper ok|near-end|out, cover open|closed, silent on|off"),
                        }
                    }
                }
            }
        }
        Device::Scanner { pty } => {
            let sim = SimScanner::new(open(&pty)?);
            eprintln!(
                "scanner on {}: type a code and Enter",
                sim.pty.path().display()
            );
            loop {
                let line = stdin.next().await;
                sim.scan(line.trim_end()).await.map_err(|e| e.to_string())?;
            }
        }
        Device::UinputScanner { name } => {
            let (mut dev, node) = uinput_scanner(&name)
                .map_err(|e| format!("cannot create a uinput device (/dev/uinput): {e}"))?;
            println!("{}", node.display());
            eprintln!(
                "scanner {name:?} on {}: type a code and Enter",
                node.display()
            );
            loop {
                let line = stdin.next().await;
                let code = line.trim_end();
                let Some(keys) = hal::scanner::keymap::keys_for(code) else {
                    eprintln!("? {code:?} has a character no US-layout key gives");
                    continue;
                };
                type_keys(&mut dev, &keys).map_err(|e| format!("uinput: {e}"))?;
            }
        }
        Device::UinputTouch {
            name,
            width,
            height,
        } => {
            let (mut dev, node) = uinput_touch(&name, width, height)
                .map_err(|e| format!("cannot create a uinput device (/dev/uinput): {e}"))?;
            println!("{}", node.display());
            eprintln!(
                "touch panel {name:?} ({width}x{height}) on {}",
                node.display()
            );
            let mut id = 0;
            loop {
                let line = stdin.next().await;
                let xy: Vec<i32> = line
                    .strip_prefix("tap ")
                    .map(|r| {
                        r.split_whitespace()
                            .filter_map(|n| n.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                let [x, y] = xy[..] else {
                    eprintln!("? {:?}: expected `tap X Y`", line.trim_end());
                    continue;
                };
                if !(0..width).contains(&x) || !(0..height).contains(&y) {
                    eprintln!("? ({x}, {y}) is off the {width}x{height} panel");
                    continue;
                }
                id += 1;
                tap(&mut dev, id, x, y).map_err(|e| format!("uinput: {e}"))?;
                println!("tapped {x} {y}");
            }
        }
        Device::IdReader { pty } => {
            let pty = open(&pty)?;
            eprintln!("ID-card reader on {}; test cards:", pty.path().display());
            let cards = test_cards();
            for (i, c) in cards.iter().enumerate() {
                eprintln!("  {i}: {} {}", mask_name(&c.name), mask_id(&c.id_number));
            }
            let sim = SimIdReader::start(pty);
            loop {
                let line = stdin.next().await;
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["present", n] => match n.parse::<usize>().ok().and_then(|n| cards.get(n)) {
                        Some(c) => sim.present(c.clone()),
                        None => eprintln!("? no test card {n}"),
                    },
                    ["remove"] => sim.remove(),
                    ["fault", "checksum"] => sim.inject(Fault::BadChecksum),
                    ["fault", "truncate"] => sim.inject(Fault::Truncate),
                    ["fault", "status", hex] => {
                        match u8::from_str_radix(hex.trim_start_matches("0x"), 16) {
                            Ok(b) => sim.inject(Fault::Status(Sw3::from_byte(b))),
                            Err(_) => eprintln!("? status is a hex byte, e.g. 41"),
                        }
                    }
                    ["silent", on] => sim.set_silent(on == "on"),
                    _ => eprintln!(
                        "? present N, remove, fault checksum|truncate|status HEX, silent on|off"
                    ),
                }
            }
        }
        Device::Gate {
            tcp,
            rtu,
            baud,
            unit,
            map,
            kind,
            auto_walk,
        } => {
            use hal::gate::Direction;
            use hal::gate::sim::{GateKind, SimGate};
            let map = hal::gate::RegisterMap::load(&map)?;
            // A command for an input the map lacks would change nothing gated can see.
            let (has_fire, has_alarm) = (map.fire.is_some(), map.alarm.is_some());
            let map_name = map.name.clone();
            let missing = |what: &str| {
                format!(
                    "? the {map_name} map has no {what} input: gated cannot see it (a map with one: --map coil-example)"
                )
            };
            let kind = match kind.as_str() {
                "turnstile" => GateKind::Turnstile,
                "wing" => GateKind::WingGate,
                k => return Err(format!("`{k}` is not a gate kind: turnstile or wing")),
            };
            let sim = SimGate::new(kind, map, unit);
            sim.set_auto_walk(auto_walk);
            let _server: Box<dyn std::any::Any> = match (tcp, rtu) {
                (Some(addr), _) => {
                    let (at, server) = sim
                        .serve_tcp(addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    eprintln!("{kind:?} on modbus tcp://{at} unit {unit}");
                    Box::new(server)
                }
                (None, Some(path)) => {
                    let server = sim
                        .serve_rtu(&path, baud)
                        .map_err(|e| format!("cannot serve RTU at {}: {e}", path.display()))?;
                    eprintln!(
                        "{kind:?} on modbus rtu:{}@{baud} unit {unit}",
                        path.display()
                    );
                    Box::new(server)
                }
                (None, None) => unreachable!("clap requires one"),
            };
            loop {
                let line = stdin.next().await;
                let words: Vec<&str> = line.split_whitespace().collect();
                let dir = |w: &str| w.parse::<Direction>();
                match words[..] {
                    ["walk", d] => match dir(d) {
                        Ok(d) => eprintln!("{}", if sim.walk(d) { "passed" } else { "blocked" }),
                        Err(e) => eprintln!("? {e}"),
                    },
                    ["tailgate", d] => match dir(d) {
                        Ok(d) => eprintln!("{} passed", sim.tailgate(d)),
                        Err(e) => eprintln!("? {e}"),
                    },
                    ["push", d] => match dir(d) {
                        Ok(d) => eprintln!(
                            "{}",
                            if sim.push_wrong_way(d) {
                                "got through the wrong way"
                            } else {
                                "blocked"
                            }
                        ),
                        Err(e) => eprintln!("? {e}"),
                    },
                    ["fire", _] if !has_fire => eprintln!("{}", missing("fire")),
                    ["alarm", _] if !has_alarm => eprintln!("{}", missing("alarm")),
                    ["fire", on] => sim.set_fire(on == "on"),
                    ["alarm", on] => sim.set_alarm(on == "on"),
                    ["silent", on] => sim.set_silent(on == "on"),
                    ["auto-walk", on] => sim.set_auto_walk(on == "on"),
                    _ => eprintln!(
                        "? walk|tailgate|push entry|exit, fire|alarm|silent|auto-walk on|off"
                    ),
                }
            }
        }
        Device::Nut { listen, ups } => {
            let (upsd, at) = hal::power::sim::SimUpsd::start(listen, &ups)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            eprintln!("upsd on {at}, UPS `{ups}`: ups.status OL");
            loop {
                let line = stdin.next().await;
                match line.splitn(3, ' ').collect::<Vec<_>>()[..] {
                    ["set", var, value] => upsd.set(var, value.trim()),
                    _ => eprintln!("? set VAR VALUE"),
                }
            }
        }
        Device::Upower { bus } => {
            let up = hal::power::sim::SimUPower::start(&bus)
                .await
                .map_err(|e| format!("cannot serve UPower on {bus}: {e}"))?;
            eprintln!("UPower on {bus}: on mains, 100 %");
            loop {
                let line = stdin.next().await;
                let r = match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["battery", on] => up.set_on_battery(on == "on").await,
                    ["level", p, s, w] => match (p.parse(), s.parse(), w.parse()) {
                        (Ok(p), Ok(s), Ok(w)) => up.set_battery(p, s, w).await,
                        _ => {
                            eprintln!("? level PERCENT SECONDS WARNING");
                            Ok(())
                        }
                    },
                    _ => {
                        eprintln!("? battery on|off, level PERCENT SECONDS WARNING");
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    eprintln!("UPower: {e}");
                }
            }
        }
        Device::IcReader { pty } => {
            let pty = open(&pty)?;
            eprintln!("IC-card reader on {}", pty.path().display());
            let sim = hal::iccard::sim::SimIcReader::start(pty, Duration::from_millis(200));
            loop {
                let line = stdin.next().await;
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["present", uid] => sim.present(uid),
                    ["remove"] => sim.remove(),
                    _ => eprintln!("? present UID, remove"),
                }
            }
        }
    }
}

/// Command lines from stdin. At end of input (a simulator started in the
/// background) the device keeps running, taking no more commands.
struct Commands(tokio::io::Lines<BufReader<tokio::io::Stdin>>);

impl Commands {
    async fn next(&mut self) -> String {
        match self.0.next_line().await {
            Ok(Some(line)) => line,
            _ => std::future::pending().await,
        }
    }
}

/// A keyboard with every key a scanner sends, and its /dev/input/event* node.
fn uinput_scanner(
    name: &str,
) -> std::io::Result<(evdev::uinput::VirtualDevice, std::path::PathBuf)> {
    let mut keys = evdev::AttributeSet::<evdev::KeyCode>::new();
    for k in 0..=0x2FFu16 {
        let k = evdev::KeyCode::new(k);
        if hal::scanner::keymap::char_for(k, false, false).is_some() {
            keys.insert(k);
        }
    }
    for k in [
        evdev::KeyCode::KEY_LEFTSHIFT,
        evdev::KeyCode::KEY_ENTER,
        evdev::KeyCode::KEY_KPENTER,
    ] {
        keys.insert(k);
    }
    let dev = evdev::uinput::VirtualDevice::builder()?
        .name(name)
        .with_keys(&keys)?
        .build()?;
    with_node(dev)
}

/// The device and its /dev/input/event* node, which udev makes a moment
/// after the device exists.
fn with_node(
    mut dev: evdev::uinput::VirtualDevice,
) -> std::io::Result<(evdev::uinput::VirtualDevice, std::path::PathBuf)> {
    for _ in 0..200 {
        if let Some(node) = dev
            .enumerate_dev_nodes_blocking()?
            .filter_map(Result::ok)
            .find(|p| p.exists())
        {
            return Ok((dev, node));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(std::io::Error::other("no /dev/input/event* node appeared"))
}

/// A direct-touch panel (INPUT_PROP_DIRECT, multi-touch protocol B): udev
/// tags it ID_INPUT_TOUCHSCREEN, so libinput hands its touches to the app
/// in panel coordinates.
fn uinput_touch(
    name: &str,
    width: i32,
    height: i32,
) -> std::io::Result<(evdev::uinput::VirtualDevice, std::path::PathBuf)> {
    use evdev::{AbsInfo, AbsoluteAxisCode as Abs, UinputAbsSetup};
    let axis = |code, max| UinputAbsSetup::new(code, AbsInfo::new(0, 0, max, 0, 0, 0));
    let mut keys = evdev::AttributeSet::<evdev::KeyCode>::new();
    keys.insert(evdev::KeyCode::BTN_TOUCH);
    let mut props = evdev::AttributeSet::<evdev::PropType>::new();
    props.insert(evdev::PropType::DIRECT);
    let dev = evdev::uinput::VirtualDevice::builder()?
        .name(name)
        .with_keys(&keys)?
        .with_properties(&props)?
        .with_absolute_axis(&axis(Abs::ABS_X, width - 1))?
        .with_absolute_axis(&axis(Abs::ABS_Y, height - 1))?
        .with_absolute_axis(&axis(Abs::ABS_MT_SLOT, 9))?
        .with_absolute_axis(&axis(Abs::ABS_MT_TRACKING_ID, 65535))?
        .with_absolute_axis(&axis(Abs::ABS_MT_POSITION_X, width - 1))?
        .with_absolute_axis(&axis(Abs::ABS_MT_POSITION_Y, height - 1))?
        .build()?;
    with_node(dev)
}

/// One finger down at (x, y), held as long as a visitor's tap (80 ms), and up.
fn tap(dev: &mut evdev::uinput::VirtualDevice, id: i32, x: i32, y: i32) -> std::io::Result<()> {
    use evdev::{AbsoluteAxisCode as Abs, EventType, InputEvent, KeyCode};
    let abs = |c: Abs, v: i32| InputEvent::new(EventType::ABSOLUTE.0, c.0, v);
    let touch = |v: i32| InputEvent::new(EventType::KEY.0, KeyCode::BTN_TOUCH.0, v);
    dev.emit(&[
        abs(Abs::ABS_MT_SLOT, 0),
        abs(Abs::ABS_MT_TRACKING_ID, id),
        abs(Abs::ABS_MT_POSITION_X, x),
        abs(Abs::ABS_MT_POSITION_Y, y),
        touch(1),
        abs(Abs::ABS_X, x),
        abs(Abs::ABS_Y, y),
    ])?;
    std::thread::sleep(Duration::from_millis(80));
    dev.emit(&[abs(Abs::ABS_MT_TRACKING_ID, -1), touch(0)])
}

/// Key down and up for each key (with shift around it where needed), then
/// Enter, one report per USB HID poll (2 ms), as a scanner sends them. All
/// at once would overflow the reader's evdev buffer (64 events), which a
/// real scanner never does.
fn type_keys(
    dev: &mut evdev::uinput::VirtualDevice,
    keys: &[(evdev::KeyCode, bool)],
) -> std::io::Result<()> {
    use evdev::{EventType, InputEvent, KeyCode};
    let ev = |k: KeyCode, v: i32| InputEvent::new(EventType::KEY.0, k.0, v);
    let shift = KeyCode::KEY_LEFTSHIFT;
    let poll = Duration::from_millis(2);
    for &(k, shifted) in keys.iter().chain([(KeyCode::KEY_ENTER, false)].iter()) {
        if shifted {
            dev.emit(&[ev(shift, 1), ev(k, 1)])?;
        } else {
            dev.emit(&[ev(k, 1)])?;
        }
        std::thread::sleep(poll);
        if shifted {
            dev.emit(&[ev(k, 0), ev(shift, 0)])?;
        } else {
            dev.emit(&[ev(k, 0)])?;
        }
        std::thread::sleep(poll);
    }
    Ok(())
}

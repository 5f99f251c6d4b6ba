//! gatectl: the field engineer's tool for provisioning, checking and testing
//! a kiosk or lane device.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod central;
mod probe;
mod update;

use clap::{Parser, Subcommand};
use gated::config::{self, Config, ConfigError, DeviceCheck};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "gatectl",
    version,
    about = "Field engineer's tool for the kiosk and gate appliance",
    long_about = "Field engineer's tool for the kiosk and gate appliance.\n\n\
        Checks a device's configuration before gated uses it, enrolls it with the central \
        system, shows its status, and probes single devices \
        (printer, scanners, ID/IC-card readers) directly. Output is for people by default; \
        pass --json for scripts (one JSON document on stdout, or one per line for streams).\n\n\
        Exit codes: 0 success, 1 failure, 2 invalid configuration or usage."
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with gated's configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Talk to one device directly (stop gated first: ports are exclusive).
    #[command(subcommand)]
    Probe(probe::Probe),
    /// Enroll this device with the central system using a one-time pairing code.
    ///
    /// The code may also be the text of a setup code (`S1:…`, the QR code the
    /// central system prints for the device): it names the central system
    /// and the device id itself; the device's `[central] ca_file` decides
    /// whether that central system is trusted. The device makes its own key pair (the private key never leaves it) and
    /// stores what the central system returns in gated's state directory.
    /// Prints what was received, never the secrets.
    Provision {
        /// The pairing code the central system's operator gave you, or a setup code's text.
        #[arg(long, required_unless_present = "code_file")]
        code: Option<String>,
        /// Read the pairing code from FILE (first-boot provisioning,
        /// gated-provision.service): it stays out of the process list.
        #[arg(long, value_name = "FILE", conflicts_with = "code")]
        code_file: Option<PathBuf>,
        /// The central system's API URL (default: central.url in the config).
        #[arg(long, value_name = "URL")]
        central: Option<String>,
        #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print a ticket again at this kiosk (through the running gated); the
    /// reason and who asked are recorded and reported to the central system.
    Reprint {
        /// The ticket's id (printed on it as S + id).
        ticket: u64,
        #[arg(long)]
        reason: String,
    },
    /// Change a lane through the running gated: `mode normal|free|locked`, or
    /// `open [entry|exit]` once for one person without a ticket (recorded).
    Lane {
        /// The lane's name in gated.toml.
        name: String,
        /// `mode` or `open`.
        #[arg(value_parser = ["mode", "open"])]
        action: String,
        /// For `mode`: normal, free or locked; for `open`: entry (default) or exit.
        #[arg(default_value = "")]
        arg: String,
    },
    /// End a fire alarm that stays after its input cleared (`[fire]
    /// reset_by_engineer`): `gatectl alarm reset`. Check the lanes first
    /// (drop-arm turnstiles need their arms lifted).
    Alarm {
        #[arg(value_parser = ["reset"])]
        action: String,
    },
    /// Peak mode for a lane group: its lanes admit entries only (exit lanes
    /// take entries, a two-way lane's exit side is closed) and the re-entry
    /// rules in `[peak]` are lifted. `gatectl peak GROUP on|off`.
    Peak {
        group: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// A guided self-test of one device through the running gated; prints
    /// PASS or FAIL with what to check.
    Test {
        /// printer, scanner, id-reader, ic-reader, gate or ups.
        #[arg(value_parser = ["printer", "scanner", "id-reader", "ic-reader", "gate", "ups"])]
        device: String,
        /// The device's name in gated.toml (for a gate: the lane's); default any.
        #[arg(default_value = "")]
        name: String,
    },
    /// The device's recent events (passages, prints, reprints, orders, the
    /// outbox), newest first.
    Logs {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 30)]
        count: u32,
        #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Hash a kiosk service PIN for gated.toml: reads the PIN (4 to 8
    /// digits) from stdin so it stays out of the shell history and prints the
    /// `service_pin_hash` line for the `[kiosk]` table. gated checks the PIN;
    /// the kiosk app never sees it.
    PinHash,
    /// One screen on the device: role, central link, clock skew, outbox, tickets.
    Status {
        #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Visitors in the site and each lane group today (every device's
    /// passages) against the capacities in `[occupancy]`, the tier reached,
    /// and whether kiosk sales for today are stopped.
    Capacity {
        #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<CapacityAction>,
    },
    /// Software updates (A/B slots with RAUC): `install`, `status`.
    #[command(subcommand)]
    Update(UpdateAction),
    /// Writes the bash and zsh completions and the man pages into DIR (the
    /// repository keeps them in gated/doc; the image installs them).
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
enum UpdateAction {
    /// Install a signed RAUC bundle into the slot not booted, through gated:
    /// FILE on this device, or a URL on the central system (fetched over the
    /// same pinned TLS as the rest of its API). Follows the install with a
    /// progress bar; refused while the gates are forced (power fallback,
    /// fire alarm, shutdown); waits for a passage or print under way.
    Install {
        /// The bundle (.raucb): a path, or https://… on the central system.
        source: String,
        /// `now`: reboot into it as soon as nothing is under way; `window`:
        /// in `[update] quiet_window`.
        #[arg(long, default_value = "now", value_parser = ["now", "window"])]
        reboot: String,
    },
    /// Reboot a new slot still on trial (not marked good) long after boot,
    /// even if gated never started to judge it. Run by
    /// gated-update-watchdog.timer, as root; reads gated's update record only.
    Watchdog {
        /// gated's state directory (not read from gated.toml: a new slot's
        /// configuration may be what keeps gated from starting).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/gated")]
        state_dir: PathBuf,
    },
    /// The image version, both slots, the booted one, this boot's health
    /// check and the last update's result.
    Status {
        #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CapacityAction {
    /// A supervisor lets SCOPE ("site" or a lane group) admit past its
    /// instantaneous capacity (`on`), or ends that (`off`). Recorded with the
    /// reason and reported to the central system; it lasts until turned off.
    Override {
        scope: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Why (required with `on`): shown in status and reported.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a gated.toml exactly as gated does at start, and summarise it.
    ///
    /// Reports every problem with file, line, key and what is wrong, and exits 2
    /// if there is any, as gated would refuse to start.
    Check {
        /// The file to check.
        #[arg(default_value = config::DEFAULT_PATH)]
        path: PathBuf,
        /// Do not require device nodes or the central CA file to exist (to check a file on a laptop
        /// before it is copied to the device).
        #[arg(long)]
        skip_devices: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Device warnings (a bad checksum in a frame, a dropped partial code)
    // reach the engineer on stderr.
    gated::logging::init("gatectl", gated::logging::Style::Cli);
    match cli.command {
        Command::Config(ConfigCommand::Check { path, skip_devices }) => {
            let check = if skip_devices {
                DeviceCheck::Skip
            } else {
                DeviceCheck::Present
            };
            config_check(&path, check, cli.json)
        }
        Command::Probe(p) => probe::run(p, cli.json),
        Command::Provision {
            code,
            code_file,
            central: url,
            config,
        } => {
            let code = match (code, code_file) {
                (Some(c), _) => c,
                (None, Some(f)) => match std::fs::read_to_string(&f) {
                    Ok(c) => c.trim().to_owned(),
                    Err(e) => {
                        eprintln!("gatectl: pairing code file {}: {e}", f.display());
                        return ExitCode::FAILURE;
                    }
                },
                (None, None) => unreachable!("clap requires --code or --code-file"),
            };
            central::provision(&config, url.as_deref(), &code, cli.json)
        }
        Command::Status { config } => central::status(&config, cli.json),
        Command::Capacity {
            config,
            action: None,
        } => central::capacity(&config, cli.json),
        Command::Capacity {
            action:
                Some(CapacityAction::Override {
                    scope,
                    state,
                    reason,
                }),
            ..
        } => central::capacity_override(&scope, state == "on", &reason, cli.json),
        Command::Reprint { ticket, reason } => central::reprint(ticket, &reason, cli.json),
        Command::Lane { name, action, arg } => central::lane(&name, &action, &arg, cli.json),
        Command::Test { device, name } => central::self_test(&device, &name, cli.json),
        Command::Logs { count, config } => central::logs(&config, count, cli.json),
        Command::Alarm { action: _ } => central::alarm_reset(cli.json),
        Command::Peak { group, state } => central::peak(&group, state == "on", cli.json),
        Command::PinHash => pin_hash(cli.json),
        Command::GenerateDocs { dir } => match generate_docs(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gatectl: {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::Update(UpdateAction::Install { source, reboot }) => {
            update::install(&source, &reboot, cli.json)
        }
        Command::Update(UpdateAction::Status { config }) => update::status(&config, cli.json),
        Command::Update(UpdateAction::Watchdog { state_dir }) => {
            update::watchdog(&state_dir, cli.json)
        }
    }
}

fn pin_hash(json: bool) -> ExitCode {
    let mut pin = String::new();
    if let Err(e) = io::stdin().read_line(&mut pin) {
        eprintln!("gatectl: reading the PIN from stdin: {e}");
        return ExitCode::FAILURE;
    }
    use gated::service_pin::{ITERATIONS, PinHash};
    match PinHash::new(pin.trim(), ITERATIONS) {
        Ok(h) if json => {
            println!("{}", json!({ "service_pin_hash": h.to_string() }));
            ExitCode::SUCCESS
        }
        Ok(h) => {
            println!("[kiosk]\nservice_pin_hash = \"{h}\"");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatectl: {e}");
            ExitCode::from(2)
        }
    }
}

fn config_check(path: &std::path::Path, check: DeviceCheck, json: bool) -> ExitCode {
    let result = config::load(path, check);
    let code = if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    let out = match (&result, json) {
        (Ok(c), true) => format!("{:#}\n", summary_json(path, c)),
        (Err(e), true) => format!("{:#}\n", problems_json(path, e)),
        (Ok(c), false) => summary_text(path, c),
        (Err(e), false) => {
            // Problems go to stderr, as gated prints them.
            eprintln!("{e}");
            eprintln!(
                "{}: {} problem(s); gated would refuse to start",
                path.display(),
                e.problems.len()
            );
            return code;
        }
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = io::stdout().write_all(out.as_bytes());
    code
}

/// One attached device as the engineer thinks of it: family, name, where.
fn devices(c: &Config) -> Vec<(&'static str, String, String)> {
    let d = &c.devices;
    let mut v = Vec::new();
    if let Some(p) = &d.printer {
        v.push((
            "printer",
            "printer".into(),
            p.get_ref().port.get_ref().display().to_string(),
        ));
    }
    for (n, s) in &d.scanners {
        let s = s.get_ref();
        let at = match (&s.port, &s.evdev) {
            (Some(p), _) => p.get_ref().display().to_string(),
            (_, Some(e)) => format!("evdev {}", e.get_ref().display()),
            _ => String::new(),
        };
        v.push(("scanner", n.clone(), at));
    }
    for (n, r) in &d.id_readers {
        v.push((
            "id-reader",
            n.clone(),
            r.get_ref().port.get_ref().display().to_string(),
        ));
    }
    for (n, r) in &d.ic_readers {
        v.push((
            "ic-reader",
            n.clone(),
            r.get_ref().port.get_ref().display().to_string(),
        ));
    }
    for (n, g) in &d.gates {
        let g = g.get_ref();
        v.push((
            "gate",
            n.clone(),
            match (&g.modbus, &g.gpio) {
                (Some(m), _) => format!("modbus {} unit {}", m.get_ref(), g.unit),
                (None, Some(f)) => format!("gpio {}", f.get_ref().display()),
                (None, None) => String::new(),
            },
        ));
    }
    v
}

fn summary_text(path: &std::path::Path, c: &Config) -> String {
    let mut s = format!("{}: OK\n\n", path.display());
    s += &format!("  role       {}\n", c.role);
    s += &format!("  device id  {}\n", c.device_id.get_ref());
    s += &format!("  central    {}\n", c.central.url.get_ref());
    s += &format!("  state dir  {}\n", c.state_dir.get_ref().display());
    let devs = devices(c);
    s += &format!("\n  devices ({})\n", devs.len());
    for (family, name, at) in &devs {
        s += &format!("    {family:<10} {name:<12} {at}\n");
    }
    s += &format!("\n  power      {}\n", power_summary(c));
    s += &format!("  fire       {}\n", fire_summary(c));
    if !c.lanes.is_empty() {
        s += &format!("\n  lanes ({})\n", c.lanes.len());
        for (name, lane) in &c.lanes {
            let l = lane.get_ref();
            let mut readers: Vec<String> = l.scanners.iter().map(|r| r.get_ref().clone()).collect();
            readers.extend(l.id_reader.iter().map(|r| r.get_ref().clone()));
            readers.extend(l.ic_reader.iter().map(|r| r.get_ref().clone()));
            s += &format!(
                "    {name:<12} {:<6} group {:<10} gate {:<8} on power loss {:<6} readers {}\n",
                format!("{:?}", l.direction).to_lowercase(),
                l.group,
                l.gate.get_ref(),
                format!("{:?}", l.power_fail_mode).to_lowercase(),
                readers.join(", "),
            );
        }
    }
    s
}

/// Where mains loss is learnt, and what follows it.
fn power_summary(c: &Config) -> String {
    let p = &c.power;
    let source = match (&p.nut, p.upower, &p.gpio) {
        (Some(n), _, _) => format!("NUT {}", n.get_ref()),
        (None, true, _) => "UPower".to_owned(),
        (None, false, Some(g)) => format!(
            "power-fail line {}{}",
            g.get_ref(),
            if p.gpio_active_low {
                " (active low)"
            } else {
                ""
            }
        ),
        (None, false, None) => return "no UPS configured".to_owned(),
    };
    let grace = if p.grace_s == 0 {
        String::new()
    } else {
        format!("after {} s on battery, ", p.grace_s)
    };
    format!(
        "{source}: fallback after {} ms without mains; shutdown {grace}at {} % or when the UPS orders it",
        p.debounce_ms, p.low_percent
    )
}

/// Where a fire alarm comes from, and how it ends.
fn fire_summary(c: &Config) -> String {
    let mut from = Vec::new();
    if let Some(g) = &c.fire.gpio {
        from.push(format!(
            "contact {}{}",
            g.get_ref(),
            if c.fire.gpio_active_low {
                " (active low)"
            } else {
                ""
            }
        ));
    }
    if !c.devices.gates.is_empty() {
        from.push("the gates' fire inputs, where wired".to_owned());
    }
    if from.is_empty() {
        return "no fire input".to_owned();
    }
    format!(
        "{}; ends {}",
        from.join(" and "),
        if c.fire.reset_by_engineer {
            "after `gatectl alarm reset`"
        } else {
            "when the input clears"
        }
    )
}

fn summary_json(path: &std::path::Path, c: &Config) -> Value {
    json!({
        "file": path,
        "valid": true,
        "role": c.role,
        "device_id": c.device_id.get_ref(),
        "central_url": c.central.url.get_ref(),
        "state_dir": c.state_dir.get_ref(),
        "power": power_summary(c),
        "fire": fire_summary(c),
        "devices": devices(c).into_iter().map(|(family, name, at)| json!({
            "family": family, "name": name, "address": at,
        })).collect::<Vec<_>>(),
        "lanes": c.lanes.iter().map(|(name, l)| {
            let l = l.get_ref();
            json!({
                "name": name,
                "direction": l.direction,
                "group": l.group,
                "gate": l.gate.get_ref(),
                "scanners": l.scanners.iter().map(|s| s.get_ref()).collect::<Vec<_>>(),
                "id_reader": l.id_reader.as_ref().map(|r| r.get_ref()),
                "ic_reader": l.ic_reader.as_ref().map(|r| r.get_ref()),
                "power_fail_mode": l.power_fail_mode,
            })
        }).collect::<Vec<_>>(),
    })
}

fn problems_json(path: &std::path::Path, e: &ConfigError) -> Value {
    json!({
        "file": path,
        "valid": false,
        "problems": e.problems.iter().map(|p| json!({
            "line": p.line.map(|l| l.0),
            "column": p.line.map(|l| l.1),
            "key": p.key,
            "message": p.message,
        })).collect::<Vec<_>>(),
    })
}

/// Completions for bash and zsh, and a man page for gatectl and for each of
/// its commands (`gatectl-status.1`, …), from the clap definition above.
fn generate_docs(dir: &std::path::Path) -> io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command();
    for (shell, file) in [(Shell::Bash, "gatectl.bash"), (Shell::Zsh, "_gatectl")] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "gatectl", &mut out);
        std::fs::write(dir.join(file), out)?;
    }
    cmd.build();
    write_man(&cmd, "gatectl".to_owned(), dir)
}

/// A page for `cmd` as `name`, and one for each of its commands
/// (`gatectl-update-install.1`, …), except `help` and hidden ones.
fn write_man(cmd: &clap::Command, name: String, dir: &std::path::Path) -> io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.clone())).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_man(sub, format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

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
    /// stdin: `paper ok|near-end|out`, `cover open|closed`, `silent on|off`.
    Printer {
        /// Where to link the device end of the PTY (what gated opens).
        #[arg(long)]
        pty: PathBuf,
        /// Tickets left on the roll before the paper runs out.
        #[arg(long)]
        paper_left: Option<u32>,
    },
    /// Serial QR/barcode scanner. stdin: one code per line, sent with CR.
    Scanner {
        #[arg(long)]
        pty: PathBuf,
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
        Device::Printer { pty, paper_left } => {
            let pty = open(&pty)?;
            eprintln!("printer on {}", pty.path().display());
            let sim = SimPrinter::start(pty);
            sim.set_paper_left(paper_left);
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

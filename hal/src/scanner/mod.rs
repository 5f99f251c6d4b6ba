//! QR/barcode scanners. Two kinds, one output: a stream of [`Scan`]s.
//!
//! - serial scanners (CDC-ACM or RS232) send one code per line;
//! - USB keyboard-type scanners are read through evdev, grabbed exclusively so
//!   their keystrokes never reach the kiosk UI, and decoded by [`keymap`].

pub mod keymap;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::warn;

use crate::Device;
use crate::lines::LineSplitter;
use crate::serial;
use crate::supervise::spawn_supervised;

/// One code read by a scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The scanner's configured name.
    pub source: String,
    pub text: String,
    pub at: SystemTime,
}

/// Where a scanner is attached.
#[derive(Debug, Clone)]
pub enum ScannerPort {
    Serial { path: PathBuf, baud: u32 },
    Evdev { path: PathBuf },
}

/// Starts a scanner: it connects, reconnects with backoff when lost, and
/// sends every code it reads. Must be called inside a tokio runtime.
pub fn spawn(name: &str, port: ScannerPort) -> Device<Scan> {
    let name = name.to_owned();
    spawn_supervised(name.clone(), 64, move |connected, tx| {
        let (name, port) = (name.clone(), port.clone());
        async move {
            match port {
                ScannerPort::Serial { path, baud } => {
                    let mut stream = serial::open(&path, baud)?;
                    connected.up();
                    serial_session(&name, &mut stream, &tx).await
                }
                ScannerPort::Evdev { path } => {
                    let dev = evdev_open(&path)?;
                    connected.up();
                    evdev_session(&name, dev, &tx).await
                }
            }
        }
    })
}

async fn serial_session(
    name: &str,
    stream: &mut tokio_serial::SerialStream,
    tx: &mpsc::Sender<Scan>,
) -> Result<(), String> {
    let mut lines = LineSplitter::new();
    let mut buf = [0u8; 512];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("port closed (device unplugged?)".into());
        }
        for text in lines.push(&buf[..n]) {
            let scan = Scan {
                source: name.to_owned(),
                text,
                at: SystemTime::now(),
            };
            if tx.send(scan).await.is_err() {
                return Ok(()); // nobody listens any more: stop
            }
        }
    }
}

fn evdev_open(path: &std::path::Path) -> Result<evdev::Device, String> {
    let mut dev = evdev::Device::open(path).map_err(|e| serial::describe_open_error(path, &e))?;
    dev.grab().map_err(|e| {
        format!(
            "{}: cannot grab the scanner exclusively: {e}",
            path.display()
        )
    })?;
    Ok(dev)
}

async fn evdev_session(
    name: &str,
    dev: evdev::Device,
    tx: &mpsc::Sender<Scan>,
) -> Result<(), String> {
    let mut decoder = keymap::KeyDecoder::default();
    let timeout = decoder.inter_key_timeout;
    let mut stream = dev
        .into_event_stream()
        .map_err(|e| format!("cannot read events: {e}"))?;
    let epoch = SystemTime::UNIX_EPOCH;
    loop {
        let event = match tokio::time::timeout(timeout, stream.next_event()).await {
            Ok(ev) => ev.map_err(|e| format!("read failed (device unplugged?): {e}"))?,
            Err(_) => {
                if let Some(keymap::Decoded::Dropped { len }) = decoder.flush() {
                    warn!(
                        scanner = name,
                        len, "partial code dropped after the inter-key timeout"
                    );
                }
                continue;
            }
        };
        let evdev::EventSummary::Key(_, code, value) = event.destructure() else {
            continue;
        };
        let at = event
            .timestamp()
            .duration_since(epoch)
            .unwrap_or(Duration::ZERO);
        for d in decoder.key(code, value, at) {
            match d {
                keymap::Decoded::Code(text) => {
                    let scan = Scan {
                        source: name.to_owned(),
                        text,
                        at: event.timestamp(),
                    };
                    if tx.send(scan).await.is_err() {
                        return Ok(());
                    }
                }
                keymap::Decoded::Dropped { len } => {
                    warn!(scanner = name, len, "partial code dropped");
                }
            }
        }
    }
}

/// Serial scanner simulator: types codes into the PTY as a scanner would.
#[cfg(feature = "sim")]
pub mod sim {
    use crate::pty::Pty;

    /// Line ending a simulated scanner appends.
    #[derive(Debug, Clone, Copy)]
    pub enum Suffix {
        Cr,
        Lf,
        CrLf,
    }

    impl Suffix {
        fn bytes(self) -> &'static [u8] {
            match self {
                Suffix::Cr => b"\r",
                Suffix::Lf => b"\n",
                Suffix::CrLf => b"\r\n",
            }
        }
    }

    #[derive(Debug)]
    pub struct SimScanner {
        pub pty: Pty,
        pub suffix: Suffix,
    }

    impl SimScanner {
        pub fn new(pty: Pty) -> Self {
            SimScanner {
                pty,
                suffix: Suffix::Cr,
            }
        }

        /// Sends one code followed by the suffix.
        pub async fn scan(&self, code: &str) -> std::io::Result<()> {
            let mut bytes = code.as_bytes().to_vec();
            bytes.extend_from_slice(self.suffix.bytes());
            self.pty.write_all(&bytes).await
        }

        /// Sends raw bytes (partial codes, garbage).
        pub async fn raw(&self, bytes: &[u8]) -> std::io::Result<()> {
            self.pty.write_all(bytes).await
        }
    }
}

//! Thermal ticket printers speaking ESC/POS over a serial port (or a USB
//! printer's `/dev/usb/lp*`, which is a byte stream too).

pub mod escpos;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stream;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

pub use escpos::{Paper, Status};

use crate::serial;
use crate::supervise::DeviceState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrinterError {
    #[error("{0}")]
    Open(String),
    #[error("{port}: no answer to DLE EOT {n} within {ms} ms (printer off or wrong baud rate?)")]
    NoAnswer { port: String, n: u8, ms: u128 },
    #[error("{port}: {source}")]
    BadStatus {
        port: String,
        source: escpos::BadStatus,
    },
    #[error("{port}: I/O error: {error}")]
    Io { port: String, error: String },
    /// The printer reported a problem; nothing (more) was printed.
    #[error("printer not ready: {problem}")]
    NotReady {
        problem: &'static str,
        status: Status,
    },
    /// The problem appeared while printing: the ticket may be incomplete.
    #[error("print failed: {problem}")]
    Failed {
        problem: &'static str,
        status: Status,
    },
}

/// What the appliance needs of a ticket printer.
pub trait TicketPrinter {
    /// The printer's real-time status.
    fn status(&mut self) -> impl Future<Output = Result<Status, PrinterError>> + Send;
    /// Prints one ticket (the bytes of [`escpos::TicketBuilder`], ending in a
    /// cut). Resolves Ok only when the printer reported no error after the cut.
    fn print(&mut self, ticket: &[u8])
    -> impl Future<Output = Result<Status, PrinterError>> + Send;
}

/// How a print is confirmed. `GS r` is optional in ESC/POS: a printer that
/// does not answer it is confirmed by its status after the print time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// `GS r 1` after the cut, answered in buffer order: the printer got
    /// through the cut (a printer stopped by an error never answers).
    BufferOrder,
    /// No answer to `GS r`: after the ticket's estimated print time, `DLE
    /// EOT` is asked until two answers agree with no error. Proves nothing
    /// went wrong that the printer reports; not that the cut happened.
    StatusAfterPrintTime,
}

impl Completion {
    /// For engineers (`gatectl probe printer`, `gatectl test printer`).
    pub fn describe(self) -> &'static str {
        match self {
            Completion::BufferOrder => {
                "GS r 1 after the cut (answered in buffer order: proves the cut)"
            }
            Completion::StatusAfterPrintTime => {
                "status after the estimated print time (the printer does not answer GS r: proves no reported error, not the cut)"
            }
        }
    }
}

/// An ESC/POS printer on a serial port. The port is opened on first use and
/// again after any I/O error, so an unplugged printer comes back by itself.
#[derive(Debug)]
pub struct SerialPrinter {
    path: PathBuf,
    baud: u32,
    /// How long to wait for each real-time status byte.
    pub timeout: Duration,
    /// How long a ticket may take to print and cut.
    pub print_timeout: Duration,
    /// Paper speed, for the print time of a printer without `GS r`.
    pub print_speed_mm_s: u32,
    /// How long the first `GS r` or `GS g 2` of a connection may take: a
    /// printer still printing what it had (a restart mid-ticket) answers
    /// after that; one that does not answer has no such command.
    pub probe_timeout: Duration,
    /// How prints are confirmed on this printer (None: not asked yet, or
    /// the port was reopened and the printer may be another).
    completion: Option<Completion>,
    /// Whether the printer answers `GS g 2` (None: not asked yet).
    counters: Option<bool>,
    port: Option<tokio_serial::SerialStream>,
    state: watch::Sender<DeviceState>,
}

impl SerialPrinter {
    pub fn new(path: &Path, baud: u32) -> Self {
        SerialPrinter {
            path: path.to_owned(),
            baud,
            timeout: Duration::from_millis(1000),
            print_timeout: Duration::from_secs(10),
            print_speed_mm_s: 100,
            probe_timeout: Duration::from_secs(3),
            completion: None,
            counters: None,
            port: None,
            state: watch::Sender::new(DeviceState::Connecting),
        }
    }

    /// Follows the printer's connection state.
    pub fn watch_state(&self) -> watch::Receiver<DeviceState> {
        self.state.subscribe()
    }

    fn port_name(&self) -> String {
        self.path.display().to_string()
    }

    fn port(&mut self) -> Result<&mut tokio_serial::SerialStream, PrinterError> {
        if self.port.is_none() {
            match serial::open(&self.path, self.baud) {
                Ok(p) => self.port = Some(p),
                Err(e) => {
                    self.fail(e.clone());
                    return Err(PrinterError::Open(e));
                }
            }
        }
        Ok(self.port.as_mut().expect("opened above"))
    }

    fn fail(&mut self, error: String) {
        self.port = None;
        self.completion = None;
        self.counters = None;
        self.state
            .send_replace(DeviceState::Reconnecting { attempt: 1, error });
    }

    fn io_error(&mut self, e: std::io::Error) -> PrinterError {
        let err = PrinterError::Io {
            port: self.port_name(),
            error: e.to_string(),
        };
        self.fail(err.to_string());
        err
    }

    async fn query(&mut self) -> Result<Status, PrinterError> {
        let timeout = self.timeout;
        let port_name = self.port_name();
        let port = self.port()?;
        // A late answer to an earlier query would shift every answer.
        serial::discard_input(port);
        let mut answers = [0u8; 4];
        for n in 1..=4u8 {
            let mut byte = [0u8; 1];
            let r = async {
                port.write_all(&[escpos::DLE_EOT[0], escpos::DLE_EOT[1], n])
                    .await?;
                port.read_exact(&mut byte).await
            };
            match tokio::time::timeout(timeout, r).await {
                Ok(Ok(_)) => answers[n as usize - 1] = byte[0],
                Ok(Err(e)) => return Err(self.io_error(e)),
                Err(_) => {
                    let err = PrinterError::NoAnswer {
                        port: port_name,
                        n,
                        ms: timeout.as_millis(),
                    };
                    self.fail(err.to_string());
                    return Err(err);
                }
            }
        }
        let status = escpos::decode_status(answers).map_err(|source| PrinterError::BadStatus {
            port: port_name,
            source,
        })?;
        self.state.send_replace(DeviceState::Connected);
        Ok(status)
    }
}

impl SerialPrinter {
    /// How this printer's prints are confirmed: asks `GS r 1` once (while
    /// idle, after a status answer showed the printer is there) and
    /// remembers whether it answers.
    pub async fn completion(&mut self) -> Result<Completion, PrinterError> {
        if let Some(c) = self.completion {
            return Ok(c);
        }
        let timeout = self.probe_timeout;
        let port = self.port()?;
        serial::discard_input(port);
        let c = match tokio::time::timeout(timeout, send_then_paper_answer(port, &[])).await {
            Ok(Ok(())) => Completion::BufferOrder,
            Ok(Err(e)) => return Err(self.io_error(e)),
            Err(_) => Completion::StatusAfterPrintTime,
        };
        tracing::info!(
            port = self.port_name(),
            method = c.describe(),
            "printer completion"
        );
        self.completion = Some(c);
        Ok(c)
    }

    /// The printer's cumulative cut count (Epson's maintenance counter 178,
    /// `GS g 2`). Answered in buffer order: after everything sent before it
    /// has been printed and cut. None: the printer has no such counter (no
    /// answer within `probe_timeout` the first time on this connection), or
    /// it did not answer this time within `print_timeout` (stopped by an
    /// error): nothing can be concluded from it.
    pub async fn cut_count(&mut self) -> Result<Option<u32>, PrinterError> {
        let wait = match self.counters {
            Some(false) => return Ok(None),
            Some(true) => self.print_timeout,
            None => self.probe_timeout,
        };
        let port_name = self.port_name();
        let port = self.port()?;
        serial::discard_input(port);
        match tokio::time::timeout(wait, read_counter(port)).await {
            Ok(Ok(n)) => {
                if self.counters.is_none() {
                    tracing::info!(port = port_name, "the printer counts its cuts (GS g 2)");
                }
                self.counters = Some(true);
                Ok(Some(n))
            }
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) if self.counters.is_none() => {
                tracing::info!(
                    port = port_name,
                    "the printer has no cut counter (no answer to GS g 2)"
                );
                self.counters = Some(false);
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }

    /// How long `ticket` takes to reach the printer and come out of it:
    /// the bytes at the line rate, and its length on paper at the print
    /// speed (lines, QR codes, barcodes, the cut).
    pub fn print_time(&self, ticket: &[u8]) -> Duration {
        let count = |pat: &[u8]| ticket.windows(pat.len()).filter(|w| *w == pat).count() as u64;
        let lines = ticket.iter().filter(|b| **b == b'\n').count() as u64;
        // GS ( k … 49 51 48: print the stored QR symbol.
        let qrs = count(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
        let barcodes = count(&escpos::BARCODE);
        let mm = lines * 4 + qrs * 35 + barcodes * 15 + 20;
        let wire_ms = ticket.len() as u64 * 10 * 1000 / u64::from(self.baud.max(1200));
        let paper_ms = mm * 1000 / u64::from(self.print_speed_mm_s.max(1));
        Duration::from_millis(wire_ms + paper_ms)
    }

    /// A printer without `GS r`: the bytes, the print time, then the status
    /// until two answers agree.
    async fn print_without_gs_r(&mut self, ticket: &[u8]) -> Result<Status, PrinterError> {
        let wait = self.print_time(ticket);
        let port = self.port()?;
        let sent = async {
            port.write_all(ticket).await?;
            port.flush().await
        };
        if let Err(e) = sent.await {
            return Err(self.io_error(e));
        }
        tokio::time::sleep(wait).await;
        let mut last = self.query().await?;
        let deadline = tokio::time::Instant::now() + self.print_timeout;
        loop {
            if let Some(problem) = last.problem() {
                return Err(PrinterError::Failed {
                    problem,
                    status: last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.query().await?;
            if now == last {
                return Ok(now);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(PrinterError::Failed {
                    problem: "the printer's status did not settle after the ticket",
                    status: now,
                });
            }
            last = now;
        }
    }
}

impl TicketPrinter for SerialPrinter {
    async fn status(&mut self) -> Result<Status, PrinterError> {
        self.query().await
    }

    async fn print(&mut self, ticket: &[u8]) -> Result<Status, PrinterError> {
        let before = self.query().await?;
        if let Some(problem) = before.problem() {
            return Err(PrinterError::NotReady {
                problem,
                status: before,
            });
        }
        if self.completion().await? == Completion::StatusAfterPrintTime {
            return self.print_without_gs_r(ticket).await;
        }
        // GS r 1 is answered in buffer order, unlike DLE EOT (answered on
        // receipt): its answer proves the printer got through the cut. A
        // printer that ran out of paper mid-ticket stops and never answers.
        let print_timeout = self.print_timeout;
        let port = self.port()?;
        let job = send_then_paper_answer(port, ticket);
        let finished = match tokio::time::timeout(print_timeout, job).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => return Err(self.io_error(e)),
            Err(_) => false,
        };
        let after = self.query().await?;
        match (after.problem(), finished) {
            (Some(problem), _) => Err(PrinterError::Failed {
                problem,
                status: after,
            }),
            (None, true) => Ok(after),
            (None, false) => Err(PrinterError::Failed {
                problem: "the printer did not finish the ticket in time",
                status: after,
            }),
        }
    }
}

/// Sends `GS g 2` for the cut counter and reads `_`, digits, NUL (bytes
/// before the `_` are late answers to earlier queries).
async fn read_counter(port: &mut tokio_serial::SerialStream) -> std::io::Result<u32> {
    port.write_all(&escpos::CUT_COUNTER).await?;
    port.flush().await?;
    let mut byte = [0u8; 1];
    loop {
        port.read_exact(&mut byte).await?;
        if byte[0] == b'_' {
            break;
        }
    }
    let mut value: u64 = 0;
    for _ in 0..=10 {
        port.read_exact(&mut byte).await?;
        match byte[0] {
            0 => {
                return u32::try_from(value).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "cut counter over 2^32")
                });
            }
            d @ b'0'..=b'9' => value = value * 10 + u64::from(d - b'0'),
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("cut counter answer has byte {other:#04x} among its digits"),
                ));
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "cut counter answer longer than 10 digits",
    ))
}

/// Sends `bytes`, then `GS r 1`, and waits for its answer (real-time status
/// bytes from earlier queries are skipped).
async fn send_then_paper_answer(
    port: &mut tokio_serial::SerialStream,
    bytes: &[u8],
) -> std::io::Result<()> {
    port.write_all(bytes).await?;
    port.write_all(&escpos::GS_R_PAPER).await?;
    port.flush().await?;
    let mut byte = [0u8; 1];
    loop {
        port.read_exact(&mut byte).await?;
        if escpos::is_paper_sensor_answer(byte[0]) {
            return Ok(());
        }
    }
}

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
        // GS r 1 is answered in buffer order, unlike DLE EOT (answered on
        // receipt): its answer proves the printer got through the cut. A
        // printer that ran out of paper mid-ticket stops and never answers.
        let print_timeout = self.print_timeout;
        let port = self.port()?;
        let job = async {
            port.write_all(ticket).await?;
            port.write_all(&escpos::GS_R_PAPER).await?;
            port.flush().await?;
            let mut byte = [0u8; 1];
            loop {
                port.read_exact(&mut byte).await?;
                if escpos::is_paper_sensor_answer(byte[0]) {
                    return Ok::<_, std::io::Error>(());
                }
            }
        };
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

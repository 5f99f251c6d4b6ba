//! 2nd-generation ID-card readers (SAM protocol over serial, 115200 baud by
//! default). The reader is polled: find card → select → read basic
//! information. A card is reported once per presentation, not once per poll.

pub mod nationality;
pub mod sam;
#[cfg(feature = "sim")]
pub mod sim;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

pub use sam::{CardKind, IdCard, Sw3};

use crate::Device;
use crate::serial;
use crate::supervise::spawn_supervised;

pub const DEFAULT_BAUD: u32 = 115_200;

/// A card read at a reader. `Debug` masks the personal fields.
#[derive(Debug, Clone)]
pub struct IdCardRead {
    pub reader: String,
    pub card: IdCard,
    pub at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdReaderError {
    #[error("{0}")]
    Open(String),
    #[error("{port}: no answer to command {cmd:02X} {para:02X} within {ms} ms")]
    NoAnswer {
        port: String,
        cmd: u8,
        para: u8,
        ms: u128,
    },
    #[error("{port}: I/O error: {error}")]
    Io { port: String, error: String },
    #[error("{port}: {error}")]
    Frame {
        port: String,
        error: sam::FrameError,
    },
    #[error("{port}: reader answered {cmd:02X} {para:02X} with: {status}")]
    Status {
        port: String,
        cmd: u8,
        para: u8,
        status: Sw3,
    },
    #[error("{port}: the card's answer is malformed ({len} data bytes)")]
    Malformed { port: String, len: usize },
    /// A card of a kind this reader does not know: refused, not guessed.
    #[error("{port}: {error}")]
    UnknownCard {
        port: String,
        error: sam::UnknownCardType,
    },
}

impl IdReaderError {
    /// Errors after which the port must be reopened (as opposed to a bad
    /// frame or a card that could not be read this time).
    pub fn is_link_error(&self) -> bool {
        matches!(
            self,
            IdReaderError::Open(_) | IdReaderError::NoAnswer { .. } | IdReaderError::Io { .. }
        )
    }
}

/// An open ID-card reader.
#[derive(Debug)]
pub struct IdReader {
    path: PathBuf,
    port: tokio_serial::SerialStream,
    decoder: sam::Decoder,
    /// How long one command may take (a basic-information read takes about
    /// 1 s at 115200 on real readers).
    pub timeout: Duration,
    last_id: Option<String>,
    absent_since_last: bool,
}

impl IdReader {
    pub fn open(path: &Path, baud: u32) -> Result<Self, IdReaderError> {
        let port = serial::open(path, baud).map_err(IdReaderError::Open)?;
        Ok(IdReader {
            path: path.to_owned(),
            port,
            decoder: sam::Decoder::responses(),
            timeout: COMMAND_TIMEOUT,
            last_id: None,
            absent_since_last: true,
        })
    }

    fn port_name(&self) -> String {
        self.path.display().to_string()
    }

    /// Sends one command and waits for its response frame.
    pub async fn transact(&mut self, cmd: (u8, u8)) -> Result<sam::Response, IdReaderError> {
        let port_name = self.port_name();
        let timeout = self.timeout;
        let frame = sam::request(cmd, &[]);
        let io = |e: std::io::Error| IdReaderError::Io {
            port: port_name.clone(),
            error: e.to_string(),
        };
        // A late answer to an earlier, timed-out command must not be taken for this one.
        serial::discard_input(&self.port);
        self.decoder = sam::Decoder::responses();
        self.port.write_all(&frame).await.map_err(io)?;
        let mut buf = [0u8; 2048];
        let wait = async {
            loop {
                if let Some(r) = self.decoder.next_response() {
                    return r.map_err(|error| IdReaderError::Frame {
                        port: port_name.clone(),
                        error,
                    });
                }
                let n = self.port.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                self.decoder.push(&buf[..n]);
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(IdReaderError::NoAnswer {
                port: self.port_name(),
                cmd: cmd.0,
                para: cmd.1,
                ms: timeout.as_millis(),
            }),
        }
    }

    fn expect(&self, r: &sam::Response, cmd: (u8, u8), ok: Sw3) -> Result<(), IdReaderError> {
        if r.sw3() == ok {
            Ok(())
        } else {
            Err(IdReaderError::Status {
                port: self.port_name(),
                cmd: cmd.0,
                para: cmd.1,
                status: r.sw3(),
            })
        }
    }

    /// Checks that the SAM module is alive and authorised.
    pub async fn sam_status(&mut self) -> Result<(), IdReaderError> {
        let r = self.transact(sam::SAM_STATUS).await?;
        self.expect(&r, sam::SAM_STATUS, Sw3::Ok)
    }

    /// One poll: Some(card) when a card was newly presented.
    pub async fn poll(&mut self) -> Result<Option<IdCard>, IdReaderError> {
        let r = self.transact(sam::FIND).await?;
        match r.sw3() {
            Sw3::NoCard => {
                self.absent_since_last = true;
                return Ok(None);
            }
            Sw3::CardFound => {}
            _ => self.expect(&r, sam::FIND, Sw3::CardFound)?,
        }
        let r = self.transact(sam::SELECT).await?;
        self.expect(&r, sam::SELECT, Sw3::Ok)?;
        let r = self.transact(sam::READ_BASIC).await?;
        self.expect(&r, sam::READ_BASIC, Sw3::Ok)?;
        let Some((text, _photo)) = sam::split_basic_info(&r.data) else {
            return Err(IdReaderError::Malformed {
                port: self.port_name(),
                len: r.data.len(),
            });
        };
        // The photo (WLT) needs the vendor's decoder; it is neither decoded nor kept.
        let card = sam::decode_text(text).map_err(|e| IdReaderError::UnknownCard {
            port: self.port_name(),
            error: e,
        })?;
        let same = self.last_id.as_deref() == Some(card.id_number.as_str());
        if same && !self.absent_since_last {
            return Ok(None);
        }
        self.last_id = Some(card.id_number.clone());
        self.absent_since_last = false;
        Ok(Some(card))
    }
}

/// How often the reader is asked for a card.
pub const POLL_INTERVAL: Duration = Duration::from_millis(300);

/// How long one command may take before the reader counts as lost.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts a reader: polls it, reconnects with backoff when it is lost, and
/// sends each newly presented card. Must be called inside a tokio runtime.
pub fn spawn(name: &str, path: &Path, baud: u32) -> Device<IdCardRead> {
    spawn_with(name, path, baud, POLL_INTERVAL, COMMAND_TIMEOUT)
}

/// [`spawn`] with a chosen poll interval and command timeout.
pub fn spawn_with(
    name: &str,
    path: &Path,
    baud: u32,
    poll: Duration,
    timeout: Duration,
) -> Device<IdCardRead> {
    let (name, path) = (name.to_owned(), path.to_owned());
    spawn_supervised(name.clone(), 16, move |connected, tx| {
        let (name, path, tx) = (name.clone(), path.clone(), tx.clone());
        async move {
            let mut reader = IdReader::open(&path, baud).map_err(|e| e.to_string())?;
            reader.timeout = timeout;
            reader.sam_status().await.map_err(|e| e.to_string())?;
            connected.up();
            let mut ticker = tokio::time::interval(poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match reader.poll().await {
                    Ok(Some(card)) => {
                        let read = IdCardRead {
                            reader: name.clone(),
                            card,
                            at: SystemTime::now(),
                        };
                        if tx.send(read).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => {}
                    Err(e) if e.is_link_error() => return Err(e.to_string()),
                    Err(e) => warn!(reader = name, "{e}"),
                }
            }
        }
    })
}

//! Contactless IC-card readers (member cards, annual passes, staff cards):
//! card UIDs as they come and go.
//!
//! The wire format is a [`UidProtocol`]; the common one ([`HexLines`]) is a
//! reader that prints the UID as a hex line (`04A1B2C3\r\n`) each time it
//! sees the card. Another reader protocol is one more implementation.

#[cfg(feature = "sim")]
pub mod sim;

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::Device;
use crate::lines::LineSplitter;
use crate::serial;
use crate::supervise::spawn_supervised;

/// A card arriving at or leaving a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcEvent {
    Present {
        reader: String,
        uid: String,
        at: SystemTime,
    },
    Removed {
        reader: String,
        uid: String,
        at: SystemTime,
    },
}

/// How a reader reports the cards it sees.
pub trait UidProtocol: Send + 'static {
    /// Bytes to send to ask for a card, for readers that must be polled.
    fn poll_request(&self) -> Option<Vec<u8>> {
        None
    }
    /// Received bytes → the UIDs (upper-case hex) they report.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String>;
}

/// UID as a hex line: `04A1B2C3`, also with spaces, `:` or `-` between bytes.
#[derive(Debug, Default)]
pub struct HexLines {
    lines: LineSplitter,
}

impl UidProtocol for HexLines {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.lines
            .push(bytes)
            .iter()
            .filter_map(|l| parse_uid(l))
            .collect()
    }
}

/// A 4-, 7- or 10-byte UID (ISO 14443) as upper-case hex, or None.
pub fn parse_uid(line: &str) -> Option<String> {
    let hex: String = line
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-'))
        .collect();
    let ok = matches!(hex.len(), 8 | 14 | 20) && hex.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| hex.to_ascii_uppercase())
}

/// Turns sightings into present/removed events: a card is present from its
/// first sighting until it was not seen for `hold`.
#[derive(Debug)]
pub struct Presence {
    pub hold: Duration,
    current: Option<String>,
}

impl Presence {
    pub fn new(hold: Duration) -> Self {
        Presence {
            hold,
            current: None,
        }
    }

    /// A UID was seen: events for a new card (and the removal of the old one).
    pub fn seen(&mut self, uid: String) -> Vec<(bool, String)> {
        if self.current.as_deref() == Some(uid.as_str()) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(old) = self.current.take() {
            out.push((false, old));
        }
        self.current = Some(uid.clone());
        out.push((true, uid));
        out
    }

    /// `hold` passed without a sighting.
    pub fn expired(&mut self) -> Option<String> {
        self.current.take()
    }

    pub fn is_present(&self) -> bool {
        self.current.is_some()
    }
}

/// How long a card counts as present after its last sighting. Readers repeat
/// the UID a few times a second while a card lies on them.
pub const HOLD: Duration = Duration::from_millis(800);

/// Starts a reader with the hex-line protocol.
pub fn spawn(name: &str, path: &Path, baud: u32) -> Device<IcEvent> {
    spawn_with(name, path, baud, HOLD, HexLines::default)
}

/// Starts a reader with any protocol; `protocol` makes a fresh decoder per connection.
pub fn spawn_with<P: UidProtocol>(
    name: &str,
    path: &Path,
    baud: u32,
    hold: Duration,
    protocol: fn() -> P,
) -> Device<IcEvent> {
    let (name, path) = (name.to_owned(), path.to_owned());
    spawn_supervised(name.clone(), 16, move |connected, tx| {
        let (name, path, tx) = (name.clone(), path.clone(), tx.clone());
        async move {
            let mut port = serial::open(&path, baud)?;
            connected.up();
            session(&name, &mut port, protocol(), hold, &tx).await
        }
    })
}

async fn session<P: UidProtocol>(
    name: &str,
    port: &mut tokio_serial::SerialStream,
    mut protocol: P,
    hold: Duration,
    tx: &mpsc::Sender<IcEvent>,
) -> Result<(), String> {
    let mut presence = Presence::new(hold);
    let mut buf = [0u8; 256];
    let event = |present: bool, uid: String| {
        let (reader, at) = (name.to_owned(), SystemTime::now());
        if present {
            IcEvent::Present { reader, uid, at }
        } else {
            IcEvent::Removed { reader, uid, at }
        }
    };
    loop {
        if let Some(req) = protocol.poll_request() {
            port.write_all(&req)
                .await
                .map_err(|e| format!("write failed: {e}"))?;
        }
        let wait = if presence.is_present() {
            hold
        } else {
            Duration::from_secs(3600)
        };
        let n = match tokio::time::timeout(wait, port.read(&mut buf)).await {
            Ok(Ok(0)) => return Err("port closed (device unplugged?)".into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
            Err(_) => {
                if let Some(uid) = presence.expired()
                    && tx.send(event(false, uid)).await.is_err()
                {
                    return Ok(());
                }
                continue;
            }
        };
        for uid in protocol.feed(&buf[..n]) {
            for (present, uid) in presence.seen(uid) {
                if tx.send(event(present, uid)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_parse_in_common_spellings() {
        assert_eq!(parse_uid("04a1b2c3"), Some("04A1B2C3".into()));
        assert_eq!(
            parse_uid("04:A1:B2:C3:D4:E5:F6"),
            Some("04A1B2C3D4E5F6".into())
        );
        assert_eq!(parse_uid(" 04 A1 B2 C3 "), Some("04A1B2C3".into()));
        assert_eq!(parse_uid("04A1B2"), None);
        assert_eq!(parse_uid("04A1B2CZ"), None);
    }

    #[test]
    fn hex_lines_decode_across_reads() {
        let mut p = HexLines::default();
        assert!(p.feed(b"04A1").is_empty());
        assert_eq!(p.feed(b"B2C3\r\nnoise\r\n"), ["04A1B2C3"]);
    }

    #[test]
    fn presence_reports_each_card_once_and_its_removal() {
        let mut p = Presence::new(HOLD);
        assert_eq!(p.seen("A".into()), [(true, "A".to_string())]);
        assert!(p.seen("A".into()).is_empty());
        assert_eq!(
            p.seen("B".into()),
            [(false, "A".to_string()), (true, "B".to_string())]
        );
        assert_eq!(p.expired(), Some("B".into()));
        assert_eq!(p.expired(), None);
    }
}

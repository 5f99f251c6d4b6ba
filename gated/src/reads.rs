//! What the readers read, for the engineer's self-tests: every scanner and
//! card reader publishes a masked summary of each read here (nothing
//! listens unless a self-test runs).

use hal::supervise::DeviceState;
use tokio::sync::{broadcast, watch};

/// One read, masked: never a whole code, ID number or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The device's name in gated.toml.
    pub device: String,
    /// `scanner`, `id-reader` or `ic-reader`.
    pub family: &'static str,
    pub summary: String,
}

/// A reader's label (`scanner qr`) and connection state.
pub type Watched = (String, watch::Receiver<DeviceState>);

/// Every reader's reads (masked) and connection state.
#[derive(Debug, Clone)]
pub struct Reads {
    tx: broadcast::Sender<Read>,
    states: std::sync::Arc<std::sync::Mutex<Vec<Watched>>>,
}

impl Reads {
    pub fn send(&self, read: Read) {
        // Nobody listening (no self-test running) is the normal case.
        let _ = self.tx.send(read);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Read> {
        self.tx.subscribe()
    }

    /// Registers a reader's connection state under `label` (e.g. `scanner qr`).
    pub fn watch(&self, label: String, state: watch::Receiver<DeviceState>) {
        self.states
            .lock()
            .expect("reader states")
            .push((label, state));
    }

    /// Every registered reader's label and connection state, to follow.
    pub fn receivers(&self) -> Vec<Watched> {
        self.states.lock().expect("reader states").clone()
    }

    /// (label, state) of every registered reader.
    pub fn states(&self) -> Vec<(String, String)> {
        self.states
            .lock()
            .expect("reader states")
            .iter()
            .map(|(l, s)| (l.clone(), s.borrow().to_string()))
            .collect()
    }
}

pub fn channel() -> Reads {
    Reads {
        tx: broadcast::channel(64).0,
        states: Default::default(),
    }
}

/// A scanned code, shortened: its length and first characters.
pub fn code(device: &str, text: &str) -> Read {
    let head: String = text.chars().take(6).collect();
    Read {
        device: device.to_owned(),
        family: "scanner",
        summary: format!(
            "a {}-character code starting {head:?}",
            text.chars().count()
        ),
    }
}

/// An ID card: the last four characters of the number only.
pub fn id_card(device: &str, number: &str) -> Read {
    let n = number.chars().count();
    let tail: String = number.chars().skip(n.saturating_sub(4)).collect();
    Read {
        device: device.to_owned(),
        family: "id-reader",
        summary: format!("an ID card ending {tail}"),
    }
}

pub fn ic_card(device: &str, uid: &str) -> Read {
    Read {
        device: device.to_owned(),
        family: "ic-reader",
        summary: format!("a card with UID {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_hide_what_was_read() {
        let r = code("qr", "T1:ABCDEFGHIJKLMNOP");
        assert_eq!(r.summary, "a 19-character code starting \"T1:ABC\"");
        let r = id_card("id", "11010519491231002X");
        assert_eq!(r.summary, "an ID card ending 002X");
        assert!(!r.summary.contains("110105"));
    }
}

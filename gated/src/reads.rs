//! What the readers read, for the engineer's self-tests: every scanner and
//! card reader publishes a masked summary of each read here (nothing
//! listens unless a self-test runs).

use tokio::sync::broadcast;

/// One read, masked: never a whole code, ID number or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The device's name in gated.toml.
    pub device: String,
    /// `scanner`, `id-reader` or `ic-reader`.
    pub family: &'static str,
    pub summary: String,
}

pub type Reads = broadcast::Sender<Read>;

pub fn channel() -> Reads {
    broadcast::channel(64).0
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

//! kiosk.toml: what the touchscreen app needs beyond gated's API. The sale
//! limits and the service PIN are gated's (gated.toml `[kiosk]`): the app
//! reads the limits over D-Bus and gated checks the PIN.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default place in the image.
pub const DEFAULT_PATH: &str = "/etc/kiosk/kiosk.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seconds without a touch before a screen returns home (not while
    /// paying or printing).
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// Seconds a payment screen waits before the order is cancelled and
    /// the kiosk is free again (a visitor who walked away), at most until
    /// the order's own expiry.
    #[serde(default = "default_pay")]
    pub pay_timeout_s: u64,
    /// The language every visitor starts with: `zh`, `en`, or the code of
    /// another bundled translation (`lang/<code>/LC_MESSAGES/kiosk.po`).
    #[serde(default = "default_language")]
    pub language: String,
    /// A picture of the scenic area for the home screen (PNG or JPEG);
    /// without it a drawn landscape is shown.
    #[serde(default)]
    pub picture: Option<PathBuf>,
    /// The home screen shows how many visitors are in the park now, and
    /// the capacity if the site set one (gated's occupancy).
    #[serde(default)]
    pub show_occupancy: bool,
    /// Where the devices are on the machine, for the guidance pictures.
    #[serde(default)]
    pub hardware: Hardware,
}

/// Where each device sits on the panel under the screen, as the visitor
/// faces the machine: `left`, `center` or `right`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    #[serde(default = "left")]
    pub id_reader: String,
    /// The QR/barcode scanner's window (order QR codes, tickets).
    #[serde(default = "center")]
    pub scanner: String,
    /// Where payment codes are shown: the scanner's window unless the
    /// machine has a window of its own for them.
    pub payment: Option<String>,
    #[serde(default = "right")]
    pub ticket_slot: String,
}

fn left() -> String {
    "left".into()
}
fn center() -> String {
    "center".into()
}
fn right() -> String {
    "right".into()
}

impl Default for Hardware {
    fn default() -> Self {
        Hardware {
            id_reader: left(),
            scanner: center(),
            payment: None,
            ticket_slot: right(),
        }
    }
}

impl Hardware {
    /// Where payment codes are shown.
    pub fn payment(&self) -> &str {
        self.payment.as_deref().unwrap_or(&self.scanner)
    }

    fn check(&self) -> Result<(), String> {
        let places = [
            ("id_reader", self.id_reader.as_str()),
            ("scanner", self.scanner.as_str()),
            ("payment", self.payment()),
            ("ticket_slot", self.ticket_slot.as_str()),
        ];
        for (key, place) in places {
            if !["left", "center", "right"].contains(&place) {
                return Err(format!(
                    "[hardware] {key} = {place:?}: where it is under the screen, \"left\", \"center\" or \"right\""
                ));
            }
        }
        // The payment window may be the scanner's; no other two share a place.
        for (i, (a, pa)) in places.iter().enumerate() {
            for (b, pb) in &places[i + 1..] {
                if pa == pb && !(*a == "scanner" && *b == "payment") {
                    return Err(format!(
                        "[hardware] {a} and {b} are both {pa:?}: two devices cannot sit in one place"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn default_idle() -> u64 {
    60
}
fn default_pay() -> u64 {
    180
}
fn default_language() -> String {
    "zh".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout_s: default_idle(),
            pay_timeout_s: default_pay(),
            language: default_language(),
            picture: None,
            show_occupancy: false,
            hardware: Hardware::default(),
        }
    }
}

impl Config {
    /// Reads and checks `path`; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(moved) = moved_key(&text) {
            return Err(format!("{}: {moved}", path.display()));
        }
        let c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        if !(10..=600).contains(&self.idle_timeout_s) {
            return Err(format!(
                "idle_timeout_s = {} is outside 10–600 seconds",
                self.idle_timeout_s
            ));
        }
        if !(30..=1800).contains(&self.pay_timeout_s) {
            return Err(format!(
                "pay_timeout_s = {} is outside 30–1800 seconds",
                self.pay_timeout_s
            ));
        }
        let code = self.language.as_bytes();
        let well_formed = match code.len() {
            2 => code.iter().all(u8::is_ascii_lowercase),
            5 => {
                code[..2].iter().all(u8::is_ascii_lowercase)
                    && code[2] == b'_'
                    && code[3..].iter().all(u8::is_ascii_uppercase)
            }
            _ => false,
        };
        if !well_formed {
            return Err(format!(
                "language = {:?}: use \"zh\", \"en\" or a translation's code such as \"zh_TW\"",
                self.language
            ));
        }
        self.hardware.check()
    }
}

/// A key older releases read here and gated owns now: named with where it
/// went, not just refused as unknown.
fn moved_key(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    if table.contains_key("service_pin") {
        return Some(
            "service_pin is no longer read here: gated checks the PIN. Put the output of \
             `gatectl pin-hash` in gated.toml's [kiosk] table and remove this line"
                .into(),
        );
    }
    table.contains_key("sale_horizon_days").then(|| {
        "sale_horizon_days is no longer read here: set it in gated.toml's [kiosk] table \
         (gated enforces it) and remove this line"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_broken_file_is_named_with_what_is_wrong() {
        let e = load("idle_timeout_s = 5\n").unwrap_err();
        assert!(
            e.contains("kiosk.toml") && e.contains("idle_timeout_s = 5"),
            "{e}"
        );
        let e = load("language = \"French\"\n").unwrap_err();
        assert!(e.contains("\"French\""), "{e}");
        let e = load("idle_timeout = 60\n").unwrap_err();
        assert!(e.contains("unknown field `idle_timeout`"), "{e}");
        assert!(Config::load(Path::new("/nonexistent/kiosk.toml")).is_err());
        assert_eq!(load("").unwrap().idle_timeout_s, 60);
        let e = load("[hardware]\nscanner = \"top\"\n").unwrap_err();
        assert!(e.contains("scanner = \"top\""), "{e}");
        let e = load("[hardware]\nticket_slot = \"left\"\n").unwrap_err();
        assert!(
            e.contains("id_reader and ticket_slot are both \"left\""),
            "{e}"
        );
        let h = load(
            "[hardware]\nid_reader = \"right\"\nticket_slot = \"left\"\npayment = \"center\"\n",
        )
        .unwrap()
        .hardware;
        assert_eq!((h.id_reader.as_str(), h.payment()), ("right", "center"));
    }

    #[test]
    fn the_keys_gated_took_over_say_where_they_went() {
        let e = load("service_pin = \"2468\"\n").unwrap_err();
        assert!(
            e.contains("gatectl pin-hash") && e.contains("[kiosk]"),
            "{e}"
        );
        let e = load("sale_horizon_days = 14\n").unwrap_err();
        assert!(e.contains("gated.toml's [kiosk]"), "{e}");
    }
}

//! kiosk.toml: what the touchscreen app needs beyond gated's API.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default place in the image.
pub const DEFAULT_PATH: &str = "/etc/kiosk/kiosk.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Digits that open the service menu (five taps on the picture).
    pub service_pin: String,
    /// Seconds without a touch before a screen returns home (not while
    /// paying or printing).
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// Seconds a payment screen waits before the order is cancelled and
    /// the kiosk is free again (a visitor who walked away), at most until
    /// the order's own expiry.
    #[serde(default = "default_pay")]
    pub pay_timeout_s: u64,
    /// How many days ahead tickets are sold (today included).
    #[serde(default = "default_horizon")]
    pub sale_horizon_days: u16,
    /// The language every visitor starts with: `zh`, `en`, or the code of
    /// another bundled translation (`lang/<code>/LC_MESSAGES/kiosk.po`).
    #[serde(default = "default_language")]
    pub language: String,
    /// A picture of the scenic area for the home screen (PNG or JPEG);
    /// without it a drawn landscape is shown.
    #[serde(default)]
    pub picture: Option<PathBuf>,
}

fn default_idle() -> u64 {
    60
}
fn default_pay() -> u64 {
    180
}
fn default_horizon() -> u16 {
    14
}
fn default_language() -> String {
    "zh".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_pin: String::new(),
            idle_timeout_s: default_idle(),
            pay_timeout_s: default_pay(),
            sale_horizon_days: default_horizon(),
            language: default_language(),
            picture: None,
        }
    }
}

impl Config {
    /// Reads and checks `path`; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let pin = &self.service_pin;
        if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err("service_pin must be 4 to 8 digits".into());
        }
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
        if !(1..=90).contains(&self.sale_horizon_days) {
            return Err(format!(
                "sale_horizon_days = {} is outside 1–90",
                self.sale_horizon_days
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
        Ok(())
    }
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
        let e = load("service_pin = \"12a4\"\n").unwrap_err();
        assert!(
            e.contains("kiosk.toml") && e.contains("service_pin must be 4 to 8 digits"),
            "{e}"
        );
        let e = load("service_pin = \"1234\"\nidle_timeout_s = 5\n").unwrap_err();
        assert!(e.contains("idle_timeout_s = 5"), "{e}");
        let e = load("service_pin = \"1234\"\nlanguage = \"French\"\n").unwrap_err();
        assert!(e.contains("\"French\""), "{e}");
        let e = load("service_pin = \"1234\"\nidle_timeout = 60\n").unwrap_err();
        assert!(e.contains("unknown field `idle_timeout`"), "{e}");
        let e = load("").unwrap_err();
        assert!(e.contains("missing field `service_pin`"), "{e}");
        assert!(Config::load(Path::new("/nonexistent/kiosk.toml")).is_err());
    }
}

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
        Ok(())
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

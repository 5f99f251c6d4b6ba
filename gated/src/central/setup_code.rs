//! The setup code (docs/setup-code.md): the QR code the central system
//! prints for one device, which a field engineer scans at the device to
//! enroll it. `S1:` and the Base45 of a JSON object, so it goes through a
//! scanner like a ticket does (QR alphanumeric set, no braces or quotes a
//! keyboard-wedge scanner could mangle).
//!
//! The code chooses a central system; it never makes one trusted. The TLS
//! anchor is the device's (`[central] ca_file`), see `crate::setup`.

use serde::{Deserialize, Serialize};

use crate::tickets::base45;

/// The format this gated reads and central-sim writes.
pub const VERSION: u32 = 1;

/// What a setup code carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupCode {
    /// The central system's API base URL (`https://…/api/v1`).
    pub central: String,
    /// The one-time pairing code.
    pub code: String,
    /// The device the pairing code is bound to.
    pub device_id: String,
    /// `lane` or `kiosk`.
    pub role: String,
    /// Shown to the engineer; not trusted for anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane_group: Option<String>,
    /// When the pairing code stops working (Unix ms); the central system decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupCodeError {
    /// Not a setup code at all (a ticket, a pairing code typed alone …).
    #[error("not a setup code")]
    NotASetupCode,
    #[error("setup code version {0}: this device reads version {VERSION}; update its software")]
    UnknownVersion(String),
    #[error("garbled or cut-off setup code: {0}")]
    Garbled(String),
}

impl SetupCodeError {
    /// The reason's name, as in the vectors.
    pub fn name(&self) -> &'static str {
        match self {
            SetupCodeError::NotASetupCode => "not_a_setup_code",
            SetupCodeError::UnknownVersion(_) => "unknown_version",
            SetupCodeError::Garbled(_) => "garbled",
        }
    }
}

/// Whether `text` claims to be a setup code (`S`, one to three digits, `:`),
/// of whatever version.
pub fn claims(text: &str) -> bool {
    split(text.trim_end_matches(['\r', '\n'])).is_some()
}

fn split(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('S')?;
    let colon = rest.find(':')?;
    let digits = &rest[..colon];
    (1..=3)
        .contains(&digits.len())
        .then_some(())
        .filter(|()| digits.bytes().all(|b| b.is_ascii_digit()))?;
    Some((digits, &rest[colon + 1..]))
}

pub fn parse(text: &str) -> Result<SetupCode, SetupCodeError> {
    let text = text.trim_end_matches(['\r', '\n']);
    let (version, body) = split(text).ok_or(SetupCodeError::NotASetupCode)?;
    if version != VERSION.to_string() {
        return Err(SetupCodeError::UnknownVersion(version.to_owned()));
    }
    let bytes = base45::decode(body).map_err(|e| SetupCodeError::Garbled(e.to_string()))?;
    let code: SetupCode = serde_json::from_slice(&bytes)
        .map_err(|e| SetupCodeError::Garbled(format!("its content: {e}")))?;
    let garbled = |why: &str| Err(SetupCodeError::Garbled(why.to_owned()));
    if !code.central.starts_with("https://") {
        return garbled("the central system's URL is not https://");
    }
    if code.code.trim().is_empty() || code.code.len() > 64 {
        return garbled("no pairing code");
    }
    if code.device_id.trim().is_empty() || code.device_id.len() > 64 {
        return garbled("no device id");
    }
    if code.role != "lane" && code.role != "kiosk" {
        return garbled("role is neither lane nor kiosk");
    }
    Ok(code)
}

pub fn encode(code: &SetupCode) -> String {
    let json = serde_json::to_vec(code).expect("a setup code serializes");
    format!("S{VERSION}:{}", base45::encode(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SetupCode {
        SetupCode {
            central: "https://central.example/api/v1".into(),
            code: "12345678".into(),
            device_id: "north-gate-1".into(),
            role: "lane".into(),
            site: Some("泰山景区".into()),
            lane_group: Some("north".into()),
            expires_at_ms: Some(1_800_000_000_000),
        }
    }

    #[test]
    fn round_trip_and_the_line_ending_of_a_scanner() {
        let text = encode(&sample());
        assert!(text.starts_with("S1:"));
        assert!(
            text.bytes()
                .all(|b| b" $%*+-./:".contains(&b) || b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(parse(&format!("{text}\r\n")).unwrap(), sample());
    }

    /// Every vector of tests/vectors/setup-code-v1.json (made by
    /// scripts/setup-code-vectors.py, which shares no code with this).
    #[test]
    fn the_vectors() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors/setup-code-v1.json");
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let vectors = file["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 15);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let got = parse(v["text"].as_str().unwrap());
            match (&got, v.get("expect"), v.get("error")) {
                (Ok(c), Some(want), None) => {
                    let want: SetupCode = serde_json::from_value(want.clone()).unwrap();
                    assert_eq!(*c, want, "{name}");
                }
                (Err(e), None, Some(want)) => assert_eq!(e.name(), want, "{name}: {e}"),
                _ => panic!("{name}: got {got:?}, want {v}"),
            }
        }
    }

    #[test]
    fn other_versions_garbles_and_other_codes_are_told_apart() {
        let text = encode(&sample());
        assert_eq!(
            parse(&text.replacen("S1:", "S2:", 1)).unwrap_err(),
            SetupCodeError::UnknownVersion("2".into())
        );
        assert_eq!(parse("12345678").unwrap_err().name(), "not_a_setup_code");
        assert_eq!(parse("T1:ABC").unwrap_err().name(), "not_a_setup_code");
        // Cut off by a scanner's buffer: never half a setup.
        let cut = &text[..text.len() - 7];
        assert_eq!(parse(cut).unwrap_err().name(), "garbled");
        assert!(claims(cut));
        let plain = SetupCode {
            central: "http://central.example/api/v1".into(),
            ..sample()
        };
        assert_eq!(parse(&encode(&plain)).unwrap_err().name(), "garbled");
    }
}

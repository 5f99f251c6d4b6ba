//! The engineer's service code (docs/setup-code.md, "Service code"): a QR
//! code the central system issues to an engineer for one device (or every
//! device of the site) for a short time. Scanned at a lane, the display
//! answers with the device's health. It is signed with one of the central
//! system's ticket-signing keys the device pinned at enrollment, under its
//! own domain (`scenic-service/v1`, so a ticket can never pass for one), and
//! expires within hours: a copied or photographed code stops working.
//!
//! `E1:` ‖ Base45( key_id u16 ‖ expires_at_ms i64 ‖ id_len u8 ‖ device_id ‖
//! Ed25519 signature over "scenic-service/v1" ‖ everything before it )

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::tickets::base45;

pub const PREFIX: &str = "E1:";
const DOMAIN: &[u8] = b"scenic-service/v1";
/// The longest life a device accepts, whatever the code says.
pub const MAX_LIFE_MS: i64 = 24 * 3_600_000;
/// For every device of the site.
pub const ANY_DEVICE: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCode {
    pub key_id: u16,
    pub expires_at_ms: i64,
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceCodeError {
    #[error("garbled service code")]
    Garbled,
    #[error("service code signed with key #{0}, which this device does not have")]
    UnknownKey(u16),
    #[error("service code signature is wrong")]
    BadSignature,
    #[error("service code has expired")]
    Expired,
    #[error("service code is for device {0}")]
    OtherDevice(String),
}

pub fn claims(text: &str) -> bool {
    text.starts_with(PREFIX)
}

fn body(c: &ServiceCode) -> Vec<u8> {
    let mut b = Vec::with_capacity(11 + c.device_id.len() + 64);
    b.extend_from_slice(&c.key_id.to_be_bytes());
    b.extend_from_slice(&c.expires_at_ms.to_be_bytes());
    b.push(c.device_id.len().min(255) as u8);
    b.extend_from_slice(&c.device_id.as_bytes()[..c.device_id.len().min(255)]);
    b
}

fn message(body: &[u8]) -> Vec<u8> {
    [DOMAIN, body].concat()
}

pub fn issue(c: &ServiceCode, key: &SigningKey) -> String {
    let mut b = body(c);
    let sig = key.sign(&message(&b));
    b.extend_from_slice(&sig.to_bytes());
    format!("{PREFIX}{}", base45::encode(&b))
}

/// Checks a scanned service code against this device's pinned keys, its
/// id and its clock.
pub fn verify(
    text: &str,
    key: impl Fn(u16) -> Option<VerifyingKey>,
    device_id: &str,
    now_ms: i64,
) -> Result<ServiceCode, ServiceCodeError> {
    let text = text.trim_end_matches(['\r', '\n']);
    let b45 = text.strip_prefix(PREFIX).ok_or(ServiceCodeError::Garbled)?;
    let all = base45::decode(b45).map_err(|_| ServiceCodeError::Garbled)?;
    if all.len() < 11 + 64 {
        return Err(ServiceCodeError::Garbled);
    }
    let id_len = all[10] as usize;
    if all.len() != 11 + id_len + 64 {
        return Err(ServiceCodeError::Garbled);
    }
    let (signed, sig) = all.split_at(11 + id_len);
    let code = ServiceCode {
        key_id: u16::from_be_bytes([all[0], all[1]]),
        expires_at_ms: i64::from_be_bytes(all[2..10].try_into().expect("8 bytes")),
        device_id: String::from_utf8(all[11..11 + id_len].to_vec())
            .map_err(|_| ServiceCodeError::Garbled)?,
    };
    let pk = key(code.key_id).ok_or(ServiceCodeError::UnknownKey(code.key_id))?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    pk.verify_strict(&message(signed), &sig)
        .map_err(|_| ServiceCodeError::BadSignature)?;
    if code.expires_at_ms <= now_ms || code.expires_at_ms - now_ms > MAX_LIFE_MS {
        return Err(ServiceCodeError::Expired);
    }
    if code.device_id != ANY_DEVICE && code.device_id != device_id {
        return Err(ServiceCodeError::OtherDevice(code.device_id));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bound_and_short_lived() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pk = key.verifying_key();
        let keys = |id: u16| (id == 3).then_some(pk);
        let now = 1_000_000;
        let code = ServiceCode {
            key_id: 3,
            expires_at_ms: now + 600_000,
            device_id: "lane-1".into(),
        };
        let text = issue(&code, &key);
        assert_eq!(verify(&text, keys, "lane-1", now).unwrap(), code);
        assert_eq!(
            verify(&text, keys, "lane-2", now).unwrap_err(),
            ServiceCodeError::OtherDevice("lane-1".into())
        );
        assert_eq!(
            verify(&text, keys, "lane-1", now + 600_000).unwrap_err(),
            ServiceCodeError::Expired
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            verify(&issue(&code, &other), keys, "lane-1", now).unwrap_err(),
            ServiceCodeError::BadSignature
        );
        let long = ServiceCode {
            expires_at_ms: now + MAX_LIFE_MS + 1,
            ..code.clone()
        };
        assert_eq!(
            verify(&issue(&long, &key), keys, "lane-1", now).unwrap_err(),
            ServiceCodeError::Expired
        );
        assert_eq!(
            verify(&text[..text.len() - 3], keys, "lane-1", now).unwrap_err(),
            ServiceCodeError::Garbled
        );
    }
}

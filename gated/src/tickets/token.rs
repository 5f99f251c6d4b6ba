//! The ticket token printed as a QR code (format: docs/ticket-token.md):
//! a compact binary payload signed with Ed25519, Base45-encoded after the
//! prefix `T1:`. Verified offline with the pinned public keys.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{KeyInit, Mac};

use super::base45;

/// Text before the Base45 part: format version 1.
pub const PREFIX: &str = "T1:";
/// Signed together with the payload, so a signature over anything else
/// (another format, another protocol) never verifies as a ticket.
pub const DOMAIN: &[u8] = b"scenic-ticket/v1";
pub const VERSION: u8 = 1;

const FLAG_HOLDER: u8 = 0b01;
const FLAG_GROUP: u8 = 0b10;

/// Minutes since 2000-01-01 00:00 in the scenic area's civil time.
pub type LocalMinute = u32;

/// What a ticket token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Which central signing key signed it (for rotation).
    pub key_id: u16,
    pub ticket_id: u64,
    pub product_id: u32,
    pub valid_from: LocalMinute,
    /// Exclusive.
    pub valid_until: LocalMinute,
    /// Entries allowed; 0 = unlimited within the window.
    pub entries: u16,
    /// Keyed hash of the holder's ID number (real-name tickets).
    pub holder: Option<[u8; 16]>,
    /// Persons admitted by a tour-group ticket.
    pub group: Option<u16>,
    /// Random bytes: two tokens for the same ticket data still differ.
    pub seed: [u8; 8],
}

/// Why a token could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a ticket token (no `{PREFIX}` prefix)")]
    NotAToken,
    #[error("token text is damaged: {0}")]
    Base45(#[from] base45::Base45Error),
    #[error("token version {0} is not supported")]
    Version(u8),
    #[error("token is {0} bytes, which is no valid length")]
    Length(usize),
    #[error("no public key with id {0}")]
    UnknownKey(u16),
    #[error("signature does not verify")]
    BadSignature,
}

impl Payload {
    fn len(&self) -> usize {
        34 + self.holder.map_or(0, |_| 16) + self.group.map_or(0, |_| 2)
    }

    /// The payload bytes (everything the signature covers, after the domain).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.len() + 64);
        let flags = self.holder.map_or(0, |_| FLAG_HOLDER) | self.group.map_or(0, |_| FLAG_GROUP);
        b.push(VERSION);
        b.push(flags);
        b.extend_from_slice(&self.key_id.to_be_bytes());
        b.extend_from_slice(&self.ticket_id.to_be_bytes());
        b.extend_from_slice(&self.product_id.to_be_bytes());
        b.extend_from_slice(&self.valid_from.to_be_bytes());
        b.extend_from_slice(&self.valid_until.to_be_bytes());
        b.extend_from_slice(&self.entries.to_be_bytes());
        if let Some(h) = &self.holder {
            b.extend_from_slice(h);
        }
        if let Some(g) = self.group {
            b.extend_from_slice(&g.to_be_bytes());
        }
        b.extend_from_slice(&self.seed);
        b
    }

    fn from_bytes(b: &[u8]) -> Result<Self, TokenError> {
        let version = *b.first().ok_or(TokenError::Length(0))?;
        if version != VERSION {
            return Err(TokenError::Version(version));
        }
        let flags = *b.get(1).ok_or(TokenError::Length(b.len()))?;
        let want = 34
            + if flags & FLAG_HOLDER != 0 { 16 } else { 0 }
            + if flags & FLAG_GROUP != 0 { 2 } else { 0 };
        if b.len() != want || flags & !(FLAG_HOLDER | FLAG_GROUP) != 0 {
            return Err(TokenError::Length(b.len() + 64));
        }
        let mut at = 2;
        let mut take = |n: usize| {
            let s = &b[at..at + n];
            at += n;
            s
        };
        let key_id = u16::from_be_bytes(take(2).try_into().expect("2"));
        let ticket_id = u64::from_be_bytes(take(8).try_into().expect("8"));
        let product_id = u32::from_be_bytes(take(4).try_into().expect("4"));
        let valid_from = u32::from_be_bytes(take(4).try_into().expect("4"));
        let valid_until = u32::from_be_bytes(take(4).try_into().expect("4"));
        let entries = u16::from_be_bytes(take(2).try_into().expect("2"));
        let holder = (flags & FLAG_HOLDER != 0).then(|| take(16).try_into().expect("16"));
        let group =
            (flags & FLAG_GROUP != 0).then(|| u16::from_be_bytes(take(2).try_into().expect("2")));
        let seed = take(8).try_into().expect("8");
        Ok(Payload {
            key_id,
            ticket_id,
            product_id,
            valid_from,
            valid_until,
            entries,
            holder,
            group,
            seed,
        })
    }
}

/// The bytes a token's signature covers: the domain tag, then the payload.
pub fn signed_message(payload: &[u8]) -> Vec<u8> {
    [DOMAIN, payload].concat()
}

/// Signs and encodes a token (central's side, and central-sim's).
pub fn encode(payload: &Payload, key: &SigningKey) -> String {
    let bytes = payload.to_bytes();
    let sig = key.sign(&signed_message(&bytes));
    let mut all = bytes;
    all.extend_from_slice(&sig.to_bytes());
    format!("{PREFIX}{}", base45::encode(&all))
}

/// Reads a token without checking its signature: the key id says which key
/// to check it with.
pub fn parse(text: &str) -> Result<(Payload, Vec<u8>, Signature), TokenError> {
    // Only line endings are trimmed: a space is a Base45 digit.
    let b45 = text
        .trim_end_matches(['\r', '\n'])
        .strip_prefix(PREFIX)
        .ok_or(TokenError::NotAToken)?;
    let all = base45::decode(b45)?;
    if all.len() < 64 + 34 {
        return Err(TokenError::Length(all.len()));
    }
    let (bytes, sig) = all.split_at(all.len() - 64);
    let payload = Payload::from_bytes(bytes)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    Ok((payload, bytes.to_vec(), sig))
}

/// Parses and checks the signature with the key the token names.
pub fn verify(
    text: &str,
    key: impl Fn(u16) -> Option<VerifyingKey>,
) -> Result<Payload, TokenError> {
    let (payload, bytes, sig) = parse(text)?;
    let pk = key(payload.key_id).ok_or(TokenError::UnknownKey(payload.key_id))?;
    // Strict: no malleable signatures, no small-order keys.
    pk.verify_strict(&signed_message(&bytes), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(payload)
}

/// The keyed hash that stands for an ID number everywhere (tokens, tickets,
/// logs): HMAC-SHA256 with the device's ID-hash key, first 16 bytes. The
/// number is upper-cased first (a final `x` is the same as `X`).
pub fn holder_hash(id_hash_key: &[u8], id_number: &str) -> [u8; 16] {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(id_hash_key).expect("HMAC takes any key length");
    mac.update(id_number.trim().to_ascii_uppercase().as_bytes());
    let full = mac.finalize().into_bytes();
    full[..16].try_into().expect("32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn payload() -> Payload {
        Payload {
            key_id: 7,
            ticket_id: 1_234_567_890,
            product_id: 42,
            valid_from: 13_676_160, // 2026-01-01 00:00
            valid_until: 13_677_600,
            entries: 1,
            holder: None,
            group: None,
            seed: [9; 8],
        }
    }

    #[test]
    fn round_trip_with_every_option() {
        let k = key(1);
        for (holder, group) in [
            (None, None),
            (Some([5u8; 16]), None),
            (None, Some(30)),
            (Some([6; 16]), Some(2)),
        ] {
            let p = Payload {
                holder,
                group,
                ..payload()
            };
            let t = encode(&p, &k);
            assert!(t.starts_with("T1:"));
            let back = verify(&t, |id| (id == 7).then(|| k.verifying_key())).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn forged_and_unknown_key_tokens_are_refused() {
        let real = key(1);
        let forger = key(2);
        let t = encode(&payload(), &forger);
        assert_eq!(
            verify(&t, |_| Some(real.verifying_key())),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&t, |_| None), Err(TokenError::UnknownKey(7)));
    }

    #[test]
    fn a_changed_payload_breaks_the_signature() {
        let k = key(1);
        let t = encode(&payload(), &k);
        let mut all = base45::decode(&t[3..]).unwrap();
        all[12] ^= 1; // inside ticket_id
        let tampered = format!("T1:{}", base45::encode(&all));
        assert_eq!(
            verify(&tampered, |_| Some(k.verifying_key())),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn damaged_text_is_named() {
        assert_eq!(parse("SN000123"), Err(TokenError::NotAToken));
        assert!(matches!(parse("T1:abc"), Err(TokenError::Base45(_))));
        assert!(matches!(parse("T1:BB8"), Err(TokenError::Length(2))));
    }

    #[test]
    fn holder_hash_is_keyed_and_case_insensitive() {
        let a = holder_hash(b"key-1", "11010519491231002x");
        assert_eq!(a, holder_hash(b"key-1", "11010519491231002X"));
        assert_ne!(a, holder_hash(b"key-2", "11010519491231002X"));
    }
}

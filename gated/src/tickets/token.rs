//! The ticket token printed as a QR code, as docs/ticket-token.md specifies
//! it: a compact binary payload signed with Ed25519, Base45-encoded after the
//! prefix `T1:`, verified offline with the pinned public keys in the order
//! and with the reasons of the standard's §9.

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
/// The smallest token: the fixed fields, the seed and the signature.
const MIN_LEN: usize = 34 + 64;

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
    /// Persons admitted by a tour-group ticket (absent: 1; 0 is refused).
    pub group: Option<u16>,
    /// Random bytes: two tokens for the same ticket data still differ.
    pub seed: [u8; 8],
}

/// Why a token is refused: the standard's reasons (§9), in its order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a ticket token")]
    NotAToken,
    #[error("a ticket token of a format this device does not know")]
    UnknownVersion,
    #[error("token text is damaged: {0}")]
    Base45(#[from] base45::Base45Error),
    #[error("token is {0} bytes, which is no valid length")]
    Length(usize),
    #[error("token sets reserved flags {0:#04x}")]
    ReservedFlags(u8),
    #[error("no usable public key with id {0}")]
    UnknownKey(u16),
    #[error("signing key {0} is not valid yet")]
    KeyNotYetValid(u16),
    #[error("signing key {0} is retired")]
    KeyRetired(u16),
    #[error("signature does not verify")]
    BadSignature,
    #[error("a group of 0 persons")]
    BadGroupSize,
    #[error("the ticket is not valid yet")]
    NotYetValid,
    #[error("the ticket has expired")]
    Expired,
    #[error("not an ID number (ASCII letters and digits only)")]
    BadIdNumber,
    #[error("the ID card is not the ticket holder's")]
    HolderMismatch,
}

impl TokenError {
    /// The standard's reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::NotAToken => "not_a_token",
            TokenError::UnknownVersion => "unknown_version",
            TokenError::Base45(_) => "bad_base45",
            TokenError::Length(_) => "bad_length",
            TokenError::ReservedFlags(_) => "reserved_flags",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::KeyNotYetValid(_) => "key_not_yet_valid",
            TokenError::KeyRetired(_) => "key_retired",
            TokenError::BadSignature => "bad_signature",
            TokenError::BadGroupSize => "bad_group_size",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Expired => "expired",
            TokenError::BadIdNumber => "bad_id_number",
            TokenError::HolderMismatch => "holder_mismatch",
        }
    }
}

/// A signing key as pinned: its id, its 32 bytes and its validity in local
/// minutes (`None`: no bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub key_id: u16,
    pub public_key: [u8; 32],
    pub valid_from: Option<LocalMinute>,
    pub valid_until: Option<LocalMinute>,
}

/// A key's state at the verifier's *now* (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAt {
    Usable(VerifyingKey),
    NotYetValid,
    Retired,
    /// Not pinned, or not a usable key.
    Unknown,
}

/// The key a 32-byte public key stands for, if it may be pinned (§7): the
/// canonical encoding of a point that is not of small order.
pub fn usable_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    // y ≥ p = 2^255 − 19 is a non-canonical encoding.
    let y_high = bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff);
    if y_high && bytes[0] >= 0xed {
        return None;
    }
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    (!key.is_weak()).then_some(key)
}

impl KeyAt {
    /// A usable key's state at `now`, given its validity (`None`: no bound).
    pub fn of(
        key: VerifyingKey,
        valid_from: Option<LocalMinute>,
        valid_until: Option<LocalMinute>,
        now: LocalMinute,
    ) -> Self {
        if valid_from.is_some_and(|f| now < f) {
            KeyAt::NotYetValid
        } else if valid_until.is_some_and(|u| now >= u) {
            KeyAt::Retired
        } else {
            KeyAt::Usable(key)
        }
    }
}

impl Pinned {
    /// The key's state at `now`.
    pub fn at(&self, now: LocalMinute) -> KeyAt {
        match usable_key(&self.public_key) {
            Some(key) => KeyAt::of(key, self.valid_from, self.valid_until, now),
            None => KeyAt::Unknown,
        }
    }
}

impl Payload {
    fn len(&self) -> usize {
        34 + self.holder.map_or(0, |_| 16) + self.group.map_or(0, |_| 2)
    }

    /// Persons the token admits at once: the group, else 1.
    pub fn persons(&self) -> u16 {
        self.group.unwrap_or(1)
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

    /// Steps 5–7 of §9 on the decoded bytes (at least [`MIN_LEN`] of them).
    fn from_bytes(all: &[u8]) -> Result<Self, TokenError> {
        if all[0] != VERSION {
            return Err(TokenError::UnknownVersion);
        }
        let flags = all[1];
        if flags & !(FLAG_HOLDER | FLAG_GROUP) != 0 {
            return Err(TokenError::ReservedFlags(
                flags & !(FLAG_HOLDER | FLAG_GROUP),
            ));
        }
        let want = MIN_LEN
            + if flags & FLAG_HOLDER != 0 { 16 } else { 0 }
            + if flags & FLAG_GROUP != 0 { 2 } else { 0 };
        if all.len() != want {
            return Err(TokenError::Length(all.len()));
        }
        let b = &all[..all.len() - 64];
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

/// Whether `text` claims to be a ticket token of some format: `T`, one to
/// three ASCII digits, `:` (§2). Such a text is never a serial.
pub fn is_token(text: &str) -> bool {
    token_format(text).is_some()
}

/// The format digits and the text after the colon.
fn token_format(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('T')?;
    let colon = rest.find(':')?;
    let digits = &rest[..colon];
    ((1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (digits, &rest[colon + 1..]))
}

/// Steps 1–7 of §9: reads a token without checking its signature (the key
/// id says which key to check it with).
pub fn parse(text: &str) -> Result<(Payload, Vec<u8>, Signature), TokenError> {
    // Only the reader's line ending is removed: a space is a Base45 digit.
    let (digits, b45) =
        token_format(text.trim_end_matches(['\r', '\n'])).ok_or(TokenError::NotAToken)?;
    if digits != "1" {
        return Err(TokenError::UnknownVersion);
    }
    let all = base45::decode(b45)?;
    if all.len() < MIN_LEN {
        return Err(TokenError::Length(all.len()));
    }
    let payload = Payload::from_bytes(&all)?;
    let (bytes, sig) = all.split_at(all.len() - 64);
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    Ok((payload, bytes.to_vec(), sig))
}

/// Steps 1–10 of §9: parses, finds the key the token names as it stands at
/// the verifier's now, checks the signature strictly (S below the group
/// order, R and A not of small order, plain Ed25519) and the group.
pub fn verify_at(text: &str, key: impl Fn(u16) -> KeyAt) -> Result<Payload, TokenError> {
    let (payload, bytes, sig) = parse(text)?;
    let pk = match key(payload.key_id) {
        KeyAt::Usable(pk) => pk,
        KeyAt::NotYetValid => return Err(TokenError::KeyNotYetValid(payload.key_id)),
        KeyAt::Retired => return Err(TokenError::KeyRetired(payload.key_id)),
        KeyAt::Unknown => return Err(TokenError::UnknownKey(payload.key_id)),
    };
    pk.verify_strict(&signed_message(&bytes), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    if payload.group == Some(0) {
        return Err(TokenError::BadGroupSize);
    }
    Ok(payload)
}

/// [`verify_at`] with keys valid always (central-sim, tests).
pub fn verify(
    text: &str,
    key: impl Fn(u16) -> Option<VerifyingKey>,
) -> Result<Payload, TokenError> {
    verify_at(text, |id| key(id).map_or(KeyAt::Unknown, KeyAt::Usable))
}

/// All of §9, steps 1–12, on the token alone: what a verifier without the
/// device's state (revocation, usage, products) decides. The lane applies
/// its entry rules on top; the conformance vectors run through this.
pub fn check(
    text: &str,
    keys: &[Pinned],
    now: LocalMinute,
    id_hash_key: &[u8],
    id_number: Option<&str>,
) -> Result<Payload, TokenError> {
    let p = verify_at(text, |id| {
        keys.iter()
            .find(|k| k.key_id == id)
            .map_or(KeyAt::Unknown, |k| k.at(now))
    })?;
    if now < p.valid_from {
        return Err(TokenError::NotYetValid);
    }
    if now >= p.valid_until {
        return Err(TokenError::Expired);
    }
    if let (Some(holder), Some(id)) = (p.holder, id_number) {
        let presented = holder_hash(id_hash_key, id)?;
        // Constant time: the comparison does not tell how much matched.
        let diff = presented
            .iter()
            .zip(holder.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(TokenError::HolderMismatch);
        }
    }
    Ok(p)
}

/// An ID number as the standard normalises it (§8): ASCII whitespace around
/// it removed, nothing but ASCII letters and digits left, upper case.
pub fn normalise_id_number(id_number: &str) -> Result<String, TokenError> {
    let n = id_number.trim_matches([' ', '\t', '\n', '\x0c', '\r']);
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::BadIdNumber);
    }
    Ok(n.to_ascii_uppercase())
}

/// The keyed hash that stands for an ID number everywhere (tokens, tickets,
/// logs): HMAC-SHA256 with the ID-hash key (its bytes, not its hex), first
/// 16 bytes, over the normalised number. A number that does not normalise
/// is refused, never hashed.
pub fn holder_hash(id_hash_key: &[u8], id_number: &str) -> Result<[u8; 16], TokenError> {
    let n = normalise_id_number(id_number)?;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(id_hash_key).expect("HMAC takes any key length");
    mac.update(n.as_bytes());
    let full = mac.finalize().into_bytes();
    Ok(full[..16].try_into().expect("32 bytes"))
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
            valid_from: 13_675_680, // 2026-01-01 00:00
            valid_until: 13_677_120,
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
        assert_eq!(parse("T2:BB8"), Err(TokenError::UnknownVersion));
        assert_eq!(parse("T01:BB8"), Err(TokenError::UnknownVersion));
        assert!(matches!(parse("T1:abc"), Err(TokenError::Base45(_))));
        assert!(matches!(parse("T1:BB8"), Err(TokenError::Length(2))));
        assert!(is_token("T2:anything") && is_token("T123:") && !is_token("T1234:x"));
    }

    #[test]
    fn a_group_of_nobody_and_small_order_keys_are_refused() {
        let k = key(1);
        let t = encode(
            &Payload {
                group: Some(0),
                ..payload()
            },
            &k,
        );
        assert_eq!(
            verify(&t, |_| Some(k.verifying_key())),
            Err(TokenError::BadGroupSize)
        );
        // The identity point: any signature with R = identity would verify.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(usable_key(&identity), None);
        assert!(usable_key(&k.verifying_key().to_bytes()).is_some());
    }

    #[test]
    fn holder_hash_is_keyed_and_normalised_in_ascii_only() {
        let a = holder_hash(b"key-1", "11010519491231002x").unwrap();
        assert_eq!(a, holder_hash(b"key-1", " 11010519491231002X\t").unwrap());
        assert_ne!(a, holder_hash(b"key-2", "11010519491231002X").unwrap());
        for bad in [
            "",
            "  ",
            "\u{3000}11010519491231002X",
            "１１０１０５",
            "110105 1949",
            "11010519491231002х",
        ] {
            assert_eq!(
                holder_hash(b"key-1", bad),
                Err(TokenError::BadIdNumber),
                "{bad:?}"
            );
        }
    }
}

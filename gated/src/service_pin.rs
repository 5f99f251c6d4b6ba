//! The kiosk's service PIN, checked by gated, not by the app.
//!
//! gated.toml (`[kiosk] service_pin_hash`, root:gated 0640) holds a salted,
//! iterated hash made by `gatectl pin-hash`; a wrong PIN counts, and after
//! [`MAX_FAILURES`] in a row every attempt is refused for [`LOCKOUT`]: eight
//! digits are too few to survive guessing without it. A right PIN opens a
//! session: a random token bound to the caller's uid that the service
//! methods require, valid [`SESSION_IDLE`] after its last use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Wrong PINs in a row before attempts are refused for a while.
pub const MAX_FAILURES: u32 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// A service menu left alone this long needs the PIN again.
pub const SESSION_IDLE: Duration = Duration::from_secs(5 * 60);
/// PBKDF2 rounds for a new hash: ~50 ms on the appliance's CPU.
pub const ITERATIONS: u32 = 100_000;

const PREFIX: &str = "pbkdf2-sha256";

/// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinHash({PREFIX}, {} rounds)", self.iterations)
    }
}

impl std::fmt::Display for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}${}${}${}",
            self.iterations,
            hex::encode(&self.salt),
            hex::encode(self.hash)
        )
    }
}

/// A PIN is 4 to 8 digits.
pub fn check_pin(pin: &str) -> Result<(), String> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("a service PIN is 4 to 8 digits".into())
    }
}

impl PinHash {
    /// Hashes `pin` with a fresh random salt.
    pub fn new(pin: &str, iterations: u32) -> Result<Self, String> {
        check_pin(pin)?;
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).expect("the kernel's random source");
        let hash = pbkdf2(pin.as_bytes(), &salt, iterations);
        Ok(PinHash {
            iterations,
            salt,
            hash,
        })
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let form =
            || format!("expected `{PREFIX}$<rounds>$<salt hex>$<hash hex>` (gatectl pin-hash)");
        let mut parts = s.split('$');
        if parts.next() != Some(PREFIX) {
            return Err(form());
        }
        let iterations: u32 = parts
            .next()
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or_else(form)?;
        let salt = parts
            .next()
            .and_then(|s| hex::decode(s).ok())
            .filter(|s| s.len() >= 8)
            .ok_or_else(form)?;
        let hash: [u8; 32] = parts
            .next()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| h.try_into().ok())
            .ok_or_else(form)?;
        if parts.next().is_some() {
            return Err(form());
        }
        Ok(PinHash {
            iterations,
            salt,
            hash,
        })
    }

    pub fn matches(&self, pin: &str) -> bool {
        let got = pbkdf2(pin.as_bytes(), &self.salt, self.iterations);
        // Compared in constant time: how long a wrong PIN takes says nothing.
        got.iter()
            .zip(self.hash.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b))
            == 0
    }
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) for one 32-byte block.
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let prf = Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes any key length");
    let mut mac = prf.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = prf.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("no service PIN is set on this device (gated.toml [kiosk] service_pin_hash)")]
    NotSet,
    #[error("wrong PIN ({0} attempts left before a {1} s wait)")]
    Wrong(u32, u64),
    #[error("too many wrong PINs: try again in {0} s")]
    Locked(u64),
    #[error("the service session ended: enter the PIN again")]
    NoSession,
}

#[derive(Debug)]
struct Session {
    uid: Option<u32>,
    last_use: Instant,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    locked_until: Option<Instant>,
    sessions: HashMap<String, Session>,
}

/// Attempts and open sessions. Times are passed in, so tests need no clock.
#[derive(Debug)]
pub struct ServicePin {
    hash: Option<PinHash>,
    state: Mutex<State>,
}

impl ServicePin {
    pub fn new(hash: Option<PinHash>) -> Self {
        ServicePin {
            hash,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `pin` for the caller `uid`; a session token when it is right.
    pub fn open(&self, pin: &str, uid: Option<u32>, now: Instant) -> Result<String, PinError> {
        let hash = self.hash.as_ref().ok_or(PinError::NotSet)?;
        let mut st = self.state();
        if let Some(until) = st.locked_until {
            if now < until {
                return Err(PinError::Locked((until - now).as_secs().max(1)));
            }
            st.locked_until = None;
            st.failures = 0;
        }
        if !hash.matches(pin) {
            st.failures += 1;
            if st.failures >= MAX_FAILURES {
                st.locked_until = Some(now + LOCKOUT);
                return Err(PinError::Locked(LOCKOUT.as_secs()));
            }
            return Err(PinError::Wrong(
                MAX_FAILURES - st.failures,
                LOCKOUT.as_secs(),
            ));
        }
        st.failures = 0;
        st.sessions
            .retain(|_, s| now.saturating_duration_since(s.last_use) < SESSION_IDLE);
        let token = crate::central::identity::random_hex(16);
        st.sessions
            .insert(token.clone(), Session { uid, last_use: now });
        Ok(token)
    }

    /// A service method's check: the session is open, the caller's own, and
    /// used recently; using it keeps it open.
    pub fn check(&self, token: &str, uid: Option<u32>, now: Instant) -> Result<(), PinError> {
        let mut st = self.state();
        let live = st
            .sessions
            .get_mut(token)
            .filter(|s| s.uid == uid && now.saturating_duration_since(s.last_use) < SESSION_IDLE);
        match live {
            Some(s) => {
                s.last_use = now;
                Ok(())
            }
            None => {
                st.sessions.remove(token);
                Err(PinError::NoSession)
            }
        }
    }

    pub fn close(&self, token: &str) {
        self.state().sessions.remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(p: &str) -> ServicePin {
        ServicePin::new(Some(PinHash::new(p, 10).unwrap()))
    }

    #[test]
    fn a_hash_round_trips_through_its_text_and_matches_only_its_pin() {
        let h = PinHash::new("2468", 1000).unwrap();
        let back = PinHash::parse(&h.to_string()).unwrap();
        assert_eq!(back, h);
        assert!(back.matches("2468"));
        assert!(!back.matches("2469"));
        assert!(!back.matches(""));
        // Two hashes of one PIN differ: the salt is random.
        assert_ne!(
            PinHash::new("2468", 1000).unwrap().to_string(),
            h.to_string()
        );
        assert!(!format!("{h:?}").contains(&hex::encode(h.hash)));
    }

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1), first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn malformed_hashes_and_pins_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "2468",
            "sha256$1$00112233445566778899$00",
            "pbkdf2-sha256$0$0011223344556677$",
            "pbkdf2-sha256$10$zz$00",
            "pbkdf2-sha256$10$0011223344556677$0011",
        ] {
            let e = PinHash::parse(bad).unwrap_err();
            assert!(e.contains("gatectl pin-hash"), "{bad}: {e}");
        }
        for bad in ["123", "123456789", "12a4", ""] {
            assert!(PinHash::new(bad, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn five_wrong_pins_lock_even_the_right_one_out_for_a_minute() {
        let p = pin("2468");
        let t0 = Instant::now();
        for left in (1..MAX_FAILURES).rev() {
            assert_eq!(p.open("1111", None, t0), Err(PinError::Wrong(left, 60)));
        }
        assert_eq!(p.open("1111", None, t0), Err(PinError::Locked(60)));
        assert_eq!(
            p.open("2468", None, t0 + Duration::from_secs(59)),
            Err(PinError::Locked(1))
        );
        assert!(p.open("2468", None, t0 + LOCKOUT).is_ok());
        // The count starts again after a right PIN.
        assert_eq!(
            p.open("1111", None, t0 + LOCKOUT),
            Err(PinError::Wrong(4, 60))
        );
    }

    #[test]
    fn a_session_is_the_callers_own_and_ends_when_left_alone_or_closed() {
        let p = pin("2468");
        let t0 = Instant::now();
        let token = p.open("2468", Some(1000), t0).unwrap();
        assert_eq!(p.check(&token, Some(1001), t0), Err(PinError::NoSession));
        // The wrong uid ended it: a stolen token is not kept for later.
        assert_eq!(p.check(&token, Some(1000), t0), Err(PinError::NoSession));

        let token = p.open("2468", Some(1000), t0).unwrap();
        let later = t0 + SESSION_IDLE - Duration::from_secs(1);
        assert_eq!(p.check(&token, Some(1000), later), Ok(()));
        // Used at `later`: open until `later + SESSION_IDLE`.
        assert_eq!(
            p.check(
                &token,
                Some(1000),
                later + SESSION_IDLE - Duration::from_secs(1)
            ),
            Ok(())
        );
        let idle = later + SESSION_IDLE * 2;
        assert_eq!(p.check(&token, Some(1000), idle), Err(PinError::NoSession));

        let token = p.open("2468", Some(1000), t0).unwrap();
        p.close(&token);
        assert_eq!(p.check(&token, Some(1000), t0), Err(PinError::NoSession));
        assert_eq!(p.check("", Some(1000), t0), Err(PinError::NoSession));
    }

    #[test]
    fn without_a_configured_hash_no_pin_opens_the_menu() {
        let p = ServicePin::new(None);
        assert_eq!(p.open("", None, Instant::now()), Err(PinError::NotSet));
        assert_eq!(p.open("2468", None, Instant::now()), Err(PinError::NotSet));
    }
}

//! Any bytes as the text a scanner delivers: the verifier never panics, and
//! accepts nothing but a token the pinned key signed (none is, here: the
//! key's private half is not in this program's input space).
#![no_main]

use gated::tickets::token::{self, Pinned};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let pinned = [Pinned {
        key_id: 1,
        public_key: signer.verifying_key().to_bytes(),
        valid_from: None,
        valid_until: None,
    }];
    let _ = token::parse(text);
    let _ = token::holder_hash(&[7; 32], text);
    assert!(token::check(text, &pinned, 13_849_080, &[7; 32], Some(text)).is_err());
});

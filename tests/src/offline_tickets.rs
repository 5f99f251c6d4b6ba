//! Tickets a lane knows without the central system: a store holding signing
//! key #1 and product 1, and tokens signed with that key.

use std::path::Path;

use ed25519_dalek::SigningKey;
use gated::store::Store;
use gated::tickets::token::{self, LocalMinute, Payload};

/// Prepares the state directory's store (created if missing) before gated
/// starts: `key` as signing key #1, and product 1 ("Adult").
pub fn seed_store(state: &Path, key: &SigningKey) {
    std::fs::create_dir_all(state).unwrap();
    let mut s = Store::open(&state.join("gated.db")).unwrap();
    s.put_signing_key(1, &key.verifying_key().to_bytes())
        .unwrap();
    s.conn()
        .execute("INSERT INTO products (id, name) VALUES (1, 'Adult')", [])
        .unwrap();
}

/// A token for product 1 signed with key #1, valid from an hour before `now`
/// (scenic-area minutes) to ten hours after; `entries` 0 = any number.
pub fn ticket(key: &SigningKey, ticket_id: u64, entries: u16, now: LocalMinute) -> String {
    token::encode(
        &Payload {
            key_id: 1,
            ticket_id,
            product_id: 1,
            valid_from: now - 60,
            valid_until: now + 600,
            entries,
            holder: None,
            group: None,
            seed: ticket_id.to_be_bytes(),
        },
        key,
    )
}

//! The central system's ticket-signing keys pinned on this device, each
//! with its validity in the scenic area's civil time.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::tickets::admission::PinnedKey;
use crate::tickets::token::LocalMinute;

impl Store {
    /// Pins a ticket-signing public key, valid always.
    pub fn put_signing_key(&self, key_id: u16, public_key: &[u8; 32]) -> Result<(), StoreError> {
        self.conn_ref()
            .execute(
                "INSERT INTO signing_keys (key_id, public_key) VALUES (?1, ?2)
                 ON CONFLICT (key_id) DO UPDATE SET public_key = excluded.public_key",
                params![key_id, &public_key[..]],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The public key with this id, if pinned.
    pub fn signing_key(&self, key_id: u16) -> Result<Option<[u8; 32]>, StoreError> {
        self.conn_ref()
            .query_row(
                "SELECT public_key FROM signing_keys WHERE key_id = ?1",
                [key_id],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map(|k| k.and_then(|k| k.try_into().ok()))
            .map_err(|e| self.err(e))
    }

    /// Every pinned key that is a valid Ed25519 point, by key id.
    pub fn pinned_keys(&self) -> Result<HashMap<u16, PinnedKey>, StoreError> {
        let rows: Vec<(u16, Vec<u8>, LocalMinute, Option<LocalMinute>)> = self
            .conn_ref()
            .prepare("SELECT key_id, public_key, valid_from, valid_until FROM signing_keys")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, k, valid_from, valid_until)| {
                // Only a canonical point not of small order (ticket-token.md §7).
                let Some(key) = k
                    .try_into()
                    .ok()
                    .and_then(|k| crate::tickets::token::usable_key(&k))
                else {
                    tracing::warn!(
                        key_id = id,
                        "signing key is not a usable Ed25519 key: not pinned"
                    );
                    return None;
                };
                Some((
                    id,
                    PinnedKey {
                        key,
                        valid_from,
                        valid_until,
                    },
                ))
            })
            .collect())
    }
}

/// A key to pin: id, public key, validity (civil minutes; `None` = open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: u16,
    pub public_key: [u8; 32],
    pub valid_from: Option<LocalMinute>,
    pub valid_until: Option<LocalMinute>,
}

/// Replaces every pinned key, in the caller's transaction.
pub fn replace(tx: &Transaction<'_>, keys: &[KeyRow]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM signing_keys", [])?;
    for k in keys {
        tx.execute(
            "INSERT INTO signing_keys (key_id, public_key, valid_from, valid_until) VALUES (?1, ?2, ?3, ?4)",
            params![k.key_id, &k.public_key[..], k.valid_from.unwrap_or(0), k.valid_until],
        )?;
    }
    Ok(())
}

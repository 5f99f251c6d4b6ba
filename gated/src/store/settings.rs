//! `device_settings`: what provisioning and sync keep (the ID-hash key, the
//! cursor, the catalog, the status), by name.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// A setting (e.g. `id_hash_key`), if set.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn_ref()
            .query_row(
                "SELECT value FROM device_settings WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        put(self.conn_ref(), name, value).map_err(|e| self.err(e))
    }
}

/// Sets a setting on `conn`, a transaction's when it must go with other writes.
pub fn put(conn: &rusqlite::Connection, name: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO device_settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map(|_| ())
}

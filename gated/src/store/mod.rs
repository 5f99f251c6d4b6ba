//! gated's SQLite database: one file under the state directory, WAL mode,
//! every commit durable before it returns (`synchronous = FULL`), and a
//! versioned schema migrated at start. A database written by a newer gated
//! is opened only when that gated says its schema still admits this one
//! (`schema_readers`: its migrations since only added); otherwise it is
//! refused, never altered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

pub mod keys;
pub mod orders;
pub mod outbox;
pub mod passages;
pub mod settings;
pub mod tickets;
pub mod timeline;

/// Schema migrations, in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: the lane's tables.
    r#"
    CREATE TABLE products (
        id                INTEGER PRIMARY KEY,
        name              TEXT NOT NULL,
        -- Lane groups it admits to, comma-separated; empty = every group.
        lane_groups       TEXT NOT NULL DEFAULT '',
        -- 0 = unlimited within the validity window.
        entries_allowed   INTEGER NOT NULL DEFAULT 1,
        per_day_limit     INTEGER NOT NULL DEFAULT 0,
        reentry_after_exit INTEGER NOT NULL DEFAULT 0,
        reentry_minutes   INTEGER NOT NULL DEFAULT 0,
        -- Bit 0 = Monday … bit 6 = Sunday.
        weekdays          INTEGER NOT NULL DEFAULT 127,
        -- Minutes of the local day; slot_end exclusive; 0..1440 = all day.
        slot_start        INTEGER NOT NULL DEFAULT 0,
        slot_end          INTEGER NOT NULL DEFAULT 1440
    );
    CREATE TABLE tickets (
        id              INTEGER PRIMARY KEY,
        serial          TEXT UNIQUE,
        product_id      INTEGER NOT NULL,
        valid_from      INTEGER NOT NULL,
        valid_until     INTEGER NOT NULL,
        entries_allowed INTEGER,
        group_size      INTEGER NOT NULL DEFAULT 1,
        -- Keyed hash of the holder's ID number (never the number itself).
        holder_hash     BLOB,
        card_uid        TEXT UNIQUE
    );
    CREATE INDEX tickets_by_holder ON tickets(holder_hash) WHERE holder_hash IS NOT NULL;
    CREATE TABLE revoked (
        ticket_id INTEGER PRIMARY KEY,
        reason    TEXT NOT NULL
    );
    CREATE TABLE blocked (
        ticket_id INTEGER PRIMARY KEY,
        reason    TEXT NOT NULL
    );
    CREATE TABLE signing_keys (
        key_id      INTEGER PRIMARY KEY,
        public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
        valid_from  INTEGER NOT NULL DEFAULT 0,
        valid_until INTEGER
    );
    CREATE TABLE passages (
        id        INTEGER PRIMARY KEY,
        -- One per scan: a replayed commit cannot record a passage twice.
        nonce     TEXT NOT NULL UNIQUE,
        ticket_id INTEGER NOT NULL,
        lane      TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
        persons   INTEGER NOT NULL,
        at_ms     INTEGER NOT NULL,
        -- Scenic-area civil time (minutes since 2000-01-01), what rules count in.
        local_day    INTEGER NOT NULL,
        local_minute INTEGER NOT NULL
    );
    CREATE INDEX passages_by_ticket ON passages(ticket_id, at_ms);
    -- What provisioning gives the device (the ID-hash key, …).
    CREATE TABLE device_settings (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        nonce      TEXT NOT NULL UNIQUE,
        kind       TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    "#,
    // 2: the kiosk's orders: paid ones stay here until every ticket is printed.
    r#"
    CREATE TABLE orders (
        order_no    TEXT PRIMARY KEY,
        order_code  TEXT NOT NULL,
        status      TEXT NOT NULL,
        -- The order as the central system last described it (JSON).
        body        TEXT NOT NULL,
        phone_suffix TEXT,
        -- Created at this kiosk (its sale event is ours to upload).
        sold_here   INTEGER NOT NULL DEFAULT 0,
        updated_ms  INTEGER NOT NULL
    );
    CREATE INDEX orders_by_code ON orders(order_code);
    CREATE TABLE order_tickets (
        ticket_id   INTEGER PRIMARY KEY,
        order_no    TEXT NOT NULL REFERENCES orders(order_no),
        holder_hash BLOB,
        -- JSON of the issued ticket (token, serial, product, validity, price).
        body        TEXT NOT NULL,
        printed_ms  INTEGER
    );
    CREATE INDEX order_tickets_by_order ON order_tickets(order_no);
    CREATE INDEX order_tickets_by_holder ON order_tickets(holder_hash) WHERE holder_hash IS NOT NULL;
    CREATE TABLE reprints (
        id        INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL,
        reason    TEXT NOT NULL,
        by        TEXT NOT NULL,
        at_ms     INTEGER NOT NULL
    );
    "#,
    // 3: a ticket's print under way: set before the bytes go to the printer.
    // Left set without printed_ms, gated died mid-print (printed or not is
    // unknowable), and the ticket waits for an engineer's reprint instead of
    // coming out twice.
    r#"
    ALTER TABLE order_tickets ADD COLUMN print_started_ms INTEGER;
    "#,
    // 4: a passage about to happen at a gate whose counters outlive gated
    // (Modbus controllers): written before the gate opens, with the gate's
    // counter then. Left over after a kill, the counter tells at restart
    // whether the visitor went through (the passage is recorded) or not.
    r#"
    CREATE TABLE pending_passages (
        nonce        TEXT PRIMARY KEY,
        gate         TEXT NOT NULL,
        direction    TEXT NOT NULL,
        counter      INTEGER NOT NULL,
        ticket_id    INTEGER NOT NULL,
        lane         TEXT NOT NULL,
        persons      INTEGER NOT NULL,
        at_ms        INTEGER NOT NULL,
        local_minute INTEGER NOT NULL
    );
    "#,
    // 5: the fleet. Passages of every device of the site count, each once by
    // its nonce: `origin` is the device that recorded it (NULL: this one),
    // `seq` its number in that device's own sequence (what peers follow by
    // cursor). `entries_allowed` and `group_size` are the ticket's as
    // admitted, the bound the conflict rule counts against; `conflict` marks
    // a passage that found its ticket already used up by earlier ones.
    r#"
    ALTER TABLE passages ADD COLUMN origin TEXT;
    ALTER TABLE passages ADD COLUMN seq INTEGER;
    ALTER TABLE passages ADD COLUMN lane_group TEXT NOT NULL DEFAULT '';
    ALTER TABLE passages ADD COLUMN entries_allowed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE passages ADD COLUMN group_size INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE passages ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
    -- Passages recorded before the fleet: numbered in the order they were.
    UPDATE passages SET seq = id;
    CREATE UNIQUE INDEX passages_own_seq ON passages(seq) WHERE origin IS NULL;
    CREATE INDEX passages_conflicts ON passages(conflict) WHERE conflict = 1;
    ALTER TABLE pending_passages ADD COLUMN lane_group TEXT NOT NULL DEFAULT '';
    ALTER TABLE pending_passages ADD COLUMN entries_allowed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE pending_passages ADD COLUMN group_size INTEGER NOT NULL DEFAULT 1;
    -- Persons counted with no ticket at any device of the site (free mode,
    -- manual opening, power fallback, fire alarm), from the change feed.
    CREATE TABLE free_passages (
        nonce     TEXT PRIMARY KEY,
        origin    TEXT NOT NULL,
        lane      TEXT NOT NULL,
        lane_group TEXT NOT NULL DEFAULT '',
        direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
        persons   INTEGER NOT NULL,
        at_ms     INTEGER NOT NULL,
        local_day INTEGER NOT NULL
    );
    -- How far this device has followed each peer's own passages.
    CREATE TABLE peer_cursors (
        device_id TEXT PRIMARY KEY,
        cursor    INTEGER NOT NULL
    );
    "#,
    // 6: occupancy. Ticketless passages of this device are kept too
    // (`origin` NULL), numbered in the same own sequence as its passages, so
    // peers follow both; both are counted by local minute, for an operating
    // day that need not begin at midnight. Rows from before had only their
    // day: they count from its first minute.
    r#"
    CREATE TABLE free_passages_6 (
        id           INTEGER PRIMARY KEY,
        nonce        TEXT NOT NULL UNIQUE,
        origin       TEXT,
        seq          INTEGER,
        lane         TEXT NOT NULL,
        lane_group   TEXT NOT NULL DEFAULT '',
        direction    TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
        persons      INTEGER NOT NULL,
        at_ms        INTEGER NOT NULL,
        local_minute INTEGER NOT NULL
    );
    INSERT INTO free_passages_6
        (nonce, origin, lane, lane_group, direction, persons, at_ms, local_minute)
        SELECT nonce, origin, lane, lane_group, direction, persons, at_ms, local_day * 1440
        FROM free_passages;
    DROP TABLE free_passages;
    ALTER TABLE free_passages_6 RENAME TO free_passages;
    CREATE UNIQUE INDEX free_passages_own_seq ON free_passages(seq) WHERE origin IS NULL;
    CREATE INDEX free_passages_by_minute ON free_passages(local_minute);
    CREATE INDEX passages_by_minute ON passages(local_minute);
    "#,
    // 7: updates. Both root slots share this store: the oldest schema
    // version a gated must know to use it (docs/updates.md, "The store").
    r#"
    CREATE TABLE schema_readers (oldest INTEGER NOT NULL);
    INSERT INTO schema_readers (oldest) VALUES (7);
    "#,
    // 8: the printer's cut counter before a ticket's first byte (printers
    // that count their cuts): the next start tells from it whether a ticket
    // held mid-print came out (docs/ARCHITECTURE.md, "Printing").
    r#"
    ALTER TABLE order_tickets ADD COLUMN print_cuts_before INTEGER;
    "#,
];

/// The oldest schema version a gated must know to open a store this gated
/// migrated. A migration that only adds (tables, columns with defaults,
/// indexes) leaves it: a gated one release back, booted again after a
/// rollback, opens the store and works on. A migration that changes or drops
/// something sets it to its own version.
const OLDEST_READER: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this gated knows ({known}): \
         it was written by a newer gated; install that version or restore a backup (nothing was changed)"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error(transparent)]
    Outbox(outbox::OutboxError),
    /// A record that does not parse: refused, never guessed.
    #[error("database {path}: {what}")]
    Unreadable { path: PathBuf, what: String },
}

impl StoreError {
    /// An outbox error, with the database's path on an SQLite one.
    pub fn from_outbox(path: &Path, e: outbox::OutboxError) -> Self {
        match e {
            outbox::OutboxError::Sqlite(source) => StoreError::Sqlite {
                path: path.to_owned(),
                source,
            },
            e => StoreError::Outbox(e),
        }
    }
}

/// gated's database as the daemon holds it: **one writer connection**,
/// shared by the lanes, the link, the modes and the kiosk services, and one
/// reader connection for what only reads (lookups at the lane, the kiosk's
/// and the bus's queries): under WAL a read never waits for a write. Work
/// runs on tokio's blocking pool ([`Db::write`], [`Db::read`]), so no fsync
/// and no wait for the lock holds a runtime worker that polls gates and
/// serves D-Bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    writer: Arc<Mutex<Store>>,
    reader: Arc<Mutex<Store>>,
    /// Counts the work done through [`Db::write`] (the feed, the peers):
    /// what follows the store wakes on it.
    written: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Db {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Db::with_writer(Store::open(path)?)
    }

    /// Makes `writer` the writer, with a reader of the same file.
    pub fn with_writer(writer: Store) -> Result<Self, StoreError> {
        writer.set_wal_autocheckpoint(WAL_PAGES)?;
        let reader = Store::open_read_only(&writer.path)?;
        Ok(Db {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            written: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Runs `f` with the writer on the blocking pool.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> T {
        let db = self.clone();
        let done = blocking(move || f(&mut db.writer())).await;
        self.written.send_modify(|n| *n += 1);
        done
    }

    /// Changes after each [`Db::write`].
    pub fn written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Runs `f` with the reader on the blocking pool.
    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let db = self.clone();
        blocking(move || f(&db.reader())).await
    }

    /// The writer, for code already on a blocking thread (or at start).
    pub fn writer(&self) -> MutexGuard<'_, Store> {
        // A panic while holding it left no open transaction behind (rusqlite
        // rolls back on drop), so the connection is still sound.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reader, for code already on a blocking thread.
    pub fn reader(&self) -> MutexGuard<'_, Store> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// WAL pages the writer lets accumulate before folding them into the
/// database: a download's pages rewrite the same index pages page after page.
const WAL_PAGES: u32 = 16_000;

/// Runs `f` on tokio's blocking pool; a panic in it is the caller's.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // FULL: a commit has reached the disk when it returns (a passage is
        // reported only after that).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database for reading only (the `Db`'s reader):
    /// nothing is created or migrated.
    fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.check_not_too_new()?;
        Ok(store)
    }

    /// Refuses a schema newer than this gated knows, unless the gated that
    /// wrote it declared that older ones may still use it.
    fn check_not_too_new(&self) -> Result<u32, StoreError> {
        let found = self.schema_version()?;
        let known = MIGRATIONS.len() as u32;
        if found <= known {
            return Ok(found);
        }
        let oldest: Option<u32> = self
            .conn
            .query_row("SELECT max(oldest) FROM schema_readers", [], |r| r.get(0))
            .ok()
            .flatten();
        match oldest {
            Some(oldest) if oldest <= known => {
                tracing::warn!(
                    path = %self.path.display(), found, known,
                    "the store was migrated by a newer gated whose schema still admits this one (schema {oldest} on): opened as it is"
                );
                Ok(found)
            }
            _ => Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            }),
        }
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.check_not_too_new()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            let version = i as u32 + 1;
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", version))
                .and_then(|()| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            tracing::info!(path = %self.path.display(), version, "database schema migrated");
        }
        if found <= MIGRATIONS.len() as u32 {
            self.conn
                .execute(
                    "UPDATE schema_readers SET oldest = ?1 WHERE oldest < ?1",
                    [OLDEST_READER],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Nonces for `device`'s outbox events, in a new epoch (see [`outbox`]).
    pub fn nonces(&self, device: &str) -> Result<outbox::Nonces, StoreError> {
        outbox::Nonces::start(&self.conn, device).map_err(|e| self.err(e))
    }

    /// Runs `f` in one transaction, committed when it returns Ok: what it
    /// writes is durable together or not at all.
    pub fn in_transaction<T, E: From<rusqlite::Error>>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.conn.transaction()?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Folds the WAL into the database file only once it holds `pages`
    /// pages (default 1000): a change-feed page rewrites thousands of index
    /// pages, and folding after every one copies each of them again.
    fn set_wal_autocheckpoint(&self, pages: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", pages)
            .map_err(|e| self.err(e))
    }

    /// Folds the WAL into the database file; false when a reader kept it
    /// from completing (every commit is durable either way).
    pub fn checkpoint(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|busy| busy == 0)
            .map_err(|e| self.err(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the modules that own their queries (lane, sync).
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The connection for reads and single statements.
    pub fn conn_ref(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gated.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
        s.put_signing_key(3, &[7; 32]).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.signing_key(3).unwrap(), Some([7; 32]));
        assert_eq!(s.signing_key(4).unwrap(), None);
        let mode: String = s
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_that_only_added_is_opened_and_kept() {
        // The rollback case: the new slot's gated migrated the shared store
        // with an additive migration; the old slot's gated works on with it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gated.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let known = MIGRATIONS.len() as u32;
        c.execute_batch("CREATE TABLE added_by_a_newer_gated (x INTEGER)")
            .unwrap();
        c.pragma_update(None, "user_version", known + 1).unwrap();
        drop(c);
        let s = Store::open(&path).unwrap();
        s.put_setting("written_after_the_rollback", b"yes").unwrap();
        assert_eq!(s.schema_version().unwrap(), known + 1, "not lowered");
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.setting("written_after_the_rollback").unwrap().as_deref(),
            Some(&b"yes"[..])
        );
        let oldest: u32 = s
            .conn
            .query_row("SELECT oldest FROM schema_readers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(oldest, OLDEST_READER);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gated.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        // The newer gated changed something older ones cannot read.
        c.execute("UPDATE schema_readers SET oldest = 99", [])
            .unwrap();
        drop(c);
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        let c = Connection::open(&path).unwrap();
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }

    #[test]
    fn a_passage_nonce_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("gated.db")).unwrap();
        let insert =
            "INSERT INTO passages (nonce, ticket_id, lane, direction, persons, at_ms, local_day, local_minute)
                      VALUES ('n-1', 1, 'east', 'entry', 1, 0, 0, 0)";
        s.conn().execute(insert, []).unwrap();
        assert!(s.conn().execute(insert, []).is_err());
    }
}

//! Tickets, products and the revocation lists, as the lanes read them and
//! the change feed writes them.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::tickets::admission::Listing;
use crate::tickets::rules::{Product, Ticket};
use crate::tickets::token::LocalMinute;

/// How a ticket is looked up (a token carries its ticket and needs no lookup).
#[derive(Debug, Clone, Copy)]
pub enum TicketKey<'a> {
    Serial(&'a str),
    CardUid(&'a str),
    /// The keyed hash of an ID number: maybe several tickets.
    Holder(&'a [u8; 16]),
}

/// A ticket as the change feed delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow<'a> {
    pub id: u64,
    pub serial: Option<&'a str>,
    pub product_id: u32,
    pub valid_from: LocalMinute,
    pub valid_until: LocalMinute,
    pub entries_allowed: Option<u16>,
    pub group_size: u16,
    pub holder_hash: Option<[u8; 16]>,
    pub card_uid: Option<&'a str>,
}

/// The holder-hash index (also made by migration 1). Its keys are random, so
/// inserting a million tickets into it rewrites index pages all over the
/// file; a full download therefore drops it and builds it once, sorted, when
/// caught up (1,000,000 tickets: seconds instead of most of the download).
/// Until then a lookup by ID card scans the table: slower, same answer.
const HOLDER_INDEX: &str = "CREATE INDEX tickets_by_holder
    ON tickets(holder_hash) WHERE holder_hash IS NOT NULL";

impl Store {
    /// The tickets `key` stands for; several holder tickets earliest first.
    pub fn tickets_by(&self, key: TicketKey<'_>) -> Result<Vec<Ticket>, StoreError> {
        let (column, value): (&str, &dyn rusqlite::ToSql) = match &key {
            TicketKey::Serial(s) => ("serial = ?1", s),
            TicketKey::CardUid(u) => ("card_uid = ?1", u),
            TicketKey::Holder(h) => ("holder_hash = ?1 ORDER BY valid_from", h),
        };
        self.conn_ref()
            .prepare_cached(&format!(
                "SELECT id, product_id, valid_from, valid_until, entries_allowed, group_size
                 FROM tickets WHERE {column}"
            ))
            .and_then(|mut st| {
                st.query_map([value], |r| {
                    Ok(Ticket {
                        id: r.get::<_, i64>(0)? as u64,
                        product_id: r.get(1)?,
                        valid_from: r.get(2)?,
                        valid_until: r.get(3)?,
                        entries_allowed: r.get(4)?,
                        group_size: r.get(5)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Whether the central system revoked or blocked the ticket.
    pub fn listing(&self, ticket_id: u64) -> Result<Listing, StoreError> {
        let listed = self
            .conn_ref()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM revoked WHERE ticket_id = ?1),
                        EXISTS (SELECT 1 FROM blocked WHERE ticket_id = ?1)",
            )
            .and_then(|mut st| {
                st.query_row([ticket_id as i64], |r| {
                    Ok((r.get::<_, bool>(0)?, r.get::<_, bool>(1)?))
                })
            })
            .map_err(|e| self.err(e))?;
        Ok(match listed {
            (true, _) => Listing::Revoked,
            (false, true) => Listing::Blocked,
            (false, false) => Listing::Clear,
        })
    }

    /// Why a ticket was revoked, if it was.
    pub fn revocation(&self, ticket_id: u64) -> Result<Option<String>, StoreError> {
        self.conn_ref()
            .query_row(
                "SELECT reason FROM revoked WHERE ticket_id = ?1",
                [ticket_id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every product's entry rules.
    pub fn products(&self) -> Result<Vec<Product>, StoreError> {
        self.conn_ref()
            .prepare(
                "SELECT id, lane_groups, entries_allowed, per_day_limit, reentry_after_exit,
                        reentry_minutes, weekdays, slot_start, slot_end FROM products",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let groups: String = r.get(1)?;
                    Ok(Product {
                        id: r.get(0)?,
                        lane_groups: groups
                            .split(',')
                            .filter(|g| !g.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        entries_allowed: r.get(2)?,
                        per_day_limit: r.get(3)?,
                        reentry_after_exit: r.get(4)?,
                        reentry_minutes: r.get(5)?,
                        weekdays: r.get(6)?,
                        slot_start: r.get(7)?,
                        slot_end: r.get(8)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }
}

/// The change feed's writes, inside the caller's transaction (a page and
/// its cursor are stored together or not at all).
pub mod feed {
    use super::*;
    use rusqlite::Transaction;

    /// A full download begins: the holder index waits until it is done.
    pub fn defer_holder_index(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute("DROP INDEX IF EXISTS tickets_by_holder", [])?;
        Ok(())
    }

    /// Caught up: builds the holder index if a download deferred it; true
    /// when it was built.
    pub fn build_holder_index(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'tickets_by_holder')",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            conn.execute(HOLDER_INDEX, [])?;
        }
        Ok(!exists)
    }

    /// Stores a ticket; a serial or card it carries moves to it from any
    /// other ticket (a card re-issued).
    pub fn put_ticket(tx: &Transaction<'_>, t: &TicketRow<'_>) -> rusqlite::Result<()> {
        let id = t.id as i64;
        let upsert = || {
            tx.prepare_cached(
                "INSERT INTO tickets (id, serial, product_id, valid_from, valid_until,
                     entries_allowed, group_size, holder_hash, card_uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET serial = excluded.serial,
                     product_id = excluded.product_id, valid_from = excluded.valid_from,
                     valid_until = excluded.valid_until, entries_allowed = excluded.entries_allowed,
                     group_size = excluded.group_size, holder_hash = excluded.holder_hash,
                     card_uid = excluded.card_uid",
            )?
            .execute(params![
                id,
                t.serial,
                t.product_id,
                t.valid_from,
                t.valid_until,
                t.entries_allowed,
                t.group_size,
                t.holder_hash.as_ref().map(|h| &h[..]),
                t.card_uid
            ])
        };
        // Mostly nothing else holds the serial or card: one statement. When
        // another ticket does (a card re-issued), it lets go and we retry.
        match upsert() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                if let Some(uid) = t.card_uid {
                    free_card(tx, uid, id)?;
                }
                if let Some(serial) = t.serial {
                    tx.prepare_cached(
                        "UPDATE tickets SET serial = NULL WHERE serial = ?1 AND id <> ?2",
                    )?
                    .execute(params![serial, id])?;
                }
                upsert()?;
            }
            r => {
                r?;
            }
        }
        Ok(())
    }

    fn free_card(tx: &Transaction<'_>, uid: &str, id: i64) -> rusqlite::Result<()> {
        tx.prepare_cached("UPDATE tickets SET card_uid = NULL WHERE card_uid = ?1 AND id <> ?2")?
            .execute(params![uid, id])?;
        Ok(())
    }

    /// Binds a card to a ticket (or unbinds it: `None`).
    pub fn set_card(
        tx: &Transaction<'_>,
        ticket_id: u64,
        uid: Option<&str>,
    ) -> rusqlite::Result<()> {
        let id = ticket_id as i64;
        if let Some(uid) = uid {
            free_card(tx, uid, id)?;
        }
        tx.execute(
            "UPDATE tickets SET card_uid = ?2 WHERE id = ?1",
            params![id, uid],
        )?;
        Ok(())
    }

    pub fn revoke(tx: &Transaction<'_>, ticket_id: u64, reason: &str) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO revoked (ticket_id, reason) VALUES (?1, ?2)
             ON CONFLICT (ticket_id) DO UPDATE SET reason = excluded.reason",
            params![ticket_id as i64, reason],
        )?;
        Ok(())
    }

    /// Blocks a ticket (`Some(reason)`) or lifts the block (`None`).
    pub fn block(
        tx: &Transaction<'_>,
        ticket_id: u64,
        reason: Option<&str>,
    ) -> rusqlite::Result<()> {
        match reason {
            Some(reason) => tx.execute(
                "INSERT INTO blocked (ticket_id, reason) VALUES (?1, ?2)
                 ON CONFLICT (ticket_id) DO UPDATE SET reason = excluded.reason",
                params![ticket_id as i64, reason],
            )?,
            None => tx.execute(
                "DELETE FROM blocked WHERE ticket_id = ?1",
                [ticket_id as i64],
            )?,
        };
        Ok(())
    }

    /// Replaces every product (tickets of a withdrawn one are then refused).
    pub fn replace_products(
        tx: &Transaction<'_>,
        products: &[(Product, &str)],
    ) -> rusqlite::Result<()> {
        tx.execute("DELETE FROM products", [])?;
        let mut ins = tx.prepare(
            "INSERT INTO products (id, name, lane_groups, entries_allowed, per_day_limit,
                 reentry_after_exit, reentry_minutes, weekdays, slot_start, slot_end)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (p, name) in products {
            ins.execute(params![
                p.id,
                name,
                p.lane_groups.join(","),
                p.entries_allowed,
                p.per_day_limit,
                p.reentry_after_exit,
                p.reentry_minutes,
                p.weekdays,
                p.slot_start,
                p.slot_end
            ])?;
        }
        Ok(())
    }
}

//! Passages: what the gates let through, each once under its scan's nonce
//! with its outbox event in the same transaction; the passages announced at
//! a gate whose counters outlive gated; and what they add up to (a ticket's
//! usage, a lane's day).

use hal::gate::Direction;
use rusqlite::params;

use super::outbox::{self, OutboxError, OutboxEvent};
use super::{Store, StoreError};
use crate::tickets::rules::{self, Usage};
use crate::tickets::token::LocalMinute;

/// One passage of `persons` through `lane`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The scan's nonce: the passage's id here and at the central system.
    pub nonce: String,
    pub ticket_id: u64,
    pub lane: String,
    pub direction: Direction,
    pub persons: u32,
    pub at_ms: i64,
    /// Scenic-area civil time, what the rules count in.
    pub local_minute: LocalMinute,
}

/// A passage announced before the gate opened, with the gate's counter then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub passage: Passage,
    pub counter: u32,
}

impl Store {
    /// What this device recorded for a ticket, as of the local day `today`.
    pub fn usage(&self, ticket_id: u64, today: u32) -> Result<Usage, StoreError> {
        self.conn_ref()
            .prepare_cached(
                "SELECT
                    COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                    COALESCE(SUM(CASE WHEN direction = 'entry' AND local_day = ?2 THEN persons END), 0),
                    MAX(CASE WHEN direction = 'entry' THEN local_minute END),
                    MAX(CASE WHEN direction = 'exit' THEN local_minute END)
                 FROM passages WHERE ticket_id = ?1",
            )
            .and_then(|mut st| {
                st.query_row(params![ticket_id as i64, today], |r| {
                    Ok(Usage {
                        entries: r.get(0)?,
                        entries_today: r.get(1)?,
                        last_entry: r.get(2)?,
                        last_exit: r.get(3)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Records a passage and its outbox event in one durable transaction,
    /// settling its announcement if there was one. A nonce already recorded
    /// changes nothing (a replayed commit).
    pub fn commit_passage(&mut self, p: &Passage) -> Result<(), StoreError> {
        let event = OutboxEvent::Passage {
            ticket_id: p.ticket_id,
            lane: p.lane.clone(),
            direction: p.direction,
            persons: p.persons,
            at_ms: p.at_ms,
        };
        let path = self.path().to_owned();
        let run = |conn: &mut rusqlite::Connection| -> Result<(), OutboxError> {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM pending_passages WHERE nonce = ?1", [&p.nonce])?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO passages (nonce, ticket_id, lane, direction, persons, at_ms, local_day, local_minute)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    p.nonce,
                    p.ticket_id as i64,
                    p.lane,
                    p.direction.as_str(),
                    p.persons,
                    p.at_ms,
                    rules::local_day(p.local_minute),
                    p.local_minute
                ],
            )?;
            if inserted == 1 {
                outbox::queue(&tx, &p.nonce, &event, p.at_ms)?;
            }
            Ok(tx.commit()?)
        };
        run(self.conn()).map_err(|e| StoreError::from_outbox(&path, e))
    }

    /// Writes an announcement at `gate`, durable before the gate opens.
    pub fn announce_passage(&self, gate: &str, a: &Announced) -> Result<(), StoreError> {
        let p = &a.passage;
        self.conn_ref()
            .execute(
                "INSERT OR REPLACE INTO pending_passages
                 (nonce, gate, direction, counter, ticket_id, lane, persons, at_ms, local_minute)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.nonce,
                    gate,
                    p.direction.as_str(),
                    a.counter,
                    p.ticket_id as i64,
                    p.lane,
                    p.persons,
                    p.at_ms,
                    p.local_minute
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Drops an announcement nobody passed on.
    pub fn forget_announced(&self, nonce: &str) -> Result<(), StoreError> {
        self.conn_ref()
            .execute("DELETE FROM pending_passages WHERE nonce = ?1", [nonce])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The announcements at `gate` not settled yet, oldest first.
    pub fn announced(&self, gate: &str) -> Result<Vec<Announced>, StoreError> {
        self.conn_ref()
            .prepare(
                "SELECT nonce, direction, counter, ticket_id, lane, persons, at_ms, local_minute
                 FROM pending_passages WHERE gate = ?1 ORDER BY at_ms",
            )
            .and_then(|mut st| {
                st.query_map([gate], |r| {
                    let direction: String = r.get(1)?;
                    Ok(Announced {
                        counter: r.get(2)?,
                        passage: Passage {
                            nonce: r.get(0)?,
                            // The table's CHECK allows entry or exit only.
                            direction: direction.parse().unwrap_or(Direction::Entry),
                            ticket_id: r.get::<_, i64>(3)? as u64,
                            lane: r.get(4)?,
                            persons: r.get(5)?,
                            at_ms: r.get(6)?,
                            local_minute: r.get(7)?,
                        },
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Persons let in and out through `lane` on the local day `day`.
    pub fn lane_counts(&self, lane: &str, day: u32) -> Result<(u64, u64), StoreError> {
        self.conn_ref()
            .prepare_cached(
                "SELECT COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                        COALESCE(SUM(CASE WHEN direction = 'exit' THEN persons END), 0)
                 FROM passages WHERE lane = ?1 AND local_day = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![lane, day], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })
            })
            .map_err(|e| self.err(e))
    }
}

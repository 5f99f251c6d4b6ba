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
use std::ops::Range;

/// One passage of `persons` through `lane`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The scan's nonce: the passage's id here, at the central system and
    /// at every peer.
    pub nonce: String,
    pub ticket_id: u64,
    pub lane: String,
    pub lane_group: String,
    pub direction: Direction,
    pub persons: u32,
    pub at_ms: i64,
    /// Scenic-area civil time, what the rules count in.
    pub local_minute: LocalMinute,
    /// The ticket's entries when admitted (0 = unlimited) and the persons
    /// one use admits: the conflict rule's bound.
    pub entries_allowed: u32,
    pub group_size: u16,
    /// Its number in this device's own sequence, given at commit (0 before).
    pub seq: u64,
}

/// What recording a passage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// False: its nonce was recorded already (a replay, or a passage that
    /// came by another path first).
    pub new: bool,
    /// This device's own sequence number given to it (own passages).
    pub seq: Option<u64>,
    /// Passages of the same ticket now marked `conflict` (nonces).
    pub conflicts: Vec<String>,
}

/// Persons in and out of one lane group: (group, entries, exits).
pub type GroupCount = (String, u64, u64);

/// Persons a gate let through and counted by itself: no ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreePassage {
    pub lane: String,
    pub lane_group: String,
    pub direction: Direction,
    pub persons: u32,
    pub at_ms: i64,
    pub local_minute: LocalMinute,
    /// Its number in this device's own sequence (given at commit).
    pub seq: u64,
}

/// A passage announced before the gate opened, with the gate's counter then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub passage: Passage,
    pub counter: u32,
}

impl Store {
    /// What this device recorded for a ticket; `today`: the local minutes
    /// of the operating day.
    pub fn usage(&self, ticket_id: u64, today: Range<LocalMinute>) -> Result<Usage, StoreError> {
        self.conn_ref()
            .prepare_cached(
                "SELECT
                    COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                    COALESCE(SUM(CASE WHEN direction = 'entry' AND local_minute >= ?2
                                      AND local_minute < ?3 THEN persons END), 0),
                    MAX(CASE WHEN direction = 'entry' THEN local_minute END),
                    COALESCE(MAX(CASE WHEN direction = 'exit' THEN at_ms END)
                        >= MAX(CASE WHEN direction = 'entry' THEN at_ms END), 0)
                 FROM passages WHERE ticket_id = ?1",
            )
            .and_then(|mut st| {
                st.query_row(params![ticket_id as i64, today.start, today.end], |r| {
                    Ok(Usage {
                        entries: r.get(0)?,
                        entries_today: r.get(1)?,
                        last_entry: r.get(2)?,
                        exited: r.get(3)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Records a passage and its outbox event in one durable transaction,
    /// settling its announcement if there was one, numbering it in this
    /// device's own sequence and marking conflicts. A nonce already recorded
    /// changes nothing (a replayed commit).
    pub fn commit_passage(&mut self, p: &Passage) -> Result<Recorded, StoreError> {
        let path = self.path().to_owned();
        let run = |conn: &mut rusqlite::Connection| -> Result<Recorded, OutboxError> {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM pending_passages WHERE nonce = ?1", [&p.nonce])?;
            let seq = next_own_seq(&tx)?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO passages (nonce, ticket_id, lane, direction, persons, at_ms,
                     local_day, local_minute, seq, lane_group, entries_allowed, group_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    p.nonce,
                    p.ticket_id as i64,
                    p.lane,
                    p.direction.as_str(),
                    p.persons,
                    p.at_ms,
                    rules::local_day(p.local_minute),
                    p.local_minute,
                    seq,
                    p.lane_group,
                    p.entries_allowed,
                    p.group_size
                ],
            )?;
            let mut recorded = Recorded::default();
            if inserted == 1 {
                let numbered = Passage {
                    seq: seq as u64,
                    ..p.clone()
                };
                outbox::queue(&tx, &p.nonce, &OutboxEvent::Passage(numbered), p.at_ms)?;
                recorded.new = true;
                recorded.seq = Some(seq as u64);
                // Unlimited tickets (staff cards, annual passes) have none.
                if p.direction == Direction::Entry && p.entries_allowed > 0 {
                    recorded.conflicts = mark_conflicts(&tx, p.ticket_id)?;
                }
            }
            tx.commit()?;
            Ok(recorded)
        };
        run(self.conn()).map_err(|e| StoreError::from_outbox(&path, e))
    }

    /// Writes an announcement at `gate`, durable before the gate opens.
    pub fn announce_passage(&self, gate: &str, a: &Announced) -> Result<(), StoreError> {
        let p = &a.passage;
        self.conn_ref()
            .execute(
                "INSERT OR REPLACE INTO pending_passages
                 (nonce, gate, direction, counter, ticket_id, lane, persons, at_ms, local_minute,
                  lane_group, entries_allowed, group_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    p.nonce,
                    gate,
                    p.direction.as_str(),
                    a.counter,
                    p.ticket_id as i64,
                    p.lane,
                    p.persons,
                    p.at_ms,
                    p.local_minute,
                    p.lane_group,
                    p.entries_allowed,
                    p.group_size
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
                "SELECT nonce, direction, counter, ticket_id, lane, persons, at_ms, local_minute,
                        lane_group, entries_allowed, group_size
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
                            lane_group: r.get(8)?,
                            entries_allowed: r.get(9)?,
                            group_size: r.get(10)?,
                            seq: 0,
                        },
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Persons let in and out through `lane` in the local minutes `today`.
    pub fn lane_counts(
        &self,
        lane: &str,
        today: Range<LocalMinute>,
    ) -> Result<(u64, u64), StoreError> {
        self.conn_ref()
            .prepare_cached(
                "SELECT COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                        COALESCE(SUM(CASE WHEN direction = 'exit' THEN persons END), 0)
                 FROM passages WHERE lane = ?1 AND local_minute >= ?2 AND local_minute < ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![lane, today.start, today.end], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })
            })
            .map_err(|e| self.err(e))
    }
}

/// This device's newest number, over passages with and without a ticket.
const OWN_HEAD: &str = "SELECT MAX(
        (SELECT COALESCE(MAX(seq), 0) FROM passages WHERE origin IS NULL),
        (SELECT COALESCE(MAX(seq), 0) FROM free_passages WHERE origin IS NULL))";

fn next_own_seq(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(OWN_HEAD, [], |r| r.get::<_, i64>(0))
        .map(|n| n + 1)
}

/// Marks the entry passages of `ticket_id` that found it used up by
/// earlier ones, and queues a `conflict` event for each newly marked.
/// Order is by the recording device's clock, then nonce (which begins with
/// the device's id): every device holding the same passages marks the same
/// ones. A ticket with unlimited entries has no conflicts.
pub fn mark_conflicts(
    tx: &rusqlite::Transaction<'_>,
    ticket_id: u64,
) -> Result<Vec<String>, OutboxError> {
    let rows: Vec<(String, u32, u32, u16, bool, i64)> = tx
        .prepare_cached(
            "SELECT nonce, persons, entries_allowed, group_size, conflict, at_ms FROM passages
             WHERE ticket_id = ?1 AND direction = 'entry' ORDER BY at_ms, nonce",
        )?
        .query_map([ticket_id as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let allowed = rows.iter().map(|r| r.2).max().unwrap_or(0);
    if allowed == 0 {
        return Ok(Vec::new());
    }
    let group = u32::from(rows.iter().map(|r| r.3).max().unwrap_or(1).max(1));
    let cap = allowed * group;
    let (mut persons, mut marked) = (0u32, Vec::new());
    for (nonce, n, _, _, already, at_ms) in rows {
        if persons >= cap && !already {
            tx.execute(
                "UPDATE passages SET conflict = 1 WHERE nonce = ?1",
                [&nonce],
            )?;
            let device_id = nonce.split('/').next().unwrap_or_default().to_owned();
            tracing::warn!(
                ticket = ticket_id,
                passage = nonce,
                device = device_id,
                "conflict: the ticket was admitted at two devices inside the propagation window; the later passage is marked"
            );
            // One nonce for the conflict wherever it is found: the central
            // system keeps one report however many devices send it.
            let event = OutboxEvent::Conflict {
                ticket_id,
                passage: nonce.clone(),
                device_id,
                at_ms,
            };
            outbox::queue(tx, &format!("conflict:{nonce}"), &event, at_ms)?;
            marked.push(nonce);
        }
        persons = persons.saturating_add(n);
    }
    Ok(marked)
}

/// Records a passage another device (or this one, before a restore) shared,
/// through the change feed or a peer: once by its nonce, conflicts marked.
/// A ticketless passage goes to `free_passages`.
pub fn record_shared(
    tx: &rusqlite::Transaction<'_>,
    p: &crate::central::api::PassageRecord,
) -> Result<Recorded, OutboxError> {
    let direction: Direction = match p.direction.parse() {
        Ok(d) => d,
        Err(_) => {
            tracing::warn!(
                passage = p.nonce,
                "shared passage with direction {:?} skipped",
                p.direction
            );
            return Ok(Recorded::default());
        }
    };
    // Fail closed: a passage whose local time is unreadable still counts
    // as an entry (its day and minute are then the device clock's in UTC,
    // which only the daily limit and re-entry waits read).
    let local_minute = crate::central::parse_civil(&p.local_time).unwrap_or_else(|| {
        tracing::warn!(
            passage = p.nonce,
            "shared passage with unreadable local time {:?}: counted on its UTC time",
            p.local_time
        );
        let at = jiff::Timestamp::from_millisecond(p.at_ms).unwrap_or_default();
        crate::lanes::local_minute(at, &jiff::tz::TimeZone::UTC)
    });
    let day = rules::local_day(local_minute);
    let Some(ticket_id) = p.ticket_id else {
        tx.execute(
            "INSERT OR IGNORE INTO free_passages
             (nonce, origin, lane, lane_group, direction, persons, at_ms, local_minute, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                p.nonce,
                p.device_id,
                p.lane,
                p.lane_group,
                direction.as_str(),
                p.persons,
                p.at_ms,
                local_minute,
                p.seq as i64
            ],
        )?;
        return Ok(Recorded::default());
    };
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO passages (nonce, ticket_id, lane, direction, persons, at_ms,
             local_day, local_minute, origin, seq, lane_group, entries_allowed, group_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            p.nonce,
            ticket_id as i64,
            p.lane,
            direction.as_str(),
            p.persons,
            p.at_ms,
            day,
            local_minute,
            p.device_id,
            p.seq as i64,
            p.lane_group,
            p.entries_allowed,
            p.group_size
        ],
    )?;
    let mut recorded = Recorded {
        new: inserted == 1,
        ..Recorded::default()
    };
    if recorded.new && direction == Direction::Entry && p.entries_allowed > 0 {
        recorded.conflicts = mark_conflicts(tx, ticket_id)?;
    }
    Ok(recorded)
}

impl Store {
    /// This device's own passages after `cursor` in its sequence, oldest
    /// first, as peers receive them.
    pub fn own_passages_after(
        &self,
        device_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<crate::central::api::PassageRecord>, StoreError> {
        // One sequence over both: a ticketless passage has no ticket.
        self.conn_ref()
            .prepare_cached(
                "SELECT nonce, ticket_id, lane, lane_group, direction, persons, at_ms,
                        local_minute, entries_allowed, group_size, seq
                 FROM passages WHERE origin IS NULL AND seq > ?1
                 UNION ALL
                 SELECT nonce, NULL, lane, lane_group, direction, persons, at_ms,
                        local_minute, 0, 1, seq
                 FROM free_passages WHERE origin IS NULL AND seq > ?1
                 ORDER BY seq LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(params![cursor as i64, limit as i64], |r| {
                    Ok(crate::central::api::PassageRecord {
                        nonce: r.get(0)?,
                        device_id: device_id.to_owned(),
                        ticket_id: r.get::<_, Option<i64>>(1)?.map(|t| t as u64),
                        lane: r.get(2)?,
                        lane_group: r.get(3)?,
                        direction: r.get(4)?,
                        persons: r.get(5)?,
                        at_ms: r.get(6)?,
                        local_time: crate::central::format_civil(r.get(7)?),
                        entries_allowed: r.get(8)?,
                        group_size: r.get(9)?,
                        seq: r.get::<_, i64>(10)? as u64,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Records persons the gate let through by itself (free mode, a power
    /// fallback, a fire alarm) and its outbox event in one transaction,
    /// numbered in this device's own sequence, which peers follow.
    pub fn commit_free_passage(&mut self, nonce: &str, f: &FreePassage) -> Result<u64, StoreError> {
        let path = self.path().to_owned();
        let run = |conn: &mut rusqlite::Connection| -> Result<u64, OutboxError> {
            let tx = conn.transaction()?;
            let seq = next_own_seq(&tx)?;
            tx.execute(
                "INSERT INTO free_passages
                 (nonce, lane, lane_group, direction, persons, at_ms, local_minute, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    nonce,
                    f.lane,
                    f.lane_group,
                    f.direction.as_str(),
                    f.persons,
                    f.at_ms,
                    f.local_minute,
                    seq
                ],
            )?;
            let numbered = FreePassage {
                seq: seq as u64,
                ..f.clone()
            };
            outbox::queue(&tx, nonce, &OutboxEvent::FreePassage(numbered), f.at_ms)?;
            tx.commit()?;
            Ok(seq as u64)
        };
        run(self.conn()).map_err(|e| StoreError::from_outbox(&path, e))
    }

    /// Persons in and out per lane group in the local minutes `today`,
    /// every device's passages with and without a ticket.
    pub fn group_counts(
        &self,
        today: Range<LocalMinute>,
    ) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.conn_ref()
            .prepare_cached(
                "SELECT lane_group,
                        COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                        COALESCE(SUM(CASE WHEN direction = 'exit' THEN persons END), 0)
                 FROM (SELECT lane_group, direction, persons FROM passages
                       WHERE local_minute >= ?1 AND local_minute < ?2
                       UNION ALL
                       SELECT lane_group, direction, persons FROM free_passages
                       WHERE local_minute >= ?1 AND local_minute < ?2)
                 GROUP BY lane_group ORDER BY lane_group",
            )
            .and_then(|mut st| {
                st.query_map(params![today.start, today.end], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// [`Self::group_counts`] of only the rows committed after `after` (the
    /// last passage and free-passage ids read before), and the ids to read
    /// after next time. Both tables are append-only, so their ids only grow:
    /// a recount reads what is new, not the whole day.
    pub fn group_counts_after(
        &self,
        today: Range<LocalMinute>,
        after: (i64, i64),
    ) -> Result<(Vec<GroupCount>, (i64, i64)), StoreError> {
        let conn = self.conn_ref();
        let max = |table: &str| -> rusqlite::Result<i64> {
            conn.prepare_cached(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))?
                .query_row([], |r| r.get(0))
        };
        // Rows committed between these reads and the sums wait for next time.
        let upto = (
            max("passages").map_err(|e| self.err(e))?,
            max("free_passages").map_err(|e| self.err(e))?,
        );
        let rows = conn
            .prepare_cached(
                "SELECT lane_group,
                        COALESCE(SUM(CASE WHEN direction = 'entry' THEN persons END), 0),
                        COALESCE(SUM(CASE WHEN direction = 'exit' THEN persons END), 0)
                 FROM (SELECT lane_group, direction, persons FROM passages
                       WHERE id > ?3 AND id <= ?4 AND local_minute >= ?1 AND local_minute < ?2
                       UNION ALL
                       SELECT lane_group, direction, persons FROM free_passages
                       WHERE id > ?5 AND id <= ?6 AND local_minute >= ?1 AND local_minute < ?2)
                 GROUP BY lane_group ORDER BY lane_group",
            )
            .and_then(|mut st| {
                st.query_map(
                    params![today.start, today.end, after.0, upto.0, after.1, upto.1],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get::<_, i64>(1)? as u64,
                            r.get::<_, i64>(2)? as u64,
                        ))
                    },
                )?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        Ok((rows, upto))
    }

    /// The last of `peer`'s own passages this device has from it directly.
    pub fn peer_cursor(&self, peer: &str) -> Result<u64, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn_ref()
            .query_row(
                "SELECT cursor FROM peer_cursors WHERE device_id = ?1",
                [peer],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|c| c.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Records a peer's passages and moves its cursor, in one transaction;
    /// returns the new cursor.
    pub fn record_from_peer(
        &mut self,
        peer: &str,
        passages: &[crate::central::api::PassageRecord],
    ) -> Result<u64, StoreError> {
        let path = self.path().to_owned();
        let run = |tx: &rusqlite::Transaction<'_>| -> Result<u64, OutboxError> {
            for p in passages {
                record_shared(tx, p)?;
            }
            let last = passages.iter().map(|p| p.seq).max().unwrap_or(0);
            Ok(tx.query_row(
                "INSERT INTO peer_cursors (device_id, cursor) VALUES (?1, ?2)
                 ON CONFLICT (device_id) DO UPDATE SET cursor = max(cursor, excluded.cursor)
                 RETURNING cursor",
                params![peer, last as i64],
                |r| r.get::<_, i64>(0),
            )? as u64)
        };
        self.in_transaction(run)
            .map_err(|e| StoreError::from_outbox(&path, e))
    }

    /// Changes when another connection committed (SQLite's `data_version`).
    pub fn data_version(&self) -> Result<u64, StoreError> {
        self.number("PRAGMA data_version")
    }

    /// The newest number in this device's own passage sequence (0: none).
    pub fn own_head(&self) -> Result<u64, StoreError> {
        self.number(OWN_HEAD)
    }

    /// Passages marked `conflict` (every device's, as this one knows them).
    pub fn conflicts(&self) -> Result<u64, StoreError> {
        self.number("SELECT COUNT(*) FROM passages WHERE conflict = 1")
    }

    /// The one number `sql` answers.
    fn number(&self, sql: &str) -> Result<u64, StoreError> {
        self.conn_ref()
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::api::PassageRecord;

    fn own(nonce: &str, at_ms: i64) -> Passage {
        Passage {
            nonce: nonce.into(),
            ticket_id: 7,
            lane: "east-1".into(),
            lane_group: "east".into(),
            direction: Direction::Entry,
            persons: 1,
            at_ms,
            local_minute: 14_000_000,
            entries_allowed: 1,
            group_size: 1,
            seq: 0,
        }
    }

    fn shared(nonce: &str, at_ms: i64) -> PassageRecord {
        PassageRecord {
            nonce: nonce.into(),
            device_id: nonce.split('/').next().unwrap().into(),
            ticket_id: Some(7),
            lane: "west-1".into(),
            lane_group: "west".into(),
            direction: "entry".into(),
            persons: 1,
            at_ms,
            local_time: crate::central::format_civil(14_000_000),
            entries_allowed: 1,
            group_size: 1,
            seq: 1,
        }
    }

    fn apply(store: &mut Store, p: &PassageRecord) -> Recorded {
        store
            .in_transaction(|tx| {
                record_shared(tx, p).map_err(|e| match e {
                    OutboxError::Sqlite(e) => e,
                    e => panic!("{e}"),
                })
            })
            .unwrap()
    }

    #[test]
    fn the_later_of_two_passages_on_a_single_entry_ticket_is_the_conflict_wherever_it_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let mine = store.commit_passage(&own("a/east-1/1.0", 2_000)).unwrap();
        assert_eq!(
            (mine.new, mine.seq, mine.conflicts.len()),
            (true, Some(1), 0)
        );
        // Another device admitted the same ticket earlier: ours is the later one.
        let theirs = apply(&mut store, &shared("b/west-1/1.0", 1_000));
        assert!(theirs.new);
        assert_eq!(theirs.conflicts, ["a/east-1/1.0"]);
        // A third, later still; and the second again (by another path) changes nothing.
        assert_eq!(
            apply(&mut store, &shared("c/north-1/1.0", 3_000)).conflicts,
            ["c/north-1/1.0"]
        );
        assert_eq!(
            apply(&mut store, &shared("b/west-1/1.0", 1_000)),
            Recorded::default()
        );
        assert_eq!(store.conflicts().unwrap(), 2);
        let usage = store
            .usage(
                7,
                crate::tickets::rules::OperatingDay::default().around(14_000_000),
            )
            .unwrap();
        assert_eq!(usage.entries, 3);
        // Reported once per conflicting passage, under a nonce any device would use.
        let reported: Vec<String> = store
            .conn_ref()
            .prepare("SELECT nonce FROM outbox WHERE kind = 'conflict' ORDER BY nonce")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            reported,
            ["conflict:a/east-1/1.0", "conflict:c/north-1/1.0"]
        );
        // Only this device's own passage is in its sequence, for the peers.
        let served = store.own_passages_after("a", 0, 10).unwrap();
        assert_eq!(served.len(), 1);
        assert_eq!((served[0].seq, served[0].device_id.as_str()), (1, "a"));
        assert_eq!(store.own_head().unwrap(), 1);
    }

    #[test]
    fn unlimited_tickets_and_exits_make_no_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let mut p = own("a/east-1/1.0", 2_000);
        p.entries_allowed = 0;
        store.commit_passage(&p).unwrap();
        let mut s = shared("b/west-1/1.0", 1_000);
        s.entries_allowed = 0;
        assert!(apply(&mut store, &s).conflicts.is_empty());
        let mut exit = shared("b/west-1/1.1", 500);
        exit.direction = "exit".into();
        assert!(apply(&mut store, &exit).conflicts.is_empty());
        assert_eq!(store.conflicts().unwrap(), 0);
    }

    #[test]
    fn an_entry_after_an_exit_in_the_same_minute_is_inside_again() {
        use crate::tickets::rules::{Product, Reason, Ticket, decide_entry};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let product = Product {
            entries_allowed: 0,
            reentry_after_exit: true,
            ..Product::single_entry(1)
        };
        let minute = own("x", 0).local_minute;
        let ticket = Ticket {
            id: 7,
            product_id: 1,
            valid_from: minute - 60,
            valid_until: minute + 60,
            entries_allowed: None,
            group_size: 1,
        };
        let today = crate::tickets::rules::OperatingDay::default().around(minute);
        let decide = |store: &Store| {
            let usage = store.usage(7, today.clone()).unwrap();
            decide_entry(&product, &ticket, &usage, minute, "east")
        };
        // In, out at another device, in again: all inside one minute.
        store.commit_passage(&own("a/east-1/1.0", 1_000)).unwrap();
        assert_eq!(decide(&store), Err(Reason::ExitFirst));
        let mut exit = shared("b/west-1/1.0", 2_000);
        exit.direction = "exit".into();
        apply(&mut store, &exit);
        assert_eq!(decide(&store), Ok(1));
        store.commit_passage(&own("a/east-1/1.1", 3_000)).unwrap();
        assert_eq!(decide(&store), Err(Reason::ExitFirst));
    }

    #[test]
    fn occupancy_counts_every_devices_passages_with_and_without_tickets_in_the_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let minute = own("x", 0).local_minute;
        let today = crate::tickets::rules::OperatingDay::default().around(minute);
        // Here: a ticket entry and a free exit; from lane-b: a ticket entry
        // and a free entry; yesterday's entry at lane-b does not count.
        store.commit_passage(&own("a/east-1/1.0", 1_000)).unwrap();
        let free = |direction, persons| FreePassage {
            lane: "east-1".into(),
            lane_group: "east".into(),
            direction,
            persons,
            at_ms: 2_000,
            local_minute: minute,
            seq: 0,
        };
        assert_eq!(
            store
                .commit_free_passage("a/east-1/1.1", &free(Direction::Exit, 1))
                .unwrap(),
            2
        );
        apply(&mut store, &shared("b/west-1/1.0", 1_500));
        let mut free_b = shared("b/west-1/1.1", 1_600);
        (free_b.ticket_id, free_b.persons) = (None, 3);
        apply(&mut store, &free_b);
        let mut old = shared("b/west-1/1.2", 1_700);
        old.local_time = crate::central::format_civil(today.start - 1);
        apply(&mut store, &old);
        let counts = store.group_counts(today).unwrap();
        assert_eq!(counts, [("east".into(), 1, 1), ("west".into(), 4, 0)]);
        // Peers follow both kinds in one sequence.
        let mine = store.own_passages_after("lane-a", 0, 10).unwrap();
        let seqs: Vec<(u64, Option<u64>)> = mine.iter().map(|p| (p.seq, p.ticket_id)).collect();
        assert_eq!(seqs, [(1, Some(7)), (2, None)]);
        assert_eq!(store.own_head().unwrap(), 2);
    }
}

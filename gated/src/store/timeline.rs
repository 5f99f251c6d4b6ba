//! What the device did, newest first, in one list (`gatectl logs`, through
//! gated's `Engineer1.Logs`): passages, prints, reprints, order changes and
//! the events still waiting for upload.

use super::{Store, StoreError};
use crate::tickets::token::LocalMinute;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: i64,
    /// `passage`, `print`, `reprint`, `outbox` or `order`.
    pub kind: String,
    pub what: String,
}

/// How many tickets the store knows and how many persons entered on a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tickets: u64,
    pub revoked: u64,
    pub blocked: u64,
    /// Persons who entered on the day asked for (exits are the same visitors leaving).
    pub entered: u64,
    /// Events waiting for the central system.
    pub outbox: u64,
}

impl Store {
    /// The newest `limit` lines.
    pub fn timeline(&self, limit: u32) -> Result<Vec<Entry>, StoreError> {
        self.conn_ref()
            .prepare(
                "SELECT at_ms, 'passage', direction || ' at lane ' || lane || ': ticket ' || ticket_id || ', ' || persons || ' person(s)' FROM passages
                 UNION ALL SELECT printed_ms, 'print', 'ticket ' || ticket_id || ' of order ' || order_no || ' printed' FROM order_tickets WHERE printed_ms IS NOT NULL
                 UNION ALL SELECT at_ms, 'reprint', 'ticket ' || ticket_id || ' reprinted by ' || by || ': ' || reason FROM reprints
                 UNION ALL SELECT created_ms, 'outbox', kind || ' event waiting for upload' FROM outbox
                 UNION ALL SELECT updated_ms, 'order', 'order ' || order_no || ' ' || status FROM orders
                 ORDER BY 1 DESC LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit], |r| {
                    Ok(Entry {
                        at_ms: r.get(0)?,
                        kind: r.get(1)?,
                        what: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// The store's counts, entries in the local minutes `today`.
    pub fn counts(&self, today: std::ops::Range<LocalMinute>) -> Result<Counts, StoreError> {
        self.conn_ref()
            .query_row(
                "SELECT (SELECT COUNT(*) FROM tickets), (SELECT COUNT(*) FROM revoked),
                        (SELECT COUNT(*) FROM blocked),
                        (SELECT COALESCE(SUM(persons), 0) FROM passages
                         WHERE direction = 'entry' AND local_minute >= ?1 AND local_minute < ?2),
                        (SELECT COUNT(*) FROM outbox)",
                [today.start, today.end],
                |r| {
                    Ok(Counts {
                        tickets: r.get::<_, i64>(0)? as u64,
                        revoked: r.get::<_, i64>(1)? as u64,
                        blocked: r.get::<_, i64>(2)? as u64,
                        entered: r.get::<_, i64>(3)? as u64,
                        outbox: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::passages::Passage;
    use hal::gate::Direction;

    #[test]
    fn entries_count_the_day_asked_for_and_the_timeline_is_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let today = 9501;
        // Two people in today, one of them out again, five in yesterday.
        for (nonce, direction, persons, day, at_ms) in [
            ("a", Direction::Entry, 2, today, 3),
            ("b", Direction::Exit, 1, today, 2),
            ("c", Direction::Entry, 5, today - 1, 1),
        ] {
            store
                .commit_passage(&Passage {
                    nonce: nonce.into(),
                    ticket_id: 1,
                    lane: "main".into(),
                    lane_group: "main".into(),
                    direction,
                    persons,
                    at_ms,
                    local_minute: day * 1440 + 600,
                    entries_allowed: 0,
                    group_size: 1,
                    seq: 0,
                })
                .unwrap();
        }
        let day = |d: u32| d * 1440..(d + 1) * 1440;
        let c = store.counts(day(today)).unwrap();
        assert_eq!((c.tickets, c.entered, c.outbox), (0, 2, 3));
        assert_eq!(store.counts(day(today - 1)).unwrap().entered, 5);
        let t = store.timeline(2).unwrap();
        assert_eq!(t.len(), 2);
        // Passages at 3, 2, 1 ms and their outbox events at the same times.
        assert!(t.iter().all(|e| e.at_ms == 3), "{t:?}");
        assert!(
            t.iter()
                .any(|e| e.what == "entry at lane main: ticket 1, 2 person(s)")
        );
    }
}

//! The outbox: every event the central system must learn, queued in the
//! same transaction that made it true and deleted only once the central
//! system acknowledged its nonce (`central::sync`).
//!
//! Every producer goes through [`queue`] with a typed [`OutboxEvent`] and a
//! nonce from [`Nonces`]. A nonce is unique by construction:
//! `{device}/{stream}/{epoch}.{seq}`, where the epoch is a counter in the
//! database bumped durably each time a [`Nonces`] is made (so two runs of
//! gated never share one) and `seq` counts up within it. Events that have a
//! natural identity of their own (a sale is its order, a first print its
//! ticket) use `{device}/{stream}/{key}`, so that recording them again is a
//! retry of the same event. A nonce already queued with another event is
//! an error: two events must never collapse into one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hal::gate::{AlarmKind, Direction, Outcome};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

/// One event for the central system. The body of each kind is documented
/// in docs/central-api.yaml (`Event`).
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxEvent {
    /// Persons through a lane on one ticket.
    Passage(super::passages::Passage),
    /// Persons the gate let through and counted by itself (free mode, a
    /// power fallback): no ticket.
    FreePassage(super::passages::FreePassage),
    /// A passage found to have admitted a ticket already used up by
    /// earlier ones at other devices (a race inside the propagation window).
    Conflict {
        ticket_id: u64,
        /// The later passage's nonce, and the device that recorded it.
        passage: String,
        device_id: String,
        at_ms: i64,
    },
    /// A gate alarm (tailgating, intrusion, reverse passage) at a lane.
    Alarm {
        lane: String,
        alarm: AlarmKind,
        at_ms: i64,
    },
    /// An engineer opened a lane once.
    ManualOpen {
        lane: String,
        direction: Direction,
        by: String,
        outcome: Outcome,
        at_ms: i64,
    },
    /// An engineer set a lane's mode (`Lane1.SetMode`).
    LaneMode {
        lane: String,
        mode: hal::gate::GateMode,
        by: String,
        at_ms: i64,
    },
    /// The device's operating mode changed.
    ModeChange {
        from: String,
        to: String,
        cause: String,
        power: String,
        at_ms: i64,
    },
    /// An operator switched peak mode for a lane group.
    Peak {
        group: String,
        on: bool,
        by: String,
        at_ms: i64,
    },
    /// A latched fire alarm was reset.
    AlarmReset { by: String, at_ms: i64 },
    /// The device is powering off (UPS).
    Shutdown { cause: String, at_ms: i64 },
    /// An order sold at this kiosk was paid.
    Sale {
        order_no: String,
        total_cents: u64,
        tickets: Vec<u64>,
    },
    /// A ticket printed for the first time.
    Print {
        order_no: String,
        ticket_id: u64,
        serial: String,
    },
    /// The site or a lane group crossed a capacity tier, up or down.
    CapacityTier {
        /// The lane group; empty for the whole site.
        scope: String,
        from: u8,
        to: u8,
        percent: u32,
        entries: u64,
        inside: u64,
        at_ms: i64,
    },
    /// A supervisor let the site or a lane group admit past its capacity, or
    /// ended that.
    CapacityOverride {
        scope: String,
        on: bool,
        reason: String,
        by: String,
        at_ms: i64,
    },
    /// The operating day that began at `day_start` ended with `persons`
    /// still counted inside: checked out.
    CheckOut {
        day_start: String,
        persons: u64,
        at_ms: i64,
    },
    /// A ticket printed again, with the reason given.
    Reprint {
        order_no: String,
        ticket_id: u64,
        serial: String,
        reason: String,
    },
}

impl OutboxEvent {
    /// The event's `kind` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxEvent::Passage { .. } => "passage",
            OutboxEvent::FreePassage { .. } => "free_passage",
            OutboxEvent::Conflict { .. } => "conflict",
            OutboxEvent::Alarm { .. } => "alarm",
            OutboxEvent::ManualOpen { .. } => "manual_open",
            OutboxEvent::LaneMode { .. } => "lane_mode",
            OutboxEvent::ModeChange { .. } => "mode_change",
            OutboxEvent::Peak { .. } => "peak",
            OutboxEvent::AlarmReset { .. } => "alarm_reset",
            OutboxEvent::Shutdown { .. } => "shutdown",
            OutboxEvent::Sale { .. } => "sale",
            OutboxEvent::Print { .. } => "print",
            OutboxEvent::Reprint { .. } => "reprint",
            OutboxEvent::CapacityTier { .. } => "capacity_tier",
            OutboxEvent::CapacityOverride { .. } => "capacity_override",
            OutboxEvent::CheckOut { .. } => "check_out",
        }
    }

    /// The event's `body` on the wire.
    pub fn body(&self) -> serde_json::Value {
        match self {
            OutboxEvent::Passage(p) => json!({
                "ticket_id": p.ticket_id, "lane": p.lane, "lane_group": p.lane_group,
                "direction": p.direction.as_str(), "persons": p.persons, "at_ms": p.at_ms,
                "local_time": crate::central::format_civil(p.local_minute),
                "entries_allowed": p.entries_allowed, "group_size": p.group_size, "seq": p.seq,
            }),
            OutboxEvent::FreePassage(f) => json!({
                "lane": f.lane, "lane_group": f.lane_group, "direction": f.direction.as_str(),
                "persons": f.persons, "at_ms": f.at_ms,
                "local_time": crate::central::format_civil(f.local_minute), "seq": f.seq,
            }),
            OutboxEvent::Conflict {
                ticket_id,
                passage,
                device_id,
                at_ms,
            } => json!({
                "ticket_id": ticket_id, "passage": passage, "device_id": device_id, "at_ms": at_ms,
            }),
            OutboxEvent::Alarm { lane, alarm, at_ms } => {
                json!({ "lane": lane, "alarm": alarm, "at_ms": at_ms })
            }
            OutboxEvent::ManualOpen {
                lane,
                direction,
                by,
                outcome,
                at_ms,
            } => json!({
                "lane": lane, "direction": direction.as_str(), "by": by,
                "outcome": outcome, "at_ms": at_ms,
            }),
            OutboxEvent::LaneMode {
                lane,
                mode,
                by,
                at_ms,
            } => json!({ "lane": lane, "mode": mode.as_str(), "by": by, "at_ms": at_ms }),
            OutboxEvent::ModeChange {
                from,
                to,
                cause,
                power,
                at_ms,
            } => json!({ "from": from, "to": to, "cause": cause, "power": power, "at_ms": at_ms }),
            OutboxEvent::Peak {
                group,
                on,
                by,
                at_ms,
            } => json!({ "group": group, "on": on, "by": by, "at_ms": at_ms }),
            OutboxEvent::AlarmReset { by, at_ms } => json!({ "by": by, "at_ms": at_ms }),
            OutboxEvent::CheckOut {
                day_start,
                persons,
                at_ms,
            } => json!({ "day_start": day_start, "persons": persons, "at_ms": at_ms }),
            OutboxEvent::CapacityOverride {
                scope,
                on,
                reason,
                by,
                at_ms,
            } => json!({ "scope": scope, "on": on, "reason": reason, "by": by, "at_ms": at_ms }),
            OutboxEvent::CapacityTier {
                scope,
                from,
                to,
                percent,
                entries,
                inside,
                at_ms,
            } => json!({
                "scope": scope, "from": from, "to": to, "percent": percent,
                "entries": entries, "inside": inside, "at_ms": at_ms,
            }),
            OutboxEvent::Shutdown { cause, at_ms } => json!({ "cause": cause, "at_ms": at_ms }),
            OutboxEvent::Sale {
                order_no,
                total_cents,
                tickets,
            } => json!({ "order_no": order_no, "total_cents": total_cents, "tickets": tickets }),
            OutboxEvent::Print {
                order_no,
                ticket_id,
                serial,
            } => json!({ "order_no": order_no, "ticket_id": ticket_id, "serial": serial }),
            OutboxEvent::Reprint {
                order_no,
                ticket_id,
                serial,
                reason,
            } => json!({
                "order_no": order_no, "ticket_id": ticket_id, "serial": serial, "reason": reason,
            }),
        }
    }
}

/// Mints nonces for one device (see the module's notes). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Nonces {
    inner: Arc<NoncesInner>,
}

#[derive(Debug)]
struct NoncesInner {
    device: String,
    epoch: u64,
    seq: AtomicU64,
}

/// Where the epoch counter lives (`device_settings`).
const EPOCH: &str = "outbox_epoch";

impl Nonces {
    /// Takes the next epoch from the database, durably, for `device`.
    pub fn start(conn: &Connection, device: &str) -> rusqlite::Result<Nonces> {
        // One statement: two makers racing still get two epochs.
        let epoch: i64 = conn.query_row(
            "INSERT INTO device_settings (name, value) VALUES (?1, CAST(1 AS TEXT))
             ON CONFLICT (name) DO UPDATE
                 SET value = CAST(CAST(CAST(value AS TEXT) AS INTEGER) + 1 AS TEXT)
             RETURNING CAST(CAST(value AS TEXT) AS INTEGER)",
            [EPOCH],
            |r| r.get(0),
        )?;
        Ok(Nonces {
            inner: Arc::new(NoncesInner {
                device: device.to_owned(),
                epoch: epoch as u64,
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// A new nonce on `stream` (a lane's name, `modes`, …).
    pub fn next(&self, stream: &str) -> String {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}/{stream}/{}.{seq}", self.inner.device, self.inner.epoch)
    }

    /// The nonce of an event identified by `key` on `stream` (`sale`,
    /// `print`): the same every time, so queueing it again is a retry.
    pub fn keyed(&self, stream: &str, key: impl std::fmt::Display) -> String {
        format!("{}/{stream}/{key}", self.inner.device)
    }

    /// The device the nonces name.
    pub fn device(&self) -> &str {
        &self.inner.device
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Two different events under one nonce: the second would be lost.
    #[error("outbox: nonce {nonce} is already queued with another event ({kind}: {body})")]
    Conflict {
        nonce: String,
        kind: String,
        body: String,
    },
}

/// Whether [`queue`] added the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Added,
    /// The same event under the same nonce was queued already (a retry).
    AlreadyQueued,
}

/// Queues `event` under `nonce`. `conn` may be a transaction's: the event
/// is then durable exactly when what it reports is.
pub fn queue(
    conn: &Connection,
    nonce: &str,
    event: &OutboxEvent,
    at_ms: i64,
) -> Result<Queued, OutboxError> {
    let (kind, body) = (event.kind(), event.body().to_string());
    let added = conn.execute(
        "INSERT INTO outbox (nonce, kind, body, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (nonce) DO NOTHING",
        params![nonce, kind, body, at_ms],
    )?;
    if added == 1 {
        return Ok(Queued::Added);
    }
    let (k, b): (String, String) = conn
        .query_row(
            "SELECT kind, body FROM outbox WHERE nonce = ?1",
            [nonce],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or_default();
    if k == kind && b == body {
        Ok(Queued::AlreadyQueued)
    } else {
        Err(OutboxError::Conflict {
            nonce: nonce.to_owned(),
            kind: k,
            body: b,
        })
    }
}

impl super::Store {
    /// Queues one event on its own (not part of a wider transaction).
    pub fn queue(
        &self,
        nonce: &str,
        event: &OutboxEvent,
        at_ms: i64,
    ) -> Result<Queued, super::StoreError> {
        queue(self.conn_ref(), nonce, event, at_ms)
            .map_err(|e| super::StoreError::from_outbox(self.path(), e))
    }

    /// Events waiting for the central system.
    pub fn outbox_depth(&self) -> Result<u64, super::StoreError> {
        depth(self.conn_ref()).map_err(|e| self.err(e))
    }

    /// The oldest `limit` events waiting: (nonce, kind, body, created_ms).
    pub fn outbox_batch(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, String, i64)>, super::StoreError> {
        self.conn_ref()
            .prepare_cached("SELECT nonce, kind, body, created_ms FROM outbox ORDER BY id LIMIT ?1")
            .and_then(|mut st| {
                st.query_map([limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Deletes the events the central system acknowledged, in one transaction.
    pub fn outbox_ack<'a>(
        &mut self,
        nonces: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), super::StoreError> {
        let path = self.path().to_owned();
        let err = |source| super::StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn().transaction().map_err(err)?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM outbox WHERE nonce = ?1")
                .map_err(err)?;
            for n in nonces {
                del.execute([n]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

/// Events waiting for the central system.
pub fn depth(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn free(persons: u32, direction: Direction) -> OutboxEvent {
        OutboxEvent::FreePassage(crate::store::passages::FreePassage {
            lane: "east-1".into(),
            lane_group: "east".into(),
            direction,
            persons,
            at_ms: 1000,
            local_minute: 0,
            seq: 0,
        })
    }

    #[test]
    fn nonces_are_unique_across_restarts_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gated.db");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let store = Store::open(&path).unwrap();
            let n = Nonces::start(store.conn_ref(), "dev-1").unwrap();
            for stream in ["east-1", "east-1", "modes"] {
                assert!(seen.insert(n.next(stream)), "{seen:?}");
            }
        }
        assert_eq!(seen.len(), 9);
        assert!(seen.iter().all(|n| n.starts_with("dev-1/")), "{seen:?}");
    }

    #[test]
    fn a_retry_is_accepted_and_another_event_under_its_nonce_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("gated.db")).unwrap();
        let c = store.conn_ref();
        let e = free(1, Direction::Entry);
        assert_eq!(queue(c, "n-1", &e, 1000).unwrap(), Queued::Added);
        assert_eq!(queue(c, "n-1", &e, 1000).unwrap(), Queued::AlreadyQueued);
        let err = queue(c, "n-1", &free(1, Direction::Exit), 1000).unwrap_err();
        assert!(matches!(err, OutboxError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("n-1"), "{err}");
        assert_eq!(depth(c).unwrap(), 1);
    }

    #[test]
    fn every_kind_has_a_distinct_wire_name_and_an_object_body() {
        let d = Direction::Entry;
        let events = [
            OutboxEvent::Passage(crate::store::passages::Passage {
                nonce: "n".into(),
                ticket_id: 1,
                lane: "l".into(),
                lane_group: "g".into(),
                direction: d,
                persons: 1,
                at_ms: 0,
                local_minute: 0,
                entries_allowed: 1,
                group_size: 1,
                seq: 1,
            }),
            free(1, d),
            OutboxEvent::Conflict {
                ticket_id: 1,
                passage: "n".into(),
                device_id: "d".into(),
                at_ms: 0,
            },
            OutboxEvent::Alarm {
                lane: "l".into(),
                alarm: AlarmKind::Tailgating,
                at_ms: 0,
            },
            OutboxEvent::ManualOpen {
                lane: "l".into(),
                direction: d,
                by: "uid 0".into(),
                outcome: Outcome::NotPassed,
                at_ms: 0,
            },
            OutboxEvent::LaneMode {
                lane: "l".into(),
                mode: hal::gate::GateMode::Locked,
                by: "uid 0".into(),
                at_ms: 0,
            },
            OutboxEvent::ModeChange {
                from: "normal".into(),
                to: "offline".into(),
                cause: "c".into(),
                power: "p".into(),
                at_ms: 0,
            },
            OutboxEvent::Peak {
                group: "g".into(),
                on: true,
                by: "b".into(),
                at_ms: 0,
            },
            OutboxEvent::AlarmReset {
                by: "b".into(),
                at_ms: 0,
            },
            OutboxEvent::Shutdown {
                cause: "c".into(),
                at_ms: 0,
            },
            OutboxEvent::Sale {
                order_no: "o".into(),
                total_cents: 1,
                tickets: vec![1],
            },
            OutboxEvent::Print {
                order_no: "o".into(),
                ticket_id: 1,
                serial: "S".into(),
            },
            OutboxEvent::Reprint {
                order_no: "o".into(),
                ticket_id: 1,
                serial: "S".into(),
                reason: "r".into(),
            },
        ];
        let kinds: std::collections::HashSet<_> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds.len(), events.len());
        assert!(events.iter().all(|e| e.body().is_object()));
    }
}

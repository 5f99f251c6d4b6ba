//! `Lane1`: the lanes' state, counters and last decisions; a lane's mode
//! and a single opening for engineers.

use super::*;
use gated_api::types::{GateOutcome, LaneView};

/// `Lane1`: every lane's state, counters and last decisions; changing a
/// lane's mode and opening it once are for engineers (bus policy).
#[derive(Debug)]
pub struct LaneIface {
    pub lanes: Option<(crate::lane::Engine, crate::lanes::LaneRegistry)>,
    pub tz: jiff::tz::TimeZone,
}

impl LaneIface {
    fn find(&self, lane: &str) -> Result<(&crate::lane::Engine, &crate::lanes::LaneState), Error> {
        let (lanes, registry) = self
            .lanes
            .as_ref()
            .ok_or_else(|| Error::NotAvailable("this device has no lanes".into()))?;
        let state = registry.iter().find(|l| l.name == lane).ok_or_else(|| {
            let names: Vec<&str> = registry.iter().map(|l| l.name.as_str()).collect();
            Error::NotFound(format!("no lane {lane:?}; lanes: {}", names.join(", ")))
        })?;
        Ok((lanes, state))
    }
}

#[zbus::interface(name = "cn.scenicpark.Gated.Lane1")]
impl LaneIface {
    /// Every lane: name, group, direction, mode, gate connection, persons in
    /// and out today, and the last decisions.
    #[zbus(out_args("lanes"))]
    async fn lanes(&self) -> Result<Vec<LaneView>, Error> {
        let Some((lanes, registry)) = &self.lanes else {
            return Ok(Vec::new());
        };
        let now = crate::lanes::local_now(&self.tz);
        let names: Vec<String> = registry.iter().map(|l| l.name.clone()).collect();
        let counts = lanes
            .blocking(move |l| {
                names
                    .iter()
                    .map(|n| l.counts(n, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        let out: Vec<LaneView> = registry
            .iter()
            .zip(counts)
            .map(|(l, (entries_today, exits_today))| LaneView {
                name: l.name.clone(),
                group: l.group.clone(),
                direction: l.direction.clone(),
                mode: l.mode().as_str().to_owned(),
                forced_by: l.forced_by().map(str::to_owned),
                peak: lanes.relaxed(&l.group).is_some(),
                power_fail_mode: l.power_fail_mode.as_str().to_owned(),
                gate: l.gate.watch_state().borrow().to_string(),
                entries_today,
                exits_today,
                last: l.last(),
            })
            .collect();
        Ok(out)
    }

    /// `normal`, `free` (open for everyone, the gate counts) or `locked`.
    async fn set_mode(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        lane: &str,
        mode: &str,
    ) -> Result<(), Error> {
        let (lanes, state) = self.find(lane)?;
        let mode: hal::gate::GateMode = mode
            .parse()
            .map_err(|e: String| Error::InvalidArgument(format!("{e} (normal, free or locked)")))?;
        let by = caller(&header, conn).await;
        state.set_mode(mode).await.map_err(|e| match e {
            crate::lanes::LaneCommandError::Forced(_) => Error::NotAvailable(e.to_string()),
            e => Error::Failed(e.to_string()),
        })?;
        tracing::warn!(
            lane,
            mode = mode.as_str(),
            by,
            "lane mode set by an engineer"
        );
        // Operators see who closed or freed a lane, and when.
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = crate::store::outbox::OutboxEvent::LaneMode {
            lane: lane.to_owned(),
            mode,
            by,
            at_ms,
        };
        record(lanes, lane, event, at_ms).await
    }

    /// Opens the gate for one person without a ticket (recorded with the
    /// caller); returns what the gate reported.
    #[zbus(out_args("outcome"))]
    async fn open_once(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        lane: &str,
        direction: &str,
    ) -> Result<GateOutcome, Error> {
        let (lanes, state) = self.find(lane)?;
        let dir = match direction {
            "entry" | "" => hal::gate::Direction::Entry,
            "exit" => hal::gate::Direction::Exit,
            d => {
                return Err(Error::InvalidArgument(format!(
                    "direction {d:?}: entry or exit"
                )));
            }
        };
        state
            .check_not_forced()
            .map_err(|e| Error::NotAvailable(e.to_string()))?;
        let by = caller(&header, conn).await;
        let outcome = hal::gate::Gate::open(&state.gate, dir, 1).await;
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = crate::store::outbox::OutboxEvent::ManualOpen {
            lane: lane.to_owned(),
            direction: dir,
            by: by.clone(),
            outcome: outcome.clone(),
            at_ms,
        };
        record(lanes, lane, event, at_ms).await?;
        tracing::warn!(lane, by, outcome = ?outcome, "lane opened once by an engineer");
        Ok(gate_outcome(outcome))
    }
}

/// The gate's outcome as `OpenOnce` answers it.
fn gate_outcome(o: hal::gate::Outcome) -> GateOutcome {
    use hal::gate::Outcome as O;
    let named = |outcome: &str| GateOutcome {
        outcome: outcome.to_owned(),
        persons: None,
        kind: None,
        why: None,
    };
    match o {
        O::Passed { persons } => GateOutcome {
            persons: Some(persons),
            ..named("passed")
        },
        O::NotPassed => named("not_passed"),
        O::Alarm { kind, persons } => GateOutcome {
            persons: Some(persons),
            kind: Some(kind.as_str().to_owned()),
            ..named("alarm")
        },
        O::Fault { why } => GateOutcome {
            why: Some(why),
            ..named("fault")
        },
    }
}

/// Queues an engineer's lane command for the central system, on the lane's stream.
async fn record(
    lanes: &crate::lane::Engine,
    lane: &str,
    event: crate::store::outbox::OutboxEvent,
    at_ms: i64,
) -> Result<(), Error> {
    let stream = lane.to_owned();
    lanes
        .blocking(move |l| l.record_event(&stream, &event, at_ms))
        .await
        .map_err(|e| Error::Failed(e.to_string()))
}

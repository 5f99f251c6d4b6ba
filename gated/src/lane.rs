//! The lane transaction: a medium is presented → the ticket is found and
//! decided → **reserved** (no other lane of this device can use it
//! meanwhile) → the gate opens for exactly the persons it admits → on
//! `Passed` the passages are **committed** durably with the scan's nonce and
//! an outbox event, before anything reports them; on `NotPassed` the
//! reservation is **annulled** (the ticket is as before); on an alarm the
//! alarm is recorded against the lane.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use hal::gate::map::counter_delta;
use hal::gate::modbus::MAX_PLAUSIBLE_DELTA;
use hal::gate::{Direction, Gate, Outcome};

use crate::store::outbox::{Nonces, OutboxEvent};
use crate::store::passages::{Announced, FreePassage, Passage};
use crate::store::tickets::TicketKey;
use crate::store::{Db, Store, StoreError};
pub use crate::tickets::admission::Relax;
use crate::tickets::admission::{self, Listing, PinnedKey, Record, Unreadable, WhenFull};
use crate::tickets::rules::{self, Product, Reason, Ticket, Usage};
use crate::tickets::token::{self, LocalMinute};

/// What a visitor presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Medium {
    /// A scanned code: a signed token (`T1:…`) or a pre-printed serial.
    Code(String),
    /// A contactless card's UID.
    Card(String),
    /// The keyed hash of an ID card's number (never the number).
    Holder([u8; 16]),
}

/// What the lane did with one presentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Refused(Reason),
    /// Passages recorded for the ticket (fewer than admitted if some turned back).
    Admitted {
        ticket_id: u64,
        persons: u32,
    },
    /// Nobody passed; the ticket is as before.
    NotPassed {
        ticket_id: u64,
    },
    /// The gate raised an alarm; it is recorded against the lane.
    Alarm {
        ticket_id: u64,
        kind: hal::gate::AlarmKind,
        persons: u32,
    },
    /// The gate failed; nothing was recorded (whether anyone passed is unknown).
    GateFault {
        ticket_id: u64,
        why: String,
    },
}

/// One presentation at one lane.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    pub lane: &'a str,
    pub lane_group: &'a str,
    pub medium: &'a Medium,
    /// Unique per scan: the passage's id here and at the central system.
    pub nonce: &'a str,
    /// Scenic-area civil time, what the rules count in.
    pub now: LocalMinute,
    /// Wall-clock time, for the record.
    pub at_ms: i64,
    /// The gate's name when its counters outlive gated (a Modbus
    /// controller): the passage is then announced before the gate opens,
    /// so a kill in between loses nothing (see [`Engine::reconcile`]).
    pub gate_ledger: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lane transaction engine, shared by every lane of the device: the
/// store, the pinned keys, the products and the reservations. (The lanes
/// themselves are `lanes::LaneRegistry`.)
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    nonces: Nonces,
    catalog: RwLock<Catalog>,
    reserved: Mutex<HashSet<u64>>,
    /// Lane groups in peak mode and what it relaxes there.
    relaxed: RwLock<HashMap<String, Relax>>,
    /// Lane groups at their instantaneous capacity, and what they let in then.
    full: RwLock<HashMap<String, WhenFull>>,
    /// The scenic area's day, for entries today.
    day: rules::OperatingDay,
    /// The newest number in this device's own passage sequence: the upload
    /// and the peers wake on it.
    head: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug)]
struct Catalog {
    keys: HashMap<u16, PinnedKey>,
    products: HashMap<u32, Product>,
    id_hash_key: Option<Vec<u8>>,
}

/// A ticket held for one lane's passage; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    ticket_id: u64,
    /// The ticket's entries (0 = unlimited) and persons per use, recorded
    /// with its passages for the conflict rule.
    entries_allowed: u32,
    group_size: u16,
    lanes: Engine,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.lanes
            .inner
            .reserved
            .lock()
            .expect("reservations")
            .remove(&self.ticket_id);
    }
}

/// Waits for this device's next committed passage (`Engine::head`); for
/// ever on a device that records none (a kiosk). Mark the receiver seen
/// before reading what was committed, so no commit in between is missed.
pub async fn next_commit(head: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match head.as_mut() {
        Some(h) => {
            let _ = h.changed().await;
        }
        None => std::future::pending().await,
    }
}

/// What the lanes decide with, read from the store.
fn load_catalog(store: &Store) -> Result<Catalog, LaneError> {
    Ok(Catalog {
        keys: store.pinned_keys()?,
        products: store.products()?.into_iter().map(|p| (p.id, p)).collect(),
        id_hash_key: store.setting("id_hash_key")?,
    })
}

impl Engine {
    /// Loads keys, products and the ID-hash key from the store; events are
    /// recorded under `device`'s nonces.
    pub fn new(db: Db, device: &str) -> Result<Self, LaneError> {
        Self::for_day(db, device, rules::OperatingDay::default())
    }

    /// The same, counting entries today in the scenic area's operating `day`.
    pub fn for_day(db: Db, device: &str, day: rules::OperatingDay) -> Result<Self, LaneError> {
        let (catalog, nonces, head) = {
            let store = db.writer();
            (
                load_catalog(&store)?,
                store.nonces(device)?,
                store.own_head()?,
            )
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                db,
                nonces,
                catalog: RwLock::new(catalog),
                reserved: Mutex::new(HashSet::new()),
                relaxed: RwLock::new(HashMap::new()),
                full: RwLock::new(HashMap::new()),
                day,
                head: tokio::sync::watch::Sender::new(head),
            }),
        })
    }

    /// Reads keys, products and the ID-hash key again (after sync changed them).
    pub fn reload(&self) -> Result<(), LaneError> {
        let catalog = load_catalog(&self.reader())?;
        *self.inner.catalog.write().expect("catalog") = catalog;
        Ok(())
    }

    /// Follows this device's own passage sequence (its newest number).
    pub fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// A new nonce for a scan or an event at `lane` (unique by construction).
    pub fn nonce(&self, lane: &str) -> String {
        self.inner.nonces.next(lane)
    }

    /// The keyed hash of an ID number, once the device is provisioned and
    /// if the number is one (ASCII letters and digits).
    pub fn holder_hash(&self, id_number: &str) -> Option<[u8; 16]> {
        let catalog = self.inner.catalog.read().expect("catalog");
        let key = catalog.id_hash_key.as_deref()?;
        token::holder_hash(key, id_number).ok()
    }

    /// Whether any ticket-signing key is pinned: without one no ticket can
    /// be checked (a device never enrolled).
    pub fn has_keys(&self) -> bool {
        !self.inner.catalog.read().expect("catalog").keys.is_empty()
    }

    /// A pinned ticket-signing key, by id (service codes are signed with them).
    pub fn signing_key(&self, key_id: u16) -> Option<ed25519_dalek::VerifyingKey> {
        let key = self.reader().signing_key(key_id).ok().flatten()?;
        token::usable_key(&key)
    }

    /// The writer: a commit, a reservation's record, an event.
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.db.writer()
    }

    /// The reader: what a decision looks up never waits for a write.
    fn reader(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.db.reader()
    }

    /// Finds the tickets a medium stands for: a token by its signature
    /// (no store read), anything else in the ticket table.
    fn candidates(&self, medium: &Medium, now: LocalMinute) -> Result<Vec<Ticket>, Reason> {
        let key = match medium {
            // Any `T<digits>:` is a token (of a format this device may not
            // know), never a serial.
            Medium::Code(text) if token::is_token(text) => {
                let catalog = self.inner.catalog.read().expect("catalog");
                return admission::token_ticket(text, &catalog.keys, now).map(|t| vec![t]);
            }
            Medium::Code(serial) => TicketKey::Serial(serial),
            Medium::Card(uid) => TicketKey::CardUid(uid),
            Medium::Holder(hash) => TicketKey::Holder(hash),
        };
        admission::found(self.reader().tickets_by(key).map_err(|e| {
            tracing::error!("ticket lookup failed, refusing: {e}");
            Unreadable
        }))
    }

    /// What this device has recorded for the ticket, as of `now`.
    pub fn usage(&self, ticket_id: u64, now: LocalMinute) -> Result<Usage, LaneError> {
        Ok(self.reader().usage(ticket_id, self.inner.day.around(now))?)
    }

    /// Decides (`tickets::admission`) and reserves: Ok when the gate may
    /// open for `persons` in `direction`.
    pub fn decide(
        &self,
        medium: &Medium,
        now: LocalMinute,
        lane_group: &str,
        direction: Direction,
    ) -> Result<(Reservation, Ticket, u16), Reason> {
        let candidates = self.candidates(medium, now)?;
        let peak = self.relaxed(lane_group);
        let mut reservations = Vec::new();
        let decisions = candidates.iter().map(|ticket| {
            let (decision, reservation) = self.decide_one(ticket, direction, lane_group, peak, now);
            reservations.push(reservation);
            decision
        });
        let (i, persons) = admission::first_admitted(decisions)?;
        let reservation = reservations
            .swap_remove(i)
            .expect("an admitted ticket is reserved");
        Ok((reservation, candidates[i], persons))
    }

    /// A product's rules as last loaded.
    fn product(&self, id: u32) -> Option<Product> {
        let catalog = self.inner.catalog.read().expect("catalog");
        catalog.products.get(&id).cloned()
    }

    /// Reads what the decision on one ticket needs and takes it.
    fn decide_one(
        &self,
        ticket: &Ticket,
        direction: Direction,
        lane_group: &str,
        peak: Option<Relax>,
        now: LocalMinute,
    ) -> (Result<u16, Reason>, Option<Reservation>) {
        let entry = direction == Direction::Entry;
        let listing = if entry {
            self.reader().listing(ticket.id).map_err(|e| {
                tracing::error!(
                    ticket = ticket.id,
                    "revocation lists unreadable, refusing: {e}"
                );
                Unreadable
            })
        } else {
            Ok(Listing::Clear)
        };
        let product = self.product(ticket.product_id);
        // Reserve first, then count usage: two lanes racing cannot both pass.
        let mut reservation = self.reserve(ticket.id).ok();
        // What its passages record for the conflict rule.
        if let (Some(r), Some(p)) = (reservation.as_mut(), &product) {
            r.entries_allowed = rules::entries_allowed(ticket, p);
            r.group_size = ticket.group_size.max(1);
        }
        let usage = match &reservation {
            Some(_) if entry => self.usage(ticket.id, now).map_err(|e| {
                tracing::error!("usage lookup failed, refusing: {e}");
                Unreadable
            }),
            // Not read, and never taken for fine.
            _ => Err(Unreadable),
        };
        let record = Record {
            ticket,
            listing,
            product: product.as_ref(),
            in_use: reservation.is_none(),
            usage,
            full: self.full(lane_group),
        };
        let decision = admission::decide(&record, direction, lane_group, peak, now);
        (decision, reservation.filter(|_| decision.is_ok()))
    }

    fn reserve(&self, ticket_id: u64) -> Result<Reservation, Reason> {
        if !self
            .inner
            .reserved
            .lock()
            .expect("reservations")
            .insert(ticket_id)
        {
            return Err(Reason::InUse);
        }
        Ok(Reservation {
            ticket_id,
            entries_allowed: 0,
            group_size: 1,
            lanes: self.clone(),
        })
    }

    /// A lane group at its instantaneous capacity refuses new entries with
    /// `capacity_full` (None: it is not).
    pub fn set_full(&self, group: &str, when: Option<WhenFull>) {
        let mut f = self.inner.full.write().expect("full groups");
        match when {
            Some(w) => f.insert(group.to_owned(), w),
            None => f.remove(group),
        };
    }

    fn full(&self, group: &str) -> Option<WhenFull> {
        self.inner
            .full
            .read()
            .expect("full groups")
            .get(group)
            .copied()
    }

    /// Records persons the gate let through by itself (no ticket): counted
    /// in occupancy here, followed by the peers, uploaded.
    pub fn record_free_passage(&self, f: &FreePassage) -> Result<(), LaneError> {
        let nonce = self.inner.nonces.next(&f.lane);
        let seq = self.store().commit_free_passage(&nonce, f)?;
        self.inner.head.send_replace(seq);
        Ok(())
    }

    /// Peak mode for a lane group: relaxes its re-entry rules (None ends it).
    pub fn set_relax(&self, group: &str, relax: Option<Relax>) {
        let mut r = self.inner.relaxed.write().expect("relaxed groups");
        match relax {
            Some(x) => r.insert(group.to_owned(), x),
            None => r.remove(group),
        };
    }

    /// What peak mode relaxes for `group`, if it is in peak mode.
    pub fn relaxed(&self, group: &str) -> Option<Relax> {
        self.inner
            .relaxed
            .read()
            .expect("relaxed groups")
            .get(group)
            .copied()
    }

    /// The lane groups in peak mode, in order.
    pub fn relaxed_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .inner
            .relaxed
            .read()
            .expect("relaxed groups")
            .keys()
            .cloned()
            .collect();
        groups.sort();
        groups
    }

    /// Records passages and their outbox event in one durable transaction.
    /// A nonce already recorded changes nothing (a replayed commit).
    pub fn commit(
        &self,
        reservation: &Reservation,
        scan: &Presentation<'_>,
        direction: Direction,
        persons: u32,
    ) -> Result<(), LaneError> {
        let passage = self.passage(reservation, scan, direction, persons);
        self.record(&passage)
    }

    /// The passage a decided presentation makes (numbered at commit).
    fn passage(
        &self,
        reservation: &Reservation,
        scan: &Presentation<'_>,
        direction: Direction,
        persons: u32,
    ) -> Passage {
        Passage {
            nonce: scan.nonce.to_owned(),
            ticket_id: reservation.ticket_id,
            lane: scan.lane.to_owned(),
            lane_group: scan.lane_group.to_owned(),
            direction,
            persons,
            at_ms: scan.at_ms,
            local_minute: scan.now,
            entries_allowed: reservation.entries_allowed,
            group_size: reservation.group_size,
            seq: 0,
        }
    }

    /// Commits a passage and tells the upload and the peers at once.
    fn record(&self, passage: &Passage) -> Result<(), LaneError> {
        let recorded = self.store().commit_passage(passage)?;
        if let Some(seq) = recorded.seq {
            self.inner.head.send_replace(seq);
        }
        Ok(())
    }

    /// Announces a passage before the gate opens (see `Presentation::gate_ledger`):
    /// the gate's counter now, durable. False when the gate cannot say.
    async fn announce<G: Gate>(
        &self,
        gate: &G,
        gate_name: &str,
        scan: &Presentation<'_>,
        reservation: &Reservation,
        direction: Direction,
        persons: u32,
    ) -> bool {
        let status = match gate.status().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    lane = scan.lane,
                    "gate counters unreadable, passage not announced: {e}"
                );
                return false;
            }
        };
        let announced = Announced {
            counter: status.counter(direction),
            passage: self.passage(reservation, scan, direction, persons),
        };
        let gate = gate_name.to_owned();
        let r = self
            .blocking(move |l| l.store().announce_passage(&gate, &announced))
            .await;
        if let Err(e) = r {
            tracing::error!(lane = scan.lane, "could not announce the passage: {e}");
            return false;
        }
        true
    }

    /// Settles an announced passage that got no passage record.
    fn forget(&self, nonce: &str) {
        if let Err(e) = self.store().forget_announced(nonce) {
            tracing::error!("could not settle announced passage {nonce}: {e}");
        }
    }

    /// After a restart: passages announced at `gate_name` but never settled
    /// (gated was killed while the gate was open). Where the gate's counter
    /// went past the announced value the visitors went through, and the
    /// passage is recorded as it would have been; otherwise nobody did.
    /// Returns (recorded, dropped).
    pub fn reconcile(
        &self,
        gate_name: &str,
        status: &hal::gate::GateStatus,
    ) -> Result<(u32, u32), LaneError> {
        let announced = self.store().announced(gate_name)?;
        let (mut recorded, mut dropped) = (0, 0);
        // Counters already accounted to earlier announcements.
        let mut used = [0u32; 2];
        for Announced {
            counter,
            mut passage,
        } in announced
        {
            let direction = passage.direction;
            let i = direction.index();
            // Wrap-safe, as the gate's own polling counts; a jump that large
            // is a controller reset, not visitors.
            let went =
                counter_delta(counter, status.counter(direction), 32).saturating_sub(used[i]);
            let went = if went > MAX_PLAUSIBLE_DELTA {
                0
            } else {
                went.min(passage.persons)
            };
            if went > 0 {
                used[i] += went;
                passage.persons = went;
                self.record(&passage)?;
                tracing::warn!(
                    lane = passage.lane,
                    ticket = passage.ticket_id,
                    persons = went,
                    nonce = passage.nonce,
                    "passage while gated was stopping, found by the gate's counter: recorded"
                );
                recorded += 1;
            } else {
                self.forget(&passage.nonce);
                tracing::info!(
                    lane = passage.lane,
                    ticket = passage.ticket_id,
                    "announced passage did not happen (the gate's counter did not move)"
                );
                dropped += 1;
            }
        }
        Ok((recorded, dropped))
    }

    /// Records a gate alarm against the lane (and for the central system).
    pub fn record_alarm(
        &self,
        lane: &str,
        alarm: hal::gate::AlarmKind,
        at_ms: i64,
    ) -> Result<(), LaneError> {
        let event = OutboxEvent::Alarm {
            lane: lane.to_owned(),
            alarm,
            at_ms,
        };
        self.record_event(lane, &event, at_ms)
    }

    /// Records an event for the central system on `stream` (a lane's name:
    /// free passages, manual openings).
    pub fn record_event(
        &self,
        stream: &str,
        event: &OutboxEvent,
        at_ms: i64,
    ) -> Result<(), LaneError> {
        let nonce = self.inner.nonces.next(stream);
        self.store().queue(&nonce, event, at_ms)?;
        Ok(())
    }

    /// Persons this device let in and out through `lane` on the operating
    /// day of `now`.
    pub fn counts(&self, lane: &str, now: LocalMinute) -> Result<(u64, u64), LaneError> {
        Ok(self
            .reader()
            .lane_counts(lane, self.inner.day.around(now))?)
    }

    /// Runs store work on tokio's blocking pool: a commit waits for its
    /// fsync (and a lookup for the store's lock) there, never on a runtime
    /// worker that polls gates and serves D-Bus.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> T {
        let lanes = self.clone();
        tokio::task::spawn_blocking(move || f(&lanes))
            .await
            .expect("lane store work panicked")
    }

    /// The whole transaction for one presentation at one lane.
    pub async fn admit<G: Gate>(
        &self,
        gate: &G,
        scan: &Presentation<'_>,
    ) -> Result<Admission, LaneError> {
        self.transact(gate, scan, Direction::Entry).await
    }

    /// An exit lane: any ticket this device knows may leave; the exit is
    /// recorded (it re-arms anti-passback), no entry rule applies.
    pub async fn let_out<G: Gate>(
        &self,
        gate: &G,
        scan: &Presentation<'_>,
    ) -> Result<Admission, LaneError> {
        self.transact(gate, scan, Direction::Exit).await
    }

    /// Decides `direction` for the presentation, then opens and records.
    async fn transact<G: Gate>(
        &self,
        gate: &G,
        scan: &Presentation<'_>,
        direction: Direction,
    ) -> Result<Admission, LaneError> {
        let (medium, now, group) = (scan.medium.clone(), scan.now, scan.lane_group.to_owned());
        let decided = self
            .blocking(move |l| l.decide(&medium, now, &group, direction))
            .await;
        match decided {
            Ok((reservation, _, persons)) => {
                self.pass(gate, reservation, scan, direction, persons as u32)
                    .await
            }
            Err(reason) => Ok(Admission::Refused(reason)),
        }
    }

    /// Opens the gate for a decided passage and records what happened,
    /// announcing it first where the gate keeps counters.
    async fn pass<G: Gate>(
        &self,
        gate: &G,
        reservation: Reservation,
        scan: &Presentation<'_>,
        direction: Direction,
        persons: u32,
    ) -> Result<Admission, LaneError> {
        let announced = match scan.gate_ledger {
            Some(g) => {
                self.announce(gate, g, scan, &reservation, direction, persons)
                    .await
            }
            None => false,
        };
        let outcome = gate.open(direction, persons).await;
        let (lane, group, medium, nonce) = (
            scan.lane.to_owned(),
            scan.lane_group.to_owned(),
            scan.medium.clone(),
            scan.nonce.to_owned(),
        );
        let (now, at_ms) = (scan.now, scan.at_ms);
        // The reservation moves along: the ticket stays held until what
        // happened is durable, even if this task is cancelled meanwhile.
        self.blocking(move |l| {
            let scan = Presentation {
                lane: &lane,
                lane_group: &group,
                medium: &medium,
                nonce: &nonce,
                now,
                at_ms,
                gate_ledger: None,
            };
            let r = l.settle(&reservation, &scan, direction, outcome);
            // A passage record settled its announcement in its own
            // transaction; nobody passing settles it here; a gate fault (or
            // a failed record) leaves it for the next reconciliation.
            let nobody = matches!(
                r,
                Ok(Admission::NotPassed { .. } | Admission::Alarm { persons: 0, .. })
            );
            if announced && nobody {
                l.forget(&nonce);
            }
            r
        })
        .await
    }

    /// Records what the gate reported: passages committed, an alarm
    /// recorded against the lane, nothing for `NotPassed` or a fault.
    fn settle(
        &self,
        reservation: &Reservation,
        scan: &Presentation<'_>,
        direction: Direction,
        outcome: Outcome,
    ) -> Result<Admission, LaneError> {
        let ticket_id = reservation.ticket_id;
        Ok(match outcome {
            Outcome::Passed { persons } => {
                self.commit(reservation, scan, direction, persons)?;
                Admission::Admitted { ticket_id, persons }
            }
            Outcome::NotPassed => Admission::NotPassed { ticket_id },
            Outcome::Alarm { kind, persons } => {
                // Those who passed on the authorisation are counted; the
                // alarm is recorded against the lane either way.
                if persons > 0 {
                    self.commit(reservation, scan, direction, persons)?;
                }
                self.record_alarm(scan.lane, kind, scan.at_ms)?;
                Admission::Alarm {
                    ticket_id,
                    kind,
                    persons,
                }
            }
            Outcome::Fault { why } => Admission::GateFault { ticket_id, why },
        })
    }
}

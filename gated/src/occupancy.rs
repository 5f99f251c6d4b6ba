//! Occupancy and capacity: visitors in the site and in each lane group in
//! the operating day, from every device's passages (its own, the peers',
//! the central feed's; with and without tickets), against the approved
//! capacities (LB/T 034-2014: daily and instantaneous) and the warning
//! tiers. A tier crossed is logged and queued as an event; at the
//! instantaneous capacity the entry lanes refuse new entries
//! (`capacity_full`); at `stop_sales_at` the kiosks stop selling for today.

use std::collections::BTreeMap;
use std::time::Duration;

use gated_api::types::{GroupOccupancy, OccupancyView};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::lane::Engine;
use crate::store::outbox::OutboxEvent;
use crate::store::{Db, Store, StoreError};
use crate::tickets::admission::WhenFull;
use crate::tickets::rules::OperatingDay;
use crate::tickets::token::LocalMinute;

/// How often the store is asked whether anything was committed by other
/// means (this device's writes wake the recount at once), and the day
/// and the links are looked at.
const CHECK: Duration = Duration::from_secs(1);

/// Where the catalog's capacities are kept, next to the catalog (small: read
/// at every recount).
pub const CATALOG_CAPACITIES: &str = "catalog.capacities";

/// The capacities the central catalog sets, for the site and its groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogCapacities {
    pub site: crate::central::api::Capacity,
    pub groups: BTreeMap<String, crate::central::api::Capacity>,
}

impl CatalogCapacities {
    pub fn of(catalog: &crate::central::api::Catalog) -> Self {
        CatalogCapacities {
            site: catalog.capacity,
            groups: catalog
                .lane_groups
                .iter()
                .filter(|g| g.capacity != Default::default())
                .map(|g| (g.name.clone(), g.capacity))
                .collect(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("capacities serialize")
    }

    /// As stored: none yet is none. Unreadable, it is an error (the last
    /// figures and the full lanes stay as they were).
    fn stored(store: &Store) -> Result<Self, StoreError> {
        match store.setting(CATALOG_CAPACITIES)? {
            None => Ok(Self::default()),
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| StoreError::Unreadable {
                path: store.path().to_owned(),
                what: format!("setting {CATALOG_CAPACITIES}: {e}"),
            }),
        }
    }
}

/// The day's counts per lane group as last read, and how far the store was
/// read: a recount adds only the passages committed since.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    day: Option<std::ops::Range<LocalMinute>>,
    after: (i64, i64),
    counts: BTreeMap<String, (u64, u64)>,
    /// Inside at the day's start (carried over), read once a day.
    carried: BTreeMap<String, u64>,
}

impl Tally {
    fn update(
        &mut self,
        store: &Store,
        today: std::ops::Range<LocalMinute>,
        carry: bool,
    ) -> Result<(), StoreError> {
        if self.day.as_ref() != Some(&today) {
            let carried = if carry {
                store
                    .group_counts(0..today.start)?
                    .into_iter()
                    .map(|(g, i, o)| (g, i.saturating_sub(o)))
                    .collect()
            } else {
                BTreeMap::new()
            };
            *self = Tally {
                day: Some(today.clone()),
                carried,
                ..Tally::default()
            };
        }
        let (rows, upto) = store.group_counts_after(today, self.after)?;
        for (g, i, o) in rows {
            let e = self.counts.entry(g).or_default();
            (e.0, e.1) = (e.0 + i, e.1 + o);
        }
        self.after = upto;
        Ok(())
    }
}

/// The capacities and what the tiers do, from `[occupancy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacities {
    pub daily: Option<u32>,
    pub instant: Option<u32>,
    pub groups: BTreeMap<String, (Option<u32>, Option<u32>)>,
    pub tiers: Vec<u8>,
    pub stop_sales_at: u8,
    pub when_full: WhenFull,
    pub day: OperatingDay,
    pub check_out_at_day_end: bool,
    /// Percent the capacities are lowered by while the device is isolated.
    pub offline_margin: u8,
}

impl Capacities {
    pub fn from_config(config: &Config) -> Self {
        let o = &config.occupancy;
        Capacities {
            daily: o.daily_capacity.as_ref().map(|c| *c.get_ref()),
            instant: o.instant_capacity.as_ref().map(|c| *c.get_ref()),
            groups: o
                .groups
                .iter()
                .map(|(g, c)| {
                    let c = c.get_ref();
                    (g.clone(), (c.daily_capacity, c.instant_capacity))
                })
                .collect(),
            tiers: o.tiers.get_ref().clone(),
            stop_sales_at: *o.stop_sales_at.get_ref(),
            when_full: WhenFull {
                admit_reentry: o.admit_reentry_when_full,
            },
            day: config.operating_day(),
            check_out_at_day_end: o.check_out_at_day_end,
            offline_margin: *o.offline_margin.get_ref(),
        }
    }

    /// These capacities (gated.toml's), with the catalog's where gated.toml
    /// sets none.
    pub fn with_catalog(&self, catalog: &CatalogCapacities) -> Capacities {
        let mut groups = self.groups.clone();
        for (g, c) in &catalog.groups {
            let e = groups.entry(g.clone()).or_insert((None, None));
            e.0 = e.0.or(c.daily_capacity);
            e.1 = e.1.or(c.instant_capacity);
        }
        Capacities {
            daily: self.daily.or(catalog.site.daily_capacity),
            instant: self.instant.or(catalog.site.instant_capacity),
            groups,
            ..self.clone()
        }
    }

    /// The capacities a device holds when it sees only its own passages:
    /// `offline_margin` percent lower (at least 1).
    pub fn isolated(&self) -> Capacities {
        let lower = |c: Option<u32>| {
            c.map(|c| {
                (u64::from(c) * u64::from(100 - self.offline_margin.min(99)) / 100).max(1) as u32
            })
        };
        Capacities {
            daily: lower(self.daily),
            instant: lower(self.instant),
            groups: self
                .groups
                .iter()
                .map(|(g, (d, i))| (g.clone(), (lower(*d), lower(*i))))
                .collect(),
            ..self.clone()
        }
    }

    /// The view at the local minute `now` from what `store` holds: the
    /// operating day's passages, and (without the check-out at the day's
    /// end) those still inside from the days before. The catalog's
    /// capacities fill in what gated.toml leaves unset; `isolated`, all are
    /// lowered by the offline margin.
    pub fn count(
        &self,
        store: &Store,
        now: LocalMinute,
        isolated: bool,
    ) -> Result<OccupancyView, StoreError> {
        self.recount(&mut Tally::default(), store, now, isolated)
    }

    /// The view from `tally`, brought up to date with what was committed
    /// since it last read (at a new operating day, counted afresh).
    fn count_into(
        &self,
        tally: &mut Tally,
        store: &Store,
        now: LocalMinute,
    ) -> Result<OccupancyView, StoreError> {
        let today = self.day.around(now);
        tally.update(store, today.clone(), !self.check_out_at_day_end)?;
        let counts: Vec<(String, u64, u64)> = tally
            .counts
            .iter()
            .map(|(g, (i, o))| (g.clone(), *i, *o))
            .collect();
        Ok(self.view(
            &counts,
            &tally.carried,
            crate::central::format_civil(today.start),
        ))
    }

    /// [`Self::count`], reading only what was committed since `tally` last
    /// read: the running device's recount.
    pub fn recount(
        &self,
        tally: &mut Tally,
        store: &Store,
        now: LocalMinute,
        isolated: bool,
    ) -> Result<OccupancyView, StoreError> {
        let caps = self.with_catalog(&CatalogCapacities::stored(store)?);
        let caps = if isolated { caps.isolated() } else { caps };
        caps.count_into(tally, store, now)
    }

    /// The figures of one scope.
    fn figures(
        &self,
        group: &str,
        (entries, exits, carried): (u64, u64, u64),
        (daily, instant): (Option<u32>, Option<u32>),
    ) -> GroupOccupancy {
        let inside = (carried + entries).saturating_sub(exits);
        let of = |n: u64, cap: Option<u32>| cap.map_or(0, |c| n * 100 / u64::from(c.max(1)));
        let percent = of(entries, daily)
            .max(of(inside, instant))
            .min(u64::from(u32::MAX)) as u32;
        let tier = self
            .tiers
            .iter()
            .copied()
            .filter(|t| percent >= u32::from(*t))
            .max()
            .unwrap_or(0);
        GroupOccupancy {
            group: group.to_owned(),
            entries,
            exits,
            inside,
            clamped: exits > carried + entries,
            daily_capacity: daily,
            instant_capacity: instant,
            percent,
            tier,
            full: instant.is_some_and(|c| inside >= u64::from(c)),
            override_reason: None,
        }
    }

    /// The view of the counts per lane group (entries, exits today) and of
    /// those carried over from the days before (inside).
    pub fn view(
        &self,
        counts: &[(String, u64, u64)],
        carried: &BTreeMap<String, u64>,
        day_start: String,
    ) -> OccupancyView {
        let mut per_group: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for g in self.groups.keys().chain(carried.keys()) {
            per_group.insert(g, (0, 0, carried.get(g).copied().unwrap_or(0)));
        }
        for (g, i, o) in counts {
            per_group.entry(g).or_default();
            let e = per_group.get_mut(g.as_str()).expect("just inserted");
            (e.0, e.1) = (*i, *o);
        }
        let total = per_group
            .values()
            .fold((0, 0, 0), |t, c| (t.0 + c.0, t.1 + c.1, t.2 + c.2));
        let site = self.figures("", total, (self.daily, self.instant));
        let groups: Vec<GroupOccupancy> = per_group
            .iter()
            .map(|(g, c)| {
                let caps = self.groups.get(*g).copied().unwrap_or((None, None));
                self.figures(g, *c, caps)
            })
            .collect();
        let sales_stopped = site.percent >= u32::from(self.stop_sales_at);
        let mut view = OccupancyView {
            day_start,
            site,
            groups,
            sales_stopped,
            notice_zh: String::new(),
            notice_en: String::new(),
            isolated: false,
            margin_percent: self.offline_margin,
        };
        set_notice(&mut view);
        view
    }
}

/// Whether a scope refuses new entries: full, and no supervisor overrode it.
fn holds(g: &GroupOccupancy) -> bool {
    g.full && g.override_reason.is_none()
}

/// The site-wide notice for the kiosks: the highest tier of any scope.
/// Called again once overrides are known (an overridden scope is not full).
fn set_notice(view: &mut OccupancyView) {
    let all = || std::iter::once(&view.site).chain(&view.groups);
    let tier = all().map(|g| g.tier).max().unwrap_or(0);
    let n = notice(tier, view.sales_stopped, all().any(holds));
    (view.notice_zh, view.notice_en) = (TierNotice::zh(n).into(), TierNotice::en(n).into());
}

/// What the displays of a lane in `group` show (None below the first
/// tier): the site's figures and its own group's, not other groups'.
pub fn lane_notice(view: &OccupancyView, group: &str) -> Option<&'static TierNotice> {
    let own = view.groups.iter().find(|g| g.group == group);
    let tier = own.map_or(0, |g| g.tier).max(view.site.tier);
    let full = holds(&view.site) || own.is_some_and(holds);
    notice(tier, view.sales_stopped, full)
}

/// What visitors are told at a tier: on the displays, and said by the
/// voice prompt of the same name.
#[derive(Debug, PartialEq, Eq)]
pub struct TierNotice {
    pub prompt: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

impl TierNotice {
    /// The Chinese text, empty below the first tier.
    pub fn zh(n: Option<&Self>) -> &'static str {
        n.map_or("", |n| n.zh)
    }

    /// The English text, empty below the first tier.
    pub fn en(n: Option<&Self>) -> &'static str {
        n.map_or("", |n| n.en)
    }
}

/// The notices by tier, highest first.
pub const TIER_NOTICES: [TierNotice; 3] = [
    TierNotice {
        prompt: "capacity_full",
        zh: "景区游客已满，请稍候入园",
        en: "The park is full: please wait a moment",
    },
    TierNotice {
        prompt: "sales_stopped",
        zh: "景区游客较多，今日门票暂停销售",
        en: "The park is very busy: no more tickets for today",
    },
    TierNotice {
        prompt: "busy",
        zh: "景区游客较多，请错峰游览",
        en: "The park is busy: please plan your visit",
    },
];

/// What visitors are told at `tier` (None below the first).
fn notice(tier: u8, sales_stopped: bool, full: bool) -> Option<&'static TierNotice> {
    if full {
        Some(&TIER_NOTICES[0])
    } else if sales_stopped {
        Some(&TIER_NOTICES[1])
    } else if tier > 0 {
        Some(&TIER_NOTICES[2])
    } else {
        None
    }
}

/// Where a supervisor's overrides are kept (JSON: scope → reason): they
/// outlive a restart. Unreadable, there is none (the limits hold).
const OVERRIDES: &str = "occupancy.overrides";

/// The running occupancy: its view, and the supervisors' overrides (scope
/// "site" or a lane group → the reason given).
#[derive(Debug, Clone)]
pub struct Occupancy {
    pub view: watch::Receiver<OccupancyView>,
    overrides: watch::Sender<BTreeMap<String, String>>,
    db: Db,
    scopes: Vec<String>,
    nonces: std::sync::Arc<crate::store::outbox::Nonces>,
}

impl Occupancy {
    /// A supervisor lets `scope` ("site" or a lane group) admit past its
    /// instantaneous capacity (`on`), or ends that; recorded with `reason`
    /// and who asked, logged, and reported to the central system.
    pub async fn set_override(
        &self,
        scope: &str,
        on: bool,
        reason: &str,
        by: &str,
    ) -> Result<(), String> {
        // The catalog's groups count as well as gated.toml's.
        let counted = self.view.borrow().groups.iter().any(|g| g.group == scope);
        if !counted && !self.scopes.iter().any(|s| s == scope) {
            return Err(format!(
                "no scope {scope}: use \"site\" or a lane group with a capacity ({})",
                self.scopes.join(", ")
            ));
        }
        if on && reason.trim().is_empty() {
            return Err("an override needs a reason (--reason)".into());
        }
        let mut next = self.overrides.borrow().clone();
        if on {
            next.insert(scope.to_owned(), format!("{reason} ({by})"));
        } else {
            next.remove(scope);
        }
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = OutboxEvent::CapacityOverride {
            scope: scope.to_owned(),
            on,
            reason: reason.to_owned(),
            by: by.to_owned(),
            at_ms,
        };
        let nonce = self.nonces.next("occupancy");
        let json = serde_json::to_vec(&next).expect("a map of strings");
        self.db
            .write(move |s| {
                s.put_setting(OVERRIDES, &json)?;
                s.queue(&nonce, &event, at_ms)
            })
            .await
            .map_err(|e| format!("not recorded, nothing changed: {e}"))?;
        warn!(
            scope,
            on,
            reason,
            by,
            "capacity override of {scope} {} by {by}: {reason}",
            if on {
                "ON: entries past the capacity"
            } else {
                "off"
            }
        );
        self.overrides.send_replace(next);
        Ok(())
    }
}

/// Keeps the view current in `tasks`: recounted whenever the store changed
/// (any path: own passages, peers, the feed), when the day turns and when an
/// override changes; sets the engine's full groups (a lane device) from it.
pub fn start(
    config: &Config,
    db: Db,
    engine: Option<Engine>,
    link: watch::Receiver<crate::central::sync::SyncStatus>,
    fleet: watch::Receiver<crate::peers::FleetStatus>,
    tx: watch::Sender<OccupancyView>,
    tasks: &mut JoinSet<()>,
) -> Result<Occupancy, crate::store::StoreError> {
    let caps = Capacities::from_config(config);
    let day = config.operating_day();
    let tz = config.time_zone();
    let device = config.device_id.get_ref().clone();
    let own_groups: Vec<String> = config
        .lanes
        .values()
        .map(|l| l.get_ref().group.clone())
        .collect();
    let rx = tx.subscribe();
    let stored: BTreeMap<String, String> = db
        .reader()
        .setting(OVERRIDES)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    let overrides = watch::Sender::new(stored);
    let nonces = std::sync::Arc::new(db.writer().nonces(&device)?);
    let handle = Occupancy {
        view: rx,
        overrides: overrides.clone(),
        db: db.clone(),
        scopes: std::iter::once("site".to_owned())
            .chain(caps.groups.keys().cloned())
            .chain(own_groups.iter().cloned())
            .collect(),
        nonces: nonces.clone(),
    };
    let mut overridden = overrides.subscribe();
    let mut written = db.written();
    let mut head = engine.as_ref().map(Engine::head);
    tasks.spawn(async move {
        let mut last: Option<OccupancyView> = None;
        let mut version = None;
        let tally = std::sync::Arc::new(std::sync::Mutex::new(Tally::default()));
        loop {
            let now = crate::lanes::local_now(&tz);
            let today = day.around(now);
            let alone = isolated(&link, &fleet);
            let (c, t) = (caps.clone(), tally.clone());
            let counted = db
                .read(move |s| c.recount(&mut t.lock().expect("tally"), s, now, alone))
                .await;
            match counted {
                Ok(mut view) => {
                    (view.isolated, view.margin_percent) = (alone, caps.offline_margin);
                    if last.as_ref().is_some_and(|l| l.isolated != alone) {
                        warn!(
                            isolated = alone,
                            "occupancy: {}",
                            if alone {
                                "neither the central system nor any peer is reachable: capacities held lower by the offline margin"
                            } else {
                                "the site's passages reach this device again: capacities as configured"
                            }
                        );
                    }
                    if let Some(l) = &last
                        && l.day_start != view.day_start
                        && caps.check_out_at_day_end
                        && l.site.inside > 0
                    {
                        check_out(&db, &nonces, l).await;
                    }
                    let ov = overridden.borrow_and_update().clone();
                    for g in std::iter::once(&mut view.site).chain(view.groups.iter_mut()) {
                        let scope = if g.group.is_empty() {
                            "site"
                        } else {
                            g.group.as_str()
                        };
                        g.override_reason = ov.get(scope).cloned();
                    }
                    set_notice(&mut view);
                    // The lanes and the kiosk first: queuing the events waits
                    // for the writer.
                    if let Some(e) = &engine {
                        // Full unless a supervisor overrode that scope.
                        for g in &own_groups {
                            let full = holds(&view.site)
                                || view.groups.iter().any(|v| v.group == *g && holds(v));
                            e.set_full(g, full.then_some(caps.when_full));
                        }
                    }
                    tx.send_if_modified(|v| {
                        let changed = *v != view;
                        *v = view.clone();
                        changed
                    });
                    transitions(&db, &nonces, last.as_ref(), &view).await;
                    last = Some(view);
                }
                // The last figures stay (and with them a full lane stays full).
                Err(e) => warn!("occupancy not recounted: {e}"),
            }
            // Until something is committed, the operating day turns or an
            // override changes.
            loop {
                tokio::select! {
                    () = tokio::time::sleep(CHECK) => {}
                    Ok(()) = overridden.changed() => break,
                    // The feed and the peers (through Db::write), this lane's passages.
                    Ok(()) = written.changed() => break,
                    () = crate::lane::next_commit(&mut head) => break,
                }
                let v = db.read(|s| s.data_version()).await.ok();
                let turned = day.around(crate::lanes::local_now(&tz)) != today;
                if v != version || turned || isolated(&link, &fleet) != alone {
                    version = v;
                    break;
                }
            }
        }
    });
    Ok(handle)
}

/// Neither the central system nor any peer reachable: this device counts
/// only its own passages (and what it had before).
fn isolated(
    link: &watch::Receiver<crate::central::sync::SyncStatus>,
    fleet: &watch::Receiver<crate::peers::FleetStatus>,
) -> bool {
    link.borrow().mode != crate::central::sync::Mode::Online
        && !fleet.borrow().peers.iter().any(|p| p.reachable)
}

/// The operating day `last` ended with visitors still counted inside: they
/// are checked out (the new day starts empty), logged and reported.
async fn check_out(db: &Db, nonces: &crate::store::outbox::Nonces, last: &OccupancyView) {
    let persons = last.site.inside;
    info!(
        persons,
        day = last.day_start,
        "operating day from {} ended: {persons} visitor(s) still counted inside checked out",
        last.day_start
    );
    let at_ms = jiff::Timestamp::now().as_millisecond();
    let event = OutboxEvent::CheckOut {
        day_start: last.day_start.clone(),
        persons,
        at_ms,
    };
    let nonce = nonces.next("occupancy");
    if let Err(e) = db.write(move |s| s.queue(&nonce, &event, at_ms)).await {
        error!("check-out not queued for the central system: {e}");
    }
}

/// Logs and queues each tier crossed since `last`.
async fn transitions(
    db: &Db,
    nonces: &crate::store::outbox::Nonces,
    last: Option<&OccupancyView>,
    view: &OccupancyView,
) {
    let Some(last) = last else {
        if view.site.tier > 0 {
            info!(
                tier = view.site.tier,
                percent = view.site.percent,
                "site occupancy at start: tier {}%",
                view.site.tier
            );
        }
        return;
    };
    let before = |scope: &str| {
        std::iter::once(&last.site)
            .chain(&last.groups)
            .find(|g| g.group == scope)
            .map_or(0, |g| g.tier)
    };
    for g in std::iter::once(&view.site).chain(&view.groups) {
        let from = before(&g.group);
        if from == g.tier {
            continue;
        }
        let scope = if g.group.is_empty() {
            "the site"
        } else {
            g.group.as_str()
        };
        warn!(
            scope = g.group,
            from,
            to = g.tier,
            percent = g.percent,
            inside = g.inside,
            entries = g.entries,
            "capacity tier of {scope}: {from}% → {}% ({}% of capacity, {} inside, {} entries today)",
            g.tier,
            g.percent,
            g.inside,
            g.entries
        );
        let at_ms = jiff::Timestamp::now().as_millisecond();
        let event = OutboxEvent::CapacityTier {
            scope: g.group.clone(),
            from,
            to: g.tier,
            percent: g.percent,
            entries: g.entries,
            inside: g.inside,
            at_ms,
        };
        let nonce = nonces.next("occupancy");
        if let Err(e) = db.write(move |s| s.queue(&nonce, &event, at_ms)).await {
            error!("capacity tier not queued for the central system: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hal::gate::Direction;

    fn caps() -> Capacities {
        Capacities {
            daily: Some(1000),
            instant: Some(100),
            groups: [("east".to_owned(), (None, Some(10)))].into(),
            tiers: vec![80, 90, 95, 100],
            stop_sales_at: 90,
            when_full: WhenFull {
                admit_reentry: true,
            },
            day: OperatingDay::default(),
            check_out_at_day_end: true,
            offline_margin: 10,
        }
    }

    #[test]
    fn an_isolated_device_holds_the_capacities_lower_by_its_margin() {
        let alone = caps().isolated();
        assert_eq!((alone.daily, alone.instant), (Some(900), Some(90)));
        assert_eq!(alone.groups["east"], (None, Some(9)));
        let v = alone.view(&[("west".into(), 90, 0)], &BTreeMap::new(), String::new());
        assert!(v.site.full, "90 inside of 100, held at 90");
        let tiny = Capacities {
            instant: Some(1),
            ..caps()
        };
        assert_eq!(tiny.isolated().instant, Some(1), "never below one");
    }

    #[test]
    fn counts_add_up_over_groups_and_tiers_follow_the_fuller_capacity() {
        let c = caps();
        let v = c.view(
            &[("east".into(), 9, 1), ("west".into(), 80, 5)],
            &BTreeMap::new(),
            "2026-12-02T04:00".into(),
        );
        assert_eq!((v.site.entries, v.site.exits, v.site.inside), (89, 6, 83));
        // 83 of 100 inside is the fuller: 83 %, tier 80; sales go on.
        assert_eq!((v.site.percent, v.site.tier), (83, 80));
        assert!(!v.sales_stopped && !v.site.full);
        let east = &v.groups[0];
        assert_eq!(
            (east.group.as_str(), east.inside, east.percent, east.tier),
            ("east", 8, 80, 80)
        );
        assert_eq!(v.notice_en, "The park is busy: please plan your visit");
    }

    #[test]
    fn at_the_instantaneous_capacity_the_scope_is_full_and_sales_stop_at_their_tier() {
        let c = caps();
        let v = c.view(
            &[("east".into(), 10, 0), ("west".into(), 85, 0)],
            &BTreeMap::new(),
            String::new(),
        );
        assert!(v.groups[0].full, "east holds its 10");
        assert!(!v.site.full, "the site holds 95 of 100");
        assert!(v.sales_stopped, "95 % ≥ 90 %");
        assert!(v.notice_zh.contains("已满"));
        let v = c.view(&[("west".into(), 100, 0)], &BTreeMap::new(), String::new());
        assert!(v.site.full && v.site.tier == 100);
    }

    #[test]
    fn a_lane_shows_its_own_group_full_not_another_one_and_not_once_overridden() {
        let c = caps();
        let mut v = c.view(
            &[("east".into(), 10, 0), ("west".into(), 70, 0)],
            &BTreeMap::new(),
            String::new(),
        );
        assert_eq!(
            TierNotice::en(lane_notice(&v, "east")),
            "The park is full: please wait a moment"
        );
        assert_eq!(
            TierNotice::en(lane_notice(&v, "west")),
            "The park is busy: please plan your visit",
            "80 % of the site, east's being full is not west's"
        );
        v.groups[0].override_reason = Some("school group".into());
        set_notice(&mut v);
        assert_eq!(
            TierNotice::en(lane_notice(&v, "east")),
            "The park is busy: please plan your visit"
        );
        assert!(!v.notice_en.contains("full"), "{}", v.notice_en);
    }

    #[test]
    fn more_exits_than_entries_clamp_at_zero_and_are_flagged() {
        let v = caps().view(&[("east".into(), 2, 5)], &BTreeMap::new(), String::new());
        assert_eq!(v.site.inside, 0);
        assert!(v.site.clamped && v.groups[0].clamped);
        assert_eq!(v.site.tier, 0);
        assert_eq!(v.notice_en, "");
    }

    #[test]
    fn without_capacities_nothing_is_full_and_no_tier_is_reached() {
        let c = Capacities {
            daily: None,
            instant: None,
            groups: BTreeMap::new(),
            ..caps()
        };
        let v = c.view(
            &[("east".into(), 10_000, 0)],
            &BTreeMap::new(),
            String::new(),
        );
        assert_eq!((v.site.percent, v.site.tier, v.site.full), (0, 0, false));
        assert!(!v.sales_stopped);
    }

    #[test]
    fn at_the_end_of_the_operating_day_visitors_are_checked_out_or_carried_over() {
        use crate::store::passages::Passage;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        // 2026-01-05 (a Monday) 20:00, and the next morning's 03:59 and 04:00.
        let evening: LocalMinute = 9501 * 1440 + 20 * 60;
        let (before, after) = (evening + 7 * 60 + 59, evening + 8 * 60);
        for (i, direction) in [
            Direction::Entry,
            Direction::Entry,
            Direction::Entry,
            Direction::Exit,
        ]
        .into_iter()
        .enumerate()
        {
            store
                .commit_passage(&Passage {
                    nonce: format!("a/l/{i}"),
                    ticket_id: i as u64 + 1,
                    lane: "l".into(),
                    lane_group: "east".into(),
                    direction,
                    persons: 1,
                    at_ms: i as i64,
                    local_minute: evening,
                    entries_allowed: 0,
                    group_size: 1,
                    seq: 0,
                })
                .unwrap();
        }
        let c = caps();
        let night = c.count(&store, before, false).unwrap();
        assert_eq!((night.site.entries, night.site.inside), (3, 2));
        assert_eq!(night.day_start, "2026-01-05T04:00");
        let morning = c.count(&store, after, false).unwrap();
        assert_eq!((morning.site.entries, morning.site.inside), (0, 0));
        assert_eq!(morning.day_start, "2026-01-06T04:00");
        let hotel = Capacities {
            check_out_at_day_end: false,
            ..caps()
        };
        let morning = hotel.count(&store, after, false).unwrap();
        assert_eq!((morning.site.entries, morning.site.inside), (0, 2));
        assert_eq!(morning.groups[0].inside, 2);
    }

    #[test]
    fn the_catalog_fills_in_capacities_gated_toml_leaves_unset_and_an_unreadable_one_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("gated.db")).unwrap();
        let unset = Capacities {
            daily: None,
            instant: None,
            groups: BTreeMap::new(),
            ..caps()
        };
        let now: LocalMinute = 9501 * 1440 + 12 * 60;
        let v = unset.count(&store, now, false).unwrap();
        assert_eq!(v.site.instant_capacity, None, "no catalog yet: no capacity");
        let cap = |daily, instant| crate::central::api::Capacity {
            daily_capacity: daily,
            instant_capacity: instant,
        };
        let catalog = CatalogCapacities {
            site: cap(Some(5000), Some(400)),
            groups: [
                ("east".to_owned(), cap(Some(50), Some(20))),
                ("west".to_owned(), cap(None, Some(30))),
            ]
            .into(),
        };
        store
            .put_setting(CATALOG_CAPACITIES, &catalog.to_json())
            .unwrap();
        let v = unset.count(&store, now, false).unwrap();
        assert_eq!(
            (v.site.daily_capacity, v.site.instant_capacity),
            (Some(5000), Some(400))
        );
        let west = v.groups.iter().find(|g| g.group == "west").unwrap();
        assert_eq!(west.instant_capacity, Some(30));
        // gated.toml's values win, each on its own: east keeps the catalog's
        // daily capacity and gated.toml's instantaneous one.
        let v = caps().count(&store, now, false).unwrap();
        assert_eq!(
            (v.site.daily_capacity, v.site.instant_capacity),
            (Some(1000), Some(100))
        );
        let east = v.groups.iter().find(|g| g.group == "east").unwrap();
        assert_eq!(
            (east.daily_capacity, east.instant_capacity),
            (Some(50), Some(10))
        );
        // Isolated, the catalog's capacities are lowered too.
        let v = unset.count(&store, now, true).unwrap();
        assert_eq!(v.site.instant_capacity, Some(360));
        // Unreadable: no figures rather than no capacity.
        store.put_setting(CATALOG_CAPACITIES, b"{not json").unwrap();
        let e = unset.count(&store, now, false).unwrap_err().to_string();
        assert!(e.contains("catalog.capacities"), "{e}");
    }

    #[test]
    fn a_recount_reads_only_what_is_new_and_adds_up_to_a_count_afresh() {
        use crate::store::passages::Passage;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
        let noon: LocalMinute = 9501 * 1440 + 12 * 60;
        let mut n = 0;
        let mut pass = |store: &mut Store, group: &str, direction, minute| {
            n += 1;
            store
                .commit_passage(&Passage {
                    nonce: format!("peer/l/{n}"),
                    ticket_id: n,
                    lane: "l".into(),
                    lane_group: group.into(),
                    direction,
                    persons: 1,
                    at_ms: n as i64,
                    local_minute: minute,
                    entries_allowed: 0,
                    group_size: 1,
                    seq: 0,
                })
                .unwrap();
        };
        pass(&mut store, "east", Direction::Entry, noon);
        pass(&mut store, "west", Direction::Entry, noon);
        let c = caps();
        let mut tally = Tally::default();
        let first = c.recount(&mut tally, &store, noon, false).unwrap();
        assert_eq!(first.site.entries, 2);
        // New rows: today's, one of yesterday's arriving late (not today's),
        // and a free exit.
        pass(&mut store, "east", Direction::Exit, noon + 1);
        pass(&mut store, "east", Direction::Entry, noon - 1440);
        store
            .commit_free_passage(
                "me/x/1",
                &crate::store::passages::FreePassage {
                    lane: "x".into(),
                    lane_group: "west".into(),
                    direction: Direction::Exit,
                    persons: 2,
                    at_ms: 99,
                    local_minute: noon + 2,
                    seq: 0,
                },
            )
            .unwrap();
        let running = c.recount(&mut tally, &store, noon + 3, false).unwrap();
        let fresh = c.count(&store, noon + 3, false).unwrap();
        assert_eq!(running, fresh);
        assert_eq!((running.site.entries, running.site.exits), (2, 3));
        // The next day starts from nothing.
        let tomorrow = c.recount(&mut tally, &store, noon + 1440, false).unwrap();
        assert_eq!((tomorrow.site.entries, tomorrow.site.exits), (0, 0));
    }
}

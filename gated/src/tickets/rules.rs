//! Entry rules: does this ticket admit its holder here, now? Pure code over
//! plain data (products come from the central catalog as data, not scripts),
//! so a decision costs a few comparisons and no allocation.

use super::token::LocalMinute;

pub const MINUTES_PER_DAY: u32 = 1440;

/// The day number of a local minute (days since 2000-01-01).
pub fn local_day(t: LocalMinute) -> u32 {
    t / MINUTES_PER_DAY
}

/// The scenic area's operating day: it begins `start` minutes after local
/// midnight (04:00 by default), so the visitors of a night show count on
/// the evening's day. Entries today, daily limits and occupancy count in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatingDay {
    pub start: u16,
}

impl Default for OperatingDay {
    fn default() -> Self {
        OperatingDay { start: 4 * 60 }
    }
}

impl OperatingDay {
    /// The local minutes of the operating day `t` falls in.
    pub fn around(self, t: LocalMinute) -> std::ops::Range<LocalMinute> {
        let start = u32::from(self.start);
        let begin = t.saturating_sub(start) / MINUTES_PER_DAY * MINUTES_PER_DAY + start;
        begin..begin + MINUTES_PER_DAY
    }
}

/// 0 = Monday … 6 = Sunday (2000-01-01 was a Saturday).
pub fn weekday(t: LocalMinute) -> u8 {
    ((local_day(t) + 5) % 7) as u8
}

/// A product's entry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: u32,
    /// Lane groups it admits to; empty = every group.
    pub lane_groups: Vec<String>,
    /// Entries allowed per ticket; 0 = unlimited within the validity window.
    pub entries_allowed: u16,
    /// Entries per local day; 0 = no daily limit (staff cards, annual passes).
    pub per_day_limit: u16,
    /// Anti-passback: after an entry, the next needs an exit first.
    pub reentry_after_exit: bool,
    /// After an entry, the next needs this many minutes (0 = no wait).
    pub reentry_minutes: u16,
    /// Bit 0 = Monday … bit 6 = Sunday.
    pub weekdays: u8,
    /// Minutes of the local day, `slot_end` exclusive.
    pub slot_start: u16,
    pub slot_end: u16,
}

impl Product {
    /// Every day, all day, one entry, every lane group.
    pub fn single_entry(id: u32) -> Self {
        Product {
            id,
            lane_groups: Vec::new(),
            entries_allowed: 1,
            per_day_limit: 0,
            reentry_after_exit: false,
            reentry_minutes: 0,
            weekdays: 0x7F,
            slot_start: 0,
            slot_end: MINUTES_PER_DAY as u16,
        }
    }
}

/// A ticket as the rules see it (from a token or from the ticket table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub id: u64,
    pub product_id: u32,
    pub valid_from: LocalMinute,
    pub valid_until: LocalMinute,
    /// Overrides the product's entries when set (0 = unlimited).
    pub entries_allowed: Option<u16>,
    pub group_size: u16,
}

/// What this device has recorded for a ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Entry passages (a group's passages count once per person).
    pub entries: u32,
    pub entries_today: u32,
    pub last_entry: Option<LocalMinute>,
    /// An exit is recorded at or after the last entry (by the devices'
    /// clocks in milliseconds: minutes cannot order an entry, an exit and
    /// an entry again inside one minute).
    pub exited: bool,
}

/// Why a ticket is refused: a code for machines, a short line for the lane
/// display in Chinese and English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NotATicket,
    Forged,
    UnknownKey,
    UnknownTicket,
    Revoked,
    Blocked,
    NotYetValid,
    Expired,
    WrongLaneGroup,
    WrongDay,
    OutsideTimeSlot,
    AlreadyUsed,
    DailyLimit,
    ReentryTooSoon,
    ExitFirst,
    InUse,
    /// The lane was locked by an engineer.
    LaneClosed,
    /// Peak mode: the lane admits entries only (its exit side is closed).
    EntryOnly,
    /// Something the decision needs could not be read (the database):
    /// refused, never admitted.
    CannotCheck,
    /// The lane group (or the site) holds as many visitors as it may at once.
    CapacityFull,
}

impl Reason {
    /// Every reason, for the tables that must cover them all.
    pub const ALL: [Reason; 20] = [
        Reason::NotATicket,
        Reason::Forged,
        Reason::UnknownKey,
        Reason::UnknownTicket,
        Reason::Revoked,
        Reason::Blocked,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::WrongLaneGroup,
        Reason::WrongDay,
        Reason::OutsideTimeSlot,
        Reason::AlreadyUsed,
        Reason::DailyLimit,
        Reason::ReentryTooSoon,
        Reason::ExitFirst,
        Reason::InUse,
        Reason::LaneClosed,
        Reason::EntryOnly,
        Reason::CannotCheck,
        Reason::CapacityFull,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::NotATicket => "not_a_ticket",
            Reason::Forged => "forged",
            Reason::UnknownKey => "unknown_key",
            Reason::UnknownTicket => "unknown_ticket",
            Reason::Revoked => "revoked",
            Reason::Blocked => "blocked",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::WrongLaneGroup => "wrong_lane_group",
            Reason::WrongDay => "wrong_day",
            Reason::OutsideTimeSlot => "outside_time_slot",
            Reason::AlreadyUsed => "already_used",
            Reason::DailyLimit => "daily_limit",
            Reason::ReentryTooSoon => "reentry_too_soon",
            Reason::ExitFirst => "exit_first",
            Reason::InUse => "in_use",
            Reason::LaneClosed => "lane_closed",
            Reason::EntryOnly => "entry_only",
            Reason::CannotCheck => "cannot_check",
            Reason::CapacityFull => "capacity_full",
        }
    }

    /// For the lane display: (中文, English).
    pub fn message(self) -> (&'static str, &'static str) {
        match self {
            Reason::NotATicket => ("无法识别的票码", "Not a ticket code"),
            Reason::Forged => (
                "票据无效，请到售票处",
                "Invalid ticket: please see the ticket office",
            ),
            Reason::UnknownKey => (
                "票据无法验证，请到售票处",
                "Ticket cannot be verified: please see the ticket office",
            ),
            Reason::UnknownTicket => ("未找到该票", "Ticket not found"),
            Reason::Revoked => ("该票已退票或作废", "Ticket refunded or cancelled"),
            Reason::Blocked => (
                "该票已冻结，请到售票处",
                "Ticket blocked: please see the ticket office",
            ),
            Reason::NotYetValid => ("票尚未到使用时间", "Ticket not valid yet"),
            Reason::Expired => ("票已过期", "Ticket expired"),
            Reason::WrongLaneGroup => ("请走对应入口", "Not valid at this entrance"),
            Reason::WrongDay => ("该票今日不可用", "Ticket not valid today"),
            Reason::OutsideTimeSlot => ("不在预约入园时段", "Outside your entry time slot"),
            Reason::AlreadyUsed => ("票已使用", "Ticket already used"),
            Reason::DailyLimit => ("今日入园次数已满", "Daily entry limit reached"),
            Reason::ReentryTooSoon => ("暂不可再次入园", "Re-entry not allowed yet"),
            Reason::ExitFirst => ("请先出园再入园", "Please exit before entering again"),
            Reason::InUse => ("该票正在其他通道使用", "Ticket in use at another lane"),
            Reason::LaneClosed => (
                "本通道暂停使用，请走其他通道",
                "Lane closed: please use another lane",
            ),
            Reason::EntryOnly => (
                "高峰时段本通道只进不出，请走出口",
                "Entry only at peak time: please use the exit",
            ),
            Reason::CannotCheck => (
                "暂时无法验票，请找工作人员",
                "Ticket cannot be checked now: please ask staff",
            ),
            Reason::CapacityFull => (
                "景区游客已满，请稍候入园",
                "The park is full: please wait a moment",
            ),
        }
    }
}

/// Decides an entry at `now` through a lane of `lane_group`. Ok(persons) is
/// how many the gate may let through.
/// The entries a ticket allows (0 = unlimited): its own, else its product's.
pub fn entries_allowed(ticket: &Ticket, product: &Product) -> u32 {
    ticket
        .entries_allowed
        .unwrap_or(product.entries_allowed)
        .into()
}

pub fn decide_entry(
    product: &Product,
    ticket: &Ticket,
    usage: &Usage,
    now: LocalMinute,
    lane_group: &str,
) -> Result<u16, Reason> {
    if now < ticket.valid_from {
        return Err(Reason::NotYetValid);
    }
    if now >= ticket.valid_until {
        return Err(Reason::Expired);
    }
    if !product.lane_groups.is_empty() && !product.lane_groups.iter().any(|g| g == lane_group) {
        return Err(Reason::WrongLaneGroup);
    }
    if product.weekdays & (1 << weekday(now)) == 0 {
        return Err(Reason::WrongDay);
    }
    let minute_of_day = (now % MINUTES_PER_DAY) as u16;
    if minute_of_day < product.slot_start || minute_of_day >= product.slot_end {
        return Err(Reason::OutsideTimeSlot);
    }
    let persons = ticket.group_size.max(1);
    let allowed = entries_allowed(ticket, product);
    // A group ticket's entry is one use by `persons` people.
    let uses = usage.entries / persons as u32;
    if allowed != 0 && uses >= allowed {
        return Err(Reason::AlreadyUsed);
    }
    if product.per_day_limit != 0
        && usage.entries_today / persons as u32 >= product.per_day_limit as u32
    {
        return Err(Reason::DailyLimit);
    }
    if let Some(last) = usage.last_entry {
        if product.reentry_after_exit && !usage.exited {
            return Err(Reason::ExitFirst);
        }
        if now < last + product.reentry_minutes as u32 {
            return Err(Reason::ReentryTooSoon);
        }
    }
    Ok(persons)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-05 was a Monday: day 9501 since 2000-01-01.
    const MONDAY_9AM: LocalMinute = 9501 * MINUTES_PER_DAY + 9 * 60;

    fn ticket(product_id: u32) -> Ticket {
        Ticket {
            id: 1,
            product_id,
            valid_from: MONDAY_9AM - 60,
            valid_until: MONDAY_9AM + 8 * 60,
            entries_allowed: None,
            group_size: 1,
        }
    }

    #[test]
    fn calendar_helpers() {
        assert_eq!(weekday(0), 5, "2000-01-01 was a Saturday");
        assert_eq!(weekday(MONDAY_9AM), 0);
        assert_eq!(local_day(MONDAY_9AM), 9501);
    }

    #[test]
    fn single_entry_ticket_admits_once() {
        let p = Product::single_entry(1);
        let t = ticket(1);
        assert_eq!(
            decide_entry(&p, &t, &Usage::default(), MONDAY_9AM, "north"),
            Ok(1)
        );
        let used = Usage {
            entries: 1,
            entries_today: 1,
            last_entry: Some(MONDAY_9AM),
            exited: false,
        };
        assert_eq!(
            decide_entry(&p, &t, &used, MONDAY_9AM + 5, "north"),
            Err(Reason::AlreadyUsed)
        );
    }

    #[test]
    fn validity_window_is_half_open() {
        let p = Product::single_entry(1);
        let t = ticket(1);
        let u = Usage::default();
        assert_eq!(
            decide_entry(&p, &t, &u, t.valid_from - 1, "g"),
            Err(Reason::NotYetValid)
        );
        assert_eq!(decide_entry(&p, &t, &u, t.valid_from, "g"), Ok(1));
        assert_eq!(
            decide_entry(&p, &t, &u, t.valid_until, "g"),
            Err(Reason::Expired)
        );
    }

    #[test]
    fn lane_groups_weekdays_and_slots() {
        let p = Product {
            lane_groups: vec!["east".into()],
            weekdays: 0b0011111, // Monday to Friday
            slot_start: 8 * 60,
            slot_end: 10 * 60,
            ..Product::single_entry(1)
        };
        let t = Ticket {
            valid_until: MONDAY_9AM + 7 * MINUTES_PER_DAY,
            ..ticket(1)
        };
        let u = Usage::default();
        assert_eq!(
            decide_entry(&p, &t, &u, MONDAY_9AM, "west"),
            Err(Reason::WrongLaneGroup)
        );
        assert_eq!(decide_entry(&p, &t, &u, MONDAY_9AM, "east"), Ok(1));
        assert_eq!(
            decide_entry(&p, &t, &u, MONDAY_9AM + 61, "east"),
            Err(Reason::OutsideTimeSlot)
        );
        assert_eq!(
            decide_entry(&p, &t, &u, MONDAY_9AM + 5 * MINUTES_PER_DAY, "east"),
            Err(Reason::WrongDay)
        );
    }

    #[test]
    fn the_operating_day_begins_at_its_start_not_at_midnight() {
        let day = OperatingDay { start: 4 * 60 };
        let monday_4am = MONDAY_9AM - 5 * 60;
        assert_eq!(
            day.around(MONDAY_9AM),
            monday_4am..monday_4am + MINUTES_PER_DAY
        );
        // 01:00 on Tuesday is still Monday's operating day; 04:00 is Tuesday's.
        let tuesday_1am = monday_4am + 21 * 60;
        assert_eq!(day.around(tuesday_1am).start, monday_4am);
        assert_eq!(
            day.around(tuesday_1am + 3 * 60).start,
            monday_4am + MINUTES_PER_DAY
        );
        let midnight = OperatingDay { start: 0 };
        assert_eq!(midnight.around(MONDAY_9AM).start, MONDAY_9AM - 9 * 60);
    }

    #[test]
    fn annual_pass_per_day_limit_and_anti_passback() {
        let p = Product {
            entries_allowed: 0,
            per_day_limit: 2,
            reentry_after_exit: true,
            ..Product::single_entry(2)
        };
        let t = ticket(2);
        let inside = Usage {
            entries: 5,
            entries_today: 1,
            last_entry: Some(MONDAY_9AM),
            exited: false,
        };
        assert_eq!(
            decide_entry(&p, &t, &inside, MONDAY_9AM + 30, "g"),
            Err(Reason::ExitFirst)
        );
        let out = Usage {
            exited: true,
            ..inside
        };
        assert_eq!(decide_entry(&p, &t, &out, MONDAY_9AM + 30, "g"), Ok(1));
        let twice = Usage {
            entries_today: 2,
            ..out
        };
        assert_eq!(
            decide_entry(&p, &t, &twice, MONDAY_9AM + 30, "g"),
            Err(Reason::DailyLimit)
        );
    }

    #[test]
    fn reentry_waits_its_minutes() {
        let p = Product {
            entries_allowed: 3,
            reentry_minutes: 60,
            ..Product::single_entry(3)
        };
        let t = ticket(3);
        let u = Usage {
            entries: 1,
            entries_today: 1,
            last_entry: Some(MONDAY_9AM),
            exited: false,
        };
        assert_eq!(
            decide_entry(&p, &t, &u, MONDAY_9AM + 59, "g"),
            Err(Reason::ReentryTooSoon)
        );
        assert_eq!(decide_entry(&p, &t, &u, MONDAY_9AM + 60, "g"), Ok(1));
    }

    #[test]
    fn a_group_ticket_admits_its_persons_once() {
        let p = Product::single_entry(4);
        let t = Ticket {
            group_size: 3,
            ..ticket(4)
        };
        assert_eq!(
            decide_entry(&p, &t, &Usage::default(), MONDAY_9AM, "g"),
            Ok(3)
        );
        let after = Usage {
            entries: 3,
            entries_today: 3,
            last_entry: Some(MONDAY_9AM),
            exited: false,
        };
        assert_eq!(
            decide_entry(&p, &t, &after, MONDAY_9AM + 1, "g"),
            Err(Reason::AlreadyUsed)
        );
    }

    #[test]
    fn every_reason_has_both_languages() {
        // A new variant fails to compile here until it is in `Reason::ALL`.
        let position = |r: Reason| match r {
            Reason::NotATicket => 0,
            Reason::Forged => 1,
            Reason::UnknownKey => 2,
            Reason::UnknownTicket => 3,
            Reason::Revoked => 4,
            Reason::Blocked => 5,
            Reason::NotYetValid => 6,
            Reason::Expired => 7,
            Reason::WrongLaneGroup => 8,
            Reason::WrongDay => 9,
            Reason::OutsideTimeSlot => 10,
            Reason::AlreadyUsed => 11,
            Reason::DailyLimit => 12,
            Reason::ReentryTooSoon => 13,
            Reason::ExitFirst => 14,
            Reason::InUse => 15,
            Reason::LaneClosed => 16,
            Reason::EntryOnly => 17,
            Reason::CannotCheck => 18,
            Reason::CapacityFull => 19,
        };
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(position(r), i);
            let (zh, en) = r.message();
            assert!(!zh.is_empty() && !en.is_empty() && !r.code().is_empty());
            assert!(!zh.is_ascii(), "{r:?}: Chinese text expected");
        }
    }
}

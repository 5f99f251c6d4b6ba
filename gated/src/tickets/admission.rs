//! The whole entry policy in one place, as pure functions: what a lane does
//! with a presentation ([`route`]), which ticket a scanned token stands for
//! ([`token_ticket`], with the pinned keys and their validity), and whether
//! one ticket record admits its holder now ([`decide`]: revocation, product,
//! reservation, usage, peak relaxation, the product's rules).
//!
//! Every input that could not be read arrives as [`Unreadable`] and refuses
//! with [`Reason::CannotCheck`]: nothing missing ever reads as "fine".
//! `lane` gathers the inputs and runs the transaction around the decision.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use hal::gate::{Direction, GateMode};

use super::rules::{self, Product, Reason, Ticket, Usage};
use super::token::{self, LocalMinute, TokenError};

/// A read the decision needed failed (the database): refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// Re-entry rules peak mode lifts (`[peak]` in gated.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relax {
    /// Anti-passback: entering again without an exit first.
    pub exit_first: bool,
    /// The minimum wait between a ticket's entries.
    pub reentry_wait: bool,
}

/// A central signing key pinned at provisioning, with its validity in the
/// scenic area's civil time (rotation: an old key stops verifying).
/// What a lane group at its instantaneous capacity still lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhenFull {
    /// A ticket already admitted today comes back in (it was counted out).
    pub admit_reentry: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct PinnedKey {
    pub key: VerifyingKey,
    pub valid_from: LocalMinute,
    pub valid_until: Option<LocalMinute>,
}

impl PinnedKey {
    /// The key's state at `now` (docs/ticket-token.md §7).
    fn at(&self, now: LocalMinute) -> token::KeyAt {
        token::KeyAt::of(self.key, Some(self.valid_from), self.valid_until, now)
    }
}

/// How a lane is set up and what it is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneNow {
    pub mode: GateMode,
    /// The lane only lets people out (`direction = "exit"`).
    pub exit_lane: bool,
    /// Its group is in peak mode, with what that relaxes.
    pub peak: Option<Relax>,
}

/// What a lane does with a presentation, before any ticket is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Refuse(Reason),
    /// Open for everyone: no ticket is used; the gate counts.
    Free,
    /// Decide an entry.
    Enter,
    /// Let a known ticket out (it re-arms anti-passback).
    Leave,
}

/// `exit_side`: the medium was read by the lane's exit-side scanner.
pub fn route(lane: LaneNow, exit_side: bool) -> Route {
    match lane.mode {
        GateMode::Locked => Route::Refuse(Reason::LaneClosed),
        GateMode::Free => Route::Free,
        // Peak: every lane of the group serves the crowd coming in. A
        // two-way lane's exit side is closed; an exit lane takes entries.
        GateMode::Normal if lane.peak.is_some() && exit_side => Route::Refuse(Reason::EntryOnly),
        GateMode::Normal if lane.peak.is_some() => Route::Enter,
        GateMode::Normal if exit_side || lane.exit_lane => Route::Leave,
        GateMode::Normal => Route::Enter,
    }
}

/// The ticket a signed token stands for, checked against the keys pinned
/// and valid at `now`.
pub fn token_ticket(
    text: &str,
    keys: &HashMap<u16, PinnedKey>,
    now: LocalMinute,
) -> Result<Ticket, Reason> {
    let key = |id| keys.get(&id).map_or(token::KeyAt::Unknown, |k| k.at(now));
    let p = token::verify_at(text, key).map_err(|e| {
        tracing::info!(reason = e.reason(), "token refused: {e}");
        match e {
            TokenError::UnknownKey(_)
            | TokenError::KeyNotYetValid(_)
            | TokenError::KeyRetired(_) => Reason::UnknownKey,
            TokenError::BadSignature => Reason::Forged,
            _ => Reason::NotATicket,
        }
    })?;
    Ok(Ticket {
        id: p.ticket_id,
        product_id: p.product_id,
        valid_from: p.valid_from,
        valid_until: p.valid_until,
        entries_allowed: Some(p.entries),
        group_size: p.persons(),
    })
}

/// The tickets a serial, card or ID card was looked up as.
pub fn found(lookup: Result<Vec<Ticket>, Unreadable>) -> Result<Vec<Ticket>, Reason> {
    match lookup {
        Err(Unreadable) => Err(Reason::CannotCheck),
        Ok(t) if t.is_empty() => Err(Reason::UnknownTicket),
        Ok(t) => Ok(t),
    }
}

/// Whether the central system withdrew a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Clear,
    Revoked,
    Blocked,
}

/// Everything read about one ticket for one decision.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ticket: &'a Ticket,
    pub listing: Result<Listing, Unreadable>,
    /// `None`: the catalog has no such product.
    pub product: Option<&'a Product>,
    /// Another lane of this device holds the ticket right now (its
    /// reservation failed); then `usage` was not read.
    pub in_use: bool,
    /// What this device recorded for the ticket.
    pub usage: Result<Usage, Unreadable>,
    /// The lane group is at its instantaneous capacity.
    pub full: Option<WhenFull>,
}

/// Whether `record` lets its holder through in `direction` at a lane of
/// `group`: Ok(persons) is how many the gate may let through.
pub fn decide(
    record: &Record<'_>,
    direction: Direction,
    group: &str,
    peak: Option<Relax>,
    now: LocalMinute,
) -> Result<u16, Reason> {
    // Whoever is inside may leave, whatever became of the ticket.
    if direction == Direction::Exit {
        return if record.in_use {
            Err(Reason::InUse)
        } else {
            Ok(1)
        };
    }
    match record.listing {
        Err(Unreadable) => return Err(Reason::CannotCheck),
        Ok(Listing::Revoked) => return Err(Reason::Revoked),
        Ok(Listing::Blocked) => return Err(Reason::Blocked),
        Ok(Listing::Clear) => {}
    }
    let Some(product) = record.product else {
        return Err(Reason::UnknownTicket);
    };
    if record.in_use {
        return Err(Reason::InUse);
    }
    let usage = record.usage.map_err(|Unreadable| Reason::CannotCheck)?;
    let product = match peak {
        None => std::borrow::Cow::Borrowed(product),
        Some(r) => {
            let mut p = product.clone();
            p.reentry_after_exit &= !r.exit_first;
            if r.reentry_wait {
                p.reentry_minutes = 0;
            }
            std::borrow::Cow::Owned(p)
        }
    };
    let persons = rules::decide_entry(&product, record.ticket, &usage, now, group)?;
    if let Some(w) = record.full
        && !(w.admit_reentry && usage.entries_today > 0)
    {
        return Err(Reason::CapacityFull);
    }
    Ok(persons)
}

/// The answer for a medium with several tickets (an ID card): the first
/// admitted, else the last refusal. An unreadable input stops at once:
/// a later ticket must not hide it.
pub fn first_admitted(
    decisions: impl IntoIterator<Item = Result<u16, Reason>>,
) -> Result<(usize, u16), Reason> {
    let mut last = Reason::UnknownTicket;
    for (i, d) in decisions.into_iter().enumerate() {
        match d {
            Ok(persons) => return Ok((i, persons)),
            Err(r @ (Reason::CannotCheck | Reason::InUse)) => return Err(r),
            Err(r) => last = r,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::rules::MINUTES_PER_DAY;
    use ed25519_dalek::SigningKey;

    // 2026-01-05 was a Monday: day 9501 since 2000-01-01.
    const NOW: LocalMinute = 9501 * MINUTES_PER_DAY + 9 * 60;

    fn ticket() -> Ticket {
        Ticket {
            id: 7,
            product_id: 1,
            valid_from: NOW - 60,
            valid_until: NOW + 600,
            entries_allowed: None,
            group_size: 1,
        }
    }

    fn product() -> Product {
        Product {
            lane_groups: vec!["north".into()],
            ..Product::single_entry(1)
        }
    }

    fn entered(at: LocalMinute) -> Usage {
        Usage {
            entries: 1,
            entries_today: 1,
            last_entry: Some(at),
            exited: false,
        }
    }

    /// One row: what differs from an admissible record, and the answer.
    struct Case {
        name: &'static str,
        ticket: Ticket,
        product: Option<Product>,
        listing: Result<Listing, Unreadable>,
        in_use: bool,
        usage: Result<Usage, Unreadable>,
        direction: Direction,
        group: &'static str,
        peak: Option<Relax>,
        full: Option<WhenFull>,
        want: Result<u16, Reason>,
    }

    fn case(name: &'static str, want: Result<u16, Reason>) -> Case {
        Case {
            name,
            ticket: ticket(),
            product: Some(product()),
            listing: Ok(Listing::Clear),
            in_use: false,
            usage: Ok(Usage::default()),
            direction: Direction::Entry,
            group: "north",
            peak: None,
            full: None,
            want,
        }
    }

    const RELAX_ALL: Option<Relax> = Some(Relax {
        exit_first: true,
        reentry_wait: true,
    });

    #[test]
    fn every_reason_of_a_ticket_record() {
        let passback = Product {
            reentry_after_exit: true,
            entries_allowed: 0,
            ..product()
        };
        let wait = Product {
            reentry_minutes: 30,
            entries_allowed: 0,
            ..product()
        };
        let full = |admit_reentry| Some(WhenFull { admit_reentry });
        let reentry = Product {
            entries_allowed: 0,
            ..product()
        };
        let cases = vec![
            case("admissible", Ok(1)),
            Case {
                full: full(true),
                ..case(
                    "a first entry when the group is full",
                    Err(Reason::CapacityFull),
                )
            },
            Case {
                full: full(true),
                product: Some(reentry.clone()),
                usage: Ok(Usage {
                    exited: true,
                    ..entered(NOW - 60)
                }),
                ..case("a re-entry today when full, re-entries admitted", Ok(1))
            },
            Case {
                full: full(false),
                product: Some(reentry.clone()),
                usage: Ok(Usage {
                    exited: true,
                    ..entered(NOW - 60)
                }),
                ..case(
                    "a re-entry today when full, re-entries refused",
                    Err(Reason::CapacityFull),
                )
            },
            Case {
                full: full(true),
                ticket: Ticket {
                    valid_until: NOW - 1,
                    ..ticket()
                },
                ..case(
                    "an expired ticket when full says expired",
                    Err(Reason::Expired),
                )
            },
            Case {
                full: full(false),
                direction: Direction::Exit,
                ..case("leaving when full", Ok(1))
            },
            Case {
                ticket: Ticket {
                    group_size: 4,
                    ..ticket()
                },
                ..case("a group of four", Ok(4))
            },
            Case {
                listing: Err(Unreadable),
                ..case("revocation list unreadable", Err(Reason::CannotCheck))
            },
            Case {
                listing: Ok(Listing::Revoked),
                ..case("revoked", Err(Reason::Revoked))
            },
            Case {
                listing: Ok(Listing::Blocked),
                ..case("blocked", Err(Reason::Blocked))
            },
            Case {
                product: None,
                ..case("product not in the catalog", Err(Reason::UnknownTicket))
            },
            Case {
                in_use: true,
                ..case("held by another lane", Err(Reason::InUse))
            },
            Case {
                usage: Err(Unreadable),
                ..case("usage unreadable", Err(Reason::CannotCheck))
            },
            Case {
                ticket: Ticket {
                    valid_from: NOW + 1,
                    ..ticket()
                },
                ..case("before its window", Err(Reason::NotYetValid))
            },
            Case {
                ticket: Ticket {
                    valid_until: NOW,
                    ..ticket()
                },
                ..case("window ended (half-open)", Err(Reason::Expired))
            },
            Case {
                group: "south",
                ..case("another lane group", Err(Reason::WrongLaneGroup))
            },
            Case {
                product: Some(Product {
                    weekdays: 0b111_1110,
                    ..product()
                }),
                ..case("not on Mondays", Err(Reason::WrongDay))
            },
            Case {
                product: Some(Product {
                    slot_start: 10 * 60,
                    slot_end: 12 * 60,
                    ..product()
                }),
                ..case("before its time slot", Err(Reason::OutsideTimeSlot))
            },
            Case {
                usage: Ok(entered(NOW - 5)),
                ..case("single entry used", Err(Reason::AlreadyUsed))
            },
            Case {
                product: Some(Product {
                    entries_allowed: 0,
                    per_day_limit: 1,
                    ..product()
                }),
                usage: Ok(entered(NOW - 5)),
                ..case("one a day", Err(Reason::DailyLimit))
            },
            Case {
                product: Some(wait.clone()),
                usage: Ok(entered(NOW - 5)),
                ..case("30 minutes between entries", Err(Reason::ReentryTooSoon))
            },
            Case {
                product: Some(wait),
                usage: Ok(entered(NOW - 5)),
                peak: RELAX_ALL,
                ..case("peak lifts the wait", Ok(1))
            },
            Case {
                product: Some(passback.clone()),
                usage: Ok(entered(NOW - 5)),
                ..case("anti-passback", Err(Reason::ExitFirst))
            },
            Case {
                product: Some(passback.clone()),
                usage: Ok(Usage {
                    exited: true,
                    ..entered(NOW - 5)
                }),
                ..case("out and in again", Ok(1))
            },
            Case {
                product: Some(passback.clone()),
                usage: Ok(entered(NOW - 5)),
                peak: Some(Relax {
                    exit_first: true,
                    reentry_wait: false,
                }),
                ..case("peak lifts anti-passback", Ok(1))
            },
            Case {
                product: Some(passback),
                usage: Ok(entered(NOW - 5)),
                peak: Some(Relax {
                    exit_first: false,
                    reentry_wait: true,
                }),
                ..case("peak that keeps anti-passback", Err(Reason::ExitFirst))
            },
            Case {
                listing: Ok(Listing::Revoked),
                usage: Err(Unreadable),
                direction: Direction::Exit,
                ..case("a revoked ticket still leaves", Ok(1))
            },
            Case {
                in_use: true,
                direction: Direction::Exit,
                ..case("leaving while held elsewhere", Err(Reason::InUse))
            },
        ];
        for c in cases {
            let record = Record {
                ticket: &c.ticket,
                listing: c.listing,
                product: c.product.as_ref(),
                in_use: c.in_use,
                usage: c.usage,
                full: c.full,
            };
            assert_eq!(
                decide(&record, c.direction, c.group, c.peak, NOW),
                c.want,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn every_route_of_a_lane() {
        use GateMode::{Free, Locked, Normal};
        let lane = |mode, exit_lane, peak| LaneNow {
            mode,
            exit_lane,
            peak,
        };
        let cases = [
            (
                lane(Locked, false, None),
                false,
                Route::Refuse(Reason::LaneClosed),
            ),
            (
                lane(Locked, false, RELAX_ALL),
                true,
                Route::Refuse(Reason::LaneClosed),
            ),
            (lane(Free, true, None), true, Route::Free),
            (lane(Normal, false, None), false, Route::Enter),
            (lane(Normal, false, None), true, Route::Leave),
            (lane(Normal, true, None), false, Route::Leave),
            (lane(Normal, true, RELAX_ALL), false, Route::Enter),
            (
                lane(Normal, false, RELAX_ALL),
                true,
                Route::Refuse(Reason::EntryOnly),
            ),
        ];
        for (lane, exit_side, want) in cases {
            assert_eq!(
                route(lane, exit_side),
                want,
                "{lane:?} exit side {exit_side}"
            );
        }
    }

    #[test]
    fn tokens_verify_only_under_a_key_valid_now() {
        let signer = SigningKey::from_bytes(&[7; 32]);
        let payload = token::Payload {
            key_id: 3,
            ticket_id: 42,
            product_id: 1,
            valid_from: NOW - 60,
            valid_until: NOW + 60,
            entries: 1,
            holder: None,
            group: Some(3),
            seed: [1; 8],
        };
        let text = token::encode(&payload, &signer);
        let pinned = |valid_from, valid_until| {
            HashMap::from([(
                3,
                PinnedKey {
                    key: signer.verifying_key(),
                    valid_from,
                    valid_until,
                },
            )])
        };
        let t = token_ticket(&text, &pinned(0, None), NOW).unwrap();
        assert_eq!((t.id, t.group_size, t.entries_allowed), (42, 3, Some(1)));
        let cases = [
            (
                pinned(NOW + 1, None),
                Reason::UnknownKey,
                "key not valid yet",
            ),
            (pinned(0, Some(NOW)), Reason::UnknownKey, "key retired"),
            (HashMap::new(), Reason::UnknownKey, "no key pinned"),
        ];
        for (keys, want, name) in cases {
            assert_eq!(token_ticket(&text, &keys, NOW), Err(want), "{name}");
        }
        let mut forged = text.clone().into_bytes();
        let i = forged.len() / 2;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(matches!(
            token_ticket(&forged, &pinned(0, None), NOW),
            Err(Reason::Forged | Reason::NotATicket)
        ));
        assert_eq!(
            token_ticket("T1:???", &pinned(0, None), NOW),
            Err(Reason::NotATicket)
        );
    }

    #[test]
    fn lookups_and_several_tickets() {
        assert_eq!(found(Err(Unreadable)), Err(Reason::CannotCheck));
        assert_eq!(found(Ok(vec![])), Err(Reason::UnknownTicket));
        assert_eq!(found(Ok(vec![ticket()])), Ok(vec![ticket()]));

        let refused = Err(Reason::AlreadyUsed);
        assert_eq!(first_admitted([refused, Ok(2)]), Ok((1, 2)));
        assert_eq!(
            first_admitted([refused, Err(Reason::Expired)]),
            Err(Reason::Expired)
        );
        assert_eq!(first_admitted([]), Err(Reason::UnknownTicket));
        // An unreadable record refuses, even when a later ticket would pass.
        assert_eq!(
            first_admitted([Err(Reason::CannotCheck), Ok(1)]),
            Err(Reason::CannotCheck)
        );
        assert_eq!(
            first_admitted([Err(Reason::InUse), Ok(1)]),
            Err(Reason::InUse)
        );
    }
}

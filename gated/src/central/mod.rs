//! The link to the central ticketing system: the API's wire types, the
//! HTTPS client, the device's identity, enrollment, and the sync that keeps
//! the store current and the outbox drained.

pub mod api;
pub mod client;
pub mod enroll;
pub mod identity;
pub mod service_code;
pub mod setup_code;
pub mod sync;

use crate::tickets::token::LocalMinute;

/// `YYYY-MM-DDTHH:MM` (scenic-area civil time) → minutes since 2000-01-01.
pub fn parse_civil(text: &str) -> Option<LocalMinute> {
    let dt: jiff::civil::DateTime = text.parse().ok()?;
    let epoch = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    let minutes = dt.duration_since(epoch).as_secs() / 60;
    LocalMinute::try_from(minutes).ok()
}

/// Minutes since 2000-01-01 → `YYYY-MM-DDTHH:MM`.
pub fn format_civil(minute: LocalMinute) -> String {
    let epoch = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    let dt = epoch
        .checked_add(jiff::SignedDuration::from_mins(minute.into()))
        .unwrap_or(epoch);
    dt.strftime("%Y-%m-%dT%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_round_trip() {
        assert_eq!(parse_civil("2000-01-01T00:00"), Some(0));
        assert_eq!(parse_civil("2000-01-02T01:30"), Some(1440 + 90));
        for m in [0, 1, 59, 1439, 14_000_000] {
            assert_eq!(parse_civil(&format_civil(m)), Some(m));
        }
        assert_eq!(parse_civil("1999-12-31T23:59"), None);
        assert_eq!(parse_civil("tomorrow"), None);
    }
}

//! The clock is injected: domain code receives `now` as an argument, and the composition
//! roots decide whether that is the system clock or a pinned instant (tests, demos).

use chrono::{DateTime, Utc};

/// Source of "now" for the layers that call the domain.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock pinned to one instant: tests, and `sendtime serve --now` for reproducible demos.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Whole days elapsed from `since` to `now`, rounded down; a `since` in the future counts as 0.
pub fn whole_days(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - since).num_seconds().div_euclid(86_400).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn whole_days_rounds_down_and_clamps_future() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(whole_days(now, now), 0);
        assert_eq!(whole_days(now - Duration::seconds(86_399), now), 0);
        assert_eq!(whole_days(now - Duration::days(1), now), 1);
        assert_eq!(whole_days(now - Duration::hours(47), now), 1);
        assert_eq!(whole_days(now + Duration::days(3), now), 0);
    }
}

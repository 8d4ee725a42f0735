//! Pacing by Braze's rate-limit headers. Braze: "Every single API request sent to Braze
//! returns the following information in the response headers: `X-RateLimit-Limit` The
//! maximum number of requests that you can make in a specified interval (your rate limit).
//! `X-RateLimit-Remaining` The number of requests remaining in the current rate limit
//! window. `X-RateLimit-Reset` The time at which the current rate limit window resets in UTC
//! epoch seconds." and "if it reaches zero, you might want to pause all sending until the
//! time specified in `X-RateLimit-Reset` elapses"
//! — https://www.braze.com/docs/api/api_limits/ (the default for `/users/track`: "3,000
//! requests per three seconds").
//!
//! The gate keeps its own count of what it may still send in the window: a request takes
//! one; an answer's `Remaining`, less the requests still in flight (they may be counted
//! after it), lowers it. Once the window's reset time passes, the new window's budget is the
//! limit less the requests in flight (any of them may land in the new window). Until the
//! first answer says what the limit is, one request at a time goes out. If Braze sends no
//! headers, the documented default (3,000 per 3 s) is kept by the gate's own clock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Braze's default `/users/track` limit: "3,000 requests per three seconds"
/// (https://www.braze.com/docs/api/api_limits/); used only when answers carry no headers.
pub const DEFAULT_LIMIT: u32 = 3_000;
/// The window of [`DEFAULT_LIMIT`], seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 3;

/// How often a request waiting for answers (to learn the budget) looks again.
const POLL: Duration = Duration::from_millis(2);

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`, UTC epoch seconds.
    pub reset: u64,
}

impl RateHeaders {
    /// The three headers of `headers`, when all three are present and numbers. Braze:
    /// "HTTP headers will be returned in all lowercase characters" (lookups here ignore case).
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: u32::try_from(number("x-ratelimit-limit")?).ok()?,
            remaining: u32::try_from(number("x-ratelimit-remaining")?).ok()?,
            reset: number("x-ratelimit-reset")?,
        })
    }
}

#[derive(Debug, Default)]
struct Window {
    /// The limit, once known (from headers or the default).
    limit: Option<u32>,
    /// Requests the gate may still send in the current window.
    remaining: u32,
    /// When the current window resets, epoch seconds.
    reset: Option<u64>,
    /// The window ending at `reset` has passed and its successor's budget was granted.
    rolled: bool,
    /// Requests sent and not yet answered.
    in_flight: u32,
    /// No answer has carried headers: the gate keeps the default windows itself.
    headerless: bool,
    /// Nothing may be sent before this (a 429's `Retry-After`), epoch seconds.
    paused_until: f64,
    /// Requests the gate let through.
    sent: u64,
}

/// Shared by every request of a push; see the module documentation.
#[derive(Debug, Default)]
pub struct RateGate {
    window: Mutex<Window>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl RateGate {
    /// Waits until the current window has room for one more request and takes it; pair it
    /// with one [`RateGate::answered`].
    pub async fn acquire(&self) {
        loop {
            match self.try_take(now_secs()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Takes one request of the budget at `now`, or says how long to wait.
    fn try_take(&self, now: f64) -> Result<(), Duration> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now < w.paused_until {
            return Err(Duration::from_secs_f64(w.paused_until - now));
        }
        let Some(limit) = w.limit else {
            // The first request finds out the limit; the rest wait for its answer.
            if w.in_flight == 0 {
                w.in_flight += 1;
                w.sent += 1;
                return Ok(());
            }
            return Err(POLL);
        };
        if let Some(reset) = w.reset {
            if !w.rolled && now >= reset as f64 {
                w.rolled = true;
                w.remaining = limit.saturating_sub(w.in_flight);
                if w.headerless {
                    w.reset = Some(reset + DEFAULT_WINDOW_SECS);
                    w.rolled = false;
                }
            }
        }
        if w.rolled && w.remaining == 0 && w.in_flight == 0 {
            // The new window's answers never told its budget (headers gone): start afresh.
            w.remaining = limit;
        }
        if w.remaining > 0 {
            w.remaining -= 1;
            w.in_flight += 1;
            w.sent += 1;
            return Ok(());
        }
        match w.reset {
            Some(reset) if !w.rolled => {
                Err(Duration::from_secs_f64((reset as f64 - now).max(0.001)))
            }
            _ => Err(POLL),
        }
    }

    /// Records the answer to a request taken with [`RateGate::acquire`]: its rate headers
    /// (if any), whether it was a `429`, and a `Retry-After` (seconds) if it gave one.
    pub fn answered(
        &self,
        headers: Option<RateHeaders>,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) {
        self.answered_at(now_secs(), headers, rate_limited, retry_after);
    }

    /// Records that a request got no answer (connection error, timeout).
    pub fn unanswered(&self) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.in_flight = w.in_flight.saturating_sub(1);
    }

    fn answered_at(
        &self,
        now: f64,
        headers: Option<RateHeaders>,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.in_flight = w.in_flight.saturating_sub(1);
        let others = w.in_flight;
        match headers {
            Some(h) => {
                w.headerless = false;
                w.limit = Some(h.limit);
                let budget = h.remaining.saturating_sub(others);
                match w.reset {
                    // A newer window than the gate's: its budget, as Braze counts it.
                    Some(reset) if h.reset > reset => {
                        w.reset = Some(h.reset);
                        w.rolled = false;
                        w.remaining = budget;
                    }
                    None => {
                        w.reset = Some(h.reset);
                        w.rolled = false;
                        w.remaining = budget;
                    }
                    // The same window: Braze may have counted more than the gate did.
                    Some(reset) if h.reset == reset && !w.rolled => {
                        w.remaining = w.remaining.min(budget);
                    }
                    // An answer from a window already over: nothing to learn.
                    Some(_) => {}
                }
            }
            None if w.limit.is_none() => {
                w.headerless = true;
                w.limit = Some(DEFAULT_LIMIT);
                w.remaining = DEFAULT_LIMIT.saturating_sub(others + 1);
                w.reset = Some(now.floor() as u64 + DEFAULT_WINDOW_SECS);
            }
            None => {}
        }
        if rate_limited {
            // Braze says the window is spent, whatever the gate counted.
            if !w.rolled {
                w.remaining = 0;
            }
            if let Some(after) = retry_after {
                w.paused_until = w.paused_until.max(now + after.as_secs_f64());
            }
        }
    }

    /// Requests let through so far.
    pub fn sent(&self) -> u64 {
        self.window.lock().unwrap_or_else(|p| p.into_inner()).sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(limit: u32, remaining: u32, reset: u64) -> Option<RateHeaders> {
        Some(RateHeaders {
            limit,
            remaining,
            reset,
        })
    }

    #[test]
    fn the_first_request_goes_alone_then_the_window_budget_is_kept() {
        // GIVEN a fresh gate at t=100.2
        let gate = RateGate::default();
        let t = 100.2;
        // WHEN the first request is out, a second must wait for its answer
        assert!(gate.try_take(t).is_ok());
        assert_eq!(gate.try_take(t), Err(POLL));
        // AND the answer says 4 of 5 remain until 101
        gate.answered_at(t, headers(5, 4, 101), false, None);
        // THEN exactly 4 more go out in this window, the fifth waits until the reset
        for _ in 0..4 {
            assert!(gate.try_take(t).is_ok());
        }
        let wait = gate.try_take(t).unwrap_err();
        assert!((wait.as_secs_f64() - 0.8).abs() < 1e-6, "{wait:?}");
        // AND after the reset the new window grants the limit less the 4 still in flight
        assert!(gate.try_take(101.0).is_ok());
        assert_eq!(gate.try_take(101.0), Err(POLL));
    }

    #[test]
    fn an_answer_counting_more_than_the_gate_lowers_the_budget_and_a_429_pauses() {
        // GIVEN a gate that knows 10 per window, 9 left
        let gate = RateGate::default();
        assert!(gate.try_take(50.0).is_ok());
        gate.answered_at(50.0, headers(10, 9, 51), false, None);
        assert!(gate.try_take(50.0).is_ok());
        // WHEN Braze's answer says only 1 remains (another client shares the workspace)
        gate.answered_at(50.1, headers(10, 1, 51), false, None);
        // THEN one more goes, then the gate waits for the reset
        assert!(gate.try_take(50.1).is_ok());
        assert!(gate.try_take(50.1).is_err());
        // AND a 429 with Retry-After 2 s holds everything until then, even past the reset
        gate.answered_at(50.2, headers(10, 0, 51), true, Some(Duration::from_secs(2)));
        let wait = gate.try_take(51.5).unwrap_err();
        assert!((wait.as_secs_f64() - 0.7).abs() < 1e-6, "{wait:?}");
        assert!(gate.try_take(52.3).is_ok());
    }

    #[test]
    fn answers_without_headers_fall_back_to_the_documented_default() {
        // GIVEN answers that carry no rate headers
        let gate = RateGate::default();
        assert!(gate.try_take(10.0).is_ok());
        gate.answered_at(10.0, None, false, None);
        // THEN 2,999 more go out in the first 3 s, and no more
        for _ in 0..DEFAULT_LIMIT - 1 {
            assert!(gate.try_take(10.5).is_ok());
        }
        assert!(gate.try_take(10.5).is_err());
        // AND the next window opens by the gate's own clock
        assert!(gate.try_take(13.0).is_ok());
    }
}

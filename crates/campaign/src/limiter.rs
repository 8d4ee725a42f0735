//! Adaptive concurrency (AIMD): the number of requests in flight grows by one per window of
//! successes — only while at least half the window is in use, so an idle window does not
//! inflate — and halves on overload signals, never below 1 nor above the cap: 429, 503,
//! timeouts, connection failures, an answer slower than `slow`, and rising latency (an
//! answer slower than 4× and 20 ms above the fastest of the last ~10 s, i.e. the server is
//! queueing). Halving happens at most once per cool-down so one burst of 429s counts as one
//! signal.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Bounds and thresholds of a [`Limiter`].
#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    /// Starting window (requests in flight), clamped to 1..=`max`.
    pub initial: f64,
    /// Cap on the window; the window never goes above it (nor below 1).
    pub max: f64,
    /// A success slower than this counts as an overload signal.
    pub slow: Duration,
    /// Minimum time between two halvings; overload signals within it are ignored.
    pub cooldown: Duration,
}

struct State {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
    timeline: Vec<(Duration, f64)>,
    /// Fastest answer in the current and the previous 5 s bucket: the no-load latency.
    floor_current: Option<Duration>,
    floor_previous: Option<Duration>,
    bucket_started: Instant,
}

/// Width of one bucket of the windowed minimum latency.
const FLOOR_BUCKET: Duration = Duration::from_secs(5);

impl State {
    /// Records `latency` and says whether it is far above the recent no-load latency.
    fn latency_is_rising(&mut self, latency: Duration, now: Instant) -> bool {
        if now - self.bucket_started >= FLOOR_BUCKET {
            self.floor_previous = self.floor_current.take();
            self.bucket_started = now;
        }
        self.floor_current = Some(self.floor_current.map_or(latency, |f| f.min(latency)));
        let floor = match (self.floor_current, self.floor_previous) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => latency,
        };
        latency > floor * 4 && latency > floor + Duration::from_millis(20)
    }
}

/// The AIMD concurrency window shared by a send's tasks; permits are released on drop.
pub struct Limiter {
    config: LimiterConfig,
    state: Mutex<State>,
    notify: Notify,
    started: Instant,
}

/// A slot of concurrency; released on drop.
pub struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut s = self.limiter.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limiter.notify.notify_waiters();
    }
}

const TIMELINE_MAX: usize = 10_000;

impl Limiter {
    /// A limiter whose window starts at `config.initial`, clamped to 1..=`config.max`.
    pub fn new(config: LimiterConfig) -> Arc<Self> {
        let limit = config.initial.clamp(1.0, config.max.max(1.0));
        Arc::new(Self {
            config,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                last_decrease: None,
                timeline: vec![(Duration::ZERO, limit)],
                floor_current: None,
                floor_previous: None,
                bucket_started: Instant::now(),
            }),
            notify: Notify::new(),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than ⌊limit⌋ (at least 1) requests are in flight, then takes a slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    return Permit {
                        limiter: self.clone(),
                    };
                }
            }
            notified.await;
        }
    }

    /// The current window, fractional (it grows by 1/limit per counted success); 1..=max.
    pub fn limit(&self) -> f64 {
        self.lock().limit
    }

    /// How many permits are held now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Reports an answer: grows the window if at least half is in use; a slow or queueing one
    /// (above `slow`, or rising latency) counts as overload instead.
    pub fn on_success(&self, latency: Duration) {
        let rising = self.lock().latency_is_rising(latency, Instant::now());
        if latency > self.config.slow || rising {
            self.on_overload();
            return;
        }
        let changed = {
            let mut s = self.lock();
            if (s.in_flight as f64) < s.limit / 2.0 {
                return;
            }
            let before = s.limit.floor();
            s.limit = (s.limit + 1.0 / s.limit).min(self.config.max);
            let after = s.limit;
            if after.floor() != before {
                let at = self.started.elapsed();
                if s.timeline.len() < TIMELINE_MAX {
                    s.timeline.push((at, after));
                }
                true
            } else {
                false
            }
        };
        if changed {
            self.notify.notify_waiters();
        }
    }

    /// Reports an overload signal: halves the window (not below 1), once per cool-down.
    pub fn on_overload(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.last_decrease
            .is_some_and(|t| now - t < self.config.cooldown)
        {
            return;
        }
        s.last_decrease = Some(now);
        s.limit = (s.limit / 2.0).max(1.0);
        let entry = (self.started.elapsed(), s.limit);
        if s.timeline.len() < TIMELINE_MAX {
            s.timeline.push(entry);
        }
    }

    /// (time since start, limit) at every change of the whole-number limit.
    pub fn timeline(&self) -> Vec<(Duration, f64)> {
        self.lock().timeline.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Arc<Limiter> {
        Limiter::new(LimiterConfig {
            initial: 8.0,
            max: 16.0,
            slow: Duration::from_millis(500),
            cooldown: Duration::ZERO,
        })
    }

    #[tokio::test]
    async fn halves_on_overload_grows_on_success_within_bounds() {
        let l = limiter();
        l.on_overload();
        assert_eq!(l.limit(), 4.0);
        for _ in 0..10 {
            l.on_overload();
        }
        assert_eq!(l.limit(), 1.0);
        // An unused window does not grow...
        for _ in 0..100 {
            l.on_success(Duration::from_millis(1));
        }
        assert_eq!(l.limit(), 1.0);
        // ...a busy one does.
        let mut held = Vec::new();
        for _ in 0..1_000 {
            while (l.in_flight() as f64) < l.limit().floor() {
                held.push(l.acquire().await);
            }
            l.on_success(Duration::from_millis(1));
        }
        assert_eq!(l.limit(), 16.0);
        l.on_success(Duration::from_secs(1)); // slow = overload
        assert_eq!(l.limit(), 8.0);
    }

    #[tokio::test]
    async fn rising_latency_halves_the_window() {
        let l = limiter();
        let _held: Vec<Permit> = futures::future::join_all((0..8).map(|_| l.acquire())).await;
        for _ in 0..50 {
            l.on_success(Duration::from_millis(2));
        }
        let before = l.limit();
        // 4× and 20 ms above the 2 ms floor: the server is queueing
        l.on_success(Duration::from_millis(30));
        assert_eq!(l.limit(), before / 2.0);
        // a little slower than the floor is not a signal
        let after = l.limit();
        l.on_success(Duration::from_millis(5));
        assert!(l.limit() >= after);
    }

    #[tokio::test]
    async fn permits_never_exceed_the_limit() {
        let l = limiter();
        let permits: Vec<Permit> = futures::future::join_all((0..8).map(|_| l.acquire())).await;
        assert_eq!(l.in_flight(), 8);
        let blocked = tokio::time::timeout(Duration::from_millis(50), l.acquire()).await;
        assert!(blocked.is_err());
        drop(permits);
        assert_eq!(l.in_flight(), 0);
        let _p = tokio::time::timeout(Duration::from_millis(50), l.acquire())
            .await
            .unwrap();
    }
}

//! Pacing: every HTTP attempt (first tries and retries alike) takes the next slot of a
//! fixed-interval schedule. Slots never accumulate while the sender is idle or throttled, so
//! there is no catch-up burst: any 1 s window holds at most `rate + 1` attempts.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const TIMER_TICK: Duration = Duration::from_millis(1);
const CATCH_UP: Duration = Duration::from_millis(2);

/// The fixed-interval schedule of a send's HTTP attempts; idle time earns no burst.
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// `per_second` attempts per second; must be above zero.
    pub fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(1e-6)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Time between two slots: 1 / `per_second`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's slot. A slot less than one timer tick (1 ms) away is taken at
    /// once: sleeping would round up to the next tick and cap a serial caller at 1,000 slots
    /// per second. A caller woken late by the timer may take slots up to `CATCH_UP` in the
    /// past, so timer lateness does not lower the rate; beyond that, missed slots are gone
    /// (no bursts after a stall). Any 1 s window holds at most `rate × 1.003 + 1` attempts.
    pub async fn acquire(&self) {
        self.acquire_many(1).await;
    }

    /// Waits for `n` slots at once, taken as one: a batch of `n` events is paced as `n`
    /// attempts, sent at the first slot, and the next caller waits for the slot after the
    /// last. Any 1 s window then holds at most `rate + n` paced units.
    pub async fn acquire_many(&self, n: u32) {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let earliest = now.checked_sub(CATCH_UP).unwrap_or(now);
            let slot = (*next).max(earliest);
            *next = slot + self.interval.saturating_mul(n.max(1));
            slot
        };
        if slot > now + TIMER_TICK {
            tokio::time::sleep_until(slot).await;
        }
    }

    /// Holds every slot until `until` (a `Retry-After` from the server).
    pub fn pause_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if *next < until {
            *next = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_serial_caller_reaches_rates_above_the_timer_resolution() {
        let pacer = Pacer::new(20_000.0);
        let started = std::time::Instant::now();
        for _ in 0..4_000 {
            pacer.acquire().await;
        }
        // 4,000 slots at 20,000/s take 0.2 s; a 1 ms timer per slot would take 4 s.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_stalled_caller_gets_no_burst_of_missed_slots() {
        let pacer = Pacer::new(1_000.0);
        pacer.acquire().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // 100 slots were missed; at most CATCH_UP (2 ms, 2 slots) plus a tick come at once.
        let started = std::time::Instant::now();
        for _ in 0..10 {
            pacer.acquire().await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_batch_of_n_takes_n_slots_so_the_next_batch_waits_for_them() {
        // GIVEN 1,000 slots a second
        let pacer = Pacer::new(1_000.0);
        // WHEN three batches of 50 take their slots
        let started = std::time::Instant::now();
        for _ in 0..3 {
            pacer.acquire_many(50).await;
        }
        // THEN the third waits for the first two's 100 slots: 100 ms, not 3 slots' 3 ms
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(95), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}

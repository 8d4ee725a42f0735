//! Waiting for an instant with sub-millisecond precision, and the single thread a load
//! generator's engine runs on.
//!
//! tokio's timer ticks in whole milliseconds: a `sleep_until` wakes up to 1 ms late, and a
//! load test that counts latency from each call's intended send time would charge that
//! lateness to the server. [`PreciseTimer`] waits on a Linux `timerfd` (nanosecond
//! resolution, woken through the runtime's reactor like any socket); elsewhere, or if the
//! timerfd cannot be made, it sleeps on tokio's timer to within a millisecond and yields
//! until the instant.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The last stretch before a deadline, waited out by yielding rather than on a kernel timer.
pub const YIELD_BELOW: Duration = Duration::from_micros(50);

/// Waits for instants to within a few microseconds; one per waiting task.
pub struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<linux::TimerFd>>,
}

impl PreciseTimer {
    /// A timer; must be made inside a tokio runtime (it registers with its reactor).
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            fd: linux::TimerFd::new()
                .ok()
                .and_then(linux::TimerFd::register),
        }
    }

    /// Returns at `deadline` or just after (never before). The kernel timer is armed for
    /// [`YIELD_BELOW`] before the deadline, and that last stretch is waited out by yielding
    /// to other tasks: waking from the timer takes tens of microseconds (more on a virtual
    /// machine, where arming one is a VM exit), yielding one.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let left = deadline - now;
            if left < YIELD_BELOW {
                tokio::task::yield_now().await;
                continue;
            }
            #[cfg(target_os = "linux")]
            if let Some(fd) = &self.fd {
                if fd.get_ref().arm(left - YIELD_BELOW).is_ok() {
                    if let Ok(mut ready) = fd.readable().await {
                        // Read the expiry count, then forget the readiness: the next wait
                        // must see the next expiry, not this one.
                        let _ = fd.get_ref().read();
                        ready.clear_ready();
                        continue;
                    }
                }
                self.fd = None;
            }
            coarse_wait(left).await;
        }
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

/// Without a timerfd: tokio's timer to within its 1 ms tick, then yielding to other tasks.
async fn coarse_wait(left: Duration) {
    const TICK: Duration = Duration::from_millis(1);
    if left > TICK * 2 {
        tokio::time::sleep(left - TICK * 2).await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// Runs `make()`'s future to completion on a new thread named `name`, on a single-threaded
/// runtime of its own (a `LocalSet`, so its tasks may share `Rc` state without locks), and
/// returns its output. One engine, one thread: no cross-thread wake-ups on the hot path,
/// and on a pinned core nothing competes with it but the kernel.
pub async fn on_own_thread<F, Fut, T>(name: &str, make: F) -> std::io::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // I/O and time only: the signal and process drivers would be polled at every park.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            linux::fine_timer_slack();
            let local = tokio::task::LocalSet::new();
            let out = local.block_on(&runtime, make());
            let _ = tx.send(out);
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the engine thread stopped without an answer"))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    /// A non-blocking one-shot `timerfd` on `CLOCK_MONOTONIC` (the clock of `Instant`).
    pub struct TimerFd(OwnedFd);

    impl TimerFd {
        /// A disarmed timer.
        pub fn new() -> io::Result<Self> {
            // SAFETY: timerfd_create takes no pointers; a non-negative result is a new fd
            // that nothing else owns.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh, valid descriptor owned by no one else.
            Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// Fires once, `after` from now (at least 1 ns: zero would disarm it).
        pub fn arm(&self, after: Duration) -> io::Result<()> {
            let after = after.max(Duration::from_nanos(1));
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: after.subsec_nanos() as libc::c_long,
                },
            };
            // SAFETY: `spec` is a valid itimerspec for the call's duration; the old value
            // pointer may be null.
            let r = unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// Reads (and so clears) the expiry count; `WouldBlock` when it has not fired.
        pub fn read(&self) -> io::Result<u64> {
            let mut buf = [0u8; 8];
            // SAFETY: `buf` is 8 writable bytes, the size a timerfd read needs.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(u64::from_ne_bytes(buf))
        }
    }

    impl TimerFd {
        /// Registers with the current runtime's reactor (read readiness); `None` outside a
        /// runtime or when registration fails.
        pub fn register(self) -> Option<tokio::io::unix::AsyncFd<Self>> {
            tokio::runtime::Handle::try_current().ok()?;
            // SAFETY: the fd is owned by `self` (an `OwnedFd`), stays open until the
            // `AsyncFd` drops it, and `as_raw_fd` always returns that same fd.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    self,
                    tokio::io::Interest::READABLE,
                )
            }
            .ok()
        }
    }

    impl AsRawFd for TimerFd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    /// Asks the kernel for 1 µs of timer slack on this thread (default 50 µs), so its
    /// waits in the reactor end when asked.
    pub fn fine_timer_slack() {
        // SAFETY: PR_SET_TIMERSLACK takes an integer argument, no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_returns_before_the_deadline() {
        let mut timer = PreciseTimer::new();
        for micros in [0u64, 50, 300, 1_500, 4_000] {
            let deadline = Instant::now() + Duration::from_micros(micros);
            timer.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline, "{micros} µs");
        }
        // a deadline in the past returns at once
        timer
            .sleep_until(Instant::now() - Duration::from_millis(5))
            .await;
    }

    #[tokio::test]
    async fn the_engine_thread_runs_local_tasks_and_returns_their_output() {
        let out = on_own_thread("test-engine", || async {
            let shared = std::rc::Rc::new(std::cell::Cell::new(1));
            let s = shared.clone();
            tokio::task::spawn_local(async move { s.set(s.get() + 41) })
                .await
                .unwrap();
            shared.get()
        })
        .await
        .unwrap();
        assert_eq!(out, 42);
    }
}

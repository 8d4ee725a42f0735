//! The open-model executor. Every call has an intended send time from the schedule and is
//! sent then, whether or not earlier calls have answered; its latency counts from that
//! intended time, so a server (or a generator) that falls behind cannot hide its queue
//! (coordinated omission). Calls in flight are capped: a call due while the cap is reached
//! is not sent and is counted as `in_flight_cap`, never silently delayed. Everything runs on
//! one engine thread: the dispatcher waits for each intended time on a precise timer (never
//! early, late by microseconds rather than tokio's 1 ms tick), calls reuse keep-alive
//! connections, and each answer is recorded in place in histograms the thread owns, so
//! recording takes no lock and crosses no channel.

use super::results::{Cell, Results, RunInfo, Second, FORMAT_VERSION};
use super::shape::{CampaignShape, Profile, Shard};
use crate::caller::{Caller, CallerConfig, CallerError, StatusClass, Target};
use crate::stats::Latency;
use crate::timer::{on_own_thread, PreciseTimer};
use sendtime_domain::{BlockKind, UserId};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the schedule is made of.
#[derive(Debug, Clone)]
pub enum Load {
    /// An explicit plan: each event is one call.
    Plan(Profile),
    /// A campaign: each event is one message, making each block's calls for its channel.
    Campaign(CampaignShape),
}

/// A load test to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where to send and with which key.
    pub caller: CallerConfig,
    /// Blocks to call.
    pub blocks: Vec<BlockKind>,
    /// User ids, used in order and cycled (realistic cache behaviour comes from real ids).
    pub users: Vec<UserId>,
    /// The shape.
    pub load: Load,
    /// Rate factor (1 = as given).
    pub scale: f64,
    /// Cut the schedule after this long.
    pub duration: Option<Duration>,
    /// This machine's share.
    pub shard: Shard,
    /// Cap on calls in flight.
    pub max_in_flight: usize,
    /// The shape in words, for the report.
    pub shape_text: String,
}

/// Why a load test could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP caller could not be built.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// The shape could not be turned into a schedule.
    #[error(transparent)]
    Shape(#[from] super::shape::ShapeError),
    /// Nothing to call.
    #[error("{0}")]
    Empty(&'static str),
    /// The engine thread could not be started, or stopped without an answer.
    #[error("the load generator's thread failed: {0}")]
    Engine(std::io::Error),
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Calls the schedule holds (known up front).
    pub scheduled: AtomicU64,
    /// Calls sent so far.
    pub sent: AtomicU64,
    /// Calls finished so far (answered or failed).
    pub done: AtomicU64,
    /// Calls not sent because of the in-flight cap.
    pub capped: AtomicU64,
    /// Finished calls that were not 2xx.
    pub errors: AtomicU64,
    /// p99 of the last full second, µs.
    pub recent_p99_micros: AtomicU64,
}

/// The calls of one schedule event: its user, and which blocks (no allocation per event).
struct Event {
    user: usize,
    calls: Calls,
}

/// Which blocks an event calls, and how often.
#[derive(Clone, Copy)]
enum Calls {
    /// One call to this block (a plan's event).
    One(usize),
    /// Every block, this many times each (a campaign message).
    EachBlock(u32),
}

impl Calls {
    /// `(block index, copies)` for `blocks` blocks.
    fn iter(self, blocks: usize) -> impl Iterator<Item = (usize, u32)> {
        let (range, copies) = match self {
            Self::One(b) => (b..b + 1, 1),
            Self::EachBlock(c) => (0..blocks, c),
        };
        range.map(move |b| (b, copies))
    }
}

/// Calls dispatched back to back before the dispatcher lets answers be processed.
const DISPATCH_BATCH: u32 = 8;

/// Runs the load test and returns what it measured. The engine (schedule, connections,
/// histograms) runs on a thread of its own with a single-threaded runtime.
pub async fn run(config: RunConfig, progress: Arc<LoadProgress>) -> Result<Results, RunError> {
    if config.blocks.is_empty() {
        return Err(RunError::Empty("--blocks names no block"));
    }
    if config.users.is_empty() {
        return Err(RunError::Empty("no user ids to call"));
    }
    on_own_thread("loadtest", move || engine(config, progress))
        .await
        .map_err(RunError::Engine)?
}

async fn engine(config: RunConfig, progress: Arc<LoadProgress>) -> Result<Results, RunError> {
    let caller = Caller::new(&config.caller)?;
    let profile = match &config.load {
        Load::Plan(p) => p.clone(),
        Load::Campaign(c) => c.profile()?,
    }
    .scaled(config.scale);
    let times: Vec<(u64, f64)> = profile
        .event_times(config.duration)
        .enumerate()
        .map(|(k, t)| (k as u64, t))
        .filter(|(k, _)| config.shard.owns(*k))
        .collect();
    let nb = config.blocks.len();
    let events: Vec<(f64, Event)> = times.iter().map(|&(k, t)| (t, event(&config, k))).collect();
    let scheduled: u64 = events
        .iter()
        .map(|(_, e)| e.calls.iter(nb).map(|c| u64::from(c.1)).sum::<u64>())
        .sum();
    progress.scheduled.store(scheduled, Ordering::Relaxed);
    let schedule_seconds = events.last().map_or(0.0, |(t, _)| *t);
    let seconds = schedule_seconds.ceil() as usize + 1;

    // Targets once per (user, block) actually used: nothing is formatted on the send path.
    let users_used = config.users.len().min(events.len().max(1));
    let targets: Vec<Vec<Target>> = config.users[..users_used]
        .iter()
        .map(|u| config.blocks.iter().map(|b| caller.target(u, *b)).collect())
        .collect();

    let started_at = chrono::Utc::now();
    let start = Instant::now() + Duration::from_millis(20);
    let recorder = Rc::new(RefCell::new(Recorder::new(
        config.blocks.len(),
        seconds,
        start,
        progress.clone(),
    )));
    let in_flight = Rc::new(InFlight::new(config.max_in_flight));
    let mut timer = PreciseTimer::new();
    let mut batch = 0;
    // Events intended before this instant found the cap reached: not sent.
    let mut capped_until: Option<Instant> = None;
    for (t, event) in events {
        let intended = start + Duration::from_secs_f64(t);
        let mut over_cap = capped_until.is_some_and(|until| intended < until);
        if over_cap {
            if batch >= DISPATCH_BATCH {
                tokio::task::yield_now().await;
                batch = 0;
            }
        } else if intended > Instant::now() {
            if in_flight.full() {
                // Nothing can be sent before a call finishes: wait for that, not for each
                // event due meanwhile (every one of them meets the cap).
                let freed = in_flight.slot_freed().await;
                capped_until = Some(freed);
                over_cap = intended < freed;
            }
            if !over_cap {
                timer.sleep_until(intended).await;
                batch = 0;
            }
        } else if batch >= DISPATCH_BATCH {
            // Behind the schedule: let the answers in before sending more.
            tokio::task::yield_now().await;
            batch = 0;
        }
        let second = t as usize;
        for (block, copies) in event.calls.iter(nb) {
            for _ in 0..copies {
                batch += 1;
                let mut rec = recorder.borrow_mut();
                rec.timeline_at(second).scheduled += 1;
                if over_cap || in_flight.full() {
                    progress.capped.fetch_add(1, Ordering::Relaxed);
                    rec.not_sent(block, StatusClass::InFlightCap);
                    continue;
                }
                rec.timeline_at(second).sent += 1;
                drop(rec);
                in_flight.started();
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let (caller, recorder, in_flight) =
                    (caller.clone(), recorder.clone(), in_flight.clone());
                let target = targets[event.user % users_used][block].clone();
                tokio::task::spawn_local(async move {
                    let outcome = caller.call(&target, false).await;
                    let now = Instant::now();
                    in_flight.finished(now);
                    recorder
                        .borrow_mut()
                        .answered(block, outcome.class(), second, intended, now);
                });
            }
        }
    }
    in_flight.drained().await;
    let Recorder {
        cells,
        timeline,
        last_answer,
        ..
    } = Rc::try_unwrap(recorder)
        .map_err(|_| RunError::Empty("a call outlived the run"))?
        .into_inner();
    let by_block = config
        .blocks
        .iter()
        .zip(cells)
        .map(|(b, c)| {
            let cells = StatusClass::ALL
                .into_iter()
                .zip(c)
                .filter(|(_, cell)| cell.count > 0)
                .collect();
            (b.as_str().to_owned(), cells)
        })
        .collect();
    Ok(Results {
        version: FORMAT_VERSION,
        run: RunInfo {
            base_url: config.caller.base_url.clone(),
            shape: config.shape_text.clone(),
            scale: config.scale,
            shards: config.shard.to_string(),
            blocks: config
                .blocks
                .iter()
                .map(|b| b.as_str().to_owned())
                .collect(),
            scheduled_calls: scheduled,
            schedule_seconds,
            elapsed_seconds: last_answer.as_secs_f64(),
            max_in_flight: config.max_in_flight as u64,
            timeout_ms: config.caller.timeout.as_millis() as u64,
            started_at: started_at.to_rfc3339(),
        },
        by_block,
        timeline,
    })
}

/// Calls in flight against their cap; wake-ups for the dispatcher when a slot frees at
/// the cap, and at the end of the run when the last call finishes.
struct InFlight {
    count: std::cell::Cell<usize>,
    cap: usize,
    /// When the count last dropped from the cap.
    freed_at: std::cell::Cell<Option<Instant>>,
    slot: Notify,
    idle: Notify,
}

impl InFlight {
    fn new(cap: usize) -> Self {
        Self {
            count: std::cell::Cell::new(0),
            cap,
            freed_at: std::cell::Cell::new(None),
            slot: Notify::new(),
            idle: Notify::new(),
        }
    }

    fn full(&self) -> bool {
        self.count.get() >= self.cap
    }

    fn started(&self) {
        self.count.set(self.count.get() + 1);
    }

    fn finished(&self, now: Instant) {
        let before = self.count.get();
        self.count.set(before.saturating_sub(1));
        if before == self.cap {
            self.freed_at.set(Some(now));
            self.slot.notify_one();
        }
        if before == 1 {
            self.idle.notify_one();
        }
    }

    /// Waits, at the cap, until a call finishes; when that was.
    async fn slot_freed(&self) -> Instant {
        loop {
            if !self.full() {
                return self.freed_at.get().unwrap_or_else(Instant::now);
            }
            self.slot.notified().await;
        }
    }

    async fn drained(&self) {
        while self.count.get() > 0 {
            self.idle.notified().await;
        }
    }
}

/// Event `k`'s calls: one call for a plan (users and blocks in turn); for a campaign, one
/// message to user `k`, each block called once per render of its channel.
fn event(config: &RunConfig, k: u64) -> Event {
    let nb = config.blocks.len();
    match &config.load {
        Load::Plan(_) => Event {
            user: (k as usize) / nb,
            calls: Calls::One((k as usize) % nb),
        },
        Load::Campaign(c) => {
            let copies = CampaignShape::calls_per_block(c.channel_of(k));
            Event {
                user: k as usize,
                calls: Calls::EachBlock(copies),
            }
        }
    }
}

/// Owns every histogram and counter of a run; each finished call is recorded in place, on
/// the engine's one thread (no lock, no channel). Keeps the progress's p99 of the last full
/// second current.
struct Recorder {
    /// Per block, one cell per status class (in [`StatusClass::ALL`] order).
    cells: Vec<Vec<Cell>>,
    timeline: Vec<Second>,
    last_answer: Duration,
    start: Instant,
    progress: Arc<LoadProgress>,
    window: Latency,
    window_second: usize,
}

impl Recorder {
    fn new(blocks: usize, seconds: usize, start: Instant, progress: Arc<LoadProgress>) -> Self {
        Self {
            cells: vec![vec![Cell::default(); StatusClass::ALL.len()]; blocks],
            timeline: (0..seconds).map(|_| new_second()).collect(),
            last_answer: Duration::ZERO,
            start,
            progress,
            window: Latency::coarse(),
            window_second: 0,
        }
    }

    /// The timeline's second `s`, grown to reach it.
    fn timeline_at(&mut self, s: usize) -> &mut Second {
        if self.timeline.len() <= s {
            self.timeline.resize_with(s + 1, new_second);
        }
        &mut self.timeline[s]
    }

    /// One call not sent (over the in-flight cap): counted, no latency.
    fn not_sent(&mut self, block: usize, class: StatusClass) {
        self.cells[block][class as usize].count += 1;
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One call finished at `now`: its latency counts from `intended`, in the second it
    /// was scheduled for, and it is answered in the second `now` falls in.
    fn answered(
        &mut self,
        block: usize,
        class: StatusClass,
        second: usize,
        intended: Instant,
        now: Instant,
    ) {
        let latency = now.saturating_duration_since(intended);
        let since_start = now.saturating_duration_since(self.start);
        let answered_second = since_start.as_secs() as usize;
        let cell = &mut self.cells[block][class as usize];
        cell.count += 1;
        cell.latency.record(latency);
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        if class != StatusClass::Success {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.timeline_at(second).latency.record(latency);
        self.timeline_at(answered_second).answered += 1;
        self.last_answer = self.last_answer.max(since_start);
        if answered_second != self.window_second {
            self.progress.recent_p99_micros.store(
                (self.window.quantile_ms(0.99) * 1000.0) as u64,
                Ordering::Relaxed,
            );
            self.window = Latency::coarse();
            self.window_second = answered_second;
        }
        self.window.record(latency);
    }
}

fn new_second() -> Second {
    Second {
        latency: Latency::coarse(),
        ..Second::default()
    }
}

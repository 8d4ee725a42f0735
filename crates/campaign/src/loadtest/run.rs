//! The open-model executor. Every call has an intended send time from the schedule and is
//! sent then, whether or not earlier calls have answered; its latency counts from that
//! intended time, so a server (or a generator) that falls behind cannot hide its queue
//! (coordinated omission). Calls in flight are capped: a call due while the cap is reached
//! is not sent and is counted as `in_flight_cap`, never silently delayed. The dispatcher
//! only schedules; answers go over a channel to one collector that owns every histogram, so
//! recording takes no lock.

use super::results::{Cell, Results, RunInfo, Second, FORMAT_VERSION};
use super::shape::{CampaignShape, Profile, Shard};
use crate::caller::{Caller, CallerConfig, CallerError, StatusClass};
use crate::stats::Latency;
use sendtime_domain::{BlockKind, UserId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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

/// One finished (or refused-to-send) call, for the collector.
struct Finished {
    block: usize,
    class: StatusClass,
    /// Second of the intended send time.
    second: usize,
    /// From the intended send time; `None` for calls never sent.
    latency: Option<Duration>,
    /// Second in which the answer came.
    answered_second: usize,
}

/// The calls of one schedule event: `(user, block index, copies)`.
struct Event {
    user: usize,
    calls: Vec<(usize, u32)>,
}

/// Runs the load test and returns what it measured.
pub async fn run(config: RunConfig, progress: Arc<LoadProgress>) -> Result<Results, RunError> {
    if config.blocks.is_empty() {
        return Err(RunError::Empty("--blocks names no block"));
    }
    if config.users.is_empty() {
        return Err(RunError::Empty("no user ids to call"));
    }
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
    let events: Vec<(f64, Event)> = times.iter().map(|&(k, t)| (t, event(&config, k))).collect();
    let scheduled: u64 = events
        .iter()
        .map(|(_, e)| e.calls.iter().map(|c| u64::from(c.1)).sum::<u64>())
        .sum();
    progress.scheduled.store(scheduled, Ordering::Relaxed);
    let schedule_seconds = events.last().map_or(0.0, |(t, _)| *t);
    let seconds = schedule_seconds.ceil() as usize + 1;

    // URLs once per (user, block) actually used: no formatting on the send path.
    let users_used = config.users.len().min(events.len().max(1));
    let urls: Vec<Vec<Arc<str>>> = config.users[..users_used]
        .iter()
        .map(|u| {
            config
                .blocks
                .iter()
                .map(|b| Arc::from(caller.url(u, *b)))
                .collect()
        })
        .collect();

    let (tx, rx) = mpsc::unbounded_channel::<Finished>();
    let started_at = chrono::Utc::now();
    let start = Instant::now() + Duration::from_millis(20);
    let collector = tokio::spawn(collect(
        rx,
        config.blocks.len(),
        seconds,
        start,
        progress.clone(),
    ));

    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut per_second = vec![(0u64, 0u64); seconds];
    for (t, event) in events {
        let intended = start + Duration::from_secs_f64(t);
        if intended > Instant::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(intended).await;
        }
        let second = t as usize;
        for (block, copies) in event.calls {
            for _ in 0..copies {
                per_second[second].0 += 1;
                if in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
                    progress.capped.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(Finished {
                        block,
                        class: StatusClass::InFlightCap,
                        second,
                        latency: None,
                        answered_second: second,
                    });
                    continue;
                }
                per_second[second].1 += 1;
                in_flight.fetch_add(1, Ordering::Relaxed);
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let (caller, tx, in_flight) = (caller.clone(), tx.clone(), in_flight.clone());
                let url = urls[event.user % users_used][block].clone();
                tokio::spawn(async move {
                    let outcome = caller.call(&url, false).await;
                    let now = Instant::now();
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    let _ = tx.send(Finished {
                        block,
                        class: outcome.class(),
                        second,
                        latency: Some(now.saturating_duration_since(intended)),
                        answered_second: now.saturating_duration_since(start).as_secs() as usize,
                    });
                });
            }
        }
    }
    drop(tx);
    let (cells, timeline, last_answer) = collector
        .await
        .map_err(|_| RunError::Empty("the result collector stopped"))?;
    let mut timeline = timeline;
    for (s, (sched, sent)) in per_second.into_iter().enumerate() {
        if let Some(slot) = timeline.get_mut(s) {
            slot.scheduled = sched;
            slot.sent = sent;
        }
    }
    let by_block = config
        .blocks
        .iter()
        .zip(cells)
        .map(|(b, c)| (b.as_str().to_owned(), c))
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

/// Event `k`'s calls: one call for a plan (users and blocks in turn); for a campaign, one
/// message to user `k`, each block called once per render of its channel.
fn event(config: &RunConfig, k: u64) -> Event {
    let nb = config.blocks.len();
    match &config.load {
        Load::Plan(_) => Event {
            user: (k as usize) / nb,
            calls: vec![((k as usize) % nb, 1)],
        },
        Load::Campaign(c) => {
            let copies = CampaignShape::calls_per_block(c.channel_of(k));
            Event {
                user: k as usize,
                calls: (0..nb).map(|b| (b, copies)).collect(),
            }
        }
    }
}

type Collected = (Vec<BTreeMap<StatusClass, Cell>>, Vec<Second>, Duration);

/// Owns every histogram: records each finished call, and keeps the progress's p99 of the
/// last full second current.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Finished>,
    blocks: usize,
    seconds: usize,
    start: Instant,
    progress: Arc<LoadProgress>,
) -> Collected {
    let mut cells: Vec<BTreeMap<StatusClass, Cell>> = vec![BTreeMap::new(); blocks];
    let mut timeline: Vec<Second> = (0..seconds)
        .map(|_| Second {
            latency: Latency::coarse(),
            ..Second::default()
        })
        .collect();
    let mut last_answer = Duration::ZERO;
    let mut window = Latency::coarse();
    let mut window_second = 0;
    while let Some(f) = rx.recv().await {
        let cell = cells[f.block].entry(f.class).or_default();
        cell.count += 1;
        progress.done.fetch_add(1, Ordering::Relaxed);
        if f.class != StatusClass::Success {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        let Some(latency) = f.latency else { continue };
        cell.latency.record(latency);
        if timeline.len() <= f.answered_second.max(f.second) {
            timeline.resize_with(f.answered_second.max(f.second) + 1, || Second {
                latency: Latency::coarse(),
                ..Second::default()
            });
        }
        timeline[f.second].latency.record(latency);
        timeline[f.answered_second].answered += 1;
        last_answer = last_answer.max(Instant::now().saturating_duration_since(start));
        if f.answered_second != window_second {
            progress.recent_p99_micros.store(
                (window.quantile_ms(0.99) * 1000.0) as u64,
                Ordering::Relaxed,
            );
            window = Latency::coarse();
            window_second = f.answered_second;
        }
        window.record(latency);
    }
    (cells, timeline, last_answer)
}

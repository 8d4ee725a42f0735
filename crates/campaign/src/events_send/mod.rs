//! `events send`: a JSON Lines file of events posted to the API's `POST /v1/events` in
//! batches under the API's count and byte limits, with the send engine's parts — the
//! [`Pacer`] (an event rate: a batch of n takes n slots), the adaptive [`Limiter`] window,
//! the [`Caller`]'s pooled connections and jittered backoff honouring `Retry-After` — and an
//! append-only state file kept as the result log is ([`crate::output::open_lines`]).
//!
//! Every line of the file gets one final record in the state file: applied, unchanged
//! (duplicate or stale), rejected (a bad line, or refused by the API: never sent again) or
//! failed (still failing after the last attempt). A killed run resumes from it without
//! resending what was answered, and lines that failed are sent again; the report counts
//! every line exactly once, the last record of a line deciding.

mod batch;
mod deliver;
mod tally;

use crate::caller::{Caller, CallerConfig, CallerError, Target};
use crate::limiter::{Limiter, LimiterConfig};
use crate::output::{open_lines, ResultLog};
use crate::pacer::Pacer;
use crate::timer::on_own_thread;
use batch::{classify, Batcher, Line, Pending, ENVELOPE_BYTES};
use deliver::deliver;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally::{tally, Counts};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The path events are posted to, under the base URL.
pub const EVENTS_PATH: &str = "/v1/events";

/// How a file is sent: where, with what key, how fast, in what batches, with what retries.
#[derive(Debug, Clone)]
pub struct EventsSendConfig {
    /// The API's base URL; batches go to `{base_url}/v1/events`.
    pub base_url: String,
    /// The write key, sent in the key header; never logged.
    pub api_key: Option<String>,
    /// Events per second (first tries and retries alike).
    pub events_per_second: f64,
    /// Most events in one batch (at most the API's `MAX_BATCH_EVENTS`).
    pub batch_events: usize,
    /// Largest batch body in bytes (the API's `MAX_BATCH_BYTES`); a longer line is rejected.
    pub max_batch_bytes: usize,
    /// Most batches in flight; the adaptive window starts there and halves on overload.
    pub concurrency: usize,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts per event, the first included.
    pub max_attempts: u32,
    /// Backoff scale: a retry waits a random 0..=min(base × 2^attempt, cap).
    pub backoff_base: Duration,
    /// Longest backoff wait; a `Retry-After` (up to 300 s) is honoured instead when given.
    pub backoff_cap: Duration,
}

/// The final outcome of one line; the API's `status` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    /// The event changed a record.
    Applied,
    /// Nothing changed: a duplicate or stale event.
    Unchanged,
    /// A bad line, or an event the API refused: never sent again.
    Rejected,
    /// Still failing after the last attempt; a later run sends it again.
    Failed,
}

/// One record of the state file: the final outcome of one line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineRecord {
    /// The line's number in the file, from 1.
    pub line: u64,
    /// The event's `id`, when the line had one: a resumed run checks the file still holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What became of it.
    pub status: LineStatus,
    /// The record changed (applied) or why nothing changed (unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The error code, when rejected or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What was wrong, when rejected or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Posts that carried this event (0 for a line never sent).
    pub attempts: u32,
}

/// A rejected or failed line, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineProblem {
    /// The line's number, from 1.
    pub line: u64,
    /// The error code.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

/// What a send did: every line of the file counted once, and what this run cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Lines in the file.
    pub lines: u64,
    /// Empty lines (nothing to send).
    pub blank: u64,
    /// Lines whose event was applied.
    pub applied: u64,
    /// Lines whose event changed nothing (duplicate or stale).
    pub unchanged: u64,
    /// Lines rejected (bad JSON, or refused by the API).
    pub rejected: u64,
    /// Lines still failing after the last attempt.
    pub failed: u64,
    /// Lines not answered: the run was stopped before (0 when it ran to the end).
    pub unanswered: u64,
    /// Lines whose final outcome an earlier run had recorded: not sent again.
    pub answered_earlier: u64,
    /// Events posted in this run (each once, retries not counted).
    pub sent: u64,
    /// Posts in this run, retries included.
    pub requests: u64,
    /// Events posted again (a batch retried, or the API's `failed` results).
    pub resent: u64,
    /// Unsuccessful posts of this run by HTTP status or error class (`429`, `503`, `timeout`…).
    pub refusals: BTreeMap<String, u64>,
    /// Bytes of a line cut by a crash dropped from the end of the state file.
    pub state_torn_bytes: u64,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Events answered per second in this run.
    pub events_per_second: f64,
    /// The first rejected lines.
    pub first_rejected: Vec<LineProblem>,
    /// The first failed lines.
    pub first_failed: Vec<LineProblem>,
}

/// Why a send could not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EventsSendError {
    /// The events file could not be read.
    #[error("cannot read FILE {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be opened, read or written.
    #[error("cannot use --state {path}: {source}")]
    State {
        /// The state file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file was written for another file.
    #[error(
        "--state {state} was written for another file: it records {recorded} for line {line}, \
         but {file}:{line} holds {found}; remove it or pass another --state"
    )]
    StateMismatch {
        /// The state file.
        state: String,
        /// The events file.
        file: String,
        /// The line.
        line: u64,
        /// What the state records there.
        recorded: String,
        /// What the file holds there.
        found: String,
    },
    /// The HTTP caller could not be built (the URL).
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// The engine thread could not be started, or stopped without an answer.
    #[error("the send's thread failed: {0}")]
    Engine(std::io::Error),
    /// The API refused in a way retrying cannot mend (a key, a URL); what was answered
    /// before is in the state file, and the same command resumes.
    #[error("{reason}")]
    Stopped {
        /// What the API said and what fixes it.
        reason: String,
        /// The lines answered until then.
        report: Box<Report>,
    },
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct EventsProgress {
    /// Lines with a final outcome (blank lines and earlier runs' included).
    pub done: AtomicU64,
    /// Lines rejected or failed, in this run.
    pub problems: AtomicU64,
    /// Posts in this run, retries included.
    pub requests: AtomicU64,
}

/// Sends every line of `file` not yet answered according to `state`, recording outcomes
/// there; the report counts every line of the file once.
pub async fn run(
    config: EventsSendConfig,
    file: &Path,
    state: &Path,
    progress: Arc<EventsProgress>,
) -> Result<Report, EventsSendError> {
    let shown = state.display().to_string();
    let state_error = |source| EventsSendError::State {
        path: shown.clone(),
        source,
    };
    let input = File::open(file).map_err(|source| EventsSendError::Input {
        path: file.display().to_string(),
        source,
    })?;
    let reopened = open_lines::<LineRecord>(state).map_err(state_error)?;
    let mut earlier = HashMap::with_capacity(reopened.records.len());
    for record in reopened.records {
        earlier.insert(record.line, record);
    }
    let paths = (file.to_path_buf(), state.to_path_buf());
    let torn = reopened.dropped_bytes;
    let log = reopened.log;
    let mut report = on_own_thread("events-send", move || {
        engine(config, paths, BufReader::new(input), earlier, log, progress)
    })
    .await
    .map_err(EventsSendError::Engine)??;
    report.state_torn_bytes = torn;
    Ok(report)
}

/// What a send's tasks share on the engine thread.
struct Shared {
    config: EventsSendConfig,
    caller: Caller,
    target: Target,
    pacer: Pacer,
    limiter: Arc<Limiter>,
    /// Set once the API refuses in a way retrying cannot mend: nothing more is sent.
    stop: RefCell<Option<String>>,
    requests: Cell<u64>,
    resent: Cell<u64>,
    refusals: RefCell<BTreeMap<String, u64>>,
    progress: Arc<EventsProgress>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.borrow().is_some()
    }

    fn refused(&self, what: String) {
        *self.refusals.borrow_mut().entry(what).or_default() += 1;
    }
}

/// What reading the file found, besides the lines it handed to batches.
#[derive(Default)]
struct Reading {
    lines: u64,
    blank: u64,
    /// The outcomes an earlier run recorded for the lines skipped.
    earlier: Counts,
    sent: u64,
}

/// The send on the engine's one thread: a dispatcher reads the file and launches batches;
/// this future appends each final outcome to the state file as it comes.
async fn engine(
    config: EventsSendConfig,
    (file, state): (PathBuf, PathBuf),
    input: BufReader<File>,
    earlier: HashMap<u64, LineRecord>,
    mut log: ResultLog,
    progress: Arc<EventsProgress>,
) -> Result<Report, EventsSendError> {
    let started = Instant::now();
    let caller = Caller::new(&CallerConfig {
        base_url: config.base_url.clone(),
        api_key: config.api_key.clone(),
        headers: Vec::new(),
        timeout: config.timeout,
        max_idle_per_host: config.concurrency,
    })?;
    let target = caller.path_target(EVENTS_PATH)?;
    let window = config.concurrency.max(1) as f64;
    let shared = Rc::new(Shared {
        pacer: Pacer::new(config.events_per_second),
        limiter: Limiter::new(LimiterConfig {
            initial: window,
            max: window,
            slow: config.timeout / 2,
            cooldown: Duration::from_millis(200),
        }),
        config,
        caller,
        target,
        stop: RefCell::new(None),
        requests: Cell::new(0),
        resent: Cell::new(0),
        refusals: RefCell::new(BTreeMap::new()),
        progress,
    });
    let earlier = Rc::new(earlier);
    let (tx, mut rx) = mpsc::channel::<LineRecord>(1024);
    let dispatcher = tokio::task::spawn_local(dispatch(
        shared.clone(),
        input,
        (file.clone(), state.clone()),
        earlier.clone(),
        tx,
    ));
    let state_error = |source| EventsSendError::State {
        path: state.display().to_string(),
        source,
    };
    let mut this_run = Counts::default();
    let mut answered = 0u64;
    let mut waiting = Vec::with_capacity(256);
    // The channel closes once the dispatcher and every batch it launched are done.
    while rx.recv_many(&mut waiting, 256).await > 0 {
        for record in waiting.drain(..) {
            log.push_line(&record).map_err(state_error)?;
            this_run.add(&record);
            answered += 1;
            if matches!(record.status, LineStatus::Rejected | LineStatus::Failed) {
                shared.progress.problems.fetch_add(1, Ordering::Relaxed);
            }
            shared.progress.done.fetch_add(1, Ordering::Relaxed);
        }
        log.flush().map_err(state_error)?;
    }
    log.finish().map_err(state_error)?;
    let reading = dispatcher
        .await
        .map_err(|e| EventsSendError::Engine(std::io::Error::other(e.to_string())))??;
    let mut report = tally(&reading, &this_run);
    report.requests = shared.requests.get();
    report.resent = shared.resent.get();
    report.refusals = shared.refusals.borrow().clone();
    report.seconds = started.elapsed().as_secs_f64();
    report.events_per_second = answered as f64 / report.seconds.max(1e-9);
    let stop = shared.stop.borrow_mut().take();
    match stop {
        Some(reason) => Err(EventsSendError::Stopped {
            reason,
            report: Box::new(report),
        }),
        None => Ok(report),
    }
}

/// Reads the file line by line: blank lines counted, bad lines recorded as rejected, lines
/// an earlier run answered skipped (checking the file still holds the same event there),
/// events batched and launched.
async fn dispatch(
    shared: Rc<Shared>,
    mut input: BufReader<File>,
    (file, state): (PathBuf, PathBuf),
    earlier: Rc<HashMap<u64, LineRecord>>,
    tx: mpsc::Sender<LineRecord>,
) -> Result<Reading, EventsSendError> {
    let max_bytes = shared.config.max_batch_bytes;
    let mut batcher = Batcher {
        max_events: shared.config.batch_events.max(1),
        max_bytes,
        events: Vec::new(),
        bytes: 0,
    };
    let mut reading = Reading::default();
    let mut buf = Vec::new();
    while !shared.stopped() {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| EventsSendError::Input {
                path: file.display().to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        reading.lines += 1;
        let line = reading.lines;
        let read = classify(line, &buf, max_bytes.saturating_sub(ENVELOPE_BYTES));
        if let Some(before) = earlier.get(&line) {
            let found = match &read {
                Line::Event(p) => p.id.as_deref(),
                _ => None,
            };
            if before.id.as_deref() != found || matches!(read, Line::Blank) {
                let name = |id: Option<&str>| {
                    id.map_or("no event id".to_owned(), |i| format!("event {i:?}"))
                };
                return Err(EventsSendError::StateMismatch {
                    state: state.display().to_string(),
                    file: file.display().to_string(),
                    line,
                    recorded: name(before.id.as_deref()),
                    found: name(found),
                });
            }
            if before.status != LineStatus::Failed {
                reading.earlier.add(before);
                shared.progress.done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        match read {
            Line::Blank => {
                reading.blank += 1;
                shared.progress.done.fetch_add(1, Ordering::Relaxed);
            }
            Line::Bad { code, message } => {
                let record = LineRecord {
                    line,
                    id: None,
                    status: LineStatus::Rejected,
                    detail: None,
                    code: Some(code.to_owned()),
                    message: Some(message),
                    attempts: 0,
                };
                let _ = tx.send(record).await;
            }
            Line::Event(event) => {
                if let Some(batch) = batcher.push(event) {
                    reading.sent += batch.len() as u64;
                    launch(&shared, batch, &tx).await;
                }
            }
        }
    }
    if let Some(batch) = batcher.take().filter(|_| !shared.stopped()) {
        reading.sent += batch.len() as u64;
        launch(&shared, batch, &tx).await;
    }
    // (A send stopped early has not read the whole file: its end is not known.)
    let beyond = earlier.keys().copied().filter(|l| *l > reading.lines).min();
    if let Some(beyond) = beyond.filter(|_| !shared.stopped()) {
        return Err(EventsSendError::StateMismatch {
            state: state.display().to_string(),
            file: file.display().to_string(),
            line: beyond,
            recorded: "an outcome".to_owned(),
            found: format!("no such line (the file has {})", reading.lines),
        });
    }
    Ok(reading)
}

/// Takes the batch's pacing slots (one per event), then a slot of the window, and sends it
/// on a task of its own.
async fn launch(shared: &Rc<Shared>, batch: Vec<Pending>, tx: &mpsc::Sender<LineRecord>) {
    // The pacing slots first, then the permit: waiting for the schedule is not in flight.
    shared.pacer.acquire_many(batch.len() as u32).await;
    let permit = shared.limiter.acquire().await;
    let (shared, tx) = (shared.clone(), tx.clone());
    tokio::task::spawn_local(async move {
        deliver(&shared, batch, &tx).await;
        drop(permit);
    });
}

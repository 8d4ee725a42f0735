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

use crate::caller::{Caller, CallerConfig, CallerError, Outcome, StatusClass, Target};
use crate::limiter::{Limiter, LimiterConfig};
use crate::output::{open_lines, ResultLog};
use crate::pacer::Pacer;
use crate::send::jittered_backoff;
use crate::timer::on_own_thread;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The path events are posted to, under the base URL.
pub const EVENTS_PATH: &str = "/v1/events";

/// What a batch body adds around its events: `{"events":[` … `]}`. A batch stays within the
/// API's `MAX_BATCH_BYTES` (256 KiB), far below what a Lambda behind either front door takes:
/// "For synchronous invocations, the maximum payload size is 6 MB."
/// — <https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>
const ENVELOPE_BYTES: usize = r#"{"events":[]}"#.len();

/// Problems listed by line in the report, per kind (rejected, failed).
const LISTED: usize = 10;

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

/// One event line waiting to be sent.
struct Pending {
    line: u64,
    id: Option<String>,
    text: String,
}

/// What one line of the file is.
enum Line {
    Blank,
    Bad { code: &'static str, message: String },
    Event(Pending),
}

/// Reads one line: blank, bad (with the reason) or an event object (with its id).
fn classify(line: u64, bytes: &[u8], max_event_bytes: usize) -> Line {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(e) => {
            return Line::Bad {
                code: "invalid_utf8",
                message: format!("not UTF-8: {e}"),
            }
        }
    };
    if text.is_empty() {
        return Line::Blank;
    }
    if text.len() > max_event_bytes {
        return Line::Bad {
            code: "too_large",
            message: format!(
                "{} bytes: no batch the API takes can hold it (at most {max_event_bytes})",
                text.len()
            ),
        };
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Line::Event(Pending {
            line,
            id: map.get("id").and_then(|v| v.as_str()).map(str::to_owned),
            text: text.to_owned(),
        }),
        Ok(_) => Line::Bad {
            code: "not_an_object",
            message: "an event is one JSON object a line".to_owned(),
        },
        Err(e) => Line::Bad {
            code: "invalid_json",
            message: format!("not JSON: {e}"),
        },
    }
}

/// Collects events into batches under both limits.
struct Batcher {
    max_events: usize,
    max_bytes: usize,
    events: Vec<Pending>,
    /// Bytes of the events and their separating commas.
    bytes: usize,
}

impl Batcher {
    /// Adds `event`; a batch when it is full (or `event` would overflow the current one).
    fn push(&mut self, event: Pending) -> Option<Vec<Pending>> {
        let comma = usize::from(!self.events.is_empty());
        let mut full = None;
        if ENVELOPE_BYTES + self.bytes + comma + event.text.len() > self.max_bytes {
            full = self.take();
        }
        self.bytes += usize::from(!self.events.is_empty()) + event.text.len();
        self.events.push(event);
        if self.events.len() >= self.max_events {
            return self.take().or(full);
        }
        full
    }

    fn take(&mut self) -> Option<Vec<Pending>> {
        self.bytes = 0;
        Some(std::mem::take(&mut self.events)).filter(|e| !e.is_empty())
    }
}

/// A batch body: `{"events":[…]}` with each line's JSON as it was written.
fn body_of(events: &[Pending]) -> Bytes {
    let len = ENVELOPE_BYTES + events.iter().map(|e| e.text.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(br#"{"events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.text.as_bytes());
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// The API's answer to a batch (`sendtime_api::ingest`'s `EventResult`s), as far as it is
/// read here.
#[derive(Deserialize)]
struct Answer {
    results: Vec<AnsweredEvent>,
}

#[derive(Deserialize)]
struct AnsweredEvent {
    index: usize,
    status: LineStatus,
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<AnsweredError>,
}

#[derive(Deserialize)]
struct AnsweredError {
    code: String,
    message: String,
}

/// The results of a batch of `n` in the batch's order; `None` unless there is exactly one
/// per event.
fn read_answer(body: &[u8], n: usize) -> Option<Vec<AnsweredEvent>> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let mut slots: Vec<Option<AnsweredEvent>> = (0..n).map(|_| None).collect();
    for r in answer.results {
        let slot = slots.get_mut(r.index)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(r);
    }
    slots.into_iter().collect()
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

/// Final outcomes counted as they come, in bounded memory: the first rejected and failed
/// lines (by line number) are kept for the report.
#[derive(Default)]
struct Counts {
    applied: u64,
    unchanged: u64,
    rejected: u64,
    failed: u64,
    rejected_lines: BTreeMap<u64, (String, String)>,
    failed_lines: BTreeMap<u64, (String, String)>,
}

impl Counts {
    fn add(&mut self, r: &LineRecord) {
        let (count, listed) = match r.status {
            LineStatus::Applied => (&mut self.applied, None),
            LineStatus::Unchanged => (&mut self.unchanged, None),
            LineStatus::Rejected => (&mut self.rejected, Some(&mut self.rejected_lines)),
            LineStatus::Failed => (&mut self.failed, Some(&mut self.failed_lines)),
        };
        *count += 1;
        if let Some(list) = listed {
            let problem = (
                r.code.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
            );
            list.insert(r.line, problem);
            if list.len() > LISTED {
                list.pop_last();
            }
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.applied += other.applied;
        self.unchanged += other.unchanged;
        self.rejected += other.rejected;
        self.failed += other.failed;
        for (mine, theirs) in [
            (&mut self.rejected_lines, &other.rejected_lines),
            (&mut self.failed_lines, &other.failed_lines),
        ] {
            mine.extend(theirs.iter().map(|(l, p)| (*l, p.clone())));
            while mine.len() > LISTED {
                mine.pop_last();
            }
        }
    }
}

/// Every line counted once: this run's outcome of a line, or the earlier run's the
/// dispatcher skipped it for (a line is sent again only when it had none, or `failed`).
fn tally(reading: &Reading, this_run: &Counts) -> Report {
    let mut all = Counts::default();
    all.merge(&reading.earlier);
    all.merge(this_run);
    let listed = |lines: &BTreeMap<u64, (String, String)>| {
        lines
            .iter()
            .map(|(line, (code, message))| LineProblem {
                line: *line,
                code: code.clone(),
                message: message.clone(),
            })
            .collect()
    };
    let counted = reading.blank + all.applied + all.unchanged + all.rejected + all.failed;
    Report {
        lines: reading.lines,
        blank: reading.blank,
        applied: all.applied,
        unchanged: all.unchanged,
        rejected: all.rejected,
        failed: all.failed,
        unanswered: reading.lines.saturating_sub(counted),
        answered_earlier: reading.earlier.applied
            + reading.earlier.unchanged
            + reading.earlier.rejected,
        sent: reading.sent,
        first_rejected: listed(&all.rejected_lines),
        first_failed: listed(&all.failed_lines),
        ..Report::default()
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
    if let Some(beyond) = earlier.keys().copied().filter(|l| *l > reading.lines).min() {
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

/// What a batch's answer means for its events.
enum Next {
    /// Send these again after the wait.
    Retry(Vec<Pending>, Duration),
    /// Too large for the API: send each half on its own.
    Split(Vec<Pending>),
    /// Every event has its final outcome, or the send stopped.
    Done,
}

/// One batch to the end: every event's final record sent to the log, or none when the send
/// stops (those lines stay unanswered and the next run sends them). Batches refused as a
/// whole (429, 5xx, no answer, an unreadable answer) and the events the API answered
/// `failed` are sent again, with backoff or the server's `Retry-After`, up to the attempts.
async fn deliver(shared: &Shared, batch: Vec<Pending>, tx: &mpsc::Sender<LineRecord>) {
    let mut queue = VecDeque::from([(batch, 0u32)]);
    while let Some((mut pending, mut attempt)) = queue.pop_front() {
        loop {
            if shared.stopped() || pending.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > 1 {
                // Retries take pacing slots too: the rate bounds what the API receives.
                shared.pacer.acquire_many(pending.len() as u32).await;
                shared
                    .resent
                    .set(shared.resent.get() + pending.len() as u64);
            }
            match post(shared, pending, attempt, tx).await {
                Next::Retry(again, wait) => {
                    pending = again;
                    tokio::time::sleep(wait).await;
                }
                Next::Split(mut whole) => {
                    let half = whole.split_off(whole.len() / 2);
                    queue.push_front((half, attempt - 1));
                    queue.push_front((whole, attempt - 1));
                    break;
                }
                Next::Done => break,
            }
        }
    }
}

/// One post of `pending`, its final records sent to the log; what to do next.
async fn post(
    shared: &Shared,
    pending: Vec<Pending>,
    attempt: u32,
    tx: &mpsc::Sender<LineRecord>,
) -> Next {
    let config = &shared.config;
    shared.requests.set(shared.requests.get() + 1);
    shared.progress.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let posted = shared
        .caller
        .post_json(&shared.target, body_of(&pending))
        .await;
    let latency = started.elapsed();
    let last = attempt >= config.max_attempts;
    let backoff = || jittered_backoff(config.backoff_base, config.backoff_cap, attempt);
    let give_up = |code: String, message: String| {
        let records = pending.iter().map(|p| {
            final_record(
                p,
                attempt,
                LineStatus::Failed,
                None,
                Some((&code, &message)),
            )
        });
        records.collect::<Vec<_>>()
    };
    match posted.outcome {
        Outcome::Answered { .. } => {
            shared.limiter.on_success(latency);
            let Some(results) = read_answer(&posted.body, pending.len()) else {
                shared.refused("unreadable_answer".to_owned());
                if last {
                    let message = "the API's answer had no result per event".to_owned();
                    log_all(tx, give_up("unreadable_answer".to_owned(), message)).await;
                    return Next::Done;
                }
                return Next::Retry(pending, backoff());
            };
            let mut again = Vec::new();
            for (event, result) in pending.into_iter().zip(results) {
                if result.status == LineStatus::Failed && !last {
                    again.push(event);
                    continue;
                }
                let detail = result.record.or(result.reason);
                let error = result.error.as_ref().map(|e| (&e.code, &e.message));
                let record = final_record(&event, attempt, result.status, detail, error);
                let _ = tx.send(record).await;
            }
            if again.is_empty() {
                Next::Done
            } else {
                Next::Retry(again, backoff())
            }
        }
        Outcome::Refused {
            status,
            retry_after,
            code,
        } => {
            shared.refused(status.to_string());
            if status == 429 || status == 503 {
                shared.limiter.on_overload();
            }
            // 429 is how the front door throttles: "Exceeding the throttling limit or quota
            // returns a "429 Too Many Requests" or "Limit Exceeded" error response."
            // — https://aws.amazon.com/premiumsupport/knowledge-center/api-gateway-429-limit/
            // 5xx (the function failed or timed out) is retried too: events carry their id and
            // the store applies each once, so a batch applied before its answer was lost is
            // answered `unchanged` the second time.
            match StatusClass::of_status(status) {
                StatusClass::Throttled | StatusClass::ServerError if last => {
                    let code = code.unwrap_or_else(|| format!("http_{status}"));
                    let message = format!("the API answered {status} to every attempt");
                    log_all(tx, give_up(code, message)).await;
                    Next::Done
                }
                StatusClass::Throttled | StatusClass::ServerError => {
                    let wait = match retry_after {
                        Some(wait) => {
                            shared.pacer.pause_until(Instant::now() + wait);
                            wait
                        }
                        None => backoff(),
                    };
                    Next::Retry(pending, wait)
                }
                _ if status == 413 && pending.len() > 1 => Next::Split(pending),
                _ if status == 413 => {
                    let message = "the API refused the event as too large".to_owned();
                    let event = &pending[0];
                    let record = final_record(
                        event,
                        attempt,
                        LineStatus::Rejected,
                        None,
                        Some((&"too_large".to_owned(), &message)),
                    );
                    let _ = tx.send(record).await;
                    Next::Done
                }
                _ => {
                    let mut stop = shared.stop.borrow_mut();
                    stop.get_or_insert_with(|| refusal(config, status, code.as_deref()));
                    Next::Done
                }
            }
        }
        Outcome::NoAnswer(class) => {
            shared.refused(class.as_str().to_owned());
            shared.limiter.on_overload();
            if last {
                let message = format!("no answer from {} ({})", config.base_url, class.as_str());
                log_all(tx, give_up(class.as_str().to_owned(), message)).await;
                return Next::Done;
            }
            Next::Retry(pending, backoff())
        }
    }
}

async fn log_all(tx: &mpsc::Sender<LineRecord>, records: Vec<LineRecord>) {
    for record in records {
        let _ = tx.send(record).await;
    }
}

fn final_record(
    event: &Pending,
    attempts: u32,
    status: LineStatus,
    detail: Option<String>,
    error: Option<(&String, &String)>,
) -> LineRecord {
    LineRecord {
        line: event.line,
        id: event.id.clone(),
        status,
        detail,
        code: error.map(|e| e.0.clone()),
        message: error.map(|e| e.1.clone()),
        attempts,
    }
}

/// Why the send stops: what the API said, and what fixes it.
fn refusal(config: &EventsSendConfig, status: u16, code: Option<&str>) -> String {
    let url = format!("{}{EVENTS_PATH}", config.base_url.trim_end_matches('/'));
    let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let fix = match status {
        401 => "the API wants its write key: pass it with --key or SENDTIME_KEY",
        403 => "this key may not write events (a read key?): pass the write key with --key or SENDTIME_KEY",
        404 | 405 => "is --url the API's base URL, and does it serve POST /v1/events?",
        _ => "the API refused the batch; fix what it names and run the same command again",
    };
    format!("POST {url} answered {status}{code}: {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: u64, bytes: usize) -> Pending {
        let pad = "x".repeat(bytes.saturating_sub(r#"{"id":"e","p":""}"#.len()));
        let text = format!(r#"{{"id":"e","p":"{pad}"}}"#);
        assert_eq!(text.len(), bytes);
        Pending {
            line,
            id: Some("e".into()),
            text,
        }
    }

    #[test]
    fn batches_stay_under_both_the_count_and_the_byte_limit() {
        // GIVEN batches of at most 4 events and 200 bytes
        let mut batcher = Batcher {
            max_events: 4,
            max_bytes: 200,
            events: Vec::new(),
            bytes: 0,
        };
        // WHEN 30 events of 20 to 90 bytes are pushed
        let mut batches = Vec::new();
        for i in 0..30u64 {
            if let Some(b) = batcher.push(event(i + 1, 20 + (i as usize * 37) % 71)) {
                batches.push(b);
            }
        }
        batches.extend(batcher.take());
        // THEN every event is in one batch, in order, and every body is within both limits
        let lines: Vec<u64> = batches.iter().flatten().map(|e| e.line).collect();
        assert_eq!(lines, (1..=30).collect::<Vec<_>>());
        for b in &batches {
            assert!(b.len() <= 4 && !b.is_empty());
            let body = body_of(b);
            assert!(body.len() <= 200, "{}", body.len());
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed["events"].as_array().unwrap().len(), b.len());
        }
        assert!(
            batches.iter().any(|b| b.len() < 4),
            "the byte limit never bit"
        );
    }

    #[test]
    fn lines_are_read_as_blank_bad_or_an_event_with_its_id() {
        // GIVEN lines of each kind WHEN read THEN each is told apart, bad ones with a reason
        assert!(matches!(classify(1, b"  \r\n", 100), Line::Blank));
        let code = |bytes: &[u8]| match classify(1, bytes, 40) {
            Line::Bad { code, .. } => code,
            _ => "not bad",
        };
        assert_eq!(code(b"{\"id\":"), "invalid_json");
        assert_eq!(code(b"[1,2]"), "not_an_object");
        assert_eq!(code(b"\xff{}"), "invalid_utf8");
        assert_eq!(
            code(format!("{{\"p\":\"{}\"}}", "x".repeat(40)).as_bytes()),
            "too_large"
        );
        match classify(7, b"{\"id\":\"e7\",\"type\":\"activity\"}\n", 100) {
            Line::Event(p) => {
                assert_eq!((p.line, p.id.as_deref()), (7, Some("e7")));
                assert!(!p.text.ends_with('\n'));
            }
            _ => panic!("an event"),
        }
    }

    #[test]
    fn an_answer_is_used_only_with_exactly_one_result_per_event() {
        // GIVEN answers to a batch of two WHEN read THEN only a complete one is used, in order
        let ok = br#"{"results":[{"index":1,"status":"failed","error":{"code":"store_unavailable","message":"m"}},{"index":0,"status":"applied","record":"cart"}],"summary":{}}"#;
        let results = read_answer(ok, 2).unwrap();
        assert_eq!(results[0].status, LineStatus::Applied);
        assert_eq!(results[0].record.as_deref(), Some("cart"));
        assert_eq!(results[1].status, LineStatus::Failed);
        let missing = br#"{"results":[{"index":0,"status":"applied"}]}"#;
        assert!(read_answer(missing, 2).is_none());
        let twice =
            br#"{"results":[{"index":0,"status":"applied"},{"index":0,"status":"applied"}]}"#;
        assert!(read_answer(twice, 2).is_none());
        assert!(read_answer(b"<html>", 2).is_none());
    }

    #[test]
    fn the_tally_counts_every_line_once_and_lists_the_first_problems_by_line() {
        // GIVEN an earlier run that answered lines 1 (applied) and 3 (rejected), and this
        // run's outcomes for lines 2 (failed earlier, unchanged now) and 5–20 (rejected)
        let rec = |line, status| LineRecord {
            line,
            id: None,
            status,
            detail: None,
            code: Some(format!("c{line}")),
            message: Some("m".into()),
            attempts: 1,
        };
        let mut reading = Reading {
            lines: 20,
            blank: 1,
            earlier: Counts::default(),
            sent: 17,
        };
        reading.earlier.add(&rec(1, LineStatus::Applied));
        reading.earlier.add(&rec(3, LineStatus::Rejected));
        let mut this_run = Counts::default();
        this_run.add(&rec(2, LineStatus::Unchanged));
        for line in (5..=20).rev() {
            this_run.add(&rec(line, LineStatus::Rejected));
        }
        // WHEN tallied
        let r = tally(&reading, &this_run);
        // THEN each line counts once (line 4 blank), and the first ten problems are listed
        assert_eq!(
            (
                r.applied,
                r.unchanged,
                r.rejected,
                r.failed,
                r.blank,
                r.unanswered
            ),
            (1, 1, 17, 0, 1, 0)
        );
        assert_eq!(r.answered_earlier, 2);
        let listed: Vec<u64> = r.first_rejected.iter().map(|p| p.line).collect();
        assert_eq!(listed, [3, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        assert_eq!(r.first_rejected[0].code, "c3");
    }
}

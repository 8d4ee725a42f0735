//! Braze Currents into sendtime's engagement events (`sendtime events import --from
//! currents`). Currents writes Avro object container files, one event type per folder
//! (`…/event_type=users.messages.email.Open/date=YYYY-MM-DD-HH/…/….avro`); the import
//! selects files by that `event_type=` segment only ([`kinds`]), reads each with the writer
//! schema of its header (null, deflate or snappy blocks), maps every record to an event or a
//! counted reason to drop it ([`record`], [`currency`]), puts the kept ones in time order
//! in bounded memory ([`sort`]) with duplicate ids dropped, and merges them into `--out`,
//! remembering what it read for the next run ([`state`]). [`report`] says what happened;
//! [`synth`] writes Currents files from events (known-truth inputs for tests and benchmarks).
//!
//! Facts it is built on, from Braze's documentation:
//! - "Currents guarantees 'at-least-once' delivery of events, meaning that duplicate events
//!   can occasionally be written to your storage bucket … you can use the unique identifier
//!   field that is sent with every event (id) to deduplicate events"
//!   (<https://www.braze.com/docs/user_guide/data_and_analytics/braze_currents/event_delivery_semantics>);
//! - `date=` is the hour the events were queued, not their `time`: a later file can hold
//!   earlier events (issue 22, BRIEF §7), hence a sort over every file and an id set (not a
//!   time watermark) for incremental runs.

/// Money in minor units by ISO 4217 currency.
pub mod currency;
/// Which Currents event types map to which sendtime events (by `event_type=`).
pub mod kinds;
/// One Currents Avro record to one sendtime event, or why it is dropped.
pub mod record;
/// What an import read, dropped (and why) and wrote.
pub mod report;
/// Time order in bounded memory: buffered, spilled and merged; duplicate ids dropped.
pub mod sort;
/// What earlier runs read and wrote: object keys and event-id hashes beside `--out`.
pub mod state;
/// Currents Avro files made from sendtime events, for tests and the benchmark.
pub mod synth;

use kinds::{event_type_of_key, tie_rank, Kind};
use record::{Dropped, Fields};
use report::ImportReport;
use serde::Deserialize;
use sort::{ExternalSort, Record, SortKey};
use state::State;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The sort buffer's size unless told otherwise.
pub const DEFAULT_SORT_MEMORY_MB: usize = 256;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The state beside `--out` cannot be used.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// Writing the output or the sort's temporary files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The existing output is not what the state says it is.
    #[error("{path}: {reason}")]
    Output {
        /// The output file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A file of the source the import will read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    kind: Kind,
    event_type: String,
    key: String,
    identity: String,
}

/// One import run: plan and read files, then [`Importer::finish`].
#[derive(Debug)]
pub struct Importer {
    out: PathBuf,
    state: State,
    earlier_ids: Vec<u64>,
    new_ids: Vec<u64>,
    read_keys: Vec<(String, String)>,
    sort: ExternalSort,
    report: ImportReport,
}

impl Importer {
    /// Starts a run from `source` into `out`, with earlier runs' state when there is one;
    /// the sort keeps about `sort_memory_bytes` of events in memory.
    pub fn open(out: &Path, source: &str, sort_memory_bytes: usize) -> Result<Self, ImportError> {
        let (state, earlier_ids) = state::load(out, source)?;
        Ok(Self {
            out: out.to_path_buf(),
            state,
            earlier_ids,
            new_ids: Vec::new(),
            read_keys: Vec::new(),
            sort: ExternalSort::new(sort_memory_bytes),
            report: ImportReport {
                source: source.to_owned(),
                ..ImportReport::default()
            },
        })
    }

    /// Whether to read the object `key` (whose ETag, or `size:N` for a local file, is
    /// `identity`): `None` (counted) when an earlier run read it, its key has no
    /// `event_type=`, or its event type is not mapped.
    pub fn plan(&mut self, key: &str, identity: &str) -> Option<Planned> {
        if self.state.objects.get(key).map(String::as_str) == Some(identity) {
            self.report.already_read += 1;
            return None;
        }
        let Some(event_type) = event_type_of_key(key) else {
            ImportReport::note(&mut self.report.no_event_type, key.to_owned());
            return None;
        };
        let Some(kind) = Kind::of(event_type) else {
            *self
                .report
                .unmapped_files
                .entry(event_type.to_owned())
                .or_default() += 1;
            return None;
        };
        Some(Planned {
            kind,
            event_type: event_type.to_owned(),
            key: key.to_owned(),
            identity: identity.to_owned(),
        })
    }

    /// Reads one planned file (`location` names it in messages). A file that cannot be read
    /// to its end is counted as unreadable and not marked read; its good records are kept.
    pub fn read(
        &mut self,
        file: &Planned,
        location: &str,
        input: impl Read,
    ) -> Result<(), ImportError> {
        let counts = self.report.read.entry(file.event_type.clone()).or_default();
        counts.0 += 1;
        let reader = match apache_avro::Reader::new(input) {
            Ok(r) => r,
            Err(e) => {
                ImportReport::note(
                    &mut self.report.unreadable,
                    format!("{location}: not an Avro object container file: {e}"),
                );
                return Ok(());
            }
        };
        let fields = match Fields::of(reader.writer_schema()) {
            Ok(f) => f,
            Err(why) => {
                ImportReport::note(&mut self.report.unreadable, format!("{location}: {why}"));
                return Ok(());
            }
        };
        let mut number = 0u64;
        for value in reader {
            number += 1;
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    ImportReport::note(
                        &mut self.report.unreadable,
                        format!("{location}: record {number} cannot be decoded: {e}"),
                    );
                    self.count_records(&file.event_type, number - 1);
                    return Ok(());
                }
            };
            self.take(file.kind, &fields, &value, location, number)?;
        }
        self.count_records(&file.event_type, number);
        self.read_keys
            .push((file.key.clone(), file.identity.clone()));
        Ok(())
    }

    fn count_records(&mut self, event_type: &str, records: u64) {
        if let Some(c) = self.report.read.get_mut(event_type) {
            c.1 += records;
        }
    }

    fn take(
        &mut self,
        kind: Kind,
        fields: &Fields,
        value: &apache_avro::types::Value,
        location: &str,
        number: u64,
    ) -> Result<(), ImportError> {
        let r = &mut self.report;
        match record::map(kind, fields, value) {
            Ok(mapped) => {
                if self.earlier_ids.binary_search(&mapped.id).is_ok() {
                    r.duplicates_earlier += 1;
                    return Ok(());
                }
                r.extras_unreadable += u64::from(mapped.extras_unreadable);
                let key = (
                    mapped.event.at.timestamp(),
                    tie_rank(mapped.event.event),
                    mapped.id,
                );
                let line = serde_json::to_vec(&mapped.event).map_err(|e| ImportError::Io {
                    path: location.to_owned(),
                    source: std::io::Error::other(e),
                })?;
                self.new_ids.push(mapped.id);
                self.sort
                    .push(Record { key, line })
                    .map_err(|source| ImportError::Io {
                        path: "the sort's temporary files".into(),
                        source,
                    })?;
            }
            Err(Dropped::MachineOpen) => r.machine_opens += 1,
            Err(Dropped::BotClick) => r.bot_clicks += 1,
            Err(Dropped::OtherCustomEvent(name)) => {
                *r.other_custom_events.entry(name).or_default() += 1
            }
            Err(Dropped::UnsupportedCurrency(code)) => {
                *r.unsupported_currency.entry(code).or_default() += 1
            }
            Err(Dropped::Bad(why)) => {
                ImportReport::note(&mut r.bad, format!("{location} record {number}: {why}"))
            }
        }
        Ok(())
    }

    /// Sorts and writes the new events into `--out` (merged after the earlier runs' events
    /// in time order), saves the state, and returns the report.
    pub fn finish(mut self) -> Result<ImportReport, ImportError> {
        let out_name = self.out.display().to_string();
        let io = |path: &str| {
            let path = path.to_owned();
            move |source| ImportError::Io { path, source }
        };
        let earlier_run = !self.state.objects.is_empty() || self.state.events > 0;
        let mut old = if earlier_run {
            let file = std::fs::File::open(&self.out).map_err(io(&out_name))?;
            Some(OldLines::new(
                BufReader::with_capacity(1 << 20, file),
                &out_name,
            ))
        } else {
            None
        };
        let mut temp_name = self.out.as_os_str().to_owned();
        temp_name.push(".tmp");
        let temp = PathBuf::from(temp_name);
        let temp_label = temp.display().to_string();
        let file = std::fs::File::create(&temp).map_err(io(&temp_label))?;
        let mut writer = Writer {
            out: BufWriter::with_capacity(1 << 20, file),
            total: 0,
            first: None,
            last: None,
        };
        let mut written = std::collections::BTreeMap::new();
        self.report.sort_runs = self.sort.runs();
        self.report.sort_peak_bytes = self.sort.peak_bytes();
        let sort = std::mem::replace(&mut self.sort, ExternalSort::new(0));
        let mut failure: Option<ImportError> = None;
        let repeats = sort
            .finish(|record| {
                if let Some(old) = old.as_mut() {
                    if let Err(e) = old.write_until(record.key, &mut writer) {
                        let text = e.to_string();
                        failure.get_or_insert(e);
                        return Err(std::io::Error::other(text));
                    }
                }
                writer.line(record.key.0, &record.line)?;
                let event = tie_event(record.key.1);
                *written.entry(event).or_insert(0u64) += 1;
                Ok(())
            })
            .map_err(|source| ImportError::Io {
                path: temp_label.clone(),
                source,
            });
        if let Some(e) = failure {
            return Err(e);
        }
        repeats.map(|n| self.report.duplicates = n)?;
        if let Some(mut old) = old {
            old.write_until((i64::MAX, u8::MAX, u64::MAX), &mut writer)?;
            if old.lines != self.state.events {
                return Err(ImportError::Output {
                    path: out_name,
                    reason: format!(
                        "holds {} events but the state of the last run records {}: a run was interrupted or the file was changed; delete it and its .currents-* files to start over",
                        old.lines, self.state.events
                    ),
                });
            }
        }
        writer.out.flush().map_err(io(&temp_label))?;
        drop(writer.out);
        std::fs::rename(&temp, &self.out).map_err(io(&out_name))?;
        self.report.written = written;
        self.report.total = writer.total;
        self.report.span = writer.first.zip(writer.last);
        self.new_ids.sort_unstable();
        self.new_ids.dedup();
        let ids = state::union(&self.earlier_ids, &self.new_ids);
        self.state.objects.extend(self.read_keys.drain(..));
        self.state.events = writer.total;
        state::save(&self.out, &self.state, &ids)?;
        Ok(self.report)
    }
}

fn tie_event(rank: u8) -> sendtime_targeting::events::EventType {
    use sendtime_targeting::events::EventType as E;
    [
        E::Sent,
        E::Bounced,
        E::Opened,
        E::Clicked,
        E::Visit,
        E::Purchase,
        E::Unsubscribed,
    ]
    .into_iter()
    .find(|e| tie_rank(*e) == rank)
    .unwrap_or(E::Visit)
}

struct Writer {
    out: BufWriter<std::fs::File>,
    total: u64,
    first: Option<chrono::DateTime<chrono::Utc>>,
    last: Option<chrono::DateTime<chrono::Utc>>,
}

impl Writer {
    fn line(&mut self, at: i64, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.total += 1;
        let at = chrono::DateTime::from_timestamp(at, 0);
        if self.first.is_none() {
            self.first = at;
        }
        self.last = at;
        Ok(())
    }
}

/// The earlier runs' output, read a line at a time for the merge.
struct OldLines<R> {
    input: R,
    name: String,
    pending: Option<(SortKey, String)>,
    lines: u64,
    done: bool,
}

#[derive(Deserialize)]
struct TimeAndType {
    at: chrono::DateTime<chrono::Utc>,
    event: sendtime_targeting::events::EventType,
}

impl<R: BufRead> OldLines<R> {
    fn new(input: R, name: &str) -> Self {
        Self {
            input,
            name: name.to_owned(),
            pending: None,
            lines: 0,
            done: false,
        }
    }

    fn peek(&mut self) -> Result<Option<SortKey>, ImportError> {
        while self.pending.is_none() && !self.done {
            let mut line = String::new();
            let n = self
                .input
                .read_line(&mut line)
                .map_err(|source| ImportError::Io {
                    path: self.name.clone(),
                    source,
                })?;
            if n == 0 {
                self.done = true;
                break;
            }
            let text = line.trim_end();
            if text.is_empty() {
                continue;
            }
            self.lines += 1;
            let head: TimeAndType =
                serde_json::from_str(text).map_err(|e| ImportError::Output {
                    path: self.name.clone(),
                    reason: format!("line {}: {e}", self.lines),
                })?;
            // Ties go to the earlier run's line: id hash 0 sorts before every new one.
            let key = (head.at.timestamp(), tie_rank(head.event), 0);
            let len = text.len();
            line.truncate(len);
            self.pending = Some((key, line));
        }
        Ok(self.pending.as_ref().map(|(k, _)| *k))
    }

    /// Writes the earlier lines that sort at or before `key` (time and tie rank).
    fn write_until(&mut self, key: SortKey, out: &mut Writer) -> Result<(), ImportError> {
        while let Some(k) = self.peek()? {
            if (k.0, k.1) > (key.0, key.1) {
                break;
            }
            if let Some((k, line)) = self.pending.take() {
                out.line(k.0, line.as_bytes())
                    .map_err(|source| ImportError::Io {
                        path: self.name.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }
}

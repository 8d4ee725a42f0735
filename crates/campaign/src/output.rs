//! The result log is also the checkpoint: one JSON line per (recipient, block), appended
//! once its outcome is final. `--resume` reads it back, drops a torn last line (the process
//! was killed mid-write), and skips every key already there — so across any number of
//! crashes the log ends with every recipient exactly once.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

/// One line of the result log: the final outcome of one (recipient, block) key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The recipient's user id.
    pub user_id: String,
    /// The block name, as in the URL path.
    pub block: String,
    /// `ok` (2xx), `client_error` (4xx other than 429: not retried), `failed` (gave up).
    pub outcome: String,
    /// HTTP status of the last attempt; `None` when no response came (timeout, connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// HTTP attempts made for this key, the first included.
    pub attempts: u32,
    /// Latency of the last attempt, ms.
    pub latency_ms: f64,
    /// The answer's `eligible`, read from a 2xx JSON body; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible: Option<bool>,
    /// The answer's `stage`, from a 2xx JSON body that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The answer's `source`, from a 2xx JSON body that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// On failure: the API's error code, `http_{status}`, `timeout`, `connect_error` or
    /// `transport_error`; `None` on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why the result log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file exists and `--resume` was not given; holds the path.
    #[error("{0} already exists: pass --resume to continue that send, or choose another --out")]
    Exists(String),
    /// Opening, reading back or truncating the file failed.
    #[error("cannot use --out {path}: {source}")]
    Io {
        /// The `--out` path, for the message.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The open result log, appended to as outcomes become final; made by [`open`].
pub struct ResultLog {
    file: std::io::BufWriter<File>,
    since_sync: usize,
    syncer: Option<Syncer>,
}

/// Records between two syncs to disk.
const SYNC_EVERY: usize = 1_000;

/// Syncs the log to disk on a thread of its own, so a slow disk never stalls the send: a
/// request made while one sync runs is folded into the next. The first error is kept.
struct Syncer {
    wake: std::sync::mpsc::SyncSender<()>,
    error: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let (wake, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = error.clone();
        let thread = std::thread::Builder::new()
            .name("result-log-sync".into())
            .spawn(move || {
                for () in asked {
                    if let Err(e) = file.sync_data() {
                        let mut slot = seen.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                    }
                }
            })?;
        Ok(Self {
            wake,
            error,
            thread,
        })
    }

    /// Asks for a sync; returns the first error a sync met so far.
    fn request(&self) -> std::io::Result<()> {
        let _ = self.wake.try_send(());
        self.take_error()
    }

    fn take_error(&self) -> std::io::Result<()> {
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for the syncs asked for to end; their first error.
    fn stop(self) -> std::io::Result<()> {
        let Self {
            wake,
            error,
            thread,
        } = self;
        drop(wake);
        let _ = thread.join();
        let first = error.lock().unwrap_or_else(|p| p.into_inner()).take();
        first.map_or(Ok(()), Err)
    }
}

/// Opens the log; with `resume`, returns the keys already done.
pub fn open(
    path: &Path,
    resume: bool,
) -> Result<(ResultLog, HashSet<(String, String)>), OutputError> {
    let shown = path.display().to_string();
    if path.exists() && !resume {
        return Err(OutputError::Exists(shown));
    }
    let reopened = open_lines::<ResultRecord>(path).map_err(|source| OutputError::Io {
        path: shown.clone(),
        source,
    })?;
    let done = reopened
        .records
        .into_iter()
        .map(|r| (r.user_id, r.block))
        .collect();
    Ok((reopened.log, done))
}

/// An append-only log opened again: its complete records, and the log to append to.
pub struct Reopened<T> {
    /// The log, positioned after the last complete record.
    pub log: ResultLog,
    /// Every complete record, in the order written.
    pub records: Vec<T>,
    /// Bytes dropped from the end: a line cut by a crash (or anything after an unreadable one).
    pub dropped_bytes: u64,
}

/// Opens (creating it if missing) an append-only JSON Lines log of `T` records kept the way
/// the result log is — the same torn-line recovery, flushing and background syncs — for any
/// other checkpoint (e.g. `events send`'s state file): complete records are read back, and
/// from the first line cut by a crash or unreadable as a `T`, the file is truncated.
pub fn open_lines<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Reopened<T>> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // Keep complete lines only; a line cut by a crash is dropped and its key redone.
    let mut records = Vec::new();
    let mut good_len: u64 = 0;
    let mut reader = BufReader::new(&file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str::<T>(line.trim_end()) {
            Ok(r) => {
                records.push(r);
                good_len += n as u64;
            }
            Err(_) => break,
        }
    }
    drop(reader);
    let total = file.metadata()?.len();
    file.set_len(good_len)?;
    file.seek(SeekFrom::End(0))?;
    let syncer = Syncer::start(&file)?;
    Ok(Reopened {
        log: ResultLog {
            file: std::io::BufWriter::new(file),
            since_sync: 0,
            syncer: Some(syncer),
        },
        records,
        dropped_bytes: total.saturating_sub(good_len),
    })
}

impl ResultLog {
    /// Appends one record and hands it to the OS at once (a `kill -9` loses nothing
    /// written); see [`ResultLog::push`] and [`ResultLog::flush`].
    pub fn append(&mut self, record: &ResultRecord) -> std::io::Result<()> {
        self.push(record)?;
        self.flush()
    }

    /// Buffers one record; [`ResultLog::flush`] hands the buffered ones to the OS. A send
    /// pushes every outcome waiting, then flushes: one write for a batch, and a record
    /// waits in the buffer no longer than it would have waited to be logged.
    pub fn push(&mut self, record: &ResultRecord) -> std::io::Result<()> {
        self.push_line(record)
    }

    /// Buffers one record of any other log kept this way (see [`open_lines`]).
    pub fn push_line<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.file, record)?;
        self.file.write_all(b"\n")?;
        self.since_sync += 1;
        Ok(())
    }

    /// Hands every pushed record to the OS (a `kill -9` then loses nothing); every 1,000
    /// records, also asks for a sync to disk, made on a thread of its own.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.since_sync >= SYNC_EVERY {
            self.since_sync = 0;
            match &self.syncer {
                Some(s) => s.request()?,
                None => self.file.get_ref().sync_data()?,
            }
        }
        Ok(())
    }

    /// Flushes and syncs the log to disk; call once when the send ends.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if let Some(s) = self.syncer.take() {
            s.stop()?;
        }
        self.file.get_ref().sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str) -> ResultRecord {
        ResultRecord {
            user_id: user.into(),
            block: "cart".into(),
            outcome: "ok".into(),
            status: Some(200),
            attempts: 1,
            latency_ms: 1.0,
            eligible: Some(true),
            stage: None,
            source: None,
            error: None,
        }
    }

    #[test]
    fn resume_drops_a_torn_line_and_returns_done_keys() {
        let dir = std::env::temp_dir().join(format!("sendtime-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let _ = std::fs::remove_file(&path);
        let (mut log, done) = open(&path, false).unwrap();
        assert!(done.is_empty());
        log.append(&rec("u1")).unwrap();
        log.append(&rec("u2")).unwrap();
        log.finish().unwrap();
        // a crash mid-write
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"user_id\":\"u3\",\"blo").unwrap();
        drop(f);
        assert!(matches!(open(&path, false), Err(OutputError::Exists(_))));
        let (mut log, done) = open(&path, true).unwrap();
        assert_eq!(done.len(), 2);
        assert!(done.contains(&("u2".to_string(), "cart".to_string())));
        log.append(&rec("u3")).unwrap();
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<ResultRecord>(l).is_ok()));
        std::fs::remove_dir_all(&dir).ok();
    }
}

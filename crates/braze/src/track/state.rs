//! The push state: an append-only JSON Lines log of every user Braze accepted, with the
//! values it accepted. It is both the checkpoint and the memory of a push (the campaign
//! sender's result log, `sendtime_campaign::output`, is the model):
//! - a batch is appended only after Braze answered 2xx for it, so a run killed at any point
//!   and started again sends each user not yet logged — a batch in flight at the kill is sent
//!   again with the same values, which writes the same attribute twice, never a wrong one;
//! - a user whose score and time equal the last logged ones is skipped, so a second push of
//!   unchanged scores sends nothing (Braze: "customers should only pass deltas (changing
//!   data) to minimize unnecessary data point logging" —
//!   https://www.braze.com/docs/api/endpoints/user_data/post_user_track/).
//!
//! The first line names the endpoint the log belongs to: a state of another workspace must
//! not make this one skip users. A torn last line (the process died mid-write) is dropped.

use super::attributes::ScoreUpdate;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The first line of a state file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Format version, 1.
    sendtime_push_state: u32,
    /// The Braze REST endpoint the values were written to.
    endpoint: String,
}

/// One accepted user.
#[derive(Debug, Serialize, Deserialize)]
struct Entry<'a> {
    external_id: std::borrow::Cow<'a, str>,
    sendtime_score: f64,
    sendtime_scored_at: std::borrow::Cow<'a, str>,
}

/// The values Braze last accepted for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// `sendtime_score` as sent.
    pub score: f64,
    /// `sendtime_scored_at` as sent.
    pub scored_at: String,
}

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or truncating failed.
    #[error("cannot use --state {path}: {source}")]
    Io {
        /// The state path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A complete line in the middle of the file is not a state record.
    #[error("--state {path}: line {line} is not a push state record ({reason}); move the file away to push every user again")]
    Corrupt {
        /// The state path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        reason: String,
    },
    /// The file belongs to a push to another endpoint.
    #[error("--state {path} records pushes to {found}, not {wanted}: give this endpoint its own --state")]
    OtherEndpoint {
        /// The state path.
        path: String,
        /// The endpoint in the file.
        found: String,
        /// The endpoint of this push.
        wanted: String,
    },
}

/// The open state log; see the module documentation.
pub struct PushedLog {
    path: PathBuf,
    file: BufWriter<File>,
    pushed: HashMap<String, Pushed>,
    lines: usize,
    /// A torn last line dropped on open, if any.
    pub dropped_torn_line: bool,
}

impl PushedLog {
    /// Opens (or creates) the log at `path` for `endpoint` and reads back what it holds.
    pub fn open(path: &Path, endpoint: &str) -> Result<Self, StateError> {
        let shown = path.display().to_string();
        let io = |source| StateError::Io {
            path: shown.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut pushed = HashMap::new();
        let (mut good_len, mut lines, mut dropped) = (0u64, 0usize, false);
        let mut header_seen = false;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            if !line.ends_with('\n') {
                // The last line, cut by a crash: dropped, its users sent again.
                dropped = true;
                break;
            }
            let text = line.trim_end();
            let parsed = if header_seen {
                serde_json::from_str::<Entry>(text).map(|e| {
                    let value = Pushed {
                        score: e.sendtime_score,
                        scored_at: e.sendtime_scored_at.into_owned(),
                    };
                    pushed.insert(e.external_id.into_owned(), value);
                })
            } else {
                match serde_json::from_str::<Header>(text) {
                    Ok(h) if h.endpoint != endpoint => {
                        return Err(StateError::OtherEndpoint {
                            path: shown,
                            found: h.endpoint,
                            wanted: endpoint.to_owned(),
                        })
                    }
                    Ok(_) => {
                        header_seen = true;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match parsed {
                Ok(()) => {
                    good_len += n as u64;
                    lines += 1;
                }
                Err(e) => {
                    // A complete line that does not parse is a torn write only when last.
                    let mut rest = String::new();
                    if reader.read_line(&mut rest).map_err(io)? == 0 {
                        dropped = true;
                        break;
                    }
                    return Err(StateError::Corrupt {
                        path: shown,
                        line: lines + 1,
                        reason: e.to_string(),
                    });
                }
            }
        }
        drop(reader);
        file.set_len(good_len).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut log = Self {
            path: path.to_owned(),
            file: BufWriter::with_capacity(1 << 16, file),
            pushed,
            lines,
            dropped_torn_line: dropped,
        };
        if !header_seen {
            log.write_header(endpoint).map_err(io)?;
        }
        Ok(log)
    }

    fn write_header(&mut self, endpoint: &str) -> std::io::Result<()> {
        serde_json::to_writer(
            &mut self.file,
            &Header {
                sendtime_push_state: 1,
                endpoint: endpoint.to_owned(),
            },
        )?;
        self.file.write_all(b"\n")?;
        self.lines += 1;
        self.file.flush()
    }

    /// Users Braze has accepted at some time (with any values).
    pub fn known(&self) -> usize {
        self.pushed.len()
    }

    /// Whether Braze last accepted exactly these values for this user.
    pub fn is_unchanged(&self, update: &ScoreUpdate) -> bool {
        self.pushed.get(&update.external_id).is_some_and(|p| {
            p.score.to_bits() == update.score.to_bits() && p.scored_at == update.scored_at_text()
        })
    }

    /// Logs users Braze accepted and hands the lines to the OS at once (a `kill -9` after
    /// this returns loses none of them).
    pub fn append<'a>(
        &mut self,
        users: impl IntoIterator<Item = &'a ScoreUpdate>,
    ) -> std::io::Result<()> {
        for u in users {
            let scored_at = u.scored_at_text();
            serde_json::to_writer(
                &mut self.file,
                &Entry {
                    external_id: u.external_id.as_str().into(),
                    sendtime_score: u.score,
                    sendtime_scored_at: scored_at.as_str().into(),
                },
            )?;
            self.file.write_all(b"\n")?;
            self.lines += 1;
            self.pushed.insert(
                u.external_id.clone(),
                Pushed {
                    score: u.score,
                    scored_at,
                },
            );
        }
        self.file.flush()
    }

    /// Ends the push: when the log has grown past twice the users it knows (pushes of changed
    /// scores append), rewrites it with the last values only (a new file renamed over the old
    /// one, so a crash leaves one or the other whole); then syncs it to disk.
    pub fn finish(mut self, endpoint: &str) -> std::io::Result<()> {
        self.file.flush()?;
        if self.lines > 2 * (self.pushed.len() + 1) {
            let tmp = self.path.with_extension("compacting");
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
            serde_json::to_writer(
                &mut out,
                &Header {
                    sendtime_push_state: 1,
                    endpoint: endpoint.to_owned(),
                },
            )?;
            out.write_all(b"\n")?;
            for (id, p) in &self.pushed {
                serde_json::to_writer(
                    &mut out,
                    &Entry {
                        external_id: id.as_str().into(),
                        sendtime_score: p.score,
                        sendtime_scored_at: p.scored_at.as_str().into(),
                    },
                )?;
                out.write_all(b"\n")?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            return Ok(());
        }
        self.file.get_ref().sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn update(id: &str, score: f64) -> ScoreUpdate {
        ScoreUpdate {
            external_id: id.into(),
            score,
            scored_at: Utc
                .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sendtime-push-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_logged_users_are_unchanged() {
        // GIVEN a log of two accepted users and a line cut by a crash
        let path = temp("torn.jsonl");
        let mut log = PushedLog::open(&path, "https://rest.example").unwrap();
        log.append(&[update("u1", 0.25), update("u2", 0.5)])
            .unwrap();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"external_id":"u3","sendt"#).unwrap();
        drop(f);
        // WHEN it is opened again
        let log = PushedLog::open(&path, "https://rest.example").unwrap();
        // THEN the torn line is gone, u1 and u2 are known with their values, u3 is not
        assert!(log.dropped_torn_line);
        assert_eq!(log.known(), 2);
        assert!(log.is_unchanged(&update("u1", 0.25)));
        assert!(!log.is_unchanged(&update("u1", 0.26)));
        assert!(!log.is_unchanged(&update("u3", 0.25)));
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_state_of_another_endpoint_is_refused_and_a_corrupt_middle_line_named() {
        // GIVEN a log written for one endpoint
        let path = temp("other.jsonl");
        let mut log = PushedLog::open(&path, "https://rest.a").unwrap();
        log.append(&[update("u1", 0.25)]).unwrap();
        drop(log);
        // WHEN it is opened for another
        let err = PushedLog::open(&path, "https://rest.b").err().unwrap();
        // THEN the error names both endpoints
        let text = err.to_string();
        assert!(
            text.contains("https://rest.a") && text.contains("https://rest.b"),
            "{text}"
        );
        // AND a broken line followed by a good one is corruption, named by line
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n{\"external_id\":\"u2\",\"sendtime_score\":0.1,\"sendtime_scored_at\":\"x\"}\n")
            .unwrap();
        drop(f);
        let err = PushedLog::open(&path, "https://rest.a").err().unwrap();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn finishing_a_log_grown_past_twice_its_users_keeps_the_last_values() {
        // GIVEN one user pushed five times with changing scores
        let path = temp("compact.jsonl");
        let mut log = PushedLog::open(&path, "https://rest.example").unwrap();
        for i in 0..5 {
            log.append(&[update("u1", f64::from(i) / 10.0)]).unwrap();
        }
        // WHEN the push finishes
        log.finish("https://rest.example").unwrap();
        // THEN the file holds the header and the last value only
        let log = PushedLog::open(&path, "https://rest.example").unwrap();
        assert!(log.is_unchanged(&update("u1", 0.4)));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}

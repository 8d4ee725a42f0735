//! What earlier runs of an incremental import did, kept beside `--out`: the objects read
//! (key and ETag, or size for local files) and a hash of every event id written.
//!
//! Why an id set and not a time watermark: Currents groups files by the hour Braze *queued*
//! the events, not by event time, and late events exist — a file of a later hour can hold
//! events older than any already written. A watermark on event time would drop them; one on
//! the file's `date=` hour would still read a redelivered event twice. Objects already read
//! are skipped (cheap), and the ids catch a redelivery in a new object (at-least-once).
//!
//! Two files: `OUT.currents-state.json` (objects, counts; readable) and `OUT.currents-ids`
//! (the sorted 64-bit id hashes, 8 bytes each, little endian).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Format version of the state file.
const VERSION: u32 = 1;

/// The readable half of the state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// The source the objects came from (a run over another source is refused).
    pub source: String,
    /// Object key → its identity when read (S3 ETag, or `size:N` for a local file).
    pub objects: BTreeMap<String, String>,
    /// Events in `--out` after the last run.
    pub events: u64,
}

/// Why the state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A state file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not this format.
    #[error("{path}: not an import state file ({reason}); delete it (and --out) to start over")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The state is from another source.
    #[error("{path} records an import from '{recorded}', not '{given}': use another --out, or delete {path} to start over")]
    OtherSource {
        /// The state file.
        path: String,
        /// The source it records.
        recorded: String,
        /// The source given now.
        given: String,
    },
    /// State without its output, or the reverse.
    #[error("{0}")]
    Mismatch(String),
}

/// The state files that belong to an output file.
pub fn paths(out: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with(".currents-state.json"), with(".currents-ids"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The state of earlier runs into `out` from `source` (empty for a first run), with the
/// sorted id hashes.
pub fn load(out: &Path, source: &str) -> Result<(State, Vec<u64>), StateError> {
    let (state_path, ids_path) = paths(out);
    if !state_path.exists() {
        return Ok((
            State {
                version: VERSION,
                source: source.to_owned(),
                ..State::default()
            },
            Vec::new(),
        ));
    }
    if !out.exists() {
        return Err(StateError::Mismatch(format!(
            "{} exists but --out {} does not: delete {} (and {}) to start over",
            state_path.display(),
            out.display(),
            state_path.display(),
            ids_path.display()
        )));
    }
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: State = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: state_path.display().to_string(),
        reason: e.to_string(),
    })?;
    if state.version != VERSION {
        return Err(StateError::Corrupt {
            path: state_path.display().to_string(),
            reason: format!("version {} (expected {VERSION})", state.version),
        });
    }
    if state.source != source {
        return Err(StateError::OtherSource {
            path: state_path.display().to_string(),
            recorded: state.source,
            given: source.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&ids_path)
        .map(BufReader::new)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(&ids_path))?;
    if bytes.len() % 8 != 0 {
        return Err(StateError::Corrupt {
            path: ids_path.display().to_string(),
            reason: format!("{} bytes is not a whole number of 8-byte ids", bytes.len()),
        });
    }
    let ids = bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    Ok((state, ids))
}

/// Writes the state and the sorted ids beside `out` (each to a temporary name, then renamed
/// over the old one, so a crash leaves the old state or the new one).
pub fn save(out: &Path, state: &State, ids: &[u64]) -> Result<(), StateError> {
    let (state_path, ids_path) = paths(out);
    let temp = |p: &Path| {
        let mut name = p.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let ids_temp = temp(&ids_path);
    {
        let file = std::fs::File::create(&ids_temp).map_err(io(&ids_temp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for id in ids {
            w.write_all(&id.to_le_bytes()).map_err(io(&ids_temp))?;
        }
        w.flush().map_err(io(&ids_temp))?;
    }
    let state_temp = temp(&state_path);
    let text = serde_json::to_string_pretty(state).map_err(|e| StateError::Corrupt {
        path: state_path.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::write(&state_temp, text).map_err(io(&state_temp))?;
    std::fs::rename(&ids_temp, &ids_path).map_err(io(&ids_path))?;
    std::fs::rename(&state_temp, &state_path).map_err(io(&state_path))?;
    Ok(())
}

/// The sorted union of two sorted, duplicate-free id lists.
pub fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_refuses_another_source_or_a_missing_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let (first, ids) = load(&out, "s3://b/p").unwrap();
        assert!(first.objects.is_empty() && ids.is_empty());
        std::fs::write(&out, "").unwrap();
        let mut state = first;
        state.objects.insert("k".into(), "\"etag\"".into());
        save(&out, &state, &[1, 5, 9]).unwrap();
        let (again, ids) = load(&out, "s3://b/p").unwrap();
        assert_eq!(again, state);
        assert_eq!(ids, [1, 5, 9]);
        assert!(matches!(
            load(&out, "s3://b/q"),
            Err(StateError::OtherSource { .. })
        ));
        std::fs::remove_file(&out).unwrap();
        let err = load(&out, "s3://b/p").unwrap_err().to_string();
        assert!(
            err.contains("does not") && err.contains("events.jsonl"),
            "{err}"
        );
        assert_eq!(union(&[1, 3, 5], &[2, 3, 6]), [1, 2, 3, 5, 6]);
    }
}

//! Scores as Braze Cloud Data Ingestion JSON Lines for an S3 source, per
//! https://www.braze.com/docs/user_guide/data/unification/cloud_ingestion/file_storage_integrations/ :
//! - "Each file must contain one or more of the supported identifier columns and a payload
//!   column as a JSON string": `external_id` ("This should match the `external_id` value used
//!   in Braze") and `payload` ("a JSON string of the fields you want to sync");
//! - "Unlike with data warehouse sources, the `UPDATED_AT` column is neither required nor
//!   supported": no `updated_at` is written;
//! - "Every line in your source file must contain valid JSON, or the file will be skipped":
//!   every line written is read back and checked ([`validate_file`]) before the files are
//!   reported as ready;
//! - "Files added to the S3 source bucket should not exceed 512 MB. Files larger than 512 MB
//!   will result in an error and won't be synced": output is split into `FILE`, then
//!   `FILE.1`, `FILE.2`, … (numbered before the extension: `scores.jsonl`, `scores.1.jsonl`),
//!   each at most [`DEFAULT_MAX_FILE_BYTES`].
//!
//! The payload holds the same attributes as `/users/track`, `_update_existing_only` included
//! (CDI: "Any operations that are possible through the Braze `/users/track` endpoint are
//! supported through Cloud Data Ingestion", "Fields within the payload should follow the same
//! format as the corresponding `/users/track` endpoint", and "The `PAYLOAD` object should not
//! include an external ID or other ID type" —
//! braze-inc/braze-docs, _docs/_user_guide/data/unification/cloud_ingestion/payloads.md;
//! that CDI honours `_update_existing_only` like `/users/track` is an assumption).

use super::attributes::{ScoreUpdate, SCORED_AT_ATTRIBUTE, SCORE_ATTRIBUTE};
use serde::Serialize;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Braze's cap is 512 MB a file; files are cut at 500 MiB (524,288,000 bytes, under both
/// 512 × 10^6 and 512 × 2^20), leaving room for whichever Braze means.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 500 * 1024 * 1024;

/// One CDI line.
#[derive(Serialize)]
struct CdiLine<'a> {
    external_id: &'a str,
    payload: String,
}

/// Why the CDI files could not be written or did not validate.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// Creating or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line written does not pass [`validate_line`]: Braze would skip the whole file.
    #[error("{path} line {line} would make Braze skip the file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A single line is longer than the file cap.
    #[error("one line is {bytes} bytes, more than --max-file-bytes {max}")]
    LineTooLong {
        /// The line's size.
        bytes: usize,
        /// The cap.
        max: u64,
    },
}

/// The files written, in order, and their line counts.
#[derive(Debug, Default)]
pub struct CdiFiles {
    /// `(path, lines, bytes)` of each file.
    pub files: Vec<(PathBuf, usize, u64)>,
}

/// The `n`-th file of `out`: `out` itself for 0, else the number before the extension.
pub fn part_path(out: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return out.to_owned();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match out.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    out.with_file_name(name)
}

/// Writes `updates` to `out` (split at `max_file_bytes`), then reads every file back and
/// validates every line.
pub fn write(
    out: &Path,
    updates: &[ScoreUpdate],
    max_file_bytes: u64,
) -> Result<CdiFiles, CdiError> {
    let mut files = CdiFiles::default();
    let mut current: Option<(BufWriter<File>, PathBuf, usize, u64)> = None;
    let io = |path: &Path, source| CdiError::Io {
        path: path.display().to_string(),
        source,
    };
    for u in updates {
        let mut line = serde_json::to_vec(&CdiLine {
            external_id: &u.external_id,
            payload: serde_json::to_string(&u.payload()).map_err(|e| CdiError::Invalid {
                path: out.display().to_string(),
                line: 0,
                reason: e.to_string(),
            })?,
        })
        .map_err(|e| CdiError::Invalid {
            path: out.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        if line.len() as u64 > max_file_bytes {
            return Err(CdiError::LineTooLong {
                bytes: line.len(),
                max: max_file_bytes,
            });
        }
        let full = current
            .as_ref()
            .is_some_and(|(_, _, _, bytes)| bytes + line.len() as u64 > max_file_bytes);
        if full {
            if let Some(done) = current.take() {
                files.files.push(close(done, &io)?);
            }
        }
        if current.is_none() {
            let path = part_path(out, files.files.len());
            let file = File::create(&path).map_err(|e| io(&path, e))?;
            current = Some((BufWriter::with_capacity(1 << 20, file), path, 0, 0));
        }
        if let Some((w, path, lines, bytes)) = current.as_mut() {
            w.write_all(&line).map_err(|e| io(path, e))?;
            *lines += 1;
            *bytes += line.len() as u64;
        }
    }
    if let Some(done) = current.take() {
        files.files.push(close(done, &io)?);
    }
    for (path, _, _) in &files.files {
        validate_file(path)?;
    }
    Ok(files)
}

type Open = (BufWriter<File>, PathBuf, usize, u64);

fn close(
    (w, path, lines, bytes): Open,
    io: &impl Fn(&Path, std::io::Error) -> CdiError,
) -> Result<(PathBuf, usize, u64), CdiError> {
    let file = w.into_inner().map_err(|e| io(&path, e.into_error()))?;
    file.sync_all().map_err(|e| io(&path, e))?;
    Ok((path, lines, bytes))
}

/// Checks one line as Braze reads it: a JSON object with a non-empty string `external_id`
/// and a string `payload` that parses to a JSON object holding both score attributes, the
/// score a number 0–1, the time a string; no identifier inside the payload.
pub fn validate_line(line: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    match obj.get("external_id").and_then(|e| e.as_str()) {
        Some(id) if !id.is_empty() => {}
        _ => return Err("no external_id string".into()),
    }
    let payload = obj
        .get("payload")
        .and_then(|p| p.as_str())
        .ok_or("payload is not a JSON string")?;
    let p: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| format!("payload does not parse: {e}"))?;
    let p = p.as_object().ok_or("payload is not a JSON object")?;
    if p.contains_key("external_id") {
        return Err("payload holds an identifier".into());
    }
    match p.get(SCORE_ATTRIBUTE).and_then(|s| s.as_f64()) {
        Some(s) if (0.0..=1.0).contains(&s) => {}
        _ => return Err(format!("payload has no {SCORE_ATTRIBUTE} from 0 to 1")),
    }
    match p.get(SCORED_AT_ATTRIBUTE).and_then(|s| s.as_str()) {
        Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_ok() => Ok(()),
        _ => Err(format!("payload has no ISO 8601 {SCORED_AT_ATTRIBUTE}")),
    }
}

/// Reads `path` back and validates every line.
pub fn validate_file(path: &Path) -> Result<usize, CdiError> {
    let shown = || path.display().to_string();
    let file = File::open(path).map_err(|source| CdiError::Io {
        path: shown(),
        source,
    })?;
    let mut n = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| CdiError::Io {
            path: shown(),
            source,
        })?;
        validate_line(&line).map_err(|reason| CdiError::Invalid {
            path: shown(),
            line: i + 1,
            reason,
        })?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_numbered_before_the_extension() {
        // GIVEN an output path WHEN parts are named THEN FILE, FILE.1 before the extension
        let out = Path::new("/tmp/scores.jsonl");
        assert_eq!(part_path(out, 0), PathBuf::from("/tmp/scores.jsonl"));
        assert_eq!(part_path(out, 2), PathBuf::from("/tmp/scores.2.jsonl"));
        assert_eq!(part_path(Path::new("out"), 1), PathBuf::from("out.1"));
    }

    #[test]
    fn a_line_braze_would_skip_the_file_for_is_refused() {
        // GIVEN lines that break each rule THEN each is refused, and a good one passes
        let good = r#"{"external_id":"u1","payload":"{\"_update_existing_only\":true,\"sendtime_score\":0.4,\"sendtime_scored_at\":\"2026-12-01T00:00:00Z\"}"}"#;
        assert_eq!(validate_line(good), Ok(()));
        for bad in [
            "not json",
            "[1]",
            r#"{"payload":"{}"}"#,
            r#"{"external_id":"u1","payload":{"sendtime_score":0.4}}"#,
            r#"{"external_id":"u1","payload":"{\"sendtime_score\":1.4,\"sendtime_scored_at\":\"2026-12-01T00:00:00Z\"}"}"#,
            r#"{"external_id":"u1","payload":"{\"sendtime_score\":0.4,\"sendtime_scored_at\":\"yesterday\"}"}"#,
        ] {
            assert!(validate_line(bad).is_err(), "{bad}");
        }
    }
}

//! Reading an audience: a CSV (user id in the first column, optional header) or JSON Lines
//! (`{"user_id": "…"}`) file, or a synthetic audience of N ids. Every unusable line is
//! reported with its number; duplicates are sent once.

use sendtime_domain::UserId;
use std::collections::HashSet;
use std::io::BufRead;

/// An unusable audience line, with its 1-based number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct AudienceError {
    /// 1-based line number in the input.
    pub line: usize,
    /// Why the line was rejected (unreadable, not JSON, no user id, invalid id).
    pub reason: String,
}

/// The recipients of a send.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Audience {
    /// Distinct user ids in first-seen order.
    pub users: Vec<UserId>,
    /// Lines that repeated an earlier id (sent once).
    pub duplicates: usize,
}

/// Layout of an audience file; see [`Format::from_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// User id in the first column; a first-line `user_id`/`external_id`/`id`/`userId` is a header.
    Csv,
    /// One JSON object a line with a `user_id` (or `external_id`) string.
    JsonLines,
}

impl Format {
    /// From the file name: `.jsonl`/`.ndjson` are JSON Lines, anything else CSV.
    pub fn from_path(path: &str) -> Self {
        if path.ends_with(".jsonl") || path.ends_with(".ndjson") {
            Self::JsonLines
        } else {
            Self::Csv
        }
    }
}

/// `u000001` … `u{n}`: the ids `sendtime data generate` gives its users.
pub fn synthetic(n: usize) -> Audience {
    Audience {
        users: (1..=n).map(UserId::demo).collect(),
        duplicates: 0,
    }
}

/// Reads every line; returns the audience or every bad line (never a silent drop).
pub fn read(input: impl BufRead, format: Format) -> Result<Audience, Vec<AudienceError>> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut audience = Audience::default();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let text = match line {
            Ok(t) => t,
            Err(e) => {
                errors.push(AudienceError {
                    line: line_no,
                    reason: format!("unreadable: {e}"),
                });
                continue;
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let raw = match format {
            Format::Csv => {
                let first = trimmed
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"');
                if line_no == 1 && matches!(first, "user_id" | "external_id" | "id" | "userId") {
                    continue; // header
                }
                first.to_owned()
            }
            Format::JsonLines => match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(v) => match v.get("user_id").or_else(|| v.get("external_id")) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => {
                        errors.push(AudienceError {
                            line: line_no,
                            reason: "no \"user_id\" string".into(),
                        });
                        continue;
                    }
                },
                Err(e) => {
                    errors.push(AudienceError {
                        line: line_no,
                        reason: format!("not JSON: {e}"),
                    });
                    continue;
                }
            },
        };
        match UserId::parse(&raw) {
            Ok(id) => {
                if seen.insert(id.clone()) {
                    audience.users.push(id);
                } else {
                    audience.duplicates += 1;
                }
            }
            Err(e) => errors.push(AudienceError {
                line: line_no,
                reason: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(audience)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_duplicates_and_extra_columns() {
        let csv = "user_id,segment\nu1,vip\nu2\n\nu1,again\n\"u3\",x\n";
        let a = read(csv.as_bytes(), Format::Csv).unwrap();
        assert_eq!(a.users, ["u1", "u2", "u3"]);
        assert_eq!(a.duplicates, 1);
    }

    #[test]
    fn bad_lines_are_reported_by_number() {
        let jsonl = "{\"user_id\":\"u1\"}\nnot json\n{\"id\":\"u2\"}\n{\"user_id\":\"../x\"}\n";
        let errors = read(jsonl.as_bytes(), Format::JsonLines).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        let csv = "u1\nbad id with spaces\n";
        assert_eq!(read(csv.as_bytes(), Format::Csv).unwrap_err()[0].line, 2);
    }

    #[test]
    fn synthetic_ids_match_generated_users() {
        assert_eq!(synthetic(2).users, ["u000001", "u000002"]);
    }
}

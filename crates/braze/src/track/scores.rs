//! Reading the score records `sendtime audience score --out` writes (`"kind":"score"` lines,
//! [`SendScore`]): every good line becomes a [`ScoreUpdate`]; every bad one is kept with its
//! number and reason, never dropped silently.

use super::attributes::ScoreUpdate;
use sendtime_domain::SendScore;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::BufRead;

/// A line that was not a usable score record.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// 1-based line number in the scores file.
    pub line: usize,
    /// Why it was refused.
    pub reason: String,
}

/// What a scores file held.
#[derive(Debug, Default)]
pub struct ScoreFile {
    /// One update per user, in file order.
    pub updates: Vec<ScoreUpdate>,
    /// Lines refused: not JSON, not a score record, a score outside 0–1, a user scored twice.
    pub bad: Vec<BadLine>,
}

/// A dataset line: the record's kind plus, for a score, its fields.
#[derive(Deserialize)]
struct Line {
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Value,
}

/// Reads every line of `reader`. A user scored on two lines keeps the first; the second is a
/// bad line naming the first (two scores for one user means two runs were concatenated).
pub fn read_scores(reader: impl BufRead) -> std::io::Result<ScoreFile> {
    let mut file = ScoreFile::default();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse(&line) {
            Ok(update) => match first_line.get(&update.external_id) {
                Some(first) => file.bad.push(BadLine {
                    line: number,
                    reason: format!(
                        "user {} is scored again (first on line {first})",
                        update.external_id
                    ),
                }),
                None => {
                    first_line.insert(update.external_id.clone(), number);
                    file.updates.push(update);
                }
            },
            Err(reason) => file.bad.push(BadLine {
                line: number,
                reason,
            }),
        }
    }
    Ok(file)
}

fn parse(line: &str) -> Result<ScoreUpdate, String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| format!("not a record: {e}"))?;
    if parsed.kind != "score" {
        return Err(format!(
            "a \"{}\" record, not a score (\"kind\":\"score\")",
            parsed.kind
        ));
    }
    let score: SendScore =
        serde_json::from_value(parsed.rest).map_err(|e| format!("bad score record: {e}"))?;
    Ok(ScoreUpdate {
        external_id: score.user_id.as_str().to_owned(),
        score: score.score,
        scored_at: score.computed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_kept_by_number_and_good_ones_read() {
        // GIVEN a file with a good line, a non-score record, a broken line, a score of 1.5
        // and a user scored twice
        let text = [
            r#"{"kind":"score","user_id":"u1","score":0.25,"computed_at":"2026-12-01T00:00:00Z","model":"m"}"#,
            r#"{"kind":"user","user_id":"u2"}"#,
            r#"{"kind":"score","user_id":"u3""#,
            "",
            r#"{"kind":"score","user_id":"u4","score":1.5,"computed_at":"2026-12-01T00:00:00Z"}"#,
            r#"{"kind":"score","user_id":"u1","score":0.5,"computed_at":"2026-12-01T00:00:00Z"}"#,
        ]
        .join("\n");
        // WHEN it is read
        let file = read_scores(text.as_bytes()).unwrap();
        // THEN one update, four bad lines with their numbers and reasons
        assert_eq!(file.updates.len(), 1);
        assert_eq!(
            (file.updates[0].external_id.as_str(), file.updates[0].score),
            ("u1", 0.25)
        );
        let numbers: Vec<usize> = file.bad.iter().map(|b| b.line).collect();
        assert_eq!(numbers, vec![2, 3, 5, 6]);
        assert!(file.bad[0].reason.contains("\"user\" record"));
        assert!(
            file.bad[2].reason.contains("from 0 to 1"),
            "{}",
            file.bad[2].reason
        );
        assert!(file.bad[3].reason.contains("first on line 1"));
    }
}

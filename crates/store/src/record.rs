//! The dataset format shared by `sendtime data generate`, `sendtime data load` and the
//! embedded store: JSON Lines, one record per line, tagged by `kind`.

use sendtime_domain::{
    Cart, CopyRecord, Item, PopularList, PopularScope, RecList, SendScore, User,
};
use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// One dataset line: a record of any kind, tagged by `kind` (`user`, `item`, `recs`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A user profile (`"kind": "user"`).
    User(User),
    /// A catalog item (`"kind": "item"`).
    Item(Item),
    /// A user's recommendation list (`"kind": "recs"`).
    Recs(RecList),
    /// A user's cart (`"kind": "cart"`).
    Cart(Cart),
    /// A popular list, global or of a category (`"kind": "popular"`).
    Popular(PopularList),
    /// Copy for one slot, channel and language (`"kind": "copy"`).
    Copy(CopyRecord),
    /// A user's send-worthiness score (`"kind": "score"`), from `sendtime audience score`.
    Score(SendScore),
}

impl Record {
    /// A human-readable identity, unique per stored record: `user u1`, `popular category:shoes`.
    pub fn describe(&self) -> String {
        match self {
            Record::User(u) => format!("user {}", u.user_id),
            Record::Item(i) => format!("item {}", i.item_id),
            Record::Recs(r) => format!("recs {}", r.user_id),
            Record::Cart(c) => format!("cart {}", c.user_id),
            Record::Popular(p) => match &p.scope {
                PopularScope::Global => "popular global".to_owned(),
                PopularScope::Category(c) => format!("popular category:{c}"),
            },
            Record::Copy(c) => format!("copy {}", c.key()),
            Record::Score(s) => format!("score {}", s.user_id),
        }
    }
}

/// A line of a dataset that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RecordError {
    /// 1-based line number in the dataset.
    pub line: usize,
    /// Why the line was refused: the JSON error, or why it could not be read.
    pub reason: String,
}

/// The outcome of reading a dataset: the good records and every bad line, never a silent drop.
#[derive(Debug, Default)]
pub struct ParsedRecords {
    /// The records read, in file order.
    pub records: Vec<Record>,
    /// Every line that was not a record, in file order.
    pub errors: Vec<RecordError>,
}

impl ParsedRecords {
    /// Reads JSON Lines; blank lines are skipped, every other line is a record or an error.
    pub fn read(input: impl BufRead) -> Self {
        let mut out = Self::default();
        for (index, line) in input.lines().enumerate() {
            let line_no = index + 1;
            match line {
                Ok(text) if text.trim().is_empty() => {}
                Ok(text) => match serde_json::from_str::<Record>(&text) {
                    Ok(record) => out.records.push(record),
                    Err(e) => out.errors.push(RecordError {
                        line: line_no,
                        reason: e.to_string(),
                    }),
                },
                Err(e) => out.errors.push(RecordError {
                    line: line_no,
                    reason: format!("unreadable: {e}"),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_records_round_trip_with_their_scope() {
        let line = r#"{"kind":"popular","scope":"category","category":"신발","items":["i1","i2"]}"#;
        let rec: Record = serde_json::from_str(line).unwrap();
        assert_eq!(rec.describe(), "popular category:신발");
        let back = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&back).unwrap(), rec);
        let global: Record =
            serde_json::from_str(r#"{"kind":"popular","scope":"global","items":[]}"#).unwrap();
        assert_eq!(global.describe(), "popular global");
    }

    #[test]
    fn score_records_round_trip_and_a_score_outside_0_to_1_is_a_bad_line() {
        let line = r#"{"kind":"score","user_id":"u000001","score":0.4132,"computed_at":"2026-12-01T00:00:00Z","model":"logistic-l2"}"#;
        let rec: Record = serde_json::from_str(line).unwrap();
        assert_eq!(rec.describe(), "score u000001");
        let Record::Score(score) = &rec else {
            panic!("{rec:?}")
        };
        assert_eq!((score.score, score.model.as_str()), (0.4132, "logistic-l2"));
        assert_eq!(serde_json::to_string(&rec).unwrap(), line);
        let input = [
            r#"{"kind":"score","user_id":"u1","score":0,"computed_at":"2026-12-01T00:00:00Z"}"#,
            r#"{"kind":"score","user_id":"u1","score":1.5,"computed_at":"2026-12-01T00:00:00Z"}"#,
            r#"{"kind":"score","user_id":"u1","score":-0.1,"computed_at":"2026-12-01T00:00:00Z"}"#,
            r#"{"kind":"score","user_id":"u1","score":"high","computed_at":"2026-12-01T00:00:00Z"}"#,
        ]
        .join("\n");
        let parsed = ParsedRecords::read(input.as_bytes());
        assert_eq!(parsed.records.len(), 1, "{:?}", parsed.errors);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(
            parsed.errors[0].reason.contains("from 0 to 1"),
            "{:?}",
            parsed.errors
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_number() {
        let input = "\n{\"kind\":\"popular\",\"scope\":\"global\",\"items\":[]}\nnot json\n{\"kind\":\"user\",\"user_id\":\"../x\"}\n";
        let parsed = ParsedRecords::read(input.as_bytes());
        assert_eq!(parsed.records.len(), 1);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4]);
    }
}

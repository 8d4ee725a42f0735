//! Recommendation lists written by other tools, read unchanged into `recs` records: Amazon
//! Personalize batch-inference output and a plain `user_id,item_id,rank` CSV. Items are kept
//! in the tool's order; unknown, sold-out or bought items are left for the block's rules to
//! filter at serve time, as for any list. Nothing is dropped silently: every unusable line,
//! every error line of the job, every duplicate user and every refused item is counted and
//! named by file and line.

use chrono::{DateTime, Utc};
use sendtime_domain::{ItemId, RecList, UserId};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

/// The formats of recommendation lists `sendtime data load --format` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Amazon Personalize batch inference output: JSON Lines
    /// `{"input": {"userId": …}, "output": {"recommendedItems": […], "scores": […]}, "error": null}`.
    Personalize,
    /// `user_id,item_id,rank` (rank 1 is best; a header line is optional).
    Csv,
}

/// When the lists were made and until when they count (the `recs` records' times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListTimes {
    /// When the model made the lists.
    pub generated_at: DateTime<Utc>,
    /// From this instant on a list counts as absent.
    pub expires_at: DateTime<Utc>,
}

/// What kind of trouble a line had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The line is not in the format (nothing read from it).
    Unreadable,
    /// The batch job itself failed for this user (Personalize's `error` field).
    JobError,
    /// An item id was refused (empty); the rest of the line was kept.
    ItemRefused,
}

/// One line that could not be read whole, named by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListProblem {
    /// Which trouble.
    pub kind: ProblemKind,
    /// The file or object it is in.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for ListProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Counts of what was read, for the load's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListStats {
    /// Files or objects read.
    pub files: usize,
    /// Non-blank lines read (a CSV header included).
    pub lines: usize,
    /// Lines that were not in the format.
    pub unreadable: usize,
    /// Personalize lines with an `error` (no list for that user from this job).
    pub job_errors: usize,
    /// A user's list seen again: the later line replaces the earlier (Personalize), or a
    /// user's item seen again: its best rank kept (CSV).
    pub duplicates: usize,
    /// Items refused (empty ids).
    pub items_refused: usize,
    /// Lists without any item (the block falls back to popular items for these users).
    pub empty_lists: usize,
}

/// Problems kept in full for the report; past this only counted.
const KEPT_PROBLEMS: usize = 1_000;

/// Reads list files one after another and keeps one list per user.
#[derive(Debug)]
pub struct ListReader {
    format: ListFormat,
    times: ListTimes,
    /// Users in first-seen order, with their list's rows.
    users: Vec<(UserId, Vec<Row>)>,
    index: HashMap<UserId, usize>,
    /// What was read.
    pub stats: ListStats,
    /// The first problems, in the order met.
    pub problems: Vec<ListProblem>,
    /// Problems met in all (kept or not).
    pub problem_count: usize,
}

/// One item of a user's list with its rank and where it was met (ties keep file order).
#[derive(Debug, Clone)]
struct Row {
    rank: f64,
    seq: u64,
    item: ItemId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonalizeInput {
    user_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonalizeOutput {
    #[serde(default)]
    recommended_items: Vec<serde_json::Value>,
}

/// One record of a Personalize batch inference output file. "The following is an example of
/// the output JSON file for a USER_PERSONALIZATION recipe.
/// `{"input":{"userId":"4638"},"output":{"recommendedItems":["63992",…],"scores":[0.0152238,…]},"error":null}`"
/// (https://docs.aws.amazon.com/personalize/latest/dg/batch-inference-job-output-examples.html).
#[derive(Deserialize)]
struct PersonalizeLine {
    input: PersonalizeInput,
    #[serde(default)]
    output: Option<PersonalizeOutput>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl ListReader {
    /// A reader of `format` whose lists are stamped with `times`.
    pub fn new(format: ListFormat, times: ListTimes) -> Self {
        Self {
            format,
            times,
            users: Vec::new(),
            index: HashMap::new(),
            stats: ListStats::default(),
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    /// Reads one file or object (`name` names it in problems); an I/O error stops this file
    /// and is returned, what was read before it is kept.
    pub fn read(&mut self, name: &str, input: impl BufRead) -> std::io::Result<()> {
        self.stats.files += 1;
        let mut first = true;
        for (i, line) in input.lines().enumerate() {
            let line = line?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            self.stats.lines += 1;
            match self.format {
                ListFormat::Personalize => self.personalize_line(name, i + 1, text),
                ListFormat::Csv => self.csv_line(name, i + 1, text, first),
            }
            first = false;
        }
        Ok(())
    }

    fn problem(&mut self, kind: ProblemKind, file: &str, line: usize, reason: String) {
        match kind {
            ProblemKind::Unreadable => self.stats.unreadable += 1,
            ProblemKind::JobError => self.stats.job_errors += 1,
            ProblemKind::ItemRefused => self.stats.items_refused += 1,
        }
        self.problem_count += 1;
        if self.problems.len() < KEPT_PROBLEMS {
            self.problems.push(ListProblem {
                kind,
                file: file.to_owned(),
                line,
                reason,
            });
        }
    }

    fn user(&mut self, file: &str, line: usize, raw: &str) -> Option<UserId> {
        match UserId::parse(raw) {
            Ok(u) => Some(u),
            Err(e) => {
                self.problem(
                    ProblemKind::Unreadable,
                    file,
                    line,
                    format!(
                        "user id '{}': {e}",
                        raw.chars().take(80).collect::<String>()
                    ),
                );
                None
            }
        }
    }

    /// A line of the job's output: normally one JSON object, but records written one after
    /// another on a line (as the documentation's example shows them) are read each in turn.
    fn personalize_line(&mut self, file: &str, line: usize, text: &str) {
        for parsed in serde_json::Deserializer::from_str(text).into_iter::<PersonalizeLine>() {
            match parsed {
                Ok(p) => self.personalize_record(file, line, p),
                Err(e) => {
                    return self.problem(
                        ProblemKind::Unreadable,
                        file,
                        line,
                        format!("not a Personalize batch inference line: {e}"),
                    )
                }
            }
        }
    }

    fn personalize_record(&mut self, file: &str, line: usize, parsed: PersonalizeLine) {
        let raw_user = match &parsed.input.user_id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return self.problem(
                    ProblemKind::Unreadable,
                    file,
                    line,
                    "input.userId is missing (a user-personalization job's output has one)".into(),
                )
            }
        };
        if let Some(error) = parsed.error.as_ref().filter(|e| !e.is_null()) {
            let message = match error {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return self.problem(
                ProblemKind::JobError,
                file,
                line,
                format!("the batch job's error for user '{raw_user}': {message}"),
            );
        }
        let Some(user) = self.user(file, line, &raw_user) else {
            return;
        };
        let Some(output) = parsed.output else {
            return self.problem(
                ProblemKind::Unreadable,
                file,
                line,
                "neither output nor error".into(),
            );
        };
        let mut rows = Vec::with_capacity(output.recommended_items.len());
        for (position, value) in output.recommended_items.into_iter().enumerate() {
            let id = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    self.problem(
                        ProblemKind::ItemRefused,
                        file,
                        line,
                        format!("recommendedItems[{position}] is not an item id: {other}"),
                    );
                    continue;
                }
            };
            if id.trim().is_empty() {
                self.problem(
                    ProblemKind::ItemRefused,
                    file,
                    line,
                    format!("recommendedItems[{position}] is empty"),
                );
                continue;
            }
            rows.push(Row {
                rank: position as f64,
                seq: position as u64,
                item: ItemId::new(id),
            });
        }
        match self.index.get(&user) {
            // The same user again (two outputs of one job, or two jobs): the later line wins,
            // as the last line for a key wins in a dataset.
            Some(&i) => {
                self.stats.duplicates += 1;
                self.users[i].1 = rows;
            }
            None => {
                self.index.insert(user.clone(), self.users.len());
                self.users.push((user, rows));
            }
        }
    }

    fn csv_line(&mut self, file: &str, line: usize, text: &str, first: bool) {
        let fields = match split_csv(text) {
            Ok(f) => f,
            Err(reason) => return self.problem(ProblemKind::Unreadable, file, line, reason),
        };
        if fields.len() != 3 {
            return self.problem(
                ProblemKind::Unreadable,
                file,
                line,
                format!("{} field(s); expected user_id,item_id,rank", fields.len()),
            );
        }
        let rank = match fields[2].trim().parse::<f64>() {
            Ok(r) if r.is_finite() => r,
            _ if first && fields[0].trim().eq_ignore_ascii_case("user_id") => return,
            _ => {
                return self.problem(
                    ProblemKind::Unreadable,
                    file,
                    line,
                    format!("rank '{}' is not a number", fields[2].trim()),
                )
            }
        };
        let Some(user) = self.user(file, line, fields[0].trim()) else {
            return;
        };
        let item = fields[1].trim();
        if item.is_empty() {
            return self.problem(
                ProblemKind::ItemRefused,
                file,
                line,
                format!("empty item id for user '{user}'"),
            );
        }
        let seq = self.stats.lines as u64;
        let i = match self.index.get(&user) {
            Some(&i) => i,
            None => {
                self.index.insert(user.clone(), self.users.len());
                self.users.push((user, Vec::new()));
                self.users.len() - 1
            }
        };
        self.users[i].1.push(Row {
            rank,
            seq,
            item: ItemId::new(item),
        });
    }

    /// The lists read, one per user in first-seen order, items best first (CSV: by rank, ties
    /// in file order, an item listed twice kept at its best rank).
    pub fn finish(mut self) -> (Vec<RecList>, ListStats, Vec<ListProblem>, usize) {
        let mut lists = Vec::with_capacity(self.users.len());
        for (user, mut rows) in self.users {
            if self.format == ListFormat::Csv {
                rows.sort_by(|a, b| a.rank.total_cmp(&b.rank).then(a.seq.cmp(&b.seq)));
                let before = rows.len();
                let mut seen = std::collections::HashSet::with_capacity(rows.len());
                rows.retain(|r| seen.insert(r.item.clone()));
                self.stats.duplicates += before - rows.len();
            }
            if rows.is_empty() {
                self.stats.empty_lists += 1;
            }
            lists.push(RecList {
                mark: None,
                user_id: user,
                generated_at: self.times.generated_at,
                expires_at: self.times.expires_at,
                items: rows.into_iter().map(|r| r.item).collect(),
            });
        }
        (lists, self.stats, self.problems, self.problem_count)
    }
}

/// One CSV line's fields (RFC 4180 quoting: `"a,b"` and `""` inside quotes).
fn split_csv(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times() -> ListTimes {
        let at = "2026-12-01T00:00:00Z".parse().unwrap();
        ListTimes {
            generated_at: at,
            expires_at: at + chrono::Duration::days(7),
        }
    }

    fn items(list: &RecList) -> Vec<&str> {
        list.items.iter().map(ItemId::as_str).collect()
    }

    #[test]
    fn personalize_output_is_read_unchanged_with_error_lines_and_duplicates_counted() {
        // GIVEN Personalize's documented output shape, an error line, a repeated user, a
        // numeric user id, an unreadable line and an empty item id
        let file = concat!(
            r#"{"input": {"userId": "u1"}, "output": {"recommendedItems": ["i3", "i1", "i9"], "scores": [0.5, 0.3, 0.2]}, "error": null}"#,
            "\n",
            r#"{"input": {"userId": "u2"}, "output": null, "error": "User not found in the solution version"}"#,
            "\n\n",
            r#"{"input": {"userId": "u1"}, "output": {"recommendedItems": ["i7", "i3"], "scores": [0.6, 0.1]}, "error": null}"#,
            "\n",
            r#"{"input": {"userId": 42}, "output": {"recommendedItems": ["", "i2"], "scores": [0.6, 0.1]}}"#,
            "\n",
            "not json\n",
            r#"{"input":{"userId":"u3"},"output":{"recommendedItems":["i4"],"scores":[0.2]},"error":null} {"input":{"userId":"u4"},"output":{"recommendedItems":["i5"],"scores":[0.1]},"error":null}"#,
            "\n",
        );
        // WHEN it is read
        let mut reader = ListReader::new(ListFormat::Personalize, times());
        reader.read("batch.json.out", file.as_bytes()).unwrap();
        let (lists, stats, problems, count) = reader.finish();
        // THEN each user has one list in the job's order, the later line winning
        assert_eq!(lists.len(), 4);
        assert_eq!(
            (lists[3].user_id.as_str(), items(&lists[3])),
            ("u4", vec!["i5"]),
            "two records on one line are both read"
        );
        assert_eq!(
            (lists[0].user_id.as_str(), items(&lists[0])),
            ("u1", vec!["i7", "i3"])
        );
        assert_eq!(
            (lists[1].user_id.as_str(), items(&lists[1])),
            ("42", vec!["i2"])
        );
        assert_eq!(lists[0].expires_at, times().expires_at);
        // AND every problem is counted and named by file and line
        assert_eq!(
            (
                stats.lines,
                stats.job_errors,
                stats.duplicates,
                stats.unreadable,
                stats.items_refused
            ),
            (6, 1, 1, 1, 1)
        );
        assert_eq!(count, 3);
        let named: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            named[0].starts_with("batch.json.out:2: ") && named[0].contains("User not found"),
            "{named:?}"
        );
        assert!(named[1].starts_with("batch.json.out:5: "), "{named:?}");
        assert!(named[2].starts_with("batch.json.out:6: "), "{named:?}");
    }

    #[test]
    fn csv_lists_are_ordered_by_rank_across_files_with_a_header_and_quotes() {
        // GIVEN rows of one user spread over two files, out of rank order, one item twice
        let a = "user_id,item_id,rank\nu1,i2,2\nu2,\"i,5\",1\nu1,i1,1\n";
        let b = "u1,i3,3\nu1,i2,10\nu3,i4,x\nu3,,1\n";
        let mut reader = ListReader::new(ListFormat::Csv, times());
        reader.read("a.csv", a.as_bytes()).unwrap();
        reader.read("b.csv", b.as_bytes()).unwrap();
        let (lists, stats, problems, _) = reader.finish();
        // THEN the lists are by rank, the repeated item at its best rank
        assert_eq!(items(&lists[0]), ["i1", "i2", "i3"]);
        assert_eq!(items(&lists[1]), ["i,5"]);
        assert_eq!(lists.len(), 2, "u3 had no usable row");
        assert_eq!(
            (stats.duplicates, stats.unreadable, stats.items_refused),
            (1, 1, 1)
        );
        assert_eq!(problems[0].to_string(), "b.csv:3: rank 'x' is not a number");
    }
}

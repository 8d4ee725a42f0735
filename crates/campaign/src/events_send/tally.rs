//! Every line counted once, in bounded memory: this run's outcomes and the earlier runs' of
//! the lines skipped, with the first problems by line.

/// Problems listed by line in the report, per kind (rejected, failed).
const LISTED: usize = 10;

use super::{LineProblem, LineRecord, LineStatus, Reading, Report};
use std::collections::BTreeMap;

/// Final outcomes counted as they come, in bounded memory: the first rejected and failed
/// lines (by line number) are kept for the report.
#[derive(Default)]
pub(super) struct Counts {
    applied: u64,
    unchanged: u64,
    rejected: u64,
    failed: u64,
    rejected_lines: BTreeMap<u64, (String, String)>,
    failed_lines: BTreeMap<u64, (String, String)>,
}

impl Counts {
    pub(super) fn add(&mut self, r: &LineRecord) {
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
pub(super) fn tally(reading: &Reading, this_run: &Counts) -> Report {
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Audience selection from scores: the top users by score, as many as a rule says — enough
//! for a share of the expected opens of a full send, a fixed number, or all above a score.
//! Expected opens are the sum of the chosen users' scores (the model is calibrated).

/// How many of the ranked users to pick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// The fewest top users whose expected opens reach this share (0–1) of a full send's.
    TargetOpens(f64),
    /// The top N.
    Top(usize),
    /// Every user scored at least this.
    MinScore(f64),
}

/// What a selection picked, and what it is expected to give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selected {
    /// Users picked (the first `count` of the ranked list).
    pub count: usize,
    /// Users scored.
    pub scored: usize,
    /// Expected opens of the picked users.
    pub expected_opens: f64,
    /// Expected opens of sending to everyone scored.
    pub full_send_opens: f64,
}

/// Sorts `scores` best first (ties by user id, so the same scores give the same audience)
/// and says how many of them `rule` picks.
pub fn select(scores: &mut [(String, f64)], rule: Rule) -> Selected {
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let full_send_opens: f64 = scores.iter().map(|s| s.1).sum();
    let count = match rule {
        Rule::Top(n) => n.min(scores.len()),
        Rule::MinScore(min) => scores.partition_point(|s| s.1 >= min),
        Rule::TargetOpens(share) => {
            let goal = share.clamp(0.0, 1.0) * full_send_opens;
            let mut sum = 0.0;
            let mut k = 0;
            // A small tolerance: summing in another order must not need one user more.
            while k < scores.len() && sum < goal - 1e-9 * full_send_opens.max(1.0) {
                sum += scores[k].1;
                k += 1;
            }
            k
        }
    };
    Selected {
        count,
        scored: scores.len(),
        expected_opens: scores[..count].iter().map(|s| s.1).sum(),
        full_send_opens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> Vec<(String, f64)> {
        [("u4", 0.05), ("u1", 0.6), ("u3", 0.1), ("u2", 0.25)]
            .iter()
            .map(|(u, s)| (u.to_string(), *s))
            .collect()
    }

    #[test]
    fn each_rule_picks_the_top_users() {
        let mut s = scores();
        let picked = select(&mut s, Rule::TargetOpens(0.85));
        assert_eq!(picked.count, 2, "0.6 + 0.25 = 85 % of 1.0");
        assert_eq!(s[0].0, "u1");
        assert!((picked.expected_opens - 0.85).abs() < 1e-9);
        assert!((picked.full_send_opens - 1.0).abs() < 1e-9);
        assert_eq!(select(&mut scores(), Rule::Top(3)).count, 3);
        assert_eq!(select(&mut scores(), Rule::Top(30)).count, 4);
        assert_eq!(select(&mut scores(), Rule::MinScore(0.1)).count, 3);
        assert_eq!(select(&mut scores(), Rule::TargetOpens(1.0)).count, 4);
        assert_eq!(select(&mut scores(), Rule::TargetOpens(0.0)).count, 0);
    }
}

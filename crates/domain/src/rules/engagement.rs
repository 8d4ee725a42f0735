//! Send-worthiness at send time: a request's `min_score` against the user's send score.
//!
//! Not a block of its own but a gate in front of every block, decided before the block's rule
//! assesses: a user whose modelled chance to open is below what the campaign asks is not
//! eligible (`low_engagement`), so the template aborts rather than send noise (BRIEF §2). A
//! user without a score is never gated: without scores nothing changes.

use crate::block::Reason;
use crate::model::SendScore;
use std::fmt;
use std::str::FromStr;

/// A request's `min_score`: a finite number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct MinScore(f64);

/// A `min_score` that is not a number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("min_score must be a number from 0 to 1")]
pub struct InvalidMinScore;

impl MinScore {
    /// `value` when it is a finite number from 0 to 1 (`-0` is `0`).
    pub fn new(value: f64) -> Result<Self, InvalidMinScore> {
        if (0.0..=1.0).contains(&value) {
            // `+ 0.0` turns -0 into 0: one threshold, one bit pattern (the answer cache keys on it).
            Ok(Self(value + 0.0))
        } else {
            Err(InvalidMinScore)
        }
    }

    /// The threshold.
    pub fn value(self) -> f64 {
        self.0
    }

    /// The threshold's bits: equal thresholds, equal bits (for hashing).
    pub fn to_bits(self) -> u64 {
        self.0.to_bits()
    }
}

impl FromStr for MinScore {
    type Err = InvalidMinScore;

    /// A decimal number (`0.2`, `1`, `2e-1`); `NaN`, infinities and anything out of 0–1 are
    /// refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<f64>()
            .map_err(|_| InvalidMinScore)
            .and_then(Self::new)
    }
}

impl fmt::Display for MinScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a user with `score` passes `min_score`: `Some(LowEngagement)` when the score is
/// below it; `None` (let the block decide) without a threshold, without a score, or at or
/// above it.
pub fn gate(score: Option<&SendScore>, min_score: Option<MinScore>) -> Option<Reason> {
    match (score, min_score) {
        (Some(score), Some(min)) if score.score < min.0 => Some(Reason::LowEngagement),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use chrono::{TimeZone, Utc};

    fn scored(score: f64) -> SendScore {
        SendScore {
            user_id: UserId::parse("u1").unwrap(),
            score,
            computed_at: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            model: "logistic-l2".into(),
        }
    }

    fn min(s: &str) -> Option<MinScore> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn min_score_is_a_number_from_zero_to_one() {
        for ok in ["0", "1", "0.2", "2e-1", ".5", "-0", "1.0"] {
            assert!(ok.parse::<MinScore>().is_ok(), "{ok}");
        }
        for bad in [
            "", "x", "NaN", "nan", "inf", "-inf", "-0.01", "1.0001", "1e9", "0.2 ",
        ] {
            assert_eq!(bad.parse::<MinScore>(), Err(InvalidMinScore), "{bad}");
        }
        assert_eq!(
            "-0".parse::<MinScore>().unwrap().to_bits(),
            "0".parse::<MinScore>().unwrap().to_bits()
        );
    }

    #[test]
    fn a_score_below_the_threshold_is_low_engagement_and_nothing_else_is() {
        // GIVEN a user scored 0.3
        let score = scored(0.3);
        // THEN a higher threshold gates them, an equal or lower one does not
        assert_eq!(gate(Some(&score), min("0.31")), Some(Reason::LowEngagement));
        assert_eq!(gate(Some(&score), min("1")), Some(Reason::LowEngagement));
        assert_eq!(gate(Some(&score), min("0.3")), None);
        assert_eq!(gate(Some(&score), min("0")), None);
        // AND no threshold, or no score, never gates
        assert_eq!(gate(Some(&score), None), None);
        assert_eq!(gate(None, min("1")), None);
        assert_eq!(gate(None, None), None);
    }
}

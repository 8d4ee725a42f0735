//! Gain curves: rank the held-out sends by a score, send to the top share, count the opens
//! that share would have had. Also the seed's headline: the sends needed to reach a share
//! of a full send's opens.

use serde::Serialize;
use std::hash::BuildHasher;

/// Points kept per curve (charts and reports; the figures are computed on every row).
const CURVE_POINTS: usize = 200;

/// A ranking's gain on the held-out campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GainCurve {
    /// Whose ranking: `model`, `baseline`, `random`, `oracle`.
    pub name: String,
    /// (share of the audience sent, share of all opens captured), from (0, 0) to (1, 1).
    pub points: Vec<(f64, f64)>,
    /// Rows ranked.
    pub sends: usize,
    /// Opens of a full send.
    pub opens: usize,
    /// Opens captured when sending to the top share `s`, for s = each of [`SHARES`].
    #[serde(skip)]
    cumulative: Vec<u32>,
}

/// The share of a full send's opens the headline asks for (seed 000: the same opens).
pub const HEADLINE_SHARE: f64 = 0.95;

/// The audience shares the report prints.
pub const SHARES: [f64; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];

impl GainCurve {
    /// The curve of sending in decreasing `scores` (ties broken by a fixed hash of the row,
    /// so neither file order nor ids favour a ranking); `opened[i]` is row `i`'s outcome.
    pub fn rank(name: &str, scores: &[f64], opened: &[bool]) -> Self {
        let tie = foldhash::fast::FixedState::with_seed(42);
        let mut order: Vec<usize> = (0..scores.len().min(opened.len())).collect();
        order.sort_by(|&a, &b| {
            scores[b]
                .total_cmp(&scores[a])
                .then_with(|| tie.hash_one(a).cmp(&tie.hash_one(b)))
        });
        let mut cumulative = Vec::with_capacity(order.len() + 1);
        cumulative.push(0u32);
        let mut n = 0u32;
        for &i in &order {
            n += u32::from(opened[i]);
            cumulative.push(n);
        }
        Self::from_cumulative(name, cumulative)
    }

    /// The expected curve of a random order: the diagonal.
    pub fn random(opened: &[bool]) -> Self {
        let opens = opened.iter().filter(|o| **o).count();
        let n = opened.len();
        let cumulative = (0..=n)
            .map(|k| (opens as f64 * k as f64 / n.max(1) as f64).round() as u32)
            .collect();
        Self::from_cumulative("random", cumulative)
    }

    fn from_cumulative(name: &str, cumulative: Vec<u32>) -> Self {
        let sends = cumulative.len() - 1;
        let opens = *cumulative.last().unwrap_or(&0) as usize;
        let step = (sends / CURVE_POINTS).max(1);
        let mut points: Vec<(f64, f64)> = (0..=sends)
            .step_by(step)
            .map(|k| point(k, cumulative[k], sends, opens))
            .collect();
        if points.last().map(|p| p.0) != Some(1.0) {
            points.push(point(sends, opens as u32, sends, opens));
        }
        Self {
            name: name.to_owned(),
            points,
            sends,
            opens,
            cumulative,
        }
    }

    /// Share of all opens captured by sending to the top `share` of the audience.
    pub fn opens_at(&self, share: f64) -> f64 {
        let k = ((share.clamp(0.0, 1.0) * self.sends as f64).round() as usize).min(self.sends);
        self.cumulative[k] as f64 / self.opens.max(1) as f64
    }

    /// Smallest share of the audience whose sends capture `share` of all opens.
    pub fn sends_for(&self, share: f64) -> f64 {
        // Less a hair: 0.7 × 10 is 7.000000000000001 in floating point, and needs 7 opens.
        let needed = (share * self.opens as f64 - 1e-9).ceil().max(0.0) as u32;
        let k = self.cumulative.partition_point(|&c| c < needed);
        k as f64 / self.sends.max(1) as f64
    }

    /// Area under the curve (0.5 is random).
    pub fn area(&self) -> f64 {
        let n = self.sends.max(1) as f64;
        self.cumulative
            .iter()
            .skip(1)
            .map(|&c| c as f64)
            .sum::<f64>()
            / n
            / self.opens.max(1) as f64
    }
}

fn point(k: usize, captured: u32, sends: usize, opens: usize) -> (f64, f64) {
    (
        k as f64 / sends.max(1) as f64,
        captured as f64 / opens.max(1) as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_reaches_every_open_with_the_openers_only() {
        let opened: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect();
        let perfect: Vec<f64> = opened.iter().map(|&o| f64::from(u8::from(o))).collect();
        let curve = GainCurve::rank("oracle", &perfect, &opened);
        assert_eq!(curve.opens, 25);
        assert!((curve.sends_for(1.0) - 0.25).abs() < 1e-9);
        assert!((curve.opens_at(0.1) - 0.4).abs() < 1e-9);
        let random = GainCurve::random(&opened);
        assert!((random.opens_at(0.5) - 0.5).abs() < 0.03);
        assert!((random.sends_for(0.95) - 0.95).abs() < 0.02);
        assert!(curve.area() > random.area());
        assert_eq!(curve.points.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.points.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn ties_are_not_broken_in_file_order() {
        let opened: Vec<bool> = (0..1000).map(|i| i < 500).collect();
        let flat = vec![1.0; 1000];
        let curve = GainCurve::rank("flat", &flat, &opened);
        assert!(
            (curve.opens_at(0.5) - 0.5).abs() < 0.06,
            "{}",
            curve.opens_at(0.5)
        );
    }
}

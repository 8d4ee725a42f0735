//! The open model: L2-regularised logistic regression (linfa-logistic, L-BFGS) on
//! standardised features. Why this model: P(open) is what audience selection and
//! `min_score` need, and a logistic regression gives calibrated probabilities (expected
//! opens are the sum of scores), trains on a few hundred thousand rows in seconds, scores a
//! user with one dot product, and its weights say what it learnt (printed by `audience
//! score`). The features carry the non-linear part (log recencies, smoothed rates, hour
//! affinity). The transparent baseline it must beat is [`rf_scores`].

use crate::features::{Features, FEATURES, FEATURE_NAMES};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// The model's name in score records and the model file.
pub const MODEL_NAME: &str = "logistic-l2";

/// Why a model could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The rows are all opened or all not.
    #[error("the training rows have {opens} opens in {rows} sends: a model needs both opened and unopened sends")]
    OneClass {
        /// Training rows.
        rows: usize,
        /// Opened ones.
        opens: usize,
    },
    /// The solver failed.
    #[error("the logistic regression did not fit: {0}")]
    Fit(String),
}

/// A trained open model: standardisation and weights, all it needs to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenModel {
    /// [`MODEL_NAME`].
    pub model: String,
    /// Feature names, in order.
    pub features: Vec<String>,
    /// Per feature, the training mean subtracted before weighting.
    pub mean: Vec<f64>,
    /// Per feature, the training standard deviation divided by (1 when constant).
    pub scale: Vec<f64>,
    /// Per standardised feature, its weight.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// The L2 penalty per training row it was trained with.
    pub alpha: f64,
    /// Training rows.
    pub rows: usize,
    /// Opened training rows.
    pub opens: usize,
}

impl OpenModel {
    /// Fits P(open | features) on the rows with an L2 penalty of `alpha` per row: linfa
    /// minimises the *summed* log-loss plus `½·λ·‖w‖²`, so λ = `alpha` × rows keeps the
    /// penalty's weight against the data the same at any number of rows.
    pub fn fit(x: &[Features], y: &[bool], alpha: f64) -> Result<Self, ModelError> {
        let rows = x.len().min(y.len());
        let opens = y.iter().filter(|o| **o).count();
        if opens == 0 || opens == rows {
            return Err(ModelError::OneClass { rows, opens });
        }
        let mut mean = [0.0; FEATURES];
        for row in x {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / rows as f64;
            }
        }
        let mut scale = [0.0; FEATURES];
        for row in x {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / rows as f64;
            }
        }
        let scale = scale.map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 });
        let mut records = Array2::<f64>::zeros((rows, FEATURES));
        for (mut out, row) in records.rows_mut().into_iter().zip(x) {
            for (j, v) in row.iter().enumerate() {
                out[j] = (v - mean[j]) / scale[j];
            }
        }
        let targets = Array1::from_iter(y[..rows].iter().copied());
        let dataset = Dataset::new(records, targets);
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(ModelError::Fit(format!(
                "alpha must be a number >= 0, got {alpha}"
            )));
        }
        let fitted = LogisticRegression::default()
            .alpha(alpha * rows as f64)
            .max_iterations(200)
            .fit(&dataset)
            .map_err(|e| ModelError::Fit(e.to_string()))?;
        // linfa models the more frequent class (`labels().pos`): usually "not opened". The
        // probability of an open is then the other side of the same line.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Self {
            model: MODEL_NAME.to_owned(),
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            mean: mean.to_vec(),
            scale: scale.to_vec(),
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
            alpha,
            rows,
            opens,
        })
    }

    /// P(open) for these features.
    pub fn probability(&self, f: &Features) -> f64 {
        let z = f
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((v, m), s), w)| (v - m) / s * w)
            .sum::<f64>()
            + self.intercept;
        1.0 / (1.0 + (-z).exp())
    }
}

/// The transparent recency/frequency baseline, RFM without the M: each user gets a recency
/// quintile (fewer days since the last activity is better) and a frequency quintile (more
/// recent visits is better), 1–5 each among the users ranked; the score is their sum, ties
/// broken by frequency. `rf[i]` is (days since activity, recent visits) of user `i`.
pub fn rf_scores(rf: &[(f64, f64)]) -> Vec<f64> {
    let n = rf.len();
    let quintiles = |key: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        let mut q = vec![0.0; n];
        // Equal values share a quintile: the one of the first of them.
        let mut start = 0;
        while start < n {
            let mut end = start;
            while end + 1 < n && key(order[end + 1]) == key(order[start]) {
                end += 1;
            }
            let quintile = (start * 5 / n.max(1)) as f64 + 1.0;
            for &i in &order[start..=end] {
                q[i] = quintile;
            }
            start = end + 1;
        }
        q
    };
    let r = quintiles(&|i| -rf[i].0);
    let f = quintiles(&|i| rf[i].1);
    (0..n)
        .map(|i| r[i] + f[i] + rf[i].1 / (1.0 + rf[i].1) * 0.5)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_model_learns_a_known_logistic_relation_and_is_calibrated() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let mut f = [0.0; FEATURES];
            for v in f.iter_mut() {
                *v = rng.random::<f64>() * 4.0 - 2.0;
            }
            let p = 1.0 / (1.0 + (-(-1.0 + 2.0 * f[0] - 1.0 * f[5])).exp());
            x.push(f);
            y.push(rng.random::<f64>() < p);
        }
        let model = OpenModel::fit(&x, &y, 1e-3).unwrap();
        let w = |j: usize| model.weights[j] / model.scale[j];
        assert!((w(0) - 2.0).abs() < 0.25, "{}", w(0));
        assert!((w(5) + 1.0).abs() < 0.25, "{}", w(5));
        assert!(w(3).abs() < 0.2);
        let expected: f64 = x.iter().map(|f| model.probability(f)).sum();
        let actual = y.iter().filter(|o| **o).count() as f64;
        assert!(
            (expected - actual).abs() / actual < 0.05,
            "{expected} vs {actual}"
        );
    }

    #[test]
    fn one_class_is_a_clear_error() {
        let x = vec![[0.0; FEATURES]; 3];
        let err = OpenModel::fit(&x, &[false; 3], 1e-3).unwrap_err();
        assert!(err.to_string().contains("0 opens in 3 sends"));
    }

    #[test]
    fn the_baseline_ranks_recent_frequent_users_first() {
        let rf = [
            (200.0, 0.0),
            (1.0, 5.0),
            (10.0, 1.0),
            (1.0, 0.5),
            (60.0, 0.2),
        ];
        let s = rf_scores(&rf);
        assert!(s[1] > s[2] && s[2] > s[4] && s[4] > s[0], "{s:?}");
        assert!(s[1] > s[3]);
    }
}

//! Send less (seed 000): who is worth a message. Engagement events in ([`events`]), one
//! running state per user and the features computed from it ([`features`]), two streaming
//! passes that take every training row's features at its own send ([`replay`]), a
//! regularised logistic regression of P(open) against a recency/frequency baseline
//! ([`model`]), audience selection ([`select`]), and the held-out evaluation: gain curves,
//! the seed's headline and a chart ([`gain`], [`chart`]). Synthetic events with a known
//! truth for all of it: [`synth`].
//!
//! Pure: readers and writers in, values out; the CLI does the files.

/// The gain chart (SVG).
pub mod chart;
/// The engagement event format (JSON Lines, time order) and its streaming reader.
pub mod events;
/// Per-user running aggregates and the model's features.
pub mod features;
/// Gain curves and the seed's headline figures.
pub mod gain;
/// The open model (L2 logistic regression) and the recency/frequency baseline.
pub mod model;
/// The two passes over an events file: survey and replay.
pub mod replay;
/// Audience selection from scores.
pub mod select;
/// Synthetic events from a hidden propensity.
pub mod synth;

use chrono::{DateTime, SubsecRound, Utc};
use features::Target;
use gain::GainCurve;
use model::{rf_scores, ModelError, OpenModel};
use replay::{replay, survey, PlanError, ReplayPlan, Replayed, Survey};
use sendtime_domain::{SendScore, UserId};
use std::collections::HashMap;

/// An open counts for a send within this many hours of it, unless told otherwise.
pub const DEFAULT_LABEL_WINDOW_HOURS: i64 = 72;
/// At most this many training sends, unless told otherwise (sampled evenly).
pub const DEFAULT_MAX_TRAINING_ROWS: usize = 400_000;
/// The L2 penalty per training row, unless told otherwise (see [`OpenModel::fit`]).
pub const DEFAULT_ALPHA: f64 = 1e-3;

/// The next message's channel and hour, unless told: those of the last campaign (an email
/// at 10:00 UTC when there is none).
pub fn default_target(found: &Survey) -> Target {
    found
        .campaigns
        .last()
        .map(|c| Target::at(c.channel, c.first_send.timestamp()))
        .unwrap_or(Target {
            channel: events::Channel::Email,
            hour: 10,
        })
}

/// A user's score as stored: four decimals, computed at `at` (whole seconds), by
/// [`model::MODEL_NAME`]; `None` for an id the store would refuse.
pub fn score_record(user: &str, score: f64, at: DateTime<Utc>) -> Option<SendScore> {
    Some(SendScore {
        user_id: UserId::parse(user).ok()?,
        score: ((score * 1e4).round() / 1e4).clamp(0.0, 1.0),
        computed_at: at.trunc_subsecs(0),
        model: model::MODEL_NAME.to_owned(),
    })
}

/// Why the generated pipeline ([`generated_scores`]) produced no scores.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Nothing to learn from.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The model did not fit (e.g. no opens at all).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The whole pipeline on generated events, for `serve`'s demo data: `spec`'s events (made
/// twice, one per pass, never held), a model trained on every campaign with the default
/// settings, and each user's score record for a message like the last one at `spec.as_of`.
pub fn generated_scores(spec: &synth::SynthSpec) -> Result<Vec<SendScore>, PipelineError> {
    let found = survey(spec)?;
    let window = chrono::Duration::hours(DEFAULT_LABEL_WINDOW_HOURS);
    let plan = ReplayPlan::for_scoring(&found, window, DEFAULT_MAX_TRAINING_ROWS)?;
    let replayed = replay(spec, &plan)?;
    let model = OpenModel::fit(&replayed.training.x, &replayed.training.y, DEFAULT_ALPHA)?;
    let target = default_target(&found);
    Ok(
        score_users(&replayed, &model, spec.as_of.timestamp(), target)
            .filter_map(|(user, score)| score_record(user, score, spec.as_of))
            .collect(),
    )
}

/// Every user's P(open) for a message on `target` at `at` (epoch seconds), from the state
/// the replay left: `(user id, score)`, in first-seen order.
pub fn score_users<'a>(
    replayed: &'a Replayed,
    model: &'a OpenModel,
    at: i64,
    target: Target,
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    replayed
        .users
        .iter()
        .zip(&replayed.states)
        .map(move |(id, state)| (id.as_ref(), model.probability(&state.features(at, target))))
}

/// The held-out comparison: each ranking's gain curve on the held-out campaign's sends.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The model's ranking.
    pub model: GainCurve,
    /// The recency/frequency baseline's.
    pub baseline: GainCurve,
    /// A random order's (expected).
    pub random: GainCurve,
    /// The hidden propensity's, when the truth is known (synthetic data).
    pub oracle: Option<GainCurve>,
    /// Mean predicted P(open) over the held-out sends (calibration: compare with the rate).
    pub mean_predicted: f64,
}

/// Ranks the replay's held-out sends by the model, the baseline, at random and — given
/// `truth` (user id → propensity of the held-out send) — by the truth.
pub fn evaluate(
    replayed: &Replayed,
    model: &OpenModel,
    truth: Option<&HashMap<String, f64>>,
) -> Evaluation {
    let rows = &replayed.held_out;
    let opened: Vec<bool> = rows.iter().map(|r| r.opened).collect();
    let predicted: Vec<f64> = rows
        .iter()
        .map(|r| model.probability(&r.features))
        .collect();
    let rf: Vec<(f64, f64)> = rows.iter().map(|r| (r.recency, r.frequency)).collect();
    let oracle = truth.map(|truth| {
        let p: Vec<f64> = rows
            .iter()
            .map(|r| {
                let id: &str = &replayed.users[r.user as usize];
                truth.get(id).copied().unwrap_or(0.0)
            })
            .collect();
        GainCurve::rank("oracle", &p, &opened)
    });
    Evaluation {
        mean_predicted: predicted.iter().sum::<f64>() / predicted.len().max(1) as f64,
        model: GainCurve::rank("model", &predicted, &opened),
        baseline: GainCurve::rank("baseline", &rf_scores(&rf), &opened),
        random: GainCurve::random(&opened),
        oracle,
    }
}

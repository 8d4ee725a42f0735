//! `sendtime audience score|select|evaluate`: who is worth a message (seed 000). Scores come
//! from a logistic regression of P(open) trained on earlier campaigns' sends; selection picks
//! the top of them for an opens target; evaluation holds the last campaign out and compares
//! the model's gain with a recency/frequency baseline, random and (synthetic data) the truth.

use crate::jsonl;
use anyhow::{bail, Context};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{Args, Subcommand};
use sendtime_campaign::audience::Format;
use sendtime_store::Record;
use sendtime_targeting::events::Channel;
use sendtime_targeting::features::{Target, FEATURE_NAMES};
use sendtime_targeting::gain::{GainCurve, HEADLINE_SHARE, SHARES};
use sendtime_targeting::model::OpenModel;
use sendtime_targeting::replay::{replay, survey, JsonLines, ReplayPlan, Replayed, Survey};
use sendtime_targeting::select::{select, Rule, Selected};
use sendtime_targeting::{
    default_target, evaluate, score_record, score_users, Evaluation, DEFAULT_ALPHA,
    DEFAULT_LABEL_WINDOW_HOURS, DEFAULT_MAX_TRAINING_ROWS,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The `sendtime audience` subcommands.
#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Train P(open) on earlier campaigns and score every user for the next one.
    Score(ScoreArgs),
    /// Pick the users worth a message from scores; write the audience `campaign send` reads.
    Select(SelectArgs),
    /// Hold out the last campaign: gain of the model vs recency/frequency, random, the truth.
    Evaluate(EvaluateArgs),
    /// Send scores out to Braze: custom attributes through /users/track, or CDI files.
    Push(super::push::PushArgs),
}

impl AudienceCommand {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            AudienceCommand::Score(args) => args.run(),
            AudienceCommand::Select(args) => args.run(),
            AudienceCommand::Evaluate(args) => args.run(),
            AudienceCommand::Push(args) => args.run(),
        }
    }
}

/// How the model learns: shared by `score` and `evaluate`.
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// Engagement events, JSON Lines in time order (`data generate --events` writes them).
    #[arg(long)]
    pub events: PathBuf,
    /// L2 penalty per training row of the logistic regression (0: none).
    #[arg(long, default_value_t = DEFAULT_ALPHA)]
    pub alpha: f64,
    /// At most this many training sends (sampled evenly by user and campaign).
    #[arg(long, default_value_t = DEFAULT_MAX_TRAINING_ROWS)]
    pub max_training_rows: usize,
    /// An open counts for its send when it comes within this many hours of it.
    #[arg(long, default_value_t = DEFAULT_LABEL_WINDOW_HOURS)]
    pub label_window_hours: i64,
}

/// What learning left: the survey, the plan, the replay and the model.
struct Learnt {
    found: Survey,
    plan: ReplayPlan,
    replayed: Replayed,
    model: OpenModel,
}

impl TrainingArgs {
    fn open(&self) -> anyhow::Result<JsonLines<BufReader<File>>> {
        let file = File::open(&self.events)
            .with_context(|| format!("cannot open --events {}", self.events.display()))?;
        Ok(JsonLines(BufReader::with_capacity(1 << 20, file)))
    }

    fn check(&self) -> anyhow::Result<chrono::Duration> {
        if !(1..=24 * 60).contains(&self.label_window_hours) {
            bail!("--label-window-hours must be 1–1440");
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            bail!("--alpha must be a number >= 0");
        }
        if self.max_training_rows == 0 {
            bail!("--max-training-rows must be at least 1");
        }
        Ok(chrono::Duration::hours(self.label_window_hours))
    }

    /// Pass 1 (the campaigns), a plan from it, pass 2 (the replay), the model.
    fn learn(
        &self,
        plan_for: impl FnOnce(&Survey, chrono::Duration, usize) -> anyhow::Result<ReplayPlan>,
    ) -> anyhow::Result<Learnt> {
        let window = self.check()?;
        let started = Instant::now();
        let context = || format!("in --events {}", self.events.display());
        let found = survey(self.open()?).with_context(context)?;
        let surveyed = started.elapsed().as_secs_f64();
        let plan = plan_for(&found, window, self.max_training_rows)?;
        let replayed = replay(self.open()?, &plan).with_context(context)?;
        let replayed_in = started.elapsed().as_secs_f64() - surveyed;
        let rows = &replayed.training;
        let model = OpenModel::fit(&rows.x, &rows.y, self.alpha)?;
        let trained_on: Vec<&str> = plan.training_campaigns().map(|c| c.id.as_str()).collect();
        let total = started.elapsed().as_secs_f64();
        eprintln!(
            "read {} events of {} users twice; learnt from {} campaign(s) ({}): {} training sends, {:.1} % opened; {total:.1} s (survey {surveyed:.1} s, replay {replayed_in:.1} s, fit {:.1} s)",
            found.stats.events,
            found.users,
            trained_on.len(),
            trained_on.join(", "),
            model.rows,
            100.0 * model.opens as f64 / model.rows.max(1) as f64,
            total - surveyed - replayed_in
        );
        Ok(Learnt {
            found,
            plan,
            replayed,
            model,
        })
    }
}

/// Flags of `sendtime audience score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Events and training settings.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Score records (JSON Lines, `"kind":"score"`), ready for `data load` and `serve --data`.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The next campaign's channel (default: the last campaign's).
    #[arg(long)]
    pub channel: Option<Channel>,
    /// The next campaign's hour of the day, UTC 0–23 (default: the last campaign's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..24))]
    pub hour: Option<u32>,
    /// The instant the scores are for (RFC 3339, not before the last event; default: the
    /// last event's time).
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Also write the model (standardisation and weights) as JSON here.
    #[arg(long)]
    pub model_out: Option<PathBuf>,
}

impl ScoreArgs {
    /// Trains, prints what the model learnt, scores every user, writes the records.
    pub fn run(self) -> anyhow::Result<()> {
        let learnt = self
            .training
            .learn(|s, window, rows| Ok(ReplayPlan::for_scoring(s, window, rows)?))?;
        print_weights(&learnt.model);
        if let Some(path) = &self.model_out {
            write_json(path, &learnt.model)?;
        }
        let target = self.target(&learnt.found);
        let at = self.at(&learnt.found)?;
        self.write_scores(&learnt, target, at)
    }

    /// The next message: the flags, else the last campaign's channel and hour.
    fn target(&self, found: &Survey) -> Target {
        let last = default_target(found);
        Target {
            channel: self.channel.unwrap_or(last.channel),
            hour: self.hour.unwrap_or(last.hour),
        }
    }

    /// When the scores are for: `--at`, never before the last event learnt from.
    fn at(&self, found: &Survey) -> anyhow::Result<DateTime<Utc>> {
        let last = found.stats.last.unwrap_or_else(Utc::now);
        match self.at {
            Some(at) if at < last => bail!(
                "--at {} is before the last event ({}): scores are computed from every event, so they are for a time after them",
                at.to_rfc3339(),
                last.to_rfc3339()
            ),
            Some(at) => Ok(at.trunc_subsecs(0)),
            None => Ok(last.trunc_subsecs(0)),
        }
    }

    fn write_scores(
        &self,
        learnt: &Learnt,
        target: Target,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut out = jsonl::create(&self.out)?;
        let (mut n, mut sum) = (0usize, 0.0);
        for (user, score) in score_users(&learnt.replayed, &learnt.model, at.timestamp(), target) {
            let record = score_record(user, score, at)
                .with_context(|| format!("user id '{user}' in --events is not a valid id"))?;
            jsonl::write_line(&mut out, &Record::Score(record))?;
            n += 1;
            sum += score;
        }
        out.flush()?;
        eprintln!(
            "scored {n} users for a {} message at {:02}:00 UTC as of {}: mean score {:.3}, {sum:.0} expected opens of a full send; wrote {} in {:.1} s",
            target.channel.as_str(),
            target.hour,
            at.to_rfc3339(),
            sum / n.max(1) as f64,
            self.out.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn print_weights(model: &OpenModel) {
    eprintln!(
        "model {} (alpha {} per row), weight per standard deviation:",
        model.model, model.alpha
    );
    for (name, w) in FEATURE_NAMES.iter().zip(&model.weights) {
        eprintln!("  {name:<26} {w:+.3}");
    }
    eprintln!("  {:<26} {:+.3}", "intercept", model.intercept);
}

/// Flags of `sendtime audience select`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).args(["target_opens", "top", "min_score"])))]
pub struct SelectArgs {
    /// Score records written by `audience score`.
    #[arg(long)]
    pub scores: PathBuf,
    /// The fewest top users whose expected opens reach this share (0–1) of a full send's.
    #[arg(long)]
    pub target_opens: Option<f64>,
    /// The top N users.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
    /// Every user scored at least this (0–1).
    #[arg(long)]
    pub min_score: Option<f64>,
    /// The audience file for `campaign send --audience`: `.jsonl` for JSON Lines, else CSV.
    #[arg(long, short)]
    pub out: PathBuf,
}

impl SelectArgs {
    /// Reads the scores, picks, writes the audience, prints expected sends and opens.
    pub fn run(self) -> anyhow::Result<()> {
        let rule = self.rule()?;
        let mut scores = read_scores(&self.scores)?;
        let picked = select(&mut scores, rule);
        write_audience(&self.out, &scores[..picked.count])?;
        print_selection(&picked, &self.out);
        Ok(())
    }

    fn rule(&self) -> anyhow::Result<Rule> {
        let unit = |v: f64, flag: &str| -> anyhow::Result<f64> {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                bail!("{flag} must be between 0 and 1, got {v}")
            }
        };
        Ok(match (self.target_opens, self.top, self.min_score) {
            (Some(t), _, _) => Rule::TargetOpens(unit(t, "--target-opens")?),
            (_, Some(n), _) => Rule::Top(usize::try_from(n).unwrap_or(usize::MAX)),
            (_, _, Some(s)) => Rule::MinScore(unit(s, "--min-score")?),
            _ => bail!("give one of --target-opens, --top, --min-score"),
        })
    }
}

/// The users as an audience file: CSV with a `user_id` header, or JSON Lines by extension.
fn write_audience(path: &Path, users: &[(String, f64)]) -> anyhow::Result<()> {
    let mut out = jsonl::create(path)?;
    let format = Format::from_path(&path.to_string_lossy());
    if format == Format::Csv {
        writeln!(out, "user_id")?;
    }
    for (user, _) in users {
        match format {
            Format::Csv => writeln!(out, "{user}")?,
            Format::JsonLines => {
                jsonl::write_line(&mut out, &serde_json::json!({ "user_id": user }))?
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn print_selection(picked: &Selected, out: &Path) {
    let share = |a: f64, b: f64| 100.0 * a / b.max(f64::MIN_POSITIVE);
    eprintln!(
        "selected {} of {} users ({:.1} % of a full send): {:.0} expected opens of {:.0} ({:.1} % of a full send's); wrote {}",
        picked.count,
        picked.scored,
        share(picked.count as f64, picked.scored as f64),
        picked.expected_opens,
        picked.full_send_opens,
        share(picked.expected_opens, picked.full_send_opens),
        out.display()
    );
}

/// Each numbered non-blank line of a JSON Lines file, parsed; errors name the file and line.
fn for_each_line<T: serde::de::DeserializeOwned>(
    path: &Path,
    flag: &str,
    mut each: impl FnMut(usize, T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        File::open(path).with_context(|| format!("cannot open {flag} {}", path.display()))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let at = || format!("{flag} {}: line {}", path.display(), i + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let value: T = serde_json::from_str(&line).with_context(at)?;
        each(i + 1, value).with_context(at)?;
    }
    Ok(())
}

/// Every score record of `path`; any other line, or a user scored twice, is an error.
fn read_scores(path: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let mut seen = std::collections::HashSet::new();
    let mut scores = Vec::new();
    for_each_line(path, "--scores", |_, record: Record| {
        let Record::Score(s) = record else {
            bail!("not a score record (\"kind\":\"score\")");
        };
        if !seen.insert(s.user_id.clone()) {
            bail!("{} is scored twice", s.user_id);
        }
        scores.push((s.user_id.as_str().to_owned(), s.score));
        Ok(())
    })?;
    if scores.is_empty() {
        bail!("--scores {}: no score records", path.display());
    }
    Ok(scores)
}

/// Flags of `sendtime audience evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Events and training settings.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// The campaign held out (default: the last one sent).
    #[arg(long)]
    pub holdout: Option<String>,
    /// The hidden propensities (`data generate --truth`): adds the oracle.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Write the gain chart here (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Write the figures here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl EvaluateArgs {
    /// Trains on what came before the held-out campaign, ranks its sends, prints the gains.
    pub fn run(self) -> anyhow::Result<()> {
        let holdout = self.holdout.as_deref();
        let learnt = self
            .training
            .learn(|s, window, rows| Ok(ReplayPlan::for_evaluation(s, holdout, window, rows)?))?;
        let held = learnt.plan.holdout.map(|i| &learnt.plan.campaigns[i]);
        let held_id = held.map(|c| c.id.as_str()).unwrap_or_default();
        let truth = match &self.truth {
            Some(path) => Some(read_truth(path, held_id)?),
            None => None,
        };
        let evaluation = evaluate(&learnt.replayed, &learnt.model, truth.as_ref());
        let title = format!(
            "held-out campaign {held_id} ({}): {} sends, {} opens",
            held.map_or("", |c| c.channel.as_str()),
            evaluation.model.sends,
            evaluation.model.opens
        );
        print_evaluation(&title, &evaluation);
        if let Some(path) = &self.chart {
            let svg = sendtime_targeting::chart::gain_svg(
                &curves(&evaluation),
                &format!("Gain on {title}"),
            )
            .map_err(|e| anyhow::anyhow!("chart: {e}"))?;
            std::fs::write(path, svg)
                .with_context(|| format!("cannot write --chart {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = &self.json {
            write_json(path, &report(held_id, &learnt, &evaluation))?;
        }
        Ok(())
    }
}

/// The evaluation's figures as JSON (`--json`).
fn report(held_id: &str, learnt: &Learnt, e: &Evaluation) -> serde_json::Value {
    serde_json::json!({
        "holdout": held_id,
        "trained_on": learnt.plan.training_campaigns().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "cutoff": learnt.plan.cutoff,
        "training_rows": learnt.model.rows,
        "model": learnt.model,
        "mean_predicted": e.mean_predicted,
        "shares": SHARES,
        "rankings": curves(e).iter().map(|c| serde_json::json!({
            "name": c.name,
            "sends": c.sends,
            "opens": c.opens,
            "opens_at": SHARES.iter().map(|s| c.opens_at(*s)).collect::<Vec<_>>(),
            "sends_for_95": c.sends_for(0.95),
            "sends_for_99": c.sends_for(0.99),
            "sends_for_100": c.sends_for(1.0),
            "area": c.area(),
        })).collect::<Vec<_>>(),
    })
}

fn curves(e: &Evaluation) -> Vec<GainCurve> {
    let mut all = vec![e.model.clone(), e.baseline.clone(), e.random.clone()];
    all.extend(e.oracle.clone());
    all
}

fn print_evaluation(title: &str, e: &Evaluation) {
    println!(
        "{title}; open rate {:.1} %, mean predicted {:.1} %",
        100.0 * e.model.opens as f64 / e.model.sends.max(1) as f64,
        100.0 * e.mean_predicted
    );
    print!("{:<10}", "ranking");
    for s in SHARES {
        print!(" {:>9}", format!("@{:.0}%", 100.0 * s));
    }
    println!(
        " {:>10} {:>10} {:>11} {:>6}",
        "95% opens", "99% opens", "100% opens", "area"
    );
    for c in curves(e) {
        print!("{:<10}", c.name);
        for s in SHARES {
            print!(" {:>8.1}%", 100.0 * c.opens_at(s));
        }
        println!(
            " {:>9.1}% {:>9.1}% {:>10.1}% {:>6.3}",
            100.0 * c.sends_for(0.95),
            100.0 * c.sends_for(0.99),
            100.0 * c.sends_for(1.0),
            c.area()
        );
    }
    let needed = |c: &GainCurve| 100.0 * c.sends_for(HEADLINE_SHARE);
    println!(
        "headline: the model reaches {:.0} % of a full send's opens with {:.1} % of the sends ({:.1} % fewer messages); the baseline needs {:.1} %{}",
        100.0 * HEADLINE_SHARE,
        needed(&e.model),
        100.0 - needed(&e.model),
        needed(&e.baseline),
        e.oracle
            .as_ref()
            .map(|o| format!(", the oracle {:.1} %", needed(o)))
            .unwrap_or_default()
    );
}

/// The truth rows of campaign `campaign`: user id → propensity.
fn read_truth(path: &Path, campaign: &str) -> anyhow::Result<HashMap<String, f64>> {
    #[derive(serde::Deserialize)]
    struct Row {
        user_id: String,
        campaign_id: String,
        p: f64,
    }
    let mut out = HashMap::new();
    for_each_line(path, "--truth", |_, row: Row| {
        if row.campaign_id == campaign {
            out.insert(row.user_id, row.p);
        }
        Ok(())
    })?;
    if out.is_empty() {
        bail!(
            "--truth {}: no truth for campaign {campaign}",
            path.display()
        );
    }
    Ok(out)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

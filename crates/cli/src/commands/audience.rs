//! `sendtime audience score|select|evaluate`: who is worth a message (seed 000). Scores come
//! from a logistic regression of P(open) trained on earlier campaigns' sends; selection picks
//! the top of them for an opens target; evaluation holds the last campaign out and compares
//! the model's gain with a recency/frequency baseline, random and (synthetic data) the truth.

use anyhow::{bail, Context};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{Args, Subcommand};
use sendtime_campaign::audience::Format;
use sendtime_domain::{SendScore, UserId};
use sendtime_store::Record;
use sendtime_targeting::events::Channel;
use sendtime_targeting::features::{Target, FEATURE_NAMES};
use sendtime_targeting::gain::{GainCurve, SHARES};
use sendtime_targeting::model::OpenModel;
use sendtime_targeting::replay::{replay, survey, ReplayPlan, Replayed, Survey};
use sendtime_targeting::select::{select, Rule};
use sendtime_targeting::{evaluate, score_users, Evaluation};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
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
}

impl AudienceCommand {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            AudienceCommand::Score(args) => args.run(),
            AudienceCommand::Select(args) => args.run(),
            AudienceCommand::Evaluate(args) => args.run(),
        }
    }
}

/// How the model learns: shared by `score` and `evaluate`.
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// Engagement events, JSON Lines in time order (`data generate --events` writes them).
    #[arg(long)]
    pub events: PathBuf,
    /// L2 penalty of the logistic regression.
    #[arg(long, default_value_t = 1e-3)]
    pub alpha: f64,
    /// At most this many training sends (sampled evenly by user and campaign).
    #[arg(long, default_value_t = 400_000)]
    pub max_training_rows: usize,
    /// An open counts for its campaign when it comes within this many hours of the send.
    #[arg(long, default_value_t = 72)]
    pub label_window_hours: i64,
}

impl TrainingArgs {
    fn open(&self) -> anyhow::Result<BufReader<File>> {
        let file = File::open(&self.events)
            .with_context(|| format!("cannot open --events {}", self.events.display()))?;
        Ok(BufReader::with_capacity(1 << 20, file))
    }

    fn window(&self) -> anyhow::Result<chrono::Duration> {
        if !(1..=24 * 60).contains(&self.label_window_hours) {
            bail!("--label-window-hours must be 1–1440");
        }
        Ok(chrono::Duration::hours(self.label_window_hours))
    }

    /// Pass 1 (the campaigns), a plan from it, pass 2 (the replay), the model.
    fn learn(
        &self,
        plan_for: impl FnOnce(&Survey) -> anyhow::Result<ReplayPlan>,
    ) -> anyhow::Result<(Survey, ReplayPlan, Replayed, OpenModel)> {
        let started = Instant::now();
        let found =
            survey(self.open()?).with_context(|| format!("in {}", self.events.display()))?;
        let surveyed = started.elapsed().as_secs_f64();
        let plan = plan_for(&found)?;
        let replayed =
            replay(self.open()?, &plan).with_context(|| format!("in {}", self.events.display()))?;
        let replayed_in = started.elapsed().as_secs_f64() - surveyed;
        let rows = &replayed.training;
        let model = OpenModel::fit(&rows.x, &rows.y, self.alpha)?;
        let trained_on: Vec<&str> = plan.training_campaigns().map(|c| c.id.as_str()).collect();
        eprintln!(
            "read {} events of {} users twice; learnt from {} campaign(s) ({}): {} training sends, {:.1} % opened; {:.1} s (survey {:.1} s, replay {:.1} s, fit {:.1} s)",
            found.stats.events,
            found.users,
            trained_on.len(),
            trained_on.join(", "),
            model.rows,
            100.0 * model.opens as f64 / model.rows.max(1) as f64,
            started.elapsed().as_secs_f64(),
            surveyed,
            replayed_in,
            started.elapsed().as_secs_f64() - surveyed - replayed_in
        );
        Ok((found, plan, replayed, model))
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
    /// The instant the scores are for (RFC 3339; default: the last event's time).
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Also write the model (standardisation and weights) as JSON here.
    #[arg(long)]
    pub model_out: Option<PathBuf>,
}

impl ScoreArgs {
    /// Trains, prints what the model learnt, scores every user, writes the records.
    pub fn run(self) -> anyhow::Result<()> {
        let window = self.training.window()?;
        let max_rows = self.training.max_training_rows;
        let (found, _, replayed, model) = self
            .training
            .learn(|s| Ok(ReplayPlan::for_scoring(s, window, max_rows)?))?;
        print_weights(&model);
        let last = found.campaigns.last();
        let target = Target {
            channel: self
                .channel
                .or(last.map(|c| c.channel))
                .unwrap_or(Channel::Email),
            hour: self
                .hour
                .or(last.map(|c| Target::at(c.channel, c.first_send.timestamp()).hour))
                .unwrap_or(10),
        };
        let at = self
            .at
            .or(found.stats.last)
            .unwrap_or_else(Utc::now)
            .trunc_subsecs(0);
        if let Some(path) = &self.model_out {
            write_json(path, &model)?;
        }
        let started = Instant::now();
        let mut out = create(&self.out)?;
        let (mut n, mut sum) = (0usize, 0.0);
        for (user, score) in score_users(&replayed, &model, at.timestamp(), target) {
            let record = Record::Score(SendScore {
                user_id: UserId::parse(user).with_context(|| format!("user id {user}"))?,
                score: (score * 1e4).round() / 1e4,
                computed_at: at,
                model: model.model.clone(),
            });
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
            n += 1;
            sum += score;
        }
        out.flush()?;
        eprintln!(
            "scored {n} users for a {} message at {:02}:00 UTC as of {}: mean score {:.3}, {:.0} expected opens of a full send; wrote {} in {:.1} s",
            target.channel.as_str(),
            target.hour,
            at.to_rfc3339(),
            sum / n.max(1) as f64,
            sum,
            self.out.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn print_weights(model: &OpenModel) {
    eprintln!(
        "model {} (alpha {}), weight per standard deviation:",
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
    #[arg(long)]
    pub top: Option<usize>,
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
        let mut out = create(&self.out)?;
        let format = Format::from_path(&self.out.to_string_lossy());
        if format == Format::Csv {
            writeln!(out, "user_id")?;
        }
        for (user, _) in &scores[..picked.count] {
            match format {
                Format::Csv => writeln!(out, "{user}")?,
                Format::JsonLines => {
                    serde_json::to_writer(&mut out, &serde_json::json!({ "user_id": user }))?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
        let share = |a: f64, b: f64| 100.0 * a / b.max(f64::MIN_POSITIVE);
        eprintln!(
            "selected {} of {} users ({:.1} % of a full send): {:.0} expected opens of {:.0} ({:.1} % of a full send's); wrote {}",
            picked.count,
            picked.scored,
            share(picked.count as f64, picked.scored as f64),
            picked.expected_opens,
            picked.full_send_opens,
            share(picked.expected_opens, picked.full_send_opens),
            self.out.display()
        );
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
            (_, Some(n), _) => Rule::Top(n),
            (_, _, Some(s)) => Rule::MinScore(unit(s, "--min-score")?),
            _ => bail!("give one of --target-opens, --top, --min-score"),
        })
    }
}

/// Every score record of `path`; any other line, or a user scored twice, is an error.
fn read_scores(path: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let file =
        File::open(path).with_context(|| format!("cannot open --scores {}", path.display()))?;
    let mut seen = std::collections::HashSet::new();
    let mut scores = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        let Record::Score(s) = record else {
            bail!(
                "{}: line {}: not a score record (\"kind\":\"score\")",
                path.display(),
                i + 1
            );
        };
        if !s.score.is_finite() {
            bail!("{}: line {}: score is not a number", path.display(), i + 1);
        }
        if !seen.insert(s.user_id.clone()) {
            bail!(
                "{}: line {}: {} is scored twice",
                path.display(),
                i + 1,
                s.user_id
            );
        }
        scores.push((s.user_id.as_str().to_owned(), s.score));
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
        let window = self.training.window()?;
        let max_rows = self.training.max_training_rows;
        let holdout = self.holdout.clone();
        let (_, plan, replayed, model) = self.training.learn(|s| {
            Ok(ReplayPlan::for_evaluation(
                s,
                holdout.as_deref(),
                window,
                max_rows,
            )?)
        })?;
        let held = plan.holdout.map(|i| &plan.campaigns[i]);
        let held_id = held.map(|c| c.id.clone()).unwrap_or_default();
        let truth = match &self.truth {
            Some(path) => Some(read_truth(path, &held_id)?),
            None => None,
        };
        let evaluation = evaluate(&replayed, &model, truth.as_ref());
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
            let report = serde_json::json!({
                "holdout": held_id,
                "trained_on": plan.training_campaigns().map(|c| c.id.clone()).collect::<Vec<_>>(),
                "cutoff": plan.cutoff,
                "training_rows": model.rows,
                "model": model,
                "mean_predicted": evaluation.mean_predicted,
                "rankings": curves(&evaluation).iter().map(|c| serde_json::json!({
                    "name": c.name,
                    "sends": c.sends,
                    "opens": c.opens,
                    "opens_at": SHARES.iter().map(|s| c.opens_at(*s)).collect::<Vec<_>>(),
                    "sends_for_95": c.sends_for(0.95),
                    "sends_for_99": c.sends_for(0.99),
                    "sends_for_100": c.sends_for(1.0),
                    "area": c.area(),
                })).collect::<Vec<_>>(),
            });
            write_json(path, &report)?;
        }
        Ok(())
    }
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
    println!(
        "headline: the model reaches 95 % of a full send's opens with {:.1} % of the sends ({:.1} % fewer messages); the baseline needs {:.1} %{}",
        100.0 * e.model.sends_for(0.95),
        100.0 * (1.0 - e.model.sends_for(0.95)),
        100.0 * e.baseline.sends_for(0.95),
        e.oracle
            .as_ref()
            .map(|o| format!(", the oracle {:.1} %", 100.0 * o.sends_for(0.95)))
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
    let file =
        File::open(path).with_context(|| format!("cannot open --truth {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if row.campaign_id == campaign {
            out.insert(row.user_id, row.p);
        }
    }
    if out.is_empty() {
        bail!("{}: no truth for campaign {campaign}", path.display());
    }
    Ok(out)
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

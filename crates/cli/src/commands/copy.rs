//! `sendtime copy`: the marketer's words, without a deploy. Lists the slots and their
//! placeholders, lists and shows the copy in force, and writes validated copy records into
//! the table (or a dataset file for the embedded store); a running API shows a change once
//! its copy cache expires (`--cache-copy-ttl-secs`, 60 s).

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Subcommand};
use sendtime_domain::CopyRecord;
use sendtime_dynamo::DynamoConfig;
use sendtime_render::copy::{self, Field, ANY, SLOTS};
use sendtime_render::{CopyBook, Locale};
use sendtime_store::{CopyGet, ParsedRecords, Record, RecordsPut};
use std::io::Write;
use std::sync::Arc;

/// The `sendtime copy` subcommands.
#[derive(Debug, Subcommand)]
pub enum CopyCommand {
    /// List every copy slot: when it is used and the placeholders its texts may use.
    Slots,
    /// List the copy records stored (the overrides of the built-in words).
    List(Where),
    /// Show the words in force for a slot, channel and language, and the built-in default.
    Get(GetArgs),
    /// Write a copy record (checked: known slot, channel and language; only the slot's
    /// placeholders; balanced braces; an http(s) button link).
    Put(PutArgs),
}

/// Where copy records live: a DynamoDB table, or a dataset file for `serve --data`.
#[derive(Debug, Clone, Args)]
pub struct Where {
    /// The table (as for `data load` and `serve`).
    #[arg(long, env = "SENDTIME_TABLE", conflicts_with = "file")]
    pub table: Option<String>,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local.
    #[arg(long, env = "SENDTIME_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// AWS region of the table.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// A dataset file (JSON Lines) instead of a table: `put` appends a line, which
    /// `serve --data FILE` reads at start.
    #[arg(long)]
    pub file: Option<String>,
}

/// `copy get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The slot, e.g. `cart.reminder` (`sendtime copy slots` lists them).
    pub slot: String,
    /// The channel: email, push, sms or kakao.
    #[arg(long, default_value = "email")]
    pub channel: String,
    /// The language: ko or en.
    #[arg(long, default_value = "ko")]
    pub locale: String,
    #[command(flatten)]
    pub target: Where,
}

/// `copy put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// The slot, e.g. `cart.reminder` (`sendtime copy slots` lists them).
    pub slot: String,
    /// The channel it is for (email, push, sms, kakao), or `any`.
    #[arg(long, default_value = ANY)]
    pub channel: String,
    /// The language (ko, en), or `any`.
    #[arg(long)]
    pub locale: String,
    /// Headline: push title, email heading, LMS subject.
    #[arg(long)]
    pub title: Option<String>,
    /// The sentence under it.
    #[arg(long)]
    pub body: Option<String>,
    /// The button's label.
    #[arg(long)]
    pub cta: Option<String>,
    /// The button's link.
    #[arg(long)]
    pub cta_url: Option<String>,
    #[command(flatten)]
    pub target: Where,
}

impl CopyCommand {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self {
            CopyCommand::Slots => {
                for slot in SLOTS {
                    let names: Vec<String> = slot
                        .placeholders
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect();
                    writeln!(out, "{:<30} {}", slot.name, slot.about)?;
                    writeln!(out, "{:<30} placeholders: {}", "", names.join(" "))?;
                }
            }
            CopyCommand::List(target) => {
                let records = read(&target).await?;
                if records.is_empty() {
                    writeln!(out, "no copy records: the built-in words are in force")?;
                }
                for r in records.iter() {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            }
            CopyCommand::Get(args) => {
                let locale = Locale::from_tag(&args.locale)
                    .filter(|l| l.as_str() == args.locale)
                    .context("--locale must be ko or en")?;
                if sendtime_render::channel(&args.channel).is_none() {
                    bail!("--channel must be email, push, sms or kakao");
                }
                copy::slot(&args.slot)
                    .with_context(|| format!("unknown slot {} (sendtime copy slots)", args.slot))?;
                let records = read(&args.target).await?;
                let (book, rejected) = CopyBook::new(&records);
                for (key, error) in rejected {
                    writeln!(out, "ignored record {key}: {error}")?;
                }
                let defaults = CopyBook::default();
                for (name, field) in [
                    ("title", Field::Title),
                    ("body", Field::Body),
                    ("cta", Field::Cta),
                    ("cta_url", Field::CtaUrl),
                ] {
                    let now = book.candidates(&args.slot, &args.channel, locale, field);
                    let default = defaults.candidates(&args.slot, &args.channel, locale, field);
                    let (now, default) = (now.first().copied(), default.first().copied());
                    let from = if now == default { "default" } else { "record" };
                    writeln!(out, "{name:<8} {:<8} {}", from, now.unwrap_or("-"))?;
                }
            }
            CopyCommand::Put(args) => {
                let record = CopyRecord {
                    slot: args.slot,
                    channel: args.channel,
                    locale: args.locale,
                    title: args.title,
                    body: args.body,
                    cta: args.cta,
                    cta_url: args.cta_url,
                    updated_at: Some(Utc::now()),
                };
                copy::validate(&record).map_err(|e| anyhow::anyhow!("{}: {e}", record.key()))?;
                write(&args.target, record.clone()).await?;
                writeln!(out, "wrote copy {}", record.key())?;
            }
        }
        Ok(())
    }
}

async fn store(target: &Where) -> anyhow::Result<Option<Arc<sendtime_dynamo::DynamoStore>>> {
    let Some(table) = &target.table else {
        return Ok(None);
    };
    let mut config = DynamoConfig::new(table.clone());
    config.endpoint = target.dynamodb_endpoint.clone();
    config.region = target.region.clone();
    let store = Arc::new(sendtime_dynamo::connect(&config).await);
    if !store.warm_up().await.context("could not reach DynamoDB")? {
        bail!("table '{table}' does not exist (sendtime data load creates it)");
    }
    Ok(Some(store))
}

/// Every copy record at `target`.
async fn read(target: &Where) -> anyhow::Result<Vec<CopyRecord>> {
    if let Some(store) = store(target).await? {
        return Ok(store
            .copy_records()
            .await
            .context("reading copy records")?
            .to_vec());
    }
    let Some(file) = &target.file else {
        bail!(
            "say where the copy lives: --table (DynamoDB) or --file (a dataset for serve --data)"
        );
    };
    let input = std::fs::File::open(file).with_context(|| format!("cannot open --file {file}"))?;
    let parsed = ParsedRecords::read(std::io::BufReader::new(input));
    // Later lines win, as when the file is loaded.
    let mut by_key = std::collections::BTreeMap::new();
    for record in parsed.records {
        if let Record::Copy(c) = record {
            by_key.insert(c.key(), c);
        }
    }
    Ok(by_key.into_values().collect())
}

/// Writes `record` at `target`.
async fn write(target: &Where, record: CopyRecord) -> anyhow::Result<()> {
    if let Some(store) = store(target).await? {
        let report = store.put_records(&[Record::Copy(record)]).await?;
        if let Some((what, why)) = report.failed.first() {
            bail!("not written: {what}: {why}");
        }
        return Ok(());
    }
    let Some(file) = &target.file else {
        bail!("say where the copy goes: --table (DynamoDB) or --file (a dataset for serve --data)");
    };
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .with_context(|| format!("cannot open --file {file}"))?;
    writeln!(out, "{}", serde_json::to_string(&Record::Copy(record))?)?;
    Ok(())
}

//! `sendtime serve`: the local server. With no arguments it generates demo data into the
//! embedded store, so a newcomer sees blocks with one command and no AWS account. It also
//! takes events (`POST /v1/events`, a write key required: one is made up and printed when
//! none is configured), applied to the store behind the cache, each dropping what the cache
//! holds about its user or item at once.

use crate::commands::data::DatasetArgs;
use crate::datagen;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use sendtime_api::ingest::{Ingest, WRITE_KEY_SHA256_VAR};
use sendtime_api::{router_with, BlockService, RouterOptions};
use sendtime_domain::{BlockKind, Clock, FixedClock, SystemClock, UserId};
use sendtime_dynamo::DynamoConfig;
use sendtime_store::{
    BlockStore, CacheConfig, CachedStore, EventsApply, MemoryStore, ParsedRecords, Record,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the caches' housekeeping runs off the request path.
const CACHE_MAINTENANCE: Duration = Duration::from_secs(1);
/// Flags of `sendtime serve`: address, data source, rules, clock, key and cache lifetimes.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, env = "SENDTIME_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Serve this DynamoDB table instead of the embedded demo data.
    #[arg(long, env = "SENDTIME_TABLE")]
    pub table: Option<String>,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local.
    #[arg(long, env = "SENDTIME_DYNAMODB_ENDPOINT", requires = "table")]
    pub dynamodb_endpoint: Option<String>,
    /// AWS region of the table.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Serve these JSON Lines datasets from the embedded store instead of generated demo data
    /// (repeat it: a later file overrides records of the same key in an earlier one).
    #[arg(long, conflicts_with = "table")]
    pub data: Vec<PathBuf>,
    /// Demo data (when neither --table nor --data is given).
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Block thresholds and content: a TOML or JSON rules file (defaults: BRIEF §2;
    /// example: config/rules.toml). An unknown key or a bad value stops start-up.
    #[arg(long, env = sendtime_api::rules_file::RULES_FILE_VAR)]
    pub rules: Option<PathBuf>,
    /// Pin the clock to this RFC 3339 instant (reproducible demos and tests).
    #[arg(long, env = "SENDTIME_NOW")]
    pub now: Option<DateTime<Utc>>,
    /// Require callers to send a key whose SHA-256 (64 hex digits) is one of these, in the
    /// `x-sendtime-key` header (comma-separated or repeated: several keys during a
    /// rotation). Off by default for local use.
    #[arg(long, env = "SENDTIME_API_KEY_SHA256", value_parser = parse_key_hash, value_delimiter = ',', hide_env_values = true)]
    pub api_key_sha256: Vec<[u8; 32]>,
    /// Accept events (`POST /v1/events`) from callers whose key (`x-sendtime-key`) has one
    /// of these SHA-256 digests (comma-separated or repeated, for a rotation); a write key
    /// reads nothing, a read key writes nothing. None given: one is made up and printed at
    /// start-up.
    #[arg(long, env = WRITE_KEY_SHA256_VAR, value_parser = parse_key_hash, value_delimiter = ',', hide_env_values = true)]
    pub write_key_sha256: Vec<[u8; 32]>,
    /// Accept URLs signed with one of these secrets (`sig`, `exp`; see the README): for
    /// email fetches that cannot send a header. Comma-separated or repeated.
    #[arg(
        long,
        env = "SENDTIME_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub signing_secret: Vec<String>,
    /// How long the store's cache keeps each kind of record.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Budget of a whole request in ms, store calls included: past it the answer comes from
    /// held data or the block's fallback, marked `degraded` (Braze gives up at 2,000).
    #[arg(long, env = "SENDTIME_REQUEST_BUDGET_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_budget_ms: u64,
    /// Requests assembling from the store at once; beyond them requests are answered from
    /// the fallback at once (`degraded_reason: overloaded`) instead of queueing.
    #[arg(long, env = "SENDTIME_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Answer `503` with `Retry-After` instead of a degraded answer, unless a request says
    /// `strict=0` (a request can ask for it with `strict=1` anyway).
    #[arg(long, env = "SENDTIME_STRICT")]
    pub strict: bool,
    /// Language of rendered formats (`format=html|text`, `channel=`) when neither the
    /// request's `locale=` nor the user's profile says: `ko` or `en`.
    #[arg(long, env = "SENDTIME_DEFAULT_LOCALE", default_value = "ko", value_parser = parse_locale)]
    pub default_locale: sendtime_render::Locale,
    /// Do not serve the preview page (`/preview?user_id=…`: every block for one user as each
    /// channel renders it; with keys configured it asks for one).
    #[arg(long, env = "SENDTIME_NO_PREVIEW")]
    pub no_preview: bool,
    /// How the server treats connections.
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

/// Connection limit flags, shared by `serve` and `baseline`.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Longest wait in ms for a whole request head, from the moment the server waits for
    /// one: a client trickling its headers, or a kept-alive connection idle this long, is
    /// closed.
    #[arg(long, env = "SENDTIME_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Connections open at once (default: the open-file limit less 64); at the cap, open
    /// connections are closed as their requests finish so new clients get in.
    #[arg(long, env = "SENDTIME_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
}

impl ConnectionArgs {
    /// The server limits these flags give.
    pub fn limits(&self) -> crate::server::ServerLimits {
        crate::server::ServerLimits::new(
            Duration::from_millis(self.header_timeout_ms),
            self.max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        )
    }
}

fn parse_key_hash(hex: &str) -> Result<[u8; 32], String> {
    sendtime_api::auth::parse_sha256_hex(hex).ok_or_else(|| {
        "expected 64 hex digits, e.g. the output of `printf %s KEY | sha256sum`".to_owned()
    })
}

/// Cache lifetime flags (`--cache-*-ttl-secs`), on the env variables the Lambda functions read.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Seconds a user's profile, list and cart stay cached (0 disables).
    #[arg(long, env = "SENDTIME_CACHE_USER_TTL_SECS", default_value_t = 30)]
    pub cache_user_ttl_secs: u64,
    /// Seconds a catalog item stays cached (0 disables).
    #[arg(long, env = "SENDTIME_CACHE_ITEM_TTL_SECS", default_value_t = 600)]
    pub cache_item_ttl_secs: u64,
    /// Seconds a popular list stays cached (0 disables).
    #[arg(long, env = "SENDTIME_CACHE_POPULAR_TTL_SECS", default_value_t = 300)]
    pub cache_popular_ttl_secs: u64,
    /// Seconds a serialised answer is kept for repeat calls (0 disables); never longer than
    /// the records it came from are cached.
    #[arg(long, env = "SENDTIME_CACHE_ANSWER_TTL_SECS", default_value_t = 30)]
    pub cache_answer_ttl_secs: u64,
    /// Seconds a negative record — no profile, no popular list, no such item — stays cached
    /// (at most its kind's TTL), so data loaded after a miss shows soon.
    #[arg(long, env = "SENDTIME_CACHE_NEGATIVE_TTL_SECS", default_value_t = 5)]
    pub cache_negative_ttl_secs: u64,
    /// Seconds the copy records (marketer-editable words, `sendtime copy put`) are cached: a
    /// change shows within this, without a restart.
    #[arg(long, env = "SENDTIME_CACHE_COPY_TTL_SECS", default_value_t = 60)]
    pub cache_copy_ttl_secs: u64,
}

/// `ko` or `en`.
fn parse_locale(s: &str) -> Result<sendtime_render::Locale, String> {
    sendtime_render::Locale::ALL
        .into_iter()
        .find(|l| l.as_str() == s)
        .ok_or_else(|| "ko or en".to_owned())
}

impl CacheArgs {
    /// The cache config these flags give; its other settings are [`CacheConfig::default`]'s.
    pub fn config(&self) -> CacheConfig {
        CacheConfig {
            user_ttl: Duration::from_secs(self.cache_user_ttl_secs),
            item_ttl: Duration::from_secs(self.cache_item_ttl_secs),
            popular_ttl: Duration::from_secs(self.cache_popular_ttl_secs),
            answer_ttl: Duration::from_secs(self.cache_answer_ttl_secs),
            negative_ttl: Duration::from_secs(self.cache_negative_ttl_secs),
            copy_ttl: Duration::from_secs(self.cache_copy_ttl_secs),
            ..CacheConfig::default()
        }
    }
}

/// What `serve` serves from: the store behind its cache, the same store's event writes, what
/// it is, and demo users to show.
struct Served {
    /// Reads, through the cache.
    store: Arc<dyn BlockStore>,
    /// Event writes, straight to the store (never through the cache).
    events: Arc<dyn EventsApply>,
    /// A line saying what is served.
    description: String,
    /// Users of the embedded data to show in the example lines (none for a table).
    sample_users: Vec<UserId>,
}

/// The write keys in force: the configured digests, or one made-up key (printed once).
struct WriteKeys {
    digests: Vec<[u8; 32]>,
    made_up: Option<String>,
}

impl ServeArgs {
    /// Loads the rules and data, binds `--addr`, prints example URLs (and the write key when
    /// it made one up), then serves until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        // The rules first: a bad file should stop start-up before any data is read.
        let rules = sendtime_api::rules_file::load_or_default(self.rules.as_deref())
            .context("--rules / SENDTIME_RULES_FILE")?;
        let clock: Arc<dyn Clock> = match self.now {
            Some(now) => Arc::new(FixedClock(now)),
            None => Arc::new(SystemClock),
        };
        let cache = self.cache.config();
        let served = self.open_store(&clock, &cache).await?;
        let service = Arc::new(
            BlockService::new(served.store.clone(), rules, clock.clone())
                .with_answer_cache(&cache)
                .with_deadline(Duration::from_millis(self.request_budget_ms))
                .with_max_in_flight(usize::try_from(self.max_in_flight).unwrap_or(usize::MAX)),
        );
        // Events go to the store itself; what they change is dropped from the caches (the
        // store's and the answers) through the block service.
        let ingest = Arc::new(Ingest::new(
            served.events.clone(),
            service.clone(),
            clock.clone(),
        ));
        let write_keys = self.write_keys();
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot listen on {} (choose another --addr)", self.addr))?;
        let local = listener.local_addr()?;
        let mut examples =
            example_urls(&service, local, &served.sample_users, !self.no_preview).await;
        let users = &served.sample_users;
        examples.extend(event_example(&service, local, users, &write_keys, clock.now()).await);
        print_banner(local, &served.description, &examples)?;
        tracing::info!(addr = %local, "serving");
        let app = router_with(
            service,
            RouterOptions {
                credentials: self.credentials(write_keys.digests),
                strict: self.strict,
                default_locale: self.default_locale,
                preview: !self.no_preview,
                ingest: Some(ingest),
                ..RouterOptions::default()
            },
        );
        crate::server::serve(listener, app, self.connections.limits(), shutdown_signal()).await;
        Ok(())
    }

    /// The store `--table`, `--data` or the demo data give, behind the cache.
    async fn open_store(
        &self,
        clock: &Arc<dyn Clock>,
        cache: &CacheConfig,
    ) -> anyhow::Result<Served> {
        let Some(table) = &self.table else {
            let (records, description) = match self.data.as_slice() {
                [] => demo_records(&self.dataset, clock.now()),
                files => (
                    read_data_files(files)?,
                    format!(
                        "embedded store from {}",
                        files
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" + ")
                    ),
                ),
            };
            let sample_users: Vec<UserId> = records
                .iter()
                .filter_map(|r| match r {
                    Record::User(u) => Some(u.user_id.clone()),
                    _ => None,
                })
                .take(500)
                .collect();
            let memory = Arc::new(MemoryStore::with_records(clock.clone(), records));
            let store = Arc::new(CachedStore::new(memory.clone(), cache));
            store.maintain_every(CACHE_MAINTENANCE);
            return Ok(Served {
                store,
                events: memory,
                description,
                sample_users,
            });
        };
        let mut config = DynamoConfig::new(table.clone());
        config.endpoint = self.dynamodb_endpoint.clone();
        config.region = self.region.clone();
        let dynamo = sendtime_dynamo::connect(&config)
            .await
            .with_clock(clock.clone());
        let exists = dynamo.warm_up().await.with_context(|| {
            format!("could not reach DynamoDB for table '{table}' (check --dynamodb-endpoint / --region and credentials)")
        })?;
        if !exists {
            bail!("table '{table}' does not exist: create and fill it with `sendtime data load --table {table}`, or fix --table");
        }
        let dynamo = Arc::new(dynamo);
        let store = Arc::new(CachedStore::new(dynamo.clone(), cache));
        store.maintain_every(CACHE_MAINTENANCE);
        Ok(Served {
            store,
            events: dynamo,
            description: format!("DynamoDB table '{table}'"),
            sample_users: Vec::new(),
        })
    }

    /// The read keys and signing secrets given, and these write keys.
    fn credentials(&self, write_keys: Vec<[u8; 32]>) -> sendtime_api::auth::Credentials {
        let secrets = self
            .signing_secret
            .iter()
            .map(|s| s.trim().as_bytes().to_vec())
            .collect();
        sendtime_api::auth::Credentials::new(self.api_key_sha256.clone(), secrets)
            .with_write_keys(write_keys)
    }

    /// `--write-key-sha256`, or a random key of 32 bytes (hex) made up for this run.
    fn write_keys(&self) -> WriteKeys {
        if !self.write_key_sha256.is_empty() {
            return WriteKeys {
                digests: self.write_key_sha256.clone(),
                made_up: None,
            };
        }
        let key: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        WriteKeys {
            digests: vec![sendtime_api::auth::sha256(&key)],
            made_up: Some(key),
        }
    }
}

/// The start-up lines: where it listens, what it serves, the example lines.
fn print_banner(local: SocketAddr, description: &str, examples: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "sendtime listening on http://{local} serving {description}"
    )?;
    for line in examples {
        writeln!(out, "  {line}")?;
    }
    out.flush()?;
    Ok(())
}

/// The write key this run made up (when none was configured), and a ready `curl` line that
/// posts an `order_placed` for a demo user with an eligible cart — then that cart's block
/// answers not eligible, `purchased`.
async fn event_example(
    service: &BlockService,
    addr: SocketAddr,
    users: &[UserId],
    keys: &WriteKeys,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let key = match &keys.made_up {
        Some(key) => {
            lines.push(format!(
                "write key (made up for this run; set --write-key-sha256 or {WRITE_KEY_SHA256_VAR} to choose one): {key}"
            ));
            key.clone()
        }
        None => "$SENDTIME_WRITE_KEY".to_owned(),
    };
    let mut cart = None;
    for user in users {
        let answer = service.answer(BlockKind::Cart, user, 4).await;
        if answer.summary.eligible {
            let items: Vec<String> = answer.value()["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            cart = Some((user.to_string(), items));
            break;
        }
    }
    // A table's users are not known here: the line names a placeholder to replace.
    let (user, items) = cart.unwrap_or_else(|| ("USER_ID".to_owned(), vec!["ITEM_ID".to_owned()]));
    let products: Vec<serde_json::Value> = items
        .iter()
        .map(|id| serde_json::json!({ "product_id": id, "quantity": 1 }))
        .collect();
    let event = serde_json::json!({ "events": [{
        "id": format!("demo-order-{user}"),
        "type": "order_placed",
        "user_id": user,
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "properties": { "order_id": format!("demo-{user}"), "products": products },
    }]});
    lines.push(format!(
        "curl -X POST http://{addr}{} -H 'x-sendtime-key: {key}' -H 'content-type: application/json' -d '{event}'    # an order: {user}'s cart block turns off (purchased)",
        sendtime_api::router::EVENTS_ROUTE
    ));
    lines.push(format!(
        "curl http://{addr}/v1/users/{user}/cart    # after the order: not eligible, purchased"
    ));
    lines
}

/// Demo users above this many are served without send scores (scoring them would slow the
/// start: a million users' events take half a minute; `audience score` is the tool there).
const DEMO_SCORES_MAX_USERS: usize = 200_000;

/// Send scores for the demo users, from their generated engagement events through the same
/// The dataset files of `--data`, read in order: of records with the same key the last wins
/// (a later file overrides an earlier one, e.g. a day's Personalize lists over a catalog).
fn read_data_files(files: &[PathBuf]) -> anyhow::Result<Vec<Record>> {
    let mut records = Vec::new();
    for path in files {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open --data {}", path.display()))?;
        let parsed = ParsedRecords::read(std::io::BufReader::new(file));
        if let Some(first) = parsed.errors.first() {
            bail!(
                "--data {}: {} unreadable line(s), first: {first}",
                path.display(),
                parsed.errors.len()
            );
        }
        records.extend(parsed.records);
    }
    Ok(records)
}

/// Generated demo data with its scores, and a line saying what it is.
fn demo_records(dataset: &DatasetArgs, now: DateTime<Utc>) -> (Vec<Record>, String) {
    let spec = dataset.spec(now);
    let mut records = datagen::generate(&spec);
    let scored = demo_scores(&spec, &mut records);
    (
        records,
        format!(
            "embedded demo data ({} users, {} items, seed {}; {scored})",
            spec.users, spec.items, spec.seed
        ),
    )
}

/// pipeline as `audience score` (train on every campaign, score for the next); says what it
/// did. Demo data without scores is still demo data: a failure is logged, never fatal.
fn demo_scores(spec: &datagen::DatasetSpec, records: &mut Vec<Record>) -> String {
    if spec.users > DEMO_SCORES_MAX_USERS {
        return format!("no send scores above {DEMO_SCORES_MAX_USERS} users");
    }
    let synth = sendtime_targeting::synth::SynthSpec::new(spec.users, spec.seed, spec.as_of);
    match sendtime_targeting::generated_scores(&synth) {
        Ok(scores) => {
            let n = scores.len();
            records.extend(scores.into_iter().map(Record::Score));
            format!("{n} send scores")
        }
        Err(e) => {
            tracing::warn!(error = %e, "demo send scores not computed");
            "no send scores".to_owned()
        }
    }
}

/// `min_score` of the demo line that shows a low-engagement user dropped.
const DEMO_MIN_SCORE: f64 = 0.1;

/// A curl line per block, picking users whose block is eligible so the demo shows content;
/// then a rendered block and (when served) the preview page.
async fn example_urls(
    service: &BlockService,
    addr: SocketAddr,
    users: &[UserId],
    preview: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for kind in BlockKind::ALL {
        for user in users {
            let answer = service.answer(kind, user, 4).await;
            {
                if answer.summary.eligible {
                    let stage = answer
                        .summary
                        .stage
                        .map(|s| serde_json::to_value(s).unwrap_or_default())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    lines.push(format!(
                        "curl http://{addr}/v1/users/{user}/{kind}    # stage: {stage}"
                    ));
                    break;
                }
            }
        }
    }
    for user in users {
        let answer = service.answer(BlockKind::Recommendations, user, 4).await;
        let score = answer.value()["send_score"].as_f64();
        if let Some(score) = score.filter(|s| *s < DEMO_MIN_SCORE) {
            lines.push(format!(
                "curl \"http://{addr}/v1/users/{user}/recommendations?min_score={DEMO_MIN_SCORE}\"    # send_score {score}: not eligible, low_engagement"
            ));
            break;
        }
    }
    if let Some(user) = users.first() {
        lines.push(format!(
            "curl http://{addr}/v1/users/unknown-user/recommendations    # unknown user: popular fallback"
        ));
        lines.push(format!(
            "curl \"http://{addr}/v1/users/{user}/recommendations?format=html\"    # the email HTML fragment (channel=push|sms|kakao, locale=en)"
        ));
        if preview {
            lines.push(format!(
                "open http://{addr}/preview?user_id={user}    # every block as each channel would send it"
            ));
        }
    }
    lines
}

/// Ctrl-C or SIGTERM: what stops `serve` and `baseline` gracefully.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

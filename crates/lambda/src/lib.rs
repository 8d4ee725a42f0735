//! What every sendtime Lambda function does in its init phase, once: read a typed config
//! from the environment, build the DynamoDB client and the cache, open the connection, and
//! then serve the shared router through `lambda_http` for every invocation.

pub mod config;

pub use config::{ConfigError, LambdaConfig};

use sendtime_api::{router, BlockService};
use sendtime_domain::{BlockKind, PopularScope, RulesConfig, SystemClock};
use sendtime_store::{CachedStore, PopularGet};
use std::sync::Arc;
use std::time::Instant;

/// Builds the app for `block`'s function from `config`: the same router `sendtime serve`
/// uses, over DynamoDB through the cache. Opens the DynamoDB connection before returning.
pub async fn build_app(config: &LambdaConfig, block: BlockKind) -> axum_router::Router {
    let started = Instant::now();
    let dynamo = Arc::new(sendtime_dynamo::connect(&config.dynamo).await);
    let cached = Arc::new(CachedStore::new(dynamo.clone(), &config.cache));
    // Warm-up: one GetItem opens the TLS connection during init (the first call after a cold
    // start would otherwise pay ~900 ms of set-up) and fills the global popular list, which
    // every block's fallback needs. Failure is not fatal: requests degrade instead.
    let warm = cached.popular(&PopularScope::Global).await;
    tracing::info!(
        block = block.as_str(),
        table = %config.dynamo.table,
        warm_up_ok = warm.is_ok(),
        init_ms = started.elapsed().as_millis() as u64,
        "init complete"
    );
    let service = BlockService::new(cached, RulesConfig::default(), Arc::new(SystemClock))
        .with_deadline(config.request_budget);
    router(Arc::new(service))
}

/// The whole `main` of a function.
pub async fn run(block: BlockKind) -> Result<(), lambda_http::Error> {
    init_logging();
    let config = LambdaConfig::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    let app = build_app(&config, block).await;
    lambda_http::run(app).await
}

/// JSON logs, one object per line, to stdout where Lambda ships them to CloudWatch.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENDTIME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter)
        .try_init();
}

/// Re-export so function crates need no axum dependency of their own.
pub mod axum_router {
    pub use sendtime_api::Router;
}

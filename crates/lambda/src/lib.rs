//! What every sendtime Lambda function does in its init phase, once: read a typed config
//! from the environment, build the DynamoDB client and the cache, open the connection, and
//! then serve the shared router through `lambda_http` for every invocation.

/// [`LambdaConfig`]: the typed configuration read from the environment, and the variable names.
pub mod config;

pub use config::{ConfigError, LambdaConfig};

use lambda_http::request::RequestContext;
use lambda_http::tower::util::MapRequest;
use lambda_http::tower::ServiceBuilder;
use lambda_http::RequestExt;
use sendtime_api::{router_with, App, BlockService, RequestId, RouterOptions, TelemetryOptions};
use sendtime_domain::{PopularScope, SystemClock};
use sendtime_store::{CachedStore, PopularGet};
use std::sync::Arc;
use std::time::Instant;

/// Builds a function's app from `config`: the same router `sendtime serve` uses, over
/// DynamoDB through the cache, limited to the function's block. Opens the DynamoDB
/// connection before returning.
pub async fn build_app(config: &LambdaConfig) -> App {
    let started = Instant::now();
    let dynamo = Arc::new(sendtime_dynamo::connect(&config.dynamo).await);
    let cached = Arc::new(CachedStore::new(dynamo.clone(), &config.cache));
    // Housekeeping off the request path (it runs while the environment is not frozen).
    cached.maintain_every(std::time::Duration::from_secs(1));
    // Warm-up: one GetItem opens the TLS connection during init (the first call after a cold
    // start would otherwise pay ~900 ms of set-up) and fills the global popular list, which
    // every block's fallback needs. Failure is not fatal: requests degrade instead.
    let warm = cached.popular(&PopularScope::Global).await;
    tracing::info!(
        block = config.block.map(|b| b.as_str()).unwrap_or("all"),
        table = %config.dynamo.table,
        warm_up_ok = warm.is_ok(),
        init_ms = started.elapsed().as_millis() as u64,
        "init complete"
    );
    let service = BlockService::new(cached, config.rules.clone(), Arc::new(SystemClock))
        .with_answer_cache(&config.cache)
        .with_deadline(config.request_budget)
        .with_max_in_flight(config.max_in_flight);
    app(Arc::new(service), config)
}

/// The router as a function serves it: EMF metrics on, the caller key checked.
pub fn app(service: Arc<BlockService>, config: &LambdaConfig) -> App {
    router_with(
        service,
        RouterOptions {
            telemetry: TelemetryOptions { emf: true },
            api_key_sha256: config.api_key_sha256,
            only_block: config.block,
            strict: config.strict,
        },
    )
}

/// The service `lambda_http::run` drives: the router behind [`prepare`].
pub type Handler = MapRequest<App, fn(lambda_http::Request) -> lambda_http::Request>;

/// Wraps the router for `lambda_http`.
pub fn handler(app: App) -> Handler {
    ServiceBuilder::new()
        .map_request(prepare as fn(lambda_http::Request) -> lambda_http::Request)
        .service(app)
}

/// Adapts an API Gateway request to the shared router: copies the Lambda request id where
/// the router's telemetry finds it, and drops a named stage's `/{stage}` path prefix
/// (lambda_http keeps it, the router's routes do not have it).
pub fn prepare(mut request: lambda_http::Request) -> lambda_http::Request {
    if let Some(id) = request.lambda_context_ref().map(|c| c.request_id.clone()) {
        request.extensions_mut().insert(RequestId(id));
    }
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    if let Some(stage) = stage.filter(|s| s != "$default" && !s.is_empty()) {
        let prefix = format!("/{stage}");
        let uri = request.uri();
        if let Some(rest) = uri
            .path()
            .strip_prefix(&prefix)
            .filter(|r| r.starts_with('/'))
        {
            let mut stripped = rest.to_owned();
            if let Some(q) = uri.query() {
                stripped.push('?');
                stripped.push_str(q);
            }
            if let Ok(new_uri) = stripped.parse() {
                *request.uri_mut() = new_uri;
            }
        }
    }
    request
}

/// The whole `main` of the functions' one binary.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let config = LambdaConfig::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    let app = build_app(&config).await;
    lambda_http::run(handler(app)).await
}

/// JSON logs, one object per line, to stdout where Lambda ships them to CloudWatch.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENDTIME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .event_format(sendtime_api::log_format::JsonLines { timestamp: false })
        .with_env_filter(filter)
        .try_init();
}

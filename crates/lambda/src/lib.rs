//! What every sendtime Lambda function does in its init phase, once: read a typed config
//! from the environment, build the DynamoDB client and the cache, open the connection, and
//! then serve the shared router through `lambda_http` for every invocation. The same binary
//! runs the ingest function (`SENDTIME_ROLE=ingest`, [`ingest`]).

/// [`LambdaConfig`]: the typed configuration read from the environment, and the variable names.
pub mod config;
/// The ingest function: `POST /v1/events` behind either front door, and SQS batches.
pub mod ingest;
/// SQS batches of events, and the partial batch response.
pub mod sqs;

pub use config::{ConfigError, LambdaConfig, Role};

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
    router_with(service, router_options(config))
}

/// A function's router options: EMF metrics on, the keys, its block, no preview, no write
/// path (the ingest function adds it).
pub fn router_options(config: &LambdaConfig) -> RouterOptions {
    RouterOptions {
        telemetry: TelemetryOptions { emf: true },
        credentials: config.credentials.clone(),
        only_block: config.block,
        strict: config.strict,
        default_locale: config.default_locale,
        preview: false,
        ingest: None,
    }
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

/// The whole `main` of the functions' one binary: a block function, or the ingest function
/// with `SENDTIME_ROLE=ingest`.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let mut config = LambdaConfig::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    load_auth_parameter(&mut config).await.map_err(|e| {
        // Fail closed: a function that cannot read its credentials does not serve.
        tracing::error!(error = %e, "credentials unavailable");
        e
    })?;
    match config.role {
        Role::Blocks => lambda_http::run(handler(build_app(&config).await)).await,
        Role::Ingest => ingest::run(&config).await,
    }
}

/// Adds the credentials of the SSM SecureString parameter named by
/// `SENDTIME_AUTH_PARAMETER` (read decrypted, once, at init) to `config`; nothing to do
/// without one. The parameter's value is never logged.
pub async fn load_auth_parameter(config: &mut LambdaConfig) -> Result<(), ConfigError> {
    if config.auth_parameter.is_none() {
        return Ok(());
    }
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    load_auth_parameter_with(&aws_sdk_ssm::Client::new(&shared), config).await
}

/// [`load_auth_parameter`] through this SSM client.
pub async fn load_auth_parameter_with(
    ssm: &aws_sdk_ssm::Client,
    config: &mut LambdaConfig,
) -> Result<(), ConfigError> {
    let Some(name) = config.auth_parameter.clone() else {
        return Ok(());
    };
    let invalid = |expected: String| ConfigError::Invalid {
        name: config::AUTH_PARAMETER,
        expected,
        value: name.clone(),
    };
    let answer = ssm
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            invalid(format!(
                "a readable SSM parameter (GetParameter failed: {})",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            ))
        })?;
    let text = answer
        .parameter()
        .and_then(|p| p.value())
        .unwrap_or_default();
    config
        .credentials
        .add_from_text(text)
        .map_err(|e| invalid(format!("credentials, one per line ({e})")))?;
    tracing::info!(parameter = %name, "credentials read from SSM");
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::Parameter;
    use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};

    fn ssm_answering(value: &'static str) -> (aws_sdk_ssm::Client, aws_smithy_mocks::Rule) {
        let rule = mock!(aws_sdk_ssm::Client::get_parameter)
            .match_requests(|r| {
                r.name() == Some("/sendtime/test/auth") && r.with_decryption() == Some(true)
            })
            .then_output(move || {
                GetParameterOutput::builder()
                    .parameter(Parameter::builder().value(value).build())
                    .build()
            });
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "t", "t", None, None, "t",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                MockResponseInterceptor::new()
                    .rule_mode(RuleMode::MatchAny)
                    .with_rule(&rule),
            )
            .build();
        (aws_sdk_ssm::Client::from_conf(config), rule)
    }

    fn config() -> LambdaConfig {
        LambdaConfig::from_lookup(|k| match k {
            "SENDTIME_TABLE" => Some("t".into()),
            "SENDTIME_AUTH_PARAMETER" => Some("/sendtime/test/auth".into()),
            _ => None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn credentials_are_read_decrypted_from_the_ssm_parameter() {
        let hex: String = sendtime_api::auth::sha256("k1")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let write_hex: String = sendtime_api::auth::sha256("w1")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let value: &'static str = Box::leak(
            format!("key_sha256={hex}\nsigning_secret=s1\nwrite_key_sha256={write_hex}\n")
                .into_boxed_str(),
        );
        let (ssm, rule) = ssm_answering(value);
        let mut config = config();
        assert!(!config.credentials.is_enabled());
        load_auth_parameter_with(&ssm, &mut config).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(
            format!("{:?}", config.credentials),
            "Credentials { keys: 1, signing_secrets: 1, write_keys: 1 }"
        );
    }

    #[tokio::test]
    async fn a_malformed_parameter_stops_init_without_echoing_it() {
        let (ssm, _rule) = ssm_answering("password=hunter2");
        let mut config = config();
        let err = load_auth_parameter_with(&ssm, &mut config)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SENDTIME_AUTH_PARAMETER") && !err.contains("hunter2"),
            "{err}"
        );
    }
}

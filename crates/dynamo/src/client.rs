//! Building the SDK client once, at start-up, with explicit timeouts and retries: the SDK's
//! defaults have no operation timeout, and Braze stops waiting after 2 s.

use crate::DynamoStore;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
use std::time::Duration;

/// How to reach the table: name, endpoint, region, timeouts and retries; see [`connect`].
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoConfig {
    /// The table's name.
    pub table: String,
    /// Overrides the endpoint (DynamoDB Local). With an endpoint and no `AWS_ACCESS_KEY_ID`
    /// in the environment, fake static credentials are used: DynamoDB Local accepts any.
    pub endpoint: Option<String>,
    /// Region; defaults to the SDK's chain, or `us-east-1` with a local endpoint.
    pub region: Option<String>,
    /// Whole-operation budget including SDK retries.
    pub operation_timeout: Duration,
    /// Budget of one attempt.
    pub attempt_timeout: Duration,
    /// Budget of opening one connection.
    pub connect_timeout: Duration,
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// The first retry's backoff ceiling (full jitter, doubling per attempt): the SDK's 1 s
    /// default would spend a serving request's whole budget on one throttled read.
    pub initial_backoff: Duration,
    /// How long a pooled connection may sit idle before it is closed, not reused: a Lambda
    /// environment frozen between invocations leaves connections the far end has dropped,
    /// and a request sent on one hangs until the attempt timeout (aws-sdk-rust #1417, #440).
    pub pool_idle_timeout: Duration,
}

impl DynamoConfig {
    /// Serving defaults: 1 s per operation, 300 ms per attempt, 250 ms to connect, 3 attempts.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            endpoint: None,
            region: None,
            operation_timeout: Duration::from_millis(1_000),
            attempt_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(250),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            pool_idle_timeout: Duration::from_secs(20),
        }
    }

    /// The SDK timeouts of this configuration.
    pub fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .connect_timeout(self.connect_timeout)
            .build()
    }

    /// The SDK retry policy of this configuration: standard (throttling errors retried with
    /// backoff), `max_attempts`, `initial_backoff`.
    pub fn retries(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
    }
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxy settings from the
/// environment) with idle pooled connections closed after `idle`.
fn http_client(idle: Duration) -> SharedHttpClient {
    Builder::new()
        .pool_idle_timeout(idle)
        .build_with_connector_fn(move |settings, components| {
            let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        })
}

/// Builds the client and the store. Does no I/O of its own; call
/// [`DynamoStore::warm_up`] to open the connection before the first request.
pub async fn connect(config: &DynamoConfig) -> DynamoStore {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client(config.pool_idle_timeout))
        .timeout_config(config.timeouts())
        .retry_config(config.retries());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
        if config.region.is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "sendtime-local",
            ));
        }
    }
    let shared = loader.load().await;
    let client = aws_sdk_dynamodb::Client::new(&shared);
    DynamoStore::new(client, config.table.clone(), config.operation_timeout)
}

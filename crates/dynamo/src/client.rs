//! Building the SDK client once, at start-up, with explicit timeouts and retries: the SDK's
//! defaults have no operation timeout, and Braze stops waiting after 2 s.

use crate::DynamoStore;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
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
        }
    }
}

/// Builds the client and the store. Does no I/O of its own; call
/// [`DynamoStore::warm_up`] to open the connection before the first request.
pub async fn connect(config: &DynamoConfig) -> DynamoStore {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(config.operation_timeout)
        .operation_attempt_timeout(config.attempt_timeout)
        .connect_timeout(config.connect_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)));
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

//! The functions' configuration, read once from the environment. Variable names are the ones
//! `template.yaml` sets; an error names the variable that fixes it.

use sendtime_dynamo::DynamoConfig;
use sendtime_store::CacheConfig;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct LambdaConfig {
    pub dynamo: DynamoConfig,
    pub cache: CacheConfig,
    /// Longest a request may take end to end before it is answered with a 503.
    pub request_budget: Duration,
    /// SHA-256 of the caller key (`x-sendtime-key`); `None` turns the check off.
    pub api_key_sha256: Option<[u8; 32]>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} is not set (template.yaml sets it for every function)")]
    Missing(&'static str),
    #[error("{name} must be {expected}, got '{value}'")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

pub const TABLE: &str = "SENDTIME_TABLE";
pub const DYNAMODB_ENDPOINT: &str = "SENDTIME_DYNAMODB_ENDPOINT";
pub const REQUEST_BUDGET_MS: &str = "SENDTIME_REQUEST_BUDGET_MS";
pub const DYNAMODB_TIMEOUT_MS: &str = "SENDTIME_DYNAMODB_TIMEOUT_MS";
pub const DYNAMODB_ATTEMPT_TIMEOUT_MS: &str = "SENDTIME_DYNAMODB_ATTEMPT_TIMEOUT_MS";
pub const DYNAMODB_MAX_ATTEMPTS: &str = "SENDTIME_DYNAMODB_MAX_ATTEMPTS";
pub const CACHE_USER_TTL_SECS: &str = "SENDTIME_CACHE_USER_TTL_SECS";
pub const CACHE_ITEM_TTL_SECS: &str = "SENDTIME_CACHE_ITEM_TTL_SECS";
pub const CACHE_POPULAR_TTL_SECS: &str = "SENDTIME_CACHE_POPULAR_TTL_SECS";
pub const API_KEY_SHA256: &str = "SENDTIME_API_KEY_SHA256";

impl LambdaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = lookup(TABLE)
            .filter(|t| !t.trim().is_empty())
            .ok_or(ConfigError::Missing(TABLE))?;
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    expected: "a whole number",
                    value: v,
                }),
            }
        };
        let budget = number(REQUEST_BUDGET_MS, 1_000)?;
        let operation = number(DYNAMODB_TIMEOUT_MS, 600)?;
        let attempt = number(DYNAMODB_ATTEMPT_TIMEOUT_MS, 250)?;
        if operation == 0 || attempt == 0 || budget == 0 {
            return Err(ConfigError::Invalid {
                name: REQUEST_BUDGET_MS,
                expected: "above zero (as are the DynamoDB timeouts)",
                value: budget.to_string(),
            });
        }
        let mut dynamo = DynamoConfig::new(table);
        dynamo.endpoint = lookup(DYNAMODB_ENDPOINT).filter(|e| !e.is_empty());
        dynamo.operation_timeout = Duration::from_millis(operation);
        dynamo.attempt_timeout = Duration::from_millis(attempt);
        dynamo.connect_timeout = Duration::from_millis(attempt.min(200));
        dynamo.max_attempts = number(DYNAMODB_MAX_ATTEMPTS, 3)? as u32;
        let defaults = CacheConfig::default();
        let cache = CacheConfig {
            user_ttl: Duration::from_secs(number(
                CACHE_USER_TTL_SECS,
                defaults.user_ttl.as_secs(),
            )?),
            item_ttl: Duration::from_secs(number(
                CACHE_ITEM_TTL_SECS,
                defaults.item_ttl.as_secs(),
            )?),
            popular_ttl: Duration::from_secs(number(
                CACHE_POPULAR_TTL_SECS,
                defaults.popular_ttl.as_secs(),
            )?),
            ..defaults
        };
        let api_key_sha256 = match lookup(API_KEY_SHA256).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(hex) => Some(sendtime_api::auth::parse_sha256_hex(&hex).ok_or(
                ConfigError::Invalid {
                    name: API_KEY_SHA256,
                    expected: "64 hex digits (sha256sum of the key)",
                    value: "<hidden>".to_owned(),
                },
            )?),
        };
        Ok(Self {
            dynamo,
            cache,
            request_budget: Duration::from_millis(budget),
            api_key_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<LambdaConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LambdaConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn table_is_required_and_named_in_the_error() {
        assert_eq!(from(&[]), Err(ConfigError::Missing("SENDTIME_TABLE")));
        assert!(from(&[])
            .unwrap_err()
            .to_string()
            .contains("SENDTIME_TABLE"));
    }

    #[test]
    fn defaults_keep_requests_well_under_brazes_two_seconds() {
        let c = from(&[("SENDTIME_TABLE", "t")]).unwrap();
        assert_eq!(c.dynamo.table, "t");
        assert_eq!(c.request_budget, Duration::from_millis(1_000));
        assert!(c.dynamo.operation_timeout < c.request_budget);
        assert_eq!(c.dynamo.endpoint, None);
    }

    #[test]
    fn values_are_read_and_bad_numbers_name_their_variable() {
        let c = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_REQUEST_BUDGET_MS", "500"),
            ("SENDTIME_CACHE_USER_TTL_SECS", "0"),
            ("SENDTIME_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
        ])
        .unwrap();
        assert_eq!(c.request_budget, Duration::from_millis(500));
        assert_eq!(c.cache.user_ttl, Duration::ZERO);
        assert_eq!(c.dynamo.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        let err = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_CACHE_ITEM_TTL_SECS", "ten"),
        ]);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("SENDTIME_CACHE_ITEM_TTL_SECS"));
    }
}

//! The functions' configuration, read once from the environment. Variable names are the ones
//! `template.yaml` sets; an error names the variable that fixes it.

use sendtime_api::auth::Credentials;
use sendtime_api::rules_file::RulesFileError;
use sendtime_domain::{BlockKind, RulesConfig};
use sendtime_dynamo::DynamoConfig;
use sendtime_store::CacheConfig;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a function does with its invocations (`SENDTIME_ROLE`): the one binary serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Answers block requests (read-only): every block function.
    #[default]
    Blocks,
    /// Writes events: `POST /v1/events` through either front door, and SQS batches.
    Ingest,
}

impl Role {
    /// The value `SENDTIME_ROLE` takes for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocks => "blocks",
            Self::Ingest => "ingest",
        }
    }
}

/// Everything a function reads from its environment at init.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaConfig {
    /// Serve blocks or ingest events (`SENDTIME_ROLE`, `blocks` by default).
    pub role: Role,
    /// The block this function serves (`SENDTIME_BLOCK`); `None` serves every block.
    pub block: Option<BlockKind>,
    /// Thresholds and content (`SENDTIME_RULES_FILE`, else the defaults).
    pub rules: RulesConfig,
    /// The table and the SDK's timeouts.
    pub dynamo: DynamoConfig,
    /// Cache TTLs.
    pub cache: CacheConfig,
    /// Longest a request may take end to end, store calls included, before it is answered
    /// from held data or the fallback (`degraded`).
    pub request_budget: Duration,
    /// Requests assembling from the store at once, beyond which requests are shed to the
    /// fallback.
    pub max_in_flight: usize,
    /// Answer `503` instead of a degraded answer unless a request says `strict=0`.
    pub strict: bool,
    /// Language of rendered formats when neither `locale=` nor the profile says
    /// (`SENDTIME_DEFAULT_LOCALE`, `ko` by default).
    pub default_locale: sendtime_render::Locale,
    /// Caller key digests and URL signing secrets (`SENDTIME_API_KEY_SHA256`,
    /// `SENDTIME_SIGNING_SECRETS`; none turns the read check off) and write key digests
    /// (`SENDTIME_WRITE_KEY_SHA256`; none keeps the write path shut). Those in the SSM parameter
    /// named by `SENDTIME_AUTH_PARAMETER` are added at init ([`crate::build_app`]).
    pub credentials: Credentials,
    /// The SSM SecureString parameter holding more credentials, if any.
    pub auth_parameter: Option<String>,
}

/// A configuration a function cannot start with; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset.
    #[error("{0} is not set (template.yaml sets it for every function)")]
    Missing(&'static str),
    /// A variable's value is unusable.
    #[error("{name} must be {expected}, got '{value}'")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it must be.
        expected: String,
        /// What it was (hidden for secrets).
        value: String,
    },
    /// The rules file is unreadable or invalid; the message names the file and the key.
    #[error("{RULES_FILE}: {0}")]
    Rules(Arc<RulesFileError>),
}

impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Missing(a), Self::Missing(b)) => a == b,
            (
                Self::Invalid {
                    name,
                    expected,
                    value,
                },
                Self::Invalid {
                    name: n,
                    expected: e,
                    value: v,
                },
            ) => name == n && expected == e && value == v,
            (Self::Rules(a), Self::Rules(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

/// What the function does: `blocks` (the default) or `ingest`.
pub const ROLE: &str = "SENDTIME_ROLE";
/// The block a function serves.
pub const BLOCK: &str = "SENDTIME_BLOCK";
/// Path of the rules file (TOML or JSON).
pub const RULES_FILE: &str = sendtime_api::rules_file::RULES_FILE_VAR;
/// The DynamoDB table.
pub const TABLE: &str = "SENDTIME_TABLE";
/// DynamoDB endpoint override (DynamoDB Local); unset or empty: AWS's endpoint.
pub const DYNAMODB_ENDPOINT: &str = "SENDTIME_DYNAMODB_ENDPOINT";
/// End-to-end budget of a request in ms, past which it is answered degraded; default 1000,
/// above 0.
pub const REQUEST_BUDGET_MS: &str = "SENDTIME_REQUEST_BUDGET_MS";
/// Requests assembling from the store at once before shedding to the fallback; default 256.
pub const MAX_IN_FLIGHT: &str = "SENDTIME_MAX_IN_FLIGHT";
/// `1` or `true`: answer `503` + `Retry-After` instead of a degraded answer (default off).
pub const STRICT: &str = "SENDTIME_STRICT";
/// Seconds a negative record (no profile, no list, no such item) stays cached; default 5.
pub const CACHE_NEGATIVE_TTL_SECS: &str = "SENDTIME_CACHE_NEGATIVE_TTL_SECS";
/// Seconds the copy records are cached.
pub const CACHE_COPY_TTL_SECS: &str = "SENDTIME_CACHE_COPY_TTL_SECS";
/// Language of rendered formats when neither the request nor the profile says.
pub const DEFAULT_LOCALE: &str = "SENDTIME_DEFAULT_LOCALE";
/// Budget of one DynamoDB operation, SDK retries included, in ms; default 600, above 0.
pub const DYNAMODB_TIMEOUT_MS: &str = "SENDTIME_DYNAMODB_TIMEOUT_MS";
/// Budget of one DynamoDB attempt in ms (connect: at most 200); default 250, above 0.
pub const DYNAMODB_ATTEMPT_TIMEOUT_MS: &str = "SENDTIME_DYNAMODB_ATTEMPT_TIMEOUT_MS";
/// Attempts per DynamoDB operation, the first included; default 3.
pub const DYNAMODB_MAX_ATTEMPTS: &str = "SENDTIME_DYNAMODB_MAX_ATTEMPTS";
/// Seconds a user's profile, list and cart stay cached; default 30, 0 disables.
pub const CACHE_USER_TTL_SECS: &str = "SENDTIME_CACHE_USER_TTL_SECS";
/// Seconds a catalog item stays cached; default 600, 0 disables.
pub const CACHE_ITEM_TTL_SECS: &str = "SENDTIME_CACHE_ITEM_TTL_SECS";
/// Seconds a popular list stays cached; default 300, 0 disables.
pub const CACHE_POPULAR_TTL_SECS: &str = "SENDTIME_CACHE_POPULAR_TTL_SECS";
/// Seconds a serialised answer is kept for repeat calls (0 disables).
pub const CACHE_ANSWER_TTL_SECS: &str = "SENDTIME_CACHE_ANSWER_TTL_SECS";
/// Hex SHA-256 digests (64 digits each, comma-separated: several keys during a rotation) of
/// the caller keys; unset or empty: no key accepted by this variable.
pub const API_KEY_SHA256: &str = "SENDTIME_API_KEY_SHA256";
/// Hex SHA-256 digests of the write keys (comma-separated), the only keys `POST /v1/events`
/// accepts; unset or empty: none from this variable (the SSM parameter may add some).
/// (The same variable as `sendtime serve`'s `--write-key-sha256`: named once, in the API.)
pub const WRITE_KEY_SHA256: &str = sendtime_api::ingest::WRITE_KEY_SHA256_VAR;
/// Secrets signed URLs are checked against (comma-separated, several during a rotation).
pub const SIGNING_SECRETS: &str = "SENDTIME_SIGNING_SECRETS";
/// Name of an SSM SecureString parameter holding credentials, one per line:
/// `key_sha256=<64 hex digits>`, `write_key_sha256=<64 hex digits>` or
/// `signing_secret=<secret>`; read (decrypted) at init.
pub const AUTH_PARAMETER: &str = "SENDTIME_AUTH_PARAMETER";

impl LambdaConfig {
    /// Reads the process environment.
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
                    expected: "a whole number".into(),
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
                expected: "above zero (as are the DynamoDB timeouts)".into(),
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
            answer_ttl: Duration::from_secs(number(
                CACHE_ANSWER_TTL_SECS,
                defaults.answer_ttl.as_secs(),
            )?),
            negative_ttl: Duration::from_secs(number(
                CACHE_NEGATIVE_TTL_SECS,
                defaults.negative_ttl.as_secs(),
            )?),
            copy_ttl: Duration::from_secs(number(
                CACHE_COPY_TTL_SECS,
                defaults.copy_ttl.as_secs(),
            )?),
            ..defaults
        };
        let max_in_flight = number(MAX_IN_FLIGHT, 256)?.max(1) as usize;
        let strict = match lookup(STRICT).as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: STRICT,
                    expected: "1, true, 0 or false".into(),
                    value: other.to_owned(),
                })
            }
        };
        let default_locale = match lookup(DEFAULT_LOCALE).as_deref().map(str::trim) {
            None | Some("") => sendtime_render::Locale::Ko,
            Some(tag) => sendtime_render::Locale::ALL
                .into_iter()
                .find(|l| l.as_str() == tag)
                .ok_or_else(|| ConfigError::Invalid {
                    name: DEFAULT_LOCALE,
                    expected: "ko or en".into(),
                    value: tag.to_owned(),
                })?,
        };
        let key_hashes = match lookup(API_KEY_SHA256).filter(|v| !v.trim().is_empty()) {
            None => Vec::new(),
            Some(list) => {
                sendtime_api::auth::parse_sha256_list(&list).ok_or(ConfigError::Invalid {
                    name: API_KEY_SHA256,
                    expected: "64 hex digits (sha256sum of the key), comma-separated".into(),
                    value: "<hidden>".to_owned(),
                })?
            }
        };
        let signing_secrets = lookup(SIGNING_SECRETS)
            .map(|list| {
                list.split(',')
                    .map(|s| s.trim().as_bytes().to_vec())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let write_key_hashes = match lookup(WRITE_KEY_SHA256).filter(|v| !v.trim().is_empty()) {
            None => Vec::new(),
            Some(list) => {
                sendtime_api::auth::parse_sha256_list(&list).ok_or(ConfigError::Invalid {
                    name: WRITE_KEY_SHA256,
                    expected: "64 hex digits (sha256sum of the write key), comma-separated".into(),
                    value: "<hidden>".to_owned(),
                })?
            }
        };
        let credentials =
            Credentials::new(key_hashes, signing_secrets).with_write_keys(write_key_hashes);
        let role = match lookup(ROLE).as_deref().map(str::trim) {
            None | Some("" | "blocks") => Role::Blocks,
            Some("ingest") => Role::Ingest,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: ROLE,
                    expected: "blocks or ingest".into(),
                    value: other.to_owned(),
                })
            }
        };
        let auth_parameter = lookup(AUTH_PARAMETER).filter(|p| !p.trim().is_empty());
        let block = match lookup(BLOCK).filter(|b| !b.trim().is_empty()) {
            None => None,
            Some(name) => {
                Some(
                    name.trim()
                        .parse::<BlockKind>()
                        .map_err(|_| ConfigError::Invalid {
                            name: BLOCK,
                            expected: format!("one of {}", BlockKind::names()),
                            value: name.clone(),
                        })?,
                )
            }
        };
        let rules_file = lookup(RULES_FILE).filter(|p| !p.trim().is_empty());
        let rules = sendtime_api::rules_file::load_or_default(rules_file.as_deref().map(Path::new))
            .map_err(|e| ConfigError::Rules(Arc::new(e)))?;
        Ok(Self {
            role,
            block,
            rules,
            dynamo,
            cache,
            request_budget: Duration::from_millis(budget),
            max_in_flight,
            strict,
            default_locale,
            credentials,
            auth_parameter,
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
    fn the_block_is_read_and_a_wrong_one_names_the_variable_and_the_choices() {
        let c = from(&[("SENDTIME_TABLE", "t"), ("SENDTIME_BLOCK", "onboarding")]).unwrap();
        assert_eq!(c.block, Some(BlockKind::Onboarding));
        assert_eq!(from(&[("SENDTIME_TABLE", "t")]).unwrap().block, None);
        let err = from(&[("SENDTIME_TABLE", "t"), ("SENDTIME_BLOCK", "carts")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SENDTIME_BLOCK") && err.contains("recommendations, cart"),
            "{err}"
        );
    }

    #[test]
    fn a_rules_file_moves_a_boundary_and_a_bad_key_names_itself() {
        let dir =
            std::env::temp_dir().join(format!("sendtime-lambda-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("rules.toml");
        std::fs::write(&good, "[cart]\nsocial_proof_from_days = 2\n").unwrap();
        let c = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_RULES_FILE", good.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(c.rules.cart.social_proof_from_days, 2);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"cart": {"social_proof_days": 2}}"#).unwrap();
        let err = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_RULES_FILE", bad.to_str().unwrap()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SENDTIME_RULES_FILE") && err.contains("social_proof_days"),
            "{err}"
        );
        let missing = dir.join("missing.toml");
        let err = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_RULES_FILE", missing.to_str().unwrap()),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Rules(_)), "{err}");
        std::fs::remove_dir_all(&dir).ok();
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

    #[test]
    fn the_role_defaults_to_blocks_and_a_wrong_one_names_the_variable() {
        // GIVEN no role, the ingest role, and a misspelt one
        let default = from(&[("SENDTIME_TABLE", "t")]).unwrap();
        let ingest = from(&[("SENDTIME_TABLE", "t"), ("SENDTIME_ROLE", "ingest")]).unwrap();
        let wrong = from(&[("SENDTIME_TABLE", "t"), ("SENDTIME_ROLE", "ingester")]);
        // THEN blocks, ingest, and an error naming SENDTIME_ROLE and the choices
        assert_eq!(default.role, Role::Blocks);
        assert_eq!(ingest.role, Role::Ingest);
        let err = wrong.unwrap_err().to_string();
        assert!(
            err.contains("SENDTIME_ROLE") && err.contains("blocks or ingest"),
            "{err}"
        );
    }

    #[test]
    fn write_keys_come_from_their_own_variable_and_a_bad_one_is_named_not_echoed() {
        // GIVEN a write key digest, and a malformed one
        let hex: String = sendtime_api::auth::sha256("w")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let with = from(&[("SENDTIME_TABLE", "t"), ("SENDTIME_WRITE_KEY_SHA256", &hex)]).unwrap();
        let without = from(&[("SENDTIME_TABLE", "t")]).unwrap();
        let bad = from(&[
            ("SENDTIME_TABLE", "t"),
            ("SENDTIME_WRITE_KEY_SHA256", "secret-not-hex"),
        ]);
        // THEN the write path has a key only with the variable set
        assert!(with.credentials.has_write_keys());
        assert!(!with.credentials.is_enabled(), "a write key is no read key");
        assert!(!without.credentials.has_write_keys());
        let err = bad.unwrap_err().to_string();
        assert!(
            err.contains("SENDTIME_WRITE_KEY_SHA256") && !err.contains("secret-not-hex"),
            "{err}"
        );
    }
}

//! The store layer's one error type. It is `Clone` because the cache shares one load's
//! outcome with every caller that waited on it.

use std::sync::Arc;
use std::time::Duration;

type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Every way a store call can fail; [`StoreError::is_retryable`] says which may be retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or answered with a server error. Retryable.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Source,
    },
    /// The backend did not answer within the configured budget. Retryable.
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    /// The backend refused for capacity reasons (DynamoDB throttling). Retryable after a pause.
    #[error("store throttled the request")]
    Throttled,
    /// A stored record could not be mapped to the domain. Not retryable: the data is wrong.
    #[error("record {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
    /// The request itself was refused (missing table, bad key). Not retryable.
    #[error("store rejected the request: {message}")]
    Rejected {
        /// What was refused.
        message: String,
        /// The backend's error.
        #[source]
        source: Source,
    },
}

impl StoreError {
    /// A retryable `Unavailable` error: `message` says what failed, `source` why.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Arc::new(source),
        }
    }

    /// A non-retryable `Rejected` error: `message` says what was refused, `source` why.
    pub fn rejected(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Rejected {
            message: message.into(),
            source: Arc::new(source),
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Timeout(_) | Self::Throttled
        )
    }

    /// A short stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Throttled => "throttled",
            Self::Corrupt { .. } => "corrupt",
            Self::Rejected { .. } => "rejected",
        }
    }
}

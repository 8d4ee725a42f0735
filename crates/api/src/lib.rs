//! The HTTP face of sendtime: one axum [`router`] for `GET /v1/users/{user_id}/{block}` and
//! `GET /health`, served unchanged by each Lambda function and by `sendtime serve`; and the
//! [`BlockService`] that reads the store and applies the domain rules.

/// Caller authentication: the presented key's SHA-256 against the configured one.
pub mod auth;
/// [`ApiError`]: every request failure mapped to one HTTP status and one stable code.
pub mod error;
/// The one ingest handler: a batch of events validated, applied and answered per event.
pub mod ingest;
/// The JSON log line format of every entry point.
pub mod log_format;
/// The marketer's preview page: every block for one user as each channel would send it.
pub mod preview;
/// The app: `BLOCK_ROUTE` matched by hand, `/health` and the rest through axum, and its options.
pub mod router;
/// Reading and validating the rules file (TOML or JSON) named by `--rules` or the environment.
pub mod rules_file;
/// [`BlockService`]: reads the store and applies a block's rule to assemble the answer.
pub mod service;
/// Per-request log line and optional CloudWatch EMF record; never the path, headers or body.
pub mod telemetry;

pub use error::ApiError;
pub use router::{router, router_with, App, RouterOptions, BLOCK_ROUTE};
pub use service::{Answer, AnswerCacheUse, AnswerOptions, BlockService};
pub use telemetry::{RequestId, TelemetryOptions};

//! The HTTP face of sendtime: one axum [`router`] for `GET /v1/users/{user_id}/{block}` and
//! `GET /health`, served unchanged by each Lambda function and by `sendtime serve`; and the
//! [`BlockService`] that reads the store and applies the domain rules.

pub mod auth;
pub mod error;
pub mod router;
pub mod rules_file;
pub mod service;
pub mod telemetry;

pub use error::ApiError;
pub use router::{router, router_with, RouterOptions, BLOCK_ROUTE};
pub use service::{BlockService, ServiceError};
pub use telemetry::{RequestId, TelemetryOptions};

/// The router type, so entry points need no direct axum dependency.
pub use axum::Router;

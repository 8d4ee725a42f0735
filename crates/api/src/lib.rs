//! The HTTP face of sendtime: one axum [`router`] for `GET /v1/users/{user_id}/{block}` and
//! `GET /health`, served unchanged by each Lambda function and by `sendtime serve`; and the
//! [`BlockService`] that reads the store and applies the domain rules.

pub mod error;
pub mod router;
pub mod service;

pub use error::ApiError;
pub use router::router;
pub use service::{BlockService, ServiceError};

/// The router type, so entry points need no direct axum dependency.
pub use axum::Router;

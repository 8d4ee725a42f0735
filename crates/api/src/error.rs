//! The one place where failures become HTTP: a status, a stable machine-readable `code`, and
//! a message safe to show a caller. 5xx are logged with their cause; 4xx are the caller's
//! business and are not logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sendtime_domain::InvalidUserId;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid user id: {0}")]
    InvalidUserId(#[from] InvalidUserId),
    #[error("user id is not valid UTF-8 after percent-decoding")]
    UndecodableUserId,
    #[error("unknown block '{0}'; known blocks: recommendations, cart, dormancy")]
    UnknownBlock(String),
    #[error("limit must be an integer from 1 to {max}")]
    InvalidLimit { max: usize },
    #[error("the query string could not be parsed")]
    InvalidQuery,
    #[error("no such route")]
    NotFound,
    #[error("only GET is supported")]
    MethodNotAllowed,
    #[error("content is temporarily unavailable")]
    StoreUnavailable(#[source] sendtime_store::StoreError),
    #[error("content could not be assembled in time")]
    Deadline,
    #[error("missing or wrong x-sendtime-key header")]
    Unauthorized,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidUserId(_)
            | Self::UndecodableUserId
            | Self::InvalidLimit { .. }
            | Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::UnknownBlock(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::StoreUnavailable(_) | Self::Deadline => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable codes: templates, dashboards and our CLI match on these, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUserId(_) | Self::UndecodableUserId => "invalid_user_id",
            Self::UnknownBlock(_) => "unknown_block",
            Self::InvalidLimit { .. } => "invalid_limit",
            Self::InvalidQuery => "invalid_query",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Deadline => "deadline_exceeded",
        }
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        match e {
            crate::service::ServiceError::Store(s) => Self::StoreUnavailable(s),
            crate::service::ServiceError::Deadline(_) => Self::Deadline,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            let cause = std::error::Error::source(&self).map(|s| s.to_string());
            tracing::error!(
                code = self.code(),
                cause = cause.as_deref(),
                "request failed"
            );
        }
        // The block name and the message never echo the raw user id back: it may be junk.
        let message = match &self {
            Self::UnknownBlock(_) => {
                "unknown block; known blocks: recommendations, cart, dormancy".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

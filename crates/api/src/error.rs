//! The one place where failures become HTTP: a status, a stable machine-readable `code`, and
//! a message safe to show a caller. 5xx are logged with their cause; 4xx are the caller's
//! business and are not logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sendtime_domain::{BlockKind, DegradedReason, InvalidUserId};
use serde::Serialize;

/// Every way a request can fail, each mapped to one status and one stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The user id segment is not a valid id.
    #[error("invalid user id: {0}")]
    InvalidUserId(#[from] InvalidUserId),
    /// The user id segment does not decode to UTF-8.
    #[error("user id is not valid UTF-8 after percent-decoding")]
    UndecodableUserId,
    /// The block segment names no block. The message lists the registry's blocks and never
    /// echoes the raw segment (it may be junk).
    #[error("unknown block; known blocks: {}", BlockKind::names())]
    UnknownBlock,
    /// A function of one block was asked for another.
    #[error("this endpoint serves only the {0} block")]
    OtherBlock(BlockKind),
    /// `limit` is not a whole number within the block's bounds.
    #[error("limit must be an integer from 1 to {max}")]
    InvalidLimit { max: usize },
    /// `min_score` is not a number from 0 to 1.
    #[error("min_score must be a number from 0 to 1")]
    InvalidMinScore,
    /// The query string is malformed.
    #[error("the query string could not be parsed")]
    InvalidQuery,
    /// `format`, `channel` or `locale` names nothing we render.
    #[error("{0}")]
    InvalidFormat(&'static str),
    /// No route matches.
    #[error("no such route")]
    NotFound,
    /// The path and query are longer than [`crate::router::MAX_URI_BYTES`].
    #[error("the URI is longer than {} bytes", crate::router::MAX_URI_BYTES)]
    UriTooLong,
    /// A method other than GET.
    #[error("only GET is supported")]
    MethodNotAllowed,
    /// Strict mode (`strict=1`): fresh content could not be read, and the caller prefers a
    /// retry to the degraded answer it would otherwise get.
    #[error("fresh content is temporarily unavailable ({}); retry later", .0.as_str())]
    Degraded(DegradedReason),
    /// The caller key is missing or wrong.
    #[error("missing or wrong x-sendtime-key header (or a signed URL's sig)")]
    Unauthorized,
    /// A signed URL's `sig` does not match what was requested.
    #[error("the URL signature does not match the user id, block, exp and limit requested")]
    BadSignature,
    /// A signed URL's `exp` has passed.
    #[error("the signed URL has expired")]
    SignatureExpired,
    /// A valid key used outside its scope: a read key on the write path, or a write key on a
    /// read route.
    #[error("{0}")]
    Forbidden(&'static str),
    /// An events batch larger than [`crate::ingest::MAX_BATCH_BYTES`] or with more than
    /// [`crate::ingest::MAX_BATCH_EVENTS`] events.
    #[error("{0}")]
    BatchTooLarge(crate::ingest::BatchError),
    /// An events body that is not a batch of JSON events.
    #[error("{0}")]
    InvalidBody(crate::ingest::BatchError),
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
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidUserId(_)
            | Self::UndecodableUserId
            | Self::InvalidLimit { .. }
            | Self::InvalidMinScore
            | Self::InvalidQuery
            | Self::InvalidFormat(_) => StatusCode::BAD_REQUEST,
            Self::UnknownBlock | Self::OtherBlock(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadSignature | Self::SignatureExpired | Self::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            Self::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::Degraded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable codes: templates, dashboards and our CLI match on these, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUserId(_) | Self::UndecodableUserId => "invalid_user_id",
            Self::UnknownBlock | Self::OtherBlock(_) => "unknown_block",
            Self::InvalidLimit { .. } => "invalid_limit",
            Self::InvalidMinScore => "invalid_min_score",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidFormat(_) => "invalid_format",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong => "uri_too_long",
            Self::Unauthorized => "unauthorized",
            Self::BadSignature => "invalid_signature",
            Self::SignatureExpired => "signature_expired",
            Self::Forbidden(_) => "forbidden",
            Self::BatchTooLarge(_) => "batch_too_large",
            Self::InvalidBody(_) => "invalid_body",
            Self::Degraded(DegradedReason::Deadline) => "deadline_exceeded",
            Self::Degraded(DegradedReason::Overloaded) => "overloaded",
            Self::Degraded(_) => "store_unavailable",
        }
    }
}

/// Every `code` an error answer of the block route can carry (the OpenAPI description lists
/// the same).
pub const ALL_CODES: [&str; 16] = [
    "invalid_user_id",
    "unknown_block",
    "invalid_limit",
    "invalid_min_score",
    "invalid_query",
    "invalid_format",
    "not_found",
    "method_not_allowed",
    "uri_too_long",
    "unauthorized",
    "invalid_signature",
    "signature_expired",
    "forbidden",
    "store_unavailable",
    "deadline_exceeded",
    "overloaded",
];

/// Every `code` an error answer of `POST /v1/events` can carry as a whole (each event's own
/// errors are in its result).
pub const EVENTS_CODES: [&str; 6] = [
    "unauthorized",
    "forbidden",
    "invalid_body",
    "batch_too_large",
    "method_not_allowed",
    "not_found",
];

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "request answered with a server error");
        }
        // Messages never echo the raw user id or block segment back: they may be junk.
        let message = self.to_string();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_one_of_the_listed_codes() {
        let all = [
            ApiError::InvalidUserId(InvalidUserId::Empty),
            ApiError::UndecodableUserId,
            ApiError::UnknownBlock,
            ApiError::OtherBlock(BlockKind::Cart),
            ApiError::InvalidLimit { max: 30 },
            ApiError::InvalidMinScore,
            ApiError::InvalidQuery,
            ApiError::InvalidFormat("x"),
            ApiError::NotFound,
            ApiError::UriTooLong,
            ApiError::MethodNotAllowed,
            ApiError::Unauthorized,
            ApiError::BadSignature,
            ApiError::SignatureExpired,
            ApiError::Forbidden("x"),
            ApiError::Degraded(DegradedReason::Deadline),
            ApiError::Degraded(DegradedReason::Overloaded),
            ApiError::Degraded(DegradedReason::Throttled),
        ];
        let mut seen: Vec<&str> = all.iter().map(ApiError::code).collect();
        seen.sort_unstable();
        seen.dedup();
        let mut listed = ALL_CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(seen, listed);
    }
}

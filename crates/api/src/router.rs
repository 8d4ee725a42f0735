//! Routes. The user id is in the path (Braze caches by URL, so it must be), nothing secret is.

use crate::error::ApiError;
use crate::service::BlockService;
use crate::telemetry::{BlockMeta, TelemetryOptions};
use crate::{auth, telemetry};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use sendtime_domain::{BlockKind, InvalidUserId, UserId};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct BlockQuery {
    limit: Option<String>,
}

/// How an entry point wants the router: telemetry output and caller authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterOptions {
    pub telemetry: TelemetryOptions,
    /// SHA-256 of the key callers must send in `x-sendtime-key`; `None` disables the check.
    pub api_key_sha256: Option<[u8; 32]>,
}

/// The router with default options (no key check, no EMF).
pub fn router(service: Arc<BlockService>) -> Router {
    router_with(service, RouterOptions::default())
}

/// The router every entry point serves. Handlers only parse, delegate and map errors.
pub fn router_with(service: Arc<BlockService>, options: RouterOptions) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/users/{user_id}/{block}", get(get_block))
        .fallback(unmatched)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(service)
        .layer(middleware::from_fn_with_state(
            options.api_key_sha256,
            auth::require_key,
        ))
        .layer(middleware::from_fn_with_state(
            options.telemetry,
            telemetry::observe,
        ))
}

/// Requests no route matched. Under `/v1/users/` that means the user id segment is empty or
/// holds a slash (`//cart`, `a/b/cart`, `../../etc`): a malformed id, not a missing page.
async fn unmatched(uri: Uri) -> ApiError {
    match uri.path().strip_prefix("/v1/users/") {
        Some(rest) if rest.starts_with('/') => ApiError::InvalidUserId(InvalidUserId::Empty),
        Some(rest) if rest.split('/').count() > 2 => {
            ApiError::InvalidUserId(InvalidUserId::BadCharacter)
        }
        _ => ApiError::NotFound,
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn get_block(
    State(service): State<Arc<BlockService>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<BlockQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((raw_user, raw_block)) = path.map_err(|_| ApiError::UndecodableUserId)?;
    let kind: BlockKind = raw_block
        .parse()
        .map_err(|()| ApiError::UnknownBlock(raw_block.clone()))?;
    let user_id = UserId::parse(&raw_user)?;
    let Query(query) = query.map_err(|_| ApiError::InvalidQuery)?;
    let rules = &service.rules().recommendations;
    let limit = match query.limit.as_deref() {
        None => rules.default_limit,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=rules.max_limit).contains(n))
            .ok_or(ApiError::InvalidLimit {
                max: rules.max_limit,
            })?,
    };
    let block = service.block(kind, &user_id, limit).await?;
    let meta = BlockMeta {
        block: kind,
        source: block.source,
        degraded: block.degraded,
        eligible: block.eligible,
    };
    Ok((Extension(meta), Json(block)).into_response())
}

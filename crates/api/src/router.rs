//! Routes. The user id is in the path (Braze caches by URL, so it must be), nothing secret is.

use crate::error::ApiError;
use crate::service::BlockService;
use crate::telemetry::{BlockMeta, TelemetryOptions};
use crate::{auth, telemetry};
use axum::extract::rejection::{QueryRejection, RawPathParamsRejection};
use axum::extract::{Query, RawPathParams, State};
use axum::http::{header, HeaderValue, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sendtime_domain::{BlockKind, InvalidUserId, UserId};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct BlockQuery {
    limit: Option<String>,
}

pub use sendtime_domain::wire::BLOCK_ROUTE;

/// How an entry point wants the router: telemetry output and caller authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterOptions {
    /// Where request logs and metrics go.
    pub telemetry: TelemetryOptions,
    /// SHA-256 of the key callers must send in `x-sendtime-key`; `None` disables the check.
    pub api_key_sha256: Option<[u8; 32]>,
    /// Serve only this block (a Lambda function of one block); `None` serves every block.
    pub only_block: Option<BlockKind>,
}

#[derive(Clone)]
struct AppState {
    service: Arc<BlockService>,
    only_block: Option<BlockKind>,
}

/// The router with default options (no key check, no EMF).
pub fn router(service: Arc<BlockService>) -> Router {
    router_with(service, RouterOptions::default())
}

/// The router every entry point serves. Handlers only parse, delegate and map errors.
/// The key check is a layer only when a key is configured (no per-request cost otherwise).
pub fn router_with(service: Arc<BlockService>, options: RouterOptions) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route(BLOCK_ROUTE, get(get_block))
        .fallback(unmatched)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(AppState {
            service,
            only_block: options.only_block,
        });
    let routes = match options.api_key_sha256 {
        Some(expected) => routes.layer(middleware::from_fn_with_state(expected, auth::require_key)),
        None => routes,
    };
    routes.layer(middleware::from_fn_with_state(
        options.telemetry,
        telemetry::observe,
    ))
}

/// Requests no route matched. Under `/v1/users/` that means the user id segment is empty or
/// holds a slash (`//cart`, `a/b/cart`, `../../etc`): a malformed id, not a missing page.
async fn unmatched(uri: Uri) -> ApiError {
    match uri.path().strip_prefix(sendtime_domain::wire::USERS_PREFIX) {
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
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    query: Result<Query<BlockQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let service = &state.service;
    // The route's two segments, borrowed (percent-decoded by the router, nothing copied).
    let params = params.map_err(|_| ApiError::UndecodableUserId)?;
    let segment = |name: &str| params.iter().find(|(key, _)| *key == name).map(|(_, v)| v);
    let (Some(raw_user), Some(raw_block)) = (segment("user_id"), segment("block")) else {
        return Err(ApiError::NotFound);
    };
    let kind: BlockKind = raw_block.parse().map_err(|_| ApiError::UnknownBlock)?;
    if let Some(only) = state.only_block.filter(|only| *only != kind) {
        return Err(ApiError::OtherBlock(only));
    }
    let user_id = UserId::parse(raw_user)?;
    let Query(query) = query.map_err(|_| ApiError::InvalidQuery)?;
    let limits = kind.rule().limits(service.rules());
    let limit = match query.limit.as_deref() {
        None => limits.default_limit,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=limits.max_limit).contains(n))
            .ok_or(ApiError::InvalidLimit {
                max: limits.max_limit,
            })?,
    };
    let answer = service.answer(kind, &user_id, limit).await?;
    telemetry::record_block(BlockMeta {
        block: kind,
        source: answer.summary.source,
        degraded: answer.summary.degraded,
        eligible: answer.summary.eligible,
        answer_cache: answer.cache,
    });
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    Ok((json, answer.json).into_response())
}

//! Routes. The user id is in the path (Braze caches by URL, so it must be), nothing secret is.

use crate::error::ApiError;
use crate::service::BlockService;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use sendtime_domain::{Block, BlockKind, InvalidUserId, UserId};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct BlockQuery {
    limit: Option<String>,
}

/// The router every entry point serves. Handlers only parse, delegate and map errors.
pub fn router(service: Arc<BlockService>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/users/{user_id}/{block}", get(get_block))
        .fallback(unmatched)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(service)
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
) -> Result<Json<Block>, ApiError> {
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
    Ok(Json(block))
}

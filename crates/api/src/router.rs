//! Routes. The user id is in the path (Braze caches by URL, so it must be), nothing secret is.

use crate::auth::{Credentials, Presented};
use crate::error::ApiError;
use crate::service::{AnswerOptions, BlockService};
use crate::telemetry;
use crate::telemetry::{BlockMeta, TelemetryOptions};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures::future::BoxFuture;
use percent_encoding::percent_decode_str;
use sendtime_domain::wire::USERS_PREFIX;
use sendtime_domain::{BlockKind, MinScore, UserId};
use sendtime_render::{Format, Locale, RenderRequest, Rendered};
use serde::Deserialize;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::{CompressionLayer, CompressionLevel};

#[derive(Debug, Deserialize)]
struct BlockQuery {
    limit: Option<String>,
    strict: Option<String>,
    sig: Option<String>,
    exp: Option<String>,
    format: Option<String>,
    channel: Option<String>,
    locale: Option<String>,
    min_score: Option<String>,
}

pub use sendtime_domain::wire::BLOCK_ROUTE;

/// How an entry point wants the router: telemetry output and caller authentication.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Where request logs and metrics go.
    pub telemetry: TelemetryOptions,
    /// API key digests and URL signing secrets; none configured turns the check off.
    pub credentials: Credentials,
    /// Serve only this block (a Lambda function of one block); `None` serves every block.
    pub only_block: Option<BlockKind>,
    /// Strict by default: answer `503` with `Retry-After` instead of a degraded answer,
    /// unless a request says `strict=0` (a request's `strict=1` asks for it anyway).
    pub strict: bool,
    /// The language of rendered formats when neither `locale=` nor the profile says.
    pub default_locale: Locale,
    /// Serve the marketer's preview page at `/preview` (`sendtime serve`; never a Lambda
    /// function). With keys configured it asks for one like the block route.
    pub preview: bool,
    /// Serve the write path, `POST /v1/events`, through this handler (a write key required);
    /// `None` — every block function — answers it `404`.
    pub ingest: Option<Arc<crate::ingest::Ingest>>,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            telemetry: TelemetryOptions::default(),
            credentials: Credentials::default(),
            only_block: None,
            strict: false,
            default_locale: Locale::Ko,
            preview: false,
            ingest: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    service: Arc<BlockService>,
    only_block: Option<BlockKind>,
    strict: bool,
    credentials: Arc<Credentials>,
    default_locale: Locale,
}

/// The HTTP app every entry point serves (`sendtime serve` through `axum::serve`, each Lambda
/// function through `lambda_http`, tests through `tower::ServiceExt::oneshot`): a tower
/// service over requests of any body, cheap to clone.
#[derive(Clone)]
pub struct App(BoxCloneSyncService<Request, Response, Infallible>);

impl<B> Service<axum::http::Request<B>> for App
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = <BoxCloneSyncService<Request, Response, Infallible> as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        self.0.call(request.map(Body::new))
    }
}

/// The app with default options (no key check, no EMF).
pub fn router(service: Arc<BlockService>) -> App {
    router_with(service, RouterOptions::default())
}

/// The app every entry point serves. Handlers only parse, delegate and map errors. The key
/// check is a layer only when a key is configured (no per-request cost otherwise); the
/// telemetry layer wraps everything, every request gets one log line.
///
/// [`BLOCK_ROUTE`] is matched by hand — one split of the path — before axum's router, which
/// serves every other path (`/health`, and JSON 404s and 405s): on a hot path of a few
/// microseconds, axum's routing of the block route (its parameter map: a vector, an `Arc`
/// per name, a decoded string per value, an extension map; then its fallback's lookup,
/// parameter map and boxed handler) was a tenth of a repeat call's CPU.
pub fn router_with(service: Arc<BlockService>, options: RouterOptions) -> App {
    let state = AppState {
        service,
        only_block: options.only_block,
        strict: options.strict,
        credentials: Arc::new(options.credentials),
        default_locale: options.default_locale,
    };
    let mut rest = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi));
    if options.preview {
        let preview_state = state.clone();
        rest = rest.route(
            "/preview",
            get(
                move |headers: HeaderMap, query: Result<Query<PreviewQuery>, QueryRejection>| {
                    preview(preview_state.clone(), headers, query)
                },
            ),
        );
    }
    if let Some(ingest) = options.ingest {
        let credentials = state.credentials.clone();
        rest = rest.route(
            EVENTS_ROUTE,
            post(move |headers: HeaderMap, body: Body| {
                post_events(ingest.clone(), credentials.clone(), headers, body)
            })
            .fallback(|| async { events_method_not_allowed() }),
        );
    }
    let rest = rest
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let routes = Routes { state, rest };
    let observe = middleware::from_fn_with_state(options.telemetry, telemetry::observe);
    let gzip = compression()
        .layer(routes.clone())
        .map_response(|response: Response<_>| response.map(Body::new));
    let negotiated = Negotiated {
        plain: routes,
        gzip: Arc::new(BoxCloneSyncService::new(gzip)),
    };
    App(BoxCloneSyncService::new(observe.layer(negotiated)))
}

/// The routes, through the compression layer only for a caller that accepts gzip: a caller
/// that does not pays nothing for it (no body wrapper, no extra allocation per response).
/// The middleware above clones this service per request: the gzip stack is shared (`Arc`)
/// and cloned only for a request that uses it.
#[derive(Clone)]
struct Negotiated {
    plain: Routes,
    gzip: Arc<BoxCloneSyncService<Request, Response, Infallible>>,
}

impl Service<Request> for Negotiated {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The routes answer every request (the gzip stack is the same routes, readied when
        // used).
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let accepts_gzip = request
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .any(|v| {
                v.as_bytes()
                    .windows(4)
                    .any(|w| w.eq_ignore_ascii_case(b"gzip"))
            });
        if accepts_gzip {
            let gzip = self.gzip.as_ref().clone();
            Box::pin(gzip.oneshot(request))
        } else {
            self.plain.call(request)
        }
    }
}

/// Bodies at least this large are gzipped for a caller that accepts it (Braze sends
/// `Accept-Encoding: gzip`); below it the header costs more than it saves.
pub const COMPRESS_FROM_BYTES: u16 = 1_024;

/// gzip at its fastest level (most of the saving, little CPU; docs/benchmarks.md measures
/// it), for bodies of [`COMPRESS_FROM_BYTES`] or more; never for a caller that does not
/// accept it.
fn compression() -> CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(COMPRESS_FROM_BYTES - 1).and(NotForContentType::IMAGES))
}

/// The block route, matched by hand; every other path to axum's router.
#[derive(Clone)]
struct Routes {
    state: AppState,
    rest: Router,
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let length = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if length > MAX_URI_BYTES {
            return Box::pin(async { Ok(ApiError::UriTooLong.into_response()) });
        }
        if request.uri().path().starts_with(USERS_PREFIX) {
            let state = self.state.clone();
            Box::pin(async move { Ok(block_route(state, request).await.into_response()) })
        } else {
            let mut rest = self.rest.clone();
            Box::pin(async move { rest.call(request).await })
        }
    }
}

/// Longest path and query answered; longer is `414 uri_too_long` (a user id is at most 128
/// bytes, and Braze's cache busters are short).
pub const MAX_URI_BYTES: usize = 4_096;

/// Latest `exp` of a signed URL (the last second of year 9999), as the OpenAPI says.
pub const MAX_EXP: i64 = 253_402_300_799;

/// The block route's two segments, still percent-encoded.
#[derive(Debug, PartialEq, Eq)]
struct BlockPath<'a> {
    user: &'a str,
    block: &'a str,
}

/// Matches `path` against [`BLOCK_ROUTE`]: `Ok(None)` when it is not under `/v1/users/`;
/// `not_found` when it is but is not exactly a user id segment and a block segment
/// (`//cart`, `u1/cart/`, `a/b/cart`, `../../etc`: no such route). A user id holding a
/// slash is sent percent-encoded (`a%2Fb`), and then refused as an invalid id.
fn match_block_path(path: &str) -> Result<Option<BlockPath<'_>>, ApiError> {
    let Some(rest) = path.strip_prefix(USERS_PREFIX) else {
        return Ok(None);
    };
    match rest.split_once('/') {
        Some((user, block)) if !user.is_empty() && !block.contains('/') => {
            Ok(Some(BlockPath { user, block }))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// A path segment percent-decoded (borrowed when it has no `%`); `None` when the result is
/// not UTF-8.
fn decode(segment: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(segment).decode_utf8().ok()
}

/// A request under `/v1/users/`: [`BLOCK_ROUTE`] (GET or HEAD), else a JSON error.
async fn block_route(state: AppState, request: Request) -> Result<Response, ApiError> {
    let Some(path) = match_block_path(request.uri().path())? else {
        return Err(ApiError::NotFound);
    };
    telemetry::record_route(BLOCK_ROUTE);
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let BlockCall {
        kind,
        user_id,
        options,
        strict,
        render,
        query,
    } = block_request(&state, path, &request)?;
    if state.credentials.is_enabled() {
        let params: Vec<(&str, &str)> = [
            ("limit", &query.limit),
            ("format", &query.format),
            ("channel", &query.channel),
            ("locale", &query.locale),
            ("min_score", &query.min_score),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect();
        let presented = Presented {
            user_id: user_id.as_str(),
            block: kind.as_str(),
            sig: query.sig.as_deref(),
            exp: query.exp.as_deref(),
            params: &params,
        };
        state.credentials.authorize(
            request.headers(),
            presented,
            chrono::Utc::now().timestamp(),
        )?;
    }
    let answer = state.service.answer_with(kind, &user_id, options).await;
    telemetry::record_block(BlockMeta {
        block: kind,
        source: answer.summary.source,
        degraded: answer.summary.degraded,
        eligible: answer.summary.eligible,
        answer_cache: answer.cache,
    });
    if let Some(reason) = answer.summary.degraded_reason.filter(|_| strict) {
        return Err(ApiError::Degraded(reason));
    }
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let Some(render) = render else {
        return Ok((json, answer.json).into_response());
    };
    let book = state.service.copy_book().await;
    let eligible = if answer.summary.eligible {
        HeaderValue::from_static("true")
    } else {
        HeaderValue::from_static("false")
    };
    let content_type = |format: Format| match format {
        Format::Json => HeaderValue::from_static("application/json"),
        Format::Html => HeaderValue::from_static("text/html; charset=utf-8"),
        Format::Text => HeaderValue::from_static("text/plain; charset=utf-8"),
    };
    let headers = |format| {
        [
            (header::CONTENT_TYPE, content_type(format)),
            (ELIGIBLE_HEADER, eligible.clone()),
        ]
    };
    Ok(
        match sendtime_render::render(&answer.json, &book, &render) {
            Ok(Rendered::Json(body)) => (headers(Format::Json), body).into_response(),
            Ok(Rendered::Html(body)) => (headers(Format::Html), body).into_response(),
            Ok(Rendered::Text(body)) => (headers(Format::Text), body).into_response(),
            Ok(Rendered::Nothing) => (headers(render.format), "").into_response(),
            // Our own JSON always reads back; were it not to, the block as JSON beats a failure.
            Err(_) => (json, answer.json).into_response(),
        },
    )
}

/// Says whether a rendered block (`format=html|text`) is eligible: `false` comes with an
/// empty body, and the template aborts.
pub const ELIGIBLE_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-sendtime-eligible");

/// The OpenAPI 3.1 description of this API, `docs/openapi.json` as built in.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> Response {
    telemetry::record_route("/openapi.json");
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (json, OPENAPI_JSON).into_response()
}

#[derive(Debug, Deserialize)]
struct PreviewQuery {
    user_id: Option<String>,
    locale: Option<String>,
}

/// The preview page: every block for one user as each channel renders it; no script can run
/// (CSP), nothing is cached.
async fn preview(
    state: AppState,
    headers: HeaderMap,
    query: Result<Query<PreviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    telemetry::record_route("/preview");
    let Query(query) = query.map_err(|_| ApiError::InvalidQuery)?;
    let page_headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::preview::CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    let Some(raw_user) = query.user_id.filter(|u| !u.is_empty()) else {
        return Ok((page_headers, crate::preview::ASK_FOR_A_USER).into_response());
    };
    let user_id = UserId::parse(&raw_user)?;
    state.credentials.authorize(
        &headers,
        Presented {
            user_id: user_id.as_str(),
            block: "preview",
            sig: None,
            exp: None,
            params: &[],
        },
        chrono::Utc::now().timestamp(),
    )?;
    let locale = match query.locale.as_deref() {
        None | Some("") => None,
        Some(l) => Some(
            Locale::ALL
                .into_iter()
                .find(|known| known.as_str() == l)
                .ok_or(ApiError::InvalidFormat("locale must be ko or en"))?,
        ),
    };
    let html = crate::preview::page(&state.service, &user_id, locale, state.default_locale).await;
    Ok((page_headers, html).into_response())
}

/// The write path: a batch of events in, a result per event out.
pub const EVENTS_ROUTE: &str = "/v1/events";

/// `POST /v1/events`: a write key, then the batch (at most
/// [`crate::ingest::MAX_BATCH_BYTES`], read no further), applied by the one ingest handler.
/// `200` with a result per event whenever the batch was read, whatever each event's fate.
async fn post_events(
    ingest: Arc<crate::ingest::Ingest>,
    credentials: Arc<Credentials>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use crate::ingest::{parse_batch, BatchError, Summary, MAX_BATCH_BYTES};
    telemetry::record_route(EVENTS_ROUTE);
    credentials.authorize_write(&headers)?;
    let bytes = axum::body::to_bytes(body, MAX_BATCH_BYTES + 1)
        .await
        .map_err(|_| ApiError::BatchTooLarge(BatchError::TooLarge))?;
    let events = parse_batch(&bytes).map_err(|e| match e {
        BatchError::InvalidBody(_) => ApiError::InvalidBody(e),
        BatchError::TooLarge | BatchError::TooManyEvents => ApiError::BatchTooLarge(e),
    })?;
    let results = ingest.apply_batch(events).await;
    let summary = Summary::of(&results);
    tracing::info!(
        applied = summary.applied,
        unchanged = summary.unchanged,
        rejected = summary.rejected,
        failed = summary.failed,
        "events batch"
    );
    Ok(Json(serde_json::json!({ "summary": summary, "results": results })).into_response())
}

/// Any method but POST on [`EVENTS_ROUTE`]: `405 method_not_allowed`, `Allow: POST`.
fn events_method_not_allowed() -> Response {
    telemetry::record_route(EVENTS_ROUTE);
    let body = serde_json::json!({"error": {
        "code": ApiError::MethodNotAllowed.code(),
        "message": "only POST is supported on this route",
    }});
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static("POST"))],
        Json(body),
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    telemetry::record_route("/health");
    Json(serde_json::json!({ "status": "ok" }))
}

/// What a block request asks for, checked.
struct BlockCall {
    kind: BlockKind,
    user_id: UserId,
    /// `limit` and `min_score`.
    options: AnswerOptions,
    /// `503` rather than a degraded answer.
    strict: bool,
    /// How to render it; `None`: the block's JSON as it is.
    render: Option<RenderRequest>,
    /// The query as sent (for the signature check).
    query: BlockQuery,
}

/// What a block request asks for: the block, the user, the limit, `min_score`, strictness and
/// rendering, checked. Query parameters we do not know are ignored (cache busters).
fn block_request(
    state: &AppState,
    path: BlockPath<'_>,
    request: &Request,
) -> Result<BlockCall, ApiError> {
    let kind: BlockKind = decode(path.block)
        .and_then(|block| block.parse().ok())
        .ok_or(ApiError::UnknownBlock)?;
    if let Some(only) = state.only_block.filter(|only| *only != kind) {
        return Err(ApiError::OtherBlock(only));
    }
    let raw_user = decode(path.user).ok_or(ApiError::UndecodableUserId)?;
    let user_id = UserId::parse(&raw_user)?;
    let Query(query) =
        Query::<BlockQuery>::try_from_uri(request.uri()).map_err(|_| ApiError::InvalidQuery)?;
    let limits = kind.rule().limits(state.service.rules());
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
    let min_score = query
        .min_score
        .as_deref()
        .map(str::parse::<MinScore>)
        .transpose()
        .map_err(|_| ApiError::InvalidMinScore)?;
    // `exp` is checked for form whether or not signing is configured: not a number is a bad
    // request. (`sig` is a credential: a malformed one is refused by the signature check.)
    if query
        .exp
        .as_deref()
        .is_some_and(|exp| !exp.parse::<i64>().is_ok_and(|e| (0..=MAX_EXP).contains(&e)))
    {
        return Err(ApiError::InvalidQuery);
    }
    let strict = match query.strict.as_deref() {
        None => state.strict,
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(_) => return Err(ApiError::InvalidQuery),
    };
    let render = render_request(state, &query)?;
    Ok(BlockCall {
        kind,
        user_id,
        options: AnswerOptions { limit, min_score },
        strict,
        render,
        query,
    })
}

/// What `format`, `channel` and `locale` ask for; `None` for the plain JSON block.
fn render_request(state: &AppState, query: &BlockQuery) -> Result<Option<RenderRequest>, ApiError> {
    if query.format.is_none() && query.channel.is_none() && query.locale.is_none() {
        return Ok(None);
    }
    let format = match query.format.as_deref() {
        None => Format::Json,
        Some(f) => {
            Format::parse(f).ok_or(ApiError::InvalidFormat("format must be json, html or text"))?
        }
    };
    let channel = match query.channel.as_deref() {
        None => None,
        Some(c) => Some(sendtime_render::channel(c).ok_or(ApiError::InvalidFormat(
            "channel must be email, push, sms or kakao",
        ))?),
    };
    let locale = match query.locale.as_deref() {
        None => None,
        Some(l) => Some(
            Locale::ALL
                .into_iter()
                .find(|known| known.as_str() == l)
                .ok_or(ApiError::InvalidFormat("locale must be ko or en"))?,
        ),
    };
    let request = RenderRequest {
        format,
        channel,
        locale,
        default_locale: state.default_locale,
    };
    // A locale alone with the default format asks for nothing to render.
    Ok((format != Format::Json || channel.is_some()).then_some(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(path: &str) -> Result<Option<(&str, &str)>, &'static str> {
        match_block_path(path)
            .map(|m| m.map(|p| (p.user, p.block)))
            .map_err(|e| e.code())
    }

    #[test]
    fn the_block_route_is_two_segments_under_the_users_prefix() {
        assert_eq!(matched("/v1/users/u1/cart"), Ok(Some(("u1", "cart"))));
        assert_eq!(matched("/v1/users/a%2Fb/cart"), Ok(Some(("a%2Fb", "cart"))));
        assert_eq!(matched("/v1/users/u1/"), Ok(Some(("u1", ""))));
        assert_eq!(matched("/health"), Ok(None));
        assert_eq!(matched("/v1/users"), Ok(None));
        assert_eq!(matched("/v2/users/u1/cart"), Ok(None));
        assert_eq!(matched("/v1/users/u1"), Err("not_found"));
        assert_eq!(matched("/v1/users/"), Err("not_found"));
        assert_eq!(matched("/v1/users//cart"), Err("not_found"));
        assert_eq!(matched("/v1/users/u1/cart/"), Err("not_found"));
        assert_eq!(matched("/v1/users/a/b/cart"), Err("not_found"));
        assert_eq!(matched("/v1/users/../../etc/passwd"), Err("not_found"));
    }

    #[test]
    fn segments_decode_to_utf8_or_nothing() {
        assert_eq!(decode("u1").as_deref(), Some("u1"));
        assert!(matches!(decode("u1"), Some(Cow::Borrowed(_))));
        assert_eq!(decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode("%EC%82%AC").as_deref(), Some("사"));
        assert_eq!(decode("%FF%FE"), None);
    }
}

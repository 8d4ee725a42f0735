//! An HTTP proxy in front of DynamoDB (Local) that throttles: every `every`-th
//! `BatchWriteItem` is answered `400 ProvisionedThroughputExceededException`, as DynamoDB does
//! when a table's write capacity runs out; everything else is forwarded unchanged.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A running throttling proxy.
pub struct ThrottlingProxy {
    /// Where clients connect: `http://127.0.0.1:{port}`.
    pub url: String,
    /// `BatchWriteItem` calls answered with throttling so far.
    pub throttled: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Upstream {
    backend: String,
    every: usize,
    writes: Arc<AtomicUsize>,
    throttled: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl ThrottlingProxy {
    /// Proxies to `backend` (`http://host:port`), throttling every `every`-th batch write.
    pub async fn start(backend: &str, every: usize) -> ThrottlingProxy {
        let throttled = Arc::new(AtomicUsize::new(0));
        let upstream = Upstream {
            backend: backend.trim_end_matches('/').to_owned(),
            every: every.max(1),
            writes: Arc::default(),
            throttled: throttled.clone(),
            client: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(forward).with_state(upstream);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        ThrottlingProxy { url, throttled }
    }
}

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target.ends_with(".BatchWriteItem")
        && up.writes.fetch_add(1, Ordering::SeqCst) % up.every == 0
    {
        up.throttled.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            body,
        )
            .into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            headers.insert(name.clone(), value.clone());
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let answer = up
        .client
        .request(parts.method, format!("{}{path}", up.backend))
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let Ok(answer) = answer else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body: Bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

//! The ingest function: the block functions' binary run with `SENDTIME_ROLE=ingest`. It only
//! writes: `POST /v1/events` from either front door (an API Gateway HTTP API or a Function
//! URL request, converted by `lambda_http`'s own types) and SQS batches from the ingest
//! queue, both applied by the one ingest handler over DynamoDB. A Lambda payload is one or the
//! other: SQS events are told apart by their records' `eventSource` ([`sqs::is_sqs_event`]).
//!
//! It serves no block: every path but the write path and `/health` is `404` before the
//! router, so it holds no cache, and nothing needs dropping when an event is applied (the
//! block functions see the change when their user cache entry expires).

use crate::config::LambdaConfig;
use crate::sqs;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::{Service, ServiceExt};
use lambda_http::{Adapter, LambdaEvent};
use sendtime_api::ingest::Ingest;
use sendtime_api::router::EVENTS_ROUTE;
use sendtime_api::{router_with, ApiError, App, BlockService, RouterOptions};
use sendtime_domain::SystemClock;
use sendtime_store::{BlockStore, EventsApply};
use serde_json::value::RawValue;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The paths the ingest function serves; any other is `404 not_found`.
pub const INGEST_PATHS: [&str; 2] = [EVENTS_ROUTE, "/health"];

/// The router with the write path mounted, behind a gate that lets through only
/// [`INGEST_PATHS`] (after [`crate::prepare`]).
#[derive(Clone)]
pub struct IngestRoutes {
    app: App,
}

impl IngestRoutes {
    /// The shared router as the ingest function serves it: `POST /v1/events` through
    /// `ingest`, keys from `config`; `service` is never reached (no block path passes the gate).
    pub fn new(service: Arc<BlockService>, ingest: Arc<Ingest>, config: &LambdaConfig) -> Self {
        let options = RouterOptions {
            ingest: Some(ingest),
            ..crate::router_options(config)
        };
        Self {
            app: router_with(service, options),
        }
    }
}

impl Service<lambda_http::Request> for IngestRoutes {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<lambda_http::Request>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        let request = crate::prepare(request);
        if INGEST_PATHS.contains(&request.uri().path()) {
            Box::pin(self.app.call(request))
        } else {
            // Logged here: the router's request log never sees it.
            tracing::info!(status = 404, "not an ingest path");
            Box::pin(async { Ok(ApiError::NotFound.into_response()) })
        }
    }
}

/// Everything an invocation of the ingest function needs, built once at init.
#[derive(Clone)]
pub struct IngestFunction {
    ingest: Arc<Ingest>,
    routes: IngestRoutes,
}

impl IngestFunction {
    /// Applies SQS batches through `ingest`, serves HTTP requests through `routes`.
    pub fn new(ingest: Arc<Ingest>, routes: IngestRoutes) -> Self {
        Self { ingest, routes }
    }

    /// Over `store` (DynamoDB in a function, the embedded store in tests), the system clock.
    pub fn over<S>(store: Arc<S>, config: &LambdaConfig) -> Self
    where
        S: EventsApply + BlockStore + 'static,
    {
        // No cache in this function: nothing to invalidate (`()`).
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            Arc::new(()),
            Arc::new(SystemClock),
        ));
        let service = Arc::new(BlockService::new(
            store,
            config.rules.clone(),
            Arc::new(SystemClock),
        ));
        Self::new(ingest.clone(), IngestRoutes::new(service, ingest, config))
    }

    /// Answers one invocation: an SQS event with its `batchItemFailures`, anything else as
    /// an HTTP request (API Gateway HTTP API payload 2.0 or a Function URL) with the HTTP
    /// response `lambda_http` makes of the router's answer. An error fails the invocation:
    /// a payload that is neither, or an SQS batch whose failed record has no `messageId`.
    pub async fn handle(
        &self,
        event: LambdaEvent<Box<RawValue>>,
    ) -> Result<serde_json::Value, lambda_http::Error> {
        let LambdaEvent { payload, context } = event;
        if sqs::is_sqs_event(payload.get()) {
            self.handle_sqs(payload.get(), context.deadline).await
        } else {
            self.handle_http(payload.get(), context).await
        }
    }

    /// An SQS batch, answered by its deadline (the runtime API's, in ms) with the messages
    /// that go back; one log line of counts.
    async fn handle_sqs(
        &self,
        payload: &str,
        deadline_ms: u64,
    ) -> Result<serde_json::Value, lambda_http::Error> {
        let started = Instant::now();
        let batch: SqsEvent = serde_json::from_str(payload)?;
        let by = sqs::answer_by(deadline_ms);
        let (response, summary) = sqs::apply_sqs_event(&self.ingest, batch, by).await?;
        tracing::info!(
            messages = summary.messages,
            messages_back = summary.messages_back,
            unreadable = summary.unreadable,
            out_of_time = summary.out_of_time,
            applied = summary.events.applied,
            unchanged = summary.events.unchanged,
            rejected = summary.events.rejected,
            failed = summary.events.failed,
            ms = started.elapsed().as_millis() as u64,
            budget_ms = by.saturating_duration_since(started).as_millis() as u64,
            "sqs batch"
        );
        Ok(serde_json::to_value(response)?)
    }

    /// An HTTP request from either front door, through `lambda_http`'s request and response
    /// types and the gated router.
    async fn handle_http(
        &self,
        payload: &str,
        context: lambda_http::Context,
    ) -> Result<serde_json::Value, lambda_http::Error> {
        let request: LambdaRequest = serde_json::from_str(payload)?;
        let response = Adapter::from(self.routes.clone())
            .oneshot(LambdaEvent::new(request, context))
            .await?;
        Ok(serde_json::to_value(response)?)
    }
}

/// The ingest function's init and invocation loop: DynamoDB connected, then every invocation
/// through [`IngestFunction::handle`].
pub async fn run(config: &LambdaConfig) -> Result<(), lambda_http::Error> {
    let started = Instant::now();
    if !config.credentials.has_write_keys() {
        tracing::warn!(
            "no write key (set SENDTIME_WRITE_KEY_SHA256, or write_key_sha256= in the \
             SENDTIME_AUTH_PARAMETER parameter): POST /v1/events refuses every caller; \
             SQS batches are still applied"
        );
    }
    let dynamo = Arc::new(sendtime_dynamo::connect(&config.dynamo).await);
    let function = Arc::new(IngestFunction::over(dynamo, config));
    tracing::info!(
        role = config.role.as_str(),
        table = %config.dynamo.table,
        init_ms = started.elapsed().as_millis() as u64,
        "init complete"
    );
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: LambdaEvent<Box<RawValue>>| {
            let function = function.clone();
            async move { function.handle(event).await }
        },
    ))
    .await
}

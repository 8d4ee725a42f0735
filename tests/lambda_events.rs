//! API Gateway HTTP API (payload 2.0) events, as JSON fixtures, through the Lambda entry
//! point: `lambda_http`'s adapter (what `lambda_http::run` drives) around
//! `sendtime_lambda::handler`, over the embedded store. Path parameters, query strings,
//! headers, a named stage and a base64 body all arrive the way API Gateway sends them.
//! The ingest function's invocations (`sendtime_lambda::ingest::IngestFunction::handle`, what
//! its runtime loop calls): SQS events with partial batch responses, and `POST /v1/events`
//! from the HTTP API and a Function URL answered as the router answers it in-process.

use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use sendtime_api::BlockService;
use sendtime_domain::RulesConfig;
use sendtime_lambda::LambdaConfig;
use sendtime_store::{CacheConfig, CachedStore, MemoryStore};
use sendtime_tests::*;
use serde_json::Value;
use std::sync::Arc;

const KEY: &str = "braze-stored-credential";

async fn invoke(fixture: &str) -> (u16, Value, Value) {
    let path = format!("{}/fixtures/apigw-v2/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let event: LambdaRequest = serde_json::from_str(&text).expect("a valid API Gateway v2 event");

    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let store = CachedStore::new(Arc::new(memory), &CacheConfig::default());
    let service = Arc::new(BlockService::new(
        Arc::new(store),
        RulesConfig::default(),
        clock(),
    ));
    let hash: String = sendtime_api::auth::sha256(KEY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = LambdaConfig::from_lookup(|name| match name {
        "SENDTIME_TABLE" => Some("unused".into()),
        "SENDTIME_API_KEY_SHA256" => Some(hash.clone()),
        _ => None,
    })
    .unwrap();
    let app = sendtime_lambda::app(service, &config);

    let mut context = Context::default();
    context.request_id = "8f5e2a1c-test".into();
    let adapter = Adapter::from(sendtime_lambda::handler(app));
    let response = adapter
        .oneshot(LambdaEvent::new(event, context))
        .await
        .expect("the handler never fails the invocation");
    let json = serde_json::to_value(&response).unwrap();
    let status = json["statusCode"].as_u64().unwrap() as u16;
    assert_eq!(
        json["isBase64Encoded"], false,
        "{fixture}: JSON bodies are text"
    );
    let body: Value = serde_json::from_str(json["body"].as_str().unwrap_or("null")).unwrap();
    (status, body, json["headers"].clone())
}

#[tokio::test]
async fn path_parameter_and_query_string_reach_the_block() {
    let (status, body, headers) = invoke("recommendations_limit.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["block"], "recommendations");
    assert_eq!(body["stage"], "personalized");
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        2,
        "limit=2 honoured"
    );
}

#[tokio::test]
async fn a_named_stage_prefix_is_stripped() {
    let (status, body, _) = invoke("cart_named_stage.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["block"], "cart");
    assert_eq!(body["stage"], "urgency");
}

#[tokio::test]
async fn unknown_users_get_fallback_content() {
    let (status, body, _) = invoke("recommendations_unknown_user.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "popular");
    assert_eq!(body["user_id"], "ghost-7");
    let (status, body, _) = invoke("dormancy_unknown_user.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["eligible"], false);
    assert_eq!(body["reason"], "unknown_user");
}

#[tokio::test]
async fn bad_ids_and_limits_are_400_with_stable_codes() {
    for fixture in ["cart_bad_user_id.json", "cart_path_trick.json"] {
        let (status, body, _) = invoke(fixture).await;
        assert_eq!(status, 400, "{fixture}: {body}");
        assert_eq!(body["error"]["code"], "invalid_user_id", "{fixture}");
    }
    let (status, body, _) = invoke("recommendations_bad_limit.json").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, "invalid_limit".into())
    );
}

#[tokio::test]
async fn the_caller_key_is_required_but_health_is_open() {
    let (status, body, _) = invoke("cart_missing_key.json").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body, _) = invoke("health.json").await;
    assert_eq!((status, body["status"].clone()), (200, "ok".into()));
}

#[tokio::test]
async fn a_base64_body_on_a_write_method_is_refused_cleanly() {
    let (status, body, _) = invoke("cart_post_base64_body.json").await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

// ----- the ingest function -------------------------------------------------------------

const WRITE_KEY: &str = "ingest-write-key";

fn hex(key: &str) -> String {
    sendtime_api::auth::sha256(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The ingest function's config: the read key Braze stores, and a separate write key.
fn ingest_config() -> LambdaConfig {
    LambdaConfig::from_lookup(|name| match name {
        "SENDTIME_TABLE" => Some("unused".into()),
        "SENDTIME_ROLE" => Some("ingest".into()),
        "SENDTIME_API_KEY_SHA256" => Some(hex(KEY)),
        "SENDTIME_WRITE_KEY_SHA256" => Some(hex(WRITE_KEY)),
        _ => None,
    })
    .unwrap()
}

fn fixture_text(path: &str) -> String {
    let path = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Invokes the ingest function over `store` with the payload in `fixture`, as its runtime
/// loop does: the raw JSON payload and a context.
async fn invoke_ingest(store: Arc<MemoryStore>, fixture: &str) -> Value {
    let payload: Box<serde_json::value::RawValue> =
        serde_json::from_str(&fixture_text(fixture)).expect("a JSON payload");
    let function = sendtime_lambda::ingest::IngestFunction::over(store, &ingest_config());
    let mut context = Context::default();
    context.request_id = "ingest-test".into();
    // As the runtime API says it: the invocation must end within 30 s (Unix ms).
    context.deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 30_000;
    function
        .handle(LambdaEvent::new(payload, context))
        .await
        .expect("the invocation succeeds")
}

/// Status and body of an HTTP answer the function gave.
fn http_answer(answer: &Value) -> (u16, Value) {
    let status = answer["statusCode"].as_u64().expect("an HTTP answer") as u16;
    let body = serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap();
    (status, body)
}

#[tokio::test]
async fn an_sqs_batch_with_one_malformed_message_reports_only_it_and_applies_the_rest() {
    // GIVEN an empty store and an SQS event of four messages, the second one cut short
    let store = Arc::new(MemoryStore::new(clock()));
    // WHEN the ingest function is invoked with it
    let answer = invoke_ingest(store.clone(), "sqs/batch_one_malformed.json").await;
    // THEN only the malformed message is named, in AWS's partial batch response shape
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}
        ]})
    );
    // AND the other messages' events are in the store, the malformed one's user is not
    use sendtime_store::UserDataGet;
    let read = |id: &'static str| {
        let store = store.clone();
        async move { store.user_data(&uid(id)).await.unwrap() }
    };
    let cart = read("sqs-u1").await.cart.clone().expect("sqs-u1's cart");
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(
        (cart.lines[0].item_id.as_str(), cart.lines[0].quantity),
        ("i00001", 2)
    );
    let buyer = read("sqs-u2")
        .await
        .profile
        .clone()
        .expect("sqs-u2's profile");
    assert!(buyer.purchased_items.contains(&iid("i00002")));
    let activated = read("sqs-u4")
        .await
        .profile
        .clone()
        .expect("sqs-u4 (EventBridge)");
    assert!(activated.activated);
    let viewer = read("sqs-u5")
        .await
        .profile
        .clone()
        .expect("sqs-u5's profile");
    assert!(viewer.recent_views.contains(&iid("i00003")));
    let broken = read("sqs-u3").await;
    assert!(broken.cart.is_none() && broken.profile.is_none());
}

#[tokio::test]
async fn the_write_path_through_either_front_door_answers_as_the_router_does() {
    // GIVEN the router in-process over its own empty store, with the same keys
    let config = ingest_config();
    let reference_store = Arc::new(MemoryStore::new(clock()));
    let ingest = Arc::new(sendtime_api::ingest::Ingest::new(
        reference_store.clone(),
        Arc::new(()),
        Arc::new(sendtime_domain::SystemClock),
    ));
    let service = Arc::new(BlockService::new(
        reference_store,
        RulesConfig::default(),
        clock(),
    ));
    let reference = sendtime_api::router_with(
        service,
        sendtime_api::RouterOptions {
            credentials: config.credentials.clone(),
            ingest: Some(ingest),
            ..Default::default()
        },
    );
    let batch: Value =
        serde_json::from_str(&fixture_text("apigw-v2/events_post_write_key.json")).unwrap();
    let request = axum::http::Request::post("/v1/events")
        .header("x-sendtime-key", WRITE_KEY)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            batch["body"].as_str().unwrap().to_owned(),
        ))
        .unwrap();
    let response = tower::ServiceExt::oneshot(reference, request)
        .await
        .unwrap();
    let expected_status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let expected: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(expected["summary"]["applied"], 1, "{expected}");
    assert_eq!(expected["summary"]["rejected"], 1, "{expected}");

    // WHEN the same batch reaches the function through the HTTP API and a Function URL
    for fixture in [
        "apigw-v2/events_post_write_key.json",
        "apigw-v2/events_post_function_url.json",
    ] {
        let answer = invoke_ingest(Arc::new(MemoryStore::new(clock())), fixture).await;
        // THEN the status and the result per event are the router's
        assert_eq!(
            http_answer(&answer),
            (expected_status, expected.clone()),
            "{fixture}"
        );
    }
}

#[tokio::test]
async fn on_the_write_path_a_read_key_is_403_no_key_401_and_no_block_is_served() {
    // GIVEN the ingest function over an empty store
    let store = || Arc::new(MemoryStore::new(clock()));
    // WHEN the key Braze stores (a read key) posts events THEN 403 forbidden
    let (status, body) =
        http_answer(&invoke_ingest(store(), "apigw-v2/events_post_read_key.json").await);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, "forbidden".into())
    );
    // AND without a key, 401 unauthorized
    let (status, body) =
        http_answer(&invoke_ingest(store(), "apigw-v2/events_post_no_key.json").await);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, "unauthorized".into())
    );
    // AND a block route, even with a good read key, is 404: this function only writes
    let (status, body) =
        http_answer(&invoke_ingest(store(), "apigw-v2/recommendations_limit.json").await);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, "not_found".into())
    );
    // AND /health answers
    let (status, body) = http_answer(&invoke_ingest(store(), "apigw-v2/health.json").await);
    assert_eq!((status, body["status"].clone()), (200, "ok".into()));
}

#[tokio::test]
async fn a_payload_neither_sqs_nor_http_fails_the_invocation() {
    // GIVEN a payload from some other source (an S3 notification)
    let payload: Box<serde_json::value::RawValue> = serde_json::from_str(
        r#"{"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}}}]}"#,
    )
    .unwrap();
    let function = sendtime_lambda::ingest::IngestFunction::over(
        Arc::new(MemoryStore::new(clock())),
        &ingest_config(),
    );
    // WHEN the ingest function is invoked with it
    let err = function
        .handle(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap_err()
        .to_string();
    // THEN the invocation fails, saying what it expects
    assert!(err.contains("API Gateway"), "{err}");
}

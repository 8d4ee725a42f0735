//! API Gateway HTTP API (payload 2.0) events, as JSON fixtures, through the Lambda entry
//! point: `lambda_http`'s adapter (what `lambda_http::run` drives) around
//! `sendtime_lambda::handler`, over the embedded store. Path parameters, query strings,
//! headers, a named stage and a base64 body all arrive the way API Gateway sends them.

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

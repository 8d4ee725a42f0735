//! `POST /v1/events` through the router: key scopes, batch bounds, per-event results,
//! and the contract (statuses, bodies and codes as `docs/openapi.json` and the README say).

use super::*;
use sendtime_api::auth::{sha256, Credentials};
use sendtime_api::ingest::{Ingest, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use serde_json::json;

const READ_KEY: &str = "read-key";
const WRITE_KEY: &str = "write-key";

/// The fixture (embedded store) behind a router that takes events, with one read key and
/// one write key; `ingest: false` is a block function's router (no write path).
async fn events_app(ingest: bool, only_block: Option<sendtime_domain::BlockKind>) -> App {
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let service = Arc::new(BlockService::new(
        memory.clone(),
        RulesConfig::default(),
        clock(),
    ));
    let ingest = ingest.then(|| Arc::new(Ingest::new(memory, service.clone(), clock())));
    sendtime_api::router_with(
        service,
        sendtime_api::RouterOptions {
            credentials: Credentials::new(vec![sha256(READ_KEY)], Vec::new())
                .with_write_keys(vec![sha256(WRITE_KEY)]),
            preview: true,
            only_block,
            ingest,
            ..Default::default()
        },
    )
}

type App = sendtime_api::App;

/// A request's status, headers and JSON body.
async fn send(
    app: &App,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-sendtime-key", key);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

/// `POST /v1/events` with `key`, checked against the OpenAPI description.
async fn post(app: &App, key: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let (status, _, json) = send(app, Method::POST, "/v1/events", key, body).await;
    sendtime_tests::openapi::check_operation("/v1/events", "post", status.as_u16(), &json);
    (status, json)
}

fn order(id: &str, user: &str) -> Value {
    let event = json!({
        "id": id,
        "type": "order_placed",
        "user_id": user,
        "time": (now() - chrono::Duration::hours(1)).to_rfc3339(),
        "properties": {"order_id": format!("order-{id}"), "products": [{"product_id": "s1"}]},
    });
    sendtime_tests::openapi::check_schema("Event", &event);
    event
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    json!({ "events": events }).to_string().into_bytes()
}

#[tokio::test]
async fn the_write_path_takes_only_a_write_key() {
    // GIVEN a router with a read key and a write key
    let app = events_app(true, None).await;
    let body = || batch(vec![order("e1", "alice")]);
    // WHEN events come with no key, an unknown key, the read key, the write key
    // THEN 401, 401, 403 forbidden, and 200 with the event applied
    let (status, v) = post(&app, None, body()).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthorized"))
    );
    let (status, _) = post(&app, Some("nope"), body()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = post(&app, Some(READ_KEY), body()).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
    let (status, v) = post(&app, Some(WRITE_KEY), body()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["summary"]["applied"], 1);
    assert_eq!(v["results"][0]["record"], "profile");
}

#[tokio::test]
async fn a_write_key_reads_nothing() {
    // GIVEN a router with a read key and a write key
    let app = events_app(true, None).await;
    let mut read_routes: Vec<String> = sendtime_domain::BlockKind::ALL
        .iter()
        .map(|b| format!("/v1/users/alice/{b}"))
        .collect();
    read_routes.push("/v1/users/alice/cart?format=html".to_owned());
    read_routes.push("/preview?user_id=alice".to_owned());
    for uri in &read_routes {
        // WHEN the write key asks for a read route
        let (status, _, v) = send(&app, Method::GET, uri, Some(WRITE_KEY), Vec::new()).await;
        // THEN it is refused 403 forbidden, while the read key is let through
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (StatusCode::FORBIDDEN, json!("forbidden")),
            "{uri}"
        );
        let (status, _, _) = send(&app, Method::GET, uri, Some(READ_KEY), Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn a_block_function_has_no_write_path() {
    // GIVEN a block function's router (one block, no ingest)
    let app = events_app(false, Some(sendtime_domain::BlockKind::Cart)).await;
    // WHEN events are posted with the write key
    let (status, v) = post(&app, Some(WRITE_KEY), batch(vec![order("e1", "alice")])).await;
    // THEN there is no such route
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

#[tokio::test]
async fn the_events_route_answers_only_post() {
    let app = events_app(true, None).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let (status, headers, v) = send(
            &app,
            method.clone(),
            "/v1/events",
            Some(WRITE_KEY),
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[header::ALLOW], "POST");
        sendtime_tests::openapi::check_operation("/v1/events", "post", 405, &v);
    }
}

#[tokio::test]
async fn oversized_or_unreadable_batches_are_refused_whole() {
    let app = events_app(true, None).await;
    // GIVEN one event too many, one byte too many, and bodies that are not a batch
    let too_many = batch(vec![order("e", "alice"); MAX_BATCH_EVENTS + 1]);
    let mut too_big = batch(vec![order("e", "alice")]);
    too_big.resize(MAX_BATCH_BYTES + 1, b' ');
    for body in [too_many, too_big] {
        // THEN 413 batch_too_large
        let (status, v) = post(&app, Some(WRITE_KEY), body).await;
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (StatusCode::PAYLOAD_TOO_LARGE, json!("batch_too_large"))
        );
    }
    for body in [&b"not json"[..], b"", b"{\"events\": 3}", b"{}", b"42"] {
        // AND 400 invalid_body
        let (status, v) = post(&app, Some(WRITE_KEY), body.to_vec()).await;
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_body")),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // AND exactly the limits pass
    let (status, v) = post(
        &app,
        Some(WRITE_KEY),
        batch(vec![order("e", "alice"); MAX_BATCH_EVENTS]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["summary"]["applied"], 1);
    assert_eq!(v["summary"]["unchanged"], MAX_BATCH_EVENTS - 1);
}

#[tokio::test]
async fn a_mixed_batch_applies_the_valid_events_each_with_its_result() {
    // GIVEN a batch of valid events and bad ones (unknown type, no user, a future time,
    // a bad user id, not an object, a duplicate, an update of an unknown item)
    let app = events_app(true, None).await;
    let future = (now() + chrono::Duration::hours(1)).to_rfc3339();
    let events = vec![
        order("ok-1", "alice"),
        json!({"id": "bad-1", "type": "refund", "user_id": "alice", "time": now().to_rfc3339()}),
        json!({"id": "bad-2", "type": "key_action", "time": now().to_rfc3339()}),
        json!({"id": "bad-3", "type": "key_action", "user_id": "erin", "time": future}),
        json!({"id": "bad-4", "type": "key_action", "user_id": "../etc", "time": now().to_rfc3339()}),
        json!("not an event"),
        order("ok-1", "alice"),
        json!({"id": "bad-5", "type": "item_updated", "time": now().to_rfc3339(), "properties": {"item_id": "nowhere", "stock": 3}}),
        json!({"id": "ok-2", "type": "key_action", "user_id": "erin", "time": now().to_rfc3339()}),
    ];
    // WHEN it is posted
    let (status, v) = post(&app, Some(WRITE_KEY), batch(events)).await;
    // THEN each event has its result, in order; only the valid ones were applied
    assert_eq!(status, StatusCode::OK);
    let results: Vec<(String, String)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let what = r["error"]["code"]
                .as_str()
                .or(r["reason"].as_str())
                .or(r["record"].as_str());
            (
                r["status"].as_str().unwrap().to_owned(),
                what.unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("applied", "profile"),
        ("rejected", "unknown_type"),
        ("rejected", "missing_field"),
        ("rejected", "time_in_future"),
        ("rejected", "invalid_user_id"),
        ("rejected", "invalid_event"),
        ("unchanged", "duplicate"),
        ("rejected", "unknown_item"),
        ("applied", "profile"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(results, expected);
    assert_eq!(
        v["summary"],
        json!({"applied": 2, "unchanged": 1, "rejected": 6, "failed": 0})
    );
    // AND the answers show the applied events: alice purchased, erin activated
    let (_, _, cart) = send(
        &app,
        Method::GET,
        "/v1/users/alice/cart",
        Some(READ_KEY),
        Vec::new(),
    )
    .await;
    assert_eq!(cart["reason"], "purchased");
    let (_, _, onboarding) = send(
        &app,
        Method::GET,
        "/v1/users/erin/onboarding",
        Some(READ_KEY),
        Vec::new(),
    )
    .await;
    assert_eq!(onboarding["reason"], "activated");
    // AND the item that could not be made does not exist
    let (_, _, recs) = send(
        &app,
        Method::GET,
        "/v1/users/alice/recommendations",
        Some(READ_KEY),
        Vec::new(),
    )
    .await;
    assert!(!ids(&recs).contains(&"nowhere"));
}

#[test]
fn the_readme_and_the_openapi_description_list_the_events_routes_codes() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let doc = &*sendtime_tests::openapi::DOC;
    let responses = &doc["paths"]["/v1/events"]["post"]["responses"];
    // GIVEN the README's code tables (the events route's own codes, and those it shares
    // with the block route)
    let mut listed: Vec<String> = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let (code, status) = (cells[1].trim_matches('`'), cells[2]);
        if !sendtime_api::error::EVENTS_CODES.contains(&code) || status.parse::<u16>().is_err() {
            continue;
        }
        // THEN the events route documents each code at the README's status
        let description = responses[status]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains(code),
            "README says {code} is a {status}; POST /v1/events's {status} does not list it"
        );
        listed.push(code.to_owned());
    }
    listed.sort();
    listed.dedup();
    let mut all: Vec<String> = sendtime_api::error::EVENTS_CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    all.sort();
    assert_eq!(listed, all, "the README's error-code tables");
    // AND the error schema of the route lists exactly those codes
    let mut documented: Vec<String> = doc["components"]["schemas"]["EventsError"]["properties"]
        ["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    documented.sort();
    assert_eq!(documented, all);
    // AND each event's error codes are the rules' codes, unknown_item and store_unavailable
    let mut event_codes: Vec<&str> = sendtime_domain::ingest::EventError::CODES.to_vec();
    event_codes.extend(["unknown_item", "store_unavailable"]);
    event_codes.sort_unstable();
    let mut documented: Vec<&str> = doc["components"]["schemas"]["EventFailure"]["properties"]
        ["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    documented.sort_unstable();
    assert_eq!(documented, event_codes);
    // AND the 10 event types are documented, each with its properties
    for kind in sendtime_domain::ingest::EventKind::ALL {
        let types = &doc["components"]["schemas"]["EventType"]["enum"];
        assert!(
            types.as_array().unwrap().contains(&json!(kind.as_str())),
            "{}",
            kind.as_str()
        );
        let name: String = kind
            .as_str()
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect::<String>()
            + "Properties";
        assert!(doc["components"]["schemas"][&name].is_object(), "{name}");
    }
}

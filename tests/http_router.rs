//! The router as Braze sees it: JSON shapes per block, 400s for malformed ids with a stable
//! code, fallback content for unknown users, 404 for unknown blocks, and `limit` bounds.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use sendtime_api::{router, BlockService};
use sendtime_domain::RulesConfig;
use sendtime_store::{CacheConfig, CachedStore, MemoryStore};
use sendtime_tests::*;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

async fn app() -> sendtime_api::App {
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let store = CachedStore::new(Arc::new(memory), &CacheConfig::default());
    router(Arc::new(BlockService::new(
        Arc::new(store),
        RulesConfig::default(),
        clock(),
    )))
}

/// The app over the fixture (embedded store, no cache) with these credentials.
async fn app_with(credentials: sendtime_api::auth::Credentials) -> sendtime_api::App {
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let service = BlockService::new(Arc::new(memory), RulesConfig::default(), clock());
    sendtime_api::router_with(
        Arc::new(service),
        sendtime_api::RouterOptions {
            credentials,
            ..Default::default()
        },
    )
}

async fn call(method: Method, uri: &str) -> (StatusCode, Value) {
    let response = app()
        .await
        .oneshot(
            Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(content_type.as_deref(), Some("application/json"), "{uri}");
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {bytes:?}"));
    // Every answer these tests see is checked against the OpenAPI description.
    if method == Method::GET {
        sendtime_tests::openapi::check_response(uri, status.as_u16(), &json);
    }
    (status, json)
}

async fn get(uri: &str) -> (StatusCode, Value) {
    call(Method::GET, uri).await
}

fn assert_block_shape(v: &Value, user: &str, block: &str) {
    let obj = v
        .as_object()
        .expect("a top-level JSON object (Braze ignores arrays)");
    for key in [
        "user_id", "block", "eligible", "reason", "stage", "source", "degraded", "items",
    ] {
        assert!(obj.contains_key(key), "missing {key} in {v}");
    }
    assert_eq!(v["user_id"], user);
    assert_eq!(v["block"], block);
    assert_eq!(v["degraded"], false);
    for item in v["items"].as_array().unwrap() {
        for key in [
            "id",
            "title",
            "url",
            "image_url",
            "price",
            "display_price",
            "source",
        ] {
            assert!(item.get(key).is_some(), "item lacks {key}: {item}");
        }
    }
    if v["eligible"] == true {
        assert!(v["reason"].is_null() && v["stage"].is_string(), "{v}");
    } else {
        assert!(v["reason"].is_string() && v["stage"].is_null(), "{v}");
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn recommendations_block_shape() {
    let (status, v) = get("/v1/users/alice/recommendations").await;
    assert_eq!(status, StatusCode::OK);
    assert_block_shape(&v, "alice", "recommendations");
    assert_eq!(v["stage"], "personalized");
    assert_eq!(v["source"], "personalized");
    // s4 is out of stock, "gone" unknown; at most 2 shoes in the first 4 slots.
    assert_eq!(ids(&v), ["s1", "s2", "b1", "t1"]);
    assert_eq!(v["items"][0]["display_price"], "₩12,900");
    assert_eq!(v["items"][3]["source"], "popular");
}

#[tokio::test]
async fn cart_block_shapes_per_stage() {
    let (status, v) = get("/v1/users/alice/cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_block_shape(&v, "alice", "cart");
    assert_eq!(v["stage"], "social_proof");
    assert_eq!(v["days"], 3);
    assert_eq!(v["items"][0]["rating"], 4.5);
    assert_eq!(v["items"][0]["review_count"], 12);
    assert_eq!(v["items"][0]["review_snippet"], "배송이 빨라요");
    assert_eq!(v["items"][0]["quantity"], 2);

    let (_, v) = get("/v1/users/bob/cart").await;
    assert_block_shape(&v, "bob", "cart");
    assert_eq!(v["stage"], "urgency");
    assert_eq!(v["urgency"], "low_stock");
    assert_eq!(v["items"][0]["stock"], 3);
    assert_eq!(v["items"][0]["low_stock"], true);
    assert_eq!(v["items"][0]["discount_pct"], 15);
    assert_eq!(v["items"][0]["display_sale_price"], "₩10,965");

    let (_, v) = get("/v1/users/carol/cart").await;
    assert_eq!(v["stage"], "alternatives");
    assert_eq!(ids(&v), ["s2", "s3", "t1", "b1"]);

    let (status, v) = get("/v1/users/dave/cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_block_shape(&v, "dave", "cart");
    assert_eq!(
        (v["eligible"].clone(), v["reason"].clone()),
        (false.into(), "purchased".into())
    );
}

#[tokio::test]
async fn dormancy_block_shapes_per_stage() {
    let (_, v) = get("/v1/users/alice/dormancy").await;
    assert_block_shape(&v, "alice", "dormancy");
    assert_eq!(v["reason"], "active");

    let (_, v) = get("/v1/users/bob/dormancy").await;
    assert_block_shape(&v, "bob", "dormancy");
    assert_eq!(v["stage"], "personal_offer");
    assert_eq!(v["offer"]["category"], "bags");
    assert_eq!(v["offer"]["discount_pct"], 10);
    assert_eq!(v["items"][0]["id"], "b3");
    assert_eq!(v["items"][0]["display_sale_price"], "₩11,610");

    let (_, v) = get("/v1/users/carol/dormancy").await;
    assert_eq!(v["stage"], "last_interest");
    assert_eq!(ids(&v), ["s3", "b3", "s2", "s1"]);
    assert_eq!(v["items"][0]["source"], "history");

    let (_, v) = get("/v1/users/dave/dormancy").await;
    assert_eq!(v["stage"], "feedback");
    assert_eq!(v["items"], Value::Array(vec![]));
}

#[tokio::test]
async fn unknown_user_gets_fallback_content_not_an_error() {
    let (status, v) = get("/v1/users/never-seen-42/recommendations").await;
    assert_eq!(status, StatusCode::OK);
    assert_block_shape(&v, "never-seen-42", "recommendations");
    assert_eq!(v["eligible"], true);
    assert_eq!(v["stage"], "fallback");
    assert_eq!(v["source"], "popular");
    assert_eq!(ids(&v), ["t1", "s1", "b1", "b3"]);

    let (status, v) = get("/v1/users/never-seen-42/cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_block_shape(&v, "never-seen-42", "cart");
    assert_eq!(v["reason"], "cart_empty");

    let (status, v) = get("/v1/users/never-seen-42/dormancy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["reason"], "unknown_user");
}

#[tokio::test]
async fn malformed_user_ids_are_400_with_a_stable_code() {
    let long = "a".repeat(129);
    let bad = [
        format!("/v1/users/{long}/cart"),
        "/v1/users/a%00b/cart".into(),
        "/v1/users/a%0Ab/recommendations".into(),
        "/v1/users/%1F/dormancy".into(),
        "/v1/users/%7F/cart".into(),
        "/v1/users/../cart".into(),
        "/v1/users/./cart".into(),
        "/v1/users/%2e%2e/cart".into(),
        "/v1/users/..%2F..%2Fetc%2Fpasswd/cart".into(),
        "/v1/users/a%2Fb/cart".into(),
        "/v1/users/a%20b/cart".into(),
        "/v1/users/%FF%FE/cart".into(),
        "/v1/users/%EC%82%AC%EC%9A%A9%EC%9E%90/cart".into(),
        "/v1/users/%3Cscript%3E/cart".into(),
    ];
    for uri in bad {
        let (status, v) = get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "invalid_user_id", "{uri}");
        assert!(v["error"]["message"].is_string());
    }
    // the longest accepted id still works
    let (status, _) = get(&format!("/v1/users/{}/cart", "a".repeat(128))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_block_is_404_and_other_routes_too() {
    let (status, v) = get("/v1/users/alice/onboarding-v2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_block");
    let (status, v) = get("/v1/users/alice/Cart").await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, "unknown_block".into())
    );
    let (status, v) = get("/v2/whatever").await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let (status, v) = call(Method::POST, "/v1/users/alice/cart").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"]["code"], "method_not_allowed");
    // paths that are not exactly a user id and a block are no route, not a bad id
    for uri in [
        "/v1/users//cart",
        "/v1/users/alice/cart/",
        "/v1/users/a/b/cart",
        "/v1/users/../../etc/passwd",
        "/v1/users/alice",
    ] {
        let (status, v) = get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{uri}");
    }
    // a block segment that is not UTF-8 is an unknown block
    let (status, v) = get("/v1/users/alice/%FF").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_block"))
    );
    // an over-long URI is a JSON 414
    let (status, v) = get(&format!("/v1/users/alice/cart?x={}", "a".repeat(5_000))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert_eq!(v["error"]["code"], "uri_too_long");
    // unknown query parameters are ignored (cache busters); a bad `strict` is not
    let (status, v) = get("/v1/users/alice/cart?cb=123&utm_source=braze").await;
    assert_eq!(
        (status, v["eligible"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, v) = get("/v1/users/alice/cart?strict=maybe").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
}

#[tokio::test]
async fn limit_is_bounded_from_1_to_30() {
    let (_, v) = get("/v1/users/never-seen/recommendations").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "default limit");
    let (status, v) = get("/v1/users/never-seen/recommendations?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&v), ["t1"]);
    let (status, v) = get("/v1/users/alice/recommendations?limit=30").await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["items"].as_array().unwrap().len() <= 30);
    for bad in ["0", "31", "-1", "abc", "1.5", "", "99999999999999999999999"] {
        let (status, v) = get(&format!("/v1/users/alice/recommendations?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}");
        assert_eq!(v["error"]["code"], "invalid_limit");
    }
    // unrelated query parameters (cache busters, Braze's own) are ignored
    let (status, _) = get("/v1/users/alice/recommendations?utm_source=braze&limit=2").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn health_answers() {
    let (status, v) = get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn keys_rotate_signed_urls_verify_and_failures_are_json_401_and_403() {
    use sendtime_api::auth::{sha256, sign, Credentials};
    // GIVEN two active keys (a rotation in progress) and two signing secrets
    let app = app_with(Credentials::new(
        vec![sha256("old-key"), sha256("new-key")],
        vec![b"sign-old".to_vec(), b"sign-new".to_vec()],
    ))
    .await;
    let call = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let uri = req.uri().to_string();
            let response = app.oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            sendtime_tests::openapi::check_response(&uri, status.as_u16(), &body);
            (status, body)
        }
    };
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let with = |uri: &str, name: &str, value: &str| {
        Request::get(uri)
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    let uri = "/v1/users/alice/cart";
    // THEN no key, or a wrong one, is a JSON 401
    for request in [get(uri), with(uri, "x-sendtime-key", "nope")] {
        let (status, body) = call(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // AND either key works, as a header or a bearer token
    for key in ["old-key", "new-key"] {
        assert_eq!(
            call(with(uri, "x-sendtime-key", key)).await.0,
            StatusCode::OK
        );
        let bearer = format!("Bearer {key}");
        assert_eq!(
            call(with(uri, "authorization", &bearer)).await.0,
            StatusCode::OK
        );
    }
    // AND a signed URL works without a header, whatever cache buster is added
    let exp = (chrono::Utc::now().timestamp() + 3_600).to_string();
    let sig = sign(b"sign-new", &format!("alice|cart|{exp}|limit=2"));
    let signed = format!("{uri}?limit=2&exp={exp}&sig={sig}");
    let (status, body) = call(get(&signed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(get(&format!("{signed}&cb=12345"))).await.0,
        StatusCode::OK
    );
    let old = sign(b"sign-old", "alice|cart||");
    assert_eq!(
        call(get(&format!("{uri}?sig={old}"))).await.0,
        StatusCode::OK
    );
    // AND a signature for another user, limit or expiry, or under no secret of ours, is a 403
    for forged in [
        format!("/v1/users/bob/cart?limit=2&exp={exp}&sig={sig}"),
        format!("{uri}?limit=3&exp={exp}&sig={sig}"),
        format!("{uri}?limit=2&exp=9{exp}&sig={sig}"),
        format!(
            "{uri}?limit=2&exp={exp}&sig={}",
            sign(b"guess", &format!("alice|cart|{exp}|limit=2"))
        ),
    ] {
        let (status, body) = call(get(&forged)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{forged}");
        assert_eq!(body["error"]["code"], "invalid_signature");
    }
    // AND a malformed signature is refused as one; a malformed expiry is a bad request
    let (status, body) = call(get(&format!("{uri}?sig=not-hex"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("invalid_signature"))
    );
    let (status, body) = call(get(&format!("{uri}?exp=soon&sig={sig}"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    // AND an expired one says so
    let past = (chrono::Utc::now().timestamp() - 1).to_string();
    let stale = sign(b"sign-new", &format!("alice|cart|{past}|"));
    let (status, body) = call(get(&format!("{uri}?exp={past}&sig={stale}"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("signature_expired"))
    );
    // AND a key rotated out (no longer configured) is refused like any wrong key
    let (status, body) = call(with(uri, "x-sendtime-key", "retired-key")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // AND a signed URL that lost its signature is a 403
    let (status, body) = call(get(&format!("{uri}?limit=2&exp={exp}"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("invalid_signature"))
    );
    // AND /health stays public
    assert_eq!(call(get("/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_description_is_served_as_committed_and_is_openapi_3_1() {
    let response = app()
        .await
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        sendtime_tests::openapi::TEXT
    );
    let doc = &*sendtime_tests::openapi::DOC;
    assert_eq!(doc["openapi"], "3.1.0");
    // every error code the API can answer is documented, and nothing else
    let documented: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut codes = sendtime_api::error::ALL_CODES.to_vec();
    codes.sort_unstable();
    let mut documented_sorted = documented.clone();
    documented_sorted.sort_unstable();
    assert_eq!(codes, documented_sorted);
    // the check has teeth: a block missing its keys, or an undocumented status, fails it
    for (status, body) in [
        (200, serde_json::json!({"eligible": true})),
        (418, serde_json::json!({})),
    ] {
        let checked = std::panic::catch_unwind(|| {
            sendtime_tests::openapi::check_response("/v1/users/a/cart", status, &body)
        });
        assert!(checked.is_err(), "{status} {body} passed the check");
    }
    // both auth schemes (three ways to present them) are described
    for scheme in ["ApiKey", "BearerKey", "SignedUrl"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}

mod parsing_properties {
    use super::*;
    use proptest::prelude::*;

    /// Percent-encodes every byte outside unreserved characters (as a client would).
    fn encode(raw: &[u8]) -> String {
        raw.iter()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (*b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            // raw bytes, percent-encoded
            prop::collection::vec(any::<u8>(), 0..140).prop_map(|b| encode(&b)),
            // plausible ids and names, and their near misses
            "[A-Za-z0-9_.@+:-]{0,130}",
            Just("recommendations".to_owned()),
            Just("cart".to_owned()),
            Just("..".to_owned()),
            Just("%".to_owned()),
            Just("%zz".to_owned()),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (
                prop_oneof![
                    Just("limit".to_owned()),
                    Just("strict".to_owned()),
                    Just("sig".to_owned()),
                    Just("exp".to_owned()),
                    "[a-z]{1,8}",
                ],
                prop_oneof![segment(), "-?[0-9]{0,25}"],
            ),
            0..5,
        )
        .prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    proptest! {
        // A fixed seed: the test command is reproducible (run with another seed to explore).
        #![proptest_config(ProptestConfig {
            cases: 400,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_123),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever the path and query, the router answers: a documented status, never a
        /// 5xx, a JSON body matching the OpenAPI description; never a panic.
        #[test]
        fn any_request_gets_a_documented_json_answer(
            prefix in prop_oneof![Just("/v1/users/"), Just("/v1/users"), Just("/"), Just("/v1/")],
            user in segment(),
            block in segment(),
            extra in prop::option::of(segment()),
            query in query(),
        ) {
            let mut uri = format!("{prefix}{user}/{block}");
            if let Some(extra) = extra {
                uri.push('/');
                uri.push_str(&extra);
            }
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(&query);
            }
            // Only what an HTTP client can send: a URI that parses.
            prop_assume!(uri.parse::<axum::http::Uri>().is_ok());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (status, body) = runtime.block_on(get(&uri));
            prop_assert!(status.as_u16() < 500, "{} -> {} {}", uri, status, body);
        }
    }
}

#[tokio::test]
async fn the_documented_braze_liquid_signs_a_url_the_api_accepts() {
    use sendtime_api::auth::Credentials;
    // GIVEN a deployment accepting URLs signed with the template's secret
    let app = app_with(Credentials::new(vec![], vec![b"SIGNING_SECRET".to_vec()])).await;
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/braze/signed_url.liquid"
    ))
    .unwrap();
    for user in ["alice", "user+tag@example.com"] {
        // WHEN Braze renders the documented Liquid for a user
        let url = sendtime_tests::braze_liquid::render(&template, &[("user_id", user)]);
        let url = url.trim();
        eprintln!("rendered for {user}: {url}");
        let path = url
            .strip_prefix("https://sendtime.example.com")
            .unwrap_or_else(|| panic!("rendered: {url:?}"));
        // THEN the API answers the fetch, no header needed
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{user}: {path}: {body}");
        assert_eq!(body["user_id"], user);
        // AND the same URL for another user is refused
        let other = path.replacen(
            &format!("/users/{}/", path.split('/').nth(3).unwrap()),
            "/users/mallory/",
            1,
        );
        let response = app
            .clone()
            .oneshot(Request::get(other.as_str()).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{other}");
    }
    // AND without any credential, where only signed URLs are configured: a 403
    let response = app
        .oneshot(
            Request::get("/v1/users/alice/cart")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[test]
fn the_readmes_error_codes_are_the_apis_and_the_openapi_descriptions() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let doc = &*sendtime_tests::openapi::DOC;
    let responses = &doc["paths"]["/v1/users/{user_id}/{block}"]["get"]["responses"];
    let mut listed: Vec<String> = Vec::new();
    for line in readme.lines() {
        // | `code` | status | when |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let (code, status) = (cells[1].trim_matches('`'), cells[2]);
        if !sendtime_api::error::ALL_CODES.contains(&code) || status.parse::<u16>().is_err() {
            continue;
        }
        let description = responses[status]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains(code),
            "README says {code} is a {status}; docs/openapi.json's {status} does not list it"
        );
        listed.push(code.to_owned());
    }
    listed.sort();
    let mut all: Vec<String> = sendtime_api::error::ALL_CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    all.sort();
    assert_eq!(listed, all, "the README's error-code table");
}

/// Raw answer: status, headers, body bytes.
async fn raw(uri: &str, accept_gzip: bool) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().uri(uri);
    if accept_gzip {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    let response = app()
        .await
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn formats_channels_and_locales_are_checked_and_rendered() {
    // GIVEN unknown values or an impossible combination THEN 400 invalid_format
    for query in ["format=xml", "channel=fax", "locale=ja", "locale="] {
        let (status, body) = get(&format!("/v1/users/alice/cart?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_format")),
            "{query}: {body}"
        );
    }
    // WHEN a channel is named in JSON THEN the block gains its message (schema-checked by get)
    let (status, sms) = get("/v1/users/alice/recommendations?channel=sms&locale=en").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sms["message"]["channel"], "sms");
    assert_eq!(sms["message"]["locale"], "en");
    let (_, plain) = get("/v1/users/alice/recommendations").await;
    assert_eq!(
        plain["items"], sms["items"],
        "the block itself is unchanged"
    );
    // html: an escaped fragment, its content type and eligibility
    let (status, headers, html) = raw("/v1/users/alice/recommendations?format=html", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers["x-sendtime-eligible"], "true");
    let html = String::from_utf8(html).unwrap();
    assert!(html.starts_with("<table role=\"presentation\""), "{html}");
    // not eligible: an empty body the template aborts on
    let (status, headers, empty) = raw("/v1/users/nobody/cart?format=html", false).await;
    assert_eq!(
        (status, headers["x-sendtime-eligible"].to_str().unwrap()),
        (StatusCode::OK, "false")
    );
    assert!(empty.is_empty());
    let (_, headers, text) = raw("/v1/users/alice/cart?format=text&channel=kakao", false).await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert!(!text.is_empty());
}

#[tokio::test]
async fn large_bodies_are_gzipped_for_callers_that_accept_it() {
    use std::io::Read;
    let uri = "/v1/users/alice/recommendations?limit=8";
    let (_, plain_headers, plain) = raw(uri, false).await;
    assert!(plain.len() >= 1024, "{} bytes", plain.len());
    assert!(plain_headers.get(header::CONTENT_ENCODING).is_none());
    let (status, headers, gzipped) = raw(uri, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    let a: Value = serde_json::from_slice(&unzipped).unwrap();
    let b: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(a, b);
    assert!(
        gzipped.len() < plain.len() / 2,
        "{} of {} bytes",
        gzipped.len(),
        plain.len()
    );
    // small bodies go as they are
    let (_, headers, _) = raw("/v1/users/nobody/cart", true).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
}

/// The fixture and its send scores (alice 0.82, bob 0.07, nobody else), with an answer
/// cache: the service (to ask what its cache did) and the app over it.
async fn scored_app() -> (Arc<BlockService>, sendtime_api::App) {
    use sendtime_store::RecordsPut;
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let report = memory.put_records(&fixture_scores()).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let cache = CacheConfig::default();
    let store = CachedStore::new(Arc::new(memory), &cache);
    let service = BlockService::new(Arc::new(store), RulesConfig::default(), clock())
        .with_answer_cache(&cache);
    let service = Arc::new(service);
    (service.clone(), router(service))
}

/// `uri` asked of `app`: status, headers and body.
async fn raw_from(
    app: &sendtime_api::App,
    uri: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

/// `uri` asked of `app` as JSON, checked against the OpenAPI description.
async fn json_from(app: &sendtime_api::App, uri: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = raw_from(app, uri).await;
    let json: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {bytes:?}"));
    sendtime_tests::openapi::check_response(uri, status.as_u16(), &json);
    (status, json)
}

#[tokio::test]
async fn every_block_carries_the_send_score_and_min_score_drops_only_low_scorers() {
    use sendtime_domain::BlockKind;
    // GIVEN alice scored 0.82, bob 0.07, and carol, erin and an unknown user without a score
    let (_, app) = scored_app().await;
    for kind in BlockKind::ALL {
        // WHEN alice is asked for without min_score THEN her score and when it was computed
        let (status, alice) = json_from(&app, &format!("/v1/users/alice/{kind}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(alice["send_score"], 0.82, "{kind}: {alice}");
        assert_eq!(alice["send_score_at"], scored_at_text(), "{kind}");
        // AND with a min_score she reaches (equal included): the very same answer
        for min in ["0", "0.2", "0.82"] {
            let (_, v) = json_from(&app, &format!("/v1/users/alice/{kind}?min_score={min}")).await;
            assert_eq!(v, alice, "{kind} min_score={min}");
        }
        // WHEN bob (0.07) is asked for with min_score=0.2 THEN not eligible, low_engagement,
        // his score still given, his locale kept, nothing to show
        let (_, bob) = json_from(&app, &format!("/v1/users/bob/{kind}")).await;
        assert_eq!(bob["send_score"], 0.07, "{kind}");
        let (status, low) = json_from(&app, &format!("/v1/users/bob/{kind}?min_score=0.2")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(low["eligible"], false, "{kind}: {low}");
        assert_eq!(low["reason"], "low_engagement", "{kind}: {low}");
        assert_eq!(low["stage"], Value::Null, "{kind}");
        assert_eq!(low["items"], Value::Array(vec![]), "{kind}");
        assert_eq!(low["degraded"], false, "{kind}");
        assert_eq!(low["send_score"], 0.07, "{kind}");
        assert_eq!(low["send_score_at"], scored_at_text(), "{kind}");
        assert_eq!(low["locale"], bob["locale"], "{kind}");
        assert_ne!(low["rec_id"], bob["rec_id"], "{kind}");
        // AND a threshold under his score changes nothing
        let (_, v) = json_from(&app, &format!("/v1/users/bob/{kind}?min_score=0.05")).await;
        assert_eq!(v, bob, "{kind}");
        // WHEN users without a score are asked for with any min_score THEN exactly the
        // answer they get without one, with send_score and send_score_at null
        for user in ["carol", "erin", "never-seen-7"] {
            let (_, plain) = json_from(&app, &format!("/v1/users/{user}/{kind}")).await;
            assert_eq!(plain["send_score"], Value::Null, "{user}/{kind}");
            assert_eq!(plain["send_score_at"], Value::Null, "{user}/{kind}");
            for min in ["0", "0.5", "1"] {
                let uri = format!("/v1/users/{user}/{kind}?min_score={min}");
                let (status, v) = json_from(&app, &uri).await;
                assert_eq!((status, &v), (StatusCode::OK, &plain), "{uri}");
            }
        }
    }
    // AND rendered, a low scorer's block is an empty body marked not eligible (the template
    // aborts), and a channel's JSON has no message
    let (status, headers, body) = raw_from(
        &app,
        "/v1/users/bob/recommendations?min_score=0.2&format=html",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-sendtime-eligible"], "false");
    assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    let (_, headers, body) = raw_from(
        &app,
        "/v1/users/alice/recommendations?min_score=0.2&format=html",
    )
    .await;
    assert_eq!(headers["x-sendtime-eligible"], "true");
    assert!(!body.is_empty());
    let (_, push) = json_from(&app, "/v1/users/bob/cart?min_score=0.2&channel=push").await;
    assert_eq!(
        (push["reason"].as_str(), &push["message"]),
        (Some("low_engagement"), &Value::Null)
    );
}

#[tokio::test]
async fn min_score_must_be_a_number_from_0_to_1() {
    let (_, app) = scored_app().await;
    // GIVEN a min_score that is not a number from 0 to 1 THEN 400 invalid_min_score
    for bad in [
        "", "abc", "NaN", "inf", "-inf", "-0.1", "1.01", "2", "1e3", "0,5", "0.5x",
    ] {
        let uri = format!("/v1/users/bob/cart?min_score={bad}");
        let (status, v) = json_from(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "invalid_min_score", "{uri}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_score"));
    }
    // AND a repeated one is a malformed query, like any repeated parameter
    let (status, v) = json_from(&app, "/v1/users/bob/cart?min_score=0.1&min_score=0.2").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    // AND every number from 0 to 1, however written, is accepted
    for good in ["0", "1", "0.5", "5e-1", ".5", "1.0", "-0"] {
        let uri = format!("/v1/users/bob/cart?min_score={good}");
        assert_eq!(json_from(&app, &uri).await.0, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn the_answer_cache_keeps_answers_for_each_min_score_apart() {
    use sendtime_api::{AnswerCacheUse, AnswerOptions};
    use sendtime_domain::BlockKind;
    // GIVEN bob (scored 0.07, cart in urgency) served with an answer cache
    let (service, app) = scored_app().await;
    // WHEN he is asked for with and without min_score, in turns, twice
    for round in 0..2 {
        let (_, plain) = json_from(&app, "/v1/users/bob/cart").await;
        let (_, gated) = json_from(&app, "/v1/users/bob/cart?min_score=0.5").await;
        // THEN each request gets its own answer every time
        assert_eq!(plain["stage"], "urgency", "round {round}");
        assert_eq!(gated["reason"], "low_engagement", "round {round}");
    }
    // AND both answers were cached, each under its own min_score
    let bob = uid("bob");
    let plain = service.answer(BlockKind::Cart, &bob, 4).await;
    assert_eq!(plain.cache, AnswerCacheUse::Hit);
    assert_eq!(plain.value()["stage"], "urgency");
    let options = AnswerOptions {
        limit: 4,
        min_score: Some("0.5".parse().unwrap()),
    };
    let gated = service.answer_with(BlockKind::Cart, &bob, options).await;
    assert_eq!(gated.cache, AnswerCacheUse::Hit);
    assert_eq!(gated.value()["reason"], "low_engagement");
    // AND another threshold is another entry, assembled afresh
    let options = AnswerOptions {
        limit: 4,
        min_score: Some("0.05".parse().unwrap()),
    };
    let passed = service.answer_with(BlockKind::Cart, &bob, options).await;
    assert_eq!(passed.cache, AnswerCacheUse::Miss);
    assert_eq!(passed.json, plain.json);
}

#[tokio::test]
async fn min_score_gates_degraded_answers_from_held_records_too() {
    use sendtime_store::RecordsPut;
    use std::sync::atomic::Ordering;
    // GIVEN the scored fixture behind a user cache of 50 ms
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    memory.put_records(&fixture_scores()).await.unwrap();
    let store = Arc::new(CountingStore::new(memory, std::time::Duration::ZERO));
    let cache = CacheConfig {
        user_ttl: std::time::Duration::from_millis(50),
        ..CacheConfig::default()
    };
    let cached = CachedStore::new(store.clone(), &cache);
    let app = router(Arc::new(BlockService::new(
        Arc::new(cached),
        RulesConfig::default(),
        clock(),
    )));
    // AND bob's and carol's records read once while all is well
    let (_, bob) = json_from(&app, "/v1/users/bob/cart").await;
    let (_, carol) = json_from(&app, "/v1/users/carol/cart").await;
    // WHEN their cache entries expire and every user read fails
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    store.fail_user_loads.store(u64::MAX, Ordering::SeqCst);
    // THEN bob below min_score is not eligible from his held records, degraded
    let (status, low) = json_from(&app, "/v1/users/bob/cart?min_score=0.5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(low["degraded"], true, "{low}");
    assert_eq!(low["degraded_reason"], "unavailable", "{low}");
    assert_eq!(low["reason"], "low_engagement", "{low}");
    assert_eq!(low["send_score"], 0.07);
    // AND without min_score he gets his held cart stage, score included
    let (_, held) = json_from(&app, "/v1/users/bob/cart").await;
    assert_eq!(
        (&held["degraded"], &held["stage"], &held["send_score"]),
        (&Value::Bool(true), &bob["stage"], &bob["send_score"])
    );
    // AND carol, without a score, gets with min_score what she gets without it
    let (_, with_min) = json_from(&app, "/v1/users/carol/cart?min_score=0.5").await;
    let (_, without) = json_from(&app, "/v1/users/carol/cart").await;
    assert_eq!(with_min, without);
    assert_eq!(
        (&with_min["degraded"], &with_min["stage"]),
        (&Value::Bool(true), &carol["stage"])
    );
}

#[tokio::test]
async fn a_signed_url_covers_min_score() {
    use sendtime_api::auth::{sign, Credentials};
    // GIVEN URL signing only
    let app = app_with(Credentials::new(vec![], vec![b"sign-key".to_vec()])).await;
    let sig = sign(b"sign-key", "bob|cart||limit=2&min_score=0.5");
    // WHEN the signed URL is called as signed THEN it is answered
    let signed = format!("/v1/users/bob/cart?limit=2&min_score=0.5&sig={sig}");
    assert_eq!(json_from(&app, &signed).await.0, StatusCode::OK);
    // AND another min_score, or none, is not what was signed
    for forged in [
        format!("/v1/users/bob/cart?limit=2&min_score=0&sig={sig}"),
        format!("/v1/users/bob/cart?limit=2&sig={sig}"),
    ] {
        let (status, v) = json_from(&app, &forged).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("invalid_signature")),
            "{forged}"
        );
    }
}

/// [`scored_at`] as answers write it (RFC 3339, whole seconds, `Z`).
fn scored_at_text() -> String {
    scored_at().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `POST /v1/events` through the router.
#[path = "http_router/events_route.rs"]
mod events_route;

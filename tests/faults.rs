//! Faults between the API and DynamoDB (Local): added latency past the deadline, connection
//! resets, a black hole and a slow trickle, through a TCP fault proxy; and throttling from
//! the SDK. Every block must answer every request within the deadline plus 50 ms, `200`
//! and `degraded` (or `503` with `Retry-After` in strict mode), never a `429`; and once the
//! fault clears, fresh again within the cache TTL.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sendtime_api::{router, App, BlockService};
use sendtime_domain::{BlockKind, RulesConfig};
use sendtime_dynamo::DynamoConfig;
use sendtime_store::{CacheConfig, CachedStore};
use sendtime_tests::proxy::{Fault, FaultProxy};
use sendtime_tests::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The request deadline under test.
const DEADLINE: Duration = Duration::from_millis(400);
/// What the must-show allows past it.
const SLACK: Duration = Duration::from_millis(50);
/// Every cache's TTL: past it, requests go to the store again.
const TTL: Duration = Duration::from_secs(1);

/// Users whose records are read (and so held) before the faults: one per stage family.
const KNOWN: [&str; 6] = ["alice", "bob", "carol", "dave", "fran", "gus"];
/// A user never read before the faults: nothing is held for them.
const UNSEEN: &str = "zed-never-read";

async fn call(app: &App, uri: &str) -> (StatusCode, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}"));
    sendtime_tests::openapi::check_response(uri, status.as_u16(), &json);
    (status, retry_after, json, elapsed)
}

fn uri(user: &str, kind: BlockKind) -> String {
    format!("/v1/users/{user}/{kind}")
}

/// The app over DynamoDB Local through `proxy`, with serving timeouts under the deadline.
async fn app_through(proxy: &FaultProxy, table: &str) -> App {
    let mut config = DynamoConfig::new(table);
    config.endpoint = Some(proxy.url.clone());
    config.region = Some("us-east-1".into());
    config.operation_timeout = Duration::from_millis(300);
    config.attempt_timeout = Duration::from_millis(140);
    config.connect_timeout = Duration::from_millis(100);
    config.max_attempts = 2;
    let dynamo = sendtime_dynamo::connect(&config).await.with_clock(clock());
    let cache = CacheConfig {
        user_ttl: TTL,
        item_ttl: TTL,
        popular_ttl: TTL,
        answer_ttl: TTL,
        negative_ttl: TTL,
        ..CacheConfig::default()
    };
    let cached = Arc::new(CachedStore::new(Arc::new(dynamo), &cache));
    let service = BlockService::new(cached, RulesConfig::default(), clock())
        .with_answer_cache(&cache)
        .with_deadline(DEADLINE);
    router(Arc::new(service))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_degrades_within_the_deadline_under_every_network_fault_and_heals() {
    // GIVEN the fixture in DynamoDB Local, reached through a fault proxy
    let store = fresh_dynamo_store("faults").await;
    load_fixture(&store).await;
    let proxy = FaultProxy::start(&dynamodb_endpoint()).await;
    let app = app_through(&proxy, store.table()).await;
    // AND every block read once for the known users while all is well
    let mut healthy = Vec::new();
    for user in KNOWN {
        for kind in BlockKind::ALL {
            let (status, _, body, _) = call(&app, &uri(user, kind)).await;
            assert_eq!(status, 200, "{user}/{kind}: {body}");
            assert_eq!(body["degraded"], false, "{user}/{kind}: {body}");
            healthy.push((user, kind, body));
        }
    }

    for fault in [
        Fault::Latency(Duration::from_millis(700)),
        Fault::Reset,
        Fault::BlackHole,
        Fault::Trickle(Duration::from_millis(40)),
    ] {
        // WHEN the network to the store fails this way, and every cache entry has expired
        proxy.set(fault);
        tokio::time::sleep(TTL + Duration::from_millis(100)).await;
        let mut slowest = Duration::ZERO;
        // THEN every block answers every known user within the deadline, from the records
        // last read: the same eligibility and stage, marked degraded
        let answers = futures::future::join_all(healthy.iter().map(|(user, kind, _)| {
            let (app, uri) = (&app, uri(user, *kind));
            async move { call(app, &uri).await }
        }))
        .await;
        for ((user, kind, before), (status, _, body, elapsed)) in healthy.iter().zip(answers) {
            assert_eq!(status, 200, "{fault:?} {user}/{kind}: {body}");
            assert!(
                elapsed <= DEADLINE + SLACK,
                "{fault:?} {user}/{kind}: {elapsed:?}"
            );
            assert_eq!(body["degraded"], true, "{fault:?} {user}/{kind}: {body}");
            assert!(
                ["deadline", "timeout", "unavailable"]
                    .contains(&body["degraded_reason"].as_str().unwrap_or_default()),
                "{fault:?} {user}/{kind}: {body}"
            );
            for field in ["eligible", "reason", "stage", "source"] {
                assert_eq!(
                    body[field], before[field],
                    "{fault:?} {user}/{kind}: {field}"
                );
            }
            slowest = slowest.max(elapsed);
        }
        // AND a user nothing is held for gets the block's fallback: popular items held for
        // recommendations, `unavailable` for the others
        for kind in BlockKind::ALL {
            let (status, _, body, elapsed) = call(&app, &uri(UNSEEN, kind)).await;
            assert_eq!(status, 200, "{fault:?} {kind}: {body}");
            assert!(elapsed <= DEADLINE + SLACK, "{fault:?} {kind}: {elapsed:?}");
            assert_eq!(body["degraded"], true, "{fault:?} {kind}: {body}");
            if kind == BlockKind::Recommendations {
                assert_eq!(body["eligible"], true, "{fault:?}: {body}");
                assert_eq!(body["stage"], "fallback", "{fault:?}: {body}");
                assert!(!body["items"].as_array().unwrap().is_empty(), "{body}");
            } else {
                assert_eq!(body["eligible"], false, "{fault:?} {kind}: {body}");
                assert_eq!(body["reason"], "unavailable", "{fault:?} {kind}: {body}");
            }
            slowest = slowest.max(elapsed);
        }
        // AND strict mode answers 503 with Retry-After instead, as fast
        for kind in BlockKind::ALL {
            let (status, retry_after, body, elapsed) =
                call(&app, &format!("{}?strict=1", uri("alice", kind))).await;
            assert_eq!(status, 503, "{fault:?} strict {kind}: {body}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert!(
                ["deadline_exceeded", "store_unavailable"]
                    .contains(&body["error"]["code"].as_str().unwrap_or_default()),
                "{body}"
            );
            assert!(elapsed <= DEADLINE + SLACK, "{fault:?} strict: {elapsed:?}");
        }
        eprintln!("{fault:?}: every answer degraded, slowest {slowest:?}");

        // WHEN the fault clears
        proxy.set(Fault::None);
        let cleared = Instant::now();
        // THEN answers are fresh again within the cache TTL
        loop {
            let (status, _, body, _) = call(&app, &uri("alice", BlockKind::Cart)).await;
            assert_eq!(status, 200);
            if body["degraded"] == false {
                break;
            }
            assert!(
                cleared.elapsed() < TTL + DEADLINE,
                "{fault:?}: still degraded {:?} after the fault cleared: {body}",
                cleared.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{fault:?}: fresh again {:?} after it cleared",
            cleared.elapsed()
        );
        for (user, kind, before) in &healthy {
            let (status, _, body, _) = call(&app, &uri(user, *kind)).await;
            assert_eq!(status, 200);
            assert_eq!(
                body["degraded"], false,
                "{fault:?} healed {user}/{kind}: {body}"
            );
            assert_eq!(body["stage"], before["stage"]);
        }
    }
}

/// A DynamoDB error body as the service sends it (awsJson 1.0), with HTTP 400.
fn dynamodb_error(code: &str) -> Option<String> {
    Some(format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"Rate of requests exceeds the allowed throughput."}}"#
    ))
}

/// The app over a DynamoDB client whose every call is answered by `rules` (no network),
/// with the serving retry and timeout policy of the real client.
fn app_over_mock(rules: &[&aws_smithy_mocks::Rule]) -> App {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let mut serving = DynamoConfig::new("mocked");
    serving.operation_timeout = Duration::from_millis(300);
    serving.attempt_timeout = Duration::from_millis(140);
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(serving.retries())
        .timeout_config(serving.timeouts())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let dynamo = sendtime_dynamo::DynamoStore::new(client, "mocked", serving.operation_timeout)
        .with_clock(clock());
    let cached = Arc::new(CachedStore::new(Arc::new(dynamo), &CacheConfig::default()));
    let service = BlockService::new(cached, RulesConfig::default(), clock())
        .with_answer_cache(&CacheConfig::default())
        .with_deadline(DEADLINE);
    router(Arc::new(service))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_sdk_throttling_degrades_every_block_and_a_short_burst_is_retried_away() {
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::mock;
    // GIVEN DynamoDB throttling every read: ProvisionedThroughputExceededException for
    // queries and batch reads, ThrottlingException for single reads
    let query = mock!(Client::query)
        .sequence()
        .http_status(
            400,
            dynamodb_error("ProvisionedThroughputExceededException"),
        )
        .repeatedly()
        .build();
    let get = mock!(Client::get_item)
        .sequence()
        .http_status(400, dynamodb_error("ThrottlingException"))
        .repeatedly()
        .build();
    let batch = mock!(Client::batch_get_item)
        .sequence()
        .http_status(
            400,
            dynamodb_error("ProvisionedThroughputExceededException"),
        )
        .repeatedly()
        .build();
    let app = app_over_mock(&[&query, &get, &batch]);
    // THEN every block answers 200, degraded for `throttled`, within the deadline; never 429
    for user in ["alice", "u000001"] {
        for kind in BlockKind::ALL {
            let (status, _, body, elapsed) = call(&app, &uri(user, kind)).await;
            assert_eq!(status, 200, "{kind}: {body}");
            assert!(elapsed <= DEADLINE + SLACK, "{kind}: {elapsed:?}");
            assert_eq!(body["degraded"], true, "{kind}: {body}");
            assert_eq!(body["degraded_reason"], "throttled", "{kind}: {body}");
            let (status, retry_after, body, elapsed) =
                call(&app, &format!("{}?strict=1", uri(user, kind))).await;
            assert_eq!(status, 503, "{kind}: {body}");
            assert_eq!(body["error"]["code"], "store_unavailable");
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert!(elapsed <= DEADLINE + SLACK, "{kind}: {elapsed:?}");
        }
    }
    // AND the SDK did retry (standard policy): more calls than requests reached the store
    assert!(query.num_calls() >= 2 * 2, "queries: {}", query.num_calls());

    // GIVEN instead a short burst: two throttled queries and one throttled single read,
    // then answers (an empty table)
    let query = mock!(Client::query)
        .sequence()
        .http_status(
            400,
            dynamodb_error("ProvisionedThroughputExceededException"),
        )
        .times(2)
        .output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build())
        .repeatedly()
        .build();
    let get = mock!(Client::get_item)
        .sequence()
        .http_status(400, dynamodb_error("ThrottlingException"))
        .output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build())
        .repeatedly()
        .build();
    let batch = mock!(Client::batch_get_item)
        .sequence()
        .output(|| {
            aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
        })
        .repeatedly()
        .build();
    let app = app_over_mock(&[&query, &get, &batch]);
    // THEN the SDK's retries absorb it within the deadline: fresh answers, not degraded
    for kind in BlockKind::ALL {
        let (status, _, body, elapsed) = call(&app, &uri("alice", kind)).await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert!(elapsed <= DEADLINE + SLACK, "{kind}: {elapsed:?}");
        assert_eq!(body["degraded"], false, "{kind}: {body}");
    }
    assert_eq!(query.num_calls(), 3, "two throttled, one answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_load_under_throttling_writes_every_row_and_reports_its_retries() {
    use sendtime_tests::throttle::ThrottlingProxy;
    use std::process::Command;
    use std::sync::atomic::Ordering;
    // GIVEN a generated dataset
    let generated = Command::new(sendtime_bin())
        .args([
            "data", "generate", "--users", "300", "--items", "150", "--seed", "11",
        ])
        // Dated today: lists dated a fixed day would be past their TTL a week later, and
        // DynamoDB Local deletes such items in the background (the count below would drop).
        .args([
            "--as-of",
            &format!("{}T00:00:00Z", chrono::Utc::now().date_naive()),
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let lines = generated
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let file = std::env::temp_dir().join(format!("throttled-load-{}.jsonl", std::process::id()));
    std::fs::write(&file, &generated.stdout).unwrap();
    // AND DynamoDB throttling every third batch write
    let proxy = ThrottlingProxy::start(&dynamodb_endpoint(), 3).await;
    let table = unique_table("throttled-load");
    // WHEN it is loaded through the throttling
    let loaded = tokio::task::spawn_blocking({
        let (url, table, file) = (proxy.url.clone(), table.clone(), file.clone());
        move || {
            Command::new(sendtime_bin())
                .args([
                    "data",
                    "load",
                    "--table",
                    &table,
                    "--dynamodb-endpoint",
                    &url,
                ])
                .args(["--region", "us-east-1", "--file", file.to_str().unwrap()])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&loaded.stderr);
    std::fs::remove_file(&file).ok();
    // THEN it succeeds, says what it retried, and verified every key
    assert!(loaded.status.success(), "{stderr}");
    let throttled = proxy.throttled.load(Ordering::SeqCst);
    assert!(throttled > 0);
    assert!(
        stderr.contains(&format!("DynamoDB throttled {throttled} batch(es)")),
        "{stderr}"
    );
    assert!(
        stderr.contains("retried ") && stderr.contains("verified: every written key reads back"),
        "{stderr}"
    );
    // AND DynamoDB Local holds exactly one item per line
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(dynamodb_endpoint())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "l", "l", None, None, "l",
        ))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let mut count = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        count += page.count() as usize;
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    assert_eq!(count, lines, "{stderr}");
    eprintln!("{lines} rows loaded through {throttled} throttled batch writes: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_are_shed_to_the_fallback_at_once() {
    use sendtime_store::MemoryStore;
    // GIVEN a store that takes 400 ms per read and room for one request assembling at once
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let slow = Arc::new(CountingStore::new(memory, Duration::from_millis(400)));
    let service = BlockService::new(slow, RulesConfig::default(), clock())
        .with_deadline(Duration::from_secs(2))
        .with_max_in_flight(1);
    let app = router(Arc::new(service));
    // WHEN one request is assembling
    let first = tokio::spawn({
        let app = app.clone();
        async move { call(&app, "/v1/users/alice/cart").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // THEN the next ones are answered at once from the fallback, marked overloaded…
    let (status, _, body, elapsed) = call(&app, "/v1/users/bob/cart").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded_reason"], "overloaded", "{body}");
    assert_eq!(body["reason"], "unavailable", "{body}");
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");
    // …or, in strict mode, 503 overloaded with Retry-After
    let (status, retry_after, body, _) = call(&app, "/v1/users/bob/cart?strict=1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded"))
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    // AND the request in flight completes with fresh data
    let (status, _, body, _) = first.await.unwrap();
    assert_eq!(
        (status, body["degraded"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    // AND once it is done, the next request assembles again
    let (_, _, body, _) = call(&app, "/v1/users/bob/cart").await;
    assert_eq!(body["degraded"], false);
}

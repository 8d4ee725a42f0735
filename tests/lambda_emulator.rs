//! The real function binary under cargo-lambda's local Lambda runtime emulator
//! (`cargo lambda watch --only-lambda-apis`), against DynamoDB Local loaded with a generated
//! dataset. Each function answers what `sendtime serve` answers over the same table, bad ids
//! get 400, unknown users fallback content, and with DynamoDB unreachable a function still
//! answers inside its request budget. The ingest function (the same binary with
//! `SENDTIME_ROLE=ingest`) applies an SQS event invoked through the emulator's Invoke API and
//! answers `POST /v1/events` as the router does in-process, on DynamoDB Local.

use sendtime_tests::*;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every block's function: the one `blocks` binary told its block by `SENDTIME_BLOCK`.
fn functions() -> Vec<&'static str> {
    sendtime_domain::BlockKind::ALL.map(|k| k.as_str()).to_vec()
}
const KEY: &str = "e2e-key";

/// Kills the child process when dropped, so a failing test leaves nothing running.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The functions' one binary.
fn function_bin() -> PathBuf {
    let bin = sendtime_bin().with_file_name("blocks");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

fn wait_for_port(port: u16, within: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listens on {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cargo lambda watch --only-lambda-apis` on a free port: the emulator without a build.
fn start_emulator() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("cargo")
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo lambda is not installed: scripts/install-tools.sh installs it into .tools/venv (add .tools/venv/bin to PATH)");
    wait_for_port(port, Duration::from_secs(60));
    (Killed(child), port)
}

fn key_hash() -> String {
    sendtime_api::auth::sha256(KEY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One block's function: the `blocks` binary (told its block by `SENDTIME_BLOCK`) behind an
/// emulator of its own. The emulator only knows the project's binary names, so each function
/// gets one, as each Lambda function has its own runtime API.
struct Function {
    /// `http://127.0.0.1:<port>/lambda-url/blocks`: append the request path.
    base: String,
    _process: Killed,
    _emulator: Killed,
}

/// Starts `block`'s function as Lambda would start `bootstrap`.
fn start_function(block: &str, table: &str, endpoint: &str, budget_ms: u64) -> Function {
    start_function_with(block, table, endpoint, budget_ms, &[])
}

/// [`start_function`] with extra environment variables.
fn start_function_with(
    block: &str,
    table: &str,
    endpoint: &str,
    budget_ms: u64,
    env: &[(&str, &str)],
) -> Function {
    let (emulator, port) = start_emulator();
    let child = Command::new(function_bin())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/blocks"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "blocks")
        .env("SENDTIME_BLOCK", block)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("SENDTIME_TABLE", table)
        .env("SENDTIME_DYNAMODB_ENDPOINT", endpoint)
        .env("SENDTIME_REQUEST_BUDGET_MS", budget_ms.to_string())
        .env("SENDTIME_API_KEY_SHA256", key_hash())
        .env("SENDTIME_LOG", "warn")
        .envs(env.iter().copied())
        .env_remove("AWS_ACCESS_KEY_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start function binary");
    Function {
        base: format!("http://127.0.0.1:{port}/lambda-url/blocks"),
        _process: Killed(child),
        _emulator: emulator,
    }
}

fn load_dataset(table: &str, as_of: &str) {
    let mut generate = Command::new(sendtime_bin())
        .args([
            "data", "generate", "--users", "120", "--items", "80", "--seed", "11", "--as-of", as_of,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Command::new(sendtime_bin())
        .args([
            "data",
            "load",
            "--table",
            table,
            "--dynamodb-endpoint",
            &dynamodb_endpoint(),
        ])
        .stdin(Stdio::from(generate.stdout.take().unwrap()))
        .output()
        .unwrap();
    assert!(generate.wait().unwrap().success());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn get(client: &reqwest::Client, url: &str, key: bool) -> (u16, serde_json::Value) {
    let mut req = client.get(url).timeout(Duration::from_secs(30));
    if key {
        req = req.header("x-sendtime-key", KEY);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
    (status, body)
}

/// Status, (content type, `x-sendtime-eligible`), body as text.
async fn get_text(
    client: &reqwest::Client,
    url: &str,
    key: bool,
) -> (u16, (String, String), String) {
    let mut req = client.get(url).timeout(Duration::from_secs(30));
    if key {
        req = req.header("x-sendtime-key", KEY);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let headers = (header("content-type"), header("x-sendtime-eligible"));
    let status = resp.status().as_u16();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_under_the_emulator_answer_like_the_router() {
    // GIVEN DynamoDB Local with a generated dataset, as of now (the functions use the real clock)
    let as_of = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let table = unique_table("emulator");
    load_dataset(&table, &as_of);
    let functions: Vec<(&str, Function)> = functions()
        .into_iter()
        .map(|f| (f, start_function(f, &table, &dynamodb_endpoint(), 1_000)))
        .collect();
    // AND the local server over the same table, the reference the router tests pin down
    let serve = ServeProcess::start(&[
        "--table",
        &table,
        "--dynamodb-endpoint",
        &dynamodb_endpoint(),
        "--now",
        &as_of,
    ])
    .await;
    let client = reqwest::Client::new();

    // WHEN each function is called through the emulator THEN it answers what serve answers
    for (function, lambda) in &functions {
        let base = &lambda.base;
        let mut paths: Vec<String> = (1..=40)
            .map(|n| format!("/v1/users/u{n:06}/{function}"))
            .collect();
        paths.push(format!("/v1/users/u000005/{function}?limit=2"));
        paths.push(format!("/v1/users/nobody-known/{function}"));
        for path in paths {
            let (status, via_lambda) = get(&client, &format!("{base}{path}"), true).await;
            let (ref_status, via_serve) =
                get(&client, &format!("{}{path}", serve.base_url), false).await;
            assert_eq!(
                (status, &via_lambda),
                (ref_status, &via_serve),
                "{function}{path}"
            );
        }
        // bad ids: 400 with the stable code
        for bad in ["a%0Ab", "..%2F..%2Fetc", "%00", &"x".repeat(129)] {
            let url = format!("{base}/v1/users/{bad}/{function}");
            let (status, body) = get(&client, &url, true).await;
            assert_eq!(status, 400, "{url}: {body}");
            assert_eq!(body["error"]["code"], "invalid_user_id");
        }
        // the caller key is enforced by the function
        let url = format!("{base}/v1/users/u000001/{function}");
        let (status, body) = get(&client, &url, false).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (401, "unauthorized".into())
        );
        // a function serves its own block only (a Function URL accepts any path)
        let other = if *function == "cart" {
            "dormancy"
        } else {
            "cart"
        };
        let (status, body) = get(&client, &format!("{base}/v1/users/u000001/{other}"), true).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (404, "unknown_block".into()),
            "{function} asked for {other}"
        );
    }
    // Rendered formats: the HTML fragment (and a channel's text) through each function
    // equal serve's, byte for byte, with the same content type and eligibility header.
    let mut fragments = 0;
    for (function, lambda) in &functions {
        for n in 1..=12 {
            for query in [
                "format=html",
                "format=text&channel=sms",
                "channel=push&locale=en",
            ] {
                let path = format!("/v1/users/u{n:06}/{function}?{query}");
                let via_lambda = get_text(&client, &format!("{}{path}", lambda.base), true).await;
                let via_serve =
                    get_text(&client, &format!("{}{path}", serve.base_url), false).await;
                assert_eq!(via_lambda, via_serve, "{function}{path}");
                fragments += usize::from(query == "format=html" && !via_lambda.2.is_empty());
            }
        }
    }
    assert!(fragments > 0, "no eligible block rendered as HTML");

    // unknown users: fallback content, not an error
    let recs = &functions[0].1.base;
    let url = format!("{recs}/v1/users/nobody-known/recommendations");
    let (status, body) = get(&client, &url, true).await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "popular");
    assert!(!body["items"].as_array().unwrap().is_empty());

    // A rules file (SENDTIME_RULES_FILE) that stretches the reminder stage over every age:
    // the same carts answer `reminder` where the default rules answer later stages.
    let dir = std::env::temp_dir().join(unique_table("sendtime-lambda-rules"));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[cart]\nreminder_from_days = 0\nsocial_proof_from_days = 100\n\
         urgency_from_days = 101\nalternatives_from_days = 102\n",
    )
    .unwrap();
    let moved = start_function_with(
        "cart",
        &table,
        &dynamodb_endpoint(),
        1_000,
        &[("SENDTIME_RULES_FILE", rules.to_str().unwrap())],
    );
    let cart = &functions.iter().find(|(f, _)| *f == "cart").unwrap().1.base;
    let mut moved_stages = 0;
    for n in 1..=40 {
        let path = format!("/v1/users/u{n:06}/cart");
        let (_, default) = get(&client, &format!("{cart}{path}"), true).await;
        let (_, with_rules) = get(&client, &format!("{}{path}", moved.base), true).await;
        if default["stage"].is_string() {
            assert_eq!(
                with_rules["stage"], "reminder",
                "{path}: was {}",
                default["stage"]
            );
            moved_stages += usize::from(default["stage"] != "reminder");
        }
    }
    assert!(moved_stages > 0, "no cart in a later stage among 40 users");

    // A bad key stops the function at init, naming the key.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[cart]\nreminder_days = 2\n").unwrap();
    let out = Command::new(function_bin())
        .env("SENDTIME_TABLE", &table)
        .env("SENDTIME_BLOCK", "cart")
        .env("SENDTIME_RULES_FILE", &bad)
        .env("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9/.rt/blocks")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "started with a bad rules file: {printed}"
    );
    assert!(printed.contains("reminder_days"), "{printed}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A TCP server that accepts connections and never answers: DynamoDB hanging.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (port, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dynamodb_unreachable_functions_answer_within_the_budget() {
    const BUDGET_MS: u64 = 500;
    let (hole, _hole) = black_hole();
    let refused = free_port(); // nothing listens here: connections are refused
    let hanging = start_function(
        "recommendations",
        "t",
        &format!("http://127.0.0.1:{hole}"),
        BUDGET_MS,
    );
    let refusing = start_function(
        "cart",
        "t",
        &format!("http://127.0.0.1:{refused}"),
        BUDGET_MS,
    );
    let client = reqwest::Client::new();
    // Let both finish init (their warm-up call fails within the SDK's own timeouts).
    std::thread::sleep(Duration::from_secs(3));

    for (function, lambda, path) in [
        (
            "recommendations",
            &hanging,
            "/v1/users/u000001/recommendations",
        ),
        ("cart", &refusing, "/v1/users/u000001/cart"),
        (
            "recommendations",
            &hanging,
            "/v1/users/u000002/recommendations",
        ),
    ] {
        let url = format!("{}{path}", lambda.base);
        let started = Instant::now();
        let (status, body) = get(&client, &url, true).await;
        let elapsed = started.elapsed();
        // Never a failed send: a degraded 200 that says why, never a hang past Braze's 2 s.
        // Nothing was ever read, so nothing is held: recommendations have no popular items
        // to fall back on, and the cart is not eligible for `unavailable` (a template aborts).
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["degraded"], true, "{body}");
        let reason = body["degraded_reason"].as_str().unwrap_or_default();
        assert!(
            ["deadline", "timeout", "unavailable"].contains(&reason),
            "{body}"
        );
        assert_eq!(body["eligible"], false, "{body}");
        if function == "cart" {
            assert_eq!(body["reason"], "unavailable", "{body}");
        }
        assert!(
            elapsed < Duration::from_millis(2_000),
            "{url} took {elapsed:?} with a {BUDGET_MS} ms budget"
        );
        eprintln!("{function} with DynamoDB unreachable: {status} {reason} in {elapsed:?}");
        // AND in strict mode the same request is a 503 with a stable code, for `:retry`
        let (status, body) = get(&client, &format!("{url}?strict=1"), true).await;
        assert_eq!(status, 503, "{url}: {body}");
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            ["deadline_exceeded", "store_unavailable"].contains(&code),
            "{body}"
        );
    }
}

// ----- the ingest function -------------------------------------------------------------

const WRITE_KEY: &str = "e2e-write-key";

fn write_key_hash() -> String {
    sendtime_api::auth::sha256(WRITE_KEY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The ingest function on `table`: the `blocks` binary with `SENDTIME_ROLE=ingest`, the read
/// key and a write key.
fn start_ingest_function(table: &str) -> Function {
    let write_hash = write_key_hash();
    start_function_with(
        "",
        table,
        &dynamodb_endpoint(),
        1_000,
        &[
            ("SENDTIME_ROLE", "ingest"),
            ("SENDTIME_WRITE_KEY_SHA256", &write_hash),
            // Not on the request path of Braze: DynamoDB Local on a busy machine may be slow.
            ("SENDTIME_DYNAMODB_TIMEOUT_MS", "10000"),
            ("SENDTIME_DYNAMODB_ATTEMPT_TIMEOUT_MS", "5000"),
        ],
    )
}

fn fixture_text(path: &str) -> String {
    let path = workspace_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Status and JSON body of `POST /v1/events` with `body`, sent with `key`.
async fn post_events(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = client
        .post(url)
        .timeout(Duration::from_secs(30))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.header("x-sendtime-key", key);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

/// The same `POST /v1/events` through the router in-process (what `serve` mounts), over
/// `store`, with the function's keys.
async fn post_events_in_process(
    store: Arc<sendtime_dynamo::DynamoStore>,
    body: &str,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let credentials =
        sendtime_api::auth::Credentials::new(vec![sendtime_api::auth::sha256(KEY)], Vec::new())
            .with_write_keys(vec![sendtime_api::auth::sha256(WRITE_KEY)]);
    let ingest = Arc::new(sendtime_api::ingest::Ingest::new(
        store.clone(),
        Arc::new(()),
        Arc::new(sendtime_domain::SystemClock),
    ));
    let service = Arc::new(sendtime_api::BlockService::new(
        store,
        sendtime_domain::RulesConfig::default(),
        Arc::new(sendtime_domain::SystemClock),
    ));
    let app = sendtime_api::router_with(
        service,
        sendtime_api::RouterOptions {
            credentials,
            ingest: Some(ingest),
            ..Default::default()
        },
    );
    let request = axum::http::Request::post("/v1/events")
        .header("x-sendtime-key", WRITE_KEY)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_function_applies_sqs_batches_and_posts_like_the_router() {
    use sendtime_store::UserDataGet;
    // GIVEN two empty tables on DynamoDB Local: one behind the ingest function under the
    // emulator, one behind the router in-process
    let store = Arc::new(fresh_dynamo_store("ingest-fn").await);
    let reference = Arc::new(fresh_dynamo_store("ingest-ref").await);
    let function = start_ingest_function(store.table());
    let client = reqwest::Client::new();
    // The emulator's Invoke API (what `cargo lambda invoke` calls): any payload, as an event
    // source mapping delivers an SQS batch.
    let invoke_url = function.base.replace(
        "/lambda-url/blocks",
        "/2015-03-31/functions/blocks/invocations",
    );

    // WHEN an SQS event of four messages, the second malformed, is delivered
    let resp = client
        .post(&invoke_url)
        .timeout(Duration::from_secs(60))
        .body(fixture_text("sqs/batch_one_malformed.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{invoke_url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    // THEN only that message's id comes back
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}
        ]})
    );
    // AND the other messages' events are in the table
    let read = |id: &'static str| {
        let store = store.clone();
        async move { store.user_data(&uid(id)).await.unwrap() }
    };
    let cart = read("sqs-u1").await.cart.clone().expect("sqs-u1's cart");
    assert_eq!(
        cart.lines
            .iter()
            .map(|l| (l.item_id.as_str(), l.quantity))
            .collect::<Vec<_>>(),
        [("i00001", 2)]
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

    // WHEN a batch is posted to the function's URL and to the router in-process, twice
    let http: serde_json::Value =
        serde_json::from_str(&fixture_text("apigw-v2/events_post_write_key.json")).unwrap();
    let body = http["body"].as_str().unwrap();
    let url = format!("{}/v1/events", function.base);
    for round in ["first", "again"] {
        let via_function = post_events(&client, &url, Some(WRITE_KEY), body).await;
        let in_process = post_events_in_process(reference.clone(), body).await;
        // THEN both answer the same status and the same result per event
        assert_eq!(via_function, in_process, "{round}");
        assert_eq!(via_function.0, 200, "{round}: {}", via_function.1);
        let statuses: Vec<&str> = via_function.1["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap_or_default())
            .collect();
        let expected = if round == "first" {
            ["applied", "rejected"]
        } else {
            ["unchanged", "rejected"]
        };
        assert_eq!(statuses, expected, "{round}");
    }

    // AND the key Braze stores (a read key) is 403, no key 401, a block path 404
    let (status, body_json) = post_events(&client, &url, Some(KEY), body).await;
    assert_eq!(
        (status, body_json["error"]["code"].clone()),
        (403, "forbidden".into())
    );
    let (status, body_json) = post_events(&client, &url, None, body).await;
    assert_eq!(
        (status, body_json["error"]["code"].clone()),
        (401, "unauthorized".into())
    );
    let (status, body_json) = get(
        &client,
        &format!("{}/v1/users/sqs-u1/cart", function.base),
        true,
    )
    .await;
    assert_eq!(
        (status, body_json["error"]["code"].clone()),
        (404, "not_found".into())
    );
}

/// The figure in the report of the ingest function: one full queue batch (10 messages of 500
/// events, the event source's `BatchSize` and the batch limit) through the function under
/// the emulator on DynamoDB Local, timed from the invocation to its answer. Ignored (not a
/// check): `cargo test -p sendtime-tests --test lambda_emulator -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_ingest_function_full_sqs_batch() {
    // GIVEN an empty table behind the ingest function, and a batch of 10 x 500 events on
    // 1,000 users (carts, views, sends: one row each)
    let store = fresh_dynamo_store("ingest-bench").await;
    let function = start_ingest_function(store.table());
    let invoke_url = function.base.replace(
        "/lambda-url/blocks",
        "/2015-03-31/functions/blocks/invocations",
    );
    let kinds = ["cart_updated", "activity", "message_sent"];
    let records: Vec<serde_json::Value> = (0..10)
        .map(|m| {
            let events: Vec<serde_json::Value> = (0..500)
                .map(|n| {
                    let i = m * 500 + n;
                    serde_json::json!({
                        "id": format!("bench-{i}"), "type": kinds[i % 3],
                        "user_id": format!("bench-u{}", i % 1000),
                        "time": 1_796_000_000 + i as i64,
                        "properties": {"products": [{"product_id": format!("i{:05}", i % 80)}],
                                       "product_id": format!("i{:05}", i % 80)}})
                })
                .collect();
            serde_json::json!({"messageId": format!("bench-m{m}"), "receiptHandle": "rh",
                "body": serde_json::json!({"events": events}).to_string(),
                "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1"})
        })
        .collect();
    let payload = serde_json::json!({ "Records": records }).to_string();
    // WHEN it is delivered
    let started = Instant::now();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(&invoke_url)
        .timeout(Duration::from_secs(120))
        .body(payload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    // THEN nothing comes back, and the time is printed
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
    eprintln!(
        "one SQS batch of 5,000 events: {elapsed:?}, {:.0} events/s (debug build, DynamoDB Local)",
        5_000.0 / elapsed.as_secs_f64()
    );
}

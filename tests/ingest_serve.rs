//! Events in, answers out: an event applied in a process drops what that process holds about
//! its user or item at once (and nothing else); `sendtime serve` — on DynamoDB Local and on
//! the embedded store, the real binary — takes `POST /v1/events` with a write key and its
//! next answers reflect each event; a second `serve` on the same table sees it within its
//! user cache TTL.

use chrono::Duration;
use sendtime_tests::*;
use serde_json::{json, Value};

/// An event as the API takes it, `hours_ago` before the fixture's now (checked against the
/// `Event` schema of `docs/openapi.json`).
fn event(id: &str, kind: &str, user: Option<&str>, hours_ago: i64, properties: Value) -> Value {
    let mut event = json!({
        "id": id,
        "type": kind,
        "time": (now() - Duration::hours(hours_ago)).to_rfc3339(),
        "properties": properties,
    });
    if let Some(user) = user {
        event["user_id"] = json!(user);
    }
    // Every event these tests send is one the OpenAPI description documents.
    sendtime_tests::openapi::check_schema("Event", &event);
    event
}

/// Alice orders what is in her cart (`s1`, `b1`).
fn alice_orders() -> Value {
    event(
        "order-alice-1",
        "order_placed",
        Some("alice"),
        1,
        json!({"order_id": "A-1", "products": [{"product_id": "s1"}, {"product_id": "b1"}]}),
    )
}

/// Item ids of an answer, in order.
fn item_ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["item_id"].as_str().or(i["id"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

// ---- The real binary: `sendtime serve` on DynamoDB Local and on the embedded store ----

const READ_KEY: &str = "ingest-serve-read-key";
const WRITE_KEY: &str = "ingest-serve-write-key";

/// Lowercase hex SHA-256 of `key`, as `--api-key-sha256` takes it.
fn digest(key: &str) -> String {
    sendtime_api::auth::sha256(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fixture as a dataset file (JSON Lines), in a fresh folder.
fn fixture_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_table("sendtime-ingest-serve"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fixture.jsonl");
    let lines: Vec<String> = fixture()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

/// `sendtime data load FILE --table TABLE` on DynamoDB Local.
fn load_table(table: &str, file: &std::path::Path) {
    let out = std::process::Command::new(sendtime_bin())
        .args(["data", "load", "--table", table, "--dynamodb-endpoint"])
        .arg(dynamodb_endpoint())
        .arg(file)
        .output()
        .expect("run sendtime data load");
    assert!(
        out.status.success(),
        "data load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `sendtime serve --now <fixture's now>` child and its start-up lines.
struct Server(ServeWithBanner);

impl std::ops::Deref for Server {
    type Target = ServeWithBanner;
    fn deref(&self) -> &ServeWithBanner {
        &self.0
    }
}

impl Server {
    /// `sendtime serve --now <fixture's now> <args>`, once it printed its last start-up line.
    async fn start(args: &[&str]) -> Server {
        let now = now().to_rfc3339();
        let mut all = vec!["--now", now.as_str()];
        all.extend_from_slice(args);
        Server(ServeWithBanner::start(&all).await)
    }

    /// `serve --table TABLE` on DynamoDB Local with the test's keys and `extra` flags.
    async fn on_table(table: &str, extra: &[&str]) -> Server {
        let (endpoint, read, write) = (dynamodb_endpoint(), digest(READ_KEY), digest(WRITE_KEY));
        let mut args = vec![
            "--table",
            table,
            "--dynamodb-endpoint",
            &endpoint,
            "--api-key-sha256",
            &read,
            "--write-key-sha256",
            &write,
        ];
        args.extend(extra);
        Server::start(&args).await
    }

    /// A block, read with the read key.
    async fn block(&self, user: &str, block: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/users/{user}/{block}", self.base_url))
            .header("x-sendtime-key", READ_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{user}/{block}");
        response.json().await.unwrap()
    }

    /// Events posted with `key`: the answer's status and body.
    async fn post_with(&self, key: &str, events: Vec<Value>) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/events", self.base_url))
            .header("x-sendtime-key", key)
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Events posted with the write key: each event's status (and reason or error code).
    async fn post(&self, events: Vec<Value>) -> Vec<String> {
        let (status, body) = self.post_with(WRITE_KEY, events).await;
        assert_eq!(status, 200, "{body}");
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let why = r["reason"].as_str().or(r["error"]["code"].as_str());
                match why {
                    Some(why) => format!("{}:{why}", r["status"].as_str().unwrap()),
                    None => r["status"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }
}

/// `(eligible, stage or reason)` of an answer.
fn state(answer: &Value) -> (bool, String) {
    let eligible = answer["eligible"].as_bool().unwrap();
    let what = if eligible {
        &answer["stage"]
    } else {
        &answer["reason"]
    };
    (eligible, what.as_str().unwrap_or_default().to_owned())
}

fn at(eligible: bool, what: &str) -> (bool, String) {
    (eligible, what.to_owned())
}

/// The purchase: alice's cart (social proof) → her order → not eligible, `purchased`.
async fn purchase_turns_the_cart_off(server: &Server) {
    assert_eq!(
        state(&server.block("alice", "cart").await),
        at(true, "social_proof")
    );
    assert_eq!(server.post(vec![alice_orders()]).await, ["applied"]);
    assert_eq!(
        state(&server.block("alice", "cart").await),
        at(false, "purchased")
    );
}

/// Must-show 2 through HTTP: each event type's effect on the next answer.
async fn every_event_moves_its_block(server: &Server) {
    // GIVEN / WHEN / THEN a purchase after a cart: `purchased`
    purchase_turns_the_cart_off(server).await;

    // GIVEN carol's 8-day-old cart (alternatives) WHEN a fresh snapshot 36 h old arrives
    // THEN the flow restarts at `reminder`
    assert_eq!(
        state(&server.block("carol", "cart").await),
        at(true, "alternatives")
    );
    let snapshot = event(
        "cart-carol-2",
        "ecommerce.cart_updated",
        Some("carol"),
        36,
        json!({"cart_id": "c-9", "total_value": 25800, "currency": "KRW", "source": "web",
               "products": [{"product_id": "s2", "product_name": "러닝화", "variant_id": "v1",
                             "quantity": 2, "price": 12900}]}),
    );
    assert_eq!(server.post(vec![snapshot.clone()]).await, ["applied"]);
    let cart = server.block("carol", "cart").await;
    assert_eq!(state(&cart), at(true, "reminder"));
    assert_eq!(item_ids(&cart), ["s2"]);
    // AND the same snapshot again changes nothing
    assert_eq!(server.post(vec![snapshot]).await, ["unchanged:duplicate"]);

    // GIVEN bob, dormant with 1 unanswered win-back (personal_offer)
    assert_eq!(
        state(&server.block("bob", "dormancy").await),
        at(true, "personal_offer")
    );
    // WHEN one win-back is posted twice, and again under another event id
    let winback = |id: &str, message: &str| {
        event(
            id,
            "message_sent",
            Some("bob"),
            2,
            json!({"message_id": message, "block": "dormancy"}),
        )
    };
    assert_eq!(
        server.post(vec![winback("ws-1", "wb-1")]).await,
        ["applied"]
    );
    assert_eq!(
        server
            .post(vec![winback("ws-1", "wb-1"), winback("ws-1-again", "wb-1")])
            .await,
        ["unchanged:duplicate", "unchanged:duplicate"]
    );
    // THEN it counted once: 2 unanswered, still personal_offer
    assert_eq!(
        state(&server.block("bob", "dormancy").await),
        at(true, "personal_offer")
    );
    // AND one more win-back makes 3: feedback
    assert_eq!(
        server.post(vec![winback("ws-2", "wb-2")]).await,
        ["applied"]
    );
    assert_eq!(
        state(&server.block("bob", "dormancy").await),
        at(true, "feedback")
    );

    // GIVEN erin in onboarding WHEN she makes her first key action THEN `activated`
    assert_eq!(
        state(&server.block("erin", "onboarding").await),
        at(true, "welcome")
    );
    let key_action = event("ka-erin", "key_action", Some("erin"), 1, json!({}));
    assert_eq!(server.post(vec![key_action]).await, ["applied"]);
    assert_eq!(
        state(&server.block("erin", "onboarding").await),
        at(false, "activated")
    );

    // GIVEN alice's recommendations show s2 WHEN s2 sells out THEN they no longer do
    let before = item_ids(&server.block("alice", "recommendations").await);
    assert!(before.contains(&"s2".to_owned()), "{before:?}");
    let sold_out = event(
        "stock-s2",
        "item_updated",
        None,
        1,
        json!({"item_id": "s2", "stock": 0}),
    );
    assert_eq!(server.post(vec![sold_out]).await, ["applied"]);
    let after = item_ids(&server.block("alice", "recommendations").await);
    assert!(!after.contains(&"s2".to_owned()), "{after:?}");
    // (s1 and b1 bought, s4 and now s2 sold out: what is left, never nothing)
    assert_eq!(after, ["s3", "t1", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_dynamodb_applies_each_event_type_to_the_next_answer() {
    // GIVEN the fixture loaded into a DynamoDB Local table with `data load`, served by the
    // real binary with a read key and a write key
    let table = unique_table("ingest-serve");
    let file = fixture_file();
    load_table(&table, &file);
    let server = Server::on_table(&table, &[]).await;
    // WHEN events of each type are posted THEN the next answers move as the rules say
    every_event_moves_its_block(&server).await;
    // AND the keys keep their scopes: the read key cannot write, the write key cannot read
    let (status, body) = server.post_with(READ_KEY, vec![alice_orders()]).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    let response = reqwest::Client::new()
        .get(format!("{}/v1/users/alice/cart", server.base_url))
        .header("x-sendtime-key", WRITE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    std::fs::remove_dir_all(file.parent().unwrap()).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_the_embedded_store_applies_each_event_type_to_the_next_answer() {
    // GIVEN the fixture as a dataset file served from the embedded store
    let file = fixture_file();
    let (read, write) = (digest(READ_KEY), digest(WRITE_KEY));
    let server = Server::start(&[
        "--data",
        file.to_str().unwrap(),
        "--api-key-sha256",
        &read,
        "--write-key-sha256",
        &write,
    ])
    .await;
    // WHEN / THEN the same events move the same blocks
    every_event_moves_its_block(&server).await;
    std::fs::remove_dir_all(file.parent().unwrap()).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_write_key_makes_one_up_and_its_printed_order_turns_a_cart_off() {
    // GIVEN serve on generated demo data with no key of any kind
    let server = Server::start(&["--users", "300", "--items", "100", "--seed", "7"]).await;
    let key = server
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("write key "))
        .and_then(|l| l.rsplit(": ").next())
        .expect("a made-up write key is printed")
        .to_owned();
    assert_eq!(key.len(), 64, "{key}");
    let post_line = server
        .banner
        .iter()
        .find(|l| l.contains("curl -X POST"))
        .expect("a curl line posting an order");
    assert!(post_line.contains(&key));
    let body = post_line
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the curl line's body");
    let batch: Value = serde_json::from_str(body).unwrap();
    let user = batch["events"][0]["user_id"].as_str().unwrap().to_owned();
    // AND that user's cart is eligible (reads are open: no read key configured)
    let cart = reqwest::get(format!("{}/v1/users/{user}/cart", server.base_url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(cart["eligible"], true);
    // WHEN the printed order is posted with the printed key
    let (status, answer) = server
        .post_with(&key, batch["events"].as_array().unwrap().clone())
        .await;
    assert_eq!(
        (status, answer["summary"]["applied"].clone()),
        (200, json!(1))
    );
    // THEN the cart is not eligible, `purchased`
    let cart = reqwest::get(format!("{}/v1/users/{user}/cart", server.base_url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(state(&cart), at(false, "purchased"));
    // AND another key is still refused
    let (status, _) = server.post_with("not-the-key", vec![alice_orders()]).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_table_answers_from_an_event_within_its_user_ttl() {
    // GIVEN two serve processes on one table, user records cached 2 s, and alice's cart
    // cached by both (social proof)
    const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    const SLACK: std::time::Duration = std::time::Duration::from_millis(1_500);
    let table = unique_table("ingest-fresh");
    let file = fixture_file();
    load_table(&table, &file);
    let ttl = TTL.as_secs().to_string();
    let flags = ["--cache-user-ttl-secs", ttl.as_str()];
    let (first, second) = (
        Server::on_table(&table, &flags).await,
        Server::on_table(&table, &flags).await,
    );
    for server in [&first, &second] {
        assert_eq!(
            state(&server.block("alice", "cart").await),
            at(true, "social_proof")
        );
    }
    let primed = std::time::Instant::now();

    // WHEN the first process takes alice's order
    assert_eq!(first.post(vec![alice_orders()]).await, ["applied"]);
    let accepted = std::time::Instant::now();

    // THEN the first answers from it at once
    assert_eq!(
        state(&first.block("alice", "cart").await),
        at(false, "purchased")
    );
    // AND the second still answers from its cached copy (the test has teeth: unless this
    // machine stalled half a TTL since the copy was read)…
    let right_after = state(&second.block("alice", "cart").await);
    if primed.elapsed() < TTL / 2 {
        assert_eq!(right_after, at(true, "social_proof"));
    }
    // …and from the event within its user TTL (plus slack for the polls and the read)
    let seen = loop {
        if state(&second.block("alice", "cart").await) == at(false, "purchased") {
            break accepted.elapsed();
        }
        assert!(
            accepted.elapsed() <= TTL + SLACK,
            "the second process still answers from the old cart after {:?}",
            accepted.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(seen <= TTL + SLACK, "{seen:?}");
    eprintln!("second process answered from the event after {seen:?} (user TTL {TTL:?})");
    std::fs::remove_dir_all(file.parent().unwrap()).ok();
}

/// The in-process tests: invalidation, in-flight loads, failed writes, consistent reads.
#[path = "ingest_serve/in_process.rs"]
mod in_process;

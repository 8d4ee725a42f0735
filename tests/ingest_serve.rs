//! Events in, answers out: an event applied in a process drops what that process holds about
//! its user or item at once (and nothing else); `sendtime serve` — on DynamoDB Local and on
//! the embedded store, the real binary — takes `POST /v1/events` with a write key and its
//! next answers reflect each event; a second `serve` on the same table sees it within its
//! user cache TTL.

use chrono::Duration;
use sendtime_api::ingest::{parse_batch, Ingest, Invalidate, Status};
use sendtime_api::{AnswerCacheUse, BlockService};
use sendtime_domain::{BlockKind, RulesConfig};
use sendtime_store::{
    CacheConfig, CachedStore, CopyGet, ItemsGet, MemoryStore, PopularGet, StoreError, UserData,
    UserDataGet,
};
use sendtime_tests::*;
use serde_json::{json, Value};
use std::sync::Arc;

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

/// The fixture in memory, behind the default cache, a block service with an answer cache,
/// and the ingest handler telling that service what changed.
async fn in_process() -> (Arc<BlockService>, Ingest) {
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let cached = CachedStore::new(memory.clone(), &CacheConfig::default());
    let service = Arc::new(
        BlockService::new(Arc::new(cached), RulesConfig::default(), clock())
            .with_answer_cache(&CacheConfig::default()),
    );
    let ingest = Ingest::new(memory, service.clone(), clock());
    (service, ingest)
}

async fn apply(ingest: &Ingest, events: Vec<Value>) -> Vec<Status> {
    let body = json!({ "events": events }).to_string();
    let batch = parse_batch(body.as_bytes()).expect("a valid batch");
    ingest
        .apply_batch(batch)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect()
}

#[tokio::test]
async fn an_event_voids_its_users_answers_at_once_and_no_other_users() {
    // GIVEN alice's and bob's cart answers, each asked twice (the second from the cache)
    let (service, ingest) = in_process().await;
    let (alice, bob) = (uid("alice"), uid("bob"));
    for user in [&alice, &bob] {
        assert_eq!(
            service.answer(BlockKind::Cart, user, 4).await.cache,
            AnswerCacheUse::Miss
        );
        assert_eq!(
            service.answer(BlockKind::Cart, user, 4).await.cache,
            AnswerCacheUse::Hit
        );
    }
    assert_eq!(
        service.answer(BlockKind::Cart, &alice, 4).await.value()["stage"],
        "social_proof"
    );

    // WHEN alice orders her cart
    assert_eq!(
        apply(&ingest, vec![alice_orders()]).await,
        [Status::Applied]
    );

    // THEN alice's next answer is built afresh and says `purchased`
    let after = service.answer(BlockKind::Cart, &alice, 4).await;
    assert_eq!(after.cache, AnswerCacheUse::Miss);
    assert_eq!(
        (
            after.value()["eligible"].clone(),
            after.value()["reason"].clone()
        ),
        (json!(false), json!("purchased"))
    );
    // AND bob's answer is still the cached one
    let bob_after = service.answer(BlockKind::Cart, &bob, 4).await;
    assert_eq!(bob_after.cache, AnswerCacheUse::Hit);
    assert_eq!(bob_after.value()["stage"], "urgency");
}

#[tokio::test]
async fn an_item_event_drops_the_item_from_the_next_answers_at_once() {
    // GIVEN alice's recommendations (cached) hold s2
    let (service, ingest) = in_process().await;
    let alice = uid("alice");
    let before = service.answer(BlockKind::Recommendations, &alice, 4).await;
    assert!(item_ids(&before.value()).contains(&"s2".to_owned()));
    assert_eq!(
        service
            .answer(BlockKind::Recommendations, &alice, 4)
            .await
            .cache,
        AnswerCacheUse::Hit
    );

    // WHEN s2 sells out
    let sold_out = event(
        "stock-s2-0",
        "item_updated",
        None,
        1,
        json!({"item_id": "s2", "stock": 0}),
    );
    assert_eq!(apply(&ingest, vec![sold_out]).await, [Status::Applied]);

    // THEN the next answer is rebuilt without it
    let after = service.answer(BlockKind::Recommendations, &alice, 4).await;
    assert_eq!(after.cache, AnswerCacheUse::Miss);
    let ids = item_ids(&after.value());
    assert!(!ids.contains(&"s2".to_owned()), "{ids:?}");
    assert_eq!(ids.len(), 4, "{ids:?}");
}

/// The fixture's store, its user reads held back until `release` is notified (a load in
/// flight while an event is applied).
struct HeldReads {
    inner: Arc<MemoryStore>,
    release: tokio::sync::Notify,
    started: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl UserDataGet for HeldReads {
    async fn user_data(
        &self,
        user_id: &sendtime_domain::UserId,
    ) -> Result<Arc<UserData>, StoreError> {
        // Read first, then wait: what this load returns predates anything applied meanwhile.
        let data = self.inner.user_data(user_id).await;
        self.started.notify_one();
        self.release.notified().await;
        data
    }
}

#[async_trait::async_trait]
impl ItemsGet for HeldReads {
    async fn items(
        &self,
        ids: &[sendtime_domain::ItemId],
    ) -> Result<sendtime_domain::Catalog, StoreError> {
        self.inner.items(ids).await
    }
}

#[async_trait::async_trait]
impl PopularGet for HeldReads {
    async fn popular(
        &self,
        scope: &sendtime_domain::PopularScope,
    ) -> Result<Option<Arc<sendtime_domain::PopularList>>, StoreError> {
        self.inner.popular(scope).await
    }
}

#[async_trait::async_trait]
impl CopyGet for HeldReads {
    async fn copy_records(&self) -> Result<Arc<[sendtime_domain::CopyRecord]>, StoreError> {
        self.inner.copy_records().await
    }
}

#[tokio::test]
async fn a_load_in_flight_when_its_user_changes_answers_its_callers_but_is_not_cached() {
    // GIVEN a read of alice's records in flight (it read the cart before the event)
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let held = Arc::new(HeldReads {
        inner: memory.clone(),
        release: tokio::sync::Notify::new(),
        started: tokio::sync::Notify::new(),
    });
    let cached = Arc::new(CachedStore::new(held.clone(), &CacheConfig::default()));
    let reader = {
        let cached = cached.clone();
        tokio::spawn(async move { cached.user_data(&uid("alice")).await })
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), held.started.notified())
        .await
        .expect("the load started");

    // WHEN alice's order is applied and the cache told, then the old read finishes
    let ingest = Ingest::new(memory.clone(), Arc::new(CacheOf(cached.clone())), clock());
    assert_eq!(
        apply(&ingest, vec![alice_orders()]).await,
        [Status::Applied]
    );
    held.release.notify_one();
    let old = reader.await.unwrap().unwrap();
    assert!(old.profile.as_ref().unwrap().last_purchase_at.is_none());

    // THEN the next read does not get the old records from the cache: it loads again
    let next = tokio::spawn({
        let cached = cached.clone();
        async move { cached.user_data(&uid("alice")).await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(5), held.started.notified())
        .await
        .expect("a second load: the old read was not cached");
    held.release.notify_one();
    let fresh = next.await.unwrap().unwrap();
    assert!(fresh.profile.as_ref().unwrap().last_purchase_at.is_some());
    assert_eq!(cached.stats().forgotten(), 1);
}

/// The store's cache alone as what an ingest tells (no answer cache).
struct CacheOf(Arc<CachedStore<HeldReads>>);

impl Invalidate for CacheOf {
    fn changed(&self, target: sendtime_domain::ingest::Target<'_>) {
        match target {
            sendtime_domain::ingest::Target::User(user) => self.0.invalidate_user(user),
            sendtime_domain::ingest::Target::Item(item) => self.0.invalidate_item(item),
        }
    }
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

/// A `sendtime serve` child (killed when dropped) and its start-up lines.
struct Server {
    base_url: String,
    banner: Vec<String>,
    _child: tokio::process::Child,
}

impl Server {
    /// `sendtime serve --addr 127.0.0.1:0 --now <fixture's now> <args>`, once it printed its
    /// last start-up line (the events example).
    async fn start(args: &[&str]) -> Server {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(sendtime_bin())
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--now",
                &now().to_rfc3339(),
            ])
            .args(args)
            .env("SENDTIME_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sendtime serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                let last = line.contains("# after the order");
                banner.push(line);
                if last {
                    return true;
                }
            }
            false
        };
        let started = tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .expect("sendtime serve did not start within 60 s");
        assert!(started, "sendtime serve exited: {banner:?}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base_url = banner[0]
            .strip_prefix("sendtime listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the listening line")
            .to_owned();
        Server {
            base_url,
            banner,
            _child: child,
        }
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

/// A store whose event writes fail, every one (DynamoDB down or throttling past its retries).
struct FailingWrites;

#[async_trait::async_trait]
impl sendtime_store::EventsApply for FailingWrites {
    async fn apply_event(
        &self,
        _: &sendtime_domain::ingest::Event,
        _: &sendtime_domain::ingest::IngestLimits,
    ) -> Result<sendtime_domain::ingest::Outcome, sendtime_store::ApplyError> {
        Err(StoreError::Throttled.into())
    }
}

#[tokio::test]
async fn a_failed_write_is_reported_retryable_and_leaves_the_cached_answers_alone() {
    // GIVEN bob's cart answer cached, and a store that fails every event write
    let (service, _) = in_process().await;
    let bob = uid("bob");
    service.answer(BlockKind::Cart, &bob, 4).await;
    let ingest = Ingest::new(Arc::new(FailingWrites), service.clone(), clock());
    // WHEN a valid event and an invalid one arrive
    let body = json!({"events": [
        event("bob-order", "order_placed", Some("bob"), 1,
              json!({"order_id": "B-1", "products": [{"product_id": "b2"}]})),
        // (invalid on purpose: no order_id, no products)
        json!({"id": "bad", "type": "order_placed", "user_id": "bob", "time": now().to_rfc3339(), "properties": {}}),
    ]})
    .to_string();
    let results = ingest
        .apply_batch(parse_batch(body.as_bytes()).unwrap())
        .await;
    // THEN the valid one failed, retryable, `store_unavailable`; the invalid one is rejected
    assert_eq!(results[0].status, Status::Failed);
    assert!(results[0].retryable());
    assert_eq!(results[0].error.as_ref().unwrap().code, "store_unavailable");
    assert_eq!(results[1].status, Status::Rejected);
    assert!(!results[1].retryable());
    // AND nothing was invalidated: bob's answer is still a cache hit, still his cart
    let answer = service.answer(BlockKind::Cart, &bob, 4).await;
    assert_eq!(answer.cache, AnswerCacheUse::Hit);
    assert_eq!(answer.value()["stage"], "urgency");
}

/// The fixture's user reads, counted by kind (eventually consistent or consistent).
struct CountedReads {
    inner: Arc<MemoryStore>,
    plain: std::sync::atomic::AtomicU64,
    consistent: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl UserDataGet for CountedReads {
    async fn user_data(
        &self,
        user_id: &sendtime_domain::UserId,
    ) -> Result<Arc<UserData>, StoreError> {
        self.plain.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.user_data(user_id).await
    }

    async fn user_data_consistent(
        &self,
        user_id: &sendtime_domain::UserId,
    ) -> Result<Arc<UserData>, StoreError> {
        self.consistent
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.user_data(user_id).await
    }
}

#[tokio::test]
async fn the_first_read_after_a_users_event_is_consistent_and_the_rest_are_cached() {
    // GIVEN alice and bob read once (plain reads, now cached)
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let reads = Arc::new(CountedReads {
        inner: memory,
        plain: Default::default(),
        consistent: Default::default(),
    });
    let cached = CachedStore::new(reads.clone(), &CacheConfig::default());
    let (alice, bob) = (uid("alice"), uid("bob"));
    for user in [&alice, &bob] {
        cached.user_data(user).await.unwrap();
    }
    let counts = || {
        (
            reads.plain.load(std::sync::atomic::Ordering::SeqCst),
            reads.consistent.load(std::sync::atomic::Ordering::SeqCst),
        )
    };
    assert_eq!(counts(), (2, 0));
    // WHEN an event changes alice
    cached.invalidate_user(&alice);
    // THEN her next read is a consistent one (DynamoDB: not the records from before the
    // write), the ones after come from the cache, and bob's is still cached
    for _ in 0..3 {
        cached.user_data(&alice).await.unwrap();
        cached.user_data(&bob).await.unwrap();
    }
    assert_eq!(counts(), (2, 1));
}

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

/// An event as the API takes it, `hours_ago` before the fixture's now.
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

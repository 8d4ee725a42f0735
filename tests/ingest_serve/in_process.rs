//! In one process: an applied event drops what the process holds about its user (records,
//! the load in flight, the answers built from them) or item at once, and nothing about any
//! other user; a store failure drops nothing; the first read after the event is consistent.

use super::*;
use sendtime_api::ingest::{parse_batch, Ingest, Invalidate, Status};
use sendtime_api::{AnswerCacheUse, BlockService};
use sendtime_domain::{BlockKind, RulesConfig};
use sendtime_store::{
    CacheConfig, CachedStore, CopyGet, ItemsGet, MemoryStore, PopularGet, StoreError, UserData,
    UserDataGet,
};
use std::sync::Arc;

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

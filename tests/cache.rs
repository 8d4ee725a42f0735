//! The cache does what it claims: concurrent misses for one key cause one load, failures are
//! not cached, and a warm cache serves a recommendations block with at most one DynamoDB
//! round trip.

use sendtime_api::BlockService;
use sendtime_domain::{BlockKind, PopularScope, RulesConfig};
use sendtime_store::{CacheConfig, CachedStore, ItemsGet, MemoryStore, PopularGet, UserDataGet};
use sendtime_tests::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

const TASKS: usize = 32;

async fn counting(delay_ms: u64) -> Arc<CountingStore<MemoryStore>> {
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    Arc::new(CountingStore::new(memory, Duration::from_millis(delay_ms)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_for_one_user_cause_one_load() {
    // GIVEN a cold cache over a slow store
    let store = counting(50).await;
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    let barrier = Arc::new(Barrier::new(TASKS));
    // WHEN 32 tasks ask for the same user at the same moment
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cached, barrier) = (cached.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cached.user_data(&uid("alice")).await
            })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    // THEN the store was read once and everyone got the same answer
    assert_eq!(store.user_loads.load(Ordering::SeqCst), 1);
    let first = results[0].as_ref().unwrap().as_ref().unwrap().clone();
    assert!(first.profile.is_some());
    for r in results {
        assert_eq!(r.unwrap().unwrap(), first);
    }
    assert_eq!(cached.stats().loads(), 1);
    assert_eq!(
        cached.stats().misses() + cached.stats().hits(),
        TASKS as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_for_the_same_items_cause_one_load() {
    // GIVEN a cold cache over a slow store
    let store = counting(50).await;
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    let barrier = Arc::new(Barrier::new(TASKS));
    // WHEN 32 tasks ask for overlapping item sets at the same moment (unknown ids included)
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let (cached, barrier) = (cached.clone(), barrier.clone());
            let ids = if n % 2 == 0 {
                vec![iid("s1"), iid("b1"), iid("nope")]
            } else {
                vec![iid("b1"), iid("s1"), iid("nope")]
            };
            tokio::spawn(async move {
                barrier.wait().await;
                cached.items(&ids).await
            })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    // THEN whoever asked first loaded them once, and the others awaited that load
    for r in results {
        let found = r.unwrap().unwrap();
        let mut keys: Vec<&str> = found.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["b1", "s1"]);
    }
    let loads = store.item_loads.load(Ordering::SeqCst);
    assert_eq!(loads, 1, "one batch load for 32 concurrent askers");
    assert_eq!(cached.stats().loads(), 1);
    // AND once loaded, found and unknown ids alike are served from the cache
    cached.items(&[iid("s1"), iid("nope")]).await.unwrap();
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_item_sets_load_each_id_once() {
    // GIVEN two requests at once for {s1, b1} and {b1, t1}
    let store = counting(50).await;
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    let (a, b) = (cached.clone(), cached.clone());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.items(&[iid("s1"), iid("b1")]).await }),
        tokio::spawn(async move { b.items(&[iid("b1"), iid("t1")]).await }),
    );
    // THEN the shared id was loaded by one of them only: two batches, not three or four
    assert_eq!(ra.unwrap().unwrap().len(), 2);
    assert_eq!(rb.unwrap().unwrap().len(), 2);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
    assert_eq!(cached.items_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_item_load_finishes_fills_the_cache_and_leaves_nothing_behind() {
    // GIVEN a request that gives up (its deadline) while its load is in flight
    let store = counting(50).await;
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(5),
        cached.items(&[iid("s1"), iid("b2")]),
    )
    .await;
    assert!(gave_up.is_err(), "the store takes 50 ms");
    // WHEN the load's own time has passed
    tokio::time::sleep(Duration::from_millis(150)).await;
    // THEN it finished anyway: nothing in flight, and the items are cached
    assert_eq!(cached.items_in_flight(), 0);
    let found = cached.items(&[iid("s1"), iid("b2")]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_item_load_is_not_cached_and_the_next_request_retries() {
    let store = counting(10).await;
    store.fail_item_loads.store(1, Ordering::SeqCst);
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    assert!(cached.items(&[iid("s1")]).await.is_err());
    assert_eq!(cached.items_in_flight(), 0);
    let found = cached.items(&[iid("s1")]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_for_one_popular_list_cause_one_load() {
    let store = counting(50).await;
    let cached = Arc::new(CachedStore::new(store.clone(), &CacheConfig::default()));
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cached, barrier) = (cached.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cached.popular(&PopularScope::Global).await
            })
        })
        .collect();
    for r in futures::future::join_all(tasks).await {
        assert!(r.unwrap().unwrap().is_some());
    }
    assert_eq!(store.popular_loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_cached_popular_list_is_read_with_its_items_unless_it_would_outlive_them() {
    // GIVEN the deployed settings (lists live 300 s, items 600 s)
    let store = counting(0).await;
    let cached = CachedStore::new(store.clone(), &CacheConfig::default());
    // WHEN a popular list is first asked for
    let list = cached
        .popular(&PopularScope::Global)
        .await
        .unwrap()
        .unwrap();
    // THEN it comes with each of its items, read from the store in one batch with it
    let read = list.resolved().expect("read with its items");
    let expected = store.items(&list.items).await.unwrap();
    assert_eq!(read.len(), list.items.len());
    for (id, item) in list.items.iter().zip(read) {
        assert_eq!(
            item.as_deref(),
            expected.get(id).map(|i| i.as_ref()),
            "{id:?}"
        );
    }
    assert_eq!(store.popular_loads.load(Ordering::SeqCst), 1);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
    assert_eq!(cached.stats().loads(), 2);
    // AND a repeat reads nothing
    cached.popular(&PopularScope::Global).await.unwrap();
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);

    // WHEN lists would live longer than items, or items are not cached
    for config in [
        CacheConfig {
            popular_ttl: Duration::from_secs(900),
            ..CacheConfig::default()
        },
        CacheConfig {
            item_ttl: Duration::ZERO,
            ..CacheConfig::default()
        },
    ] {
        let before = store.item_loads.load(Ordering::SeqCst);
        let plain = CachedStore::new(store.clone(), &config);
        let list = plain.popular(&PopularScope::Global).await.unwrap().unwrap();
        // THEN the list comes without them (each request reads what it shows)
        assert!(list.resolved().is_none());
        assert_eq!(store.item_loads.load(Ordering::SeqCst), before);
    }

    // WHEN reading the items fails, the list still comes, without them
    store.fail_item_loads.store(1, Ordering::SeqCst);
    let failing = CachedStore::new(store.clone(), &CacheConfig::default());
    let list = failing
        .popular(&PopularScope::Global)
        .await
        .unwrap()
        .unwrap();
    assert!(!list.items.is_empty() && list.resolved().is_none());
}

#[tokio::test]
async fn a_failed_load_is_not_cached() {
    let store = counting(0).await;
    store.fail_user_loads.store(1, Ordering::SeqCst);
    let cached = CachedStore::new(store.clone(), &CacheConfig::default());
    assert!(cached.user_data(&uid("alice")).await.is_err());
    assert!(cached
        .user_data(&uid("alice"))
        .await
        .unwrap()
        .profile
        .is_some());
    assert!(cached.user_data(&uid("alice")).await.is_ok());
    assert_eq!(store.user_loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn items_load_only_the_misses_and_remember_unknown_ids() {
    let store = counting(0).await;
    let cached = CachedStore::new(store.clone(), &CacheConfig::default());
    let first = cached.items(&[iid("s1"), iid("nope")]).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 1);
    // s1 known, nope known-unknown: no load at all
    let again = cached.items(&[iid("nope"), iid("s1")]).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 1);
    // one new id: one load, for that id only
    let more = cached.items(&[iid("s1"), iid("b1")]).await.unwrap();
    assert_eq!(more.len(), 2);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn entries_expire_after_their_ttl_and_zero_disables() {
    let store = counting(0).await;
    let config = CacheConfig {
        user_ttl: Duration::from_millis(100),
        ..CacheConfig::default()
    };
    let cached = CachedStore::new(store.clone(), &config);
    cached.user_data(&uid("alice")).await.unwrap();
    cached.user_data(&uid("alice")).await.unwrap();
    assert_eq!(store.user_loads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cached.user_data(&uid("alice")).await.unwrap();
    assert_eq!(store.user_loads.load(Ordering::SeqCst), 2);

    // AND catalog items (found or not) expire after theirs
    let items = CachedStore::new(
        store.clone(),
        &CacheConfig {
            item_ttl: Duration::from_millis(100),
            ..CacheConfig::default()
        },
    );
    let ids = [iid("s1"), iid("nope")];
    let first = items.items(&ids).await.unwrap();
    items.items(&ids).await.unwrap();
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(items.items(&ids).await.unwrap(), first);
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
    store.item_loads.store(0, Ordering::SeqCst);

    let uncached = CachedStore::new(
        store.clone(),
        &CacheConfig {
            user_ttl: Duration::ZERO,
            ..CacheConfig::default()
        },
    );
    uncached.user_data(&uid("alice")).await.unwrap();
    uncached.user_data(&uid("alice")).await.unwrap();
    assert_eq!(store.user_loads.load(Ordering::SeqCst), 4);
    let no_items = CachedStore::new(
        store.clone(),
        &CacheConfig {
            item_ttl: Duration::ZERO,
            ..CacheConfig::default()
        },
    );
    no_items.items(&ids).await.unwrap();
    no_items.items(&ids).await.unwrap();
    assert_eq!(store.item_loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn warm_cache_serves_recommendations_with_at_most_one_dynamodb_round_trip() {
    // GIVEN DynamoDB Local with the fixture, behind the cache, the service and its rules
    let dynamo = Arc::new(fresh_dynamo_store("warm").await.with_clock(clock()));
    load_fixture(dynamo.as_ref()).await;
    let cached = Arc::new(CachedStore::new(dynamo.clone(), &CacheConfig::default()));
    let service = BlockService::new(cached.clone(), RulesConfig::default(), clock());
    let alice = uid("alice");

    // WHEN the first request warms the cache
    let before = dynamo.round_trips();
    let cold = service.answer(BlockKind::Recommendations, &alice, 4).await;
    let cold_trips = dynamo.round_trips() - before;
    assert!(cold.summary.eligible && !cold.value()["items"].as_array().unwrap().is_empty());
    assert!(
        cold_trips >= 2,
        "cold: query + popular + items, got {cold_trips}"
    );

    // THEN a fully warm request costs nothing
    let before = dynamo.round_trips();
    let warm = service.answer(BlockKind::Recommendations, &alice, 4).await;
    assert_eq!(dynamo.round_trips() - before, 0);
    assert_eq!(warm.json, cold.json);

    // AND once the short-lived user entry is gone, catalog and popular lists still serve
    // from cache: exactly the one Query for the user's partition
    cached.invalidate_users();
    let before = dynamo.round_trips();
    let refreshed = service.answer(BlockKind::Recommendations, &alice, 4).await;
    assert_eq!(dynamo.round_trips() - before, 1);
    assert_eq!(refreshed.json, cold.json);
}

/// A clock the test moves by hand (the answer cache keys answers by the day).
struct StepClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl sendtime_domain::Clock for StepClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn repeat_calls_are_served_byte_identical_from_the_answer_cache_and_data_changes_are_never_hidden(
) {
    use sendtime_api::AnswerCacheUse::{Hit, Miss};
    // GIVEN the deployed cache settings, but a user entry that lives 300 ms
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let config = CacheConfig {
        user_ttl: Duration::from_millis(300),
        ..CacheConfig::default()
    };
    let cached = Arc::new(CachedStore::new(memory.clone(), &config));
    let step = Arc::new(StepClock(std::sync::Mutex::new(now())));
    let service = BlockService::new(cached.clone(), RulesConfig::default(), step.clone())
        .with_answer_cache(&config);
    // and the same store without any cache: every answer assembled afresh
    let fresh = BlockService::new(memory.clone(), RulesConfig::default(), step.clone());
    let (alice, bob) = (uid("alice"), uid("bob"));

    // WHEN each block is asked twice, with and without a limit
    for kind in BlockKind::ALL {
        for limit in [4, 2] {
            let first = service.answer(kind, &alice, limit).await;
            let lookups = (cached.stats().hits(), cached.stats().misses());
            let again = service.answer(kind, &alice, limit).await;
            // (a repeat reads nothing, not even the cached user records)
            assert_eq!(
                (cached.stats().hits(), cached.stats().misses()),
                lookups,
                "{kind} limit {limit}"
            );
            let assembled = fresh.answer(kind, &alice, limit).await;
            // THEN the repeat is a hit, byte for byte the freshly assembled answer
            assert_eq!(
                (first.cache, again.cache),
                (Miss, Hit),
                "{kind} limit {limit}"
            );
            assert_eq!(again.json, assembled.json, "{kind} limit {limit}");
            assert_eq!(first.json, again.json, "{kind} limit {limit}");
        }
    }
    // AND another user, another limit or another block is never served someone else's answer
    let bobs = service.answer(BlockKind::Recommendations, &bob, 4).await;
    assert_eq!(bobs.cache, Miss);
    assert_eq!(
        bobs.json,
        fresh.answer(BlockKind::Recommendations, &bob, 4).await.json
    );

    // WHEN alice's list changes in the store, her answer stays cached only while her cached
    // records are still the ones it came from...
    let before = service.answer(BlockKind::Recommendations, &alice, 4).await;
    let Some(sendtime_store::Record::Recs(mut list)) = fixture()
        .into_iter()
        .find(|r| matches!(r, sendtime_store::Record::Recs(l) if l.user_id.as_str() == "alice"))
    else {
        panic!("fixture has alice's list")
    };
    list.items.reverse();
    memory.insert([sendtime_store::Record::Recs(list)]);
    // ... THEN once her user entry's TTL has run out, the next call shows the new list
    tokio::time::sleep(Duration::from_millis(450)).await;
    let after = service.answer(BlockKind::Recommendations, &alice, 4).await;
    assert_eq!(after.cache, Miss);
    assert_ne!(after.json, before.json);
    assert_eq!(
        after.json,
        fresh
            .answer(BlockKind::Recommendations, &alice, 4)
            .await
            .json
    );
    assert_ne!(after.summary.rec_id, before.summary.rec_id);
    // AND a user entry dropped early (invalidated) after a cart change: the change shows
    let cart_before = service.answer(BlockKind::Cart, &alice, 4).await;
    let Some(sendtime_store::Record::Cart(mut cart)) = fixture()
        .into_iter()
        .find(|r| matches!(r, sendtime_store::Record::Cart(c) if c.user_id.as_str() == "alice"))
    else {
        panic!("fixture has alice's cart")
    };
    cart.lines.truncate(1);
    memory.insert([sendtime_store::Record::Cart(cart)]);
    cached.invalidate_users();
    let cart_after = service.answer(BlockKind::Cart, &alice, 4).await;
    assert_eq!(cart_after.cache, Miss);
    assert_ne!(cart_after.json, cart_before.json);
    assert_eq!(
        cart_after.json,
        fresh.answer(BlockKind::Cart, &alice, 4).await.json
    );

    // WHEN the day changes THEN the staged blocks are computed again (a cart ages a day)
    let cart_today = service.answer(BlockKind::Cart, &alice, 4).await;
    *step.0.lock().unwrap() += chrono::Duration::days(1);
    let cart_tomorrow = service.answer(BlockKind::Cart, &alice, 4).await;
    assert_eq!(cart_tomorrow.cache, Miss);
    assert_eq!(
        cart_tomorrow.json,
        fresh.answer(BlockKind::Cart, &alice, 4).await.json
    );
    assert_ne!(cart_today.value()["days"], cart_tomorrow.value()["days"]);

    // AND with any record kind uncached there is no answer cache at all
    let uncached = CacheConfig {
        item_ttl: Duration::ZERO,
        ..CacheConfig::default()
    };
    assert_eq!(uncached.answer_lifetime(), Duration::ZERO);
    let off = BlockService::new(memory.clone(), RulesConfig::default(), clock())
        .with_answer_cache(&uncached);
    assert_eq!(
        off.answer(BlockKind::Cart, &alice, 4).await.cache,
        sendtime_api::AnswerCacheUse::Off
    );
}

#[tokio::test]
async fn expired_entries_leave_in_the_background_not_on_the_next_request() {
    // GIVEN users cached for 200 ms and housekeeping every 50 ms
    let memory = Arc::new(MemoryStore::new(clock()));
    load_fixture(memory.as_ref()).await;
    let config = CacheConfig {
        user_ttl: Duration::from_millis(200),
        last_good: Duration::from_millis(100),
        ..CacheConfig::default()
    };
    let cached = Arc::new(CachedStore::new(memory, &config));
    cached.maintain_every(Duration::from_millis(50));
    for user in ["alice", "bob", "carol"] {
        cached.user_data(&uid(user)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(cached.entry_counts().0, 3, "held while fresh");
    // WHEN nobody asks for anything past their TTL and their time held as last-known-good
    tokio::time::sleep(Duration::from_millis(400)).await;
    // THEN the housekeeping has dropped them already: no request pays for it
    assert_eq!(cached.entry_counts().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_table_is_reloaded_misses_heal_within_the_negative_ttl_while_hits_stay_cached() {
    use sendtime_store::{Record, RecordsPut};
    // GIVEN an empty DynamoDB Local table behind the cache: positive records cached 30 s,
    // negative ones (no profile, no popular list, no such item) 1 s
    let dynamo = Arc::new(fresh_dynamo_store("negative").await.with_clock(clock()));
    let config = CacheConfig {
        negative_ttl: Duration::from_secs(1),
        ..CacheConfig::default()
    };
    let cached = Arc::new(CachedStore::new(dynamo.clone(), &config));
    let service = BlockService::new(cached.clone(), RulesConfig::default(), clock())
        .with_answer_cache(&config);
    let (alice, bob) = (uid("alice"), uid("bob"));
    // AND everything asked for while the table is empty: unknown users, no popular list,
    // no items
    let cart = service.answer(BlockKind::Cart, &alice, 4).await.value();
    assert_eq!(cart["reason"], "cart_empty");
    let dormant = service.answer(BlockKind::Dormancy, &bob, 4).await.value();
    assert_eq!(dormant["reason"], "unknown_user");
    let recs = service
        .answer(BlockKind::Recommendations, &alice, 4)
        .await
        .value();
    assert_eq!(recs["reason"], "no_items");
    assert!(cached.items(&[iid("s1")]).await.unwrap().is_empty());
    // WHEN the table is loaded
    load_fixture(dynamo.as_ref()).await;
    // THEN within the negative TTL every miss is fresh: the user, her cart, her list, the
    // popular lists and the items are all seen
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let cart = service.answer(BlockKind::Cart, &alice, 4).await.value();
    assert_eq!(
        (cart["eligible"].as_bool(), cart["stage"].as_str()),
        (Some(true), Some("social_proof"))
    );
    let recs = service
        .answer(BlockKind::Recommendations, &alice, 4)
        .await
        .value();
    assert_eq!(recs["stage"], "personalized");
    let dormant = service.answer(BlockKind::Dormancy, &bob, 4).await.value();
    assert_eq!(dormant["eligible"], true);
    assert_eq!(cached.items(&[iid("s1")]).await.unwrap().len(), 1);
    // AND a positive record stays cached for its own, longer TTL: bob's cart changes in the
    // table, yet his cached records are still served two negative TTLs later
    let before = service.answer(BlockKind::Cart, &bob, 4).await;
    let Some(Record::Cart(mut bobs)) = fixture()
        .into_iter()
        .find(|r| matches!(r, Record::Cart(c) if c.user_id.as_str() == "bob"))
    else {
        panic!("bob has a cart in the fixture");
    };
    bobs.lines.truncate(1);
    dynamo.put_records(&[Record::Cart(bobs)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let after = service.answer(BlockKind::Cart, &bob, 4).await;
    assert_eq!(after.json, before.json);
}

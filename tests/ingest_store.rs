//! Events applied on both stores (embedded and DynamoDB Local): any shuffle and duplication of
//! a user's events gives the records and the block answers of applying each once in time
//! order (a property test); concurrent events on one row lose nothing (DynamoDB's conditional
//! writes); an unchanged event writes nothing; a row `data load` wrote takes events. The
//! ignored `bench_ingest_*` test is `scripts/bench-ingest.sh`'s figure.

use futures::stream::{self, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use sendtime_api::BlockService;
use sendtime_domain::ingest::{Event, IngestLimits, Outcome, RawEvent, Row, Skip};
use sendtime_domain::{BlockKind, Cart, CartLine, ItemId, RecList, RulesConfig, User, UserId};
use sendtime_dynamo::DynamoStore;
use sendtime_store::{BlockStore, EventsApply, MemoryStore, Record, RecordsPut, UserDataGet};
use sendtime_tests::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The time `minutes` before the fixture's `now`, as an event writes it.
fn at(minutes: i64) -> String {
    (now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// A validated event from its JSON.
fn event(value: serde_json::Value) -> Event {
    let raw: RawEvent = serde_json::from_value(value).expect("an event object");
    raw.validate(now(), &IngestLimits::default())
        .expect("a valid event")
}

/// A profile as `data load` writes it: dormant 35 days, one unanswered win-back, a few views.
fn loaded_user(id: &str, items: &[ItemId]) -> User {
    User {
        journal: None,
        user_id: uid(id),
        signed_up_at: now() - chrono::Duration::days(300),
        last_active_at: now() - chrono::Duration::days(35),
        activated: true,
        last_purchase_at: Some(now() - chrono::Duration::days(60)),
        preferred_categories: vec!["shoes".into()],
        category_purchases: BTreeMap::from([("shoes".into(), 1)]),
        purchased_items: vec![iid("s1")],
        recent_views: items.iter().take(2).cloned().collect(),
        winback_unanswered: 1,
        features_used: vec![],
        locale: None,
    }
}

/// A user's loaded records and their own catalog items (`<id>-i1` … `<id>-i4`).
fn user_records(id: &str, with_profile: bool) -> (Vec<Record>, Vec<ItemId>) {
    let items: Vec<ItemId> = (1..=4).map(|n| iid(&format!("{id}-i{n}"))).collect();
    let mut records: Vec<Record> = items
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let category = if n % 2 == 0 { "shoes" } else { "bags" };
            Record::Item(item(i.as_str(), category, 3 + n as u32))
        })
        .collect();
    if with_profile {
        records.push(Record::User(loaded_user(id, &items)));
        records.push(Record::Cart(Cart {
            user_id: uid(id),
            updated_at: now() - chrono::Duration::days(3),
            lines: vec![CartLine {
                item_id: items[0].clone(),
                quantity: 1,
            }],
            mark: None,
        }));
        records.push(Record::Recs(RecList {
            user_id: uid(id),
            generated_at: now() - chrono::Duration::days(2),
            expires_at: now() + chrono::Duration::days(7),
            items: vec![items[1].clone(), items[0].clone(), iid("s2")],
            mark: None,
        }));
    }
    (records, items)
}

/// One generated event: (kind, time step, small id, item index, flag). The same tuple is the
/// same event (a redelivery); a small pool makes ties and duplicates of every kind happen.
type Spec = (u8, i64, u8, usize, bool);

fn spec() -> impl Strategy<Value = Spec> {
    (0u8..11, 1i64..40, 0u8..6, 0usize..4, any::<bool>())
}

/// The event `spec` describes for `user` and its `items`.
fn spec_event(spec: &Spec, user: &UserId, items: &[ItemId]) -> Event {
    let (kind, minute, id, item, flag) = *spec;
    let item = items[item].as_str();
    let other = items[(id as usize) % items.len()].as_str();
    let mut value = match kind {
        0 => json!({"type": "cart_updated", "properties": {"products": if flag {
            json!([{"product_id": item, "quantity": id + 1}, {"product_id": other}])
        } else { json!([]) }}}),
        1 => json!({"type": "order_placed", "properties": {"order_id": format!("o{id}"),
            "products": [{"product_id": item}]}}),
        2 => json!({"type": "activity", "properties": if flag { json!({"product_id": item}) }
            else { json!({"feature": format!("f{id}")}) }}),
        3 => json!({"type": "signed_up", "properties":
            if flag { json!({"locale": "en"}) } else { json!({}) }}),
        4 => json!({"type": "key_action"}),
        5 => json!({"type": "message_sent", "properties": {"message_id": format!("m{id}"),
            "block": if flag { "dormancy" } else { "cart" }}}),
        6 => json!({"type": "message_engaged", "properties": {"action": "open"}}),
        7 => json!({"type": "recs_updated", "properties": {"items": [item, other, "s3"]}}),
        8 => json!({"type": "activity"}),
        9 => json!({"type": "item_updated", "properties": if flag {
            json!({"item_id": item, "stock": id % 3})
        } else {
            json!({"item_id": item, "price": 10_000 + u32::from(id) * 100,
                   "discount": if id % 2 == 0 { json!(null) } else { json!({"pct": 10 + id}) }})
        }}),
        _ => json!({"type": "item_removed", "properties": {"item_id": item}}),
    };
    value["id"] = json!(format!("e{kind}-{minute}-{id}-{item}-{flag}"));
    // 90-minute steps: events span 1.5 h to 2.5 days, so carts age into every stage.
    value["time"] = json!(at(minute * 90));
    if kind < 9 {
        value["user_id"] = json!(user.as_str());
    }
    event(value)
}

/// Applies `events` one after another; every event must apply or be unchanged.
async fn apply_in_order(store: &dyn EventsApply, events: &[Event]) -> Result<(), TestCaseError> {
    let limits = IngestLimits::default();
    for e in events {
        if let Err(err) = store.apply_event(e, &limits).await {
            return Err(TestCaseError::fail(format!("{}: {err}", e.id)));
        }
    }
    Ok(())
}

/// Applies `events` four at a time (a queue's concurrent deliveries), in any order.
async fn apply_concurrently(
    store: &dyn EventsApply,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let limits = IngestLimits::default();
    let results: Vec<_> = stream::iter(events)
        .map(|e| {
            let limits = &limits;
            async move { (e, store.apply_event(e, limits).await) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (e, result) in results {
        if let Err(err) = result {
            return Err(TestCaseError::fail(format!("{}: {err}", e.id)));
        }
    }
    Ok(())
}

/// What a store holds and answers for one user: the records, the user's catalog items, and
/// the JSON of every block (no cache, the fixed clock).
#[derive(Debug, PartialEq)]
struct Seen {
    data: sendtime_domain::UserData,
    items: Vec<(ItemId, sendtime_domain::Item)>,
    blocks: Vec<(BlockKind, String)>,
}

async fn seen(store: Arc<dyn BlockStore>, user: &UserId, items: &[ItemId]) -> Seen {
    let data = store
        .user_data(user)
        .await
        .expect("user data")
        .as_ref()
        .clone();
    let catalog = store.items(items).await.expect("items");
    let mut found: Vec<(ItemId, sendtime_domain::Item)> = catalog
        .into_iter()
        .map(|(id, item)| (id, item.as_ref().clone()))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let service = BlockService::new(store, RulesConfig::default(), clock());
    let mut blocks = Vec::new();
    for kind in BlockKind::ALL {
        let answer = service.answer(kind, user, 4).await;
        blocks.push((kind, String::from_utf8_lossy(&answer.json).into_owned()));
    }
    Seen {
        data,
        items: found,
        blocks,
    }
}

/// A memory store holding the shared fixture (catalog, popular lists) and `records`.
async fn memory_with(records: &[Record]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new(clock()));
    load_fixture(store.as_ref()).await;
    store.put_records(records).await.expect("load");
    store
}

/// A DynamoDB Local table holding the shared fixture.
async fn dynamo_with_fixture(prefix: &str) -> Arc<DynamoStore> {
    let store = Arc::new(fresh_dynamo_store(prefix).await.with_clock(clock()));
    load_fixture(store.as_ref()).await;
    store
}

async fn put(store: &dyn RecordsPut, records: &[Record]) {
    let report = store.put_records(records).await.expect("put records");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

/// Shuffles `list` by a seed (a fixed LCG: the same seed, the same order).
fn shuffle<T>(list: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..list.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        list.swap(i, (state >> 33) as usize % (i + 1));
    }
}

#[test]
fn any_shuffle_and_duplication_of_a_users_events_gives_the_records_and_blocks_of_time_order_on_both_stores(
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // GIVEN two DynamoDB Local tables (time order, delivered) holding the fixture; each case
    // uses a user and catalog items of its own
    let (ordered_table, delivered_table) = rt.block_on(async {
        (
            dynamo_with_fixture("ingest-ordered").await,
            dynamo_with_fixture("ingest-delivered").await,
        )
    });
    let case_no = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        rng_seed: RngSeed::Fixed(20261207),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(spec(), 1..20),
        prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        any::<u64>(),
        0u8..4,
    );
    let result = runner.run(&strategy, |(specs, repeats, seed, loaded)| {
        let n = case_no.fetch_add(1, Ordering::Relaxed);
        let id = format!("prop{n}-{}", std::process::id());
        let (records, items) = user_records(&id, loaded != 0);
        let user = uid(&id);
        let events: Vec<Event> = specs.iter().map(|s| spec_event(s, &user, &items)).collect();
        // Each distinct event once, in time order (ties by id) …
        let mut once: Vec<Event> = Vec::new();
        for e in &events {
            if !once.iter().any(|o| o.id == e.id) {
                once.push(e.clone());
            }
        }
        once.sort_by_key(Event::mark);
        // … and as delivered: duplicated and shuffled.
        let mut delivered = events.clone();
        delivered.extend(repeats.iter().map(|r| r.get(&events).clone()));
        shuffle(&mut delivered, seed);
        rt.block_on(async {
            // WHEN each store takes the user's loaded records, then the events — once in
            // time order on one, delivered four at a time on the other
            let memory_ordered = memory_with(&records).await;
            let memory_delivered = memory_with(&records).await;
            put(ordered_table.as_ref(), &records).await;
            put(delivered_table.as_ref(), &records).await;
            apply_in_order(memory_ordered.as_ref(), &once).await?;
            apply_concurrently(memory_delivered.as_ref(), &delivered).await?;
            apply_in_order(ordered_table.as_ref(), &once).await?;
            apply_concurrently(delivered_table.as_ref(), &delivered).await?;
            // THEN the records read back and every block's JSON are the same on all four
            let expected = seen(memory_ordered, &user, &items).await;
            let got = seen(memory_delivered, &user, &items).await;
            prop_assert_eq!(&got, &expected, "embedded store, delivered vs time order");
            let dynamo_ordered = seen(ordered_table.clone(), &user, &items).await;
            prop_assert_eq!(
                &dynamo_ordered,
                &expected,
                "DynamoDB vs embedded, time order"
            );
            let dynamo_delivered = seen(delivered_table.clone(), &user, &items).await;
            prop_assert_eq!(
                &dynamo_delivered,
                &expected,
                "DynamoDB, delivered vs time order"
            );
            Ok(())
        })
    });
    rt.block_on(async {
        let _ = ordered_table.delete_table().await;
        let _ = delivered_table.delete_table().await;
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(case_no.load(Ordering::Relaxed) >= 32, "every case ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_events_on_one_profile_all_land_through_conditional_writes() {
    // GIVEN a profile written by `data load` on DynamoDB Local
    let store = fresh_dynamo_store("ingest-conflict")
        .await
        .with_clock(clock());
    let (records, _) = user_records("racer", true);
    put(&store, &records).await;
    // WHEN 20 distinct win-back sends for that user are applied at once
    let events: Vec<Event> = (0..20)
        .map(|n| {
            event(json!({"id": format!("send-{n}"), "type": "message_sent",
                "user_id": "racer", "time": at(30 - n),
                "properties": {"message_id": format!("wb-{n}"), "block": "dormancy"}}))
        })
        .collect();
    let limits = IngestLimits::default();
    let outcomes =
        futures::future::join_all(events.iter().map(|e| store.apply_event(e, &limits))).await;
    // THEN every one changed the profile, some had to retry, and every send is in the record
    for (e, outcome) in events.iter().zip(&outcomes) {
        assert!(
            matches!(outcome, Ok(Outcome::Changed(Row::Profile))),
            "{}: {outcome:?}",
            e.id
        );
    }
    assert!(
        store.ingest_conflicts() > 0,
        "20 concurrent writes to one row should have conflicted at least once"
    );
    let profile = store
        .user_data(&uid("racer"))
        .await
        .unwrap()
        .profile
        .clone()
        .unwrap();
    let journal = profile.journal.as_ref().expect("a journal");
    let mut sent: Vec<&str> = journal.winbacks.iter().map(|s| s.id.as_str()).collect();
    sent.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("wb-{n}")).collect();
    expected.sort();
    assert_eq!(sent, expected);
    // one loaded unanswered win-back + 20 sent after the last activity
    assert_eq!(profile.winback_unanswered, 21);
    let _ = store.delete_table().await;
}

#[tokio::test]
async fn an_unchanged_event_reads_once_and_writes_nothing_and_capacity_is_reported() {
    // GIVEN a loaded profile on DynamoDB Local and a key action applied once
    let store = fresh_dynamo_store("ingest-unchanged")
        .await
        .with_clock(clock());
    let (records, _) = user_records("quiet", true);
    put(&store, &records).await;
    let key_action = event(json!({"id": "k1", "type": "key_action", "user_id": "quiet",
        "time": at(5)}));
    let limits = IngestLimits::default();
    assert_eq!(
        store.apply_event(&key_action, &limits).await.unwrap(),
        Outcome::Changed(Row::Profile)
    );
    let (read_once, written_once) = store.ingest_capacity();
    assert!(
        read_once >= 1.0 && written_once >= 1.0,
        "DynamoDB Local reports consumed capacity: ({read_once}, {written_once})"
    );
    let trips = store.round_trips();
    // WHEN the same event arrives again
    let again = store.apply_event(&key_action, &limits).await.unwrap();
    // THEN nothing changed: one read (its units counted), no write at all
    assert_eq!(again, Outcome::Unchanged(Skip::Duplicate));
    assert_eq!(store.round_trips(), trips + 1, "one GetItem, no PutItem");
    let (read_twice, written_twice) = store.ingest_capacity();
    assert_eq!(written_twice, written_once);
    assert!(read_twice > read_once, "{read_twice} vs {read_once}");
    let _ = store.delete_table().await;
}

/// The raw item at (pk, sk) on DynamoDB Local.
async fn raw_item(
    table: &str,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodb::types::AttributeValue;
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(dynamodb_endpoint())
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem on DynamoDB Local")
        .item
}

fn rev_of(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Option<String> {
    item.get("rev").and_then(|v| v.as_n().ok()).cloned()
}

#[tokio::test]
async fn a_row_written_by_data_load_takes_events_and_a_reload_does_not_block_the_next_one() {
    // GIVEN a profile and a cart written by `data load` (no `rev`)
    let store = fresh_dynamo_store("ingest-loaded")
        .await
        .with_clock(clock());
    let (records, items) = user_records("loaded", true);
    put(&store, &records).await;
    let table = store.table().to_owned();
    let before = raw_item(&table, "USER#loaded", "PROFILE").await.unwrap();
    assert_eq!(rev_of(&before), None);
    let limits = IngestLimits::default();
    // WHEN a key action and a newer cart arrive
    let key_action = event(
        json!({"id": "k1", "type": "key_action", "user_id": "loaded",
        "time": at(5)}),
    );
    let cart = event(
        json!({"id": "c1", "type": "cart_updated", "user_id": "loaded",
        "time": at(4), "properties": {"products": [{"product_id": items[2].as_str()}]}}),
    );
    for e in [&key_action, &cart] {
        assert!(matches!(
            store.apply_event(e, &limits).await,
            Ok(Outcome::Changed(_))
        ));
    }
    // THEN both rows carry the event and rev 1, encoded as `data load` encodes them
    let profile = raw_item(&table, "USER#loaded", "PROFILE").await.unwrap();
    assert_eq!(rev_of(&profile).as_deref(), Some("1"));
    assert_eq!(
        profile
            .get("kind")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("user")
    );
    let data = store.user_data(&uid("loaded")).await.unwrap();
    let cart_read = data.cart.as_ref().unwrap();
    assert_eq!(cart_read.lines[0].item_id, items[2]);
    let journal = data.profile.as_ref().unwrap().journal.clone().unwrap();
    assert_eq!(
        journal.active_at,
        Some(now() - chrono::Duration::minutes(5))
    );
    // WHEN `data load` writes the profile again (no `rev`) and another event arrives
    put(&store, &records[records.len() - 3..records.len() - 2]).await;
    assert_eq!(
        rev_of(&raw_item(&table, "USER#loaded", "PROFILE").await.unwrap()),
        None
    );
    let sent = event(
        json!({"id": "m1", "type": "message_sent", "user_id": "loaded",
        "time": at(3), "properties": {"message_id": "wb", "block": "dormancy"}}),
    );
    // THEN it applies to the reloaded row (rev 1 again), and a recs row made by an event
    // carries its `ttl` like a loaded one
    assert_eq!(
        store.apply_event(&sent, &limits).await.unwrap(),
        Outcome::Changed(Row::Profile)
    );
    let reloaded = raw_item(&table, "USER#loaded", "PROFILE").await.unwrap();
    assert_eq!(rev_of(&reloaded).as_deref(), Some("1"));
    let recs = event(
        json!({"id": "r1", "type": "recs_updated", "user_id": "fresh",
        "time": at(2), "properties": {"items": [items[0].as_str()]}}),
    );
    assert_eq!(
        store.apply_event(&recs, &limits).await.unwrap(),
        Outcome::Changed(Row::Recs)
    );
    let made = raw_item(&table, "USER#fresh", "RECS").await.unwrap();
    let expires = (now() - chrono::Duration::minutes(2) + chrono::Duration::days(7)).timestamp();
    assert_eq!(
        made.get("ttl").and_then(|v| v.as_n().ok()).cloned(),
        Some(expires.to_string())
    );
    assert_eq!(rev_of(&made).as_deref(), Some("1"));
    let _ = store.delete_table().await;
}

#[tokio::test]
async fn an_item_event_the_rules_refuse_is_refused_on_dynamodb_and_writes_nothing() {
    // GIVEN an empty table
    let store = fresh_dynamo_store("ingest-refused")
        .await
        .with_clock(clock());
    // WHEN an item_updated names an unknown item with only a price
    let e = event(json!({"id": "p1", "type": "item_updated", "time": at(1),
        "properties": {"item_id": "nowhere", "price": 100}}));
    let result = store.apply_event(&e, &IngestLimits::default()).await;
    // THEN the rules refuse it (unknown_item) and no write was sent
    match result {
        Err(sendtime_store::ApplyError::Refused(refused)) => {
            assert_eq!(refused.code, "unknown_item")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.ingest_capacity().1, 0.0);
    assert!(raw_item(store.table(), "ITEM#nowhere", "ITEM")
        .await
        .is_none());
    let _ = store.delete_table().await;
}

#[tokio::test]
async fn a_row_that_changes_under_every_round_is_a_retryable_failure_after_the_last_attempt() {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::mock;
    // GIVEN DynamoDB (mocked) where the row is absent at every read and another writer always
    // wins the conditional write
    let get = mock!(Client::get_item)
        .sequence()
        .output(|| GetItemOutput::builder().build())
        .repeatedly()
        .build();
    let put = mock!(Client::put_item)
        .sequence()
        .http_status(
            400,
            Some(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#
                    .to_owned(),
            ),
        )
        .repeatedly()
        .build();
    let interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny)
        .with_rule(&get)
        .with_rule(&put);
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    let store = DynamoStore::new(
        Client::from_conf(config),
        "mocked",
        std::time::Duration::from_secs(1),
    );
    // WHEN a cart arrives
    let cart = event(
        json!({"id": "c1", "type": "cart_updated", "user_id": "busy",
        "time": at(1), "properties": {"products": [{"product_id": "s1"}]}}),
    );
    let result = store.apply_event(&cart, &IngestLimits::default()).await;
    // THEN it was read and tried APPLY_ATTEMPTS times, and the failure says "send it again"
    let attempts = sendtime_dynamo::APPLY_ATTEMPTS as usize;
    assert_eq!((get.num_calls(), put.num_calls()), (attempts, attempts));
    assert_eq!(store.ingest_conflicts(), attempts as u64);
    match result {
        Err(sendtime_store::ApplyError::Store(e)) => {
            assert!(e.is_retryable(), "{e}");
            assert!(e.to_string().contains("USER#busy/CART"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// The benchmark behind `scripts/bench-ingest.sh`.
#[path = "ingest_store/bench.rs"]
mod bench;

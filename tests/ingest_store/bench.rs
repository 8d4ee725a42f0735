//! The ingest benchmark (`scripts/bench-ingest.sh`, ignored in test runs): events per second
//! one process applies to DynamoDB Local, and the read and write units each event type costs.

use super::*;

/// DynamoDB's size of one attribute value, by AWS's rules:
///
/// > "Strings … (number of UTF-8-encoded bytes of attribute name) + (number of UTF-8-encoded
/// > bytes). Numbers … approximately (number of UTF-8-encoded bytes of attribute name) + (1
/// > byte per two significant digits) + (1 byte). … The size of a null attribute or a Boolean
/// > attribute is (number of UTF-8-encoded bytes of attribute name) + (1 byte). An attribute
/// > of type List or Map requires 3 bytes of overhead, regardless of its contents. … each List
/// > or Map element also requires 1 byte of overhead"
/// > — <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>
fn value_size(value: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match value {
        V::S(s) => s.len(),
        V::N(n) => {
            let digits = n
                .trim_matches(|c: char| !c.is_ascii_digit() || c == '0')
                .len();
            digits.div_ceil(2) + 1
        }
        V::Bool(_) | V::Null(_) => 1,
        V::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        V::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// DynamoDB's size of a whole item (names + values).
fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One event of `kind` for a user of the bench, `minutes` before now, with a unique id `n`.
fn bench_event(
    kind: sendtime_domain::ingest::EventKind,
    n: usize,
    user: usize,
    minutes: i64,
    rng: &mut impl rand::Rng,
    catalog: usize,
) -> serde_json::Value {
    use sendtime_domain::ingest::EventKind as K;
    let item = |rng: &mut dyn rand::RngCore| format!("bi{:04}", rng.next_u32() as usize % catalog);
    let properties = match kind {
        K::CartUpdated => {
            let lines = 1 + rng.random_range(0..3);
            json!({"cart_id": format!("cart-{user}"), "currency": "KRW", "total_value": 39_000,
                "source": "web", "products": (0..lines).map(|_| json!({"product_id": item(rng),
                "quantity": 1, "price": 12_900})).collect::<Vec<_>>()})
        }
        K::OrderPlaced => json!({"order_id": format!("order-{n}"), "currency": "KRW",
            "total_value": 12_900, "products": [{"product_id": item(rng), "quantity": 1}]}),
        K::Activity if rng.random_bool(0.7) => json!({"product_id": item(rng)}),
        K::Activity => json!({}),
        K::SignedUp => json!({"locale": "ko"}),
        K::KeyAction | K::MessageEngaged => json!({}),
        K::MessageSent => json!({"message_id": format!("msg-{n}"),
            "block": if rng.random_bool(0.3) { "dormancy" } else { "recommendations" }}),
        K::ItemUpdated => json!({"item_id": item(rng), "stock": rng.random_range(0..20),
            "price": 10_000 + rng.random_range(0..50) * 100}),
        K::ItemRemoved => json!({"item_id": format!("bi{:04}", catalog + n % catalog)}),
        K::RecsUpdated => json!({"items": (0..10).map(|_| item(rng)).collect::<Vec<_>>()}),
    };
    let mut value = json!({"id": format!("bench-{n}"), "type": kind.as_str(),
        "time": at(minutes), "properties": properties});
    if !kind.is_item_event() {
        value["user_id"] = json!(format!("bu{user:05}"));
    }
    value
}

/// Events per second one process applies to DynamoDB Local (batches of 100, each applied
/// `APPLY_CONCURRENCY` at a time, as one `POST /v1/events` or one SQS batch is), and the read
/// and write units each event type costs with the profile sizes that drive them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-ingest.sh"]
async fn bench_ingest_events_per_second_and_units_per_event_type() {
    use rand::{Rng, SeedableRng};
    use sendtime_api::ingest::{Ingest, Summary, APPLY_CONCURRENCY};
    use sendtime_domain::ingest::EventKind as K;
    let users = env_or("INGEST_BENCH_USERS", 2_000);
    let total = env_or("INGEST_BENCH_EVENTS", 6_000);
    let per_kind = env_or("INGEST_BENCH_PER_TYPE", 200);
    let catalog = 200;
    let store = Arc::new(fresh_dynamo_store("ingest-bench").await.with_clock(clock()));
    // GIVEN 2,000 users loaded as `data load` would (profile, cart, list) and 400 items
    let mut records: Vec<Record> = (0..catalog * 2)
        .map(|i| Record::Item(item(&format!("bi{i:04}"), "shoes", 50)))
        .collect();
    for u in 0..users {
        let id = format!("bu{u:05}");
        let (mut recs, _) = user_records(&id, true);
        recs.retain(|r| !matches!(r, Record::Item(_)));
        records.extend(recs);
    }
    let load = std::time::Instant::now();
    for chunk in records.chunks(1_000) {
        put(store.as_ref(), chunk).await;
    }
    println!(
        "bench-ingest: loaded {} records ({users} users) in {:.1} s",
        records.len(),
        load.elapsed().as_secs_f64()
    );
    let ingest = Ingest::new(store.clone(), Arc::new(()), clock());
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    // A day's mix: sessions and views most, then carts and sends.
    let mix = [
        (K::Activity, 40),
        (K::CartUpdated, 15),
        (K::MessageSent, 15),
        (K::MessageEngaged, 10),
        (K::OrderPlaced, 5),
        (K::RecsUpdated, 5),
        (K::ItemUpdated, 5),
        (K::KeyAction, 3),
        (K::SignedUp, 2),
    ];
    let weights: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut n = 0;
    let mut next = |kind: K, rng: &mut rand::rngs::StdRng, minutes: i64| {
        n += 1;
        let user = rng.random_range(0..users);
        bench_event(kind, n, user, minutes, rng, catalog)
    };
    let mixed: Vec<serde_json::Value> = (0..total)
        .map(|_| {
            let mut pick = rng.random_range(0..weights);
            let kind = mix
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or(K::Activity, |(k, _)| *k);
            let minutes = rng.random_range(60..24 * 60);
            next(kind, &mut rng, minutes)
        })
        .collect();
    // WHEN the mix is applied in batches of 100, one batch after another
    let started = std::time::Instant::now();
    let before = store.ingest_capacity();
    let mut summary = Summary::default();
    for batch in mixed.chunks(100) {
        let s = Summary::of(&ingest.apply_batch(batch.to_vec()).await);
        summary.applied += s.applied;
        summary.unchanged += s.unchanged;
        summary.rejected += s.rejected;
        summary.failed += s.failed;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = store.ingest_capacity();
    // THEN the rate, and every event accounted for
    println!(
        "bench-ingest: mixed {total} events over {users} users: {:.0} events/s ({secs:.1} s, \
         APPLY_CONCURRENCY {APPLY_CONCURRENCY}, batches of 100); applied {}, unchanged {}, \
         rejected {}, failed {}; conflicts {}; {:.2} RCU and {:.2} WCU per event",
        total as f64 / secs,
        summary.applied,
        summary.unchanged,
        summary.rejected,
        summary.failed,
        store.ingest_conflicts(),
        (after.0 - before.0) / total as f64,
        (after.1 - before.1) / total as f64,
    );
    assert_eq!(summary.rejected + summary.failed, 0, "{summary:?}");
    // AND per event type: the units one event costs, on the profiles the mix left
    println!(
        "bench-ingest: | event type | events | applied | RCU/event | WCU/event | WCU/applied |"
    );
    for kind in K::ALL {
        let events: Vec<serde_json::Value> = (0..per_kind)
            .map(|_| next(kind, &mut rng, PER_TYPE_MINUTES))
            .collect();
        let before = store.ingest_capacity();
        let mut applied = 0;
        for batch in events.chunks(100) {
            applied += Summary::of(&ingest.apply_batch(batch.to_vec()).await).applied;
        }
        let after = store.ingest_capacity();
        println!(
            "bench-ingest: | {} | {per_kind} | {applied} | {:.2} | {:.2} | {:.2} |",
            kind.as_str(),
            (after.0 - before.0) / per_kind as f64,
            (after.1 - before.1) / per_kind as f64,
            (after.1 - before.1) / applied.max(1) as f64,
        );
    }
    let mut sizes: Vec<usize> = Vec::new();
    for u in (0..users).step_by((users / 100).max(1)) {
        if let Some(item) = raw_item(store.table(), &format!("USER#bu{u:05}"), "PROFILE").await {
            sizes.push(item_size(&item));
        }
    }
    sizes.sort_unstable();
    let pct = |p: usize| {
        sizes
            .get(sizes.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "bench-ingest: profile item size over {} sampled users: median {} B, p90 {} B, max {} B",
        sizes.len(),
        pct(50),
        pct(90),
        sizes.last().copied().unwrap_or_default()
    );
    full_journal_units(&ingest, &store).await;
    let _ = store.delete_table().await;
}

/// The units of one more profile event on profiles whose journal is full (the newest
/// win-back sends, orders and views each, `IngestLimits::window`): the largest a profile gets.
async fn full_journal_units(ingest: &sendtime_api::ingest::Ingest, store: &DynamoStore) {
    use sendtime_api::ingest::Summary;
    let window = IngestLimits::default().window as i64;
    let users: Vec<String> = (0..5).map(|u| format!("full{u:02}")).collect();
    let mut filler = Vec::new();
    // Users interleaved, so a batch's concurrent events spread over the ten rows.
    for k in 0..window {
        for user in &users {
            let at = at(600 + k);
            filler.push(json!({"id": format!("{user}-v{k}"), "type": "activity",
                "user_id": user, "time": at, "properties": {"product_id": format!("bi{k:04}")}}));
            filler.push(json!({"id": format!("{user}-s{k}"), "type": "message_sent",
                "user_id": user, "time": at, "properties": {"message_id": format!("wb-{user}-{k}"),
                "block": "dormancy"}}));
            filler.push(json!({"id": format!("{user}-o{k}"), "type": "order_placed",
                "user_id": user, "time": at, "properties": {"order_id": format!("ord-{user}-{k}"),
                "products": [{"product_id": format!("bi{:04}", k + 50)}]}}));
        }
    }
    for batch in filler.chunks(100) {
        let s = Summary::of(&ingest.apply_batch(batch.to_vec()).await);
        assert_eq!(s.rejected + s.failed, 0, "{s:?}");
    }
    let mut sizes: Vec<usize> = Vec::new();
    for user in &users {
        if let Some(item) = raw_item(store.table(), &format!("USER#{user}"), "PROFILE").await {
            sizes.push(item_size(&item));
        }
    }
    let next: Vec<serde_json::Value> = users
        .iter()
        .map(|user| {
            json!({"id": format!("{user}-next"), "type": "message_sent", "user_id": user,
            "time": at(5), "properties": {"message_id": format!("wb-{user}-next"),
            "block": "dormancy"}})
        })
        .collect();
    let before = store.ingest_capacity();
    let applied = Summary::of(&ingest.apply_batch(next).await).applied;
    let after = store.ingest_capacity();
    println!(
        "bench-ingest: full journal ({} sends, orders, views each; profile {}–{} B): \
         message_sent {:.2} RCU and {:.2} WCU per event ({applied} of {} applied)",
        window,
        sizes.iter().min().copied().unwrap_or_default(),
        sizes.iter().max().copied().unwrap_or_default(),
        (after.0 - before.0) / users.len() as f64,
        (after.1 - before.1) / users.len() as f64,
        users.len()
    );
}

/// Minutes ago of the per-type phase's events: after all of the mix's (none of them stale).
const PER_TYPE_MINUTES: i64 = 30;

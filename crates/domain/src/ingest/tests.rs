//! The ingest rules: validation, each event's effect, and order independence (proptest: any
//! shuffle and duplication of a user's events gives the records of applying each once in
//! time order).

use super::*;
use crate::ids::UserId;
use crate::model::{Cart, CartLine, Item, RecList, User};
use crate::rules::test_support::user;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn raw(value: serde_json::Value) -> RawEvent {
    serde_json::from_value(value).unwrap()
}

fn event(value: serde_json::Value) -> Event {
    raw(value)
        .validate(now(), &IngestLimits::default())
        .unwrap()
}

fn at(minutes: i64) -> String {
    (now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn apply_all(records: &mut UserRecords, events: &[Event]) -> Vec<Outcome> {
    events
        .iter()
        .map(|e| apply_to_user(records, e, &IngestLimits::default()))
        .collect()
}

#[test]
fn a_braze_cart_updated_payload_is_taken_as_it_is() {
    let e = event(json!({
        "id": "e1", "type": "ecommerce.cart_updated", "user_id": "u1", "time": at(10),
        "properties": {
            "cart_id": "cart_abc123", "total_value": 234.96, "currency": "USD", "source": "web",
            "products": [
                {"product_id": "SKU-1", "product_name": "Shoe", "variant_id": "S-11",
                 "quantity": 1, "price": 189.99, "metadata": {"size": 11}},
                {"product_id": "SKU-2", "product_name": "Sock", "variant_id": "K-1",
                 "quantity": 2, "price": 9.99},
                {"product_id": "SKU-1", "product_name": "Shoe", "variant_id": "S-10",
                 "quantity": 1, "price": 189.99}
            ],
            "metadata": {"channel": "app"}
        }
    }));
    assert_eq!(e.kind(), EventKind::CartUpdated);
    let mut records = UserRecords::default();
    assert_eq!(
        apply_all(&mut records, std::slice::from_ref(&e)),
        [Outcome::Changed(Row::Cart)]
    );
    let cart = records.cart.unwrap();
    assert_eq!(
        cart.lines,
        [
            CartLine {
                item_id: ItemId::new("SKU-1"),
                quantity: 2
            },
            CartLine {
                item_id: ItemId::new("SKU-2"),
                quantity: 2
            }
        ]
    );
    assert_eq!(cart.updated_at, e.time);
}

#[test]
fn bad_events_are_refused_with_a_code_naming_the_field() {
    let limits = IngestLimits::default();
    let cases = [
        (
            json!({"id": "e", "type": "nope", "user_id": "u1", "time": at(1)}),
            "unknown_type",
        ),
        (
            json!({"type": "activity", "user_id": "u1", "time": at(1)}),
            "missing_field",
        ),
        (
            json!({"id": "e", "type": "activity", "user_id": "u1"}),
            "missing_field",
        ),
        (
            json!({"id": "e", "type": "activity", "time": at(1)}),
            "missing_field",
        ),
        (
            json!({"id": "e", "type": "activity", "user_id": "../x", "time": at(1)}),
            "invalid_user_id",
        ),
        (
            json!({"id": "e", "type": "activity", "user_id": "u1", "time": at(-60)}),
            "time_in_future",
        ),
        (
            json!({"id": "e", "type": "activity", "user_id": "u1", "time": "yesterday"}),
            "invalid_field",
        ),
        (
            json!({"id": "e", "type": "cart_updated", "user_id": "u1", "time": at(1),
                "properties": {"products": [{"quantity": 1}]}}),
            "missing_field",
        ),
        (
            json!({"id": "e", "type": "cart_updated", "user_id": "u1", "time": at(1),
                "properties": {"products": [{"product_id": "", "quantity": 1}]}}),
            "invalid_item_id",
        ),
        (
            json!({"id": "e", "type": "cart_updated", "user_id": "u1", "time": at(1),
                "properties": {"products": [{"product_id": "a", "quantity": 0}]}}),
            "invalid_field",
        ),
        (
            json!({"id": "e", "type": "order_placed", "user_id": "u1", "time": at(1),
                "properties": {"products": []}}),
            "missing_field",
        ),
        (
            json!({"id": "e", "type": "item_updated", "time": at(1),
                "properties": {"item_id": "i1"}}),
            "invalid_field",
        ),
        (
            json!({"id": "e", "type": "item_updated", "time": at(1),
                "properties": {"item_id": "i1", "colour": "red"}}),
            "invalid_field",
        ),
        (
            json!({"id": "e", "type": "item_removed", "user_id": "u1", "time": at(1),
                "properties": {"item_id": "i1"}}),
            "invalid_field",
        ),
        (
            json!({"id": "e", "type": "activity", "user_id": "u1", "time": at(1),
                "properties": []}),
            "invalid_field",
        ),
    ];
    for (value, code) in cases {
        let err = raw(value.clone()).validate(now(), &limits).unwrap_err();
        assert_eq!(err.code, code, "{value}: {err}");
        assert!(EventError::CODES.contains(&err.code) || err.code == "unknown_item");
    }
    // A small clock skew is allowed; Unix seconds are accepted.
    let skew = (now() + chrono::Duration::minutes(2)).timestamp();
    assert!(
        raw(json!({"id": "e", "type": "activity", "user_id": "u1", "time": skew}))
            .validate(now(), &limits)
            .is_ok()
    );
}

#[test]
fn an_older_cart_never_overwrites_a_newer_one_and_a_later_order_ends_the_cart() {
    let new_cart = event(json!({"id": "c2", "type": "cart_updated", "user_id": "u1",
        "time": at(30), "properties": {"products": [{"product_id": "i2"}]}}));
    let old_cart = event(json!({"id": "c1", "type": "cart_updated", "user_id": "u1",
        "time": at(60), "properties": {"products": [{"product_id": "i1"}]}}));
    let order = event(json!({"id": "o1", "type": "order_placed", "user_id": "u1",
        "time": at(20), "properties": {"order_id": "A-1", "products": [{"product_id": "i2"}]}}));
    let mut records = UserRecords::default();
    let outcomes = apply_all(
        &mut records,
        &[order.clone(), new_cart.clone(), old_cart, new_cart],
    );
    assert_eq!(
        outcomes,
        [
            Outcome::Changed(Row::Profile),
            Outcome::Changed(Row::Cart),
            Outcome::Unchanged(Skip::Stale),
            Outcome::Unchanged(Skip::Duplicate)
        ]
    );
    let cart = records.cart.as_ref().unwrap();
    assert_eq!(cart.lines[0].item_id, ItemId::new("i2"));
    let profile = records.profile.as_ref().unwrap();
    assert!(profile.last_purchase_at.unwrap() >= cart.updated_at);
    assert_eq!(profile.purchased_items, [ItemId::new("i2")]);
    assert_eq!(
        apply_all(&mut records, &[order]),
        [Outcome::Unchanged(Skip::Duplicate)]
    );
}

#[test]
fn a_winback_sent_twice_counts_once_and_any_response_answers_it() {
    let mut u = user("u1");
    u.last_active_at = now() - chrono::Duration::days(40);
    u.winback_unanswered = 1;
    let mut records = UserRecords {
        profile: Some(u),
        ..Default::default()
    };
    let sent = event(
        json!({"id": "s1", "type": "message_sent", "user_id": "u1", "time": at(100),
        "properties": {"message_id": "d-1", "block": "dormancy"}}),
    );
    let resent = event(
        json!({"id": "s1-again", "type": "message_sent", "user_id": "u1",
        "time": at(100), "properties": {"message_id": "d-1", "block": "dormancy"}}),
    );
    let other = event(
        json!({"id": "s2", "type": "message_sent", "user_id": "u1", "time": at(90),
        "properties": {"message_id": "n-1", "block": "recommendations"}}),
    );
    apply_all(&mut records, &[sent.clone(), resent, sent, other]);
    assert_eq!(records.profile.as_ref().unwrap().winback_unanswered, 2);
    let open = event(
        json!({"id": "m1", "type": "message_engaged", "user_id": "u1",
        "time": at(50), "properties": {"action": "open"}}),
    );
    apply_all(&mut records, &[open]);
    let profile = records.profile.as_ref().unwrap();
    assert_eq!(profile.winback_unanswered, 0);
    // Engagement is not activity: the user is still dormant.
    assert_eq!(profile.last_active_at, now() - chrono::Duration::days(40));
}

#[test]
fn a_key_action_activates_and_a_view_and_a_feature_are_recorded() {
    let mut records = UserRecords {
        profile: Some(user("u1")),
        ..Default::default()
    };
    let events = [
        event(
            json!({"id": "a1", "type": "activity", "user_id": "u1", "time": at(5),
            "properties": {"product_id": "i9"}}),
        ),
        event(
            json!({"id": "a2", "type": "activity", "user_id": "u1", "time": at(4),
            "properties": {"feature": "wishlist"}}),
        ),
        event(json!({"id": "k1", "type": "key_action", "user_id": "u1", "time": at(3)})),
    ];
    apply_all(&mut records, &events);
    let profile = records.profile.unwrap();
    assert!(profile.activated);
    assert_eq!(profile.recent_views[0], ItemId::new("i9"));
    assert!(profile.features_used.contains(&"wishlist".to_owned()));
    assert_eq!(profile.last_active_at, now() - chrono::Duration::minutes(3));
}

#[test]
fn item_fields_are_each_set_by_the_newest_event_that_names_them() {
    let mut item = Some(crate::rules::test_support::item("i1", "shoes", 10_000));
    let price = event(json!({"id": "p", "type": "item_updated", "time": at(10),
        "properties": {"item_id": "i1", "price": 9000}}));
    let stock = event(json!({"id": "s", "type": "item_updated", "time": at(20),
        "properties": {"item_id": "i1", "stock": 0, "price": 8000}}));
    assert_eq!(
        apply_to_item(&mut item, &price),
        Ok(Outcome::Changed(Row::Item))
    );
    // Older: its stock applies (no newer event set stock), its price does not.
    assert_eq!(
        apply_to_item(&mut item, &stock),
        Ok(Outcome::Changed(Row::Item))
    );
    let i = item.as_ref().unwrap();
    assert_eq!((i.price, i.stock, i.in_stock()), (9000, 0, false));
    assert_eq!(
        apply_to_item(&mut item, &stock),
        Ok(Outcome::Unchanged(Skip::Duplicate))
    );
    let removed = event(json!({"id": "r", "type": "item_removed", "time": at(1),
        "properties": {"item_id": "i1"}}));
    let restock = event(json!({"id": "s2", "type": "item_updated", "time": at(0),
        "properties": {"item_id": "i1", "stock": 5}}));
    apply_to_item(&mut item, &removed).unwrap();
    apply_to_item(&mut item, &restock).unwrap();
    assert!(!item.as_ref().unwrap().in_stock(), "removed stays removed");
    // An unknown item needs every field.
    let mut none: Option<Item> = None;
    assert_eq!(
        apply_to_item(&mut none, &price).unwrap_err().code,
        "unknown_item"
    );
    let full = event(json!({"id": "n", "type": "item_updated", "time": at(1),
        "properties": {"item_id": "i2", "title": "Hat", "category": "hats", "url": "https://x/i2",
        "image_url": "https://x/i2.jpg", "price": 1000, "currency": "KRW", "stock": 3}}));
    assert_eq!(
        apply_to_item(&mut none, &full),
        Ok(Outcome::Changed(Row::Item))
    );
    assert_eq!(none.unwrap().title, "Hat");
}

#[test]
fn a_newer_recommendation_list_replaces_an_older_one_only() {
    let mut records = UserRecords {
        recs: Some(RecList {
            user_id: UserId::parse("u1").unwrap(),
            generated_at: now() - chrono::Duration::hours(2),
            expires_at: now() + chrono::Duration::days(1),
            items: vec![ItemId::new("old")],
            mark: None,
        }),
        ..Default::default()
    };
    let older = event(
        json!({"id": "r0", "type": "recs_updated", "user_id": "u1", "time": at(1),
        "properties": {"items": ["x"], "generated_at": at(180)}}),
    );
    let newer = event(
        json!({"id": "r1", "type": "recs_updated", "user_id": "u1", "time": at(1),
        "properties": {"items": ["a", "b", "a"]}}),
    );
    assert_eq!(
        apply_all(&mut records, &[older, newer]),
        [Outcome::Unchanged(Skip::Stale), Outcome::Changed(Row::Recs)]
    );
    let recs = records.recs.unwrap();
    assert_eq!(recs.items, [ItemId::new("a"), ItemId::new("b")]);
    assert_eq!(
        recs.expires_at,
        recs.generated_at + chrono::Duration::days(7)
    );
}

/// A user's possible events: a small pool of ids and times so that ties and duplicates of
/// every kind happen.
fn user_event() -> impl Strategy<Value = Event> {
    let minute = 0i64..40;
    let id = 0u8..6;
    let item = prop::sample::select(vec!["i1", "i2", "i3", "i4"]);
    let kind = 0u8..9;
    (kind, minute, id, item, any::<bool>()).prop_map(|(kind, minute, id, item, flag)| {
        let time = at(minute + 1);
        // The same id is always the same event (a redelivery), never two.
        let eid = format!("e{kind}-{minute}-{id}-{item}-{flag}");
        let value = match kind {
            0 => json!({"type": "cart_updated", "properties": {"products":
                if flag { json!([{"product_id": item, "quantity": id + 1}]) } else { json!([]) }}}),
            1 => json!({"type": "order_placed", "properties": {"order_id": format!("o{id}"),
                "products": [{"product_id": item}]}}),
            2 => json!({"type": "activity", "properties":
                if flag { json!({"product_id": item}) } else { json!({"feature": format!("f{id}")}) }}),
            3 => json!({"type": "signed_up", "properties": if flag { json!({"locale": "en"}) } else { json!({}) }}),
            4 => json!({"type": "key_action"}),
            5 => json!({"type": "message_sent", "properties": {"message_id": format!("m{id}"),
                "block": if flag { "dormancy" } else { "cart" }}}),
            6 => json!({"type": "message_engaged", "properties": {"action": "open"}}),
            7 => json!({"type": "recs_updated", "properties": {"items": [item, "i1"]}}),
            _ => json!({"type": "activity"}),
        };
        let mut value = value;
        value["id"] = json!(eid);
        value["user_id"] = json!("u1");
        value["time"] = json!(time);
        event(value)
    })
}

fn loaded_user() -> User {
    let mut u = user("u1");
    u.last_active_at = now() - chrono::Duration::days(35);
    u.winback_unanswered = 1;
    u.recent_views = vec![ItemId::new("i3"), ItemId::new("v9")];
    u.purchased_items = vec![ItemId::new("p1")];
    u
}

fn apply_in(order: &[Event], start: &UserRecords, limits: &IngestLimits) -> UserRecords {
    let mut records = start.clone();
    for e in order {
        apply_to_user(&mut records, e, limits);
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(20261207), ..ProptestConfig::default() })]

    /// Any shuffle and duplication of a user's events gives the records of applying each
    /// once in time order, from nothing and from a loaded profile and cart.
    #[test]
    fn any_order_and_any_repeats_give_the_records_of_time_order(
        events in prop::collection::vec(user_event(), 1..24),
        shuffle in any::<prop::sample::Index>(),
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        loaded in any::<bool>(),
    ) {
        let limits = IngestLimits::default();
        let start = if loaded {
            UserRecords {
                profile: Some(loaded_user()),
                cart: Some(Cart {
                    user_id: UserId::parse("u1").unwrap(),
                    updated_at: now() - chrono::Duration::minutes(20),
                    lines: vec![CartLine { item_id: ItemId::new("i1"), quantity: 1 }],
                    mark: None,
                }),
                recs: None,
            }
        } else {
            UserRecords::default()
        };
        // Each distinct event once, in time order (ties by id).
        let mut once: Vec<Event> = Vec::new();
        for e in &events {
            if !once.iter().any(|o| o.id == e.id) {
                once.push(e.clone());
            }
        }
        once.sort_by_key(Event::mark);
        let expected = apply_in(&once, &start, &limits);
        // Delivered: duplicated and shuffled.
        let mut delivered = events.clone();
        for r in &repeats {
            delivered.push(r.get(&events).clone());
        }
        let n = delivered.len();
        let rotate = shuffle.index(n);
        delivered.rotate_left(rotate);
        let mut seed = shuffle.index(usize::MAX / 2) as u64 | 1;
        for i in (1..n).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            delivered.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let got = apply_in(&delivered, &start, &limits);
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn a_profile_made_by_events_takes_its_sign_up_from_signed_up_whatever_comes_first() {
    let sent = event(
        json!({"id": "m", "type": "message_sent", "user_id": "u1", "time": at(5),
        "properties": {"message_id": "x"}}),
    );
    let signed = event(json!({"id": "s", "type": "signed_up", "user_id": "u1", "time": at(10)}));
    let a = apply_in(
        &[sent.clone(), signed.clone()],
        &UserRecords::default(),
        &IngestLimits::default(),
    );
    let b = apply_in(
        &[signed.clone(), sent],
        &UserRecords::default(),
        &IngestLimits::default(),
    );
    assert_eq!(a, b);
    let p = a.profile.unwrap();
    assert_eq!(p.signed_up_at, signed.time);
    assert_eq!(p.last_active_at, signed.time);
}

#[test]
fn a_loaded_cart_loses_to_any_event_at_or_after_its_time() {
    let loaded = Cart {
        user_id: UserId::parse("u1").unwrap(),
        updated_at: now() - chrono::Duration::minutes(10),
        lines: vec![],
        mark: None,
    };
    let mut records = UserRecords {
        cart: Some(loaded.clone()),
        ..Default::default()
    };
    let same_time = event(json!({"id": "c", "type": "cart_updated", "user_id": "u1",
        "time": loaded.updated_at.to_rfc3339(), "properties": {"products": [{"product_id": "i1"}]}}));
    assert_eq!(
        apply_all(&mut records, &[same_time]),
        [Outcome::Changed(Row::Cart)]
    );
}

#[test]
fn an_order_that_leaves_the_window_keeps_its_products_purchased_and_a_late_old_one_too() {
    let limits = IngestLimits {
        window: 3,
        ..IngestLimits::default()
    };
    let order = |n: i64, item: &str| {
        event(
            json!({"id": format!("o{n}"), "type": "order_placed", "user_id": "u1",
            "time": at(100 - n), "properties": {"order_id": format!("A-{n}"),
            "products": [{"product_id": item}]}}),
        )
    };
    let mut records = UserRecords::default();
    for n in 1..=5 {
        apply_to_user(&mut records, &order(n, &format!("i{n}")), &limits);
    }
    // An order older than every kept one arrives last.
    apply_to_user(&mut records, &order(0, "i0"), &limits);
    let profile = records.profile.unwrap();
    let journal = profile.journal.as_ref().unwrap();
    assert_eq!(journal.orders.len(), 3);
    let mut purchased: Vec<&str> = profile.purchased_items.iter().map(|i| i.as_str()).collect();
    purchased.sort_unstable();
    assert_eq!(purchased, ["i0", "i1", "i2", "i3", "i4", "i5"]);
}

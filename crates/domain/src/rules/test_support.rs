//! Builders for rule tests: a fixed `now`, users, items and lists with sensible defaults.

use crate::ids::{ItemId, UserId};
use crate::model::{Cart, CartLine, Item, PopularList, PopularScope, RecList, User};
use crate::rules::PopularLists;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::{BTreeMap, HashMap};

/// The fixed test instant, 2026-11-22 12:00 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// [`now`] minus `days` days.
pub fn days_ago(days: i64) -> DateTime<Utc> {
    now() - Duration::days(days)
}

/// A user id; panics if `id` is invalid (tests only).
pub fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// An item id.
pub fn iid(id: &str) -> ItemId {
    ItemId::new(id)
}

/// Item ids from string slices, in order.
pub fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|s| iid(s)).collect()
}

/// An activated user: signed up 400 days ago, active 2 days ago, no purchases or views.
pub fn user(id: &str) -> User {
    User {
        journal: None,
        user_id: uid(id),
        signed_up_at: days_ago(400),
        last_active_at: days_ago(2),
        activated: true,
        last_purchase_at: None,
        preferred_categories: vec![],
        category_purchases: BTreeMap::new(),
        purchased_items: vec![],
        recent_views: vec![],
        winback_unanswered: 0,
        features_used: vec![],
        locale: None,
    }
}

/// An item priced ₩10,000 with a 4.5 rating, 12 reviews and no discount.
pub fn item(id: &str, category: &str, stock: u32) -> Item {
    Item {
        marks: None,
        item_id: iid(id),
        title: format!("Item {id}"),
        category: category.into(),
        url: format!("https://shop.example/items/{id}"),
        image_url: format!("https://img.example/{id}.jpg"),
        price: 10_000,
        currency: "KRW".into(),
        stock,
        rating: Some(4.5),
        review_count: 12,
        top_review: Some("좋아요".into()),
        discount: None,
        encoded: Default::default(),
    }
}

/// A catalog keyed by item id.
pub fn catalog(items: Vec<Item>) -> HashMap<ItemId, Item> {
    items.into_iter().map(|i| (i.item_id.clone(), i)).collect()
}

/// A list written a day ago that expires `expires_in_days` after [`now`] (negative: expired).
pub fn rec_list(user_id: &str, items: &[&str], expires_in_days: i64) -> RecList {
    RecList {
        mark: None,
        user_id: uid(user_id),
        generated_at: days_ago(1),
        expires_at: now() + Duration::days(expires_in_days),
        items: ids(items),
    }
}

/// A cart last changed at `changed`, one unit of each item.
pub fn cart(user_id: &str, changed: DateTime<Utc>, items: &[&str]) -> Cart {
    Cart {
        mark: None,
        user_id: uid(user_id),
        updated_at: changed,
        lines: items
            .iter()
            .map(|i| CartLine {
                item_id: iid(i),
                quantity: 1,
            })
            .collect(),
    }
}

/// The global popular list plus one list per `(category, items)` pair.
pub fn popular(global: &[&str], categories: &[(&str, &[&str])]) -> PopularLists {
    let mut lists = vec![std::sync::Arc::new(PopularList::new(
        PopularScope::Global,
        ids(global),
    ))];
    for (c, items) in categories {
        lists.push(std::sync::Arc::new(PopularList::new(
            PopularScope::category(*c),
            ids(items),
        )));
    }
    PopularLists::from_lists(lists)
}

/// The same lists, each read with its items from `catalog` (as the store's cache reads them).
pub fn read_with_items(lists: &PopularLists, catalog: &crate::Catalog) -> PopularLists {
    PopularLists::from_lists(
        lists
            .global
            .iter()
            .chain(&lists.by_category)
            .map(|l| std::sync::Arc::new(l.as_ref().clone().resolved_from(catalog))),
    )
}

/// Keeps a test fixture alive for the rest of the test run, so a helper can return a block
/// that borrows it.
pub fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// The item ids of a block, in order.
pub fn item_ids<'a>(block: &'a crate::Block<'_>) -> Vec<&'a str> {
    block.items.iter().map(|i| i.id.as_str()).collect()
}

//! The data the rules read: user profiles, catalog items, carts, precomputed recommendation
//! lists and popular lists. Written by offline jobs and `sendtime data load`; read-only here.

use crate::ids::{ItemId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What we know about one user. Unknown users simply have no profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: UserId,
    pub signed_up_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    /// Has made the first key action (onboarding is over).
    #[serde(default)]
    pub activated: bool,
    #[serde(default)]
    pub last_purchase_at: Option<DateTime<Utc>>,
    /// Categories the user prefers, most preferred first.
    #[serde(default)]
    pub preferred_categories: Vec<String>,
    /// Number of purchases per category, for "most-bought category".
    #[serde(default)]
    pub category_purchases: BTreeMap<String, u32>,
    /// Items already bought (never recommended again).
    #[serde(default)]
    pub purchased_items: Vec<ItemId>,
    /// Recently viewed items, most recent first.
    #[serde(default)]
    pub recent_views: Vec<ItemId>,
    /// Win-back messages sent since the user went dormant without any response.
    #[serde(default)]
    pub winback_unanswered: u32,
    /// Keys of the key features the user has tried (onboarding's welcome stage shows the
    /// others first).
    #[serde(default)]
    pub features_used: Vec<String>,
}

impl User {
    /// Whether the user bought this item already.
    pub fn has_purchased(&self, id: &ItemId) -> bool {
        self.purchased_items.contains(id)
    }

    /// The category with the most purchases; ties go to the alphabetically first name so the
    /// answer is stable across calls (Braze renders one message several times).
    pub fn most_bought_category(&self) -> Option<&str> {
        self.category_purchases
            .iter()
            .filter(|(_, n)| **n > 0)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(c, _)| c.as_str())
    }
}

/// Everything stored under one user, read together in one round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    /// The profile; `None` for a user we know nothing about.
    pub profile: Option<User>,
    /// Absent when the model has no list for this user or the list has expired.
    pub recs: Option<RecList>,
    /// The cart, if the user has one.
    pub cart: Option<Cart>,
}

/// A time-limited discount on an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discount {
    pub pct: u8,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
}

impl Discount {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.pct > 0 && self.pct < 100 && self.ends_at.is_none_or(|end| end > now)
    }
}

/// One catalog item. Prices are in minor units of `currency` (KRW has none, USD has cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: ItemId,
    pub title: String,
    pub category: String,
    pub url: String,
    pub image_url: String,
    pub price: i64,
    pub currency: String,
    pub stock: u32,
    #[serde(default)]
    pub rating: Option<f32>,
    #[serde(default)]
    pub review_count: u32,
    #[serde(default)]
    pub top_review: Option<String>,
    #[serde(default)]
    pub discount: Option<Discount>,
}

impl Item {
    pub fn in_stock(&self) -> bool {
        self.stock > 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartLine {
    pub item_id: ItemId,
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

/// A user's cart. `updated_at` is the last change, which is what cart stages count from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub user_id: UserId,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub lines: Vec<CartLine>,
}

/// A ranked list written by the offline model. Expired lists count as absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecList {
    pub user_id: UserId,
    pub generated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<ItemId>,
}

impl RecList {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// Which popular list: the global one or one category's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", content = "category", rename_all = "snake_case")]
pub enum PopularScope {
    Global,
    Category(String),
}

impl PopularScope {
    pub fn category(name: impl Into<String>) -> Self {
        Self::Category(name.into())
    }
}

/// A popularity-ranked list of items, global or per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopularList {
    #[serde(flatten)]
    pub scope: PopularScope,
    pub items: Vec<ItemId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_bought_category_is_stable_on_ties() {
        let mut u = crate::rules::test_support::user("u1");
        u.category_purchases =
            BTreeMap::from([("shoes".into(), 3), ("bags".into(), 3), ("hats".into(), 1)]);
        assert_eq!(u.most_bought_category(), Some("bags"));
        u.category_purchases.clear();
        assert_eq!(u.most_bought_category(), None);
    }

    #[test]
    fn popular_scope_round_trips_through_json() {
        let list = PopularList {
            scope: PopularScope::category("shoes"),
            items: vec![ItemId::new("i1")],
        };
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(
            json,
            r#"{"scope":"category","category":"shoes","items":["i1"]}"#
        );
        assert_eq!(serde_json::from_str::<PopularList>(&json).unwrap(), list);
        let global = r#"{"scope":"global","items":[]}"#;
        assert_eq!(
            serde_json::from_str::<PopularList>(global).unwrap().scope,
            PopularScope::Global
        );
    }
}

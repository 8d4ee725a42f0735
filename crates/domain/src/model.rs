//! The data the rules read: user profiles, catalog items, carts, precomputed recommendation
//! lists and popular lists. Written by offline jobs and `sendtime data load`; read-only here.

use crate::ids::{ItemId, UserId};
pub use crate::ingest::{ItemMarks, Journal, Mark};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What we know about one user. Unknown users simply have no profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Whose profile this is.
    pub user_id: UserId,
    /// When the user signed up; the onboarding stages count whole days from it.
    pub signed_up_at: DateTime<Utc>,
    /// The user's last activity; the dormancy block counts days without activity from it.
    pub last_active_at: DateTime<Utc>,
    /// Has made the first key action (onboarding is over).
    #[serde(default)]
    pub activated: bool,
    /// Last purchase, if any; one at or after the cart's last change ends the cart flow.
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
    /// The user's language for rendered messages (`ko`, `en`); absent: the caller's or the
    /// configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// What applied events left on the profile (see [`crate::ingest`]); absent on a profile
    /// as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Box<Journal>>,
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

/// Catalog items by id, shared (`Arc`): caches hand them out without copying.
pub type Catalog = std::collections::HashMap<ItemId, std::sync::Arc<Item>, IdHasher>;

/// The hasher of per-request id maps: foldhash, several times cheaper than the standard
/// library's SipHash on short ids, and still seeded per map (ids come from our own data).
pub type IdHasher = foldhash::fast::RandomState;

/// Everything stored under one user, read together in one round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    /// The profile; `None` for a user we know nothing about.
    pub profile: Option<User>,
    /// Absent when the model has no list for this user or the list has expired.
    pub recs: Option<RecList>,
    /// The cart, if the user has one.
    pub cart: Option<Cart>,
    /// The user's send-worthiness score (`sendtime audience score`), if one was loaded.
    pub score: Option<SendScore>,
}

/// A user's send-worthiness: the modelled chance to open the next message, written by
/// `sendtime audience score` and stored next to the profile. Blocks answer it as
/// `send_score`; a request's `min_score` makes a block not eligible below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendScore {
    /// Whose score this is.
    pub user_id: UserId,
    /// The modelled probability of an open, 0–1 (a record with anything else is refused
    /// when read: a dataset line, or a stored item).
    #[serde(deserialize_with = "probability")]
    pub score: f64,
    /// When the score was computed (the events it was computed from end here).
    pub computed_at: DateTime<Utc>,
    /// Which model computed it (e.g. `logistic-l2`), for audits.
    #[serde(default)]
    pub model: String,
}

/// A number from 0 to 1, or an error saying what it was.
fn probability<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format_args!(
            "score must be a number from 0 to 1, not {value}"
        )))
    }
}

/// A time-limited discount on an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discount {
    /// Percent off; only 1–99 counts as a discount (see [`Discount::is_active`]).
    pub pct: u8,
    /// When the discount ends (exclusive); `None`: it does not end.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
}

impl Discount {
    /// True when `pct` is 1–99 and `now` is before `ends_at` (or there is no end).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.pct > 0 && self.pct < 100 && self.ends_at.is_none_or(|end| end > now)
    }
}

/// One catalog item. Prices are in minor units of `currency` (KRW has none, USD has cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The item's catalog id.
    pub item_id: ItemId,
    /// Display name, shown as is in blocks.
    pub title: String,
    /// Category key (e.g. `shoes`), as in popular-list scopes and preferred categories.
    pub category: String,
    /// Product page URL.
    pub url: String,
    /// Product image URL.
    pub image_url: String,
    /// Price in minor units of `currency`, before any discount.
    pub price: i64,
    /// ISO 4217 code, e.g. `KRW`; decides how the price is displayed.
    pub currency: String,
    /// Units in stock; 0 is sold out (see [`Item::in_stock`]).
    pub stock: u32,
    /// Average review rating, passed through to blocks as is; `None` when the item has none.
    #[serde(default)]
    pub rating: Option<f32>,
    /// Number of reviews; 0 when absent from the record.
    #[serde(default)]
    pub review_count: u32,
    /// A highlighted review's text; blocks show a snippet of it as social proof.
    #[serde(default)]
    pub top_review: Option<String>,
    /// A discount, which changes the shown price only while active.
    #[serde(default)]
    pub discount: Option<Discount>,
    /// Which event last set each field (see [`crate::ingest`]); absent on an item as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks: Option<ItemMarks>,
    /// The item's fixed fields as a block writes them, encoded on first use (not stored).
    #[serde(skip)]
    pub encoded: EncodedOnce,
}

/// A value's JSON, computed on first use and kept: an item's fixed fields are encoded once
/// per cached item, not once per answer. A clone starts empty (the clone may be changed
/// before it is encoded), and the cell never makes two items unequal.
#[derive(Default)]
pub struct EncodedOnce(std::sync::OnceLock<Box<str>>);

impl EncodedOnce {
    /// The JSON, from `encode` the first time.
    pub fn get_or_init(&self, encode: impl FnOnce() -> String) -> &str {
        self.0.get_or_init(|| encode().into_boxed_str())
    }
}

impl Clone for EncodedOnce {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for EncodedOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "EncodedOnce(set)"
        } else {
            "EncodedOnce(unset)"
        })
    }
}

impl Item {
    /// True when at least one unit is in stock and the item has not been removed from the
    /// catalog (an `item_removed` event).
    pub fn in_stock(&self) -> bool {
        self.stock > 0 && !self.marks.as_ref().is_some_and(|m| m.removed)
    }
}

/// One line of a cart: an item and its quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartLine {
    /// The item in the cart.
    pub item_id: ItemId,
    /// Units in the cart; 1 when the record omits it.
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

/// A user's cart. `updated_at` is the last change, which is what cart stages count from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    /// Whose cart this is.
    pub user_id: UserId,
    /// The cart's last change; the cart stages count whole days from it.
    pub updated_at: DateTime<Utc>,
    /// The lines; an empty cart makes the cart block not eligible.
    #[serde(default)]
    pub lines: Vec<CartLine>,
    /// The `cart_updated` event this snapshot came from; absent on a cart as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// A ranked list written by the offline model. Expired lists count as absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecList {
    /// Whose list this is.
    pub user_id: UserId,
    /// When the model wrote the list.
    pub generated_at: DateTime<Utc>,
    /// From this instant on the list counts as absent (see [`RecList::is_live`]).
    pub expires_at: DateTime<Utc>,
    /// Item ids, best first.
    pub items: Vec<ItemId>,
    /// The `recs_updated` event this list came from; absent on a list as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

impl RecList {
    /// True while `now` is before `expires_at`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// Which popular list: the global one or one category's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", content = "category", rename_all = "snake_case")]
pub enum PopularScope {
    /// The shop-wide list.
    Global,
    /// One category's list, by category key.
    Category(String),
}

impl PopularScope {
    /// The scope of the named category's list.
    pub fn category(name: impl Into<String>) -> Self {
        Self::Category(name.into())
    }
}

/// A popularity-ranked list of items, global or per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopularList {
    /// Which list; flattened into the record as `scope` (and `category`).
    #[serde(flatten)]
    pub scope: PopularScope,
    /// Item ids, most popular first.
    pub items: Vec<ItemId>,
    /// The items of `items`, read with the list (a cache does this once per list it keeps),
    /// so a request walks them without reading each; unset as stored.
    #[serde(skip)]
    pub resolved: ResolvedItems,
}

impl PopularList {
    /// A list of `items` in `scope`, its items not read with it.
    pub fn new(scope: PopularScope, items: Vec<ItemId>) -> Self {
        Self {
            scope,
            items,
            resolved: ResolvedItems::default(),
        }
    }

    /// The list with each of its items as found in `catalog` (absent: not in the catalog).
    pub fn resolved_from(mut self, catalog: &Catalog) -> Self {
        let found: Box<[Option<std::sync::Arc<Item>>]> = self
            .items
            .iter()
            .map(|id| catalog.get(id).cloned())
            .collect();
        self.resolved = ResolvedItems(Some(found.into()));
        self
    }

    /// Each id with its item, when the list was read with its items: `Some(None)` for an id
    /// the catalog does not have; `None` when the items were not read with the list.
    pub fn resolved(&self) -> Option<&[Option<std::sync::Arc<Item>>]> {
        self.resolved
            .0
            .as_deref()
            .filter(|found| found.len() == self.items.len())
    }
}

/// A popular list's items as read with it, in the list's order (see
/// [`PopularList::resolved_from`]). Never makes two lists unequal: lists are equal by scope and
/// ids.
#[derive(Clone, Default)]
pub struct ResolvedItems(Option<std::sync::Arc<[Option<std::sync::Arc<Item>>]>>);

impl PartialEq for ResolvedItems {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ResolvedItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(found) => write!(f, "ResolvedItems({} read)", found.len()),
            None => f.write_str("ResolvedItems(unread)"),
        }
    }
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
        let list = PopularList::new(PopularScope::category("shoes"), vec![ItemId::new("i1")]);
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

//! Events in: what each event does to the stored records, as pure functions of the records,
//! the event and the limits (no clock but the one validation is given, no I/O), so the
//! embedded store and DynamoDB apply the same rules.
//!
//! Delivery is at least once and in any order (queues redeliver; Braze's exports are grouped
//! by the hour they were queued), so every rule is a *join*: applying a set of events gives
//! the same records whatever their order and however often each arrives.
//!
//! - A record replaced whole (a cart snapshot, a recommendation list) keeps the [`Mark`] —
//!   time, then event id — of the event it came from; an older event never overwrites it.
//! - An item's fields are each set by the newest event that names them ([`ItemMarks`]).
//! - A profile keeps a [`Journal`]: the newest of each kind of event (times by max or min),
//!   the recent win-back sends, orders and views by id (so a duplicate changes nothing), and
//!   the profile as it was loaded. The fields the rules read (`last_active_at`,
//!   `winback_unanswered`, `purchased_items`, …) are recomputed from it after every event.
//!
//! The journal keeps the newest [`IngestLimits::window`] sends, orders and views; an event
//! older than all of them, arriving after them, falls outside (documented in the README).

/// Applying a validated event to a user's records or to an item.
pub mod apply;
/// The event format and its validation.
pub mod event;
#[cfg(test)]
mod tests;

pub use apply::{apply_to_item, apply_to_user, ItemOutcome, Outcome, Row, Skip, UserRecords};
pub use event::{
    parse_item_id, Event, EventBody, EventError, EventKind, ItemFields, RawEvent, Target,
};

use crate::ids::ItemId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An event's place in the one order every rule uses: its time, then its id (two events at
/// the same instant still have an order, the same everywhere).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mark {
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The event's id.
    pub id: String,
}

impl Mark {
    /// The mark of a record as loaded (no event): before any event at the same time.
    pub fn loaded(at: DateTime<Utc>) -> Self {
        Self {
            at,
            id: String::new(),
        }
    }
}

/// The bounds of ingestion.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLimits {
    /// How far ahead of the server's clock an event's time may be (clock skew).
    pub max_future: Duration,
    /// Most products in a cart or order, items in a list.
    pub max_products: usize,
    /// A `recs_updated` list's lifetime when it gives no `expires_at`.
    pub recs_lifetime: Duration,
    /// Sends, orders and views each kept by id in a profile's journal.
    pub window: usize,
    /// Longest `recent_views` list.
    pub recent_views: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_future: Duration::minutes(5),
            max_products: 100,
            recs_lifetime: Duration::days(7),
            window: 16,
            recent_views: 20,
        }
    }
}

/// Which event last set each field of an item (fields set by no event are absent), and
/// whether an `item_removed` took it out of the catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemMarks {
    /// Field name → the mark of the event that last set it.
    #[serde(default)]
    pub fields: BTreeMap<String, Mark>,
    /// Taken out of the catalog: never offered again (until a `data load` writes it whole).
    #[serde(default)]
    pub removed: bool,
}

/// A win-back message sent, by message id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sent {
    /// When.
    pub at: DateTime<Utc>,
    /// The message's id.
    pub id: String,
}

/// An order, by order id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ordered {
    /// When.
    pub at: DateTime<Utc>,
    /// Braze's `order_id`.
    pub id: String,
    /// The products ordered.
    pub items: Vec<ItemId>,
}

/// A product view: the latest time the user viewed the item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Viewed {
    /// When.
    pub at: DateTime<Utc>,
    /// The item.
    pub item: ItemId,
}

/// The profile as it was loaded (by `data load`), before the first event: what the journal
/// adds to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    /// Sign-up time as loaded.
    pub signed_up_at: DateTime<Utc>,
    /// Last activity as loaded.
    pub last_active_at: DateTime<Utc>,
    /// Last purchase as loaded.
    #[serde(default)]
    pub last_purchase_at: Option<DateTime<Utc>>,
    /// Activated as loaded.
    #[serde(default)]
    pub activated: bool,
    /// Unanswered win-backs as loaded (answered by any activity or engagement after
    /// `last_active_at`).
    #[serde(default)]
    pub winback_unanswered: u32,
    /// Recent views as loaded.
    #[serde(default)]
    pub recent_views: Vec<ItemId>,
    /// Purchased items as loaded.
    #[serde(default)]
    pub purchased_items: Vec<ItemId>,
    /// Locale as loaded.
    #[serde(default)]
    pub locale: Option<String>,
}

/// What applied events left on a profile: enough to apply the next one in any order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// The profile as loaded; absent for a profile that events made.
    #[serde(default)]
    pub loaded: Option<Loaded>,
    /// The earliest event of any kind (sign-up time of a profile no `signed_up` named yet).
    pub first_seen: DateTime<Utc>,
    /// The earliest `signed_up`.
    #[serde(default)]
    pub signed_up: Option<DateTime<Utc>>,
    /// The latest activity (`activity`, `signed_up`, `key_action`, `order_placed`).
    #[serde(default)]
    pub active_at: Option<DateTime<Utc>>,
    /// The latest `message_engaged`.
    #[serde(default)]
    pub engaged_at: Option<DateTime<Utc>>,
    /// The latest `message_sent` of any kind (the score's freshness).
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// The latest `order_placed`.
    #[serde(default)]
    pub last_order_at: Option<DateTime<Utc>>,
    /// A `key_action` was seen.
    #[serde(default)]
    pub activated: bool,
    /// The latest `signed_up` that named a locale, and the locale.
    #[serde(default)]
    pub locale: Option<(Mark, String)>,
    /// Win-back sends by message id, newest first.
    #[serde(default)]
    pub winbacks: Vec<Sent>,
    /// Orders by order id, newest first.
    #[serde(default)]
    pub orders: Vec<Ordered>,
    /// The products of orders that left the window (sorted): still purchased.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_purchases: Vec<ItemId>,
    /// Views, one per item, newest first.
    #[serde(default)]
    pub views: Vec<Viewed>,
}

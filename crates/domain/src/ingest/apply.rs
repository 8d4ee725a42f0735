//! The rules: one validated event applied to a user's records ([`apply_to_user`]) or to a
//! catalog item ([`apply_to_item`]). Each event changes at most one stored record (one write
//! per event): `cart_updated` the cart, `recs_updated` the list, every other user event the
//! profile, item events the item. Nothing changes when the event is a duplicate or older
//! than what it would replace ([`Skip`]).

use super::event::{Event, EventBody, ItemFields};
use super::{IngestLimits, ItemMarks, Journal, Loaded, Mark, Ordered, Sent, Viewed};
use crate::ids::{ItemId, UserId};
use crate::model::{Cart, CartLine, Item, RecList, User};
use chrono::{DateTime, Utc};

/// A user's records an event may change (the score is never touched).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRecords {
    /// The profile.
    pub profile: Option<User>,
    /// The cart.
    pub cart: Option<Cart>,
    /// The recommendation list (expired or not: the newer list wins either way).
    pub recs: Option<RecList>,
}

/// Which stored record an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Row {
    /// The profile.
    Profile,
    /// The cart.
    Cart,
    /// The recommendation list.
    Recs,
    /// A catalog item.
    Item,
}

impl Row {
    /// Lower-case name, for results and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Row::Profile => "profile",
            Row::Cart => "cart",
            Row::Recs => "recs",
            Row::Item => "item",
        }
    }
}

/// Why an event changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Already applied (the same event, or the same message or order, seen before).
    Duplicate,
    /// Older than what it would replace (a cart snapshot, a list, an item field).
    Stale,
    /// An `item_removed` for an item the catalog does not have.
    UnknownItem,
}

impl Skip {
    /// Lower-case name, for results and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Skip::Duplicate => "duplicate",
            Skip::Stale => "stale",
            Skip::UnknownItem => "unknown_item",
        }
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This record changed and must be written.
    Changed(Row),
    /// Nothing changed; nothing to write.
    Unchanged(Skip),
}

/// What applying one event to an item did; an `item_updated` for an item the catalog does not
/// have, naming fewer than all of an item's fields, cannot make one.
pub type ItemOutcome = Result<Outcome, crate::ingest::EventError>;

/// Applies a user event to the user's records (an item event changes nothing here).
pub fn apply_to_user(records: &mut UserRecords, event: &Event, limits: &IngestLimits) -> Outcome {
    match &event.body {
        EventBody::CartUpdated { user, lines } => replace_cart(records, user, lines, event),
        EventBody::RecsUpdated {
            user,
            items,
            generated_at,
            expires_at,
        } => {
            let mark = Mark {
                at: *generated_at,
                id: event.id.clone(),
            };
            let current = records.recs.as_ref().map(|r| {
                r.mark
                    .clone()
                    .unwrap_or_else(|| Mark::loaded(r.generated_at))
            });
            if let Some(skip) = newer(current.as_ref(), &mark) {
                return Outcome::Unchanged(skip);
            }
            records.recs = Some(RecList {
                user_id: user.clone(),
                generated_at: *generated_at,
                expires_at: *expires_at,
                items: items.clone(),
                mark: Some(mark),
            });
            Outcome::Changed(Row::Recs)
        }
        EventBody::ItemUpdated { .. } | EventBody::ItemRemoved { .. } => {
            Outcome::Unchanged(Skip::Duplicate)
        }
        _ => update_profile(records, event, limits),
    }
}

/// `None` when `mark` is newer than `current` (or there is none); else why not.
fn newer(current: Option<&Mark>, mark: &Mark) -> Option<Skip> {
    match current {
        Some(c) if c == mark => Some(Skip::Duplicate),
        Some(c) if c > mark => Some(Skip::Stale),
        _ => None,
    }
}

fn replace_cart(
    records: &mut UserRecords,
    user: &UserId,
    lines: &[(ItemId, u32)],
    event: &Event,
) -> Outcome {
    let mark = event.mark();
    let current = records
        .cart
        .as_ref()
        .map(|c| c.mark.clone().unwrap_or_else(|| Mark::loaded(c.updated_at)));
    if let Some(skip) = newer(current.as_ref(), &mark) {
        return Outcome::Unchanged(skip);
    }
    records.cart = Some(Cart {
        user_id: user.clone(),
        updated_at: event.time,
        lines: lines
            .iter()
            .map(|(item_id, quantity)| CartLine {
                item_id: item_id.clone(),
                quantity: *quantity,
            })
            .collect(),
        mark: Some(mark),
    });
    Outcome::Changed(Row::Cart)
}

/// Applies a profile event: the journal takes the event, the profile's fields are recomputed
/// from the journal; unchanged when the profile comes out equal.
fn update_profile(records: &mut UserRecords, event: &Event, limits: &IngestLimits) -> Outcome {
    let (EventBody::OrderPlaced { user, .. }
    | EventBody::Activity { user, .. }
    | EventBody::SignedUp { user, .. }
    | EventBody::KeyAction { user }
    | EventBody::MessageSent { user, .. }
    | EventBody::MessageEngaged { user }) = &event.body
    else {
        return Outcome::Unchanged(Skip::Duplicate);
    };
    let before = records.profile.clone();
    let profile = records
        .profile
        .get_or_insert_with(|| new_profile(user.clone(), event.time));
    if profile.journal.is_none() {
        let as_loaded = loaded(profile);
        profile.journal = Some(Box::new(empty_journal(Some(as_loaded), event.time)));
    }
    let Some(journal) = profile.journal.as_mut() else {
        return Outcome::Unchanged(Skip::Duplicate);
    };
    take(journal, event, limits);
    if let EventBody::Activity {
        feature: Some(feature),
        ..
    } = &event.body
    {
        add_feature(profile, feature);
    }
    settle(profile, limits);
    if before.as_ref() == Some(&*profile) {
        Outcome::Unchanged(Skip::Duplicate)
    } else {
        Outcome::Changed(Row::Profile)
    }
}

/// A profile no load made: its journal starts empty, with nothing loaded.
fn new_profile(user_id: UserId, at: DateTime<Utc>) -> User {
    User {
        user_id,
        signed_up_at: at,
        last_active_at: at,
        activated: false,
        last_purchase_at: None,
        preferred_categories: Vec::new(),
        category_purchases: Default::default(),
        purchased_items: Vec::new(),
        recent_views: Vec::new(),
        winback_unanswered: 0,
        features_used: Vec::new(),
        locale: None,
        journal: Some(Box::new(empty_journal(None, at))),
    }
}

fn empty_journal(loaded: Option<Loaded>, at: DateTime<Utc>) -> Journal {
    Journal {
        loaded,
        first_seen: at,
        signed_up: None,
        active_at: None,
        engaged_at: None,
        last_message_at: None,
        last_order_at: None,
        activated: false,
        locale: None,
        winbacks: Vec::new(),
        orders: Vec::new(),
        earlier_purchases: Vec::new(),
        views: Vec::new(),
    }
}

fn loaded(profile: &User) -> Loaded {
    Loaded {
        signed_up_at: profile.signed_up_at,
        last_active_at: profile.last_active_at,
        last_purchase_at: profile.last_purchase_at,
        activated: profile.activated,
        winback_unanswered: profile.winback_unanswered,
        recent_views: profile.recent_views.clone(),
        purchased_items: profile.purchased_items.clone(),
        locale: profile.locale.clone(),
    }
}

fn max_time(slot: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    *slot = Some(slot.map_or(at, |t| t.max(at)));
}

fn min_time(slot: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    *slot = Some(slot.map_or(at, |t| t.min(at)));
}

/// Records the event in the journal (every step a join: max, min, or a set by id).
fn take(journal: &mut Journal, event: &Event, limits: &IngestLimits) {
    let at = event.time;
    journal.first_seen = journal.first_seen.min(at);
    match &event.body {
        EventBody::OrderPlaced {
            order_id, items, ..
        } => {
            max_time(&mut journal.active_at, at);
            max_time(&mut journal.last_order_at, at);
            let order = Ordered {
                at,
                id: order_id.clone(),
                items: items.clone(),
            };
            let evicted = keep_newest(&mut journal.orders, order, limits.window, |o| &o.id);
            // Items of an order that leaves the window stay purchased.
            if let Some(old) = evicted {
                for item in old.items {
                    if !journal.earlier_purchases.contains(&item) {
                        journal.earlier_purchases.push(item);
                    }
                }
                journal.earlier_purchases.sort();
            }
        }
        EventBody::Activity {
            viewed, feature: _, ..
        } => {
            max_time(&mut journal.active_at, at);
            if let Some(item) = viewed {
                // One view per item: the latest.
                match journal.views.iter().position(|v| &v.item == item) {
                    Some(i) if journal.views[i].at >= at => {}
                    seen => {
                        if let Some(i) = seen {
                            journal.views.remove(i);
                        }
                        let view = Viewed {
                            at,
                            item: item.clone(),
                        };
                        keep_newest(&mut journal.views, view, limits.window, |v| &v.item);
                    }
                }
            }
        }
        EventBody::SignedUp { locale, .. } => {
            max_time(&mut journal.active_at, at);
            min_time(&mut journal.signed_up, at);
            if let Some(locale) = locale {
                let mark = event.mark();
                if journal.locale.as_ref().is_none_or(|(m, _)| *m < mark) {
                    journal.locale = Some((mark, locale.clone()));
                }
            }
        }
        EventBody::KeyAction { .. } => {
            max_time(&mut journal.active_at, at);
            journal.activated = true;
        }
        EventBody::MessageSent {
            message_id,
            winback,
            ..
        } => {
            max_time(&mut journal.last_message_at, at);
            if *winback {
                keep_newest(
                    &mut journal.winbacks,
                    Sent {
                        at,
                        id: message_id.clone(),
                    },
                    limits.window,
                    |s| &s.id,
                );
            }
        }
        EventBody::MessageEngaged { .. } => max_time(&mut journal.engaged_at, at),
        EventBody::CartUpdated { .. }
        | EventBody::RecsUpdated { .. }
        | EventBody::ItemUpdated { .. }
        | EventBody::ItemRemoved { .. } => {}
    }
}

/// Inserts `entry` into `list` (newest first, ordered by `Ord`); an entry with the same key
/// stays unless `entry` is the earlier of the two (the same order or message reported twice
/// with different times keeps its first time, whatever arrives first). Keeps the newest
/// `window`; returns the entry that left it.
fn keep_newest<T: Ord, K: PartialEq + ?Sized>(
    list: &mut Vec<T>,
    entry: T,
    window: usize,
    key: impl Fn(&T) -> &K,
) -> Option<T> {
    if let Some(i) = list.iter().position(|e| key(e) == key(&entry)) {
        if entry >= list[i] {
            return None;
        }
        list.remove(i);
    }
    let at = list.partition_point(|e| *e > entry);
    list.insert(at, entry);
    (list.len() > window).then(|| list.pop()).flatten()
}

/// Recomputes the fields the rules read from the journal and what was loaded.
fn settle(profile: &mut User, limits: &IngestLimits) {
    let Some(journal) = profile.journal.as_ref() else {
        return;
    };
    let loaded = journal.loaded.as_ref();
    let signed_up_at = match (journal.signed_up, loaded) {
        (Some(s), Some(l)) => s.min(l.signed_up_at),
        (Some(s), None) => s,
        (None, Some(l)) => l.signed_up_at,
        (None, None) => journal.first_seen,
    };
    let active = [loaded.map(|l| l.last_active_at), journal.active_at]
        .into_iter()
        .flatten()
        .max();
    let last_active_at = active.unwrap_or(signed_up_at);
    let last_purchase_at = [
        loaded.and_then(|l| l.last_purchase_at),
        journal.last_order_at,
    ]
    .into_iter()
    .flatten()
    .max();
    let responded = journal
        .engaged_at
        .map_or(last_active_at, |e| e.max(last_active_at));
    let loaded_unanswered = loaded
        .filter(|l| responded <= l.last_active_at)
        .map_or(0, |l| l.winback_unanswered);
    let unanswered =
        loaded_unanswered + journal.winbacks.iter().filter(|s| s.at > responded).count() as u32;
    let mut views: Vec<ItemId> = Vec::new();
    for item in journal
        .views
        .iter()
        .map(|v| &v.item)
        .chain(loaded.into_iter().flat_map(|l| l.recent_views.iter()))
    {
        if views.len() < limits.recent_views && !views.contains(item) {
            views.push(item.clone());
        }
    }
    let mut purchased: Vec<ItemId> = Vec::new();
    for item in journal
        .orders
        .iter()
        .flat_map(|o| o.items.iter())
        .chain(journal.earlier_purchases.iter())
        .chain(loaded.into_iter().flat_map(|l| l.purchased_items.iter()))
    {
        if !purchased.contains(item) {
            purchased.push(item.clone());
        }
    }
    let activated = journal.activated || loaded.is_some_and(|l| l.activated);
    let locale = journal
        .locale
        .as_ref()
        .map(|(_, l)| l.clone())
        .or_else(|| loaded.and_then(|l| l.locale.clone()));
    profile.signed_up_at = signed_up_at;
    profile.last_active_at = last_active_at;
    profile.last_purchase_at = last_purchase_at;
    profile.winback_unanswered = unanswered;
    profile.recent_views = views;
    profile.purchased_items = purchased;
    profile.activated = activated;
    profile.locale = locale;
}

/// Applies a feature tried (`activity` with `feature`): a set, kept sorted.
fn add_feature(profile: &mut User, feature: &str) {
    if let Err(at) = profile
        .features_used
        .binary_search_by(|f| f.as_str().cmp(feature))
    {
        profile.features_used.insert(at, feature.to_owned());
    }
}

/// Applies an item event to the item (a user event changes nothing here). An `item_updated`
/// sets each field it names unless a newer event set it; it makes an item the catalog does
/// not have only when it names every field an item needs.
pub fn apply_to_item(item: &mut Option<Item>, event: &Event) -> ItemOutcome {
    let mark = event.mark();
    match &event.body {
        EventBody::ItemRemoved { .. } => {
            let Some(item) = item.as_mut() else {
                return Ok(Outcome::Unchanged(Skip::UnknownItem));
            };
            let marks = item.marks.get_or_insert_with(ItemMarks::default);
            if marks.removed {
                return Ok(Outcome::Unchanged(Skip::Duplicate));
            }
            marks.removed = true;
            Ok(Outcome::Changed(Row::Item))
        }
        EventBody::ItemUpdated { item: id, fields } => {
            let current = match item.take() {
                Some(current) => current,
                None => new_item(id, fields)?,
            };
            let before = current.clone();
            let updated = update_fields(current, fields, &mark);
            let changed = updated != before;
            *item = Some(updated);
            let seen = before
                .marks
                .as_ref()
                .is_some_and(|m| m.fields.values().any(|m| *m == mark));
            Ok(if changed {
                Outcome::Changed(Row::Item)
            } else if seen {
                Outcome::Unchanged(Skip::Duplicate)
            } else {
                Outcome::Unchanged(Skip::Stale)
            })
        }
        _ => Ok(Outcome::Unchanged(Skip::Duplicate)),
    }
}

fn new_item(id: &ItemId, fields: &ItemFields) -> Result<Item, crate::ingest::EventError> {
    let missing: Vec<&str> = [
        ("title", fields.title.is_none()),
        ("category", fields.category.is_none()),
        ("url", fields.url.is_none()),
        ("image_url", fields.image_url.is_none()),
        ("price", fields.price.is_none()),
        ("currency", fields.currency.is_none()),
        ("stock", fields.stock.is_none()),
    ]
    .into_iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(crate::ingest::EventError {
            code: "unknown_item",
            message: format!(
                "item `{id}` is not in the catalog, and a new item needs {}",
                missing.join(", ")
            ),
        });
    }
    // Every field is set from `fields` just after (with its mark); these are placeholders.
    Ok(Item {
        item_id: id.clone(),
        title: String::new(),
        category: String::new(),
        url: String::new(),
        image_url: String::new(),
        price: 0,
        currency: String::new(),
        stock: 0,
        rating: None,
        review_count: 0,
        top_review: None,
        discount: None,
        marks: Some(ItemMarks::default()),
        encoded: Default::default(),
    })
}

fn update_fields(mut next: Item, fields: &ItemFields, mark: &Mark) -> Item {
    let mut marks = next.marks.take().unwrap_or_default();
    let mut set = |name: &str| -> bool {
        match marks.fields.get(name) {
            Some(m) if m >= mark => false,
            _ => {
                marks.fields.insert(name.to_owned(), mark.clone());
                true
            }
        }
    };
    if let Some(v) = &fields.title {
        if set("title") {
            next.title = v.clone();
        }
    }
    if let Some(v) = &fields.category {
        if set("category") {
            next.category = v.clone();
        }
    }
    if let Some(v) = &fields.url {
        if set("url") {
            next.url = v.clone();
        }
    }
    if let Some(v) = &fields.image_url {
        if set("image_url") {
            next.image_url = v.clone();
        }
    }
    if let Some(v) = fields.price {
        if set("price") {
            next.price = v;
        }
    }
    if let Some(v) = &fields.currency {
        if set("currency") {
            next.currency = v.clone();
        }
    }
    if let Some(v) = fields.stock {
        if set("stock") {
            next.stock = v;
        }
    }
    if let Some(v) = &fields.discount {
        if set("discount") {
            next.discount = v.clone();
        }
    }
    next.marks = Some(marks);
    next
}

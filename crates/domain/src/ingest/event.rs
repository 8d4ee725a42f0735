//! The event format (one JSON object per event) and its validation: an envelope with an id, a
//! type, a user (or an item) and a time, and the type's properties. `cart_updated` and
//! `order_placed` take Braze's `ecommerce.cart_updated` / `ecommerce.order_placed` properties
//! as they are, and Braze's names are accepted as types too:
//!
//! > "ecommerce.cart_updated … cart_id (required) … total_value (required) … currency
//! > (required) … products (required): product_id, product_name, variant_id, quantity,
//! > price … source (required) … metadata"
//! > — <https://www.braze.com/docs/user_guide/data/activation/events/recommended_events/ecommerce_events/>
//!
//! Only what the rules use is required (`products[].product_id`, the order's `order_id`);
//! every other Braze property is accepted and ignored, so a Braze payload is taken unchanged.

use super::{IngestLimits, Mark};
use crate::ids::{InvalidUserId, ItemId, UserId};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event as received: the envelope with its properties still raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    /// The producer's id of the event: redelivery of the same event carries the same id.
    #[serde(default)]
    pub id: Option<String>,
    /// The event type ([`EventKind`]'s names, or Braze's `ecommerce.*` names).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Whose event (every type but `item_updated` and `item_removed`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// When it happened: RFC 3339, or Unix seconds (as Braze Currents writes `time`).
    #[serde(default)]
    pub time: Option<Value>,
    /// The type's properties.
    #[serde(default)]
    pub properties: Option<Value>,
}

/// The event types, by their names in the `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The whole cart as it is now (Braze `ecommerce.cart_updated`).
    CartUpdated,
    /// An order (Braze `ecommerce.order_placed`).
    OrderPlaced,
    /// A session, a product view or a feature tried.
    Activity,
    /// The user signed up.
    SignedUp,
    /// The user made the first key action: onboarding is over.
    KeyAction,
    /// A message was sent to the user (a win-back when `block` is `dormancy`).
    MessageSent,
    /// The user opened or clicked a message.
    MessageEngaged,
    /// Some of an item's fields changed (price, stock, discount, …).
    ItemUpdated,
    /// The item left the catalog.
    ItemRemoved,
    /// The model wrote the user a new recommendation list.
    RecsUpdated,
}

impl EventKind {
    /// Every type, in the order of the documentation.
    pub const ALL: [EventKind; 10] = [
        EventKind::CartUpdated,
        EventKind::OrderPlaced,
        EventKind::Activity,
        EventKind::SignedUp,
        EventKind::KeyAction,
        EventKind::MessageSent,
        EventKind::MessageEngaged,
        EventKind::ItemUpdated,
        EventKind::ItemRemoved,
        EventKind::RecsUpdated,
    ];

    /// The name in the `type` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::CartUpdated => "cart_updated",
            EventKind::OrderPlaced => "order_placed",
            EventKind::Activity => "activity",
            EventKind::SignedUp => "signed_up",
            EventKind::KeyAction => "key_action",
            EventKind::MessageSent => "message_sent",
            EventKind::MessageEngaged => "message_engaged",
            EventKind::ItemUpdated => "item_updated",
            EventKind::ItemRemoved => "item_removed",
            EventKind::RecsUpdated => "recs_updated",
        }
    }

    /// The type named `name`: ours, or Braze's `ecommerce.cart_updated`,
    /// `ecommerce.order_placed` and `ecommerce.product_viewed` (an `activity` view).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ecommerce.cart_updated" => Some(EventKind::CartUpdated),
            "ecommerce.order_placed" => Some(EventKind::OrderPlaced),
            "ecommerce.product_viewed" => Some(EventKind::Activity),
            _ => Self::ALL.into_iter().find(|k| k.as_str() == name),
        }
    }

    /// Whether the event is about an item (no user).
    pub const fn is_item_event(self) -> bool {
        matches!(self, EventKind::ItemUpdated | EventKind::ItemRemoved)
    }
}

/// A validated event: what the rules in [`super::apply`] take.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The producer's id (redelivery keeps it).
    pub id: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// What happened, and to whom.
    pub body: EventBody,
}

impl Event {
    /// The event's type.
    pub fn kind(&self) -> EventKind {
        match &self.body {
            EventBody::CartUpdated { .. } => EventKind::CartUpdated,
            EventBody::OrderPlaced { .. } => EventKind::OrderPlaced,
            EventBody::Activity { .. } => EventKind::Activity,
            EventBody::SignedUp { .. } => EventKind::SignedUp,
            EventBody::KeyAction { .. } => EventKind::KeyAction,
            EventBody::MessageSent { .. } => EventKind::MessageSent,
            EventBody::MessageEngaged { .. } => EventKind::MessageEngaged,
            EventBody::ItemUpdated { .. } => EventKind::ItemUpdated,
            EventBody::ItemRemoved { .. } => EventKind::ItemRemoved,
            EventBody::RecsUpdated { .. } => EventKind::RecsUpdated,
        }
    }

    /// Whose records the event changes.
    pub fn target(&self) -> Target<'_> {
        match &self.body {
            EventBody::CartUpdated { user, .. }
            | EventBody::OrderPlaced { user, .. }
            | EventBody::Activity { user, .. }
            | EventBody::SignedUp { user, .. }
            | EventBody::KeyAction { user, .. }
            | EventBody::MessageSent { user, .. }
            | EventBody::MessageEngaged { user, .. }
            | EventBody::RecsUpdated { user, .. } => Target::User(user),
            EventBody::ItemUpdated { item, .. } | EventBody::ItemRemoved { item } => {
                Target::Item(item)
            }
        }
    }

    /// The one stored record the event may change (and the only one its rule reads):
    /// `cart_updated` the cart, `recs_updated` the list, item events the item, every other
    /// event the profile.
    pub fn row(&self) -> super::Row {
        match &self.body {
            EventBody::CartUpdated { .. } => super::Row::Cart,
            EventBody::RecsUpdated { .. } => super::Row::Recs,
            EventBody::ItemUpdated { .. } | EventBody::ItemRemoved { .. } => super::Row::Item,
            _ => super::Row::Profile,
        }
    }

    /// The event's place in the order every rule uses: its time, then its id.
    pub fn mark(&self) -> Mark {
        Mark {
            at: self.time,
            id: self.id.clone(),
        }
    }
}

/// Whose records an event changes: one user's, or one catalog item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The user's partition (profile, cart or list).
    User(&'a UserId),
    /// The catalog item.
    Item(&'a ItemId),
}

/// What one event says, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// The whole cart now (an empty `products` empties it).
    CartUpdated {
        /// Whose cart.
        user: UserId,
        /// The lines, as `products[]` lists them (a product listed twice: quantities added).
        lines: Vec<(ItemId, u32)>,
    },
    /// An order.
    OrderPlaced {
        /// Who ordered.
        user: UserId,
        /// Braze's `order_id`.
        order_id: String,
        /// The products ordered.
        items: Vec<ItemId>,
    },
    /// A session, a product view, or a feature tried.
    Activity {
        /// Whose activity.
        user: UserId,
        /// The product viewed (`product_id`), if any.
        viewed: Option<ItemId>,
        /// The key feature tried (`feature`), if any.
        feature: Option<String>,
    },
    /// The user signed up.
    SignedUp {
        /// Who.
        user: UserId,
        /// The user's language (`ko`, `en`), if given.
        locale: Option<String>,
    },
    /// The first key action.
    KeyAction {
        /// Who.
        user: UserId,
    },
    /// A message sent.
    MessageSent {
        /// To whom.
        user: UserId,
        /// The message's id (Braze's `dispatch_id` or send id): a message sent twice counts once.
        message_id: String,
        /// Whether it was a win-back (`block: "dormancy"`).
        winback: bool,
    },
    /// A message opened or clicked.
    MessageEngaged {
        /// Who.
        user: UserId,
    },
    /// Some of an item's fields, each set only if newer than the event that last set it.
    ItemUpdated {
        /// Which item.
        item: ItemId,
        /// The fields given.
        fields: ItemFields,
    },
    /// The item left the catalog.
    ItemRemoved {
        /// Which item.
        item: ItemId,
    },
    /// A new recommendation list.
    RecsUpdated {
        /// Whose list.
        user: UserId,
        /// Best first.
        items: Vec<ItemId>,
        /// When the model wrote it (default: the event's time).
        generated_at: DateTime<Utc>,
        /// When it stops counting (default: `generated_at` + the configured list lifetime).
        expires_at: DateTime<Utc>,
    },
}

/// The item fields an `item_updated` may set; absent ones are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemFields {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Category key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Product page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Price in minor units of the currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// ISO 4217 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Units in stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u32>,
    /// A discount (`{"pct": 20, "ends_at": …}`), or `null` to end the current one.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub discount: Option<Option<crate::model::Discount>>,
}

/// `Some(value)` for a present field, `null` included (`Some(None)`); an absent field stays
/// `None` through `#[serde(default)]`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ItemFields {
    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Why an event was refused: a stable code and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EventError {
    /// Stable, machine-readable: see [`EventError::CODES`].
    pub code: &'static str,
    /// What was wrong, naming the field.
    pub message: String,
}

impl EventError {
    /// Every code an event can be refused with.
    pub const CODES: [&'static str; 7] = [
        "invalid_event",
        "unknown_type",
        "missing_field",
        "invalid_field",
        "invalid_user_id",
        "invalid_item_id",
        "time_in_future",
    ];

    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self::new("missing_field", format!("`{field}` is required"))
    }

    fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new("invalid_field", format!("`{field}`: {why}"))
    }
}

/// Longest event id, item id, order id or message id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Validates an item id from an event: 1–128 bytes, no control characters or spaces at
/// either end (item ids end up in keys and URLs).
pub fn parse_item_id(raw: &str, field: &str) -> Result<ItemId, EventError> {
    if raw.is_empty() || raw.len() > MAX_ID_BYTES {
        return Err(EventError::new(
            "invalid_item_id",
            format!("`{field}` must be 1–{MAX_ID_BYTES} bytes"),
        ));
    }
    if raw.chars().any(char::is_control) || raw.trim() != raw {
        return Err(EventError::new(
            "invalid_item_id",
            format!("`{field}` has a control character or surrounding spaces"),
        ));
    }
    Ok(ItemId::new(raw))
}

fn parse_id(raw: &str, field: &str) -> Result<String, EventError> {
    if raw.is_empty() || raw.len() > MAX_ID_BYTES || raw.chars().any(char::is_control) {
        return Err(EventError::invalid(
            field,
            format!("must be 1–{MAX_ID_BYTES} bytes without control characters"),
        ));
    }
    Ok(raw.to_owned())
}

fn parse_user(raw: Option<&str>) -> Result<UserId, EventError> {
    let raw = raw.ok_or_else(|| EventError::missing("user_id"))?;
    UserId::parse(raw).map_err(|e: InvalidUserId| EventError::new("invalid_user_id", e.to_string()))
}

fn parse_time(raw: Option<&Value>) -> Result<DateTime<Utc>, EventError> {
    match raw {
        None | Some(Value::Null) => Err(EventError::missing("time")),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| EventError::invalid("time", format!("not RFC 3339 ({e})"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
            .filter(|t| t.timestamp() > 0)
            .ok_or_else(|| EventError::invalid("time", "not Unix seconds after 1970")),
        Some(_) => Err(EventError::invalid(
            "time",
            "must be an RFC 3339 string or Unix seconds",
        )),
    }
}

/// Properties as a map (absent: empty).
fn properties(raw: &RawEvent) -> Result<serde_json::Map<String, Value>, EventError> {
    match &raw.properties {
        None | Some(Value::Null) => Ok(serde_json::Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(EventError::invalid("properties", "must be an object")),
    }
}

fn string_field<'a>(
    props: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, EventError> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EventError::invalid(
            &format!("properties.{name}"),
            "must be a string",
        )),
    }
}

fn required_string<'a>(
    props: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, EventError> {
    string_field(props, name)?.ok_or_else(|| EventError::missing(&format!("properties.{name}")))
}

/// `products[]` as (product id, quantity): Braze's lines, `quantity` 1 when absent.
fn products(
    props: &serde_json::Map<String, Value>,
    limits: &IngestLimits,
) -> Result<Vec<(ItemId, u32)>, EventError> {
    let list = match props.get("products") {
        None | Some(Value::Null) => return Err(EventError::missing("properties.products")),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(EventError::invalid(
                "properties.products",
                "must be an array",
            ))
        }
    };
    if list.len() > limits.max_products {
        return Err(EventError::invalid(
            "properties.products",
            format!("more than {} products", limits.max_products),
        ));
    }
    let mut lines: Vec<(ItemId, u32)> = Vec::with_capacity(list.len());
    for (i, product) in list.iter().enumerate() {
        let field = format!("properties.products[{i}]");
        let Value::Object(product) = product else {
            return Err(EventError::invalid(&field, "must be an object"));
        };
        let id = match product.get("product_id") {
            Some(Value::String(s)) => parse_item_id(s, &format!("{field}.product_id"))?,
            None | Some(Value::Null) => {
                return Err(EventError::missing(&format!("{field}.product_id")))
            }
            Some(_) => {
                return Err(EventError::invalid(
                    &format!("{field}.product_id"),
                    "must be a string",
                ))
            }
        };
        let quantity = match product.get("quantity") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|q| (1..=u64::from(u32::MAX)).contains(q))
                .map(|q| q as u32)
                .ok_or_else(|| {
                    EventError::invalid(&format!("{field}.quantity"), "must be a whole number ≥ 1")
                })?,
        };
        match lines.iter_mut().find(|(item, _)| *item == id) {
            Some((_, q)) => *q = q.saturating_add(quantity),
            None => lines.push((id, quantity)),
        }
    }
    Ok(lines)
}

fn item_list(
    props: &serde_json::Map<String, Value>,
    name: &str,
    limits: &IngestLimits,
) -> Result<Vec<ItemId>, EventError> {
    let field = format!("properties.{name}");
    let list = match props.get(name) {
        None | Some(Value::Null) => return Err(EventError::missing(&field)),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(EventError::invalid(&field, "must be an array of item ids")),
    };
    if list.len() > limits.max_products {
        return Err(EventError::invalid(
            &field,
            format!("more than {} items", limits.max_products),
        ));
    }
    let mut items = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let Value::String(s) = v else {
            return Err(EventError::invalid(
                &format!("{field}[{i}]"),
                "must be a string",
            ));
        };
        let id = parse_item_id(s, &format!("{field}[{i}]"))?;
        if !items.contains(&id) {
            items.push(id);
        }
    }
    Ok(items)
}

fn optional_time(
    props: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, EventError> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_time(Some(v))
            .map(Some)
            .map_err(|e| EventError::invalid(&format!("properties.{name}"), e.message)),
    }
}

impl RawEvent {
    /// Validates the event against `now` (an injected clock; no I/O): every field the type
    /// needs is present and well-formed, the ids pass our rules and the time is not further
    /// ahead of `now` than `limits.max_future` allows.
    pub fn validate(&self, now: DateTime<Utc>, limits: &IngestLimits) -> Result<Event, EventError> {
        let kind_name = self
            .kind
            .as_deref()
            .ok_or_else(|| EventError::missing("type"))?;
        let kind = EventKind::parse(kind_name).ok_or_else(|| {
            EventError::new(
                "unknown_type",
                format!(
                    "`{}` is not one of {}",
                    kind_name.chars().take(64).collect::<String>(),
                    EventKind::ALL.map(EventKind::as_str).join(", ")
                ),
            )
        })?;
        let id = parse_id(
            self.id
                .as_deref()
                .ok_or_else(|| EventError::missing("id"))?,
            "id",
        )?;
        let time = parse_time(self.time.as_ref())?;
        if time > now + limits.max_future {
            return Err(EventError::new(
                "time_in_future",
                format!(
                    "`time` {} is more than {} s ahead of the server's clock",
                    time.to_rfc3339(),
                    limits.max_future.num_seconds()
                ),
            ));
        }
        let props = properties(self)?;
        let user = || parse_user(self.user_id.as_deref());
        let body = match kind {
            EventKind::CartUpdated => EventBody::CartUpdated {
                user: user()?,
                lines: products(&props, limits)?,
            },
            EventKind::OrderPlaced => EventBody::OrderPlaced {
                user: user()?,
                order_id: parse_id(required_string(&props, "order_id")?, "properties.order_id")?,
                items: products(&props, limits)?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect(),
            },
            EventKind::Activity => EventBody::Activity {
                user: user()?,
                viewed: string_field(&props, "product_id")?
                    .map(|s| parse_item_id(s, "properties.product_id"))
                    .transpose()?,
                feature: string_field(&props, "feature")?
                    .map(|s| parse_id(s, "properties.feature"))
                    .transpose()?,
            },
            EventKind::SignedUp => EventBody::SignedUp {
                user: user()?,
                locale: match string_field(&props, "locale")? {
                    None => None,
                    Some(l @ ("ko" | "en")) => Some(l.to_owned()),
                    Some(_) => {
                        return Err(EventError::invalid("properties.locale", "must be ko or en"))
                    }
                },
            },
            EventKind::KeyAction => EventBody::KeyAction { user: user()? },
            EventKind::MessageSent => EventBody::MessageSent {
                user: user()?,
                message_id: parse_id(
                    string_field(&props, "message_id")?.unwrap_or(&id),
                    "properties.message_id",
                )?,
                winback: string_field(&props, "block")? == Some("dormancy"),
            },
            EventKind::MessageEngaged => EventBody::MessageEngaged { user: user()? },
            EventKind::ItemUpdated => {
                let item =
                    parse_item_id(required_string(&props, "item_id")?, "properties.item_id")?;
                let mut rest = props.clone();
                rest.remove("item_id");
                let fields: ItemFields = serde_json::from_value(Value::Object(rest))
                    .map_err(|e| EventError::invalid("properties", e))?;
                if fields.price.is_some_and(|p| p < 0) {
                    return Err(EventError::invalid(
                        "properties.price",
                        "must not be negative",
                    ));
                }
                if let Some(Some(d)) = &fields.discount {
                    if d.pct > 100 {
                        return Err(EventError::invalid(
                            "properties.discount.pct",
                            "must be from 0 to 100",
                        ));
                    }
                }
                if fields.is_empty() {
                    return Err(EventError::invalid(
                        "properties",
                        "name at least one field to update",
                    ));
                }
                EventBody::ItemUpdated { item, fields }
            }
            EventKind::ItemRemoved => EventBody::ItemRemoved {
                item: parse_item_id(required_string(&props, "item_id")?, "properties.item_id")?,
            },
            EventKind::RecsUpdated => {
                let generated_at = optional_time(&props, "generated_at")?.unwrap_or(time);
                let expires_at = optional_time(&props, "expires_at")?
                    .unwrap_or(generated_at + limits.recs_lifetime);
                EventBody::RecsUpdated {
                    user: user()?,
                    items: item_list(&props, "items", limits)?,
                    generated_at,
                    expires_at,
                }
            }
        };
        if kind.is_item_event() && self.user_id.is_some() {
            return Err(EventError::invalid(
                "user_id",
                format!("a `{}` event is about an item, not a user", kind.as_str()),
            ));
        }
        Ok(Event { id, time, body })
    }
}

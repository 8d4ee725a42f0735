//! One Currents record (an Avro record read with its file's writer schema) to one sendtime
//! event, or the reason it is dropped.
//!
//! Fields are found by name in each file's writer schema, so a newer schema with added
//! optional fields reads the same: Braze, "Schemas can be evolved over time to handle the
//! addition of fields without breaking"
//! (<https://www.braze.com/docs/user_guide/data_and_analytics/braze_currents/event_delivery_semantics>).
//! Field meanings are Braze's storage schemas
//! (<https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/message_engagement_events/>).

use super::currency::{to_minor, MoneyError};
use super::kinds::Kind;
use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::DateTime;
use sendtime_targeting::events::Event;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The custom event that Braze's ecommerce recommended events log for an order
/// (<https://www.braze.com/docs/developer_guide/analytics/logging_ecommerce_events/>): its
/// properties carry the order's `total_value` (float) and `currency` (ISO 4217 code).
pub const ORDER_PLACED: &str = "ecommerce.order_placed";

/// Where the fields this import reads sit in one file's writer schema.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    id: Option<usize>,
    time: Option<usize>,
    user_id: Option<usize>,
    external_user_id: Option<usize>,
    campaign_id: Option<usize>,
    canvas_step_id: Option<usize>,
    dispatch_id: Option<usize>,
    url: Option<usize>,
    message_extras: Option<usize>,
    machine_open: Option<usize>,
    is_suspected_bot_click: Option<usize>,
    price: Option<usize>,
    currency: Option<usize>,
    name: Option<usize>,
    properties: Option<usize>,
}

impl Fields {
    /// The positions of the named fields in `schema` (a record), or why it cannot be read:
    /// every Currents event has `id` (its globally unique id), `time` and `user_id`.
    pub fn of(schema: &Schema) -> Result<Fields, String> {
        let Schema::Record(record) = schema else {
            return Err("the writer schema is not a record".into());
        };
        let at = |name: &str| record.lookup.get(name).copied();
        let fields = Fields {
            id: at("id"),
            time: at("time"),
            user_id: at("user_id"),
            external_user_id: at("external_user_id"),
            campaign_id: at("campaign_id"),
            canvas_step_id: at("canvas_step_id"),
            dispatch_id: at("dispatch_id"),
            url: at("url"),
            message_extras: at("message_extras"),
            machine_open: at("machine_open"),
            is_suspected_bot_click: at("is_suspected_bot_click"),
            price: at("price"),
            currency: at("currency"),
            name: at("name"),
            properties: at("properties"),
        };
        for (name, pos) in [
            ("id", fields.id),
            ("time", fields.time),
            ("user_id", fields.user_id),
        ] {
            if pos.is_none() {
                return Err(format!("the writer schema has no '{name}' field"));
            }
        }
        Ok(fields)
    }
}

/// Why a record is not written.
#[derive(Debug, Clone, PartialEq)]
pub enum Dropped {
    /// An email open by "an automated process, such as Apple or Google mail pre-fetching"
    /// (`machine_open`).
    MachineOpen,
    /// A click Braze flags as a suspected bot's (`is_suspected_bot_click`).
    BotClick,
    /// A custom event other than `ecommerce.order_placed` (its name).
    OtherCustomEvent(String),
    /// A purchase in a currency without a known ISO 4217 exponent (the code).
    UnsupportedCurrency(String),
    /// Unusable: missing or malformed fields (what is wrong).
    Bad(String),
}

/// A record that is kept: the event, its time, and a stable hash of Braze's event id.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The event, owning its strings.
    pub event: Event<'static>,
    /// A 64-bit hash of the Currents `id` (see [`id_hash`]).
    pub id: u64,
    /// Whether a Send's `message_extras` was present but not a JSON object (kept without it).
    pub extras_unreadable: bool,
}

/// A stable 64-bit hash of a Currents event id: FNV-1a, then the SplitMix64 finaliser to
/// spread it. Stable across builds and Rust versions (the state file of incremental runs
/// keeps these). Assumption: two different ids share a hash with probability about
/// n² / 2⁶⁵ (under 10⁻⁶ at five million events), which would drop one real event.
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn plain(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => plain(inner),
        other => other,
    }
}

fn field(record: &[(String, Value)], pos: Option<usize>) -> Option<&Value> {
    let value = plain(&record.get(pos?)?.1);
    (!matches!(value, Value::Null)).then_some(value)
}

fn text(record: &[(String, Value)], pos: Option<usize>) -> Option<&str> {
    match field(record, pos)? {
        Value::String(s) | Value::Enum(_, s) => Some(s.as_str()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

fn number(record: &[(String, Value)], pos: Option<usize>) -> Option<f64> {
    match field(record, pos)? {
        Value::Int(i) => Some(f64::from(*i)),
        Value::Long(l) => Some(*l as f64),
        Value::Float(f) => Some(f64::from(*f)),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// Maps one record of a file of `kind`, whose fields sit at `fields`.
pub fn map(kind: Kind, fields: &Fields, value: &Value) -> Result<Mapped, Dropped> {
    let Value::Record(record) = value else {
        return Err(Dropped::Bad("not a record".into()));
    };
    let record = record.as_slice();
    let id = text(record, fields.id).ok_or_else(|| Dropped::Bad("no 'id'".into()))?;
    let time = match field(record, fields.time) {
        Some(Value::Int(t)) => i64::from(*t),
        Some(Value::Long(t)) => *t,
        _ => return Err(Dropped::Bad("no integer 'time'".into())),
    };
    let at = DateTime::from_timestamp(time, 0)
        .ok_or_else(|| Dropped::Bad(format!("'time' {time} is out of range")))?;
    // "external_user_id: External ID of the user" (the customer's id) else "user_id: Braze
    // user id of the user".
    let user = text(record, fields.external_user_id)
        .or_else(|| text(record, fields.user_id))
        .ok_or_else(|| Dropped::Bad("no 'external_user_id' or 'user_id'".into()))?;
    if let Err(e) = sendtime_domain::UserId::parse(user) {
        return Err(Dropped::Bad(format!("user id '{user}' is not usable: {e}")));
    }
    let mut event = Event {
        at,
        event: kind.event(),
        user_id: Cow::Owned(user.to_owned()),
        campaign_id: None,
        channel: None,
        value: None,
        currency: None,
        dispatch_id: None,
        url: None,
        extras: None,
    };
    let mut extras_unreadable = false;
    if kind.is_message() {
        // The campaign, else the Canvas step: a Canvas sends many messages at different
        // times and channels, and the step is the one message the replay can treat as a
        // campaign (one channel, one send window); `canvas_id` would merge them all.
        let campaign =
            text(record, fields.campaign_id).or_else(|| text(record, fields.canvas_step_id));
        if campaign.is_none() && kind.event().needs_campaign() {
            return Err(Dropped::Bad(
                "a message event with neither 'campaign_id' nor 'canvas_step_id'".into(),
            ));
        }
        event.campaign_id = campaign.map(|c| Cow::Owned(c.to_owned()));
        event.dispatch_id = text(record, fields.dispatch_id).map(|d| Cow::Owned(d.to_owned()));
    }
    match kind {
        Kind::Send(channel) => {
            event.channel = Some(channel);
            if let Some(raw) = text(record, fields.message_extras) {
                match extras(raw) {
                    Some(map) => event.extras = Some(map),
                    None => extras_unreadable = true,
                }
            }
        }
        Kind::Open(_) => {
            // "machine_open: Indicator of whether the e-mail was opened by an automated
            // process, such as Apple or Google mail pre-fetching. Currently "true" or null,
            // but additional granularity (e.g., "Apple" or "Google" …) may be added in the
            // future": any value but null (or "false") is a machine open.
            if let Some(flag) = text(record, fields.machine_open) {
                if !flag.eq_ignore_ascii_case("false") {
                    return Err(Dropped::MachineOpen);
                }
            }
        }
        Kind::Click(_) => {
            // `is_suspected_bot_click` (null, boolean): whether Braze processed the click as a
            // bot's; Braze's bot filtering page ("Fields in email click events for Currents
            // and Snowflake") says it is sent as null until the workspace's remove-bot-clicks
            // setting is on (read in its translated versions). The field is in the storage
            // schemas of users.messages.email.Click and sms.ShortLinkClick
            // (<https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/message_engagement_events/>).
            // True drops; null and false keep.
            if matches!(
                field(record, fields.is_suspected_bot_click),
                Some(Value::Boolean(true))
            ) {
                return Err(Dropped::BotClick);
            }
            event.url = text(record, fields.url).map(|u| Cow::Owned(u.to_owned()));
        }
        Kind::Purchase => {
            // `price` (float, major units) and `currency` (string) of the users.behaviors.Purchase
            // storage schema (customer behavior events).
            let price = number(record, fields.price)
                .ok_or_else(|| Dropped::Bad("a purchase without a numeric 'price'".into()))?;
            let code = text(record, fields.currency)
                .ok_or_else(|| Dropped::Bad("a purchase without a 'currency'".into()))?;
            money(&mut event, price, code)?;
        }
        Kind::CustomEvent => {
            let name = text(record, fields.name).unwrap_or_default();
            if name != ORDER_PLACED {
                return Err(Dropped::OtherCustomEvent(name.to_owned()));
            }
            let properties = text(record, fields.properties).unwrap_or("{}");
            let props: serde_json::Value = serde_json::from_str(properties).map_err(|e| {
                Dropped::Bad(format!("{ORDER_PLACED} 'properties' is not JSON: {e}"))
            })?;
            let price = props["total_value"].as_f64().ok_or_else(|| {
                Dropped::Bad(format!("{ORDER_PLACED} without a numeric 'total_value'"))
            })?;
            let code = props["currency"]
                .as_str()
                .ok_or_else(|| Dropped::Bad(format!("{ORDER_PLACED} without a 'currency'")))?;
            money(&mut event, price, code)?;
        }
        Kind::Unsubscribe(_) | Kind::Bounce(_) | Kind::SessionStart => {}
    }
    Ok(Mapped {
        event,
        id: id_hash(id),
        extras_unreadable,
    })
}

fn money(event: &mut Event<'static>, price: f64, code: &str) -> Result<(), Dropped> {
    match to_minor(price, code) {
        Ok((minor, normalised)) => {
            event.value = Some(minor);
            event.currency = Some(Cow::Owned(normalised));
            Ok(())
        }
        Err(MoneyError::Unsupported(code)) => Err(Dropped::UnsupportedCurrency(code)),
        Err(e) => Err(Dropped::Bad(e.to_string())),
    }
}

/// A Send's `message_extras` ("a JSON string" of the keys and values the template's
/// `message_extras` tags attached) as a flat string map; a non-string value keeps its JSON
/// text. `None` when it is not a JSON object.
pub fn extras(raw: &str) -> Option<BTreeMap<String, String>> {
    let serde_json::Value::Object(map) = serde_json::from_str(raw).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_extras_become_a_flat_string_map_and_non_objects_are_refused() {
        let map = extras(r#"{"sendtime_rec_id":"r1","position":2}"#).unwrap();
        assert_eq!(map["sendtime_rec_id"], "r1");
        assert_eq!(map["position"], "2");
        assert!(extras("[1]").is_none());
        assert!(extras("not json").is_none());
    }

    #[test]
    fn id_hashes_are_pinned_because_the_state_of_earlier_runs_keeps_them() {
        // Values from an independent implementation of FNV-1a + SplitMix64's finaliser.
        assert_eq!(id_hash("a"), 0x02c0_bdbf_4814_20f8);
        assert_eq!(
            id_hash("2f6d2a3c-0000-4000-8000-000000000001"),
            0x45ae_6a92_0029_0c46
        );
        assert_ne!(id_hash("a"), id_hash("b"));
    }
}

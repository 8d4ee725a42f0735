//! Which Currents event types become which sendtime events, chosen by the `event_type=` part
//! of an object's key.
//!
//! Braze, on its storage integrations: "Currents will create a file for each event type", in
//! a key whose segments include `event_type=` and `date=`
//! (<https://www.braze.com/docs/user_guide/data_and_analytics/braze_currents/event_delivery_semantics>);
//! the rest of the name is Braze's to change (issue 22, BRIEF §7: "Braze says names may
//! change"):
//! so only that segment of the key is read, never the file name. The event type names and
//! their fields are Braze's storage schemas
//! (<https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/message_engagement_events/>,
//! <https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/customer_behavior_events/>)
//! as the writer schemas of Braze's sample files show them
//! (<https://github.com/Appboy/currents-examples/tree/master/sample-data/Avro>).

use sendtime_targeting::events::{Channel, EventType};

/// A Currents event type this import maps, and what it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `users.messages.{email,pushnotification,sms}.Send` → `sent`.
    Send(Channel),
    /// `users.messages.email.Open` (machine opens dropped), `users.messages.pushnotification.Open` → `opened`.
    Open(Channel),
    /// `users.messages.email.Click`, `users.messages.sms.ShortLinkClick` (suspected bot
    /// clicks dropped) → `clicked`.
    Click(Channel),
    /// `users.messages.email.Unsubscribe` → `unsubscribed`.
    Unsubscribe(Channel),
    /// `users.messages.email.Bounce` (a hard bounce: "a permanent deliverability failure";
    /// soft bounces are `SoftBounce`, not mapped), `users.messages.pushnotification.Bounce`
    /// → `bounced`.
    Bounce(Channel),
    /// `users.behaviors.Purchase` → `purchase` (`price` in `currency`).
    Purchase,
    /// `users.behaviors.app.SessionStart` → `visit`.
    SessionStart,
    /// `users.behaviors.CustomEvent` named `ecommerce.order_placed` → `purchase`; other custom
    /// events are counted and dropped.
    CustomEvent,
}

/// Every mapped Braze event type name, with its kind.
pub const MAPPED: [(&str, Kind); 13] = [
    ("users.messages.email.Send", Kind::Send(Channel::Email)),
    (
        "users.messages.pushnotification.Send",
        Kind::Send(Channel::Push),
    ),
    ("users.messages.sms.Send", Kind::Send(Channel::Sms)),
    ("users.messages.email.Open", Kind::Open(Channel::Email)),
    (
        "users.messages.pushnotification.Open",
        Kind::Open(Channel::Push),
    ),
    ("users.messages.email.Click", Kind::Click(Channel::Email)),
    (
        "users.messages.sms.ShortLinkClick",
        Kind::Click(Channel::Sms),
    ),
    (
        "users.messages.email.Unsubscribe",
        Kind::Unsubscribe(Channel::Email),
    ),
    ("users.messages.email.Bounce", Kind::Bounce(Channel::Email)),
    (
        "users.messages.pushnotification.Bounce",
        Kind::Bounce(Channel::Push),
    ),
    ("users.behaviors.Purchase", Kind::Purchase),
    ("users.behaviors.app.SessionStart", Kind::SessionStart),
    ("users.behaviors.CustomEvent", Kind::CustomEvent),
];

impl Kind {
    /// The kind of a Braze event type name, if it is mapped.
    pub fn of(event_type: &str) -> Option<Kind> {
        MAPPED
            .iter()
            .find(|(name, _)| *name == event_type)
            .map(|(_, k)| *k)
    }

    /// The sendtime event it becomes.
    pub const fn event(self) -> EventType {
        match self {
            Kind::Send(_) => EventType::Sent,
            Kind::Open(_) => EventType::Opened,
            Kind::Click(_) => EventType::Clicked,
            Kind::Unsubscribe(_) => EventType::Unsubscribed,
            Kind::Bounce(_) => EventType::Bounced,
            Kind::Purchase | Kind::CustomEvent => EventType::Purchase,
            Kind::SessionStart => EventType::Visit,
        }
    }

    /// Whether the event belongs to a message (and so carries campaign or Canvas ids).
    pub const fn is_message(self) -> bool {
        matches!(
            self,
            Kind::Send(_) | Kind::Open(_) | Kind::Click(_) | Kind::Unsubscribe(_) | Kind::Bounce(_)
        )
    }
}

/// The `event_type=` segment of an object key (`…/event_type=users.messages.email.Open/
/// date=…/….avro` → `users.messages.email.Open`), if it has one.
pub fn event_type_of_key(key: &str) -> Option<&str> {
    key.split(['/', '\\'])
        .find_map(|segment| segment.strip_prefix("event_type="))
        .filter(|t| !t.is_empty())
}

/// Where events of the same second go in the output: a message's send before its opens,
/// opens before clicks, so that a reader walking the file sees causes first.
pub const fn tie_rank(event: EventType) -> u8 {
    match event {
        EventType::Sent => 0,
        EventType::Bounced => 1,
        EventType::Opened => 2,
        EventType::Clicked => 3,
        EventType::Visit => 4,
        EventType::Purchase => 5,
        EventType::Unsubscribed => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_type_is_read_from_its_key_segment_only() {
        let key = "currents/dataexport.prod-03.S3.integration.5a/event_type=users.messages.email.Open/date=2026-12-01-09/599f/part-0.avro";
        assert_eq!(event_type_of_key(key), Some("users.messages.email.Open"));
        assert_eq!(
            Kind::of("users.messages.email.Open"),
            Some(Kind::Open(Channel::Email))
        );
        // A file name that looks like an event type does not count.
        assert_eq!(event_type_of_key("x/users.messages.email.Open.avro"), None);
        assert_eq!(event_type_of_key("x/event_type=/y.avro"), None);
        assert_eq!(Kind::of("users.messages.email.SoftBounce"), None);
    }
}

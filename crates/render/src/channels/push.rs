//! Push notifications: a title and a body within what lock screens show, a deep link and an
//! image.

use super::Channel;
use crate::message::Message;
use crate::text::{chars, fit};
use serde_json::json;

/// Longest push title, in characters (iOS and Android show about this much).
pub const TITLE_CHARS: usize = 50;
/// Longest push body, in characters (about four lines on a lock screen).
pub const BODY_CHARS: usize = 150;

/// The push channel.
pub struct Push;

impl Push {
    fn title(m: &Message) -> String {
        fit(&m.title, TITLE_CHARS, chars)
    }
}

impl Channel for Push {
    fn name(&self) -> &'static str {
        "push"
    }

    fn json(&self, m: &Message) -> serde_json::Value {
        json!({
            "channel": self.name(),
            "locale": m.locale,
            "slot": m.slot,
            "title": Self::title(m),
            "body": self.text(m),
            "url": m.link(),
            "image_url": m.image_url(),
        })
    }

    /// The body (the title is the JSON's `title`).
    fn text(&self, m: &Message) -> String {
        fit(&m.body, BODY_CHARS, chars)
    }
}

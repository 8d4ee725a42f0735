//! KakaoTalk (a friend-talk or alim-talk style message): text up to 1,000 characters and
//! one link button with a short label.

use super::Channel;
use crate::message::Message;
use crate::text::{chars, fit};
use serde_json::json;

/// Longest message text, in characters.
pub const TEXT_CHARS: usize = 1_000;
/// Longest button label, in characters.
pub const BUTTON_CHARS: usize = 14;

/// The KakaoTalk channel.
pub struct Kakao;

impl Channel for Kakao {
    fn name(&self) -> &'static str {
        "kakao"
    }

    fn json(&self, m: &Message) -> serde_json::Value {
        let buttons: Vec<serde_json::Value> = m
            .link()
            .map(|url| json!({ "name": fit(&m.cta, BUTTON_CHARS, chars), "url": url }))
            .into_iter()
            .collect();
        json!({
            "channel": self.name(),
            "locale": m.locale,
            "slot": m.slot,
            "text": self.text(m),
            "buttons": buttons,
            "image_url": m.image_url(),
        })
    }

    fn text(&self, m: &Message) -> String {
        let mut text = format!("{}\n\n{}", m.title, m.body);
        if !m.entries.is_empty() {
            text.push('\n');
        }
        for e in &m.entries {
            text.push_str("\n• ");
            text.push_str(&e.title);
            if let Some(price) = &e.price {
                text.push_str(" · ");
                text.push_str(price);
            }
        }
        fit(&text, TEXT_CHARS, chars)
    }
}

//! Channels: one renderer module each, listed once in [`CHANNELS`]. A renderer lays a
//! [`Message`] out for its medium and enforces its limits; it knows nothing of block rules,
//! so a new channel is one module here plus one line in the registry.

use crate::message::Message;

/// Email: an HTML fragment and the plain-text part.
pub mod email;
/// KakaoTalk: text up to 1,000 characters and a button.
pub mod kakao;
/// Push: a 50-character title and a 150-character body.
pub mod push;
/// SMS/LMS: EUC-KR bytes, 90 for an SMS, 2,000 for an LMS.
pub mod sms;

/// A medium a message is sent through.
pub trait Channel: Sync {
    /// Its name in URLs and copy records (`channel=sms`).
    fn name(&self) -> &'static str;

    /// The message as the JSON `message` object of a block (`format=json&channel=…`).
    fn json(&self, message: &Message) -> serde_json::Value;

    /// The message as plain text (`format=text`), within the channel's limits.
    fn text(&self, message: &Message) -> String;

    /// The message as an HTML fragment (`format=html`): email's is laid out for an email;
    /// the others show their text, escaped, a paragraph per block of lines (a web view or a
    /// preview of what the channel sends).
    fn html(&self, message: &Message) -> String {
        text_as_html(&self.text(message))
    }
}

/// Plain text as an HTML fragment: escaped, a `<p>` per paragraph, `<br>` per line.
pub fn text_as_html(text: &str) -> String {
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let lines: Vec<String> = p.lines().map(crate::text::escape_html).collect();
            format!("<p>{}</p>", lines.join("<br>"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every channel. A new one: a module above and a line here.
pub static CHANNELS: &[&dyn Channel] = &[&email::Email, &push::Push, &sms::Sms, &kakao::Kakao];

/// The channel named `name`.
pub fn channel(name: &str) -> Option<&'static dyn Channel> {
    CHANNELS.iter().copied().find(|c| c.name() == name)
}

/// The names of every channel, in registry order.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHANNELS.iter().map(|c| c.name())
}

//! From block to message. A block answer (its JSON, as a Liquid template sees it) becomes a
//! message in a language with the copy in force ([`message`]), which one renderer per
//! channel ([`channels`]) lays out and cuts to its limits: an email-safe HTML fragment and a
//! plain-text part, a push title and body, an SMS or LMS measured in EUC-KR bytes, a
//! KakaoTalk text with a button. Pure: no I/O, no clock; the block rules are untouched.

/// Channel renderers and their registry.
pub mod channels;
/// Copy slots, built-in defaults, records over them, placeholder checks.
pub mod copy;
/// Languages: money and small labels.
pub mod locale;
/// A block as a channel-neutral message.
pub mod message;
/// Escaping, safe links, cutting text to a limit.
pub mod text;
/// A block answer read back from its JSON.
pub mod view;

pub use channels::{channel, Channel, CHANNELS};
pub use copy::{CopyBook, CopyError};
pub use locale::Locale;
pub use message::{compose, Message};
pub use view::BlockView;

/// What a caller asked the block as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The block's JSON (plus a `message` when a channel is named).
    Json,
    /// An HTML fragment (email).
    Html,
    /// Plain text.
    Text,
}

impl Format {
    /// `json`, `html` or `text`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "html" => Some(Self::Html),
            "text" => Some(Self::Text),
            _ => None,
        }
    }

    /// Its name in URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Html => "html",
            Self::Text => "text",
        }
    }
}

/// A rendering request: the format, the channel (`None` with JSON: the plain block) and the
/// language asked for.
#[derive(Clone, Copy)]
pub struct RenderRequest {
    /// Output format.
    pub format: Format,
    /// Channel renderer; `html` and `text` without one are email's.
    pub channel: Option<&'static dyn Channel>,
    /// The caller's `locale=`, over the user's profile.
    pub locale: Option<Locale>,
    /// When neither the caller nor the profile says.
    pub default_locale: Locale,
}

impl RenderRequest {
    /// The channel that renders it: the named one, else email for `html`/`text`.
    pub fn renderer(&self) -> Option<&'static dyn Channel> {
        match (self.channel, self.format) {
            (Some(c), _) => Some(c),
            (None, Format::Json) => None,
            (None, _) => Some(&channels::email::Email),
        }
    }
}

/// A rendered block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// JSON bytes (`application/json`).
    Json(Vec<u8>),
    /// An HTML fragment (`text/html; charset=utf-8`).
    Html(String),
    /// Plain text (`text/plain; charset=utf-8`).
    Text(String),
    /// Not eligible (or no copy): nothing to insert; an HTML or text fetch gets an empty body.
    Nothing,
}

/// The language of a message: asked for, else the profile's, else the default.
pub fn locale_of(view: &BlockView, request: &RenderRequest) -> Locale {
    request
        .locale
        .or_else(|| view.locale.as_deref().and_then(Locale::from_tag))
        .unwrap_or(request.default_locale)
}

/// Renders a block answer (`json`, as the API writes it) as `request` asks, with `book`'s
/// copy. A plain JSON request returns the JSON unchanged.
pub fn render(
    json: &[u8],
    book: &CopyBook,
    request: &RenderRequest,
) -> Result<Rendered, serde_json::Error> {
    let Some(channel) = request.renderer() else {
        return Ok(Rendered::Json(json.to_vec()));
    };
    let view = BlockView::from_json(json)?;
    let locale = locale_of(&view, request);
    let message = compose(&view, book, channel.name(), locale);
    Ok(match (request.format, message) {
        (Format::Json, message) => {
            let value = message
                .map(|m| channel.json(&m))
                .unwrap_or(serde_json::Value::Null);
            Rendered::Json(with_message(json, &value))
        }
        (Format::Html, Some(m)) => Rendered::Html(channel.html(&m)),
        (Format::Text, Some(m)) => Rendered::Text(channel.text(&m)),
        (_, None) => Rendered::Nothing,
    })
}

/// The block's JSON object with `"message": value` as its last member.
fn with_message(json: &[u8], value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 1024);
    let body = json.strip_suffix(b"}").unwrap_or(json);
    out.extend_from_slice(body);
    out.extend_from_slice(b",\"message\":");
    if serde_json::to_writer(&mut out, value).is_err() {
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests;

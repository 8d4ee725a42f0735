//! Marketer-editable copy: the words around a block (a headline, a sentence, a button) per
//! block stage, channel and language. Plain records here; the built-in defaults, the
//! placeholder rules and the rendering live in `sendtime-render`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One copy record as stored (DynamoDB, the embedded store, a dataset line `"kind": "copy"`):
/// the texts for one `slot` (`cart.urgency_discount`), `channel` (`email`, `push`, `sms`,
/// `kakao`, or `any`) and `locale` (`ko`, `en`). A field left out keeps the built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    /// The block and stage (and variant) the copy is for: `cart.reminder`.
    pub slot: String,
    /// The channel it is for, or `any`.
    pub channel: String,
    /// The language: `ko` or `en`.
    pub locale: String,
    /// Headline: push title, email heading, LMS subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The sentence under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The button's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cta: Option<String>,
    /// Where the button goes (else the first item's page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cta_url: Option<String>,
    /// When it was last written (set by `sendtime copy put`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl CopyRecord {
    /// The record's identity: `slot/channel/locale`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.slot, self.channel, self.locale)
    }
}

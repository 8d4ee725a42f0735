//! Korean SMS and LMS: text measured in EUC-KR bytes (Hangul two, ASCII one). Up to 90 bytes
//! it is an SMS; longer, an LMS with a subject, up to 2,000 bytes. Characters EUC-KR cannot
//! carry (emoji) become `?`; a cut falls between characters, with an ellipsis.

use super::Channel;
use crate::message::Message;
use crate::text::{euc_kr_bytes, fit, to_euc_kr_text};
use serde_json::json;

/// Largest SMS, in EUC-KR bytes.
pub const SMS_BYTES: usize = 90;
/// Largest LMS text, in EUC-KR bytes.
pub const LMS_BYTES: usize = 2_000;
/// Largest LMS subject, in EUC-KR bytes.
pub const LMS_SUBJECT_BYTES: usize = 40;

/// The SMS/LMS channel.
pub struct Sms;

/// What goes out: an SMS, or an LMS with its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsText {
    /// `sms` or `lms`.
    pub kind: &'static str,
    /// LMS subject.
    pub subject: Option<String>,
    /// The text.
    pub text: String,
}

impl Sms {
    /// The SMS when the short form fits, else the LMS.
    pub fn compose(m: &Message) -> SmsText {
        let link = m.link().unwrap_or_default();
        let body = to_euc_kr_text(&m.body);
        let short = join(&[&body, link]);
        if euc_kr_bytes(&short) <= SMS_BYTES {
            return SmsText {
                kind: "sms",
                subject: None,
                text: short,
            };
        }
        let mut lines = vec![body];
        for e in &m.entries {
            let mut line = format!("- {}", to_euc_kr_text(&e.title));
            if let Some(price) = &e.price {
                line.push(' ');
                line.push_str(&to_euc_kr_text(price));
            }
            lines.push(line);
        }
        let head = lines.join("\n");
        let tail = if link.is_empty() {
            String::new()
        } else {
            format!("\n\n{} {link}", to_euc_kr_text(&m.cta))
        };
        let room = LMS_BYTES.saturating_sub(euc_kr_bytes(&tail));
        let text = format!("{}{tail}", fit(&head, room, euc_kr_bytes));
        SmsText {
            kind: "lms",
            subject: Some(fit(
                &to_euc_kr_text(&m.title),
                LMS_SUBJECT_BYTES,
                euc_kr_bytes,
            )),
            text: fit(&text, LMS_BYTES, euc_kr_bytes),
        }
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

impl Channel for Sms {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn json(&self, m: &Message) -> serde_json::Value {
        let sms = Self::compose(m);
        json!({
            "channel": self.name(),
            "locale": m.locale,
            "slot": m.slot,
            "kind": sms.kind,
            "subject": sms.subject,
            "text": sms.text,
            "bytes": euc_kr_bytes(&sms.text),
        })
    }

    fn text(&self, m: &Message) -> String {
        Self::compose(m).text
    }
}

//! Email: an email-safe HTML fragment (tables, inline styles, width-limited images with alt
//! text, every value escaped, only http(s) links) and the plain-text part.

use super::Channel;
use crate::message::{Entry, Message};
use crate::text::escape_html;
use serde_json::json;
use std::fmt::Write;

/// Widest the fragment gets (px): the usual email body width.
pub const MAX_WIDTH_PX: u32 = 600;
/// Width of an item's image (px).
pub const IMAGE_WIDTH_PX: u32 = 120;

/// The email channel.
pub struct Email;

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn json(&self, m: &Message) -> serde_json::Value {
        json!({
            "channel": self.name(),
            "locale": m.locale,
            "slot": m.slot,
            "subject": m.title,
            "preheader": m.body,
            "html": self.html(m),
            "text": self.text(m),
        })
    }

    fn text(&self, m: &Message) -> String {
        let mut out = format!("{}\n\n{}\n", m.title, m.body);
        for e in &m.entries {
            out.push_str("\n- ");
            out.push_str(&e.title);
            if let Some(price) = &e.price {
                let _ = write!(out, " — {price}");
                if let Some(was) = &e.was_price {
                    let _ = write!(out, " ({was})");
                }
            }
            if let Some(note) = &e.note {
                let _ = write!(out, "\n  {note}");
            }
            if let Some(url) = &e.url {
                let _ = write!(out, "\n  {url}");
            }
        }
        if !m.cta_url.is_empty() {
            let _ = write!(out, "\n\n{}: {}", m.cta, m.cta_url);
        }
        out.push('\n');
        out
    }

    fn html(&self, m: &Message) -> String {
        let mut h = String::with_capacity(2048 + 700 * m.entries.len());
        let _ = writeln!(
            h,
            "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
             data-sendtime-rec-id=\"{}\" style=\"max-width:{MAX_WIDTH_PX}px;font-family:Arial,Helvetica,sans-serif;color:#222222;\">",
            escape_html(&m.rec_id)
        );
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:16px 0 4px 0;font-size:22px;line-height:1.3;font-weight:bold;\">{}</td></tr>",
            escape_html(&m.title)
        );
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:0 0 16px 0;font-size:15px;line-height:1.5;\">{}</td></tr>",
            escape_html(&m.body)
        );
        for e in &m.entries {
            entry(&mut h, e);
        }
        if !m.cta_url.is_empty() {
            let _ = writeln!(
                h,
                "<tr><td style=\"padding:20px 0;\"><a href=\"{}\" style=\"display:inline-block;padding:12px 24px;\
                 background-color:#111111;color:#ffffff;font-size:15px;font-weight:bold;text-decoration:none;border-radius:4px;\">{}</a></td></tr>",
                escape_html(&m.cta_url),
                escape_html(&m.cta)
            );
        }
        h.push_str("</table>");
        h
    }
}

/// One entry as a row: image left (when there is one), title, price and note right.
fn entry(h: &mut String, e: &Entry) {
    let title = escape_html(&e.title);
    h.push_str("<tr><td style=\"padding:12px 0;border-top:1px solid #eeeeee;\">\n");
    h.push_str("<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\"><tr>\n");
    if let Some(image) = &e.image_url {
        let img = format!(
            "<img src=\"{}\" width=\"{IMAGE_WIDTH_PX}\" alt=\"{title}\" style=\"display:block;width:{IMAGE_WIDTH_PX}px;max-width:100%;height:auto;border:0;\">",
            escape_html(image)
        );
        let _ = writeln!(
            h,
            "<td width=\"{IMAGE_WIDTH_PX}\" valign=\"top\" style=\"padding-right:16px;\">{}</td>",
            linked(e.url.as_deref(), &img, "")
        );
    }
    h.push_str("<td valign=\"top\" style=\"font-size:15px;line-height:1.4;\">");
    h.push_str(&linked(
        e.url.as_deref(),
        &title,
        "color:#222222;font-weight:bold;text-decoration:none;",
    ));
    if let Some(price) = &e.price {
        let _ = write!(
            h,
            "<br><span style=\"font-weight:bold;\">{}</span>",
            escape_html(price)
        );
        if let Some(was) = &e.was_price {
            let _ = write!(
                h,
                " <span style=\"color:#888888;text-decoration:line-through;\">{}</span>",
                escape_html(was)
            );
        }
    }
    if let Some(note) = &e.note {
        let _ = write!(
            h,
            "<br><span style=\"font-size:13px;color:#555555;\">{}</span>",
            escape_html(note)
        );
    }
    h.push_str("</td>\n</tr></table>\n</td></tr>\n");
}

/// `inner` (already escaped) in a link to `url` when there is one.
fn linked(url: Option<&str>, inner: &str, style: &str) -> String {
    match url {
        Some(url) if style.is_empty() => format!("<a href=\"{}\">{inner}</a>", escape_html(url)),
        Some(url) => format!(
            "<a href=\"{}\" style=\"{style}\">{inner}</a>",
            escape_html(url)
        ),
        None => inner.to_owned(),
    }
}

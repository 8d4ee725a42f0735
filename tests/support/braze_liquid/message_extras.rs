//! Braze's `{% message_extras :key K :value V %}` tag: the key/value pairs a message attaches
//! to its Send event in Currents, as Braze documents them
//! (https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/liquid/advanced_filters/message_extras/;
//! the "Checking syntax" and "Considerations" lists are quoted from the page's source,
//! https://github.com/braze-inc/braze-docs/blob/312d923ff77c7b4dc1093a11636f4c5c87322930/_docs/_user_guide/personalization_and_dynamic_content/liquid/advanced_filters/message_extras.md).

use liquid_core::{Renderable, Runtime, Template};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// "the length of all keys and values should not exceed 1,000 bytes (1 KB)".
pub const MESSAGE_EXTRAS_LIMIT: usize = 1000;

/// What a sent message's `message_extras` tags recorded, in the order they rendered: the
/// `message_extras` field of its Send event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageExtras {
    pairs: Vec<(String, String)>,
    truncated: bool,
}

impl MessageExtras {
    /// Every pair, in the order the tags rendered.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value recorded for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Bytes of every key and value together: what the 1,000-byte limit counts.
    pub fn bytes(&self) -> usize {
        self.pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Whether the pairs went over [`MESSAGE_EXTRAS_LIMIT`] and were cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The Send event's field: "This generates a JSON-serialized string in one field", and
    /// "The resulting JSON will output only string values."
    pub fn to_json(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }

    /// Records one rendered pair by Braze's rules.
    pub(super) fn record(&mut self, key: &str, value: &str) {
        // "Whitespace will count toward the character count. Note that Braze omits the
        // leading and trailing whitespaces."
        let (key, value) = (key.trim(), value.trim());
        // "Duplicate keys (Braze will default to sending the key-value pair that is
        // encountered first)"
        if self.truncated || self.pairs.iter().any(|(k, _)| k == key) {
            return;
        }
        // A value that renders empty (no items: `sendtime_sources`) is kept as "": an
        // assumption, as the page's syntax rules speak of the tag as written, not of what its
        // variables render to.
        let room = MESSAGE_EXTRAS_LIMIT - self.bytes();
        if key.len() + value.len() <= room {
            self.pairs.push((key.to_owned(), value.to_owned()));
            return;
        }
        // "If your key-values exceed 1 KB, they'll truncate." How is not documented; an
        // assumption: the bytes are kept in tag order up to the limit (the value that
        // crosses it cut at a character boundary, a key that does not fit dropped with its
        // value) and every later pair is dropped.
        self.truncated = true;
        if key.len() >= room {
            return;
        }
        let mut cut = room - key.len();
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        self.pairs.push((key.to_owned(), value[..cut].to_owned()));
    }
}

/// A `message_extras` tag as written: its key and value, Liquid variables allowed.
#[derive(Debug, Clone)]
pub(super) struct ExtrasSpec {
    pub(super) key: String,
    pub(super) value: String,
}

/// Reads `:key K :value V` as Braze's syntax check does; panics, as a template Braze would
/// not pass to Currents is a test failure here, on anything else:
/// "Any other input that doesn't match the tag standard discussed above may fail to pass to
/// Currents or Snowflake. Check that your syntax or formatting doesn't include any of the
/// following: Non-existent, empty, or mistyped delimiters; Duplicate keys [...]; Extra text
/// before keys or values are defined; Out of order keys and values".
pub(super) fn parse_extras(markup: &str) -> ExtrasSpec {
    let markup = markup.trim();
    let fail = |why: &str| -> ExtrasSpec {
        panic!("message_extras: {why}: `{{% message_extras {markup} %}}`")
    };
    if markup.starts_with(":value") {
        return fail("out of order keys and values (`:key` comes first)");
    }
    let Some(rest) = markup.strip_prefix(":key") else {
        return fail("extra text before the key, or no `:key` delimiter");
    };
    let Some((key, value)) = rest.split_once(":value") else {
        return fail("no `:value` delimiter");
    };
    if !rest.starts_with(char::is_whitespace)
        || !key.ends_with(char::is_whitespace)
        || !(value.is_empty() || value.starts_with(char::is_whitespace))
    {
        return fail("mistyped delimiter");
    }
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.is_empty() {
        return fail("an empty key or value");
    }
    for part in [key, value] {
        liquid_variables_only(part, markup);
    }
    ExtrasSpec {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// "You can include Liquid variables as a key or value, but you can't use other Liquid tags
/// within `message_extras`." (e.g. `{% message_extras :key {{key}} :value {{value}} %}`):
/// each `{{ }}` holds a variable (`recs.rec_id`, `items[0].source`) and no filter — an
/// assumption on the side of caution, as the page shows only bare variables; compute
/// anything else with `assign` first.
fn liquid_variables_only(part: &str, markup: &str) {
    assert!(
        !part.contains("{%"),
        "message_extras: no Liquid tags inside the tag, only variables: `{markup}`"
    );
    let mut rest = part;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .unwrap_or_else(|| panic!("message_extras: `{{{{` not closed in `{markup}`"));
        let variable = after[..close].trim().trim_matches('-').trim();
        let is_path = !variable.is_empty()
            && variable
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
        assert!(
            is_path,
            "message_extras: `{{{{ {variable} }}}}` is not a plain variable (assign it first): `{markup}`"
        );
        rest = &after[close + 2..];
    }
}

/// A parsed `message_extras` tag: renders nothing into the message, records its pair.
pub(super) struct MessageExtrasTag {
    pub(super) key: Template,
    pub(super) value: Template,
    pub(super) extras: Arc<Mutex<MessageExtras>>,
}

impl std::fmt::Debug for MessageExtrasTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageExtrasTag").finish_non_exhaustive()
    }
}

impl Renderable for MessageExtrasTag {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let key = self.key.render(runtime)?;
        let value = self.value.render(runtime)?;
        if key.trim().is_empty() {
            return Err(liquid_core::Error::with_msg(
                "message_extras: the key rendered empty",
            ));
        }
        self.extras
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(&key, &value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_trimmed_the_first_key_wins_and_the_bytes_stop_at_1000() {
        // GIVEN extras with a pair, the same key again, and pairs that cross the limit
        let mut extras = MessageExtras::default();
        extras.record(" a ", " 1 ");
        extras.record("a", "2");
        // THEN trimmed, first wins
        assert_eq!(extras.pairs(), &[("a".to_owned(), "1".to_owned())]);
        // WHEN a value crosses 1,000 bytes (Korean: 3 bytes a character)
        extras.record("b", &"가".repeat(400));
        extras.record("c", "3");
        // THEN it is cut at a character boundary within the limit, and later pairs dropped
        assert!(extras.truncated());
        assert!(extras.bytes() <= MESSAGE_EXTRAS_LIMIT);
        assert_eq!(extras.get("b").map(|v| v.len() % 3), Some(0));
        assert_eq!(extras.get("c"), None);
        assert!(extras.to_json().starts_with(r#"{"a":"1","b":"가"#));
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn a_value_before_its_key_is_refused() {
        parse_extras(":value 123 :key test");
    }

    #[test]
    #[should_panic(expected = "not a plain variable")]
    fn a_filter_inside_the_tag_is_refused() {
        parse_extras(":key k :value {{ items | map: 'source' }}");
    }
}

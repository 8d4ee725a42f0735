//! What a send showed, read from the `message_extras` our Braze templates record on it, and
//! the position a clicked item link carries (`sendtime_pos=N`).

use std::collections::BTreeMap;

/// The rec_id of the answer the message showed.
pub const REC_ID: &str = "sendtime_rec_id";
/// The block (`recommendations`, `cart`, `dormancy`, `onboarding`).
pub const BLOCK: &str = "sendtime_block";
/// The block's stage; empty when the block has none (recommendations).
pub const STAGE: &str = "sendtime_stage";
/// The answer's `source`: the source of its first (best) item.
pub const SOURCE: &str = "sendtime_source";
/// Each shown item's source by position, comma-joined (`personalized,popular`).
pub const SOURCES: &str = "sendtime_sources";
/// `true` when the answer was fallback content because the store could not be read.
pub const DEGRADED: &str = "sendtime_degraded";
/// The query parameter item links carry: the clicked item's 1-based position.
pub const POSITION_PARAMETER: &str = "sendtime_pos";
/// Every key a template records starts with this.
const PREFIX: &str = "sendtime_";
/// The item source of the global popular list: the last fallback of the recommendation rules.
pub const POPULAR: &str = "popular";
/// Positions past this are not tracked one by one (a block shows at most 30 items; one bit
/// per position in a `u64`, bit 0 for clicks without a position).
pub const MAX_POSITION: usize = 63;

/// A send's extras, as far as attribution is concerned. Borrowed from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownExtras<'a> {
    /// `sendtime_block`, `None` when missing or empty.
    pub block: Option<&'a str>,
    /// `sendtime_stage`, `None` when missing or empty.
    pub stage: Option<&'a str>,
    /// `sendtime_source`, `None` when missing or empty (a block without items).
    pub source: Option<&'a str>,
    /// `sendtime_sources` split at commas, one entry per shown position (at most
    /// [`MAX_POSITION`]).
    pub sources: Vec<&'a str>,
    /// `sendtime_degraded == "true"`.
    pub degraded: bool,
    /// What was wrong with the extras (each a short phrase naming the key), counted in the
    /// report; the send is still counted, under what could be read.
    pub problems: Vec<&'static str>,
}

/// The send's sendtime extras, or `None` when it carries none (another campaign's send):
/// a send carries them when any key starts with `sendtime_`.
pub fn shown(extras: Option<&BTreeMap<String, String>>) -> Option<ShownExtras<'_>> {
    let extras = extras?;
    if !extras.keys().any(|k| k.starts_with(PREFIX)) {
        return None;
    }
    let value = |key: &str| {
        extras
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut problems = Vec::new();
    if value(REC_ID).is_none() {
        problems.push("sendtime_rec_id missing or empty");
    }
    let block = value(BLOCK);
    if block.is_none() {
        problems.push("sendtime_block missing or empty");
    }
    let degraded = match extras.get(DEGRADED).map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        None => {
            problems.push("sendtime_degraded missing (counted as not degraded)");
            false
        }
        Some(_) => {
            problems.push("sendtime_degraded neither true nor false (counted as not degraded)");
            false
        }
    };
    let mut sources: Vec<&str> = value(SOURCES)
        .map(|list| list.split(',').map(str::trim).collect())
        .unwrap_or_default();
    if sources.len() > MAX_POSITION {
        problems.push("sendtime_sources longer than 63 positions (the rest not tracked)");
        sources.truncate(MAX_POSITION);
    }
    Some(ShownExtras {
        block,
        stage: value(STAGE),
        source: value(SOURCE),
        sources,
        degraded,
        problems,
    })
}

/// Where a click landed, by the `sendtime_pos` parameter of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickPosition {
    /// The URL carries no `sendtime_pos` (or there is no URL).
    Unknown,
    /// The URL carries `sendtime_pos` but not a position 1–[`MAX_POSITION`].
    Unreadable,
    /// The clicked item's 1-based position.
    At(usize),
}

/// The `sendtime_pos=N` of a clicked URL's query (the first one, if repeated).
pub fn click_position(url: Option<&str>) -> ClickPosition {
    let Some(url) = url else {
        return ClickPosition::Unknown;
    };
    let before_fragment = url.split('#').next().unwrap_or(url);
    let Some((_, query)) = before_fragment.split_once('?') else {
        return ClickPosition::Unknown;
    };
    let value = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == POSITION_PARAMETER).then_some(value)
    });
    match value.map(str::parse::<usize>) {
        None => ClickPosition::Unknown,
        Some(Ok(n)) if (1..=MAX_POSITION).contains(&n) => ClickPosition::At(n),
        Some(_) => ClickPosition::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extras(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_full_set_of_extras_is_read_without_problems() {
        // GIVEN the extras a recommendations template records
        let e = extras(&[
            (REC_ID, "r1"),
            (BLOCK, "recommendations"),
            (STAGE, ""),
            (SOURCE, "personalized"),
            (SOURCES, "personalized,personalized,popular"),
            (DEGRADED, "false"),
        ]);
        // WHEN they are read
        let shown = shown(Some(&e)).unwrap();
        // THEN every key is taken, the empty stage is none
        assert_eq!(shown.block, Some("recommendations"));
        assert_eq!(shown.stage, None);
        assert_eq!(shown.source, Some("personalized"));
        assert_eq!(shown.sources, ["personalized", "personalized", "popular"]);
        assert!(!shown.degraded);
        assert!(shown.problems.is_empty(), "{:?}", shown.problems);
    }

    #[test]
    fn a_send_without_sendtime_keys_carries_no_extras() {
        // GIVEN sends with no extras, and with another tool's extras only
        let other = extras(&[("experiment", "b")]);
        // WHEN they are read THEN neither carries sendtime extras
        assert_eq!(shown(None), None);
        assert_eq!(shown(Some(&other)), None);
    }

    #[test]
    fn missing_and_malformed_keys_are_named_as_problems() {
        // GIVEN extras without rec_id and block, and a degraded flag that is not a boolean
        let e = extras(&[(SOURCE, "cart"), (DEGRADED, "yes")]);
        // WHEN they are read
        let shown = shown(Some(&e)).unwrap();
        // THEN each problem names its key and the send is not degraded
        assert_eq!(shown.block, None);
        assert!(!shown.degraded);
        assert_eq!(
            shown.problems,
            [
                "sendtime_rec_id missing or empty",
                "sendtime_block missing or empty",
                "sendtime_degraded neither true nor false (counted as not degraded)"
            ]
        );
    }

    #[test]
    fn the_click_position_comes_from_the_query_only() {
        // GIVEN clicked URLs with and without a position
        // WHEN their positions are read THEN only a 1–63 sendtime_pos counts
        assert_eq!(
            click_position(Some("https://shop.example/p/1?utm=x&sendtime_pos=3")),
            ClickPosition::At(3)
        );
        assert_eq!(
            click_position(Some("https://shop.example/p/1?sendtime_pos=12#reviews")),
            ClickPosition::At(12)
        );
        assert_eq!(
            click_position(Some("https://shop.example/p/1")),
            ClickPosition::Unknown
        );
        assert_eq!(
            click_position(Some("https://shop.example/#?sendtime_pos=2")),
            ClickPosition::Unknown
        );
        assert_eq!(click_position(None), ClickPosition::Unknown);
        assert_eq!(
            click_position(Some("https://x.example/?sendtime_pos=0")),
            ClickPosition::Unreadable
        );
        assert_eq!(
            click_position(Some("https://x.example/?sendtime_pos=two")),
            ClickPosition::Unreadable
        );
        assert_eq!(
            click_position(Some("https://x.example/?sendtime_pos=64")),
            ClickPosition::Unreadable
        );
    }
}

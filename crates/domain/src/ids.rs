//! Identifiers. A `UserId` arrives in a URL path from a campaign tool, so it is validated
//! once, here, and every layer after this one can trust it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Longest user id we accept, in bytes. Braze external ids are far shorter in practice.
pub const MAX_USER_ID_LEN: usize = 128;

/// A validated user id: 1–128 bytes of ASCII letters, digits and `_ - . @ + :`, not starting
/// with `.` (so `.` and `..` can never be mistaken for path segments).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

/// Why a user id was refused; each variant maps to a stable, client-visible explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUserId {
    /// The id is the empty string.
    #[error("user id is empty")]
    Empty,
    /// The id is longer than [`MAX_USER_ID_LEN`] bytes.
    #[error("user id is longer than {MAX_USER_ID_LEN} bytes")]
    TooLong,
    /// The id has a byte outside ASCII letters, digits and `_ - . @ + :`.
    #[error("user id contains a character outside A-Z a-z 0-9 _ - . @ + :")]
    BadCharacter,
    /// The id starts with `.`.
    #[error("user id may not start with '.'")]
    LeadingDot,
}

impl UserId {
    /// The id of the `n`th user of a generated dataset (`u000001`, …): the one place this
    /// format is written (`data generate`, `serve`'s demo data, `campaign send --synthetic`).
    pub fn demo(n: usize) -> Self {
        Self(format!("u{n:06}"))
    }

    /// Validates a raw id from a URL, a file or a dataset.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserId> {
        if raw.is_empty() {
            return Err(InvalidUserId::Empty);
        }
        if raw.len() > MAX_USER_ID_LEN {
            return Err(InvalidUserId::TooLong);
        }
        if !raw.bytes().all(is_user_id_byte) {
            return Err(InvalidUserId::BadCharacter);
        }
        if raw.starts_with('.') {
            return Err(InvalidUserId::LeadingDot);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as validated.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_user_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@' | b'+' | b':')
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for UserId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        UserId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A catalog item id. Item ids come from our own data, not from callers, so they are not
/// restricted beyond being non-empty strings. Shared (`Arc<str>`): the hot path clones ids
/// into read plans and cache keys without allocating.
#[derive(Clone)]
pub struct ItemId {
    text: Arc<str>,
    /// A word computed from the text once (see [`ItemId::eq`]).
    tag: u64,
}

/// Hashes the string, as `str` does (so lookups by `&str` find it).
impl std::hash::Hash for ItemId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

/// Equal when the strings are. The rules compare ids by the dozen per request (picked,
/// bought, excluded, asked) and ids of one catalog mostly share a prefix and a length, so
/// each id carries a word computed from its text once — the text itself when it fits, else
/// its first and last eight bytes mixed — and two ids are compared byte by byte only when
/// their words match.
impl PartialEq for ItemId {
    fn eq(&self, other: &Self) -> bool {
        // Up to eight bytes, the word holds the text itself: equal words and lengths suffice.
        self.tag == other.tag
            && self.text.len() == other.text.len()
            && (self.text.len() <= 8
                || Arc::ptr_eq(&self.text, &other.text)
                || self.text.as_bytes() == other.text.as_bytes())
    }
}

impl Eq for ItemId {}

impl PartialOrd for ItemId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered as the strings are.
impl Ord for ItemId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ItemId").field(&&*self.text).finish()
    }
}

/// [`ItemId`]'s word: the bytes themselves (and the length) up to eight — so two texts of one
/// length up to eight are equal exactly when their words are — else the first and the last
/// eight bytes mixed with the length. Equal texts give equal words.
fn tag(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        let end = (at + 8).min(n);
        w[..end - at].copy_from_slice(&bytes[at..end]);
        u64::from_le_bytes(w)
    };
    if n <= 8 {
        word(0) ^ (n as u64).rotate_right(8)
    } else {
        word(0).rotate_left(29) ^ word(n - 8) ^ (n as u64).rotate_right(8)
    }
}

impl ItemId {
    /// Wraps an item id as is; nothing is validated (item ids come from our own data).
    pub fn new(id: impl AsRef<str>) -> Self {
        let text: Arc<str> = Arc::from(id.as_ref());
        Self {
            tag: tag(text.as_bytes()),
            text,
        }
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A word computed from the text: equal ids have equal words (a quick filter before a
    /// comparison).
    pub fn word(&self) -> u64 {
        self.tag
    }
}

impl Serialize for ItemId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::new(raw))
    }
}

impl std::borrow::Borrow<str> for ItemId {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_equal_exactly_when_their_strings_are() {
        let ids = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "sku-0001",
            "sku-0002",
            "tku-0001",
            "sku-00001",
            "xsku-0001",
            "item-000123",
            "item-000124",
            "jtem-000123",
            "item-000123 ",
            "i00001",
            "i00002",
            "i0000100",
            "i00001\0\0",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\0",
            "abcdefgi",
            "x-abcdefgh-y",
            "y-abcdefgh-x",
        ];
        for a in ids {
            for b in ids {
                let (x, y) = (ItemId::new(a), ItemId::new(b));
                assert_eq!(x == y, a == b, "{a:?} vs {b:?}");
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} vs {b:?}");
            }
            let x = ItemId::new(a);
            assert_eq!(x, x.clone());
        }
    }

    #[test]
    fn accepts_typical_ids() {
        for ok in [
            "u1",
            "user_42",
            "a.b@example.com",
            "x-Y:z+1",
            &"a".repeat(128),
        ] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_ids_with_a_reason() {
        assert_eq!(UserId::parse(""), Err(InvalidUserId::Empty));
        assert_eq!(UserId::parse(&"a".repeat(129)), Err(InvalidUserId::TooLong));
        assert_eq!(UserId::parse("a\nb"), Err(InvalidUserId::BadCharacter));
        assert_eq!(UserId::parse("a\u{0}"), Err(InvalidUserId::BadCharacter));
        assert_eq!(UserId::parse("a/b"), Err(InvalidUserId::BadCharacter));
        assert_eq!(UserId::parse("a b"), Err(InvalidUserId::BadCharacter));
        assert_eq!(UserId::parse("사용자"), Err(InvalidUserId::BadCharacter));
        assert_eq!(UserId::parse(".."), Err(InvalidUserId::LeadingDot));
        assert_eq!(UserId::parse("."), Err(InvalidUserId::LeadingDot));
        assert_eq!(UserId::parse("%2e%2e"), Err(InvalidUserId::BadCharacter));
    }

    #[test]
    fn demo_ids_are_valid_ids() {
        for n in [1, 42, 999_999, 12_345_678] {
            let id = UserId::demo(n);
            assert_eq!(UserId::parse(id.as_str()), Ok(id));
        }
        assert_eq!(UserId::demo(7).as_str(), "u000007");
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<UserId>("\"ok_1\"").is_ok());
        assert!(serde_json::from_str::<UserId>("\"../x\"").is_err());
    }
}

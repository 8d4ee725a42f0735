//! Languages: which one a message is written in, and how it writes money and small labels.

use sendtime_domain::money::{group_thousands, Money};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A language we write messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// Korean.
    Ko,
    /// English.
    En,
}

impl Locale {
    /// Every locale, in the order copy is listed.
    pub const ALL: [Locale; 2] = [Locale::Ko, Locale::En];

    /// `ko` or `en`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ko => "ko",
            Self::En => "en",
        }
    }

    /// A language tag's language (`ko`, `ko-KR`, `EN_us` …); `None` for one we do not write.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let language = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        match language.as_str() {
            "ko" => Some(Self::Ko),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// `minor` units of `currency` as this language writes them: Korean writes won as
    /// `12,900원`; otherwise the symbol first (`₩12,900`, `$12.90`).
    pub fn money(self, minor: i64, currency: &str) -> String {
        match (self, currency) {
            (Self::Ko, "KRW") => {
                let sign = if minor < 0 { "-" } else { "" };
                format!("{sign}{}원", group_thousands(minor.unsigned_abs()))
            }
            _ => Money::new(minor, currency).to_string(),
        }
    }

    /// A rating line: `★ 4.5 · 리뷰 123개` / `★ 4.5 · 123 reviews`.
    pub fn rating(self, rating: f32, reviews: u32) -> String {
        let count = group_thousands(u64::from(reviews));
        match self {
            Self::Ko => format!("★ {rating:.1} · 리뷰 {count}개"),
            Self::En if reviews == 1 => format!("★ {rating:.1} · 1 review"),
            Self::En => format!("★ {rating:.1} · {count} reviews"),
        }
    }

    /// A low-stock note: `3개 남음` / `Only 3 left`.
    pub fn stock_left(self, stock: u32) -> String {
        match self {
            Self::Ko => format!("{stock}개 남음"),
            Self::En => format!("Only {stock} left"),
        }
    }

    /// A discount note: `15% 할인` / `15% off`.
    pub fn percent_off(self, pct: u8) -> String {
        match self {
            Self::Ko => format!("{pct}% 할인"),
            Self::En => format!("{pct}% off"),
        }
    }

    /// A benefit code line: `쿠폰 코드: WELCOME10` / `Code: WELCOME10`.
    pub fn code(self, code: &str) -> String {
        match self {
            Self::Ko => format!("쿠폰 코드: {code}"),
            Self::En => format!("Code: {code}"),
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Locale {
    type Err = UnknownLocale;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_tag(s).ok_or(UnknownLocale)
    }
}

/// Not a language we write (`ko`, `en`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown locale (ko or en)")]
pub struct UnknownLocale;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_each_language_writes_it() {
        assert_eq!(Locale::Ko.money(12_900, "KRW"), "12,900원");
        assert_eq!(Locale::En.money(12_900, "KRW"), "₩12,900");
        assert_eq!(Locale::En.money(1_290, "USD"), "$12.90");
        assert_eq!(Locale::Ko.money(1_290, "USD"), "$12.90");
        assert_eq!(Locale::Ko.money(-1_500, "KRW"), "-1,500원");
        assert_eq!(Locale::Ko.money(1_234_567, "KRW"), "1,234,567원");
    }

    #[test]
    fn language_tags_name_their_language() {
        assert_eq!(Locale::from_tag("ko-KR"), Some(Locale::Ko));
        assert_eq!(Locale::from_tag("EN_us"), Some(Locale::En));
        assert_eq!(Locale::from_tag("ja"), None);
        assert_eq!(Locale::from_tag(""), None);
        assert_eq!("en".parse::<Locale>(), Ok(Locale::En));
    }

    #[test]
    fn labels_read_naturally() {
        assert_eq!(Locale::Ko.rating(4.5, 1234), "★ 4.5 · 리뷰 1,234개");
        assert_eq!(Locale::En.rating(4.0, 1), "★ 4.0 · 1 review");
        assert_eq!(Locale::En.stock_left(3), "Only 3 left");
    }
}

//! Copy: the words around a block, per slot (a block's stage, or a variant of it that needs
//! other words), channel and language. Built-in defaults (`config/copy.toml`, compiled in),
//! overridden field by field by copy records from the store, so a marketer's change shows
//! once the copy cache expires, without a deploy.

use crate::locale::Locale;
use sendtime_domain::CopyRecord;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::LazyLock;

/// `channel` or `locale` of a record (or a default) that applies to every channel or language.
pub const ANY: &str = "any";

/// One slot: where its copy is used and the placeholders its texts may use (each always has
/// a value there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// `block.stage` or `block.stage_variant`.
    pub name: &'static str,
    /// When it is used.
    pub about: &'static str,
    /// Placeholders its texts may use, without braces.
    pub placeholders: &'static [&'static str],
}

const ITEMS: &[&str] = &["item", "price", "count"];
const CART: &[&str] = &["item", "price", "count", "days"];

/// Every slot, in block order. Adding a stage with its own words adds a line here and its
/// texts in `config/copy.toml` (a test checks both).
pub const SLOTS: &[Slot] = &[
    Slot {
        name: "recommendations.personalized",
        about: "recommendations from the user's own list",
        placeholders: ITEMS,
    },
    Slot {
        name: "recommendations.fallback",
        about: "popular items only (cold or unknown user)",
        placeholders: ITEMS,
    },
    Slot {
        name: "cart.reminder",
        about: "cart, 1-2 days",
        placeholders: CART,
    },
    Slot {
        name: "cart.social_proof",
        about: "cart, 3-4 days, the first item is rated",
        placeholders: &["item", "price", "count", "days", "rating", "reviews"],
    },
    Slot {
        name: "cart.social_proof_unrated",
        about: "cart, 3-4 days, no item rated yet",
        placeholders: CART,
    },
    Slot {
        name: "cart.urgency_low_stock",
        about: "cart, 5-6 days, the first item is low in stock",
        placeholders: &["item", "price", "count", "days", "stock"],
    },
    Slot {
        name: "cart.urgency_discount",
        about: "cart, 5-6 days, the first item is discounted",
        placeholders: &[
            "item",
            "price",
            "count",
            "days",
            "sale_price",
            "discount_pct",
        ],
    },
    Slot {
        name: "cart.urgency_nudge",
        about: "cart, 5-6 days, neither",
        placeholders: CART,
    },
    Slot {
        name: "cart.alternatives",
        about: "cart, 7 days on: similar items",
        placeholders: CART,
    },
    Slot {
        name: "dormancy.last_interest",
        about: "win-back, nothing unanswered: last viewed or bought",
        placeholders: CART,
    },
    Slot {
        name: "dormancy.personal_offer",
        about: "win-back offer on the most-bought category",
        placeholders: &["days", "discount_pct", "category"],
    },
    Slot {
        name: "dormancy.personal_offer_any",
        about: "win-back offer, no category known",
        placeholders: &["days", "discount_pct"],
    },
    Slot {
        name: "dormancy.feedback",
        about: "win-back, 3+ unanswered: ask whether to keep in touch",
        placeholders: &["days"],
    },
    Slot {
        name: "onboarding.welcome",
        about: "onboarding, first days: key features",
        placeholders: &["days"],
    },
    Slot {
        name: "onboarding.guide",
        about: "onboarding: how-to links",
        placeholders: &["days"],
    },
    Slot {
        name: "onboarding.incentive",
        about: "onboarding, last days: first-use benefit",
        placeholders: &["days", "benefit", "code"],
    },
];

/// The slot named `name`.
pub fn slot(name: &str) -> Option<&'static Slot> {
    SLOTS.iter().find(|s| s.name == name)
}

/// The texts of one slot (any may be absent in one layer; resolved copy has all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyFields {
    /// Headline: push title, email heading, LMS subject.
    pub title: Option<String>,
    /// The sentence under it.
    pub body: Option<String>,
    /// Button label.
    pub cta: Option<String>,
    /// Button link.
    pub cta_url: Option<String>,
}

impl From<&CopyRecord> for CopyFields {
    fn from(r: &CopyRecord) -> Self {
        Self {
            title: r.title.clone(),
            body: r.body.clone(),
            cta: r.cta.clone(),
            cta_url: r.cta_url.clone(),
        }
    }
}

/// Which text of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Headline.
    Title,
    /// Sentence.
    Body,
    /// Button label.
    Cta,
    /// Button link.
    CtaUrl,
}

impl CopyFields {
    fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::Title => self.title.as_deref(),
            Field::Body => self.body.as_deref(),
            Field::Cta => self.cta.as_deref(),
            Field::CtaUrl => self.cta_url.as_deref(),
        }
    }

    fn texts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("title", self.title.as_deref()),
            ("body", self.body.as_deref()),
            ("cta", self.cta.as_deref()),
            ("cta_url", self.cta_url.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, text)| text.map(|t| (name, t)))
    }
}

/// (slot, channel or `any`, locale or `any`).
type Key = (String, String, String);

/// The built-in copy, `config/copy.toml`.
pub const DEFAULT_COPY_TOML: &str = include_str!("../../../config/copy.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultSlot {
    title: Option<String>,
    body: Option<String>,
    cta: Option<String>,
    cta_url: Option<String>,
    #[serde(default)]
    channel: HashMap<String, CopyFields>,
}

/// Parses a defaults file into layered keys.
fn parse_defaults(text: &str) -> Result<HashMap<Key, CopyFields>, String> {
    let file: HashMap<String, HashMap<String, DefaultSlot>> =
        toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for (locale, slots) in file {
        for (slot, copy) in slots {
            out.insert(
                (slot.clone(), ANY.to_owned(), locale.clone()),
                CopyFields {
                    title: copy.title,
                    body: copy.body,
                    cta: copy.cta,
                    cta_url: copy.cta_url,
                },
            );
            for (channel, fields) in copy.channel {
                out.insert((slot.clone(), channel, locale.clone()), fields);
            }
        }
    }
    Ok(out)
}

static DEFAULTS: LazyLock<HashMap<Key, CopyFields>> = LazyLock::new(|| {
    // Checked by this crate's tests; a broken file in a build would only lose its words.
    parse_defaults(DEFAULT_COPY_TOML).unwrap_or_default()
});

/// The copy in force: the built-in defaults under the store's copy records.
#[derive(Debug, Clone, Default)]
pub struct CopyBook {
    overrides: HashMap<Key, CopyFields>,
}

impl CopyBook {
    /// The defaults with `records` over them; a record that does not validate is skipped
    /// (and returned, so the caller can log it) rather than shown.
    pub fn new(records: &[CopyRecord]) -> (Self, Vec<(String, CopyError)>) {
        let mut overrides = HashMap::new();
        let mut rejected = Vec::new();
        for record in records {
            match validate(record) {
                Ok(()) => {
                    overrides.insert(
                        (
                            record.slot.clone(),
                            record.channel.clone(),
                            record.locale.clone(),
                        ),
                        CopyFields::from(record),
                    );
                }
                Err(e) => rejected.push((record.key(), e)),
            }
        }
        (Self { overrides }, rejected)
    }

    /// The candidates for `field` of `slot` for `channel` in `locale`, most specific first:
    /// records, then the defaults, each from (channel, locale) to (any, any).
    pub fn candidates(&self, slot: &str, channel: &str, locale: Locale, field: Field) -> Vec<&str> {
        let locale = locale.as_str();
        let keys = [(channel, locale), (ANY, locale), (channel, ANY), (ANY, ANY)];
        let mut out = Vec::new();
        for layer in [&self.overrides, &*DEFAULTS] {
            for (channel, locale) in keys {
                let key = (slot.to_owned(), channel.to_owned(), locale.to_owned());
                if let Some(text) = layer.get(&key).and_then(|f| f.get(field)) {
                    out.push(text);
                }
            }
        }
        out
    }

    /// Every record in force, as `(slot, channel, locale)` → texts (for `copy list`).
    pub fn overrides(&self) -> impl Iterator<Item = (&Key, &CopyFields)> {
        self.overrides.iter()
    }
}

/// The resolved built-in copy of `slot` for `channel` in `locale` (for listings and tests).
pub fn default_fields(slot: &str, channel: &str, locale: Locale) -> CopyFields {
    let book = CopyBook::default();
    let first = |field| {
        book.candidates(slot, channel, locale, field)
            .first()
            .map(|s| s.to_string())
    };
    CopyFields {
        title: first(Field::Title),
        body: first(Field::Body),
        cta: first(Field::Cta),
        cta_url: first(Field::CtaUrl),
    }
}

/// Why a copy record or text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// No such slot.
    #[error("unknown slot `{0}` (see `sendtime copy slots`)")]
    UnknownSlot(String),
    /// No such channel.
    #[error("unknown channel `{0}` (email, push, sms, kakao or any)")]
    UnknownChannel(String),
    /// No such locale.
    #[error("unknown locale `{0}` (ko, en or any)")]
    UnknownLocale(String),
    /// A placeholder the slot does not have.
    #[error("{field}: placeholder {{{name}}} is not available in {slot} (it has: {available})")]
    UnknownPlaceholder {
        /// Which text.
        field: &'static str,
        /// The placeholder.
        name: String,
        /// The slot.
        slot: String,
        /// What it has.
        available: String,
    },
    /// A `{` without its `}` or the reverse.
    #[error("{field}: unbalanced brace at byte {at} (placeholders are written {{name}})")]
    Unbalanced {
        /// Which text.
        field: &'static str,
        /// Where.
        at: usize,
    },
    /// A link that is not `http(s)://`.
    #[error("cta_url must be an http(s) URL")]
    BadUrl,
    /// Nothing to override.
    #[error("a copy record needs at least one of title, body, cta, cta_url")]
    Empty,
    /// Too long to be copy.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// Which text.
        field: &'static str,
        /// The limit.
        max: usize,
    },
}

/// Longest text a copy field may hold (characters); channels cut further.
pub const MAX_COPY_CHARS: usize = 500;

/// Checks a record: known slot, channel and locale; every placeholder one its slot has;
/// braces balanced; an `http(s)` button link.
pub fn validate(record: &CopyRecord) -> Result<(), CopyError> {
    let slot = slot(&record.slot).ok_or_else(|| CopyError::UnknownSlot(record.slot.clone()))?;
    if record.channel != ANY && crate::channels::channel(&record.channel).is_none() {
        return Err(CopyError::UnknownChannel(record.channel.clone()));
    }
    if record.locale != ANY
        && Locale::from_tag(&record.locale).map(|l| l.as_str()) != Some(record.locale.as_str())
    {
        return Err(CopyError::UnknownLocale(record.locale.clone()));
    }
    let fields = CopyFields::from(record);
    if fields.texts().next().is_none() {
        return Err(CopyError::Empty);
    }
    check_fields(slot, &fields)
}

fn check_fields(slot: &Slot, fields: &CopyFields) -> Result<(), CopyError> {
    for (field, text) in fields.texts() {
        if text.chars().count() > MAX_COPY_CHARS {
            return Err(CopyError::TooLong {
                field,
                max: MAX_COPY_CHARS,
            });
        }
        if field == "cta_url" {
            if crate::text::safe_url(text).is_none() {
                return Err(CopyError::BadUrl);
            }
            continue;
        }
        for name in placeholders(field, text)? {
            if !slot.placeholders.contains(&name) {
                return Err(CopyError::UnknownPlaceholder {
                    field,
                    name: name.to_owned(),
                    slot: slot.name.to_owned(),
                    available: slot
                        .placeholders
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
        }
    }
    Ok(())
}

/// The placeholders of `text` (`{name}`), in order.
pub fn placeholders<'t>(field: &'static str, text: &'t str) -> Result<Vec<&'t str>, CopyError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(CopyError::Unbalanced {
                field,
                at: offset + open,
            });
        }
        let after = &rest[open + 1..];
        let close = after
            .find(['{', '}'])
            .filter(|c| after.as_bytes()[*c] == b'}');
        let Some(close) = close else {
            return Err(CopyError::Unbalanced {
                field,
                at: offset + open,
            });
        };
        out.push(&after[..close]);
        let consumed = open + 1 + close + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(out)
}

/// `text` with its placeholders filled from `vars`; `None` when one has no value (the caller
/// then takes the next layer's text).
/// One pass: a value holding braces (a title `{price}`) is never filled again.
pub fn fill(text: &str, vars: &[(&str, String)]) -> Option<String> {
    placeholders("text", text).ok()?;
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}')?;
        let name = &rest[open + 1..close];
        out.push_str(&vars.iter().find(|(n, _)| *n == name)?.1);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(slot: &str, body: &str) -> CopyRecord {
        CopyRecord {
            slot: slot.into(),
            channel: "any".into(),
            locale: "ko".into(),
            title: None,
            body: Some(body.into()),
            cta: None,
            cta_url: None,
            updated_at: None,
        }
    }

    #[test]
    fn the_defaults_cover_every_slot_and_language_with_valid_placeholders() {
        let defaults = parse_defaults(DEFAULT_COPY_TOML).unwrap();
        for (key, fields) in &defaults {
            let slot =
                slot(&key.0).unwrap_or_else(|| panic!("config/copy.toml: unknown slot {}", key.0));
            assert!(
                key.1 == ANY || crate::channels::channel(&key.1).is_some(),
                "{key:?}"
            );
            check_fields(slot, fields).unwrap_or_else(|e| panic!("config/copy.toml {key:?}: {e}"));
        }
        for slot in SLOTS {
            for locale in Locale::ALL {
                for channel in crate::channels::names() {
                    let f = default_fields(slot.name, channel, locale);
                    assert!(
                        f.title.is_some() && f.body.is_some() && f.cta.is_some(),
                        "{} {channel} {locale}",
                        slot.name
                    );
                    assert!(
                        f.cta_url
                            .as_deref()
                            .and_then(crate::text::safe_url)
                            .is_some(),
                        "{}",
                        slot.name
                    );
                }
            }
        }
    }

    #[test]
    fn placeholders_are_checked_against_the_slot() {
        assert_eq!(
            validate(&record("cart.reminder", "{item}, {days}일째 기다려요")),
            Ok(())
        );
        let err = validate(&record("cart.reminder", "{item} {rating}")).unwrap_err();
        assert!(
            err.to_string()
                .contains("{rating} is not available in cart.reminder"),
            "{err}"
        );
        assert!(matches!(
            validate(&record("cart.reminder", "{item")),
            Err(CopyError::Unbalanced { .. })
        ));
        assert!(matches!(
            validate(&record("cart.reminder", "item}")),
            Err(CopyError::Unbalanced { .. })
        ));
        assert!(matches!(
            validate(&record("cart.nope", "x")),
            Err(CopyError::UnknownSlot(_))
        ));
        let mut r = record("cart.reminder", "x");
        r.channel = "fax".into();
        assert!(matches!(validate(&r), Err(CopyError::UnknownChannel(_))));
        r.channel = "sms".into();
        r.locale = "ja".into();
        assert!(matches!(validate(&r), Err(CopyError::UnknownLocale(_))));
        r.locale = "en".into();
        r.body = None;
        assert_eq!(validate(&r), Err(CopyError::Empty));
        r.cta_url = Some("javascript:alert(1)".into());
        assert_eq!(validate(&r), Err(CopyError::BadUrl));
    }

    #[test]
    fn records_override_field_by_field_most_specific_first() {
        let mut sms = record("cart.reminder", "SMS {item}");
        sms.channel = "sms".into();
        let any = record("cart.reminder", "ANY {item}");
        let (book, rejected) = CopyBook::new(&[sms, any, record("cart.reminder", "{nope}")]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            book.candidates("cart.reminder", "sms", Locale::Ko, Field::Body)[0],
            "SMS {item}"
        );
        assert_eq!(
            book.candidates("cart.reminder", "push", Locale::Ko, Field::Body)[0],
            "ANY {item}"
        );
        assert_eq!(
            book.candidates("cart.reminder", "push", Locale::En, Field::Body)[0],
            "{item} is still waiting for you."
        );
        assert_eq!(
            book.candidates("cart.reminder", "sms", Locale::Ko, Field::Title)[0],
            "장바구니에 담아 둔 상품이 있어요"
        );
    }

    #[test]
    fn fill_needs_every_value() {
        let vars = [("item", "신발".to_owned())];
        assert_eq!(
            fill("{item}이 기다려요", &vars).as_deref(),
            Some("신발이 기다려요")
        );
        assert_eq!(fill("{item} {count}", &vars), None);
        assert_eq!(
            fill("no placeholders", &vars).as_deref(),
            Some("no placeholders")
        );
        let tricky = [("item", "{price}".to_owned()), ("price", "₩1".to_owned())];
        assert_eq!(
            fill("{item} {price}", &tricky).as_deref(),
            Some("{price} ₩1")
        );
    }
}

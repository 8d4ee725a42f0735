//! Thresholds and content of the block rules. Every number in BRIEF §2 is configuration with
//! these defaults, read at start from a rules file (TOML or JSON) by `sendtime serve` and the
//! Lambda functions alike, so cadence and copy change without touching rule code. Unknown
//! keys and bad values are errors that name the key.

use crate::rules::onboarding::OnboardingRules;
use serde::{Deserialize, Serialize};

/// Every block's rules; each section has the defaults of BRIEF §2.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// The recommendations block.
    pub recommendations: RecommendationRules,
    /// The abandoned-cart block.
    pub cart: CartRules,
    /// The win-back block.
    pub dormancy: DormancyRules,
    /// The onboarding block.
    pub onboarding: OnboardingRules,
}

/// The `limit` a caller may ask of one block: `default_limit` when absent, 1..=`max_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemLimits {
    /// Items returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
}

/// Largest `max_limit` a rules file may set: blocks stay a few KB (Braze's limit is 1 MB).
pub const MAX_ITEMS_PER_BLOCK: usize = 100;

/// Thresholds of the recommendations block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendationRules {
    /// Items returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
    /// The first `diversity_slots` positions hold at most `max_per_category` items of one category.
    pub diversity_slots: usize,
    /// See `diversity_slots`.
    pub max_per_category: usize,
}

impl Default for RecommendationRules {
    fn default() -> Self {
        Self {
            default_limit: 4,
            max_limit: 30,
            diversity_slots: 4,
            max_per_category: 2,
        }
    }
}

/// Thresholds of the abandoned-cart block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartRules {
    /// Items returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
    /// Cart age (whole days) at which each stage starts; below `reminder_from_days` the cart is `too_early`.
    pub reminder_from_days: i64,
    /// See `reminder_from_days`.
    pub social_proof_from_days: i64,
    /// See `reminder_from_days`.
    pub urgency_from_days: i64,
    /// See `reminder_from_days`.
    pub alternatives_from_days: i64,
    /// Stock at or below this is "low stock" in the urgency stage.
    pub low_stock_threshold: u32,
}

impl Default for CartRules {
    fn default() -> Self {
        Self {
            default_limit: 4,
            max_limit: 30,
            reminder_from_days: 1,
            social_proof_from_days: 3,
            urgency_from_days: 5,
            alternatives_from_days: 7,
            low_stock_threshold: 5,
        }
    }
}

/// Thresholds of the win-back block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DormancyRules {
    /// Items returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
    /// A user is dormant once the last activity is at least this many whole days ago.
    pub dormant_after_days: i64,
    /// Unanswered win-back messages at which the `personal_offer` stage starts.
    pub personal_offer_from_unanswered: u32,
    /// Unanswered win-back messages at which the `feedback` stage starts.
    pub feedback_from_unanswered: u32,
    /// Discount offered in the `personal_offer` stage.
    pub offer_discount_pct: u8,
}

impl Default for DormancyRules {
    fn default() -> Self {
        Self {
            default_limit: 4,
            max_limit: 30,
            dormant_after_days: 30,
            personal_offer_from_unanswered: 1,
            feedback_from_unanswered: 3,
            offer_discount_pct: 10,
        }
    }
}

/// A rules file that cannot be used: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules: {key}: {problem}")]
pub struct RulesError {
    /// The dotted key at fault (`cart.urgency_from_days`), or `.` for the whole file.
    pub key: String,
    /// What is wrong, in words.
    pub problem: String,
}

impl RulesError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The two formats a rules file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesFormat {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl RulesFormat {
    /// The format a file name's extension says, if any.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".toml") {
            Some(Self::Toml)
        } else if lower.ends_with(".json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

impl RulesConfig {
    /// Parses and validates a rules file's text. Keys left out keep their defaults; an
    /// unknown key, a value of the wrong type or an impossible combination is an error
    /// naming the key.
    pub fn parse(text: &str, format: RulesFormat) -> Result<Self, RulesError> {
        let config: Self = match format {
            RulesFormat::Json => {
                let mut de = serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(&mut de)
                    .map_err(|e| RulesError::new(e.path().to_string(), e.inner().to_string()))?
            }
            RulesFormat::Toml => {
                let de = toml::Deserializer::parse(text).map_err(|e| {
                    let line = e
                        .span()
                        .and_then(|span| text.get(..span.start))
                        .map(|before| before.matches('\n').count() + 1);
                    let problem = match line {
                        Some(line) => format!("line {line}: {}", e.message()),
                        None => e.message().to_owned(),
                    };
                    RulesError::new(".", problem)
                })?;
                serde_path_to_error::deserialize(de).map_err(|e| {
                    RulesError::new(e.path().to_string(), e.inner().message().to_owned())
                })?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: limits in range, stage boundaries in order, percentages.
    pub fn validate(&self) -> Result<(), RulesError> {
        limits(
            "recommendations",
            self.recommendations.default_limit,
            self.recommendations.max_limit,
        )?;
        limits("cart", self.cart.default_limit, self.cart.max_limit)?;
        limits(
            "dormancy",
            self.dormancy.default_limit,
            self.dormancy.max_limit,
        )?;
        limits(
            "onboarding",
            self.onboarding.default_limit,
            self.onboarding.max_limit,
        )?;
        if self.recommendations.max_per_category == 0 {
            return Err(RulesError::new(
                "recommendations.max_per_category",
                "must be at least 1",
            ));
        }
        let c = &self.cart;
        ascending(&[
            ("cart.reminder_from_days", c.reminder_from_days),
            ("cart.social_proof_from_days", c.social_proof_from_days),
            ("cart.urgency_from_days", c.urgency_from_days),
            ("cart.alternatives_from_days", c.alternatives_from_days),
        ])?;
        let d = &self.dormancy;
        if d.dormant_after_days < 0 {
            return Err(RulesError::new(
                "dormancy.dormant_after_days",
                "must not be negative",
            ));
        }
        if d.feedback_from_unanswered <= d.personal_offer_from_unanswered {
            return Err(RulesError::new(
                "dormancy.feedback_from_unanswered",
                format!(
                    "must be above dormancy.personal_offer_from_unanswered ({})",
                    d.personal_offer_from_unanswered
                ),
            ));
        }
        percent("dormancy.offer_discount_pct", d.offer_discount_pct)?;
        self.onboarding.validate()
    }
}

fn limits(block: &str, default_limit: usize, max_limit: usize) -> Result<(), RulesError> {
    if !(1..=MAX_ITEMS_PER_BLOCK).contains(&max_limit) {
        return Err(RulesError::new(
            format!("{block}.max_limit"),
            format!("must be from 1 to {MAX_ITEMS_PER_BLOCK}"),
        ));
    }
    if !(1..=max_limit).contains(&default_limit) {
        return Err(RulesError::new(
            format!("{block}.default_limit"),
            format!("must be from 1 to {block}.max_limit ({max_limit})"),
        ));
    }
    Ok(())
}

/// Stage boundaries: not negative and strictly increasing, so every stage has days.
pub(crate) fn ascending(bounds: &[(&str, i64)]) -> Result<(), RulesError> {
    let mut previous: Option<(&str, i64)> = None;
    for &(key, value) in bounds {
        if value < 0 {
            return Err(RulesError::new(key, "must not be negative"));
        }
        if let Some((before, at)) = previous {
            if value <= at {
                return Err(RulesError::new(
                    key,
                    format!("must be above {before} ({at}), got {value}"),
                ));
            }
        }
        previous = Some((key, value));
    }
    Ok(())
}

/// A discount percentage: 1–99 (0 or 100 would be no offer or a free item).
pub(crate) fn percent(key: &str, pct: u8) -> Result<(), RulesError> {
    if (1..=99).contains(&pct) {
        Ok(())
    } else {
        Err(RulesError::new(
            key,
            format!("must be from 1 to 99, got {pct}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        for (text, format) in [("", RulesFormat::Toml), ("{}", RulesFormat::Json)] {
            assert_eq!(RulesConfig::parse(text, format), Ok(RulesConfig::default()));
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(RulesConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_moved_boundary_is_read_and_the_rest_keeps_its_defaults() {
        let toml = "[cart]\nsocial_proof_from_days = 2\n";
        let rules = RulesConfig::parse(toml, RulesFormat::Toml).unwrap();
        assert_eq!(rules.cart.social_proof_from_days, 2);
        assert_eq!(rules.cart.urgency_from_days, 5);
        assert_eq!(rules.dormancy, DormancyRules::default());
        let json = r#"{"dormancy": {"dormant_after_days": 60}}"#;
        let rules = RulesConfig::parse(json, RulesFormat::Json).unwrap();
        assert_eq!(rules.dormancy.dormant_after_days, 60);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = RulesConfig::parse("[cart]\nreminder_days = 2\n", RulesFormat::Toml).unwrap_err();
        assert!(err.to_string().contains("reminder_days"), "{err}");
        let err = RulesConfig::parse("[carts]\n", RulesFormat::Toml).unwrap_err();
        assert!(err.to_string().contains("carts"), "{err}");
        let err =
            RulesConfig::parse(r#"{"onboarding": {"welcome": 1}}"#, RulesFormat::Json).unwrap_err();
        assert!(err.to_string().contains("welcome"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let err = RulesConfig::parse("[cart]\nurgency_from_days = \"five\"\n", RulesFormat::Toml)
            .unwrap_err();
        assert_eq!(err.key, "cart.urgency_from_days", "{err}");
        let err =
            RulesConfig::parse("[cart]\nurgency_from_days = 2\n", RulesFormat::Toml).unwrap_err();
        assert_eq!(err.key, "cart.urgency_from_days", "{err}");
        let err = RulesConfig::parse(
            r#"{"recommendations": {"max_limit": 0}}"#,
            RulesFormat::Json,
        )
        .unwrap_err();
        assert_eq!(err.key, "recommendations.max_limit", "{err}");
        let err = RulesConfig::parse("[dormancy]\noffer_discount_pct = 100\n", RulesFormat::Toml)
            .unwrap_err();
        assert_eq!(err.key, "dormancy.offer_discount_pct", "{err}");
        let err = RulesConfig::parse("[onboarding]\nguide_from_days = 9\n", RulesFormat::Toml)
            .unwrap_err();
        assert!(err.key.starts_with("onboarding."), "{err}");
    }

    #[test]
    fn syntax_errors_say_the_line() {
        let err = RulesConfig::parse("[cart]\nreminder_from_days = = 2\n", RulesFormat::Toml)
            .unwrap_err();
        assert!(err.problem.starts_with("line 2:"), "{err}");
        let err = RulesConfig::parse("{\"cart\": ", RulesFormat::Json).unwrap_err();
        assert!(err.problem.contains("line 1"), "{err}");
    }

    #[test]
    fn formats_follow_the_file_extension() {
        assert_eq!(
            RulesFormat::from_file_name("r.TOML"),
            Some(RulesFormat::Toml)
        );
        assert_eq!(
            RulesFormat::from_file_name("/etc/r.json"),
            Some(RulesFormat::Json)
        );
        assert_eq!(RulesFormat::from_file_name("rules.yaml"), None);
    }
}

//! Thresholds of the block rules. Every number in BRIEF §2 is configuration with these
//! defaults, so copy and cadence can change without touching rule code.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesConfig {
    pub recommendations: RecommendationRules,
    pub cart: CartRules,
    pub dormancy: DormancyRules,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecommendationRules {
    /// Items returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
    /// The first `diversity_slots` positions hold at most `max_per_category` items of one category.
    pub diversity_slots: usize,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CartRules {
    /// Cart age (whole days) at which each stage starts; below `reminder_from_days` the cart is `too_early`.
    pub reminder_from_days: i64,
    pub social_proof_from_days: i64,
    pub urgency_from_days: i64,
    pub alternatives_from_days: i64,
    /// Stock at or below this is "low stock" in the urgency stage.
    pub low_stock_threshold: u32,
}

impl Default for CartRules {
    fn default() -> Self {
        Self {
            reminder_from_days: 1,
            social_proof_from_days: 3,
            urgency_from_days: 5,
            alternatives_from_days: 7,
            low_stock_threshold: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DormancyRules {
    /// A user is dormant once the last activity is at least this many whole days ago.
    pub dormant_after_days: i64,
    /// Unanswered win-back messages at which the `personal_offer` and `feedback` stages start.
    pub personal_offer_from_unanswered: u32,
    pub feedback_from_unanswered: u32,
    /// Discount offered in the `personal_offer` stage.
    pub offer_discount_pct: u8,
}

impl Default for DormancyRules {
    fn default() -> Self {
        Self {
            dormant_after_days: 30,
            personal_offer_from_unanswered: 1,
            feedback_from_unanswered: 3,
            offer_discount_pct: 10,
        }
    }
}

//! Onboarding block: for users who have not made their first key action, by whole days since
//! sign-up — `welcome` (key features), `guide` (how-to and FAQ links), `incentive` (a
//! first-use benefit and popular items from the preferred categories) (BRIEF §2, seed 004).
//! Not eligible: `too_early` (day 0), `activated`, `expired` (past the window: the dormancy
//! flow takes over) and `unknown_user`. Boundaries and copy are configuration.

use super::{
    at_least, popular_order, walk_reads, Assessment, BlockData, BlockRequest, BlockRule,
    Candidates, Eligible, Reads, StageAssessment,
};
use crate::block::{Block, BlockKind, Reason, Stage};
use crate::clock::whole_days;
use crate::config::{ascending, percent, ItemLimits, RulesConfig, RulesError};
use crate::model::{User, UserData};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many preferred categories' popular lists feed the incentive stage's items.
pub const MAX_INCENTIVE_CATEGORIES: usize = 3;

/// A key feature a new user should discover (welcome stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Stable key, matched against the user's `features_used`.
    pub key: String,
    /// Headline.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// Where to try it.
    pub url: String,
}

/// A how-to or FAQ link (guide stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuideLink {
    /// Link text.
    pub title: String,
    /// Target.
    pub url: String,
}

/// The first-use benefit (incentive stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benefit {
    /// Headline.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// Coupon code to show, if the benefit has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Percent off the first order; items then show their price after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_pct: Option<u8>,
}

/// What an onboarding answer shows besides items; each field only in its stage.
/// Borrows the configured content.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OnboardingContent<'a> {
    /// Welcome: the key features, those the user has not tried first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<&'a Feature>>,
    /// Guide: how-to and FAQ links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guides: Option<&'a [GuideLink]>,
    /// Incentive: the first-use benefit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benefit: Option<&'a Benefit>,
}

/// Thresholds and content of the onboarding block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnboardingRules {
    /// Items (and features or links) returned when the caller gives no `limit`.
    pub default_limit: usize,
    /// Largest `limit` a caller may ask for.
    pub max_limit: usize,
    /// Whole days since sign-up at which each stage starts; before `welcome_from_days` the
    /// user is `too_early`.
    pub welcome_from_days: i64,
    /// See `welcome_from_days`.
    pub guide_from_days: i64,
    /// See `welcome_from_days`.
    pub incentive_from_days: i64,
    /// The last day of onboarding; later the user is `expired`.
    pub last_day: i64,
    /// The key features of the welcome stage, in order.
    pub features: Vec<Feature>,
    /// The how-to and FAQ links of the guide stage, in order.
    pub guides: Vec<GuideLink>,
    /// The benefit of the incentive stage.
    pub benefit: Benefit,
}

impl Default for OnboardingRules {
    fn default() -> Self {
        let shop = "https://shop.example.com";
        Self {
            default_limit: 4,
            max_limit: 30,
            welcome_from_days: 1,
            guide_from_days: 3,
            incentive_from_days: 5,
            last_day: 7,
            features: vec![
                Feature {
                    key: "wishlist".into(),
                    title: "Save favourites to your wishlist".into(),
                    description: "Tap the heart on any product to find it again later.".into(),
                    url: format!("{shop}/wishlist"),
                },
                Feature {
                    key: "price_alerts".into(),
                    title: "Get price-drop alerts".into(),
                    description: "We tell you when something you saved goes on sale.".into(),
                    url: format!("{shop}/alerts"),
                },
                Feature {
                    key: "quick_checkout".into(),
                    title: "Check out in one tap".into(),
                    description: "Save a card and an address once, then buy in seconds.".into(),
                    url: format!("{shop}/account/checkout"),
                },
            ],
            guides: vec![
                GuideLink {
                    title: "How to place your first order".into(),
                    url: format!("{shop}/help/first-order"),
                },
                GuideLink {
                    title: "Shipping and returns".into(),
                    url: format!("{shop}/help/shipping"),
                },
                GuideLink {
                    title: "Finding your size".into(),
                    url: format!("{shop}/help/sizing"),
                },
            ],
            benefit: Benefit {
                title: "10% off your first order".into(),
                description: "Use the code at checkout within 7 days of signing up.".into(),
                code: Some("WELCOME10".into()),
                discount_pct: Some(10),
            },
        }
    }
}

impl OnboardingRules {
    /// Stage boundaries in order and a usable discount.
    pub fn validate(&self) -> Result<(), RulesError> {
        ascending(&[
            ("onboarding.welcome_from_days", self.welcome_from_days),
            ("onboarding.guide_from_days", self.guide_from_days),
            ("onboarding.incentive_from_days", self.incentive_from_days),
        ])?;
        if self.last_day < self.incentive_from_days {
            return Err(RulesError {
                key: "onboarding.last_day".into(),
                problem: format!(
                    "must be at least onboarding.incentive_from_days ({})",
                    self.incentive_from_days
                ),
            });
        }
        if let Some(pct) = self.benefit.discount_pct {
            percent("onboarding.benefit.discount_pct", pct)?;
        }
        Ok(())
    }
}

/// The block's [`StageAssessment`].
pub type OnboardingAssessment = StageAssessment;

/// The stage by whole days since sign-up, for users who have not activated yet.
pub fn assess(
    user: Option<&User>,
    now: DateTime<Utc>,
    rules: &OnboardingRules,
) -> OnboardingAssessment {
    let Some(user) = user else {
        return OnboardingAssessment::NotEligible(Reason::UnknownUser);
    };
    if user.activated {
        return OnboardingAssessment::NotEligible(Reason::Activated);
    }
    let days = whole_days(user.signed_up_at, now);
    let stage = if days < rules.welcome_from_days {
        return OnboardingAssessment::NotEligible(Reason::TooEarly);
    } else if days > rules.last_day {
        return OnboardingAssessment::NotEligible(Reason::Expired);
    } else if days < rules.guide_from_days {
        Stage::Welcome
    } else if days < rules.incentive_from_days {
        Stage::Guide
    } else {
        Stage::Incentive
    };
    OnboardingAssessment::Eligible { stage, days }
}

/// The features to show: those the user has not used yet, in configured order, then the
/// used ones (a user who tried them all but has not activated still gets a reminder).
pub fn features_for<'a>(user: &User, features: &'a [Feature], limit: usize) -> Vec<&'a Feature> {
    let used = |f: &&Feature| user.features_used.contains(&f.key);
    let untried = features.iter().filter(|f| !used(f));
    let tried = features.iter().filter(used);
    untried.chain(tried).take(limit).collect()
}

/// The onboarding block in the registry.
pub struct OnboardingRule;

impl BlockRule for OnboardingRule {
    fn kind(&self) -> BlockKind {
        BlockKind::Onboarding
    }

    fn limits(&self, rules: &RulesConfig) -> ItemLimits {
        ItemLimits {
            default_limit: rules.onboarding.default_limit,
            max_limit: rules.onboarding.max_limit,
        }
    }

    fn assess(&self, request: &BlockRequest<'_>, user: &UserData) -> Assessment {
        assess(
            user.profile.as_ref(),
            request.now,
            &request.rules.onboarding,
        )
        .into()
    }

    /// Welcome and guide read nothing more; incentive only what can be shown
    /// ([`walk_reads`]): the preferred categories' popular lists, then the global list.
    fn reads(&self, request: &BlockRequest<'_>, eligible: Eligible, data: &BlockData) -> Reads {
        if eligible.stage != Some(Stage::Incentive) {
            return Reads::default();
        }
        let user = data.user.profile.as_ref();
        let categories = incentive_categories(user);
        walk_reads(
            data,
            &mut Candidates::new(&data.catalog, user),
            popular_order(&data.popular, categories),
            request.limit,
            at_least(request.limit),
            categories,
        )
    }

    fn build<'a>(
        &self,
        request: &BlockRequest<'a>,
        eligible: Eligible,
        data: &'a BlockData,
    ) -> Block<'a> {
        let rules = &request.rules.onboarding;
        let user_id = request.user_id;
        let (Some(stage), Some(user)) = (eligible.stage, data.user.profile.as_ref()) else {
            return Block::not_eligible(user_id, BlockKind::Onboarding, Reason::UnknownUser);
        };
        let mut block = Block::eligible(user_id, BlockKind::Onboarding, stage, Vec::new());
        match stage {
            Stage::Welcome => {
                block.onboarding.features =
                    Some(features_for(user, &rules.features, request.limit));
            }
            Stage::Guide => {
                block.onboarding.guides =
                    Some(&rules.guides[..request.limit.min(rules.guides.len())]);
            }
            _ => {
                let mut candidates =
                    Candidates::new(&data.catalog, Some(user)).taking(request.limit);
                for category in incentive_categories(Some(user)) {
                    candidates.offer_each(data.popular.category_offers(category));
                }
                candidates.offer_each(data.popular.global_offers());
                let items: Vec<_> = candidates
                    .into_items(request.limit)
                    .into_iter()
                    .map(|i| match rules.benefit.discount_pct {
                        Some(pct) => i.with_discount(pct),
                        None => i,
                    })
                    .collect();
                block = Block::eligible(user_id, BlockKind::Onboarding, stage, items);
                block.onboarding.benefit = Some(&rules.benefit);
            }
        }
        let empty = block.items.is_empty()
            && block.onboarding.features.as_ref().is_none_or(Vec::is_empty)
            && block.onboarding.guides.is_none_or(<[GuideLink]>::is_empty)
            && block.onboarding.benefit.is_none();
        if empty {
            // Nothing configured to show: sending nothing beats sending noise.
            return Block::not_eligible(user_id, BlockKind::Onboarding, Reason::NoItems);
        }
        match eligible.days {
            Some(days) => block.with_days(days),
            None => block,
        }
    }
}

/// The preferred categories whose popular lists the incentive stage draws from.
fn incentive_categories(user: Option<&User>) -> &[String] {
    user.map(|u| {
        &u.preferred_categories[..u.preferred_categories.len().min(MAX_INCENTIVE_CATEGORIES)]
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::ItemSource;
    use crate::rules::test_support::*;
    use crate::rules::PopularLists;
    use crate::{Item, ItemId, PopularList, UserId};
    use chrono::Duration;
    use std::collections::HashMap;

    fn newcomer(signed_up: Duration) -> User {
        let mut u = user("u1");
        u.activated = false;
        u.signed_up_at = now() - signed_up;
        u.preferred_categories = vec!["bags".into()];
        u
    }

    fn stage_of(u: Option<&User>, rules: &OnboardingRules) -> Result<(Stage, i64), Reason> {
        match assess(u, now(), rules) {
            OnboardingAssessment::NotEligible(r) => Err(r),
            OnboardingAssessment::Eligible { stage, days } => Ok((stage, days)),
        }
    }

    #[test]
    fn stage_boundaries_follow_whole_days_since_sign_up() {
        let rules = OnboardingRules::default();
        let day = Duration::days(1);
        let s = Duration::seconds(1);
        let cases = [
            (Duration::zero(), Err(Reason::TooEarly)),
            (day - s, Err(Reason::TooEarly)),
            (day, Ok((Stage::Welcome, 1))),
            (day * 2, Ok((Stage::Welcome, 2))),
            (day * 3 - s, Ok((Stage::Welcome, 2))),
            (day * 3, Ok((Stage::Guide, 3))),
            (day * 4, Ok((Stage::Guide, 4))),
            (day * 5 - s, Ok((Stage::Guide, 4))),
            (day * 5, Ok((Stage::Incentive, 5))),
            (day * 7, Ok((Stage::Incentive, 7))),
            (day * 8 - s, Ok((Stage::Incentive, 7))),
            (day * 8, Err(Reason::Expired)),
            (day * 400, Err(Reason::Expired)),
            (-day * 2, Err(Reason::TooEarly)),
        ];
        for (age, expected) in cases {
            assert_eq!(
                stage_of(Some(&newcomer(age)), &rules),
                expected,
                "age {age}"
            );
        }
    }

    #[test]
    fn activated_and_unknown_users_are_not_eligible() {
        let rules = OnboardingRules::default();
        let mut u = newcomer(Duration::days(2));
        u.activated = true;
        assert_eq!(stage_of(Some(&u), &rules), Err(Reason::Activated));
        // activation wins over every day count, day 0 included
        u.signed_up_at = now();
        assert_eq!(stage_of(Some(&u), &rules), Err(Reason::Activated));
        assert_eq!(stage_of(None, &rules), Err(Reason::UnknownUser));
    }

    #[test]
    fn boundaries_are_configuration() {
        let rules = OnboardingRules {
            welcome_from_days: 0,
            guide_from_days: 2,
            incentive_from_days: 4,
            last_day: 10,
            ..OnboardingRules::default()
        };
        assert_eq!(
            stage_of(Some(&newcomer(Duration::zero())), &rules),
            Ok((Stage::Welcome, 0))
        );
        assert_eq!(
            stage_of(Some(&newcomer(Duration::days(2))), &rules),
            Ok((Stage::Guide, 2))
        );
        assert_eq!(
            stage_of(Some(&newcomer(Duration::days(10))), &rules),
            Ok((Stage::Incentive, 10))
        );
    }

    #[test]
    fn bad_boundaries_fail_validation_naming_the_key() {
        let rules = OnboardingRules {
            incentive_from_days: 3,
            ..OnboardingRules::default()
        };
        assert_eq!(
            rules.validate().unwrap_err().key,
            "onboarding.incentive_from_days"
        );
        let rules = OnboardingRules {
            last_day: 4,
            ..OnboardingRules::default()
        };
        assert_eq!(rules.validate().unwrap_err().key, "onboarding.last_day");
    }

    fn build(u: &User, limit: usize, rules: &RulesConfig) -> Block<'static> {
        let (u, rules) = (leak(u.clone()), leak(rules.clone()));
        let shop: HashMap<ItemId, Item> = catalog(vec![
            item("bag1", "bags", 10),
            item("bag2", "bags", 0),
            item("bag3", "bags", 10),
            item("g1", "toys", 10),
        ]);
        let data = leak(std::cell::RefCell::new(BlockData::new(
            std::sync::Arc::new(UserData {
                profile: Some(u.clone()),
                ..UserData::default()
            }),
        )));
        let mut data = data.borrow_mut();
        let request = BlockRequest {
            user_id: &u.user_id,
            now: now(),
            rules,
            limit,
        };
        let Assessment::Eligible(eligible) = OnboardingRule.assess(&request, &data.user) else {
            panic!("eligible expected");
        };
        let lists: PopularLists = popular(&["g1", "bag1"], &[("bags", &["bag2", "bag1", "bag3"])]);
        // Serve the plan from the fixtures, step by step, as the block service does.
        for _ in 0..4 {
            let reads = data.unread(OnboardingRule.reads(&request, eligible, &data));
            if reads.is_empty() {
                break;
            }
            let found: Vec<std::sync::Arc<PopularList>> = reads
                .popular
                .iter()
                .filter_map(|s| match s {
                    crate::PopularScope::Global => lists.global.clone(),
                    crate::PopularScope::Category(c) => lists.category_list(c).cloned(),
                })
                .collect();
            let items = reads
                .items
                .iter()
                .filter_map(|i| {
                    shop.get(i)
                        .map(|x| (i.clone(), std::sync::Arc::new(x.clone())))
                })
                .collect();
            data.record(reads, found, items);
        }
        let data: &'static BlockData = leak(data.clone());
        OnboardingRule.build(&request, eligible, data)
    }

    #[test]
    fn welcome_shows_untried_features_first() {
        let mut u = newcomer(Duration::days(1));
        u.features_used = vec!["wishlist".into()];
        let b = build(&u, 4, &RulesConfig::default());
        assert!(b.eligible);
        assert_eq!(b.stage, Some(Stage::Welcome));
        assert_eq!(b.days, Some(1));
        let keys: Vec<&str> = b
            .onboarding
            .features
            .as_ref()
            .unwrap()
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(keys, ["price_alerts", "quick_checkout", "wishlist"]);
        assert!(
            b.items.is_empty() && b.onboarding.guides.is_none() && b.onboarding.benefit.is_none()
        );
        let b = build(&u, 1, &RulesConfig::default());
        assert_eq!(b.onboarding.features.unwrap().len(), 1);
    }

    #[test]
    fn guide_shows_the_configured_links() {
        let b = build(&newcomer(Duration::days(3)), 4, &RulesConfig::default());
        assert_eq!(b.stage, Some(Stage::Guide));
        let guides = b.onboarding.guides.unwrap();
        assert_eq!(guides.len(), 3);
        assert_eq!(guides[0].url, "https://shop.example.com/help/first-order");
        assert!(b.items.is_empty());
    }

    #[test]
    fn incentive_has_the_benefit_and_in_stock_items_from_preferred_categories() {
        let b = build(&newcomer(Duration::days(6)), 3, &RulesConfig::default());
        assert_eq!(b.stage, Some(Stage::Incentive));
        assert_eq!(
            b.onboarding.benefit.as_ref().unwrap().code.as_deref(),
            Some("WELCOME10")
        );
        // bag2 is out of stock; the global list fills the rest
        assert_eq!(item_ids(&b), ["bag1", "bag3", "g1"]);
        assert_eq!(b.source, Some(ItemSource::CategoryPopular));
        assert_eq!(b.items[2].source, ItemSource::Popular);
        assert_eq!(b.items[0].display_sale_price.unwrap(), "₩9,000");
    }

    #[test]
    fn nothing_configured_to_show_is_not_eligible() {
        let mut rules = RulesConfig::default();
        rules.onboarding.guides.clear();
        let b = build(&newcomer(Duration::days(4)), 4, &rules);
        assert_eq!((b.eligible, b.reason), (false, Some(Reason::NoItems)));
    }

    #[test]
    fn the_answer_is_sealed_with_positions_and_a_content_hash() {
        let u = newcomer(Duration::days(6));
        let sealed = build(&u, 3, &RulesConfig::default()).sealed();
        let a = sealed.encode();
        let b = build(&u, 3, &RulesConfig::default()).sealed().encode();
        assert_eq!(a.rec_id(), b.rec_id());
        assert_eq!(a.json, b.json);
        assert_eq!(a.rec_id().len(), 16);
        let positions: Vec<u32> = sealed.items.iter().map(|i| i.position).collect();
        assert_eq!(positions, [1, 2, 3]);
        let fewer = build(&u, 2, &RulesConfig::default()).sealed().encode();
        assert_ne!(a.rec_id(), fewer.rec_id());
        let mut other = u.clone();
        other.user_id = UserId::parse("u2").unwrap();
        assert_ne!(
            a.rec_id(),
            build(&other, 3, &RulesConfig::default())
                .sealed()
                .encode()
                .rec_id()
        );
    }
}

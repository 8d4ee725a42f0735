//! Dormancy (win-back) block: dormant after 30 days without activity; the stage follows how
//! many win-back messages went unanswered (BRIEF §2).

use super::{
    at_least, offered_as, popular_order, walk_reads, Assessment, BlockData, BlockRequest,
    BlockRule, Candidates, CatalogView, Eligible, Facts, Reads, StageAssessment,
};
use crate::block::{Block, BlockKind, ItemSource, Offer, Reason, Stage};
use crate::clock::whole_days;
use crate::config::{DormancyRules, ItemLimits, RulesConfig};
use crate::ids::UserId;
use crate::model::{User, UserData};
use chrono::{DateTime, Utc};

/// The win-back block in the registry.
pub struct DormancyRule;

impl BlockRule for DormancyRule {
    fn kind(&self) -> BlockKind {
        BlockKind::Dormancy
    }

    fn limits(&self, rules: &RulesConfig) -> ItemLimits {
        ItemLimits {
            default_limit: rules.dormancy.default_limit,
            max_limit: rules.dormancy.max_limit,
        }
    }

    fn assess(&self, request: &BlockRequest<'_>, user: &UserData) -> Assessment {
        assess(user.profile.as_ref(), request.now, &request.rules.dormancy).into()
    }

    /// `feedback` reads nothing; the others only what can be shown ([`walk_reads`]): for
    /// `last_interest` the user's views and purchases first, then the offer category's
    /// popular list, then the global list.
    fn reads(&self, request: &BlockRequest<'_>, eligible: Eligible, data: &BlockData) -> Reads {
        let Some(user) = data.user.profile.as_ref() else {
            return Reads::default();
        };
        let last_interest = match eligible.stage {
            Some(Stage::LastInterest) => true,
            Some(Stage::PersonalOffer) => false,
            _ => return Reads::default(),
        };
        let category = offer_category(user);
        let history: (&[crate::ItemId], &[crate::ItemId]) = if last_interest {
            (&user.recent_views, &user.purchased_items)
        } else {
            (&[], &[])
        };
        let categories = category.as_slice();
        let order = offered_as(history.0, ItemSource::History)
            .chain(offered_as(history.1, ItemSource::History))
            .chain(popular_order(&data.popular, categories));
        // Last interest welcomes re-buying: no purchase filter (as `stage_block` offers them).
        let buyer = (!last_interest).then_some(user);
        walk_reads(
            data,
            &mut Candidates::new(&data.catalog, buyer),
            order,
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
        let facts = data.facts(request.now);
        let rules = &request.rules.dormancy;
        match (eligible.stage, eligible.days, data.user.profile.as_ref()) {
            (Some(stage), Some(days), Some(user)) => stage_block(
                request.user_id,
                user,
                (stage, days),
                &facts,
                rules,
                request.limit,
            ),
            (_, _, user) => dormancy_block(request.user_id, user, &facts, rules, request.limit),
        }
    }
}

/// The block's [`StageAssessment`].
pub type DormancyAssessment = StageAssessment;

/// Dormant or not, and the stage by unanswered win-back messages.
pub fn assess(
    user: Option<&User>,
    now: DateTime<Utc>,
    rules: &DormancyRules,
) -> DormancyAssessment {
    let Some(user) = user else {
        return DormancyAssessment::NotEligible(Reason::UnknownUser);
    };
    let days = whole_days(user.last_active_at, now);
    if days < rules.dormant_after_days {
        return DormancyAssessment::NotEligible(Reason::Active);
    }
    let stage = if user.winback_unanswered >= rules.feedback_from_unanswered {
        Stage::Feedback
    } else if user.winback_unanswered >= rules.personal_offer_from_unanswered {
        Stage::PersonalOffer
    } else {
        Stage::LastInterest
    };
    DormancyAssessment::Eligible { stage, days }
}

/// The category a win-back offer is about: the most-bought one, else the most preferred.
pub fn offer_category(user: &User) -> Option<&str> {
    user.most_bought_category()
        .or_else(|| user.preferred_categories.first().map(String::as_str))
}

/// Assesses the user and builds the win-back block.
pub fn dormancy_block<'a, C: CatalogView>(
    user_id: &'a UserId,
    user: Option<&'a User>,
    facts: &Facts<'a, C>,
    rules: &DormancyRules,
    limit: usize,
) -> Block<'a> {
    let (stage, days) = match assess(user, facts.now, rules) {
        DormancyAssessment::NotEligible(reason) => {
            return Block::not_eligible(user_id, BlockKind::Dormancy, reason)
        }
        DormancyAssessment::Eligible { stage, days } => (stage, days),
    };
    let Some(user) = user else {
        return Block::not_eligible(user_id, BlockKind::Dormancy, Reason::UnknownUser);
    };
    stage_block(user_id, user, (stage, days), facts, rules, limit)
}

/// Builds the block of a user already assessed as dormant in `stage` after `days`.
fn stage_block<'a, C: CatalogView>(
    user_id: &'a UserId,
    user: &'a User,
    (stage, days): (Stage, i64),
    facts: &Facts<'a, C>,
    rules: &DormancyRules,
    limit: usize,
) -> Block<'a> {
    let category = offer_category(user);
    let block = match stage {
        Stage::LastInterest => {
            // Viewed or bought before, still available; re-buying is welcome here, so the
            // purchase filter does not apply.
            let mut candidates = Candidates::new(facts.catalog, None).taking(limit);
            candidates.offer_all(&user.recent_views, ItemSource::History);
            candidates.offer_all(&user.purchased_items, ItemSource::History);
            if candidates.len() < limit {
                if let Some(c) = category {
                    candidates.offer_each(facts.popular.category_offers(c));
                }
                candidates.offer_each(facts.popular.global_offers());
            }
            Block::eligible(
                user_id,
                BlockKind::Dormancy,
                stage,
                candidates.into_items(limit),
            )
        }
        Stage::PersonalOffer => {
            let mut candidates = Candidates::new(facts.catalog, Some(user)).taking(limit);
            if let Some(c) = category {
                candidates.offer_each(facts.popular.category_offers(c));
            }
            if candidates.len() < limit {
                candidates.offer_each(facts.popular.global_offers());
            }
            let items = candidates
                .into_items(limit)
                .into_iter()
                .map(|i| i.with_discount(rules.offer_discount_pct))
                .collect();
            let mut block = Block::eligible(user_id, BlockKind::Dormancy, stage, items);
            block.offer = Some(Offer {
                category,
                discount_pct: rules.offer_discount_pct,
            });
            block
        }
        // Feedback asks whether to keep in touch: deliberately no items.
        _ => Block::eligible(user_id, BlockKind::Dormancy, stage, Vec::new()),
    };
    if block.items.is_empty() && stage != Stage::Feedback {
        return Block::not_eligible(user_id, BlockKind::Dormancy, Reason::NoItems).with_days(days);
    }
    block.with_days(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use crate::rules::test_support::*;
    use crate::rules::PopularLists;
    use chrono::Duration;
    use std::collections::{BTreeMap, HashMap};

    fn shop() -> HashMap<crate::ItemId, Item> {
        catalog(vec![
            item("v1", "shoes", 10),
            item("v2", "shoes", 0),
            item("b1", "bags", 10),
            item("bag_top", "bags", 10),
            item("bag_2", "bags", 10),
            item("g1", "toys", 10),
        ])
    }

    fn pop() -> PopularLists {
        popular(&["g1"], &[("bags", &["bag_top", "b1", "bag_2"])])
    }

    fn dormant(unanswered: u32) -> User {
        let mut u = user("u1");
        u.last_active_at = days_ago(45);
        u.winback_unanswered = unanswered;
        u.recent_views = ids(&["v2", "v1", "gone"]);
        u.purchased_items = ids(&["b1"]);
        u.category_purchases = BTreeMap::from([("bags".into(), 2), ("shoes".into(), 1)]);
        u
    }

    fn run(user: Option<&User>, limit: usize) -> Block<'static> {
        let (catalog, popular) = (leak(shop()), leak(pop()));
        let facts = Facts {
            catalog,
            popular,
            now: now(),
        };
        let user = user.map(|u| leak(u.clone()));
        dormancy_block(
            leak(uid("u1")),
            user,
            &facts,
            &DormancyRules::default(),
            limit,
        )
    }

    #[test]
    fn dormant_from_thirty_whole_days_of_inactivity() {
        let rules = DormancyRules::default();
        let mut u = dormant(0);
        let cases = [
            (Duration::days(0), Err(Reason::Active)),
            (Duration::days(29), Err(Reason::Active)),
            (
                Duration::days(30) - Duration::seconds(1),
                Err(Reason::Active),
            ),
            (Duration::days(30), Ok(30)),
            (Duration::days(400), Ok(400)),
        ];
        for (idle, expected) in cases {
            u.last_active_at = now() - idle;
            let got = match assess(Some(&u), now(), &rules) {
                DormancyAssessment::NotEligible(r) => Err(r),
                DormancyAssessment::Eligible { days, .. } => Ok(days),
            };
            assert_eq!(got, expected, "idle {idle}");
        }
    }

    #[test]
    fn stage_follows_unanswered_winbacks() {
        let rules = DormancyRules::default();
        for (n, stage) in [
            (0, Stage::LastInterest),
            (1, Stage::PersonalOffer),
            (2, Stage::PersonalOffer),
            (3, Stage::Feedback),
            (10, Stage::Feedback),
        ] {
            let u = dormant(n);
            assert_eq!(
                assess(Some(&u), now(), &rules),
                DormancyAssessment::Eligible { stage, days: 45 },
                "unanswered {n}"
            );
        }
    }

    #[test]
    fn unknown_and_active_users_are_not_eligible() {
        let b = run(None, 4);
        assert_eq!((b.eligible, b.reason), (false, Some(Reason::UnknownUser)));
        let active = user("u1");
        let b = run(Some(&active), 4);
        assert_eq!((b.eligible, b.reason), (false, Some(Reason::Active)));
        assert!(b.items.is_empty());
    }

    #[test]
    fn last_interest_shows_viewed_and_bought_items_still_available() {
        let b = run(Some(&dormant(0)), 2);
        assert_eq!(b.stage, Some(Stage::LastInterest));
        assert_eq!(b.days, Some(45));
        assert_eq!(item_ids(&b), ["v1", "b1"]);
        assert!(b.items.iter().all(|i| i.source == ItemSource::History));
    }

    #[test]
    fn last_interest_fills_from_the_users_category_when_history_is_gone() {
        let mut u = dormant(0);
        u.recent_views = ids(&["v2"]);
        u.purchased_items.clear();
        let b = run(Some(&u), 2);
        assert_eq!(item_ids(&b), ["bag_top", "b1"]);
        assert_eq!(b.source, Some(ItemSource::CategoryPopular));
    }

    #[test]
    fn personal_offer_is_on_the_most_bought_category() {
        let b = run(Some(&dormant(1)), 4);
        assert_eq!(b.stage, Some(Stage::PersonalOffer));
        let offer = b.offer.as_ref().unwrap();
        assert_eq!(offer.category, Some("bags"));
        assert_eq!(offer.discount_pct, 10);
        // b1 was bought already; the global list fills the rest.
        assert_eq!(item_ids(&b), ["bag_top", "bag_2", "g1"]);
        assert_eq!(b.items[0].display_sale_price.unwrap(), "₩9,000");
    }

    #[test]
    fn personal_offer_without_purchases_uses_the_preferred_category() {
        let mut u = dormant(2);
        u.category_purchases.clear();
        u.purchased_items.clear();
        u.preferred_categories = vec!["bags".into()];
        let b = run(Some(&u), 1);
        assert_eq!(b.offer.as_ref().unwrap().category, Some("bags"));
        assert_eq!(item_ids(&b), ["bag_top"]);
    }

    #[test]
    fn feedback_has_no_items_but_is_eligible() {
        let b = run(Some(&dormant(3)), 4);
        assert!(b.eligible);
        assert_eq!(b.stage, Some(Stage::Feedback));
        assert!(b.items.is_empty());
        assert_eq!(b.source, None);
    }
}

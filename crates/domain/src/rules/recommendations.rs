//! Recommendations block: the user's ranked list, filtered, diversified, and filled from
//! popular lists so it is never empty (BRIEF §2).

use super::{
    scopes_with_global, Assessment, BlockData, BlockRequest, BlockRule, Candidates, CatalogView,
    Eligible, Facts, OnUnreadable, Reads,
};
use crate::block::{Block, BlockItem, BlockKind, ItemSource, Reason, Stage};
use crate::config::{ItemLimits, RecommendationRules, RulesConfig};
use crate::ids::{ItemId, UserId};
use crate::model::{Item, RecList, User};

/// How many preferred categories' popular lists feed the fallback chain.
pub const MAX_FALLBACK_CATEGORIES: usize = 3;

/// The categories whose popular lists the caller should fetch for this user.
pub fn fallback_categories(user: Option<&User>) -> Vec<String> {
    user.map(|u| {
        u.preferred_categories
            .iter()
            .take(MAX_FALLBACK_CATEGORIES)
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}

/// The recommendations block in the registry: never empty, so an unreadable store still
/// gets popular items (marked `degraded`) rather than an error.
pub struct RecommendationsRule;

impl BlockRule for RecommendationsRule {
    fn kind(&self) -> BlockKind {
        BlockKind::Recommendations
    }

    fn limits(&self, rules: &RulesConfig) -> ItemLimits {
        ItemLimits {
            default_limit: rules.recommendations.default_limit,
            max_limit: rules.recommendations.max_limit,
        }
    }

    fn on_unreadable(&self) -> OnUnreadable {
        OnUnreadable::TreatAsUnknownUser
    }

    fn assess(&self, _: &BlockRequest<'_>, _: &crate::UserData) -> Assessment {
        Assessment::Eligible(Eligible {
            stage: None,
            days: None,
        })
    }

    /// Only what can be shown: walks the candidates in the order the block offers them
    /// (the live personal list, the preferred categories' popular lists, the global list)
    /// over what has been read, and stops as soon as the answer is decided — `limit` items
    /// picked, diversity included, without looking past the first unread candidate. Else it
    /// asks for the next unread candidates: as many as are still needed, grown by the share
    /// the filters refused so far (sold out, bought, repeated) and at least as many as were
    /// read before (so a long run of refusals takes a few steps, not one per item); the
    /// popular lists only once the personal list cannot decide the answer alone.
    fn reads(&self, request: &BlockRequest<'_>, _: Eligible, data: &BlockData) -> Reads {
        let user = data.user.profile.as_ref();
        let categories = user
            .map(|u| {
                &u.preferred_categories[..u.preferred_categories.len().min(MAX_FALLBACK_CATEGORIES)]
            })
            .unwrap_or_default();
        let popular_read = data.has_asked_scopes_of(categories.iter().map(String::as_str));
        let personal = data
            .user
            .recs
            .as_ref()
            .filter(|l| l.is_live(request.now))
            .map(|l| l.items.as_slice())
            .unwrap_or_default();
        let order = personal
            .iter()
            .map(|id| (id, ItemSource::Personalized))
            .chain(categories.iter().flat_map(|c| {
                data.popular
                    .category(c)
                    .iter()
                    .map(|id| (id, ItemSource::CategoryPopular))
            }))
            .chain(
                data.popular
                    .global()
                    .iter()
                    .map(|id| (id, ItemSource::Popular)),
            );

        let mut candidates = Candidates::new(&data.catalog, user);
        let (mut offered, mut refused) = (0usize, 0usize);
        let mut next: Vec<ItemId> = Vec::new();
        let mut batch = 0;
        for (id, source) in order {
            if batch == 0 {
                if data.was_asked(id) {
                    offered += 1;
                    if !candidates.offer(id, source) {
                        refused += 1;
                    }
                    continue;
                }
                // The first unread candidate: is the answer decided before it?
                if decided(
                    &candidates.picked,
                    &request.rules.recommendations,
                    request.limit,
                ) {
                    return Reads::default();
                }
                batch = batch_size(request.limit, candidates.len(), offered, refused, data);
                next.reserve_exact(batch);
            }
            if !data.was_asked(id) && !next.contains(id) {
                next.push(id.clone());
                if next.len() == batch {
                    break;
                }
            }
        }
        let decided_by_what_was_read = next.is_empty()
            && (popular_read
                || decided(
                    &candidates.picked,
                    &request.rules.recommendations,
                    request.limit,
                ));
        if decided_by_what_was_read {
            return Reads::default();
        }
        // The batch could not be filled from what is known: the popular lists come next.
        let popular = if popular_read || (batch > 0 && next.len() == batch) {
            Vec::new()
        } else {
            scopes_with_global(categories)
        };
        Reads {
            popular,
            items: next,
        }
    }

    fn build<'a>(&self, request: &BlockRequest<'a>, _: Eligible, data: &'a BlockData) -> Block<'a> {
        recommendations(
            request.user_id,
            data.user.profile.as_ref(),
            data.user.recs.as_ref(),
            &data.facts(request.now),
            &request.rules.recommendations,
            request.limit,
        )
    }
}

/// Builds the recommendations block. `list` may be absent or expired: both mean "no
/// personalized items", and an unknown user is indistinguishable from a cold one.
pub fn recommendations<'a, C: CatalogView>(
    user_id: &'a UserId,
    user: Option<&'a User>,
    list: Option<&'a RecList>,
    facts: &Facts<'a, C>,
    rules: &RecommendationRules,
    limit: usize,
) -> Block<'a> {
    let Facts {
        catalog,
        popular,
        now,
    } = *facts;
    let mut candidates = Candidates::new(catalog, user);
    if let Some(list) = list.filter(|l| l.is_live(now)) {
        candidates.offer_all(&list.items, ItemSource::Personalized);
    }
    for category in user
        .map(|u| u.preferred_categories.as_slice())
        .unwrap_or_default()
        .iter()
        .take(MAX_FALLBACK_CATEGORIES)
    {
        candidates.offer_all(popular.category(category), ItemSource::CategoryPopular);
    }
    candidates.offer_all(popular.global(), ItemSource::Popular);

    let picked = diversify(candidates.picked, rules, limit);
    if picked.is_empty() {
        return Block::not_eligible(user_id, BlockKind::Recommendations, Reason::NoItems);
    }
    let stage = if picked.iter().any(|(_, s)| *s == ItemSource::Personalized) {
        Stage::Personalized
    } else {
        Stage::Fallback
    };
    let items = picked
        .into_iter()
        .map(|(item, source)| BlockItem::from_item(item, source).with_rating(item))
        .collect();
    Block::eligible(user_id, BlockKind::Recommendations, stage, items)
}

/// The share of offered candidates the filters refuse, assumed until a few were seen.
const PRIOR_REFUSED_SHARE: f64 = 0.25;

/// How many unread candidates to ask for next: enough to fill the slots still open at the
/// refusal rate seen so far (plus one), and never fewer than were read already.
fn batch_size(
    limit: usize,
    picked: usize,
    offered: usize,
    refused: usize,
    data: &BlockData,
) -> usize {
    let share = if offered >= 4 {
        (refused as f64 / offered as f64).min(0.9)
    } else {
        PRIOR_REFUSED_SHARE
    };
    let open = limit.saturating_sub(picked).max(1);
    let needed = (open as f64 / (1.0 - share)).ceil() as usize + 1;
    needed.max(data.items_asked())
}

/// Whether [`diversify`] over `picked` (a prefix of every candidate, in order) gives the
/// same answer whatever follows: each of the `limit` slots is filled by a candidate already
/// in `picked`, never by the "no candidate fits, take the next" fallback that a later
/// candidate could change.
fn decided(picked: &[(&Item, ItemSource)], rules: &RecommendationRules, limit: usize) -> bool {
    if picked.len() < limit {
        return false;
    }
    let mut taken = [false; 64];
    if picked.len() > taken.len() {
        return false;
    }
    // The categories of the slots filled so far, counted in place (a block has a handful).
    let filled_in = |taken: &[bool; 64], category: &str| {
        (0..picked.len())
            .filter(|&i| taken[i] && picked[i].0.category == category)
            .count()
    };
    for slot in 0..limit {
        let fits = |taken: &[bool; 64], item: &Item| {
            slot >= rules.diversity_slots
                || filled_in(taken, &item.category) < rules.max_per_category
        };
        let Some(index) = (0..picked.len()).find(|&i| !taken[i] && fits(&taken, picked[i].0))
        else {
            return false;
        };
        taken[index] = true;
    }
    true
}

/// Fills `limit` slots in preference order, except that within the first `diversity_slots`
/// a category already holding `max_per_category` slots is passed over; passed-over items
/// keep their place in line for the later slots. If only one category is available the
/// slots are filled anyway: a full block beats a diverse empty one.
fn diversify<'a>(
    candidates: Vec<(&'a Item, ItemSource)>,
    rules: &RecommendationRules,
    limit: usize,
) -> Vec<(&'a Item, ItemSource)> {
    let mut remaining = candidates;
    let mut out: Vec<(&Item, ItemSource)> = Vec::with_capacity(limit.min(remaining.len()));
    while out.len() < limit && !remaining.is_empty() {
        let index = if out.len() < rules.diversity_slots {
            remaining
                .iter()
                .position(|(item, _)| fits_diversity(&out, item, rules))
                .unwrap_or(0)
        } else {
            0
        };
        out.push(remaining.remove(index));
    }
    out
}

/// Whether `item` may take the next diversity slot: its category holds fewer than
/// `max_per_category` of the slots filled (a block has a handful: counted in place).
fn fits_diversity(
    filled: &[(&Item, ItemSource)],
    item: &Item,
    rules: &RecommendationRules,
) -> bool {
    filled
        .iter()
        .filter(|(i, _)| i.category == item.category)
        .count()
        < rules.max_per_category
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;

    fn rules() -> RecommendationRules {
        RecommendationRules::default()
    }

    fn shop() -> std::collections::HashMap<crate::ItemId, Item> {
        catalog(vec![
            item("p1", "shoes", 10),
            item("p2", "shoes", 10),
            item("p3", "shoes", 10),
            item("p4", "bags", 10),
            item("p5", "hats", 10),
            item("gone", "bags", 0),
            item("c1", "hats", 10),
            item("c2", "hats", 10),
            item("g1", "toys", 10),
            item("g2", "toys", 10),
            item("g3", "books", 10),
            item("g4", "books", 10),
        ])
    }

    #[test]
    fn given_a_live_list_when_recommending_then_items_are_personalized_in_rank_order() {
        let u = user("u1");
        let list = rec_list("u1", &["p4", "p1", "p5"], 3);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["g1"], &[])),
                now: now(),
            },
            &rules(),
            3,
        );
        assert!(block.eligible);
        assert_eq!(block.reason, None);
        assert_eq!(block.stage, Some(Stage::Personalized));
        assert_eq!(block.source, Some(ItemSource::Personalized));
        assert_eq!(item_ids(&block), ["p4", "p1", "p5"]);
        assert!(block.items.iter().all(|i| i.rating.is_some()));
    }

    #[test]
    fn out_of_stock_purchased_and_unknown_items_are_dropped() {
        let mut u = user("u1");
        u.purchased_items = ids(&["p2"]);
        let list = rec_list("u1", &["gone", "p2", "nope", "p1"], 3);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["g1", "p1", "g2"], &[])),
                now: now(),
            },
            &rules(),
            3,
        );
        assert_eq!(item_ids(&block), ["p1", "g1", "g2"]);
        assert_eq!(block.items[0].source, ItemSource::Personalized);
        assert_eq!(block.items[1].source, ItemSource::Popular);
    }

    #[test]
    fn at_most_two_per_category_in_the_first_four_slots() {
        let u = user("u1");
        let list = rec_list("u1", &["p1", "p2", "p3", "p4", "p5"], 3);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&[], &[])),
                now: now(),
            },
            &rules(),
            5,
        );
        // p3 is the third shoe: it waits until slot 5.
        assert_eq!(item_ids(&block), ["p1", "p2", "p4", "p5", "p3"]);
    }

    #[test]
    fn diversity_never_leaves_slots_empty() {
        let u = user("u1");
        let list = rec_list("u1", &["p1", "p2", "p3"], 3);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&[], &[])),
                now: now(),
            },
            &rules(),
            4,
        );
        assert_eq!(item_ids(&block), ["p1", "p2", "p3"]);
    }

    #[test]
    fn shortfall_fills_from_category_popular_then_global() {
        let mut u = user("u1");
        u.preferred_categories = vec!["hats".into()];
        let list = rec_list("u1", &["p1"], 3);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(
                    &["g1", "g3"],
                    &[("hats", &["c1"]), ("toys", &["g2"])],
                )),
                now: now(),
            },
            &rules(),
            4,
        );
        assert_eq!(item_ids(&block), ["p1", "c1", "g1", "g3"]);
        let sources: Vec<_> = block.items.iter().map(|i| i.source).collect();
        assert_eq!(
            sources,
            [
                ItemSource::Personalized,
                ItemSource::CategoryPopular,
                ItemSource::Popular,
                ItemSource::Popular
            ]
        );
        assert_eq!(block.source, Some(ItemSource::Personalized));
    }

    #[test]
    fn an_expired_list_counts_as_absent() {
        let mut u = user("u1");
        u.preferred_categories = vec!["hats".into()];
        let list = rec_list("u1", &["p1", "p4"], -1);
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["g1"], &[("hats", &["c1", "c2"])])),
                now: now(),
            },
            &rules(),
            3,
        );
        assert_eq!(item_ids(&block), ["c1", "c2", "g1"]);
        assert_eq!(block.stage, Some(Stage::Fallback));
        assert_eq!(block.source, Some(ItemSource::CategoryPopular));
    }

    #[test]
    fn a_list_expiring_exactly_now_is_expired() {
        let u = user("u1");
        let mut list = rec_list("u1", &["p1"], 0);
        list.expires_at = now();
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["g1"], &[])),
                now: now(),
            },
            &rules(),
            1,
        );
        assert_eq!(item_ids(&block), ["g1"]);
    }

    #[test]
    fn unknown_user_gets_popular_items_in_the_same_shape() {
        let id = uid("nobody");
        let block = recommendations(
            &id,
            None,
            None,
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["g1", "g2", "g3", "g4", "p1"], &[])),
                now: now(),
            },
            &rules(),
            4,
        );
        assert!(block.eligible);
        assert_eq!(block.stage, Some(Stage::Fallback));
        assert_eq!(block.source, Some(ItemSource::Popular));
        assert_eq!(item_ids(&block), ["g1", "g2", "g3", "g4"]);
    }

    #[test]
    fn limit_caps_the_items() {
        let id = uid("nobody");
        let pop = popular(&["g1", "g2", "g3", "g4", "p1"], &[]);
        for limit in [1, 2, 5] {
            let block = recommendations(
                &id,
                None,
                None,
                &Facts {
                    catalog: leak(shop()),
                    popular: &pop,
                    now: now(),
                },
                &rules(),
                limit,
            );
            assert_eq!(block.items.len(), limit);
        }
    }

    #[test]
    fn nothing_to_show_is_not_eligible_rather_than_empty() {
        let id = uid("nobody");
        let block = recommendations(
            &id,
            None,
            None,
            &Facts {
                catalog: leak(shop()),
                popular: leak(popular(&["gone", "missing"], &[])),
                now: now(),
            },
            &rules(),
            4,
        );
        assert!(!block.eligible);
        assert_eq!(block.reason, Some(Reason::NoItems));
        assert_eq!(block.stage, None);
        assert!(block.items.is_empty());
    }

    /// A small deterministic generator (xorshift), enough to vary the cases.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[test]
    fn reading_only_what_can_be_shown_gives_the_answer_reading_everything_gives() {
        use crate::model::{PopularScope, RecList, UserData};
        use crate::rules::{BlockData, BlockRequest, BlockRule, Eligible, PopularLists};
        use std::sync::Arc;
        let categories = ["shoes", "bags", "hats", "toys", "books"];
        let mut rng = Rng(0x5eed);
        let rules_config = crate::RulesConfig::default();
        let mut steps_seen = 0;
        for case in 0..600 {
            // GIVEN a random shop (some items sold out, some categories dominant), lists and a user
            let n_items = 5 + rng.below(60);
            let sold_out_every = 2 + rng.below(6);
            let skew = rng.below(3);
            let items: Vec<Item> = (0..n_items)
                .map(|i| {
                    let c = if skew > 0 && rng.below(3) > 0 {
                        0
                    } else {
                        rng.below(categories.len())
                    };
                    let stock = if rng.below(sold_out_every) == 0 { 0 } else { 5 };
                    item(&format!("i{i}"), categories[c], stock)
                })
                .collect();
            let pick = |rng: &mut Rng, max: usize| -> Vec<ItemId> {
                let len = rng.below(max);
                // ids of known and unknown items, repeats allowed
                (0..len)
                    .map(|_| iid(&format!("i{}", rng.below(n_items + 5))))
                    .collect()
            };
            let mut u = user("u1");
            u.preferred_categories = (0..rng.below(5))
                .map(|_| categories[rng.below(5)].to_owned())
                .collect();
            u.purchased_items = pick(&mut rng, 6);
            let has_list = rng.below(4) > 0;
            let recs = has_list.then(|| RecList {
                user_id: u.user_id.clone(),
                generated_at: days_ago(1),
                expires_at: if rng.below(5) == 0 {
                    days_ago(0)
                } else {
                    now() + chrono::Duration::days(1)
                },
                items: pick(&mut rng, 50),
            });
            let mut lists = vec![(PopularScope::Global, pick(&mut rng, 40))];
            for c in categories {
                if rng.below(4) > 0 {
                    lists.push((PopularScope::category(c), pick(&mut rng, 30)));
                }
            }
            let shop = catalog(items);
            let full: crate::Catalog = shop
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect();
            let all_lists = PopularLists::from_lists(lists.iter().map(|(scope, items)| {
                Arc::new(crate::PopularList {
                    scope: scope.clone(),
                    items: items.clone(),
                })
            }));
            let limit = 1 + rng.below(8);
            let rules = leak(rules_config.clone());
            let user_data = Arc::new(UserData {
                profile: Some(u.clone()),
                recs: recs.clone(),
                cart: None,
            });
            let request = BlockRequest {
                user_id: leak(u.user_id.clone()),
                now: now(),
                rules,
                limit,
            };
            let eligible = Eligible {
                stage: None,
                days: None,
            };

            // WHEN the block is built from its read plan, step by step as the service does
            let mut data = BlockData::new(user_data.clone());
            let mut steps = 0;
            loop {
                let reads = data.unread(RecommendationsRule.reads(&request, eligible, &data));
                if reads.is_empty() {
                    break;
                }
                steps += 1;
                assert!(steps <= 8, "case {case}: the read plan does not settle");
                let found: Vec<_> = reads
                    .popular
                    .iter()
                    .filter_map(|s| match s {
                        PopularScope::Global => all_lists.global.clone(),
                        PopularScope::Category(c) => all_lists.category_list(c).cloned(),
                    })
                    .collect();
                let items = reads
                    .items
                    .iter()
                    .filter_map(|i| full.get(i).map(|x| (i.clone(), x.clone())))
                    .collect();
                data.record(reads, found, items);
            }
            steps_seen = steps_seen.max(steps);
            let planned = RecommendationsRule
                .build(&request, eligible, &data)
                .sealed()
                .encode();
            // THEN it is byte for byte the block built with every item and list at hand
            let everything = recommendations(
                &u.user_id,
                Some(&u),
                recs.as_ref(),
                &Facts {
                    catalog: &full,
                    popular: &all_lists,
                    now: now(),
                },
                &rules.recommendations,
                limit,
            )
            .sealed()
            .encode();
            assert_eq!(
                String::from_utf8_lossy(&planned.json),
                String::from_utf8_lossy(&everything.json),
                "case {case}"
            );
        }
        assert!(steps_seen >= 2, "the cases never needed a second read");
    }
}

//! Recommendations block: the user's ranked list, filtered, diversified, and filled from
//! popular lists so it is never empty (BRIEF §2).

use super::{
    offered_as, popular_order, walk_reads, Assessment, BlockData, BlockRequest, BlockRule,
    Candidates, CatalogView, Eligible, Facts, Offer, OnUnreadable, PopularLists, Reads,
};
use crate::block::{Block, BlockItem, BlockKind, ItemSource, Reason, Stage};
use crate::config::{ItemLimits, RecommendationRules, RulesConfig};
use crate::ids::UserId;
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

    /// Only what can be shown ([`walk_reads`]): the live personal list, then the preferred
    /// categories' popular lists, then the global list, until `limit` items are picked with
    /// diversity decided.
    fn reads(&self, request: &BlockRequest<'_>, _: Eligible, data: &BlockData) -> Reads {
        let user = data.user.profile.as_ref();
        let categories = user
            .map(|u| {
                &u.preferred_categories[..u.preferred_categories.len().min(MAX_FALLBACK_CATEGORIES)]
            })
            .unwrap_or_default();
        let order = offer_order(user, data.user.recs.as_ref(), &data.popular, request.now);
        let rules = &request.rules.recommendations;
        let mut decision = Decision::new(rules, request.limit);
        walk_reads(
            data,
            &mut Candidates::new(&data.catalog, user),
            order,
            request.limit,
            |picked| decision.settled(picked),
            categories,
        )
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

/// The block as defined, without stopping early: every candidate offered, then diversified
/// (the reference the early stop is tested against).
#[cfg(test)]
pub(crate) fn offering_everything<'a, C: CatalogView>(
    user: Option<&'a User>,
    list: Option<&'a RecList>,
    facts: &Facts<'a, C>,
    rules: &RecommendationRules,
    limit: usize,
) -> Vec<(crate::ItemId, ItemSource)> {
    let mut candidates = Candidates::new(facts.catalog, user);
    candidates.offer_each(offer_order(user, list, facts.popular, facts.now));
    diversify(candidates.picked, rules, limit)
        .into_iter()
        .map(|(item, source)| (item.item_id.clone(), source))
        .collect()
}

/// The order candidates are offered in: the live personal list, the preferred categories'
/// popular lists, the global list (the read plan and the build walk the same order).
fn offer_order<'a>(
    user: Option<&'a User>,
    list: Option<&'a RecList>,
    popular: &'a PopularLists,
    now: chrono::DateTime<chrono::Utc>,
) -> impl Iterator<Item = Offer<'a>> {
    let personal = list
        .filter(|l| l.is_live(now))
        .map(|l| l.items.as_slice())
        .unwrap_or_default();
    let categories = user
        .map(|u| {
            &u.preferred_categories[..u.preferred_categories.len().min(MAX_FALLBACK_CATEGORIES)]
        })
        .unwrap_or_default();
    offered_as(personal, ItemSource::Personalized).chain(popular_order(popular, categories))
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
    // Offered in order until the answer is decided: what follows cannot change it.
    let mut tally = DiversityTally::new(rules, limit);
    for offer in offer_order(user, list, popular, now) {
        if candidates.offer_known(offer) {
            if let Some((item, _)) = candidates.picked.last() {
                tally.add(&item.category);
            }
            if candidates.len() >= limit && tally.decided() {
                break;
            }
        }
    }

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

/// Whether [`diversify`] over the picks so far (a prefix of every candidate, in order) gives
/// the same answer whatever follows: each of the `limit` slots is filled by a candidate
/// already picked, never by the "no candidate fits, take the next" fallback that a later
/// candidate could change. Asked again as the picks grow, it counts each new pick once.
struct Decision<'a> {
    tally: DiversityTally<'a>,
    counted: usize,
    limit: usize,
}

impl<'a> Decision<'a> {
    fn new(rules: &RecommendationRules, limit: usize) -> Self {
        Self {
            tally: DiversityTally::new(rules, limit),
            counted: 0,
            limit,
        }
    }

    /// Whether `picked` settles the answer; `picked` extends the picks of the last call.
    fn settled(&mut self, picked: &[(&'a Item, ItemSource)]) -> bool {
        for (item, _) in picked.get(self.counted..).unwrap_or_default() {
            self.tally.add(&item.category);
        }
        self.counted = picked.len();
        picked.len() >= self.limit && self.tally.decided()
    }
}

/// How many of the diversity slots the picks so far can fill, counted as they come.
///
/// [`fill_slots`] gives each diversity slot the first untaken candidate whose category holds
/// fewer than `max_per_category` slots; it runs out exactly when every category left is at
/// the cap, having filled `Σ min(picks in the category, max_per_category)` slots. So every
/// diversity slot finds a fitting candidate iff that sum reaches the number of diversity
/// slots (the later slots take any candidate) — one count per pick instead of a replay of
/// the slots.
struct DiversityTally<'a> {
    per_category: Vec<(&'a str, usize)>,
    fillable: usize,
    needed: usize,
    cap: usize,
}

impl<'a> DiversityTally<'a> {
    fn new(rules: &RecommendationRules, limit: usize) -> Self {
        Self {
            per_category: Vec::new(),
            fillable: 0,
            needed: rules.diversity_slots.min(limit),
            cap: rules.max_per_category,
        }
    }

    /// Counts one more pick of `category`.
    fn add(&mut self, category: &'a str) {
        let known = self.per_category.iter().position(|(c, _)| *c == category);
        let index = known.unwrap_or_else(|| {
            self.per_category.push((category, 0));
            self.per_category.len() - 1
        });
        let count = &mut self.per_category[index].1;
        if *count < self.cap {
            self.fillable += 1;
        }
        *count += 1;
    }

    /// Whether every diversity slot can be filled by a fitting pick.
    fn decided(&self) -> bool {
        self.fillable >= self.needed
    }
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
    let mut out = Vec::with_capacity(limit.min(candidates.len()));
    fill_slots(&candidates, rules, limit, |i| out.push(candidates[i]));
    out
}

/// [`diversify`]'s choice: calls `take` with the index of each slot's candidate, in slot
/// order, and says whether every diversity slot found a candidate that fits (rather than
/// the fallback). Categories are numbered once, so the slots compare numbers, not names.
fn fill_slots(
    candidates: &[(&Item, ItemSource)],
    rules: &RecommendationRules,
    limit: usize,
    mut take: impl FnMut(usize),
) -> bool {
    const ON_STACK: usize = 64;
    let n = candidates.len();
    let (mut stack_numbers, mut stack_taken) = ([0u16; ON_STACK], [false; ON_STACK]);
    let (mut heap_numbers, mut heap_taken);
    let (numbers, taken): (&mut [u16], &mut [bool]) = if n <= ON_STACK {
        (&mut stack_numbers[..n], &mut stack_taken[..n])
    } else {
        heap_numbers = vec![0u16; n];
        heap_taken = vec![false; n];
        (&mut heap_numbers, &mut heap_taken)
    };
    // Number the categories in order of first appearance; a slot count per number.
    let mut names: [&str; ON_STACK] = [""; ON_STACK];
    let mut distinct = 0usize;
    for (i, (item, _)) in candidates.iter().enumerate() {
        let name = item.category.as_str();
        let known = names[..distinct.min(ON_STACK)]
            .iter()
            .position(|c| *c == name);
        numbers[i] = match known {
            Some(k) => k as u16,
            None if distinct < ON_STACK => {
                names[distinct] = name;
                distinct += 1;
                (distinct - 1) as u16
            }
            // More categories than the stack holds: the rest share one number (they are
            // compared by name below).
            None => ON_STACK as u16,
        };
    }
    let mut filled = [0usize; ON_STACK + 1];
    let filled_in = |filled: &[usize; ON_STACK + 1], taken: &[bool], i: usize| {
        if (numbers[i] as usize) < ON_STACK {
            filled[numbers[i] as usize]
        } else {
            let name = candidates[i].0.category.as_str();
            (0..n)
                .filter(|&j| taken[j] && candidates[j].0.category == name)
                .count()
        }
    };
    let mut all_fit = true;
    for slot in 0..limit {
        let diverse = slot < rules.diversity_slots;
        let fitting = (0..n).find(|&i| {
            !taken[i] && (!diverse || filled_in(&filled, taken, i) < rules.max_per_category)
        });
        let index = match fitting {
            Some(i) => i,
            None => {
                all_fit = false;
                match (0..n).find(|&i| !taken[i]) {
                    Some(i) => i,
                    None => break,
                }
            }
        };
        taken[index] = true;
        filled[numbers[index] as usize] += 1;
        take(index);
    }
    all_fit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;

    #[test]
    fn the_diversity_tally_decides_as_replaying_the_slots_does() {
        // Every sequence of up to 7 picks over 3 categories, under several rules and limits.
        let items: Vec<Item> = ["a", "b", "c"]
            .iter()
            .map(|c| item(&format!("x{c}"), c, 1))
            .collect();
        for (slots, cap, limit) in [
            (4, 2, 4),
            (4, 1, 4),
            (3, 2, 6),
            (0, 1, 4),
            (6, 2, 4),
            (4, 3, 5),
        ] {
            let rules = RecommendationRules {
                diversity_slots: slots,
                max_per_category: cap,
                ..RecommendationRules::default()
            };
            for len in 0..=7u32 {
                for code in 0..3usize.pow(len) {
                    let picked: Vec<(&Item, ItemSource)> = (0..len)
                        .map(|k| (&items[code / 3usize.pow(k) % 3], ItemSource::Popular))
                        .collect();
                    let replayed =
                        picked.len() >= limit && fill_slots(&picked, &rules, limit, |_| {});
                    // (asked as the walk asks: once per pick, the picks growing)
                    let mut decision = Decision::new(&rules, limit);
                    let settled = (0..=picked.len())
                        .map(|k| decision.settled(&picked[..k]))
                        .last();
                    assert_eq!(
                        settled,
                        Some(replayed),
                        "slots {slots}, cap {cap}, limit {limit}, picks {code} of length {len}"
                    );
                }
            }
        }
    }

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
    fn lists_read_with_their_items_offer_those_reads_and_an_item_read_twice_shows_once() {
        // GIVEN popular lists read with their items (other reads than the request catalog's,
        // and one item, x1, only the lists' read has)
        let mut u = user("u1");
        u.preferred_categories = vec!["hats".into()];
        let list = rec_list("u1", &["c1"], 3);
        let own_read: crate::Catalog = shop()
            .into_values()
            .chain([item("x1", "toys", 10)])
            .map(|i| (i.item_id.clone(), std::sync::Arc::new(i)))
            .collect();
        let lists = read_with_items(
            &popular(&["x1", "g3"], &[("hats", &["c1", "c2"])]),
            &own_read,
        );
        // WHEN recommending
        let block = recommendations(
            &u.user_id,
            Some(&u),
            Some(&list),
            &Facts {
                catalog: leak(shop()),
                popular: leak(lists),
                now: now(),
            },
            &rules(),
            4,
        );
        // THEN c1 (personal, and first in the hats list) shows once, and x1 comes from the
        // global list's own read
        assert_eq!(item_ids(&block), ["c1", "c2", "x1", "g3"]);
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
}

//! Every block's read plan reads only what can be shown, and its answer is byte for byte the
//! answer built with every item and popular list at hand — over random shops, lists and users
//! in every stage.

use super::test_support::*;
use super::{Assessment, BlockData, BlockKind, BlockRequest, PopularLists, Reads};
use crate::model::{Cart, CartLine, Item, PopularList, PopularScope, RecList, UserData};
use crate::{Catalog, ItemId, RulesConfig};
use chrono::Duration;
use std::sync::Arc;

/// A small deterministic generator (xorshift), enough to vary the cases.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
    fn ids(&mut self, max_len: usize, n_items: usize) -> Vec<ItemId> {
        // ids of known and unknown items, repeats allowed
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| iid(&format!("i{}", self.below(n_items + 5))))
            .collect()
    }
}

const CATEGORIES: [&str; 5] = ["shoes", "bags", "hats", "toys", "books"];

/// Serves `reads` from everything there is, as a store would.
fn serve(reads: &Reads, lists: &PopularLists, full: &Catalog) -> (Vec<Arc<PopularList>>, Catalog) {
    let found = reads
        .popular
        .iter()
        .filter_map(|s| match s {
            PopularScope::Global => lists.global.clone(),
            PopularScope::Category(c) => lists.category_list(c).cloned(),
        })
        .collect();
    let items = reads
        .items
        .iter()
        .filter_map(|i| full.get(i).map(|x| (i.clone(), x.clone())))
        .collect();
    (found, items)
}

#[test]
fn every_read_plan_reads_only_what_can_be_shown_and_answers_as_reading_everything_would() {
    let rules = leak(RulesConfig::default());
    let mut rng = Rng(0x5eed_1234);
    let (mut cases, mut multi_step, mut eligible_cases) = (0, 0, 0);
    let (mut read_planned, mut read_everything) = (0usize, 0usize);
    let mut resolved_cases = 0;
    for case in 0..1_500 {
        // GIVEN a random shop (some items sold out, some categories dominant) and lists
        let n_items = 5 + rng.below(60);
        let sold_out_every = 2 + rng.below(6);
        let skew = rng.below(3);
        let items: Vec<Item> = (0..n_items)
            .map(|i| {
                let c = if skew > 0 && rng.below(3) > 0 {
                    0
                } else {
                    rng.below(CATEGORIES.len())
                };
                let stock = if rng.below(sold_out_every) == 0 { 0 } else { 5 };
                item(&format!("i{i}"), CATEGORIES[c], stock)
            })
            .collect();
        let full: Catalog = items
            .into_iter()
            .map(|i| (i.item_id.clone(), Arc::new(i)))
            .collect();
        let mut lists = vec![Arc::new(PopularList::new(
            PopularScope::Global,
            rng.ids(40, n_items),
        ))];
        for c in CATEGORIES {
            if rng.below(4) > 0 {
                lists.push(Arc::new(PopularList::new(
                    PopularScope::category(c),
                    rng.ids(30, n_items),
                )));
            }
        }
        let lists = PopularLists::from_lists(lists);
        // AND a user somewhere in every journey
        let mut u = user("u1");
        u.signed_up_at = days_ago(rng.below(12) as i64);
        u.activated = rng.below(3) == 0;
        u.last_active_at = days_ago(rng.below(60) as i64);
        u.winback_unanswered = rng.below(5) as u32;
        u.preferred_categories = (0..rng.below(5))
            .map(|_| CATEGORIES[rng.below(5)].to_owned())
            .collect();
        u.purchased_items = rng.ids(6, n_items);
        u.recent_views = rng.ids(8, n_items);
        for _ in 0..rng.below(4) {
            let c = CATEGORIES[rng.below(5)].to_owned();
            *u.category_purchases.entry(c).or_default() += 1;
        }
        let recs = (rng.below(4) > 0).then(|| RecList {
            mark: None,
            user_id: u.user_id.clone(),
            generated_at: days_ago(1),
            expires_at: if rng.below(5) == 0 {
                days_ago(0)
            } else {
                now() + Duration::days(1)
            },
            items: rng.ids(50, n_items),
        });
        let cart = (rng.below(3) > 0).then(|| Cart {
            mark: None,
            user_id: u.user_id.clone(),
            updated_at: days_ago(rng.below(10) as i64),
            lines: rng
                .ids(4, n_items)
                .into_iter()
                .map(|item_id| CartLine {
                    item_id,
                    quantity: 1,
                })
                .collect(),
        });
        let user_data = Arc::new(UserData {
            profile: (rng.below(8) > 0).then(|| u.clone()),
            recs,
            cart,
            score: None,
        });
        let user_id = leak(u.user_id.clone());
        // Half the cases serve popular lists read with their items, as the store's cache does:
        // the plan then never asks for an item only a list names, and answers the same.
        let with_items = rng.below(2) == 0;
        let served = if with_items {
            read_with_items(&lists, &full)
        } else {
            lists.clone()
        };
        let own: Vec<&ItemId> = user_data
            .recs
            .iter()
            .flat_map(|r| &r.items)
            .chain(
                user_data
                    .cart
                    .iter()
                    .flat_map(|c| c.lines.iter().map(|l| &l.item_id)),
            )
            .chain(
                user_data
                    .profile
                    .iter()
                    .flat_map(|p| p.recent_views.iter().chain(&p.purchased_items)),
            )
            .collect();
        for kind in BlockKind::ALL {
            let rule = kind.rule();
            let limit = 1 + rng.below(8);
            let request = BlockRequest {
                user_id,
                now: now(),
                rules,
                limit,
            };
            cases += 1;
            let Assessment::Eligible(eligible) = rule.assess(&request, &user_data) else {
                continue;
            };
            eligible_cases += 1;
            // WHEN the block is built from its read plan, step by step as the service does
            let mut planned = BlockData::new(user_data.clone());
            let mut steps = 0;
            loop {
                let reads = planned.unread(rule.reads(&request, eligible, &planned));
                if reads.is_empty() {
                    break;
                }
                steps += 1;
                assert!(
                    steps <= 8,
                    "case {case} {kind}: the read plan does not settle"
                );
                if with_items {
                    resolved_cases += usize::from(!reads.popular.is_empty());
                    let listed = reads.items.iter().find(|i| !own.contains(i));
                    assert!(
                        listed.is_none(),
                        "case {case} {kind}: asked for {listed:?}, which only a list read with its items names"
                    );
                }
                let (found, items) = serve(&reads, &served, &full);
                planned.record(reads, found, items);
            }
            multi_step += usize::from(steps > 2);
            // AND from everything there is
            let mut everything = BlockData::new(user_data.clone());
            let all = Reads {
                popular: std::iter::once(PopularScope::Global)
                    .chain(CATEGORIES.iter().map(|c| PopularScope::category(*c)))
                    .collect(),
                items: (0..n_items + 5).map(|i| iid(&format!("i{i}"))).collect(),
            };
            let (found, items) = serve(&all, &lists, &full);
            everything.record(all, found, items);
            read_planned += planned.items_asked();
            read_everything += full.len();
            // THEN the answers are the same bytes
            let built = rule.build(&request, eligible, &planned);
            if kind == BlockKind::Recommendations {
                // AND the same items as offering every candidate (no early stop) gives
                let reference = super::recommendations::offering_everything(
                    user_data.profile.as_ref(),
                    user_data.recs.as_ref(),
                    &everything.facts(now()),
                    &rules.recommendations,
                    limit,
                );
                let shown: Vec<_> = built
                    .items
                    .iter()
                    .map(|i| (i.id.clone(), i.source))
                    .collect();
                assert_eq!(shown, reference, "case {case} limit {limit}");
            }
            let a = built.sealed().encode();
            let b = rule
                .build(&request, eligible, &everything)
                .sealed()
                .encode();
            assert_eq!(
                String::from_utf8_lossy(&a.json),
                String::from_utf8_lossy(&b.json),
                "case {case} {kind} limit {limit}"
            );
        }
    }
    assert!(eligible_cases > cases / 3, "{eligible_cases} of {cases}");
    assert!(
        resolved_cases > 200,
        "{resolved_cases} plans read lists with their items"
    );
    assert!(
        multi_step > 20,
        "the cases rarely needed more than one catalog read"
    );
    // AND far less was read than everything
    assert!(
        read_planned * 3 < read_everything,
        "{read_planned} items read by plans, {read_everything} in the shops"
    );
}

//! Abandoned-cart block: the stage follows the days since the cart last changed (BRIEF §2).

use super::{
    at_least, popular_order, walk_reads, Assessment, BlockData, BlockRequest, BlockRule,
    Candidates, CatalogView, Eligible, Facts, Reads, StageAssessment,
};
use crate::block::{Block, BlockItem, BlockKind, ItemSource, Reason, Stage, UrgencyKind};
use crate::clock::whole_days;
use crate::config::{CartRules, ItemLimits, RulesConfig};
use crate::ids::UserId;
use crate::model::{Cart, Item, User, UserData};
use chrono::{DateTime, Utc};

/// The abandoned-cart block in the registry.
pub struct CartRule;

impl BlockRule for CartRule {
    fn kind(&self) -> BlockKind {
        BlockKind::Cart
    }

    fn limits(&self, rules: &RulesConfig) -> ItemLimits {
        ItemLimits {
            default_limit: rules.cart.default_limit,
            max_limit: rules.cart.max_limit,
        }
    }

    fn assess(&self, request: &BlockRequest<'_>, user: &UserData) -> Assessment {
        assess(
            user.profile.as_ref(),
            user.cart.as_ref(),
            request.now,
            &request.rules.cart,
        )
        .into()
    }

    /// The cart's items; for `alternatives` then only what can be shown ([`walk_reads`]):
    /// the popular lists of the cart items' categories, then the global list.
    fn reads(&self, request: &BlockRequest<'_>, eligible: Eligible, data: &BlockData) -> Reads {
        let Some(cart) = data.user.cart.as_ref() else {
            return Reads::default();
        };
        let cart_ids = cart.lines.iter().map(|l| &l.item_id);
        if !data.has_asked_items(cart_ids.clone()) {
            return Reads {
                popular: Vec::new(),
                items: cart_ids.cloned().collect(),
            };
        }
        if eligible.stage != Some(Stage::Alternatives) {
            return Reads::default();
        }
        let categories = cart_categories(cart, &data.catalog);
        walk_reads(
            data,
            &mut Candidates::new(&data.catalog, data.user.profile.as_ref()).excluding(cart_ids),
            popular_order(&data.popular, &categories),
            request.limit,
            at_least(request.limit),
            &categories,
        )
    }

    fn build<'a>(
        &self,
        request: &BlockRequest<'a>,
        eligible: Eligible,
        data: &'a BlockData,
    ) -> Block<'a> {
        let profile = data.user.profile.as_ref();
        let cart = data.user.cart.as_ref();
        let facts = data.facts(request.now);
        let rules = &request.rules.cart;
        match (eligible.stage, eligible.days, cart) {
            (Some(stage), Some(days), Some(cart)) => stage_block(
                request.user_id,
                profile,
                cart,
                (stage, days),
                &facts,
                rules,
                request.limit,
            ),
            _ => cart_block(request.user_id, profile, cart, &facts, rules, request.limit),
        }
    }
}

/// The block's [`StageAssessment`].
pub type CartAssessment = StageAssessment;

/// The cart's stage by the days since it last changed, or why it gets no block.
pub fn assess(
    user: Option<&User>,
    cart: Option<&Cart>,
    now: DateTime<Utc>,
    rules: &CartRules,
) -> CartAssessment {
    let Some(cart) = cart.filter(|c| !c.lines.is_empty()) else {
        return CartAssessment::NotEligible(Reason::CartEmpty);
    };
    if user
        .and_then(|u| u.last_purchase_at)
        .is_some_and(|bought| bought >= cart.updated_at)
    {
        return CartAssessment::NotEligible(Reason::Purchased);
    }
    let days = whole_days(cart.updated_at, now);
    let stage = if days < rules.reminder_from_days {
        return CartAssessment::NotEligible(Reason::TooEarly);
    } else if days < rules.social_proof_from_days {
        Stage::Reminder
    } else if days < rules.urgency_from_days {
        Stage::SocialProof
    } else if days < rules.alternatives_from_days {
        Stage::Urgency
    } else {
        Stage::Alternatives
    };
    CartAssessment::Eligible { stage, days }
}

/// The categories of the cart's items, in cart order: the alternatives stage fetches their
/// popular lists.
pub fn cart_categories<C: CatalogView>(cart: &Cart, catalog: &C) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in &cart.lines {
        if let Some(item) = catalog.item(&line.item_id) {
            if !out.contains(&item.category) {
                out.push(item.category.clone());
            }
        }
    }
    out
}

/// Assesses the cart and builds its block.
pub fn cart_block<'a, C: CatalogView>(
    user_id: &'a UserId,
    user: Option<&'a User>,
    cart: Option<&'a Cart>,
    facts: &Facts<'a, C>,
    rules: &CartRules,
    limit: usize,
) -> Block<'a> {
    let (stage, days) = match assess(user, cart, facts.now, rules) {
        CartAssessment::NotEligible(reason) => {
            return Block::not_eligible(user_id, BlockKind::Cart, reason)
        }
        CartAssessment::Eligible { stage, days } => (stage, days),
    };
    let Some(cart) = cart else {
        return Block::not_eligible(user_id, BlockKind::Cart, Reason::CartEmpty);
    };
    stage_block(user_id, user, cart, (stage, days), facts, rules, limit)
}

/// Builds the block of a cart already assessed as eligible in `stage` after `days`.
fn stage_block<'a, C: CatalogView>(
    user_id: &'a UserId,
    user: Option<&'a User>,
    cart: &'a Cart,
    (stage, days): (Stage, i64),
    facts: &Facts<'a, C>,
    rules: &CartRules,
    limit: usize,
) -> Block<'a> {
    // Lines whose item left the catalog are skipped; a cart of only such lines is empty.
    let lines: Vec<(&'a Item, u32)> = cart
        .lines
        .iter()
        .filter_map(|l| facts.catalog.item(&l.item_id).map(|i| (i, l.quantity)))
        .collect();
    if lines.is_empty() {
        return Block::not_eligible(user_id, BlockKind::Cart, Reason::CartEmpty);
    }

    let mut urgency = None;
    let items: Vec<BlockItem> = match stage {
        Stage::Reminder => lines
            .iter()
            .take(limit)
            .map(|(item, qty)| BlockItem::from_item(item, ItemSource::Cart).with_quantity(*qty))
            .collect(),
        Stage::SocialProof => {
            let mut items: Vec<BlockItem> = lines
                .iter()
                .take(limit)
                .map(|(item, qty)| {
                    BlockItem::from_item(item, ItemSource::Cart)
                        .with_quantity(*qty)
                        .with_social_proof(item)
                })
                .collect();
            // Rated items first (a stable sort): `items[0]` has the proof when any item has.
            items.sort_by_key(|i| !matches!(i.rating, Some(Some(_))));
            items
        }
        Stage::Urgency => {
            let items: Vec<BlockItem> = lines
                .iter()
                .take(limit)
                .map(|(item, qty)| {
                    BlockItem::from_item(item, ItemSource::Cart)
                        .with_quantity(*qty)
                        .with_stock(item, rules.low_stock_threshold)
                        .with_active_discount(item, facts.now)
                })
                .collect();
            let mut items = items;
            let kind = if items.iter().any(|i| i.low_stock == Some(true)) {
                UrgencyKind::LowStock
            } else if items.iter().any(|i| i.discount_pct.is_some()) {
                UrgencyKind::Discount
            } else {
                UrgencyKind::Nudge
            };
            // What makes it urgent comes first, so a template's `items[0]` is the low-stock
            // (or discounted) item; otherwise the cart's order is kept (a stable sort).
            match kind {
                UrgencyKind::LowStock => items.sort_by_key(|i| i.low_stock != Some(true)),
                UrgencyKind::Discount => items.sort_by_key(|i| i.discount_pct.is_none()),
                UrgencyKind::Nudge => {}
            }
            urgency = Some(kind);
            items
        }
        _ => alternatives(user, cart, facts, limit),
    };
    if items.is_empty() {
        return Block::not_eligible(user_id, BlockKind::Cart, Reason::NoItems).with_days(days);
    }
    let mut block = Block::eligible(user_id, BlockKind::Cart, stage, items).with_days(days);
    block.urgency = urgency;
    block
}

/// Similar in-stock items: the popular lists of the cart items' categories, then the global
/// list, never the cart's own items nor anything already bought.
fn alternatives<'a, C: CatalogView>(
    user: Option<&'a User>,
    cart: &'a Cart,
    facts: &Facts<'a, C>,
    limit: usize,
) -> Vec<BlockItem<'a>> {
    let mut candidates = Candidates::new(facts.catalog, user)
        .taking(limit)
        .excluding(cart.lines.iter().map(|l| &l.item_id));
    for category in cart_categories(cart, facts.catalog) {
        candidates.offer_each(facts.popular.category_offers(&category));
    }
    if candidates.len() < limit {
        candidates.offer_each(facts.popular.global_offers());
    }
    candidates.into_items(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Discount;
    use crate::rules::test_support::*;
    use crate::rules::PopularLists;
    use chrono::Duration;
    use std::collections::HashMap;

    fn shop() -> HashMap<crate::ItemId, Item> {
        let mut low = item("low", "shoes", 3);
        low.title = "Low stock shoe".into();
        let mut sale = item("sale", "bags", 50);
        sale.discount = Some(Discount {
            pct: 20,
            ends_at: Some(now() + Duration::days(2)),
        });
        let mut expired_sale = item("old_sale", "bags", 50);
        expired_sale.discount = Some(Discount {
            pct: 20,
            ends_at: Some(now() - Duration::hours(1)),
        });
        catalog(vec![
            item("a", "shoes", 10),
            item("b", "bags", 10),
            low,
            sale,
            expired_sale,
            item("edge", "shoes", 5),
            item("s1", "shoes", 10),
            item("s2", "shoes", 0),
            item("b1", "bags", 10),
            item("g1", "toys", 10),
        ])
    }

    fn pop() -> PopularLists {
        popular(
            &["g1", "a"],
            &[("shoes", &["a", "s2", "s1"]), ("bags", &["b1", "b"])],
        )
    }

    fn block_at(age: Duration, items: &[&str]) -> Block<'static> {
        let u = leak(user("u1"));
        let c = leak(cart("u1", now() - age, items));
        let catalog = leak(shop());
        let popular = leak(pop());
        let facts = Facts {
            catalog,
            popular,
            now: now(),
        };
        cart_block(
            &u.user_id,
            Some(u),
            Some(c),
            &facts,
            &CartRules::default(),
            4,
        )
    }

    fn stage_at(age: Duration) -> (Option<Stage>, Option<Reason>) {
        let b = block_at(age, &["a", "b"]);
        (b.stage, b.reason)
    }

    #[test]
    fn stage_boundaries_follow_whole_days_since_the_last_change() {
        let day = Duration::days(1);
        let cases = [
            (Duration::zero(), None, Some(Reason::TooEarly)),
            (day - Duration::seconds(1), None, Some(Reason::TooEarly)),
            (day, Some(Stage::Reminder), None),
            (day * 2, Some(Stage::Reminder), None),
            (day * 3 - Duration::seconds(1), Some(Stage::Reminder), None),
            (day * 3, Some(Stage::SocialProof), None),
            (day * 4, Some(Stage::SocialProof), None),
            (day * 5, Some(Stage::Urgency), None),
            (day * 6, Some(Stage::Urgency), None),
            (day * 7, Some(Stage::Alternatives), None),
            (day * 30, Some(Stage::Alternatives), None),
        ];
        for (age, stage, reason) in cases {
            assert_eq!(stage_at(age), (stage, reason), "age {age}");
        }
    }

    #[test]
    fn a_cart_changed_in_the_future_is_too_early() {
        assert_eq!(stage_at(-Duration::days(2)), (None, Some(Reason::TooEarly)));
    }

    #[test]
    fn no_cart_or_an_empty_cart_is_not_eligible() {
        let u = user("u1");
        let (catalog, popular) = (shop(), pop());
        let facts = Facts {
            catalog: &catalog,
            popular: &popular,
            now: now(),
        };
        let rules = CartRules::default();
        let none = cart_block(&u.user_id, Some(&u), None, &facts, &rules, 4);
        assert!(!none.eligible);
        assert_eq!(none.reason, Some(Reason::CartEmpty));
        let empty = cart("u1", days_ago(2), &[]);
        let b = cart_block(&u.user_id, Some(&u), Some(&empty), &facts, &rules, 4);
        assert_eq!(b.reason, Some(Reason::CartEmpty));
        let vanished = cart("u1", days_ago(2), &["discontinued"]);
        let b = cart_block(&u.user_id, Some(&u), Some(&vanished), &facts, &rules, 4);
        assert_eq!(b.reason, Some(Reason::CartEmpty));
    }

    #[test]
    fn unknown_user_has_no_cart() {
        let (catalog, popular) = (shop(), pop());
        let facts = Facts {
            catalog: &catalog,
            popular: &popular,
            now: now(),
        };
        let ghost = uid("ghost");
        let b = cart_block(&ghost, None, None, &facts, &CartRules::default(), 4);
        assert_eq!((b.eligible, b.reason), (false, Some(Reason::CartEmpty)));
    }

    #[test]
    fn purchase_after_the_last_cart_change_is_not_eligible() {
        let c = cart("u1", days_ago(3), &["a"]);
        let rules = CartRules::default();
        let mut u = user("u1");
        u.last_purchase_at = Some(days_ago(1));
        assert_eq!(
            assess(Some(&u), Some(&c), now(), &rules),
            CartAssessment::NotEligible(Reason::Purchased)
        );
        u.last_purchase_at = Some(c.updated_at);
        assert_eq!(
            assess(Some(&u), Some(&c), now(), &rules),
            CartAssessment::NotEligible(Reason::Purchased)
        );
        u.last_purchase_at = Some(days_ago(4));
        assert_eq!(
            assess(Some(&u), Some(&c), now(), &rules),
            CartAssessment::Eligible {
                stage: Stage::SocialProof,
                days: 3
            }
        );
    }

    #[test]
    fn reminder_shows_the_cart_items_with_name_image_price() {
        let b = block_at(Duration::days(1), &["a", "b"]);
        assert!(b.eligible);
        assert_eq!(b.source, Some(ItemSource::Cart));
        assert_eq!(b.days, Some(1));
        assert_eq!(item_ids(&b), ["a", "b"]);
        let first = &b.items[0];
        assert_eq!(first.display_price, "₩10,000");
        assert_eq!(first.quantity, Some(1));
        assert!(!first.image_url.is_empty());
        assert_eq!(first.rating, None, "no rating field before social proof");
    }

    #[test]
    fn social_proof_adds_rating_reviews_and_a_snippet() {
        let b = block_at(Duration::days(3), &["a"]);
        let first = &b.items[0];
        assert_eq!(first.rating, Some(Some(4.5)));
        assert_eq!(first.review_count, Some(12));
        assert_eq!(
            first.review_snippet.clone().flatten().as_deref(),
            Some("좋아요")
        );
    }

    #[test]
    fn urgency_prefers_low_stock_then_discount_then_nudge() {
        let b = block_at(Duration::days(5), &["a", "low", "sale"]);
        assert_eq!(b.urgency, Some(UrgencyKind::LowStock));
        // what makes it urgent first (`items[0]` in a template), then the cart's order
        assert_eq!(item_ids(&b), ["low", "a", "sale"]);
        assert_eq!(b.items[0].low_stock, Some(true));
        assert_eq!(b.items[0].stock, Some(3));

        let b = block_at(Duration::days(6), &["a", "sale"]);
        assert_eq!(b.urgency, Some(UrgencyKind::Discount));
        assert_eq!(item_ids(&b), ["sale", "a"]);
        assert_eq!(b.items[0].discount_pct, Some(20));
        assert_eq!(b.items[0].display_sale_price.unwrap(), "₩8,000");

        let b = block_at(Duration::days(5), &["a", "old_sale"]);
        assert_eq!(b.urgency, Some(UrgencyKind::Nudge));
        assert!(b.items.iter().all(|i| i.discount_pct.is_none()));
    }

    #[test]
    fn low_stock_threshold_is_inclusive() {
        let b = block_at(Duration::days(5), &["edge"]);
        assert_eq!(b.items[0].low_stock, Some(true));
        assert_eq!(b.urgency, Some(UrgencyKind::LowStock));
    }

    #[test]
    fn alternatives_are_in_stock_items_from_the_cart_categories_not_the_cart() {
        let b = block_at(Duration::days(7), &["a", "b"]);
        assert_eq!(b.stage, Some(Stage::Alternatives));
        assert_eq!(item_ids(&b), ["s1", "b1", "g1"]);
        assert_eq!(b.source, Some(ItemSource::CategoryPopular));
        assert_eq!(b.items[2].source, ItemSource::Popular);
    }

    #[test]
    fn thresholds_are_configuration() {
        let rules = CartRules {
            reminder_from_days: 0,
            ..CartRules::default()
        };
        let c = cart("u1", now(), &["a"]);
        assert_eq!(
            assess(None, Some(&c), now(), &rules),
            CartAssessment::Eligible {
                stage: Stage::Reminder,
                days: 0
            }
        );
    }
}

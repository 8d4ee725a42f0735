//! The block rules of BRIEF §2, one module per block, and the registry that lists them.
//!
//! A block is one [`BlockRule`]: its name and `limit` bounds, what it does when the store
//! cannot be read, its assessment of the user's own records (eligibility and stage, before
//! any catalog read), its read plan as data ([`Reads`], asked again after every read so a
//! later read can depend on an earlier one), and the pure function that builds the answer
//! from what was read, the clock and the thresholds. The caller (the block service) runs one
//! generic loop over any rule and knows no stage. Adding a block is one module here plus one
//! line in [`registry!`](BlockKind).
//!
//! [`Reads`]: crate::rules::Reads

/// The abandoned-cart block: stages by days since the cart last changed.
pub mod cart;
/// The dormancy (win-back) block: stages by unanswered win-back messages.
pub mod dormancy;
/// The send-worthiness gate in front of every block: `min_score` against the user's score.
pub mod engagement;
/// The onboarding block: stages by whole days since sign-up until the first key action.
pub mod onboarding;
/// The recommendations block: the user's list, filtered, diversified, filled from popular lists.
pub mod recommendations;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod read_plan_tests;
#[cfg(test)]
pub(crate) mod test_support;

use crate::block::{Block, BlockItem, ItemSource, Reason, Stage};
use crate::config::{ItemLimits, RulesConfig};
use crate::ids::{ItemId, UserId};
use crate::model::{Catalog, Item, PopularList, PopularScope, User, UserData};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Defines [`BlockKind`] and the registry from one list: `Variant => "url-name", rule`.
macro_rules! registry {
    ($($variant:ident => $name:literal, $rule:expr;)+) => {
        /// The blocks we serve, one per URL segment (`/v1/users/{id}/{block}`) and one Lambda
        /// function each; every list of blocks (routes, errors, `serve`'s examples, the README
        /// table, `template.yaml`) derives from or is tested against [`BlockKind::ALL`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum BlockKind {
            $(
                #[doc = concat!("The `", $name, "` block.")]
                $variant,
            )+
        }

        impl BlockKind {
            /// Every block, in registry order.
            pub const ALL: [BlockKind; [$($name),+].len()] = [$(BlockKind::$variant),+];

            /// The block's name in URLs, JSON and configuration.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(BlockKind::$variant => $name,)+
                }
            }

            /// The block's rule.
            pub fn rule(self) -> &'static dyn BlockRule {
                match self {
                    $(BlockKind::$variant => &$rule,)+
                }
            }
        }
    };
}

registry! {
    Recommendations => "recommendations", recommendations::RecommendationsRule;
    Cart => "cart", cart::CartRule;
    Dormancy => "dormancy", dormancy::DormancyRule;
    Onboarding => "onboarding", onboarding::OnboardingRule;
}

impl BlockKind {
    /// The names of all blocks, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for BlockKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A block name that is not in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown block; known blocks: {}", BlockKind::names())]
pub struct UnknownBlock;

impl FromStr for BlockKind {
    type Err = UnknownBlock;
    fn from_str(s: &str) -> Result<Self, UnknownBlock> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownBlock)
    }
}

/// One request for one block, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct BlockRequest<'a> {
    /// Whose block.
    pub user_id: &'a UserId,
    /// The instant ages and expiries are judged against (an injected clock).
    pub now: DateTime<Utc>,
    /// The thresholds and content in force.
    pub rules: &'a RulesConfig,
    /// How many items the caller asked for, already within the block's [`ItemLimits`].
    pub limit: usize,
}

/// What a rule decides from the user's own records alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// Not eligible: the answer is this reason and nothing more is read.
    NotEligible(Reason),
    /// Eligible: read the rule's plan, then build.
    Eligible(Eligible),
}

/// Where a user is in a staged journey (cart age, dormancy, days since sign-up): the stage
/// and the whole days it was judged by, or why there is no block. Each staged block's
/// `assess` returns one; it becomes the rule's [`Assessment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageAssessment {
    /// No block, for this reason.
    NotEligible(Reason),
    /// A block in this stage.
    Eligible {
        /// The stage.
        stage: Stage,
        /// Whole days the stage was judged by.
        days: i64,
    },
}

impl From<StageAssessment> for Assessment {
    fn from(a: StageAssessment) -> Self {
        match a {
            StageAssessment::NotEligible(reason) => Assessment::NotEligible(reason),
            StageAssessment::Eligible { stage, days } => Assessment::Eligible(Eligible {
                stage: Some(stage),
                days: Some(days),
            }),
        }
    }
}

/// An eligible block's stage, when the user's records decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligible {
    /// `None` when the stage depends on the items found (recommendations).
    pub stage: Option<Stage>,
    /// Whole days the stage was judged by, where days decide it.
    pub days: Option<i64>,
}

/// What a block does when the user's records cannot be read (the store is down, slow or
/// throttling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnreadable {
    /// Not eligible with reason `unavailable` (marked `degraded`): a template aborts rather
    /// than send content that may be wrong (a cart already bought, an active user won back).
    NotEligible,
    /// Carry on as for an unknown user and mark the answer `degraded`.
    TreatAsUnknownUser,
}

/// One step of a read plan: popular lists and catalog items to fetch, all at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reads {
    /// Popular lists, global or per category.
    pub popular: Vec<PopularScope>,
    /// Catalog items.
    pub items: Vec<ItemId>,
}

impl Reads {
    /// Nothing to read.
    pub fn is_empty(&self) -> bool {
        self.popular.is_empty() && self.items.is_empty()
    }
}

/// Everything read for one request so far: the user's records, then whatever the rule's
/// plan asked for. Remembers what was asked (found or not), so nothing is asked twice.
#[derive(Debug, Clone, Default)]
pub struct BlockData {
    /// The user's profile, list and cart (shared with the cache that read them).
    pub user: Arc<UserData>,
    /// The catalog items found.
    pub catalog: Catalog,
    /// The popular lists found.
    pub popular: PopularLists,
    /// Items asked for and not found (those found are in `catalog`).
    absent: Vec<ItemId>,
    asked_scopes: Vec<PopularScope>,
}

impl BlockData {
    /// Starts from the user's records.
    pub fn new(user: Arc<UserData>) -> Self {
        Self {
            user,
            ..Self::default()
        }
    }

    /// The part of `wanted` not asked for yet, without duplicates, in first-seen order.
    pub fn unread(&self, mut wanted: Reads) -> Reads {
        let mut seen = 0;
        for i in 0..wanted.popular.len() {
            let scope = &wanted.popular[i];
            if !self.asked_scopes.contains(scope) && !wanted.popular[..seen].contains(scope) {
                wanted.popular.swap(seen, i);
                seen += 1;
            }
        }
        wanted.popular.truncate(seen);
        // Ids: a small plan is deduplicated in place (no set to build); a long one by a set
        // of borrowed ids (no id cloned).
        if wanted.items.len() > 16 {
            let keep: Vec<bool> = {
                let mut set = HashSet::with_capacity_and_hasher(
                    wanted.items.len(),
                    crate::IdHasher::default(),
                );
                wanted
                    .items
                    .iter()
                    .map(|id| !self.was_asked(id) && set.insert(id))
                    .collect()
            };
            let mut keep = keep.into_iter();
            wanted.items.retain(|_| keep.next().unwrap_or(false));
            return wanted;
        }
        let mut seen = 0;
        for i in 0..wanted.items.len() {
            let id = &wanted.items[i];
            if !self.was_asked(id) && !wanted.items[..seen].contains(id) {
                wanted.items.swap(seen, i);
                seen += 1;
            }
        }
        wanted.items.truncate(seen);
        wanted
    }

    /// Records the answers to `asked`: the lists and items found (absent ones stay absent).
    pub fn record(
        &mut self,
        asked: Reads,
        lists: impl IntoIterator<Item = Arc<PopularList>>,
        items: Catalog,
    ) {
        self.asked_scopes.extend(asked.popular);
        for list in lists {
            self.popular.insert(list);
        }
        self.absent
            .extend(asked.items.into_iter().filter(|id| !items.contains_key(id)));
        if self.catalog.is_empty() {
            self.catalog = items;
        } else {
            self.catalog.extend(items);
        }
    }

    /// How many items have been asked for so far (found or not).
    pub fn items_asked(&self) -> usize {
        self.catalog.len() + self.absent.len()
    }

    /// The item if `id` was asked for: `Some(None)` when it was and is not in the catalog;
    /// `None` when it was not asked for.
    pub fn found(&self, id: &ItemId) -> Option<Option<&Item>> {
        match self.catalog.get(id) {
            Some(item) => Some(Some(item)),
            None => self.absent.contains(id).then_some(None),
        }
    }

    /// Whether `id` has been asked for (found or not).
    pub fn was_asked(&self, id: &ItemId) -> bool {
        self.catalog.contains_key(id) || self.absent.contains(id)
    }

    /// Whether the global list and those of `categories` have all been asked for.
    pub fn has_asked_scopes_of<'a>(&self, categories: impl IntoIterator<Item = &'a str>) -> bool {
        self.asked_scopes.contains(&PopularScope::Global)
            && categories.into_iter().all(|c| {
                self.asked_scopes
                    .iter()
                    .any(|s| matches!(s, PopularScope::Category(x) if x == c))
            })
    }

    /// Whether every one of `ids` has been asked for.
    pub fn has_asked_items<'a>(&self, ids: impl IntoIterator<Item = &'a ItemId>) -> bool {
        ids.into_iter().all(|i| self.was_asked(i))
    }

    /// The facts the rule functions read.
    pub fn facts(&self, now: DateTime<Utc>) -> Facts<'_, Catalog> {
        Facts {
            catalog: &self.catalog,
            popular: &self.popular,
            now,
        }
    }
}

/// A block: how it is assessed, what it reads and how it is built. Implementations are
/// pure (no I/O, no clock) and stateless; one static instance each sits in the registry.
pub trait BlockRule: Send + Sync + 'static {
    /// Which block this is.
    fn kind(&self) -> BlockKind;

    /// The bounds of `limit` for this block, from its own rules.
    fn limits(&self, rules: &RulesConfig) -> ItemLimits;

    /// What to answer when the user's records cannot be read.
    fn on_unreadable(&self) -> OnUnreadable {
        OnUnreadable::NotEligible
    }

    /// Eligibility and stage from the user's own records, before any catalog read.
    fn assess(&self, request: &BlockRequest<'_>, user: &UserData) -> Assessment;

    /// Everything the block needs given what has been read so far; the caller fetches what
    /// was not asked yet and asks again, until nothing new is needed.
    fn reads(&self, request: &BlockRequest<'_>, eligible: Eligible, data: &BlockData) -> Reads;

    /// The answer, from what was read; it borrows the request and the data.
    fn build<'a>(
        &self,
        request: &BlockRequest<'a>,
        eligible: Eligible,
        data: &'a BlockData,
    ) -> Block<'a>;
}

/// The share of offered candidates the filters refuse, assumed until a few were seen.
const PRIOR_REFUSED_SHARE: f64 = 0.25;

/// Reads only what can be shown. Walks a block's candidates in the order it offers them
/// (`order`: its own lists, then popular lists) over what has been read, offering each read
/// one to `candidates`, and stops at the first unread candidate: if `decided` says the picks
/// so far settle the answer whatever follows, nothing more is read. Else it asks for the
/// next unread candidates: as many as the open slots need at the refusal rate seen so far
/// (sold out, bought, repeated; a prior until four were seen), plus one, and never fewer
/// than were read before (a long run of refusals takes a few steps, not one per item). The
/// popular lists (the global one and those of `categories`, unless read already) come only
/// once what is known cannot fill that batch; a list read with its items
/// ([`PopularList::resolved`]) needs no item read at all. Every block's `reads` is this walk
/// over its own order; its `build` offers the same order, so the answer is the one reading
/// everything would give.
pub(crate) fn walk_reads<'a, S: AsRef<str>>(
    data: &'a BlockData,
    candidates: &mut Candidates<'a, Catalog>,
    order: impl IntoIterator<Item = Offer<'a>>,
    limit: usize,
    mut decided: impl FnMut(&[(&'a Item, ItemSource)]) -> bool,
    categories: &[S],
) -> Reads {
    let lists_read = data.has_asked_scopes_of(categories.iter().map(AsRef::as_ref));
    let (mut offered, mut refused) = (0usize, 0usize);
    let mut next: Vec<ItemId> = Vec::new();
    let mut batch = 0;
    for offer in order {
        if batch == 0 {
            if let Some(found) = offer.known.or_else(|| data.found(offer.id)) {
                offered += 1;
                if !candidates.offer_found(offer.id, found, offer.source) {
                    refused += 1;
                } else if decided(&candidates.picked) {
                    // (what follows cannot change the answer: nothing more to read)
                    return Reads::default();
                }
                continue;
            }
            // The first unread candidate: is the answer decided before it?
            if decided(&candidates.picked) {
                return Reads::default();
            }
            let share = if offered >= 4 {
                (refused as f64 / offered as f64).min(0.9)
            } else {
                PRIOR_REFUSED_SHARE
            };
            let open = limit.saturating_sub(candidates.len()).max(1);
            batch = ((open as f64 / (1.0 - share)).ceil() as usize + 1).max(data.items_asked());
            next.reserve_exact(batch);
        }
        if offer.known.is_none() && !data.was_asked(offer.id) && !next.contains(offer.id) {
            next.push(offer.id.clone());
            if next.len() == batch {
                break;
            }
        }
    }
    if next.is_empty() && (lists_read || decided(&candidates.picked)) {
        // Everything known was walked: decided, or nothing more to offer.
        return Reads::default();
    }
    // The batch could not be filled from what is known: the popular lists come next.
    let popular = if lists_read || (batch > 0 && next.len() == batch) {
        Vec::new()
    } else {
        scopes_with_global(categories)
    };
    Reads {
        popular,
        items: next,
    }
}

/// The [`walk_reads`] test of blocks without diversity: `limit` items picked.
pub(crate) fn at_least(limit: usize) -> impl Fn(&[(&Item, ItemSource)]) -> bool {
    move |picked| picked.len() >= limit
}

/// One candidate of a block's offer order: its id, where it is offered from, and its item
/// when the order carries it (a popular list read with its items), else looked up in what
/// the request read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer<'a> {
    /// The item's id.
    pub id: &'a ItemId,
    /// Where it is offered from.
    pub source: ItemSource,
    /// `Some(found)`: the item as read with its list (`None`: not in the catalog); `None`:
    /// look it up in the request's catalog.
    pub known: Option<Option<&'a Item>>,
}

/// The popular lists of `categories`, then the global list: the fallback stretch of a
/// block's offer order.
pub(crate) fn popular_order<'a, S: AsRef<str>>(
    popular: &'a PopularLists,
    categories: &'a [S],
) -> impl Iterator<Item = Offer<'a>> {
    categories
        .iter()
        .flat_map(|c| popular.category_offers(c.as_ref()))
        .chain(popular.global_offers())
}

/// An [`Offer`] for each id of `list`: one stretch of a block's offer order.
pub(crate) fn offered_as(list: &[ItemId], source: ItemSource) -> impl Iterator<Item = Offer<'_>> {
    list.iter().map(move |id| Offer {
        id,
        source,
        known: None,
    })
}

/// An [`Offer`] for each id of a popular list (none when absent), with its item when the
/// list was read with its items.
pub(crate) fn offered_from(
    list: Option<&Arc<PopularList>>,
    source: ItemSource,
) -> impl Iterator<Item = Offer<'_>> {
    let ids = list.map(|l| l.items.as_slice()).unwrap_or_default();
    let resolved = list.and_then(|l| l.resolved());
    ids.iter().enumerate().map(move |(i, id)| Offer {
        id,
        source,
        known: resolved.map(|found| found[i].as_deref()),
    })
}

/// The global list and those of `categories`, in that order.
pub fn scopes_with_global<S: AsRef<str>>(
    categories: impl IntoIterator<Item = S>,
) -> Vec<PopularScope> {
    std::iter::once(PopularScope::Global)
        .chain(
            categories
                .into_iter()
                .map(|c| PopularScope::category(c.as_ref())),
        )
        .collect()
}

/// Read access to the catalog items the caller fetched for this request.
pub trait CatalogView {
    /// The item, if it was found.
    fn item(&self, id: &ItemId) -> Option<&Item>;
}

impl CatalogView for Catalog {
    fn item(&self, id: &ItemId) -> Option<&Item> {
        self.get(id).map(|item| item.as_ref())
    }
}

impl CatalogView for HashMap<ItemId, Item> {
    fn item(&self, id: &ItemId) -> Option<&Item> {
        self.get(id)
    }
}

/// The popular lists the caller fetched for this request.
/// A request reads the global list and a few categories' (at most
/// [`recommendations::MAX_FALLBACK_CATEGORIES`] plus a cart's), so the category lists are a
/// short vector searched by name, not a map; the lists are shared with the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PopularLists {
    /// The global list, if read and present.
    pub global: Option<Arc<PopularList>>,
    /// Category lists read and present, in the order read.
    pub by_category: Vec<Arc<PopularList>>,
}

impl PopularLists {
    /// Indexes lists by scope.
    pub fn from_lists(lists: impl IntoIterator<Item = Arc<PopularList>>) -> Self {
        let mut out = Self::default();
        for list in lists {
            out.insert(list);
        }
        out
    }

    /// Adds or replaces the list of `list.scope`.
    pub fn insert(&mut self, list: Arc<PopularList>) {
        match &list.scope {
            PopularScope::Global => self.global = Some(list),
            PopularScope::Category(c) => match self
                .by_category
                .iter_mut()
                .find(|l| matches!(&l.scope, PopularScope::Category(x) if x == c))
            {
                Some(slot) => *slot = list,
                None => self.by_category.push(list),
            },
        }
    }

    /// A category's list, if read and present.
    pub fn category_list(&self, name: &str) -> Option<&Arc<PopularList>> {
        self.by_category
            .iter()
            .find(|l| matches!(&l.scope, PopularScope::Category(c) if c == name))
    }

    /// A category's list as a stretch of an offer order (nothing when absent).
    pub(crate) fn category_offers(&self, name: &str) -> impl Iterator<Item = Offer<'_>> {
        offered_from(self.category_list(name), ItemSource::CategoryPopular)
    }

    /// The global list as a stretch of an offer order (nothing when absent).
    pub(crate) fn global_offers(&self) -> impl Iterator<Item = Offer<'_>> {
        offered_from(self.global.as_ref(), ItemSource::Popular)
    }
}

/// What every rule reads besides the user's own records: the catalog items and popular lists
/// the caller fetched, and the instant to judge ages and expiries against.
pub struct Facts<'a, C: CatalogView> {
    /// Catalog items found.
    pub catalog: &'a C,
    /// Popular lists found.
    pub popular: &'a PopularLists,
    /// The instant to judge against.
    pub now: DateTime<Utc>,
}

/// Collects candidate items in order of preference, dropping duplicates, unknown items, items
/// out of stock and items the user already bought.
///
/// A block shows a handful of items and offers a few dozen: the exclusions and the picks are
/// short vectors searched in place, not hash sets built per request.
pub(crate) struct Candidates<'a, C: CatalogView> {
    catalog: &'a C,
    user: Option<&'a User>,
    exclude: Vec<&'a ItemId>,
    /// [`Candidates::offer_each`] stops once this many are picked.
    enough: usize,
    /// One bit (of 128, from the id's word) per picked id: an id whose bit is clear is not
    /// among the picks, without searching them.
    picked_bits: u128,
    /// Accepted items with the source each was offered from, in offer order.
    pub picked: Vec<(&'a Item, ItemSource)>,
}

impl<'a, C: CatalogView> Candidates<'a, C> {
    /// An empty collector over `catalog`; items `user` bought are refused (none when `None`).
    pub fn new(catalog: &'a C, user: Option<&'a User>) -> Self {
        Self {
            catalog,
            user,
            exclude: Vec::new(),
            enough: usize::MAX,
            picked_bits: 0,
            picked: Vec::with_capacity(16),
        }
    }

    /// Only the first `limit` picks count (a block that shows the first `limit` in offer
    /// order): [`Candidates::offer_each`] stops offering once they are picked.
    pub fn taking(mut self, limit: usize) -> Self {
        self.enough = limit;
        self
    }

    /// Never offer these (e.g. the items already in the cart).
    pub fn excluding(mut self, ids: impl IntoIterator<Item = &'a ItemId>) -> Self {
        self.exclude.extend(ids);
        self
    }

    /// Offers each candidate in order, as [`Candidates::offer_known`] does, until the picks
    /// are enough ([`Candidates::taking`]).
    pub fn offer_each(&mut self, offers: impl IntoIterator<Item = Offer<'a>>) {
        for offer in offers {
            if self.picked.len() >= self.enough {
                return;
            }
            self.offer_known(offer);
        }
    }

    /// Offers each id in order, as [`Candidates::offer_known`] does.
    pub fn offer_all(&mut self, ids: &'a [ItemId], source: ItemSource) {
        self.offer_each(offered_as(ids, source));
    }

    /// Offers one candidate of an offer order: its own item if it carries one, else the
    /// catalog's.
    pub fn offer_known(&mut self, offer: Offer<'a>) -> bool {
        let found = match offer.known {
            Some(found) => found,
            None => self.catalog.item(offer.id),
        };
        self.offer_found(offer.id, found, offer.source)
    }

    /// Picks the item unless excluded, picked already, unknown (`found` is `None`: not in the
    /// catalog), out of stock or bought by the user; whether it was picked.
    pub fn offer_found(
        &mut self,
        id: &'a ItemId,
        found: Option<&'a Item>,
        source: ItemSource,
    ) -> bool {
        let Some(item) = found else {
            return false;
        };
        // The same id may come as two reads of one item (the catalog's and a popular
        // list's): picks are told apart by id, and only searched when the id's bit is set.
        let bit = 1u128 << (item.item_id.word().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57);
        if (self.picked_bits & bit != 0
            && self
                .picked
                .iter()
                .any(|(picked, _)| std::ptr::eq(*picked, item) || picked.item_id == item.item_id))
            || self.exclude.contains(&id)
        {
            return false;
        }
        if !item.in_stock() || self.user.is_some_and(|u| u.has_purchased(id)) {
            return false;
        }
        self.picked_bits |= bit;
        self.picked.push((item, source));
        true
    }

    /// Number of items picked so far.
    pub fn len(&self) -> usize {
        self.picked.len()
    }

    /// The first `limit` picked items as block items, in offer order.
    pub fn into_items(self, limit: usize) -> Vec<BlockItem<'a>> {
        self.picked
            .into_iter()
            .take(limit)
            .map(|(item, source)| BlockItem::from_item(item, source))
            .collect()
    }
}

//! The block rules of BRIEF §2, one module per block. Each rule takes the data it needs as
//! plain values (already read by the caller) plus `now`, and returns a [`Block`](crate::Block).

pub mod cart;
pub mod dormancy;
pub mod recommendations;

#[cfg(test)]
pub(crate) mod test_support;

use crate::block::{BlockItem, ItemSource};
use crate::ids::ItemId;
use crate::model::{Item, PopularList, PopularScope, User};
use std::collections::{HashMap, HashSet};

/// Read access to the catalog items the caller fetched for this request.
pub trait CatalogView {
    fn item(&self, id: &ItemId) -> Option<&Item>;
}

impl CatalogView for HashMap<ItemId, Item> {
    fn item(&self, id: &ItemId) -> Option<&Item> {
        self.get(id)
    }
}

/// The popular lists the caller fetched for this request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PopularLists {
    pub global: Option<PopularList>,
    pub by_category: HashMap<String, PopularList>,
}

impl PopularLists {
    pub fn from_lists(lists: impl IntoIterator<Item = PopularList>) -> Self {
        let mut out = Self::default();
        for list in lists {
            match &list.scope {
                PopularScope::Global => out.global = Some(list),
                PopularScope::Category(c) => {
                    out.by_category.insert(c.clone(), list);
                }
            }
        }
        out
    }

    pub fn category(&self, name: &str) -> &[ItemId] {
        self.by_category
            .get(name)
            .map(|l| l.items.as_slice())
            .unwrap_or_default()
    }

    pub fn global(&self) -> &[ItemId] {
        self.global
            .as_ref()
            .map(|l| l.items.as_slice())
            .unwrap_or_default()
    }

    /// Every item id on any list, for the caller's batch fetch.
    pub fn all_item_ids(&self) -> impl Iterator<Item = &ItemId> {
        self.global
            .iter()
            .chain(self.by_category.values())
            .flat_map(|l| l.items.iter())
    }
}

/// What every rule reads besides the user's own records: the catalog items and popular lists
/// the caller fetched, and the instant to judge ages and expiries against.
pub struct Facts<'a, C: CatalogView> {
    pub catalog: &'a C,
    pub popular: &'a PopularLists,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Collects candidate items in order of preference, dropping duplicates, unknown items, items
/// out of stock and items the user already bought.
pub(crate) struct Candidates<'a, C: CatalogView> {
    catalog: &'a C,
    user: Option<&'a User>,
    exclude: HashSet<&'a ItemId>,
    seen: HashSet<&'a ItemId>,
    pub picked: Vec<(&'a Item, ItemSource)>,
}

impl<'a, C: CatalogView> Candidates<'a, C> {
    pub fn new(catalog: &'a C, user: Option<&'a User>) -> Self {
        Self {
            catalog,
            user,
            exclude: HashSet::new(),
            seen: HashSet::new(),
            picked: Vec::new(),
        }
    }

    /// Never offer these (e.g. the items already in the cart).
    pub fn excluding(mut self, ids: impl IntoIterator<Item = &'a ItemId>) -> Self {
        self.exclude.extend(ids);
        self
    }

    pub fn offer_all(&mut self, ids: &'a [ItemId], source: ItemSource) {
        for id in ids {
            self.offer(id, source);
        }
    }

    pub fn offer(&mut self, id: &'a ItemId, source: ItemSource) {
        if self.exclude.contains(id) || self.seen.contains(id) {
            return;
        }
        let Some(item) = self.catalog.item(id) else {
            return;
        };
        if !item.in_stock() || self.user.is_some_and(|u| u.has_purchased(id)) {
            return;
        }
        self.seen.insert(id);
        self.picked.push((item, source));
    }

    pub fn len(&self) -> usize {
        self.picked.len()
    }

    pub fn into_items(self, limit: usize) -> Vec<BlockItem> {
        self.picked
            .into_iter()
            .take(limit)
            .map(|(item, source)| BlockItem::from_item(item, source))
            .collect()
    }
}

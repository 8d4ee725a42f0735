//! Assembles a block: reads exactly the data its stage needs from the store (through the
//! cache), then hands it to the pure domain rules.

use futures::future::try_join_all;
use sendtime_domain::rules::{cart, dormancy, recommendations, Facts, PopularLists};
use sendtime_domain::{
    Block, BlockKind, Clock, Item, ItemId, PopularScope, RulesConfig, Stage, UserId,
};
use sendtime_store::{BlockStore, StoreError, UserData};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Distinct ids in first-seen order. Collected before any `.await` so no borrowing iterator
/// lives across one (that would make the handler future non-`Send`).
fn distinct<'a>(ids: impl IntoIterator<Item = &'a ItemId>) -> Vec<ItemId> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(*id))
        .cloned()
        .collect()
}

/// The head of every popular list: the ids worth fetching for a fallback.
fn popular_heads(popular: &PopularLists, per_list: usize) -> impl Iterator<Item = &ItemId> {
    popular
        .global
        .iter()
        .chain(popular.by_category.values())
        .flat_map(move |l| l.items.iter().take(per_list))
}

/// Ids taken from one list for the catalog read: enough to survive the filters, bounded so a
/// long list cannot blow up the `BatchGetItem`.
fn take_per_list(limit: usize) -> usize {
    (limit * 3).max(20)
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the store could not be read")]
    Store(#[from] StoreError),
    #[error("no answer within the request budget of {0:?}")]
    Deadline(Duration),
}

pub struct BlockService {
    store: Arc<dyn BlockStore>,
    rules: RulesConfig,
    clock: Arc<dyn Clock>,
    deadline: Option<Duration>,
}

impl BlockService {
    pub fn new(store: Arc<dyn BlockStore>, rules: RulesConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            rules,
            clock,
            deadline: None,
        }
    }

    /// Answers every request within `budget`: past it the request fails with
    /// [`ServiceError::Deadline`] instead of hanging on a slow store (Braze gives up at 2 s).
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some(budget);
        self
    }

    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    pub async fn block(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Block, ServiceError> {
        match self.deadline {
            Some(budget) => tokio::time::timeout(budget, self.assemble(kind, user_id, limit))
                .await
                .map_err(|_| ServiceError::Deadline(budget))?,
            None => self.assemble(kind, user_id, limit).await,
        }
    }

    async fn assemble(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Block, ServiceError> {
        match kind {
            BlockKind::Recommendations => self.recommendations(user_id, limit).await,
            BlockKind::Cart => self.cart(user_id, limit).await,
            BlockKind::Dormancy => self.dormancy(user_id, limit).await,
        }
    }

    async fn popular(&self, scopes: Vec<PopularScope>) -> Result<PopularLists, StoreError> {
        let lists = try_join_all(scopes.iter().map(|s| self.store.popular(s))).await?;
        Ok(PopularLists::from_lists(lists.into_iter().flatten()))
    }

    async fn items(&self, wanted: Vec<ItemId>) -> Result<HashMap<ItemId, Item>, StoreError> {
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.items(&wanted).await
    }

    async fn recommendations(&self, user_id: &UserId, limit: usize) -> Result<Block, ServiceError> {
        // Without the user's data we can still send popular items: a degraded block beats
        // none at send time.
        let (data, degraded) = match self.store.user_data(user_id).await {
            Ok(data) => (data, false),
            Err(e) => {
                tracing::warn!(error = %e, kind = e.kind(), "user data unavailable, serving popular fallback");
                (UserData::default(), true)
            }
        };
        let profile = data.profile.as_ref();
        let scopes = std::iter::once(PopularScope::Global)
            .chain(
                recommendations::fallback_categories(profile)
                    .into_iter()
                    .map(PopularScope::Category),
            )
            .collect();
        let popular = self.popular(scopes).await?;
        let per_list = take_per_list(limit);
        let personal = data
            .recs
            .as_ref()
            .map(|r| r.items.iter().take(per_list * 2))
            .into_iter()
            .flatten();
        let from_popular = popular_heads(&popular, per_list);
        let catalog = self.items(distinct(personal.chain(from_popular))).await?;
        let facts = Facts {
            catalog: &catalog,
            popular: &popular,
            now: self.clock.now(),
        };
        let mut block = recommendations::recommendations(
            user_id,
            profile,
            data.recs.as_ref(),
            &facts,
            &self.rules.recommendations,
            limit,
        );
        block.degraded = degraded;
        Ok(block)
    }

    async fn cart(&self, user_id: &UserId, limit: usize) -> Result<Block, ServiceError> {
        let data = self.store.user_data(user_id).await?;
        let now = self.clock.now();
        let profile = data.profile.as_ref();
        let cart = data.cart.as_ref();
        let (catalog, popular) = match (cart::assess(profile, cart, now, &self.rules.cart), cart) {
            (cart::CartAssessment::Eligible { stage, .. }, Some(cart)) => {
                self.cart_facts(cart, stage, limit).await?
            }
            _ => (HashMap::new(), PopularLists::default()),
        };
        let facts = Facts {
            catalog: &catalog,
            popular: &popular,
            now,
        };
        Ok(cart::cart_block(
            user_id,
            profile,
            cart,
            &facts,
            &self.rules.cart,
            limit,
        ))
    }

    /// What an eligible cart's stage needs: its items, and for `alternatives` the popular
    /// lists of its categories with their items.
    async fn cart_facts(
        &self,
        cart: &sendtime_domain::Cart,
        stage: Stage,
        limit: usize,
    ) -> Result<(HashMap<ItemId, Item>, PopularLists), StoreError> {
        let mut catalog = self
            .items(distinct(cart.lines.iter().map(|l| &l.item_id)))
            .await?;
        if stage != Stage::Alternatives {
            return Ok((catalog, PopularLists::default()));
        }
        let scopes = std::iter::once(PopularScope::Global)
            .chain(
                cart::cart_categories(cart, &catalog)
                    .into_iter()
                    .map(PopularScope::Category),
            )
            .collect();
        let popular = self.popular(scopes).await?;
        let ids = distinct(
            popular_heads(&popular, take_per_list(limit)).filter(|id| !catalog.contains_key(*id)),
        );
        catalog.extend(self.items(ids).await?);
        Ok((catalog, popular))
    }

    async fn dormancy(&self, user_id: &UserId, limit: usize) -> Result<Block, ServiceError> {
        let data = self.store.user_data(user_id).await?;
        let now = self.clock.now();
        let profile = data.profile.as_ref();
        let rules = &self.rules.dormancy;
        let (catalog, popular) = match (dormancy::assess(profile, now, rules), profile) {
            (dormancy::DormancyAssessment::Eligible { stage, .. }, Some(user))
                if stage != Stage::Feedback =>
            {
                let mut scopes = vec![PopularScope::Global];
                if let Some(c) = dormancy::offer_category(user) {
                    scopes.push(PopularScope::Category(c));
                }
                let popular = self.popular(scopes).await?;
                let per_list = take_per_list(limit);
                let history = (stage == Stage::LastInterest)
                    .then(|| user.recent_views.iter().chain(user.purchased_items.iter()))
                    .into_iter()
                    .flatten()
                    .take(per_list * 2);
                let listed = popular_heads(&popular, per_list);
                let catalog = self.items(distinct(history.chain(listed))).await?;
                (catalog, popular)
            }
            _ => (HashMap::new(), PopularLists::default()),
        };
        let facts = Facts {
            catalog: &catalog,
            popular: &popular,
            now,
        };
        Ok(dormancy::dormancy_block(
            user_id, profile, &facts, rules, limit,
        ))
    }
}

//! Assembles a block: reads the user's records, lets the block's rule assess them, fetches
//! what the rule's read plan asks for (step by step, each step's reads in parallel) and hands
//! everything to the rule to build the answer. One loop for every block; no stage knowledge.

use futures::future::{try_join, try_join_all};
use sendtime_domain::rules::{Assessment, BlockData, BlockRequest, OnUnreadable, Reads};
use sendtime_domain::{
    Block, BlockKind, BlockRule, Catalog, Clock, PopularList, RulesConfig, UserId,
};
use sendtime_store::metrics::record_store_error;
use sendtime_store::{BlockStore, StoreError, UserData};
use std::sync::Arc;
use std::time::Duration;

/// More read steps than any rule needs (the cart's alternatives take three); a rule that
/// keeps asking for new data past it is cut off and built from what was read.
const MAX_READ_STEPS: usize = 6;

/// Why a block could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed and the block has no fallback for it.
    #[error("the store could not be read")]
    Store(#[from] StoreError),
    /// The request budget ran out.
    #[error("no answer within the request budget of {0:?}")]
    Deadline(Duration),
}

/// Reads the store and applies a block's rule; shared by every entry point.
pub struct BlockService {
    store: Arc<dyn BlockStore>,
    rules: RulesConfig,
    clock: Arc<dyn Clock>,
    deadline: Option<Duration>,
}

impl BlockService {
    /// A service over `store` with these rules and this clock, without a deadline.
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

    /// The rules in force.
    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// The block `kind` for `user_id` with at most `limit` items, sealed (positions and
    /// `rec_id` set).
    pub async fn block(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Block, ServiceError> {
        let assemble = self.assemble(kind.rule(), user_id, limit);
        let block = match self.deadline {
            Some(budget) => tokio::time::timeout(budget, assemble)
                .await
                .map_err(|_| ServiceError::Deadline(budget))??,
            None => assemble.await?,
        };
        Ok(block.sealed())
    }

    async fn assemble(
        &self,
        rule: &dyn BlockRule,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Block, ServiceError> {
        let request = BlockRequest {
            user_id,
            now: self.clock.now(),
            rules: &self.rules,
            limit,
        };
        let (user, degraded) = match self.store.user_data(user_id).await {
            Ok(user) => (user, false),
            Err(e) => {
                record_store_error();
                match rule.on_unreadable() {
                    OnUnreadable::Fail => return Err(e.into()),
                    OnUnreadable::TreatAsUnknownUser => {
                        tracing::warn!(error = %e, kind = e.kind(), block = %rule.kind(), "user data unavailable, serving the block's fallback");
                        (Arc::new(UserData::default()), true)
                    }
                }
            }
        };
        let eligible = match rule.assess(&request, &user) {
            Assessment::NotEligible(reason) => {
                return Ok(Block::not_eligible(user_id.clone(), rule.kind(), reason));
            }
            Assessment::Eligible(eligible) => eligible,
        };
        let mut data = BlockData::new(user);
        let mut steps = 0;
        loop {
            let reads = data.unread(rule.reads(&request, eligible, &data));
            if reads.is_empty() {
                break;
            }
            if steps == MAX_READ_STEPS {
                // A rule bug, not a store problem: answer from what was read, and say so.
                tracing::warn!(block = %rule.kind(), steps, "read plan cut off; building from partial data");
                debug_assert!(false, "{} read plan did not settle", rule.kind());
                break;
            }
            let (lists, items) = self
                .fetch(&reads)
                .await
                .inspect_err(|_| record_store_error())?;
            data.record(reads, lists, items);
            steps += 1;
        }
        let mut block = rule.build(&request, eligible, &data);
        block.degraded = degraded;
        Ok(block)
    }

    /// One read step: its popular lists and its items, concurrently.
    async fn fetch(&self, reads: &Reads) -> Result<(Vec<Arc<PopularList>>, Catalog), StoreError> {
        let lists = try_join_all(reads.popular.iter().map(|s| self.store.popular(s)));
        let items = async {
            if reads.items.is_empty() {
                Ok(Catalog::new())
            } else {
                self.store.items(&reads.items).await
            }
        };
        let (lists, items) = try_join(lists, items).await?;
        Ok((lists.into_iter().flatten().collect(), items))
    }
}

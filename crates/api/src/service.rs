//! Assembles a block: reads the user's records, lets the block's rule assess them, fetches
//! what the rule's read plan asks for (step by step, each step's reads in parallel) and hands
//! everything to the rule to build the answer. One loop for every block; no stage knowledge.
//!
//! The answer is serialised once, straight from the borrowed data, and kept in a bounded
//! cache of answers (Braze renders one email's HTML, text and AMP parts with the same call):
//! keyed by user, block, limit and the day the stages are computed for, and valid only while
//! the store would hand out the very user records it was built from — until their cache
//! entry expires (the store's lease) and unless the store's user records were invalidated
//! since — so a data change is never hidden by an older answer. A repeat call is one lookup:
//! no store read at all.

use bytes::Bytes;
use chrono::Datelike;
use futures::future::{try_join, try_join_all};
use sendtime_domain::block::{BlockSummary, EncodedBlock};
use sendtime_domain::rules::{Assessment, BlockData, BlockRequest, OnUnreadable, Reads};
use sendtime_domain::{
    Block, BlockKind, BlockRule, Catalog, Clock, PopularList, RulesConfig, UserId,
};
use sendtime_store::metrics::record_store_error;
use sendtime_store::{BlockStore, CacheConfig, StoreError, UserData};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// More read steps than any rule needs (the cart's alternatives take three; recommendations
/// read in growing batches, whole lists of sold-out items by the sixth); a rule that keeps
/// asking for new data past it is cut off and built from what was read.
const MAX_READ_STEPS: usize = 8;

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

/// A block as sent: its JSON (shared bytes, cheap to clone) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The JSON object, `rec_id` first.
    pub json: Bytes,
    /// Block, eligibility, stage, source, `degraded`, `rec_id`.
    pub summary: BlockSummary,
    /// Whether it came from the answer cache.
    pub cache: AnswerCacheUse,
}

impl Answer {
    fn new(encoded: EncodedBlock, cache: AnswerCacheUse) -> Self {
        Self {
            json: Bytes::from(encoded.json),
            summary: encoded.summary,
            cache,
        }
    }

    /// The JSON as a value (tests, examples).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or_default()
    }
}

/// What the answer cache did for a request; the request log says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerCacheUse {
    /// Served from the cache.
    Hit,
    /// Assembled (and cached unless degraded).
    Miss,
    /// The answer cache is off.
    Off,
}

impl AnswerCacheUse {
    /// `hit`, `miss` or `off`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Off => "off",
        }
    }
}

/// Everything that shapes an answer besides the data: user, block, limit, and the day the
/// stages are computed for (days since the cart changed, since sign-up…).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AnswerKey {
    user: UserId,
    shape: AnswerShape,
}

/// The key's parts besides the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AnswerShape {
    block: BlockKind,
    limit: usize,
    day: i32,
}

/// An [`AnswerKey`] borrowing the user id: a lookup allocates nothing.
struct AnswerKeyRef<'a> {
    user: &'a str,
    shape: AnswerShape,
}

impl Hash for AnswerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.user.as_str().hash(state);
        self.shape.hash(state);
    }
}

impl Hash for AnswerKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.user.hash(state);
        self.shape.hash(state);
    }
}

impl quick_cache::Equivalent<AnswerKey> for AnswerKeyRef<'_> {
    fn equivalent(&self, key: &AnswerKey) -> bool {
        self.shape == key.shape && self.user == key.user.as_str()
    }
}

/// A cached answer, until when it may be served and the store's user generation it was
/// built under.
#[derive(Clone)]
struct CachedAnswer {
    answer: Answer,
    until: Instant,
    generation: u64,
}

/// The answer cache: bounded by count, each entry carrying its own expiry. A plain
/// concurrent cache (`quick_cache`): a hit is one hash lookup under a shard's read lock,
/// without the per-read bookkeeping of the data caches (moka), which a repeat call — a
/// lookup and nothing else — would mostly be.
type AnswerCache = quick_cache::sync::Cache<AnswerKey, CachedAnswer>;

/// Reads the store and applies a block's rule; shared by every entry point.
pub struct BlockService {
    store: Arc<dyn BlockStore>,
    rules: RulesConfig,
    clock: Arc<dyn Clock>,
    deadline: Option<Duration>,
    answers: Option<AnswerCache>,
    /// How long an answer may live at most ([`CacheConfig::answer_lifetime`]).
    answer_lifetime: Duration,
}

impl BlockService {
    /// A service over `store` with these rules and this clock, without a deadline.
    pub fn new(store: Arc<dyn BlockStore>, rules: RulesConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            rules,
            clock,
            deadline: None,
            answers: None,
            answer_lifetime: Duration::ZERO,
        }
    }

    /// Keeps up to `cache.max_answers` answers for [`CacheConfig::answer_lifetime`] at most,
    /// and never past the store's lease on the user records they came from (none when the
    /// lifetime is zero). Without this call there is no answer cache.
    pub fn with_answer_cache(mut self, cache: &CacheConfig) -> Self {
        self.answer_lifetime = cache.answer_lifetime();
        self.answers = (!self.answer_lifetime.is_zero())
            .then(|| AnswerCache::new(cache.max_answers.try_into().unwrap_or(usize::MAX)));
        self
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

    /// The block `kind` for `user_id` with at most `limit` items, as sent: from the answer
    /// cache when the same user records gave it already, else assembled and encoded.
    pub async fn answer(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Answer, ServiceError> {
        let work = self.answer_within_budget(kind, user_id, limit);
        match self.deadline {
            Some(budget) => tokio::time::timeout(budget, work)
                .await
                .map_err(|_| ServiceError::Deadline(budget))?,
            None => work.await,
        }
    }

    async fn answer_within_budget(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Answer, ServiceError> {
        let rule = kind.rule();
        let now = self.clock.now();
        let shape = AnswerShape {
            block: kind,
            limit,
            day: now.date_naive().num_days_from_ce(),
        };
        // Read before the user records: an invalidation after this voids what is built now.
        let generation = self.store.user_generation();
        if let Some(answers) = &self.answers {
            let key = AnswerKeyRef {
                user: user_id.as_str(),
                shape,
            };
            if let Some(hit) = answers.get(&key) {
                if hit.generation == generation && Instant::now() < hit.until {
                    let mut answer = hit.answer;
                    answer.cache = AnswerCacheUse::Hit;
                    return Ok(answer);
                }
            }
        }
        let (user, lease, degraded) = match self.store.user_data_leased(user_id).await {
            Ok((user, lease)) => (user, lease, false),
            Err(e) => {
                record_store_error();
                match rule.on_unreadable() {
                    OnUnreadable::Fail => return Err(e.into()),
                    OnUnreadable::TreatAsUnknownUser => {
                        tracing::warn!(error = %e, kind = e.kind(), block = %rule.kind(), "user data unavailable, serving the block's fallback");
                        (Arc::new(UserData::default()), None, true)
                    }
                }
            }
        };
        let encoded = self
            .assemble(rule, user_id, limit, now, user, degraded)
            .await?;
        let Some(answers) = &self.answers else {
            return Ok(Answer::new(encoded, AnswerCacheUse::Off));
        };
        let answer = Answer::new(encoded, AnswerCacheUse::Miss);
        // Kept only while the records it came from are the store's (a degraded answer came
        // from none: never kept).
        if let Some(lease) = lease.filter(|_| !degraded) {
            let until = lease.min(Instant::now() + self.answer_lifetime);
            answers.insert(
                AnswerKey {
                    user: user_id.clone(),
                    shape,
                },
                CachedAnswer {
                    answer: answer.clone(),
                    until,
                    generation,
                },
            );
        }
        Ok(answer)
    }

    /// The block, assembled from `user`'s records and what the rule's read plan asks for,
    /// sealed and encoded.
    async fn assemble(
        &self,
        rule: &dyn BlockRule,
        user_id: &UserId,
        limit: usize,
        now: chrono::DateTime<chrono::Utc>,
        user: Arc<UserData>,
        degraded: bool,
    ) -> Result<EncodedBlock, ServiceError> {
        let request = BlockRequest {
            user_id,
            now,
            rules: &self.rules,
            limit,
        };
        let eligible = match rule.assess(&request, &user) {
            Assessment::NotEligible(reason) => {
                let mut block = Block::not_eligible(user_id, rule.kind(), reason);
                block.degraded = degraded;
                return Ok(block.encode());
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
        let mut block = rule.build(&request, eligible, &data).sealed();
        block.degraded = degraded;
        Ok(block.encode())
    }

    /// One read step: its popular lists and its items, concurrently.
    async fn fetch(&self, reads: &Reads) -> Result<(Vec<Arc<PopularList>>, Catalog), StoreError> {
        let lists = try_join_all(reads.popular.iter().map(|s| self.store.popular(s)));
        let items = async {
            if reads.items.is_empty() {
                Ok(Catalog::default())
            } else {
                self.store.items(&reads.items).await
            }
        };
        let (lists, items) = try_join(lists, items).await?;
        Ok((lists.into_iter().flatten().collect(), items))
    }
}

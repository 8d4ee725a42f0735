//! Assembles a block: reads the user's records, lets the block's rule assess them, fetches
//! what the rule's read plan asks for (step by step, each step's reads in parallel) and hands
//! everything to the rule to build the answer. One loop for every block; no stage knowledge.
//!
//! The answer is serialised once, straight from the borrowed data, and kept in a bounded
//! cache of answers (Braze renders one email's HTML, text and AMP parts with the same call):
//! keyed by user, block, limit, `min_score` and the day the stages are computed for, and
//! valid only while the store would hand out the very user records it was built from — until
//! their cache entry expires (the store's lease) and while that entry is still the one the
//! store holds (an event for the user drops it: [`crate::ingest::Invalidate`]) — so a data change is never
//! hidden by an older answer. An event for one user voids that user's answers only; an
//! event for an item voids every answer (which answers read an item is not tracked). A
//! repeat call is two lookups (the answer, and that its records are still held): no store
//! read at all.

use crate::ingest::Invalidate;
use bytes::Bytes;
use chrono::Datelike;
use futures::future::{try_join, try_join_all};
use sendtime_domain::block::{BlockSummary, EncodedBlock};
use sendtime_domain::ingest::Target;
use sendtime_domain::rules::{
    engagement, Assessment, BlockData, BlockRequest, OnUnreadable, Reads,
};
use sendtime_domain::CopyRecord;
use sendtime_domain::{
    Block, BlockKind, BlockRule, Catalog, Clock, DegradedReason, MinScore, PopularList, Reason,
    RulesConfig, UserId,
};
use sendtime_render::CopyBook;
use sendtime_store::metrics::record_store_error;
use sendtime_store::{BlockStore, CacheConfig, StoreError, UserData};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// More read steps than any rule needs (the cart's alternatives take three; recommendations
/// read in growing batches, whole lists of sold-out items by the sixth); a rule that keeps
/// asking for new data past it is cut off and built from what was read.
const MAX_READ_STEPS: usize = 8;

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
    /// Degraded: built from held data or the fallback, never cached.
    Degraded,
}

impl AnswerCacheUse {
    /// `hit`, `miss` or `off`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Off => "off",
            Self::Degraded => "degraded",
        }
    }
}

/// What a request asks of a block besides the block and the user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerOptions {
    /// At most this many items.
    pub limit: usize,
    /// Not eligible (`low_engagement`) when the user's send score is below this; users
    /// without a score are not affected.
    pub min_score: Option<MinScore>,
}

impl AnswerOptions {
    /// At most `limit` items, no `min_score`.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            min_score: None,
        }
    }
}

/// Everything that shapes an answer besides the data: user, block, limit, `min_score`, and
/// the day the stages are computed for (days since the cart changed, since sign-up…).
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
    /// `min_score`'s bits.
    min_score: Option<u64>,
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

/// A cached answer, until when it may be served, the user records it was built from, and
/// the generations (the store's users', the service's catalog) it was built under.
#[derive(Clone)]
struct CachedAnswer {
    answer: Answer,
    until: Instant,
    /// Served only while the store still holds these very records for the user.
    user: Arc<UserData>,
    generation: Generations,
}

/// The store's user generation and the service's catalog generation, read before the records
/// an answer is built from: a change of either since voids the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generations {
    users: u64,
    catalog: u64,
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
    /// Permits for assembling from the store: beyond them a request is shed to the fallback.
    in_flight: Option<Semaphore>,
    answers: Option<AnswerCache>,
    /// How long an answer may live at most ([`CacheConfig::answer_lifetime`]).
    answer_lifetime: Duration,
    /// The copy book last built and the records it was built from.
    copy: std::sync::Mutex<Option<BuiltCopy>>,
    /// Bumped by every applied item event: answers built before are void.
    catalog_generation: AtomicU64,
}

/// A copy book and the records it was built from.
type BuiltCopy = (Arc<[CopyRecord]>, Arc<CopyBook>);

impl BlockService {
    /// A service over `store` with these rules and this clock, without a deadline.
    pub fn new(store: Arc<dyn BlockStore>, rules: RulesConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            rules,
            clock,
            deadline: None,
            in_flight: None,
            answers: None,
            answer_lifetime: Duration::ZERO,
            copy: std::sync::Mutex::new(None),
            catalog_generation: AtomicU64::new(0),
        }
    }

    /// The copy in force: the built-in defaults under the store's copy records (cached by
    /// the store's cache, rebuilt only when they change). Never fails: when the records
    /// cannot be read within the request budget, the last book built, else the defaults.
    pub async fn copy_book(&self) -> Arc<CopyBook> {
        let read = self.store.copy_records();
        let records = match self.deadline {
            Some(budget) => tokio::time::timeout(budget, read).await.ok(),
            None => Some(read.await),
        };
        let mut held = self.copy.lock().unwrap_or_else(|p| p.into_inner());
        let records = match records {
            Some(Ok(records)) => records,
            Some(Err(e)) => {
                record_store_error();
                tracing::warn!(error = %e, kind = e.kind(), "copy records unreadable; last copy kept");
                return held
                    .as_ref()
                    .map(|(_, book)| book.clone())
                    .unwrap_or_default();
            }
            None => {
                return held
                    .as_ref()
                    .map(|(_, book)| book.clone())
                    .unwrap_or_default()
            }
        };
        if let Some((built_from, book)) = &*held {
            if Arc::ptr_eq(built_from, &records) || **built_from == *records {
                return book.clone();
            }
        }
        let (book, rejected) = CopyBook::new(&records);
        for (key, error) in rejected {
            tracing::warn!(copy = %key, %error, "copy record ignored");
        }
        let book = Arc::new(book);
        *held = Some((records, book.clone()));
        book
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

    /// Answers every request within `budget`, store calls included: past it the request is
    /// answered from held data or the block's fallback, `degraded` (Braze gives up at 2 s).
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some(budget);
        self
    }

    /// At most `permits` requests assemble from the store at once; beyond them a request is
    /// answered at once from held data or the fallback (`degraded_reason: overloaded`)
    /// rather than queue behind a slow store. Repeat calls (the answer cache) are not counted.
    pub fn with_max_in_flight(mut self, permits: usize) -> Self {
        self.in_flight = Some(Semaphore::new(permits.max(1)));
        self
    }

    /// The request budget, if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The rules in force.
    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// The block `kind` for `user_id` with at most `limit` items, as sent: from the answer
    /// cache when the same user records gave it already, else assembled and encoded. Never
    /// fails: when the store fails, throttles, is too slow for the deadline or too busy, the
    /// answer is built from the records last read (held past their freshness) or is the
    /// block's fallback, marked `degraded` with a `degraded_reason`.
    pub async fn answer(&self, kind: BlockKind, user_id: &UserId, limit: usize) -> Answer {
        self.answer_with(kind, user_id, AnswerOptions::with_limit(limit))
            .await
    }

    /// As [`BlockService::answer`], with every request option: `limit`, and `min_score`,
    /// which makes the block not eligible (`low_engagement`) for a user scored below it —
    /// fresh or degraded alike — and changes nothing for a user without a score.
    pub async fn answer_with(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        options: AnswerOptions,
    ) -> Answer {
        let now = self.clock.now();
        let shape = AnswerShape {
            block: kind,
            limit: options.limit,
            min_score: options.min_score.map(MinScore::to_bits),
            day: now.date_naive().num_days_from_ce(),
        };
        // Read before the records: an invalidation after this voids what is built now.
        let generation = Generations {
            users: self.store.user_generation(),
            catalog: self.catalog_generation.load(Ordering::Acquire),
        };
        if let Some(answers) = &self.answers {
            let key = AnswerKeyRef {
                user: user_id.as_str(),
                shape,
            };
            if let Some(hit) = answers.get(&key) {
                if hit.generation == generation
                    && Instant::now() < hit.until
                    && self.store.holds(user_id, &hit.user)
                {
                    let mut answer = hit.answer;
                    answer.cache = AnswerCacheUse::Hit;
                    return answer;
                }
            }
        }
        let _permit = match &self.in_flight {
            None => None,
            Some(permits) => match permits.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let reason = DegradedReason::Overloaded;
                    return self
                        .fallback(kind, user_id, options, now, reason, Reading::Held)
                        .await;
                }
            },
        };
        let until = self
            .deadline
            .map(|budget| tokio::time::Instant::now() + budget);
        let work = self.fresh(kind, user_id, options, now, shape, generation);
        let outcome = match until {
            Some(until) => tokio::time::timeout_at(until, work)
                .await
                .unwrap_or(Err(DegradedReason::Deadline)),
            None => work.await,
        };
        match outcome {
            Ok(answer) => answer,
            // The deadline is gone: held data only.
            Err(reason @ DegradedReason::Deadline) => {
                self.fallback(kind, user_id, options, now, reason, Reading::Held)
                    .await
            }
            // A store call failed: the fallback may still read what the store will give
            // (a user read failed, popular lists may not) until the deadline.
            Err(reason) => {
                let reading = Reading::StoreThenHeld(until);
                let work = self.fallback(kind, user_id, options, now, reason, reading);
                work.await
            }
        }
    }

    /// The answer from the store (through its cache), kept in the answer cache; `Err` says
    /// why the store could not give it.
    async fn fresh(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        options: AnswerOptions,
        now: chrono::DateTime<chrono::Utc>,
        shape: AnswerShape,
        generation: Generations,
    ) -> Result<Answer, DegradedReason> {
        let rule = kind.rule();
        let (user, lease) = self
            .store
            .user_data_leased(user_id)
            .await
            .map_err(|e| store_failed(rule, &e))?;
        let encoded = self
            .assemble(rule, user_id, options, now, user.clone(), None)
            .await
            .map_err(|e| store_failed(rule, &e))?;
        let Some(answers) = &self.answers else {
            return Ok(Answer::new(encoded, AnswerCacheUse::Off));
        };
        let answer = Answer::new(encoded, AnswerCacheUse::Miss);
        // Kept only while the records it came from are the store's.
        if let Some(lease) = lease {
            let until = lease.min(Instant::now() + self.answer_lifetime);
            answers.insert(
                AnswerKey {
                    user: user_id.clone(),
                    shape,
                },
                CachedAnswer {
                    answer: answer.clone(),
                    until,
                    user,
                    generation,
                },
            );
        }
        Ok(answer)
    }

    /// The answer from what the store's cache still holds, without a store call: the user's
    /// last records, else the block's choice for an unreadable user (recommendations: as for
    /// an unknown user, from the popular lists held; the other blocks: not eligible,
    /// `unavailable`). Marked degraded for `reason`; never cached. Popular lists
    /// and items come as `reading` says.
    async fn fallback(
        &self,
        kind: BlockKind,
        user_id: &UserId,
        options: AnswerOptions,
        now: chrono::DateTime<chrono::Utc>,
        reason: DegradedReason,
        reading: Reading,
    ) -> Answer {
        let rule = kind.rule();
        let user = match self.store.held_user_data(user_id) {
            Some(user) => user,
            None => match rule.on_unreadable() {
                OnUnreadable::TreatAsUnknownUser => Arc::new(UserData::default()),
                OnUnreadable::NotEligible => {
                    let block =
                        Block::not_eligible(user_id, kind, Reason::Unavailable).degrade(reason);
                    return Answer::new(block.encode(), AnswerCacheUse::Degraded);
                }
            },
        };
        tracing::warn!(block = %kind, reason = reason.as_str(), "serving a degraded answer");
        // Falls back to held data whenever the store fails: cannot fail.
        let held = user.clone();
        let encoded = match self
            .assemble(rule, user_id, options, now, user, Some((reason, reading)))
            .await
        {
            Ok(encoded) => encoded,
            Err(_) => Block::not_eligible(user_id, kind, Reason::Unavailable)
                .with_score(held.score.as_ref())
                .degrade(reason)
                .encode(),
        };
        Answer::new(encoded, AnswerCacheUse::Degraded)
    }

    /// The block, assembled from `user`'s records and what the rule's read plan asks for,
    /// sealed and encoded; from the store, or — `degraded` — only from what it holds. The
    /// user's send score gates it first (`min_score`) and is written into every answer.
    async fn assemble(
        &self,
        rule: &dyn BlockRule,
        user_id: &UserId,
        options: AnswerOptions,
        now: chrono::DateTime<chrono::Utc>,
        user: Arc<UserData>,
        mut degraded: Option<(DegradedReason, Reading)>,
    ) -> Result<EncodedBlock, StoreError> {
        let request = BlockRequest {
            user_id,
            now,
            rules: &self.rules,
            limit: options.limit,
        };
        let assessment = match engagement::gate(user.score.as_ref(), options.min_score) {
            Some(reason) => Assessment::NotEligible(reason),
            None => rule.assess(&request, &user),
        };
        let eligible = match assessment {
            Assessment::NotEligible(reason) => {
                let locale = user.profile.as_ref().and_then(|p| p.locale.as_deref());
                let block = Block::not_eligible(user_id, rule.kind(), reason)
                    .with_locale(locale)
                    .with_score(user.score.as_ref());
                return Ok(encode_marked(block, &degraded));
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
            let (lists, items) = match &mut degraded {
                None => self.fetch(&reads).await?,
                Some((_, reading)) => {
                    let until = match *reading {
                        Reading::Held => None,
                        Reading::StoreThenHeld(until) => Some(until),
                    };
                    let fetched = match until.flatten() {
                        Some(until) => tokio::time::timeout_at(until, self.fetch(&reads))
                            .await
                            .ok(),
                        None if until.is_some() => Some(self.fetch(&reads).await),
                        None => None,
                    };
                    match fetched {
                        Some(Ok(fetched)) => fetched,
                        // Once the store fails again, held data only.
                        _ => {
                            *reading = Reading::Held;
                            self.held(&reads)
                        }
                    }
                }
            };
            data.record(reads, lists, items);
            steps += 1;
        }
        let locale = data.user.profile.as_ref().and_then(|p| p.locale.as_deref());
        Ok(encode_marked(
            rule.build(&request, eligible, &data)
                .with_locale(locale)
                .with_score(data.user.score.as_ref())
                .sealed(),
            &degraded,
        ))
    }

    /// One read step from what the store holds, without reading it.
    fn held(&self, reads: &Reads) -> (Vec<Arc<PopularList>>, Catalog) {
        let lists = reads
            .popular
            .iter()
            .filter_map(|s| self.store.held_popular(s))
            .collect();
        (lists, self.store.held_items(&reads.items))
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

/// What an applied event changed is dropped at once: a user's records from the store's cache
/// (and so every answer built from them: see [`BlockService::answer_with`]); an item from
/// the store's cache (with the popular lists read with it) and every cached answer.
impl Invalidate for BlockService {
    fn changed(&self, target: Target<'_>) {
        match target {
            Target::User(user_id) => self.store.forget_user(user_id),
            Target::Item(item_id) => {
                self.store.forget_item(item_id);
                // After the item is gone: an answer built from it read the generation before.
                self.catalog_generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// The block encoded, marked degraded when it is.
fn encode_marked(block: Block<'_>, degraded: &Option<(DegradedReason, Reading)>) -> EncodedBlock {
    match degraded {
        Some((why, _)) => block.degrade(*why),
        None => block,
    }
    .encode()
}

/// Where a degraded answer's popular lists and items come from.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// Only what the store's cache holds: no store call.
    Held,
    /// The store until this deadline (none: no deadline) or its first failure, then held.
    StoreThenHeld(Option<tokio::time::Instant>),
}

/// Why a store failure degrades an answer; counted and logged once per request.
fn store_failed(rule: &dyn BlockRule, e: &StoreError) -> DegradedReason {
    record_store_error();
    tracing::warn!(error = %e, kind = e.kind(), block = %rule.kind(), "store read failed");
    match e {
        StoreError::Timeout(_) => DegradedReason::Timeout,
        StoreError::Throttled => DegradedReason::Throttled,
        _ => DegradedReason::Unavailable,
    }
}

//! The in-process cache in front of any store. Catalog items and popular lists change slowly
//! and are shared by every user, so they live long; per-user data (carts!) lives briefly.
//!
//! Contract: concurrent misses for one key cause one load (moka's `or_try_insert_with`
//! coalesces users and popular lists, a failed load's error included; catalog items, read in
//! batches and held in `quick_cache`, go through an in-flight table so an id being loaded by
//! one request is awaited, not loaded again, by the others); failed loads are not cached; unknown items are cached as absent so a stale
//! recommendation list does not hit the store on every call. A TTL of zero disables caching
//! for that kind of data. A cached user's records come with a lease (until their entry
//! expires) and a generation (bumped by [`CachedStore::invalidate_users`], a data reload), so
//! what the block service builds from them is reused exactly as long as they would be.
//!
//! An applied event drops only what it changed ([`CachedStore::invalidate_user`],
//! [`CachedStore::invalidate_item`]): the entry, and the load in flight for it, which then
//! answers the requests that joined it but caches nothing (it may have read the record
//! before the change). Other processes' caches keep the old record until it expires.

use crate::error::StoreError;
use crate::ports::{CopyGet, ItemsGet, PopularGet, UserData, UserDataGet};
use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};
use moka::sync::Cache;
use sendtime_domain::{
    Catalog, CopyRecord, IdHasher, Item, ItemId, PopularList, PopularScope, UserId,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long each kind of data stays cached, and how much of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// A user's profile, list and cart (short: carts change).
    pub user_ttl: Duration,
    /// A catalog item.
    pub item_ttl: Duration,
    /// A popular list.
    pub popular_ttl: Duration,
    /// Users held at most.
    pub max_users: u64,
    /// Items held at most.
    pub max_items: u64,
    /// The copy records (the marketer's words): a change shows within this.
    pub copy_ttl: Duration,
    /// A serialised answer (the block service's answer cache); it never outlives the
    /// records it came from, see [`CacheConfig::answer_lifetime`].
    pub answer_ttl: Duration,
    /// Answers held at most.
    pub max_answers: u64,
    /// A negative record — no profile, no popular list (or an empty one), no such item — is
    /// cached this long at most (never longer than its kind's TTL), so a table loaded after
    /// a miss is seen soon while known users, lists and items stay cached.
    pub negative_ttl: Duration,
    /// How long past its expiry a record read successfully is still held as the
    /// last-known-good copy a degraded answer is built from when the store fails (bounded by
    /// the same counts as the caches; nothing is held for a kind whose TTL is zero).
    pub last_good: Duration,
}

impl CacheConfig {
    /// How long an answer may be kept: `answer_ttl`, but never longer than any record it is
    /// built from stays cached (zero, so no answer cache, when any of them is not cached).
    pub fn answer_lifetime(&self) -> Duration {
        self.answer_ttl
            .min(self.user_ttl)
            .min(self.item_ttl)
            .min(self.popular_ttl)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            user_ttl: Duration::from_secs(30),
            item_ttl: Duration::from_secs(600),
            popular_ttl: Duration::from_secs(300),
            max_users: 100_000,
            max_items: 200_000,
            copy_ttl: Duration::from_secs(60),
            answer_ttl: Duration::from_secs(30),
            max_answers: 100_000,
            negative_ttl: Duration::from_secs(5),
            last_good: Duration::from_secs(3_600),
        }
    }
}

/// Users changed by events whose next load is still to be a consistent read, held at most
/// (one process rarely sees more events between two reads of their users).
const CHANGED_USERS_HELD: usize = 10_000;

/// Hit and miss counters since start-up, for logs and metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    forgotten: AtomicU64,
}

impl CacheStats {
    /// Lookups answered from the cache since start-up (a batch counts each item).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    /// Lookups the cache could not answer since start-up (a batch counts each item).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
    /// Calls made to the store behind the cache.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
    /// Users and items dropped early because an event changed them, since start-up.
    pub fn forgotten(&self) -> u64 {
        self.forgotten.load(Ordering::Relaxed)
    }
    fn forgot(&self, n: u64) {
        self.forgotten.fetch_add(n, Ordering::Relaxed);
    }
    fn hit(&self, n: u64) {
        self.hits.fetch_add(n, Ordering::Relaxed);
        crate::metrics::record_cache_hits(n);
    }
    fn miss(&self, n: u64) {
        self.misses.fetch_add(n, Ordering::Relaxed);
        crate::metrics::record_cache_misses(n);
    }
    fn load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        crate::metrics::record_store_load();
    }
}

/// Catalog items by id, each until its expiry; `None` remembers an id the store does not have.
///
/// An [`Expiring`] cache, not moka: a request looks up a dozen items or more, and a lookup
/// here is one hash probe under a shard's read lock, where moka's also logs the read for its
/// eviction policy and replays the log every few dozen reads (the item lookups were an eighth
/// of a recommendations request's CPU). An expired entry is loaded again like a missing one
/// and overwritten.
type ItemCache = Expiring<ItemId, Option<Arc<Item>>>;

/// One batch load of catalog items, awaited by every request that needs one of its ids.
type ItemBatch = Shared<BoxFuture<'static, Result<Arc<Catalog>, StoreError>>>;

/// Item ids being loaded right now, and the batch loading each (with its number: a batch
/// caches only the ids whose slot is still its own, see [`CachedStore::forget_item`]).
type InFlight = Arc<Mutex<HashMap<ItemId, (u64, ItemBatch)>>>;

/// Any store, behind per-kind caches with the contract above.
pub struct CachedStore<S> {
    inner: Arc<S>,
    /// A user's records and when they were read (their lease runs `user_ttl` from then).
    users: Option<UserCache>,
    /// Bumped by [`CachedStore::invalidate_users`]: leases taken before are void.
    user_generation: AtomicU64,
    /// Users an event changed since their records were last loaded: their next load is a
    /// consistent read ([`UserDataGet::user_data_consistent`]). Bounded; a user evicted from
    /// it is read as usual (eventually consistent: at worst the records from before the
    /// write, for one TTL).
    changed_users: Arc<quick_cache::sync::Cache<UserId, ()>>,
    /// Items are looked up by the dozen per request and loaded through our own in-flight
    /// table, so they need no entry API: see [`ItemCache`].
    items: Option<ItemCache>,
    items_in_flight: InFlight,
    /// Numbers each item batch.
    next_batch: AtomicU64,
    popular: Option<PopularCache>,
    /// The last list read for each scope, held `last_good` (the popular cache forgets a list
    /// when it expires).
    popular_held: Option<Cache<PopularScope, Arc<PopularList>, IdHasher>>,
    /// Whether a popular list is read with its items (see [`PopularGet`] below).
    lists_with_items: bool,
    /// Every copy record, as last read, and when.
    copy: CopyCache,
    stats: Arc<CacheStats>,
}

/// The copy records as last read and when; read again once `ttl` has passed. One small
/// record set for the whole process: a mutex, not a cache. A failed read keeps the last
/// good set (for `last_good`), so the marketer's words outlive a store outage.
struct CopyCache {
    ttl: Duration,
    last_good: Duration,
    state: tokio::sync::Mutex<Option<(Arc<[CopyRecord]>, Instant)>>,
}

/// A user's records and when they were read, by user.
type UserEntry = (Arc<UserData>, Instant);
/// Users: coalesced loads over an [`Expiring`] cache.
type UserCache = Coalescing<UserId, UserEntry, Expiring<UserId, UserEntry>>;
/// Popular lists (`None`: the store has none for that scope): coalesced loads over moka.
type PopularCache = Coalescing<
    PopularScope,
    Option<Arc<PopularList>>,
    Cache<PopularScope, Option<Arc<PopularList>>, IdHasher>,
>;

/// One load of one key, awaited by every request that missed it meanwhile.
type Pending<V> = Shared<BoxFuture<'static, Result<V, StoreError>>>;

/// Where a [`Coalescing`] cache keeps its values.
trait Slots<K, V>: Clone + Send + Sync + 'static {
    /// The live value of `key`, if any.
    fn get(&self, key: &K) -> Option<V>;
    /// Keeps `value` for `key`.
    fn insert(&self, key: K, value: V);
    /// Drops `key`'s value, if any.
    fn remove(&self, key: &K);
}

/// moka (its synchronous API: a hit is a plain call, without the async machinery of moka's
/// future cache): TTL and size-aware eviction with moka's policy bookkeeping on each read.
/// Popular lists: a handful of hot shared keys, read a few times per request at most.
impl<K, V> Slots<K, V> for Cache<K, V, IdHasher>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get(&self, key: &K) -> Option<V> {
        Cache::get(self, key)
    }
    fn insert(&self, key: K, value: V) {
        Cache::insert(self, key, value);
    }
    fn remove(&self, key: &K) {
        Cache::invalidate(self, key);
    }
}

/// A plain bounded concurrent cache (`quick_cache`, S3-FIFO eviction) with each entry's
/// expiry checked on read; an expired entry stays until overwritten, evicted, or dropped by
/// [`Expiring::drop_expired`] (the users' background housekeeping). Users and catalog
/// items: one and a dozen lookups per assembling request, where moka's read bookkeeping cost
/// a twelfth of a cart request's and an eighth of a recommendations request's CPU
/// (scripts/profile.sh).
#[derive(Clone)]
struct Expiring<K, V> {
    cache: Arc<quick_cache::sync::Cache<K, (V, Instant)>>,
    ttl: Duration,
    /// The TTL of a negative value (`is_negative`), at most `ttl`.
    negative_ttl: Duration,
    is_negative: fn(&V) -> bool,
    /// How long past its expiry an entry is still held as last-known-good.
    keep: Duration,
}

impl<K, V> Expiring<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(
        ttl: Duration,
        capacity: u64,
        config: &CacheConfig,
        is_negative: fn(&V) -> bool,
    ) -> Self {
        Self {
            cache: Arc::new(quick_cache::sync::Cache::new(
                capacity.try_into().unwrap_or(usize::MAX),
            )),
            ttl,
            negative_ttl: config.negative_ttl.min(ttl),
            is_negative,
            keep: config.last_good,
        }
    }

    /// How long `value` stays fresh once read.
    fn ttl_of(&self, value: &V) -> Duration {
        if (self.is_negative)(value) {
            self.negative_ttl
        } else {
            self.ttl
        }
    }

    /// The value of `key`, fresh or not, while it is held as last-known-good.
    fn get_held(&self, key: &K, now: Instant) -> Option<V> {
        let (value, expires) = self.cache.get(key)?;
        (now < expires + self.keep).then_some(value)
    }

    /// The value of `key` unless it has expired by `now` (one clock read for a batch).
    fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let (value, expires) = self.cache.get(key)?;
        (now < expires).then_some(value)
    }

    /// Removes every entry past its expiry and its time held as last-known-good.
    fn drop_expired(&self) {
        let now = Instant::now();
        let keep = self.keep;
        self.cache.retain(|_, (_, expires)| now < *expires + keep);
    }
}

impl<K, V> Slots<K, V> for Expiring<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }
    fn insert(&self, key: K, value: V) {
        let expires = Instant::now() + self.ttl_of(&value);
        self.cache.insert(key, (value, expires));
    }
    fn remove(&self, key: &K) {
        self.cache.remove(key);
    }
}

/// A cache whose concurrent misses for one key share one load — its error too. The load
/// runs as its own task, so it finishes, fills the cache and clears its slot even if every
/// request waiting for it gives up (a deadline); a failed load is not cached. A load whose
/// key was forgotten while it ran ([`Coalescing::forget`]: the record changed) answers the
/// requests that joined it but fills nothing: what it read may predate the change.
struct Coalescing<K, V, C> {
    cache: C,
    loading: Arc<Mutex<LoadTable<K, V>>>,
    /// Numbers each load, so a finishing load knows whether its slot is still its own.
    next_load: AtomicU64,
}

/// The loads in flight by key, each with its number.
type LoadTable<K, V> = HashMap<K, (u64, Pending<V>), IdHasher>;

/// A popular list's life in the cache: `ttl`, or `negative_ttl` when there is no list or
/// it is empty.
struct PopularExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl PopularExpiry {
    fn of(&self, list: &Option<Arc<PopularList>>) -> Duration {
        match list {
            Some(list) if !list.items.is_empty() => self.ttl,
            _ => self.negative_ttl,
        }
    }
}

impl moka::Expiry<PopularScope, Option<Arc<PopularList>>> for PopularExpiry {
    fn expire_after_create(
        &self,
        _: &PopularScope,
        list: &Option<Arc<PopularList>>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.of(list))
    }

    fn expire_after_update(
        &self,
        _: &PopularScope,
        list: &Option<Arc<PopularList>>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(list))
    }
}

impl PopularCache {
    /// In moka: lists living `popular_ttl` (none when zero), no list or an empty one
    /// `negative_ttl` at most, 10,000 scopes at most; keys hashed with foldhash.
    fn popular(config: &CacheConfig) -> Option<Self> {
        let ttl = config.popular_ttl;
        (!ttl.is_zero()).then(|| Self {
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(PopularExpiry {
                    ttl,
                    negative_ttl: config.negative_ttl.min(ttl),
                })
                .build_with_hasher(IdHasher::default()),
            loading: Arc::default(),
            next_load: AtomicU64::new(0),
        })
    }
}

impl<K, V> Coalescing<K, V, Expiring<K, V>>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// In an [`Expiring`] cache: entries living `ttl` (none when zero), at most `capacity`.
    fn expiring(
        ttl: Duration,
        capacity: u64,
        config: &CacheConfig,
        is_negative: fn(&V) -> bool,
    ) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            cache: Expiring::new(ttl, capacity, config, is_negative),
            loading: Arc::default(),
            next_load: AtomicU64::new(0),
        })
    }
}

impl<K, V, C> Coalescing<K, V, C>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Slots<K, V>,
{
    /// The value of `key`: cached, or from the load in flight for it, or from `load`
    /// started now. Hits (joining a load counts as one), misses and loads are counted.
    async fn get_or_load(
        &self,
        key: &K,
        stats: &CacheStats,
        load: impl FnOnce() -> BoxFuture<'static, Result<V, StoreError>>,
    ) -> Result<V, StoreError> {
        if let Some(value) = self.cache.get(key) {
            stats.hit(1);
            return Ok(value);
        }
        let pending = {
            // A poisoned lock only means a panic while holding plain map data: keep using it.
            let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, pending)) = loading.get(key) {
                stats.hit(1);
                pending.clone()
            } else if let Some(value) = self.cache.get(key) {
                // (a load finished since the first look)
                stats.hit(1);
                return Ok(value);
            } else {
                stats.miss(1);
                stats.load();
                let (cache, table, owned) = (self.cache.clone(), self.loading.clone(), key.clone());
                let number = self.next_load.fetch_add(1, Ordering::Relaxed);
                let work = load();
                // The starting request's counters follow the load into its task. The slot is
                // inserted below before this lock is released, so the task's removal (which
                // takes the lock) always comes after it. The value is cached under the same
                // lock, and only while the slot is still this load's: a `forget` meanwhile
                // (which takes the lock too) removed it, and the value may predate the change.
                let task = tokio::spawn(crate::metrics::in_current_scope(async move {
                    let loaded = work.await;
                    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
                    if table.get(&owned).is_some_and(|(n, _)| *n == number) {
                        if let Ok(value) = &loaded {
                            cache.insert(owned.clone(), value.clone());
                        }
                        table.remove(&owned);
                    }
                    loaded
                }));
                let pending = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(StoreError::unavailable("cache load did not finish", e))
                    })
                }
                .boxed()
                .shared();
                loading.insert(key.clone(), (number, pending.clone()));
                pending
            }
        };
        pending.await
    }

    /// Drops `key`'s value and voids the load in flight for it, if any (it still answers
    /// the requests that joined it, but caches nothing): the next request loads afresh.
    fn forget(&self, key: &K) {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        loading.remove(key);
        self.cache.remove(key);
    }
}

impl<S> CachedStore<S> {
    /// Caches in front of `inner`.
    pub fn new(inner: Arc<S>, config: &CacheConfig) -> Self {
        Self {
            inner,
            users: Coalescing::expiring(config.user_ttl, config.max_users, config, |(user, _)| {
                user.profile.is_none()
            }),
            user_generation: AtomicU64::new(0),
            changed_users: Arc::new(quick_cache::sync::Cache::new(CHANGED_USERS_HELD)),
            items: (!config.item_ttl.is_zero())
                .then(|| Expiring::new(config.item_ttl, config.max_items, config, Option::is_none)),
            items_in_flight: Arc::default(),
            next_batch: AtomicU64::new(0),
            popular: PopularCache::popular(config),
            popular_held: (!config.popular_ttl.is_zero() && !config.last_good.is_zero()).then(
                || {
                    Cache::builder()
                        .max_capacity(10_000)
                        .time_to_live(config.last_good)
                        .build_with_hasher(IdHasher::default())
                },
            ),
            lists_with_items: !config.item_ttl.is_zero() && config.popular_ttl <= config.item_ttl,
            copy: CopyCache {
                ttl: config.copy_ttl,
                last_good: config.last_good,
                state: tokio::sync::Mutex::new(None),
            },
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// Counters since start-up.
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Does the caches' housekeeping (expiring and evicting entries) every `period` on a
    /// background task, for as long as the cache lives. Without it the housekeeping runs on
    /// whichever request comes next — after a quiet spell, one request would expire every
    /// entry of the last half minute while the others wait behind it.
    pub fn maintain_every(self: &Arc<Self>, period: Duration)
    where
        S: Send + Sync + 'static,
    {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = cache.upgrade() else { return };
                // A blocking pass over the entries: on a blocking-pool thread, so no request
                // waits behind it on a runtime worker.
                let done = tokio::task::spawn_blocking(move || {
                    if let Some(users) = &cache.users {
                        users.cache.drop_expired();
                    }
                    if let Some(popular) = &cache.popular {
                        popular.cache.run_pending_tasks();
                    }
                    if let Some(held) = &cache.popular_held {
                        held.run_pending_tasks();
                    }
                })
                .await;
                if done.is_err() {
                    return;
                }
            }
        });
    }

    /// Entries held now (users, items, popular lists), as of the last housekeeping.
    pub fn entry_counts(&self) -> (u64, u64, u64) {
        (
            self.users
                .as_ref()
                .map_or(0, |c| c.cache.cache.len() as u64),
            self.items.as_ref().map_or(0, |c| c.cache.len() as u64),
            self.popular.as_ref().map_or(0, |c| c.cache.entry_count()),
        )
    }

    /// Drops one user's cached records and voids the load in flight for them (an event
    /// changed them): every other user's records, and what was built from them, stay.
    pub fn invalidate_user(&self, user_id: &UserId) {
        self.stats.forgot(1);
        if let Some(users) = &self.users {
            // Marked first: a load started after the entry is gone reads consistently.
            self.changed_users.insert(user_id.clone(), ());
            users.forget(user_id);
        }
    }

    /// Drops one catalog item — its cache entry, the batch in flight for it, the popular
    /// lists read with it (cached or held as last-known-good) — so the next read of any of
    /// them goes to the store.
    pub fn invalidate_item(&self, id: &ItemId) {
        self.stats.forgot(1);
        if let Some(items) = &self.items {
            let mut in_flight = self
                .items_in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            in_flight.remove(id);
            items.cache.remove(id);
        }
        let holding = |list: &PopularList| list.items.contains(id);
        if let Some(popular) = &self.popular {
            // A few dozen lists at most: walked, not indexed.
            let scopes: Vec<PopularScope> = popular
                .cache
                .iter()
                .filter(|(_, list)| list.as_deref().is_some_and(holding))
                .map(|(scope, _)| PopularScope::clone(&scope))
                .collect();
            for scope in &scopes {
                popular.forget(scope);
            }
        }
        if let Some(held) = &self.popular_held {
            let scopes: Vec<PopularScope> = held
                .iter()
                .filter(|(_, list)| holding(list))
                .map(|(scope, _)| PopularScope::clone(&scope))
                .collect();
            for scope in &scopes {
                held.invalidate(scope);
            }
        }
    }

    /// Drops every cached user record (keeps catalog and popular lists) and voids the leases
    /// handed out on them.
    pub fn invalidate_users(&self) {
        if let Some(users) = &self.users {
            users.cache.cache.clear();
        }
        // After the records are gone: a lease is only ever taken with the generation read
        // before its records (see the block service), so none outlives this.
        self.user_generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl<S: UserDataGet + 'static> UserDataGet for CachedStore<S> {
    async fn user_data(&self, user_id: &UserId) -> Result<Arc<UserData>, StoreError> {
        Ok(self.user_data_leased(user_id).await?.0)
    }

    /// A cached user's lease runs until their entry expires: `user_ttl` after it was read,
    /// `negative_ttl` for a user without a profile.
    async fn user_data_leased(
        &self,
        user_id: &UserId,
    ) -> Result<(Arc<UserData>, Option<Instant>), StoreError> {
        let Some(cache) = &self.users else {
            self.stats.miss(1);
            self.stats.load();
            return Ok((self.inner.user_data(user_id).await?, None));
        };
        let load = || {
            let (inner, user_id) = (self.inner.clone(), user_id.clone());
            // The first load after an event changed the user reads what was written (a
            // failed one leaves the mark for the next).
            let changed = self.changed_users.clone();
            let consistent = changed.remove(&user_id).is_some();
            async move {
                let data = if consistent {
                    let read = inner.user_data_consistent(&user_id).await;
                    if read.is_err() {
                        changed.insert(user_id.clone(), ());
                    }
                    read?
                } else {
                    inner.user_data(&user_id).await?
                };
                // Stamped after the read, before the entry is inserted: the lease never
                // outlasts the entry.
                Ok((data, Instant::now()))
            }
            .boxed()
        };
        let entry = cache.get_or_load(user_id, &self.stats, load).await?;
        let lease = entry.1 + cache.cache.ttl_of(&entry);
        Ok((entry.0, Some(lease)))
    }

    fn user_generation(&self) -> u64 {
        self.user_generation.load(Ordering::Acquire)
    }

    fn held_user_data(&self, user_id: &UserId) -> Option<Arc<UserData>> {
        let users = self.users.as_ref()?;
        users
            .cache
            .get_held(user_id, Instant::now())
            .map(|(user, _)| user)
    }

    /// One probe of the user cache: its entry is these very records. Not its expiry: a
    /// caller reuses what it built only within the lease it was given, which ends with the
    /// entry (one clock read saved on every answer-cache hit).
    fn holds(&self, user_id: &UserId, data: &Arc<UserData>) -> bool {
        self.users.as_ref().is_some_and(|users| {
            users
                .cache
                .cache
                .get(user_id)
                .is_some_and(|((held, _), _)| Arc::ptr_eq(&held, data))
        })
    }

    fn forget_user(&self, user_id: &UserId) {
        self.invalidate_user(user_id);
    }
}

#[async_trait]
impl<S: ItemsGet + 'static> ItemsGet for CachedStore<S> {
    async fn items(&self, ids: &[ItemId]) -> Result<Catalog, StoreError> {
        let Some(cache) = &self.items else {
            self.stats.miss(ids.len() as u64);
            self.stats.load();
            return self.inner.items(ids).await;
        };
        let mut found = Catalog::with_capacity_and_hasher(ids.len(), Default::default());
        let mut missing: Vec<ItemId> = Vec::new();
        let now = Instant::now();
        for id in ids {
            match cache.get_at(id, now) {
                Some(Some(item)) => {
                    found.insert(id.clone(), item);
                }
                Some(None) => {}
                None if !missing.contains(id) => missing.push(id.clone()),
                None => {}
            }
        }
        self.stats.hit((ids.len() - missing.len()) as u64);
        if missing.is_empty() {
            return Ok(found);
        }
        self.stats.miss(missing.len() as u64);
        let waits = self.join_or_start_loads(cache, missing);
        // Every batch this request waits for, at once: its own and those it joined overlap.
        let batches = futures::future::try_join_all(waits.iter().map(|(_, b)| b.clone())).await?;
        for ((id, _), items) in waits.into_iter().zip(batches) {
            if let Some(item) = items.get(&id) {
                found.insert(id, item.clone());
            }
        }
        Ok(found)
    }

    fn forget_item(&self, id: &ItemId) {
        self.invalidate_item(id);
    }

    fn held_items(&self, ids: &[ItemId]) -> Catalog {
        let mut found = Catalog::with_capacity_and_hasher(ids.len(), Default::default());
        if let Some(cache) = &self.items {
            let now = Instant::now();
            for id in ids {
                if let Some(Some(item)) = cache.get_held(id, now) {
                    found.insert(id.clone(), item);
                }
            }
        }
        found
    }
}

impl<S: ItemsGet + 'static> CachedStore<S> {
    /// For each missing id, the batch that loads it: one already in flight (another request
    /// asked first), or one new batch for all the ids nobody is loading. A new batch runs as
    /// its own task, so it finishes, fills the cache and clears its ids from the in-flight
    /// table even if every request waiting for it gives up (a deadline); a failed batch
    /// caches nothing, so the next request tries again.
    fn join_or_start_loads(
        &self,
        cache: &ItemCache,
        missing: Vec<ItemId>,
    ) -> Vec<(ItemId, ItemBatch)> {
        // A poisoned lock only means a panic while holding plain map data: keep using it.
        let mut in_flight = self
            .items_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(ItemId, ItemBatch)> = Vec::with_capacity(missing.len());
        let mut new: Vec<ItemId> = Vec::new();
        let now = Instant::now();
        for id in missing {
            if let Some((_, batch)) = in_flight.get(&id) {
                out.push((id, batch.clone()));
            } else if cache.get_at(&id, now).is_none() {
                // (a batch may have finished since this request looked: then it is cached)
                new.push(id);
            }
        }
        if !new.is_empty() {
            self.stats.load();
            let number = self.next_batch.fetch_add(1, Ordering::Relaxed);
            let batch = start_batch(
                self.inner.clone(),
                cache.clone(),
                self.items_in_flight.clone(),
                (number, new.clone()),
            );
            for id in new {
                in_flight.insert(id.clone(), (number, batch.clone()));
                out.push((id, batch.clone()));
            }
        }
        out
    }

    /// Ids being loaded right now (tests: nothing is left behind).
    pub fn items_in_flight(&self) -> usize {
        self.items_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Spawns one batch load (numbered); the returned future, shared by every waiter, is its
/// outcome. Under the in-flight table's lock, it caches and clears only the ids whose slot
/// is still its own: an id forgotten meanwhile (its item changed) is not cached from a read
/// that may predate the change.
fn start_batch<S: ItemsGet + 'static>(
    inner: Arc<S>,
    cache: ItemCache,
    in_flight: InFlight,
    (number, ids): (u64, Vec<ItemId>),
) -> ItemBatch {
    let load = async move {
        let loaded = inner.items(&ids).await;
        let mut table = in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for id in &ids {
            if table.get(id).is_some_and(|(n, _)| *n == number) {
                if let Ok(items) = &loaded {
                    cache.insert(id.clone(), items.get(id).cloned());
                }
                table.remove(id);
            }
        }
        drop(table);
        loaded.map(Arc::new)
    };
    // The starting request's counters follow the load into its task, so its log line still
    // counts the round trips it caused.
    let task = tokio::spawn(crate::metrics::in_current_scope(load));
    async move {
        task.await.unwrap_or_else(|e| {
            Err(StoreError::unavailable(
                "catalog item load did not finish",
                e,
            ))
        })
    }
    .boxed()
    .shared()
}

/// Copy records are read whole, at most once per `copy_ttl` (concurrent callers wait for
/// the one read under the lock); with `copy_ttl` zero every call reads the store.
#[async_trait]
impl<S: CopyGet + 'static> CopyGet for CachedStore<S> {
    async fn copy_records(&self) -> Result<Arc<[CopyRecord]>, StoreError> {
        let copy = &self.copy;
        if copy.ttl.is_zero() {
            return self.inner.copy_records().await;
        }
        let mut state = copy.state.lock().await;
        if let Some((records, read_at)) = &*state {
            if read_at.elapsed() < copy.ttl {
                return Ok(records.clone());
            }
        }
        match self.inner.copy_records().await {
            Ok(records) => {
                *state = Some((records.clone(), Instant::now()));
                Ok(records)
            }
            Err(e) => match &*state {
                Some((records, read_at)) if read_at.elapsed() < copy.ttl + copy.last_good => {
                    Ok(records.clone())
                }
                _ => Err(e),
            },
        }
    }
}

/// A cached popular list is read with its items, from the store, and keeps them as long as
/// it lives: a request falling back to popular items walks them without reading each (a
/// category list is a few dozen reads otherwise, most of them of items the diversity rule
/// passes over). Only when the list lives no longer than an item entry would (`popular_ttl
/// ≤ item_ttl`, item caching on), so no item is held longer than the item cache would hold
/// it. If that read fails the list is kept without its items: requests then read them as
/// usual.
#[async_trait]
impl<S: PopularGet + ItemsGet + 'static> PopularGet for CachedStore<S> {
    async fn popular(&self, scope: &PopularScope) -> Result<Option<Arc<PopularList>>, StoreError> {
        let Some(cache) = &self.popular else {
            self.stats.miss(1);
            self.stats.load();
            return self.inner.popular(scope).await;
        };
        let load = || {
            let (inner, scope, stats) = (self.inner.clone(), scope.clone(), self.stats.clone());
            let with_items = self.lists_with_items;
            let held = self.popular_held.clone();
            async move {
                let Some(list) = inner.popular(&scope).await? else {
                    return Ok(None);
                };
                let list = if !with_items || list.items.is_empty() {
                    list
                } else {
                    stats.load();
                    match inner.items(&list.items).await {
                        Ok(items) => Arc::new(list.as_ref().clone().resolved_from(&items)),
                        Err(_) => list,
                    }
                };
                if let Some(held) = held.filter(|_| !list.items.is_empty()) {
                    held.insert(scope, list.clone());
                }
                Ok(Some(list))
            }
            .boxed()
        };
        cache.get_or_load(scope, &self.stats, load).await
    }

    fn held_popular(&self, scope: &PopularScope) -> Option<Arc<PopularList>> {
        if let Some(list) = self.popular.as_ref().and_then(|c| c.cache.get(scope)) {
            return list;
        }
        self.popular_held.as_ref()?.get(scope)
    }
}

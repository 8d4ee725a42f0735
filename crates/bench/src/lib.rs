//! Shared set-up of the hot-path benchmarks: the dataset `scripts/bench.sh` serves (18,000
//! users, 2,000 items, as of 2026-11-20T12:00:00Z), on the embedded store behind the cache,
//! and the block service as `sendtime serve` builds it — with or without the answer cache.

use chrono::{DateTime, TimeZone, Utc};
use sendtime_api::BlockService;
use sendtime_cli::datagen::{self, DatasetSpec};
use sendtime_domain::{FixedClock, RulesConfig, UserId};
use sendtime_store::{CacheConfig, CachedStore, MemoryStore};
use std::sync::Arc;
use std::time::Duration;

/// Users in the benchmark dataset (as `scripts/bench.sh` generates).
pub const USERS: usize = 18_000;
/// Catalog items in the benchmark dataset.
pub const ITEMS: usize = 2_000;

/// The instant the dataset is generated for and served at.
pub fn as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The embedded store holding the benchmark dataset, behind the deployed cache settings.
pub fn cached_store(answer_cache: bool) -> (Arc<CachedStore<MemoryStore>>, CacheConfig) {
    let spec = DatasetSpec {
        users: USERS,
        items: ITEMS,
        seed: 42,
        as_of: as_of(),
    };
    let clock = Arc::new(FixedClock(as_of()));
    let memory = MemoryStore::with_records(clock, datagen::generate(&spec));
    let config = CacheConfig {
        answer_ttl: if answer_cache {
            CacheConfig::default().answer_ttl
        } else {
            Duration::ZERO
        },
        ..CacheConfig::default()
    };
    (
        Arc::new(CachedStore::new(Arc::new(memory), &config)),
        config,
    )
}

/// The block service over the benchmark dataset, as `sendtime serve --data … --now …`
/// builds it; `answer_cache: false` makes every request assemble its block.
pub fn service(answer_cache: bool) -> Arc<BlockService> {
    let (store, config) = cached_store(answer_cache);
    Arc::new(
        BlockService::new(store, RulesConfig::default(), Arc::new(FixedClock(as_of())))
            .with_answer_cache(&config),
    )
}

/// The `n`th user the benchmarks call (cycling through the first `cycle` users).
pub fn user(n: usize, cycle: usize) -> UserId {
    UserId::demo(n % cycle + 1)
}

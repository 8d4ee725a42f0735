//! Where block data comes from. The ports are small traits sized to one capability each, so a
//! caller (and, in `template.yaml`, a Lambda's IAM policy) asks only for what it uses; the
//! adapters implement them: [`MemoryStore`] here, `DynamoStore` in `sendtime-dynamo`, and
//! [`CachedStore`] in front of either.

/// [`CachedStore`]: the in-process TTL cache in front of any store; concurrent misses coalesce.
pub mod cache;
/// [`StoreError`]: the one error type of every store, each kind retryable or not.
pub mod error;
/// Recommendation lists from other tools (Amazon Personalize batch output, `user,item,rank` CSV).
pub mod lists;
/// [`MemoryStore`]: the whole dataset in memory, for `serve`'s demo data and hermetic tests.
pub mod memory;
/// Per-request counters (cache hits and misses, loads, round trips) in a task-local scope.
pub mod metrics;
/// The capability-sized store traits, one per DynamoDB action, and [`PutReport`].
pub mod ports;
/// [`Record`], the JSON Lines dataset format, and reading a dataset with per-line errors.
pub mod record;

pub use cache::{CacheConfig, CacheStats, CachedStore};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use ports::{
    ApplyError, BlockStore, CopyGet, EventsApply, ItemsGet, PopularGet, PutReport, RecordsPut,
    UserData, UserDataGet,
};
pub use record::{ParsedRecords, Record, RecordError};

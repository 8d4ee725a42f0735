//! Where block data comes from. The ports are small traits sized to one capability each, so a
//! caller (and, in `template.yaml`, a Lambda's IAM policy) asks only for what it uses; the
//! adapters implement them: [`MemoryStore`] here, `DynamoStore` in `sendtime-dynamo`, and
//! [`CachedStore`] in front of either.

pub mod cache;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod record;

pub use cache::{CacheConfig, CacheStats, CachedStore};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use ports::{BlockStore, ItemsGet, PopularGet, PutReport, RecordsPut, UserData, UserDataGet};
pub use record::{ParsedRecords, Record, RecordError};

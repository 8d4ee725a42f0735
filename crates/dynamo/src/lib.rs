//! The DynamoDB adapter of the store ports (single-table design, see `infra/README.md`).
//!
//! One `Query` reads a user's profile, recommendation list and cart; catalog items are read
//! with `BatchGetItem` (only for cache misses, when behind `CachedStore`); popular lists with
//! `GetItem`. Every call to DynamoDB is counted, so tests can prove round-trip budgets.

mod client;
mod error;
mod ingest;
mod keys;
mod read;
mod table;
mod write;

pub use client::{connect, DynamoConfig};
pub use ingest::APPLY_ATTEMPTS;
pub use keys::{record_key, TTL_ATTRIBUTE};
pub use write::is_expired;

use aws_sdk_dynamodb::Client;
use sendtime_domain::{Clock, SystemClock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// DynamoDB-backed store. Cheap to share behind an `Arc`; the SDK client pools connections.
pub struct DynamoStore {
    client: Client,
    table: String,
    round_trips: AtomicU64,
    /// Budget used in timeout errors; the SDK enforces it (see [`DynamoConfig`]).
    operation_timeout: Duration,
    /// Decides which recommendation lists have expired (see `UserDataGet`).
    clock: Arc<dyn Clock>,
    /// Capacity and conflicts of ingest (see [`DynamoStore::ingest_capacity`]).
    ingest: ingest::IngestCounters,
}

impl DynamoStore {
    /// A store over `table` judging expiry by the system clock; `operation_timeout` only labels
    /// timeout errors (the client built by [`connect`] enforces it).
    pub fn new(client: Client, table: impl Into<String>, operation_timeout: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            round_trips: AtomicU64::new(0),
            operation_timeout,
            clock: Arc::new(SystemClock),
            ingest: ingest::IngestCounters::default(),
        }
    }

    /// Judges expiry by this clock instead of the system clock (`sendtime serve --now`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Requests sent to DynamoDB since this store was built (retries by the SDK excluded).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn count_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        sendtime_store::metrics::record_round_trip();
    }
}

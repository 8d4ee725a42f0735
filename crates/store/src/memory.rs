//! The embedded adapter: the whole dataset in process memory. It backs `sendtime serve`'s
//! zero-setup default and the hermetic tests, and honours the same contract as DynamoDB.

use crate::error::StoreError;
use crate::ports::{
    ApplyError, CopyGet, EventsApply, ItemsGet, PopularGet, PutReport, RecordsPut, UserData,
    UserDataGet,
};
use crate::record::Record;
use async_trait::async_trait;
use sendtime_domain::ingest::{
    apply_to_item, apply_to_user, Event, IngestLimits, Outcome, Row, Target, UserRecords,
};
use sendtime_domain::{
    Catalog, Clock, CopyRecord, Item, ItemId, PopularList, PopularScope, UserId,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Tables {
    users: HashMap<UserId, Arc<UserData>>,
    items: Catalog,
    popular: HashMap<PopularScope, Arc<PopularList>>,
    copy: BTreeMap<String, CopyRecord>,
}

/// All records in process memory behind a lock; implements every store port and never fails.
pub struct MemoryStore {
    tables: RwLock<Tables>,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    /// An empty store; `clock` decides when recommendation lists have expired.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tables: RwLock::new(Tables::default()),
            clock,
        }
    }

    /// A store holding `records` (of equal keys, the last wins); `clock` judges list expiry.
    pub fn with_records(clock: Arc<dyn Clock>, records: impl IntoIterator<Item = Record>) -> Self {
        let store = Self::new(clock);
        store.insert(records);
        store
    }

    /// Inserts or replaces records; the same key written twice keeps the last one.
    pub fn insert(&self, records: impl IntoIterator<Item = Record>) -> usize {
        let mut tables = self.write();
        let mut n = 0;
        for record in records {
            n += 1;
            match record {
                Record::User(u) => {
                    let key = u.user_id.clone();
                    Arc::make_mut(tables.users.entry(key).or_default()).profile = Some(u);
                }
                Record::Recs(r) => {
                    let key = r.user_id.clone();
                    Arc::make_mut(tables.users.entry(key).or_default()).recs = Some(r);
                }
                Record::Cart(c) => {
                    let key = c.user_id.clone();
                    Arc::make_mut(tables.users.entry(key).or_default()).cart = Some(c);
                }
                Record::Item(i) => {
                    tables.items.insert(i.item_id.clone(), Arc::new(i));
                }
                Record::Popular(p) => {
                    tables.popular.insert(p.scope.clone(), Arc::new(p));
                }
                Record::Copy(c) => {
                    tables.copy.insert(c.key(), c);
                }
                Record::Score(score) => {
                    let key = score.user_id.clone();
                    Arc::make_mut(tables.users.entry(key).or_default()).score = Some(score);
                }
            }
        }
        n
    }

    /// (users, catalog items, popular lists) held; a user counts once however many records.
    pub fn counts(&self) -> (usize, usize, usize) {
        let t = self.read();
        (t.users.len(), t.items.len(), t.popular.len())
    }

    // A poisoned lock only means another thread panicked mid-insert of plain data; the maps
    // are still valid, so recover the guard instead of propagating the panic to requests.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl UserDataGet for MemoryStore {
    async fn user_data(&self, user_id: &UserId) -> Result<Arc<UserData>, StoreError> {
        let mut data = self.read().users.get(user_id).cloned().unwrap_or_default();
        let now = self.clock.now();
        if data.recs.as_ref().is_some_and(|r| !r.is_live(now)) {
            // (rare: the stored record keeps its list; this answer drops it)
            Arc::make_mut(&mut data).recs = None;
        }
        Ok(data)
    }
}

#[async_trait]
impl ItemsGet for MemoryStore {
    async fn items(&self, ids: &[ItemId]) -> Result<Catalog, StoreError> {
        let tables = self.read();
        Ok(ids
            .iter()
            .filter_map(|id| tables.items.get(id).map(|i| (id.clone(), i.clone())))
            .collect())
    }
}

#[async_trait]
impl PopularGet for MemoryStore {
    async fn popular(&self, scope: &PopularScope) -> Result<Option<Arc<PopularList>>, StoreError> {
        Ok(self.read().popular.get(scope).cloned())
    }
}

#[async_trait]
impl CopyGet for MemoryStore {
    async fn copy_records(&self) -> Result<Arc<[CopyRecord]>, StoreError> {
        Ok(self.read().copy.values().cloned().collect())
    }
}

#[async_trait]
impl RecordsPut for MemoryStore {
    async fn put_records(&self, records: &[Record]) -> Result<PutReport, StoreError> {
        let written = self.insert(records.iter().cloned());
        Ok(PutReport {
            written,
            ..PutReport::default()
        })
    }
}

#[async_trait]
impl EventsApply for MemoryStore {
    /// Under the write lock: the record read, the event applied, the changed record written.
    async fn apply_event(
        &self,
        event: &Event,
        limits: &IngestLimits,
    ) -> Result<Outcome, ApplyError> {
        let mut tables = self.write();
        match event.target() {
            Target::User(user_id) => {
                let stored = tables.users.entry(user_id.clone()).or_default();
                let mut records = UserRecords {
                    profile: stored.profile.clone(),
                    cart: stored.cart.clone(),
                    recs: stored.recs.clone(),
                };
                let outcome = apply_to_user(&mut records, event, limits);
                if let Outcome::Changed(row) = outcome {
                    let data = Arc::make_mut(stored);
                    match row {
                        Row::Profile => data.profile = records.profile,
                        Row::Cart => data.cart = records.cart,
                        Row::Recs => data.recs = records.recs,
                        Row::Item => {}
                    }
                }
                Ok(outcome)
            }
            Target::Item(item_id) => {
                let mut item = tables.items.get(item_id).map(|i| Item::clone(i));
                let outcome = apply_to_item(&mut item, event)?;
                if let (Outcome::Changed(_), Some(item)) = (outcome, item) {
                    tables.items.insert(item_id.clone(), Arc::new(item));
                }
                Ok(outcome)
            }
        }
    }
}

//! The read ports on DynamoDB. Item mapping (attribute maps ↔ domain types) happens here and
//! nowhere else.

use crate::error::map_sdk_error;
use crate::keys::{self, item_pk, popular_pk, user_pk, PK, SK, TTL_ATTRIBUTE};
use crate::write::backoff;
use crate::DynamoStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use sendtime_domain::{Catalog, CopyRecord, Item, ItemId, PopularList, PopularScope, UserId};
use sendtime_store::{CopyGet, ItemsGet, PopularGet, StoreError, UserData, UserDataGet};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// DynamoDB's limit of keys per `BatchGetItem`.
pub const BATCH_GET_MAX: usize = 100;
/// Rounds of `UnprocessedKeys` re-requests before giving up as throttled.
const UNPROCESSED_ROUNDS: u32 = 4;

pub(crate) type AttrMap = HashMap<String, AttributeValue>;

pub(crate) fn decode<T: DeserializeOwned>(item: AttrMap, key: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn string_attr(item: &AttrMap, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl UserDataGet for DynamoStore {
    async fn user_data(&self, user_id: &UserId) -> Result<Arc<UserData>, StoreError> {
        let pk = user_pk(user_id);
        let now = self.clock.now().timestamp();
        self.count_round_trip();
        // DynamoDB's TTL deletes expired lists eventually (up to days later): filter them here.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .filter_expression("attribute_not_exists(#ttl) OR #ttl > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await
            .map_err(|e| map_sdk_error("Query", self.operation_timeout, e))?;
        let mut data = UserData::default();
        for item in out.items.unwrap_or_default() {
            let sk = string_attr(&item, SK).unwrap_or_default();
            let key = format!("{pk}/{sk}");
            match sk.as_str() {
                keys::SK_PROFILE => data.profile = Some(decode(item, &key)?),
                keys::SK_RECS => data.recs = Some(decode(item, &key)?),
                keys::SK_CART => data.cart = Some(decode(item, &key)?),
                keys::SK_SCORE => data.score = Some(decode(item, &key)?),
                // Unknown sort keys belong to newer writers; ignoring them keeps old readers working.
                _ => {}
            }
        }
        Ok(Arc::new(data))
    }
}

#[async_trait]
impl CopyGet for DynamoStore {
    /// One `Query` of the copy partition, every page (a few dozen records in practice).
    async fn copy_records(&self) -> Result<Arc<[CopyRecord]>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            self.count_round_trip();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(keys::COPY_PK.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| map_sdk_error("Query", self.operation_timeout, e))?;
            for item in out.items.unwrap_or_default() {
                let key = format!("COPY/{}", string_attr(&item, SK).unwrap_or_default());
                records.push(decode::<CopyRecord>(item, &key)?);
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        Ok(records.into())
    }
}

#[async_trait]
impl ItemsGet for DynamoStore {
    async fn items(&self, ids: &[ItemId]) -> Result<Catalog, StoreError> {
        let mut unique: Vec<&ItemId> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(id) {
                unique.push(id);
            }
        }
        let mut found = Catalog::with_capacity_and_hasher(unique.len(), Default::default());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys = chunk
                .iter()
                .map(|id| item_key(&item_pk(id), keys::SK_ITEM))
                .collect();
            for item in self.batch_get(keys, None).await? {
                let key = string_attr(&item, PK).unwrap_or_default();
                let decoded: Item = decode(item, &key)?;
                found.insert(decoded.item_id.clone(), std::sync::Arc::new(decoded));
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl PopularGet for DynamoStore {
    async fn popular(&self, scope: &PopularScope) -> Result<Option<Arc<PopularList>>, StoreError> {
        let pk = popular_pk(scope);
        self.count_round_trip();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(&pk, keys::SK_POPULAR)))
            .send()
            .await
            .map_err(|e| map_sdk_error("GetItem", self.operation_timeout, e))?;
        out.item
            .map(|item| decode(item, &pk).map(Arc::new))
            .transpose()
    }
}

pub(crate) fn item_key(pk: &str, sk: &str) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

impl DynamoStore {
    /// One `BatchGetItem` (≤ 100 keys), re-requesting `UnprocessedKeys` with backoff.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<AttrMap>,
        projection: Option<&str>,
    ) -> Result<Vec<AttrMap>, StoreError> {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(|e| StoreError::rejected("BatchGetItem: bad request", e))?,
        );
        let mut out = Vec::new();
        let mut round = 0;
        while let Some(request) = pending.take() {
            if round > 0 {
                tokio::time::sleep(backoff(round)).await;
            }
            if round > UNPROCESSED_ROUNDS {
                return Err(StoreError::Throttled);
            }
            round += 1;
            self.count_round_trip();
            let resp = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| map_sdk_error("BatchGetItem", self.operation_timeout, e))?;
            if let Some(mut responses) = resp.responses {
                out.extend(responses.remove(&self.table).unwrap_or_default());
            }
            pending = resp
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
        }
        Ok(out)
    }
}

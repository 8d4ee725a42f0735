//! Table lifecycle for `sendtime data load` and tests: create if missing, wait until active,
//! enable TTL, and open the connection early (Lambda init).

use crate::error::map_sdk_error;
use crate::keys::{PK, SK, TTL_ATTRIBUTE};
use crate::DynamoStore;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use sendtime_store::StoreError;
use std::time::{Duration, Instant};

impl DynamoStore {
    /// Sends one cheap request (`DescribeTable`) so the TLS connection is open before the
    /// first real request; returns whether the table exists.
    pub async fn warm_up(&self) -> Result<bool, StoreError> {
        self.count_round_trip();
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(map_sdk_error("DescribeTable", self.operation_timeout, e)),
        }
    }

    /// Creates the table (on-demand, TTL on `ttl`) unless it exists; waits until it is
    /// active. Returns true if it was created.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        if self.warm_up().await? {
            return Ok(false);
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let bad = |e| StoreError::rejected("CreateTable: bad request", e);
        self.count_round_trip();
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(PK).map_err(bad)?)
            .attribute_definitions(attr(SK).map_err(bad)?)
            .key_schema(key(PK, KeyType::Hash).map_err(bad)?)
            .key_schema(key(SK, KeyType::Range).map_err(bad)?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Someone else created it between our check and our create: fine.
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(false),
            Err(e) => return Err(map_sdk_error("CreateTable", self.operation_timeout, e)),
        }
        self.wait_active(Duration::from_secs(120)).await?;
        self.count_round_trip();
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(|e| StoreError::rejected("UpdateTimeToLive: bad request", e))?;
        if let Err(e) = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
        {
            // Expired lists are filtered at read time anyway; TTL only saves storage.
            tracing::warn!(table = %self.table, error = %e, "could not enable TTL");
        }
        Ok(true)
    }

    async fn wait_active(&self, limit: Duration) -> Result<(), StoreError> {
        let start = Instant::now();
        loop {
            self.count_round_trip();
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| map_sdk_error("DescribeTable", self.operation_timeout, e))?;
            if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(StoreError::Timeout(limit));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deletes the table (tests clean up after themselves).
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.count_round_trip();
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error("DeleteTable", self.operation_timeout, e))
    }
}

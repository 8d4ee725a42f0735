//! The Lambda binary every block function runs, and the ingest function too: only a
//! composition root. Which block a function serves (`SENDTIME_BLOCK`) or whether it ingests
//! events (`SENDTIME_ROLE=ingest`), its configuration, the DynamoDB client, the cache and the
//! router are read and built once in the init phase by `sendtime_lambda::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sendtime_lambda::run().await
}

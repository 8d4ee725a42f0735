//! The Lambda binary every block function runs: only a composition root. Which block a
//! function serves (`SENDTIME_BLOCK`), its configuration, the DynamoDB client, the cache and
//! the router are read and built once in the init phase by `sendtime_lambda::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sendtime_lambda::run().await
}

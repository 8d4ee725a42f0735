//! Lambda function for the `recommendations` block: only a composition root. Configuration, the
//! DynamoDB client, the cache and the router are built once in the init phase by
//! `sendtime_lambda::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sendtime_lambda::run(sendtime_domain::BlockKind::Recommendations).await
}

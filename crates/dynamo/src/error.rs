//! Mapping SDK errors to the store's error type: throttling and timeouts stay distinguishable
//! because callers treat them differently (back off vs. fall back).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use sendtime_store::StoreError;
use std::time::Duration;

pub(crate) fn map_sdk_error<E, R>(
    operation: &'static str,
    budget: Duration,
    err: SdkError<E, R>,
) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => StoreError::Timeout(budget),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::unavailable(format!("{operation}: no answer from DynamoDB"), err)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded" => StoreError::Throttled,
                "InternalServerError" | "ServiceUnavailable" => {
                    StoreError::unavailable(format!("{operation}: {code}"), err)
                }
                _ => StoreError::rejected(format!("{operation}: {code}"), err),
            }
        }
        _ => StoreError::unavailable(format!("{operation}: request failed"), err),
    }
}

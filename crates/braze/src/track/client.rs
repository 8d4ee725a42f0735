//! One `POST /users/track` and what Braze's answer means. Braze's request: "Content-Type:
//! application/json", "Authorization: Bearer YOUR_REST_API_KEY" — and its three answers: a
//! success (`{"message": "success", "attributes_processed": …}`), a "successful message with
//! non-fatal errors, such as one invalid event object out of a long list" (`"errors"` beside
//! `"message": "success"`: "any data not affected by an error in the `errors` array will
//! still be processed"), and a fatal error (`"message": <fatal error message>`)
//! — https://www.braze.com/docs/api/endpoints/user_data/post_user_track/
//!
//! Status codes, from https://www.braze.com/docs/api/errors/: "`429 Rate Limited` Over rate
//! limit", "`5XX Internal Server Error` You should retry your request with exponential
//! backoff", and fatal 4xx such as "`401 Unauthorized` Unknown or missing REST API Key" and
//! "`400 Max Input Length Exceeded` Caused by calling more than 75 external ids when hitting
//! the User Track endpoint".

use super::rate::RateHeaders;
use std::time::Duration;

/// A Braze REST API key: shown as `***` by `Debug` and `Display`, so no log or error prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("the API key is empty".into());
        }
        Ok(Self(s.trim().to_owned()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An object Braze refused inside an accepted request.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectError {
    /// Index in the request's `attributes` array, when Braze gave one.
    pub index: Option<usize>,
    /// Braze's words.
    pub message: String,
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Answer {
    /// 2xx: the batch is accepted, except the objects named in `errors`.
    Accepted {
        /// Non-fatal errors, per object.
        errors: Vec<ObjectError>,
    },
    /// 429: wait (`retry_after` if Braze said) and send the same batch again.
    RateLimited {
        /// `Retry-After` or `X-RateLimit-Retry-After`, seconds.
        retry_after: Option<Duration>,
    },
    /// 5xx or no answer: retry with backoff.
    Transient {
        /// `http 503: …` or the transport error.
        reason: String,
    },
    /// Any other status: retrying cannot help.
    Fatal {
        /// The HTTP status.
        status: u16,
        /// Braze's `message` (or the body's start).
        message: String,
    },
}

/// Sends batches to one workspace's `/users/track`.
#[derive(Clone)]
pub struct TrackClient {
    http: reqwest::Client,
    url: String,
    key: ApiKey,
}

impl TrackClient {
    /// A client for `endpoint` (the REST endpoint, e.g. `https://rest.iad-01.braze.com`).
    pub fn new(
        endpoint: &str,
        key: ApiKey,
        timeout: Duration,
        connections: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(connections)
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/users/track", endpoint.trim_end_matches('/')),
            key,
        })
    }

    /// The URL posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One attempt: posts `body`, returns the answer and its rate headers.
    pub async fn post(&self, body: Vec<u8>) -> (Answer, Option<RateHeaders>, bool) {
        let sent = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key.0)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // The error names the URL, never the headers: the key stays out of it.
            Err(e) => {
                return (
                    Answer::Transient {
                        reason: format!("no answer: {}", chain(&e)),
                    },
                    None,
                    false,
                )
            }
        };
        let status = response.status();
        let headers = RateHeaders::from_headers(response.headers());
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return (
                    Answer::Transient {
                        reason: format!("answer cut short: {}", chain(&e)),
                    },
                    headers,
                    true,
                )
            }
        };
        let answer = if status.is_success() {
            Answer::Accepted {
                errors: object_errors(&text),
            }
        } else if status.as_u16() == 429 {
            Answer::RateLimited { retry_after }
        } else if status.is_server_error() {
            Answer::Transient {
                reason: format!("http {}: {}", status.as_u16(), message(&text)),
            }
        } else {
            Answer::Fatal {
                status: status.as_u16(),
                message: message(&text),
            }
        };
        (answer, headers, true)
    }
}

/// The error and its sources, one line (the URL is in it; headers, so the key, never are).
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP standard), else Braze's `X-RateLimit-Retry-After`:
/// "The number of seconds to wait before retrying a rate-limited request" — documented for
/// the Messaging API (https://braze.com/docs/api/messaging_api/rate_limits); read here too
/// as an assumption, in case `/users/track` sends it.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    ["retry-after", "x-ratelimit-retry-after"]
        .iter()
        .find_map(|name| {
            let v: f64 = headers.get(*name)?.to_str().ok()?.trim().parse().ok()?;
            (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(3600.0)))
        })
}

/// Braze's `message`, or the start of a body that is not Braze's JSON.
fn message(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => match v.get("message").and_then(|m| m.as_str()) {
            Some(m) => m.to_owned(),
            None => v.to_string().chars().take(300).collect(),
        },
        Err(_) => text.trim().chars().take(300).collect(),
    }
}

/// The `errors` of a 2xx answer. Braze documents only `{ <minor error message> }`; the
/// objects carry `type`, `input_array` and `index` (an assumption from a public client's
/// fixture of a real answer: `{"type":"'external_id' or 'braze_id' or 'user_alias' is
/// required","input_array":"attributes","index":1}` — github.com/dietdoctor/go-braze,
/// users_test.go). A plain string, or an object without an index, is kept with no index.
pub fn object_errors(text: &str) -> Vec<ObjectError> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(errors) = v.get("errors").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| match e {
            serde_json::Value::String(s) => ObjectError {
                index: None,
                message: s.clone(),
            },
            other => {
                let attributes = other
                    .get("input_array")
                    .and_then(|a| a.as_str())
                    .is_none_or(|a| a == "attributes");
                ObjectError {
                    index: other
                        .get("index")
                        .and_then(|i| i.as_u64())
                        .filter(|_| attributes)
                        .and_then(|i| usize::try_from(i).ok()),
                    message: other
                        .get("type")
                        .and_then(|t| t.as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| other.to_string()),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_fatal_errors_of_an_accepted_request_are_read_per_object() {
        // GIVEN a 201 body with one indexed error and one plain string
        let body = r#"{"message":"success","errors":[{"type":"'external_id' or 'braze_id' or 'user_alias' is required","input_array":"attributes","index":1},"something minor"]}"#;
        // WHEN its errors are read
        let errors = object_errors(body);
        // THEN the first names object 1, the second no object
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].index, Some(1));
        assert!(errors[0].message.contains("is required"));
        assert_eq!(
            (errors[1].index, errors[1].message.as_str()),
            (None, "something minor")
        );
        assert!(object_errors(r#"{"message":"success"}"#).is_empty());
    }

    #[test]
    fn an_api_key_never_prints() {
        // GIVEN a key WHEN it is formatted either way THEN it is hidden
        let key: ApiKey = "secret-123".parse().unwrap();
        assert_eq!(format!("{key} {key:?}"), "*** ApiKey(***)");
    }
}

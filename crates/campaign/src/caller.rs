//! The one HTTP caller of our API, shared by `campaign send` and `loadtest`: a client built
//! once (connections reused, the caller key set once as a default header, never logged),
//! block URLs from the shared path, and one call → one typed [`Outcome`].

use sendtime_domain::wire::{self, KEY_HEADER};
use sendtime_domain::{BlockKind, UserId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// e.g. `https://api.example.com` (a deployed `ApiUrl`) or `http://127.0.0.1:3000`.
    pub base_url: String,
    /// The caller key, sent in the key header when given.
    pub api_key: Option<String>,
    /// Other headers (name, value) sent with every call.
    pub headers: Vec<(String, String)>,
    /// Per-call timeout (Braze waits 2 s).
    pub timeout: Duration,
    /// Idle connections kept per host: at least the calls expected in flight.
    pub max_idle_per_host: usize,
}

/// Why the caller could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A header name or value is not valid HTTP; holds the header name.
    #[error("--header {0:?} is not a valid HTTP header")]
    Header(String),
}

/// The class of an outcome, as reports count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StatusClass {
    /// A 2xx answer.
    #[serde(rename = "2xx")]
    Success,
    /// A 4xx answer other than 429 (the caller's mistake: not retried).
    #[serde(rename = "4xx")]
    ClientError,
    /// 429 Too Many Requests.
    #[serde(rename = "429")]
    Throttled,
    /// A 5xx answer.
    #[serde(rename = "5xx")]
    ServerError,
    /// No answer within the timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// The connection could not be made.
    #[serde(rename = "connect_error")]
    ConnectError,
    /// The connection broke (reset, a torn body) or the answer was otherwise unusable.
    #[serde(rename = "transport_error")]
    TransportError,
    /// Not sent: a load test's cap on calls in flight was reached (the generator could not
    /// keep the schedule; counted, never hidden as waiting).
    #[serde(rename = "in_flight_cap")]
    InFlightCap,
}

impl StatusClass {
    /// The stable name used in reports and result files (`2xx`, `429`, `timeout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::Throttled => "429",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::TransportError => "transport_error",
            Self::InFlightCap => "in_flight_cap",
        }
    }

    /// The class of an HTTP status code.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            429 => Self::Throttled,
            500..=599 => Self::ServerError,
            _ => Self::ClientError,
        }
    }
}

/// What a 2xx block answer said, for the result log (read only when asked for).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerSummary {
    /// The answer's `eligible`.
    pub eligible: Option<bool>,
    /// The answer's `stage`.
    pub stage: Option<String>,
    /// The answer's `source`.
    pub source: Option<String>,
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx answer, its body read (and summarised when asked for).
    Answered {
        /// The status code.
        status: u16,
        /// The block's `eligible`/`stage`/`source`, when asked for and the body is a block.
        answer: Option<AnswerSummary>,
    },
    /// A non-2xx answer.
    Refused {
        /// The status code.
        status: u16,
        /// The server's `Retry-After`, in seconds form (capped at 300 s).
        retry_after: Option<Duration>,
        /// The API's stable error code from a JSON error body, if any.
        code: Option<String>,
    },
    /// No answer, for this class of reason (timeout, connect or transport error).
    NoAnswer(StatusClass),
}

impl Outcome {
    /// The class reports count this outcome under.
    pub fn class(&self) -> StatusClass {
        match self {
            Self::Answered { .. } => StatusClass::Success,
            Self::Refused { status, .. } => StatusClass::of_status(*status),
            Self::NoAnswer(class) => *class,
        }
    }

    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answered { status, .. } | Self::Refused { status, .. } => Some(*status),
            Self::NoAnswer(_) => None,
        }
    }
}

/// The shared HTTP caller; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Caller {
    client: reqwest::Client,
    base_url: String,
}

impl Caller {
    /// Builds the client once: default headers (the key among them), timeout, pool size.
    pub fn new(config: &CallerConfig) -> Result<Self, CallerError> {
        let mut headers = reqwest::header::HeaderMap::new();
        let key = config.api_key.iter().map(|k| (KEY_HEADER, k.as_str()));
        let extra = config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in key.chain(extra) {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| CallerError::Header(k.to_owned()))?;
            let mut value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| CallerError::Header(k.to_owned()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build()?;
        Ok(Self {
            client,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL of `block` for `user` on this API.
    pub fn url(&self, user: &UserId, block: BlockKind) -> String {
        wire::block_url(&self.base_url, user, block)
    }

    /// One GET of `url`. With `read_answer`, a 2xx body is parsed for the block's
    /// `eligible`/`stage`/`source`; without, it is read and dropped (a load test measures the
    /// whole answer but has no use for its content).
    pub async fn call(&self, url: &str, read_answer: bool) -> Outcome {
        let resp = match self.client.get(url).send().await {
            Ok(resp) => resp,
            Err(e) => return Outcome::NoAnswer(error_class(&e)),
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            let answer = if read_answer {
                match resp.json::<serde_json::Value>().await {
                    Ok(v) => Some(AnswerSummary {
                        eligible: v.get("eligible").and_then(|x| x.as_bool()),
                        stage: v.get("stage").and_then(|x| x.as_str()).map(str::to_owned),
                        source: v.get("source").and_then(|x| x.as_str()).map(str::to_owned),
                    }),
                    Err(e) if e.is_timeout() => return Outcome::NoAnswer(StatusClass::Timeout),
                    Err(_) => None,
                }
            } else {
                match resp.bytes().await {
                    Ok(_) => None,
                    Err(e) => return Outcome::NoAnswer(error_class(&e)),
                }
            };
            return Outcome::Answered { status, answer };
        }
        let retry_after = retry_after(&resp);
        let code = resp
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        Outcome::Refused {
            status,
            retry_after,
            code,
        }
    }
}

fn error_class(e: &reqwest::Error) -> StatusClass {
    if e.is_timeout() {
        StatusClass::Timeout
    } else if e.is_connect() {
        StatusClass::ConnectError
    } else {
        StatusClass::TransportError
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; treated as absent).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(300.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_statuses() {
        assert_eq!(StatusClass::of_status(204), StatusClass::Success);
        assert_eq!(StatusClass::of_status(404), StatusClass::ClientError);
        assert_eq!(StatusClass::of_status(429), StatusClass::Throttled);
        assert_eq!(StatusClass::of_status(503), StatusClass::ServerError);
        for c in [
            StatusClass::Success,
            StatusClass::InFlightCap,
            StatusClass::Throttled,
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<StatusClass>(&json).unwrap(), c);
        }
    }
}

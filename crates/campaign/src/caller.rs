//! The one HTTP caller of our API, shared by `campaign send` and `loadtest`: HTTP/1.1 over
//! hyper's connection API, kept lean because a load generator's CPU per request bounds the
//! rate it can measure. Keep-alive connections are pooled per caller (a plain stack: a
//! caller lives on its engine's one thread, see [`crate::timer::on_own_thread`]); https goes
//! through rustls with the webpki roots. What every request carries is built once: the
//! headers (the caller key among them, marked sensitive, never logged) per caller, the
//! block path per (user, block) as a [`Target`]. One call → one typed [`Outcome`].
//! [`Caller::post_json`] sends a JSON body on the same pool (`events send`'s batches).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sendtime_domain::wire::{KEY_HEADER, USERS_PREFIX};
use sendtime_domain::{BlockKind, UserId};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

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
    /// The base URL is not an `http://` or `https://` URL with a host.
    #[error("the base URL {0:?} is not an http:// or https:// URL with a host")]
    BaseUrl(String),
    /// The TLS configuration could not be built.
    #[error("could not set up TLS: {0}")]
    Tls(String),
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
    /// Every class, in declaration order: `class as usize` is its index here.
    pub const ALL: [StatusClass; 8] = [
        Self::Success,
        Self::ClientError,
        Self::Throttled,
        Self::ServerError,
        Self::Timeout,
        Self::ConnectError,
        Self::TransportError,
        Self::InFlightCap,
    ];

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

/// What one POST came to ([`Caller::post_json`]): the outcome, and the answer's body
/// (empty when no answer came).
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// The outcome, classed as a GET's is.
    pub outcome: Outcome,
    /// The answer's body, whole.
    pub body: Bytes,
}

impl Posted {
    fn no_answer(class: StatusClass) -> Self {
        Self {
            outcome: Outcome::NoAnswer(class),
            body: Bytes::new(),
        }
    }
}

/// A request target built once: the origin-form path of one block for one user (with the
/// base URL's path prefix); cloning it is a reference-count increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(Uri);

impl Target {
    /// The path, e.g. `/v1/users/u000001/recommendations`.
    pub fn path(&self) -> &str {
        self.0.path()
    }
}

/// The HTTP caller: its connection pool, and what every request carries. Cheap to clone
/// (one pool); not `Send`: it lives on the engine thread that made it.
#[derive(Clone)]
pub struct Caller {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("https", &self.inner.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A GET's empty `Full` ends at once: hyper sends it with no body and no length, as `Empty`.
type Sender = SendRequest<Full<Bytes>>;

struct Inner {
    /// Host to connect to (brackets of an IPv6 literal removed).
    host: String,
    port: u16,
    /// The base URL's path, without a trailing `/` (empty for none).
    prefix: String,
    /// Host, the key and the extra headers.
    headers: HeaderMap,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    timeout: Duration,
    max_idle: usize,
    /// Idle keep-alive connections, most recently used on top.
    idle: RefCell<Vec<Sender>>,
    /// The host's addresses, resolved at the first connection.
    addrs: RefCell<Vec<SocketAddr>>,
    /// Failed connections by the operating system's error class (`connection refused`…).
    os_errors: RefCell<BTreeMap<String, u64>>,
}

/// How a request failed before an answer began.
enum Failure {
    /// No connection could be made (TCP, TLS or the HTTP handshake).
    Connect,
    /// The connection broke before an answer began.
    Transport,
}

impl Caller {
    /// Parses the base URL, builds the headers (the key among them) and, for https, the TLS
    /// client. No connection is made until the first call.
    pub fn new(config: &CallerConfig) -> Result<Self, CallerError> {
        let bad_url = || CallerError::BaseUrl(config.base_url.clone());
        let uri: Uri = config.base_url.parse().map_err(|_| bad_url())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad_url()),
        };
        let authority = uri.authority().ok_or_else(bad_url)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad_url());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        // The Host header: the authority as written, without any user info.
        let host_header = authority.as_str().rsplit('@').next().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_str(host_header).map_err(|_| bad_url())?,
        );
        let key = config.api_key.iter().map(|k| (KEY_HEADER, k.as_str()));
        let extra = config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in key.chain(extra) {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| CallerError::Header(k.to_owned()))?;
            let mut value =
                HeaderValue::from_str(v).map_err(|_| CallerError::Header(k.to_owned()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let tls = if https {
            let server_name =
                rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| bad_url())?;
            Some((tls_connector()?, server_name))
        } else {
            None
        };
        Ok(Self {
            inner: Rc::new(Inner {
                host: host.to_owned(),
                port,
                prefix: uri.path().trim_end_matches('/').to_owned(),
                headers,
                tls,
                timeout: config.timeout,
                max_idle: config.max_idle_per_host.max(1),
                idle: RefCell::new(Vec::new()),
                addrs: RefCell::new(Vec::new()),
                os_errors: RefCell::new(BTreeMap::new()),
            }),
        })
    }

    /// The target of `block` for `user` on this API: `{base path}/v1/users/{user}/{block}`.
    pub fn target(&self, user: &UserId, block: BlockKind) -> Target {
        let (prefix, user, block) = (&self.inner.prefix, user.as_str(), block.as_str());
        let mut path =
            String::with_capacity(prefix.len() + USERS_PREFIX.len() + user.len() + 1 + block.len());
        path.push_str(prefix);
        path.push_str(USERS_PREFIX);
        path.push_str(user);
        path.push('/');
        path.push_str(block);
        // A validated user id and a block name are valid path characters, and the prefix
        // came from a parsed URI, so this parses; the root is a harmless fallback.
        Target(Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/")))
    }

    /// One GET of `target`, within the timeout. With `read_answer`, a 2xx body is parsed for
    /// the block's `eligible`/`stage`/`source`; without, it is read and dropped (a load test
    /// measures the whole answer but has no use for its content).
    pub async fn call(&self, target: &Target, read_answer: bool) -> Outcome {
        match tokio::time::timeout(self.inner.timeout, self.exchange(target, read_answer)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::NoAnswer(StatusClass::Timeout),
        }
    }

    /// The target of `path` (e.g. `/v1/events`) under the base URL's path.
    pub fn path_target(&self, path: &str) -> Result<Target, CallerError> {
        let full = format!("{}{path}", self.inner.prefix);
        Uri::try_from(full.as_str())
            .map(Target)
            .map_err(|_| CallerError::BaseUrl(full))
    }

    /// One POST of the JSON `body` to `target`, within the timeout: the outcome, and the
    /// answer's body whole (a 2xx's results, a refusal's error). As with a GET, a pooled
    /// connection that fails before any answer is tried once more on a fresh one — safe only
    /// because what is posted is idempotent (events carry their id, and applying one twice
    /// changes nothing): posting only such bodies is the caller's contract.
    pub async fn post_json(&self, target: &Target, body: Bytes) -> Posted {
        match tokio::time::timeout(self.inner.timeout, self.post_exchange(target, body)).await {
            Ok(posted) => posted,
            Err(_) => Posted::no_answer(StatusClass::Timeout),
        }
    }

    async fn post_exchange(&self, target: &Target, body: Bytes) -> Posted {
        let request = || {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = http::Method::POST;
            *req.uri_mut() = target.0.clone();
            *req.headers_mut() = self.inner.headers.clone();
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            req
        };
        let no_answer = |f| Posted::no_answer(failure_class(f));
        let (sender, reused) = match self.checkout().await {
            Ok(c) => c,
            Err(f) => return no_answer(f),
        };
        let (sender, resp) = match Self::send_request(sender, request()).await {
            Ok(r) => r,
            Err(Failure::Transport) if reused => {
                let sender = match self.connect_boxed().await {
                    Ok(s) => s,
                    Err(f) => return no_answer(f),
                };
                match Self::send_request(sender, request()).await {
                    Ok(r) => r,
                    Err(f) => return no_answer(f),
                }
            }
            Err(f) => return no_answer(f),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let Ok(answer) = resp.into_body().collect().await else {
            return Posted::no_answer(StatusClass::TransportError);
        };
        self.checkin(sender);
        let body = answer.to_bytes();
        let outcome = if (200..300).contains(&status) {
            Outcome::Answered {
                status,
                answer: None,
            }
        } else {
            Outcome::Refused {
                status,
                retry_after,
                code: error_code(&body),
            }
        };
        Posted { outcome, body }
    }

    async fn exchange(&self, target: &Target, read_answer: bool) -> Outcome {
        // A pooled connection the server closed while it sat idle fails before the request
        // leaves (or as it leaves, before any answer): a GET is safe to send once more, on a
        // fresh connection.
        let (sender, reused) = match self.checkout().await {
            Ok(c) => c,
            Err(f) => return Outcome::NoAnswer(failure_class(f)),
        };
        let (sender, resp) = match self.send(sender, target).await {
            Ok(r) => r,
            Err(Failure::Transport) if reused => {
                let sender = match self.connect_boxed().await {
                    Ok(s) => s,
                    Err(f) => return Outcome::NoAnswer(failure_class(f)),
                };
                match self.send(sender, target).await {
                    Ok(r) => r,
                    Err(f) => return Outcome::NoAnswer(failure_class(f)),
                }
            }
            Err(f) => return Outcome::NoAnswer(failure_class(f)),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let body = resp.into_body();
        if (200..300).contains(&status) {
            if !read_answer {
                let mut body = body;
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        return Outcome::NoAnswer(StatusClass::TransportError);
                    }
                }
                self.checkin(sender);
                return Outcome::Answered {
                    status,
                    answer: None,
                };
            }
            // A body torn after a 2xx head still counts as answered, without a summary.
            let answer = match body.collect().await {
                Ok(b) => {
                    self.checkin(sender);
                    summarise(&b.to_bytes())
                }
                Err(_) => None,
            };
            return Outcome::Answered { status, answer };
        }
        let code = match body.collect().await {
            Ok(b) => {
                self.checkin(sender);
                error_code(&b.to_bytes())
            }
            Err(_) => None,
        };
        Outcome::Refused {
            status,
            retry_after,
            code,
        }
    }

    /// Sends one request on `sender`; its answer's head, and the sender to reuse.
    async fn send(
        &self,
        sender: Sender,
        target: &Target,
    ) -> Result<(Sender, http::Response<hyper::body::Incoming>), Failure> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = target.0.clone();
        *req.headers_mut() = self.inner.headers.clone();
        Self::send_request(sender, req).await
    }

    /// Sends `req` on `sender`; its answer's head, and the sender to reuse.
    async fn send_request(
        mut sender: Sender,
        req: Request<Full<Bytes>>,
    ) -> Result<(Sender, http::Response<hyper::body::Incoming>), Failure> {
        match sender.try_send_request(req).await {
            Ok(resp) => Ok((sender, resp)),
            Err(_) => Err(Failure::Transport),
        }
    }

    /// An idle connection ready for a request (and `true`), or a new one (and `false`).
    async fn checkout(&self) -> Result<(Sender, bool), Failure> {
        loop {
            let Some(mut sender) = self.inner.idle.borrow_mut().pop() else {
                return Ok((self.connect_boxed().await?, false));
            };
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
    }

    /// Back to the pool after a complete answer, unless the pool is full.
    fn checkin(&self, sender: Sender) {
        let mut idle = self.inner.idle.borrow_mut();
        if idle.len() < self.inner.max_idle && !sender.is_closed() {
            idle.push(sender);
        }
    }

    /// [`Self::connect`] on the heap: a connection is made rarely, and its future (TLS and
    /// handshake states, some kilobytes) would otherwise be part of every call's future, which
    /// is moved — copied whole — each time a call's task is spawned.
    async fn connect_boxed(&self) -> Result<Sender, Failure> {
        Box::pin(self.connect()).await
    }

    /// A new keep-alive connection: TCP (no Nagle), TLS for https, the HTTP/1.1 handshake;
    /// its I/O runs in a local task until it closes.
    async fn connect(&self) -> Result<Sender, Failure> {
        let addrs = self.addrs().await?;
        let mut stream = None;
        let mut error = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => error = Some(e.kind()),
            }
        }
        let stream = stream.ok_or_else(|| self.connect_failed(error))?;
        let _ = stream.set_nodelay(true);
        match &self.inner.tls {
            None => handshake(stream).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| self.connect_failed(Some(e.kind())))?;
                handshake(tls).await
            }
        }
    }

    /// Counts a failed connection under its OS error class, when it has one.
    fn connect_failed(&self, kind: Option<std::io::ErrorKind>) -> Failure {
        if let Some(kind) = kind {
            *self
                .inner
                .os_errors
                .borrow_mut()
                .entry(kind.to_string())
                .or_default() += 1;
        }
        Failure::Connect
    }

    /// Failed connections so far, by the operating system's error class (`connection
    /// refused`, `timed out`…): what a `connect_error` was.
    pub fn os_errors(&self) -> BTreeMap<String, u64> {
        self.inner.os_errors.borrow().clone()
    }

    /// The host's addresses, resolved once.
    async fn addrs(&self) -> Result<Vec<SocketAddr>, Failure> {
        if self.inner.addrs.borrow().is_empty() {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((self.inner.host.as_str(), self.inner.port))
                    .await
                    .map_err(|e| self.connect_failed(Some(e.kind())))?
                    .collect();
            if found.is_empty() {
                return Err(Failure::Connect);
            }
            *self.inner.addrs.borrow_mut() = found;
        }
        Ok(self.inner.addrs.borrow().clone())
    }
}

/// The HTTP/1.1 handshake on `io`; the connection's task is spawned on the local set.
async fn handshake<T>(io: T) -> Result<Sender, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| Failure::Connect)?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// rustls with the webpki roots and the ring provider, HTTP/1.1 by ALPN.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, CallerError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CallerError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn failure_class(f: Failure) -> StatusClass {
    match f {
        Failure::Connect => StatusClass::ConnectError,
        Failure::Transport => StatusClass::TransportError,
    }
}

/// A 2xx body's `eligible`/`stage`/`source`; `None` when it is not a JSON object. Reading
/// stops once the three are found: a block answer names them before its items, so the
/// bulk of the body is skipped unparsed.
fn summarise(body: &[u8]) -> Option<AnswerSummary> {
    use serde::de::Deserializer as _;
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    match de.deserialize_map(FieldsVisitor(&mut found)) {
        Ok(()) => {}
        Err(_) if found.complete => {}
        Err(_) => return None,
    }
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Some(AnswerSummary {
        eligible: found.eligible.and_then(|v| v.as_bool()),
        stage: text(found.stage),
        source: text(found.source),
    })
}

/// The three fields of a block answer the result log keeps, as found; `complete` once all
/// three are (the visitor then stops reading with an error that is not a failure).
#[derive(Default)]
struct Found {
    complete: bool,
    eligible: Option<serde_json::Value>,
    stage: Option<serde_json::Value>,
    source: Option<serde_json::Value>,
}

/// Fills [`Found`] from a JSON object, skipping every other member without building it.
struct FieldsVisitor<'a>(&'a mut Found);

impl<'de> serde::de::Visitor<'de> for FieldsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<FieldName>()? {
            let slot = match key {
                FieldName::Eligible => &mut self.0.eligible,
                FieldName::Stage => &mut self.0.stage,
                FieldName::Source => &mut self.0.source,
                FieldName::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
            if self.0.eligible.is_some() && self.0.stage.is_some() && self.0.source.is_some() {
                self.0.complete = true;
                return Err(serde::de::Error::custom("all three fields found"));
            }
        }
        Ok(())
    }
}

/// A member name, read without allocating.
enum FieldName {
    Eligible,
    Stage,
    Source,
    Other,
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldName, E> {
                Ok(match v {
                    "eligible" => FieldName::Eligible,
                    "stage" => FieldName::Stage,
                    "source" => FieldName::Source,
                    _ => FieldName::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The API's stable error code from a JSON error body (`{"error":{"code":…}}`).
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str().map(str::to_owned)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
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
        for (i, c) in StatusClass::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<StatusClass>(&json).unwrap(), c);
        }
    }

    #[test]
    fn targets_keep_the_base_path_and_headers_the_key() {
        let config = |base: &str| CallerConfig {
            base_url: base.to_owned(),
            api_key: Some("secret".into()),
            headers: vec![("x-extra".into(), "1".into())],
            timeout: Duration::from_secs(1),
            max_idle_per_host: 4,
        };
        let user = UserId::demo(7);
        let c = Caller::new(&config("https://api.example.com/prod/")).unwrap();
        assert_eq!(
            c.target(&user, BlockKind::Cart).path(),
            "/prod/v1/users/u000007/cart"
        );
        assert_eq!(c.inner.port, 443);
        assert_eq!(c.inner.headers[HOST], "api.example.com");
        assert!(c.inner.headers[KEY_HEADER].is_sensitive());
        let c = Caller::new(&config("http://127.0.0.1:3000")).unwrap();
        assert_eq!(
            c.target(&user, BlockKind::Recommendations).path(),
            "/v1/users/u000007/recommendations"
        );
        assert_eq!((c.inner.host.as_str(), c.inner.port), ("127.0.0.1", 3000));
        assert_eq!(c.inner.headers[HOST], "127.0.0.1:3000");
        let c = Caller::new(&config("http://[::1]:8080/")).unwrap();
        assert_eq!(c.inner.host, "::1");
        for bad in ["ftp://x", "not a url", "/just/a/path"] {
            assert!(Caller::new(&config(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_path_target_keeps_the_base_path() {
        // GIVEN a base URL with a stage path WHEN the events path is targeted THEN it is kept
        let c = Caller::new(&CallerConfig {
            base_url: "https://api.example.com/prod/".into(),
            api_key: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            max_idle_per_host: 1,
        })
        .unwrap();
        assert_eq!(
            c.path_target("/v1/events").unwrap().path(),
            "/prod/v1/events"
        );
        assert!(c.path_target("/v1/a b").is_err());
    }

    #[test]
    fn a_calls_future_stays_small_because_connecting_is_boxed() {
        // Every call's future is moved (copied whole) as its task is spawned: with the TLS
        // and handshake states inline it was 4.5 KB and its copies a tenth of a send's CPU.
        let c = Caller::new(&CallerConfig {
            base_url: "https://api.example.com/".into(),
            api_key: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            max_idle_per_host: 4,
        })
        .unwrap();
        let target = c.target(&UserId::demo(1), BlockKind::Cart);
        let size = std::mem::size_of_val(&c.call(&target, true));
        assert!(size < 1536, "a call's future is {size} bytes");
    }

    #[test]
    fn answers_are_summarised_from_the_three_fields() {
        let a = summarise(
            br#"{"items":[{"id":1}],"eligible":true,"stage":"personalized","source":"cache"}"#,
        );
        assert_eq!(
            a,
            Some(AnswerSummary {
                eligible: Some(true),
                stage: Some("personalized".into()),
                source: Some("cache".into()),
            })
        );
        let a = summarise(br#"{"eligible":null,"stage":3}"#).unwrap();
        assert_eq!(a, AnswerSummary::default());
        assert_eq!(summarise(b"not json"), None);
        assert_eq!(summarise(b"[1,2]"), None);
        // the three found before a torn tail: read; a body torn before them: not
        let a = summarise(br#"{"eligible":false,"stage":"x","source":"y","items":[{"#).unwrap();
        assert_eq!((a.eligible, a.stage.as_deref()), (Some(false), Some("x")));
        assert_eq!(summarise(br#"{"eligible":false,"items":[{"#), None);
        assert_eq!(
            error_code(br#"{"error":{"code":"unknown_block"}}"#).as_deref(),
            Some("unknown_block")
        );
    }
}

//! Just enough of Braze's Liquid to render our documented templates in tests: the `liquid`
//! crate's standard library plus Braze's `hmac_sha256_hex` (input is the message, the
//! argument the secret — Braze's documented order) and `url_param_escape` filters, and its
//! `${attribute}` syntax for user attributes (rendered as the global of that name).
//!
//! [`Braze`] adds a send-time emulator of the `{% connected_content %}`, `{% abort_message() %}`
//! and `{% message_extras %}` tags that calls URLs for real. Each rule it follows is quoted
//! from Braze's documentation, with its URL, beside the code that applies it:
//! - a GET with `User-Agent: Braze Sender <hash>`, `X-Braze-Sender-Version`,
//!   `Accept-Encoding: gzip`, `Content-Type: application/json` and `Accept: */*` (or both
//!   set to `:content_type`), headers from `:auth_credentials` and `:headers` sent as given;
//!   no redirect followed; no answer within 2 s is a failure;
//! - a 2xx JSON object is stored in the `:save` variable (default `connected`) with
//!   `__http_status_code__` added; other 2xx JSON (an array) is stored without it; a 2xx
//!   body that is not JSON is inserted in place of the tag and stores nothing, `:save` or
//!   not; any other status, a timeout or a connection error renders an empty string and
//!   stores nothing;
//! - GET responses are cached by URL for 5 minutes, or `:cache_max_age` seconds (clamped to
//!   5 min..4 h), unless `:no_cache`; bodies over 1 MB are not cached (only 2xx bodies are
//!   cached: an assumption);
//! - `:retry`: a 5xx, a timeout or a connection error re-renders the whole message, up to 5
//!   retries, then aborts it; an `abort_message` reached in the same render wins (no retry);
//! - `abort_message` takes a string literal, no Liquid, or nothing; an aborted message is not
//!   sent and records no extras;
//! - `message_extras :key K :value V` records a key/value pair for the message's Send event
//!   (Liquid variables allowed in both, no other Liquid), first key wins, 1,000 bytes in all
//!   ([`message_extras`]).

mod message_extras;

pub use message_extras::{MessageExtras, MESSAGE_EXTRAS_LIMIT};

use hmac::{KeyInit, Mac};
use liquid_core::model::{KString, KStringCow, KStringRef, ScalarCow, ValueCow};
use liquid_core::runtime::{PartialStore, Registers};
use liquid_core::{
    parser, BlockReflection, Display_filter, Error, Expression, Filter, FilterParameters,
    FilterReflection, FromFilterParameters, Language, ParseBlock, ParseFilter, ParseTag,
    Renderable, Result, Runtime, TagBlock, TagReflection, TagTokenIter, Template, Value, ValueView,
};
use message_extras::{parse_extras, ExtrasSpec, MessageExtrasTag};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, FilterParameters)]
struct HmacArgs {
    #[parameter(description = "The secret key.", arg_type = "str")]
    key: Expression,
}

/// `{{ message | hmac_sha256_hex: 'secret' }}`: hex HMAC-SHA256 of the input under the key.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "hmac_sha256_hex",
    description = "Hex HMAC-SHA256 of the input, keyed by the argument.",
    parameters(HmacArgs),
    parsed(HmacFilter)
)]
pub struct HmacSha256Hex;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "hmac_sha256_hex"]
struct HmacFilter {
    #[parameters]
    args: HmacArgs,
}

impl Filter for HmacFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(args.key.as_bytes())
            .expect("HMAC takes any key");
        mac.update(input.to_kstr().as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Value::scalar(hex))
    }
}

/// `{{ value | url_param_escape }}`: percent-encodes everything but unreserved characters.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "url_param_escape",
    description = "Percent-encodes a URL parameter, & included.",
    parsed(UrlParamEscapeFilter)
)]
pub struct UrlParamEscape;

#[derive(Debug, Default, Display_filter)]
#[name = "url_param_escape"]
struct UrlParamEscapeFilter;

impl Filter for UrlParamEscapeFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        let escaped: String = input
            .to_kstr()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Ok(Value::scalar(escaped))
    }
}

/// Renders a Braze template for a user with these attributes (`${name}` → `name`).
pub fn render(template: &str, attributes: &[(&str, &str)]) -> String {
    let (text, globals) = with_attributes(template, attributes);
    parser_builder()
        .build()
        .expect("a Liquid parser")
        .parse(&text)
        .unwrap_or_else(|e| panic!("template does not parse: {e}"))
        .render(&globals)
        .unwrap_or_else(|e| panic!("template does not render: {e}"))
}

/// The template with `${name}` rewritten to `name`, and the globals holding the attributes.
fn with_attributes(template: &str, attributes: &[(&str, &str)]) -> (String, liquid::Object) {
    let mut text = template.to_owned();
    let mut globals = liquid::Object::new();
    for (name, value) in attributes {
        text = text.replace(&format!("${{{name}}}"), name);
        globals.insert(
            (*name).to_owned().into(),
            Value::scalar((*value).to_owned()),
        );
    }
    (text, globals)
}

/// The standard library plus Braze's filters.
fn parser_builder() -> liquid::ParserBuilder {
    liquid::ParserBuilder::with_stdlib()
        .filter(HmacSha256Hex)
        .filter(UrlParamEscape)
}

// ---------------------------------------------------------------------------------------
// The send-time emulator: `connected_content` and `abort_message`.
// ---------------------------------------------------------------------------------------

/// Where the connected-content rules quoted in this file come from.
///
/// LOCAL_VARIABLES: https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/local_connected_content_variables/
/// PROFILE_DATA ("Best practices"): https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/user_profile_fields_connected_content/
/// MAKING_A_CALL ("Error handling", "Things to know"): https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/making_an_api_call/
/// RETRIES: https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/connected_content_retries/
/// ABORTING: https://www.braze.com/docs/user_guide/personalization_and_dynamic_content/connected_content/aborting_connected_content/
pub const RULE_SOURCES: [&str; 5] = [
    "https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/local_connected_content_variables/",
    "https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/user_profile_fields_connected_content/",
    "https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/making_an_api_call/",
    "https://www.braze.com/docs/user_guide/messaging/design_and_edit/personalize/connected_content/connected_content_retries/",
    "https://www.braze.com/docs/user_guide/personalization_and_dynamic_content/connected_content/aborting_connected_content/",
];

/// Braze gives up on an endpoint that has not answered within this. MAKING_A_CALL: "Braze
/// requires that server response time is less than 2 seconds for performance reasons; if the
/// server takes longer than 2 seconds to respond, the content will not be inserted."
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a GET response is cached when the tag gives no `:cache_max_age`.
/// LOCAL_VARIABLES: "Connected Content will cache the value it returns from GET endpoints for
/// a minimum of 5 minutes. If a cache time is not specified, the default cache time is 5
/// minutes. [...] The minimum cache time is 5 minutes and the maximum cache time is 4 hours."
pub const DEFAULT_CACHE_AGE: Duration = Duration::from_secs(5 * 60);
/// The longest `:cache_max_age` Braze honours (the shortest is [`DEFAULT_CACHE_AGE`]).
pub const MAX_CACHE_AGE: Duration = Duration::from_secs(4 * 60 * 60);
/// Bodies larger than this are not cached. LOCAL_VARIABLES: "The Connected Content response
/// body must not exceed 1MB, or it will not cache."
pub const CACHE_BODY_LIMIT: usize = 1024 * 1024;
/// With `:retry`, how many times a message whose call failed is rendered again. RETRIES:
/// "When a `:retry` tag is included in the Connected Content call, Braze will attempt to
/// retry the call up to five times. [...] If the Connected Content call errors out over five
/// times, the message is aborted, similar to how an abort message tag is triggered."
pub const RETRIES: usize = 5;
/// The sender version Braze sends in `User-Agent` and `X-Braze-Sender-Version` (its
/// documented example; the real one changes regularly).
pub const SENDER_VERSION: &str = "75e404755ae1270441f07eb238f0faf25e44dfdc";

/// What a Braze send does with a template for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The message, rendered, and the extras its Send event carries.
    Sent(Message),
    /// The message was not sent; the reason Braze would log. It has no Send event, so no
    /// extras: "Braze does not count aborted messages towards the send count in your Braze
    /// account or in Currents."
    /// (https://www.braze.com/docs/user_guide/personalization_and_dynamic_content/connected_content/aborting_connected_content/)
    Aborted(String),
}

/// A sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The rendered text.
    pub body: String,
    /// What its `message_extras` tags recorded for the Send event in Currents.
    pub extras: MessageExtras,
}

/// One HTTP request the emulator made (cache hits make none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The rendered URL.
    pub url: String,
    /// The request headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The response status, or why there was none (timeout, connection refused, ...).
    pub result: std::result::Result<u16, String>,
}

impl Call {
    /// The response status, if one came back.
    pub fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().copied()
    }

    /// The value of a request header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Braze's connected-content session: URL cache (5 min by URL, or `:cache_max_age`), an
/// injectable clock, credentials, and a log of every HTTP call.
///
/// `send` blocks on real HTTP calls: from a `#[tokio::test]` whose server runs on the same
/// runtime, use `flavor = "multi_thread"` (or `spawn_blocking`), or the call waits on a
/// server that cannot run.
pub struct Braze {
    session: Arc<Mutex<Session>>,
}

impl Default for Braze {
    fn default() -> Self {
        Self::new()
    }
}

impl Braze {
    pub fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            // "Connected Content calls do not follow redirects."
            .max_redirects(0)
            .build()
            .into();
        Self {
            session: Arc::new(Mutex::new(Session {
                agent,
                credentials: HashMap::new(),
                now: Duration::ZERO,
                cache: HashMap::new(),
                calls: Vec::new(),
                abort: None,
                retry_wanted: false,
            })),
        }
    }

    /// Credentials by name for `:auth_credentials NAME` → header name and value to send.
    /// Called again with the same name, the credential sends one more header.
    pub fn with_credential(self, name: &str, header: &str, value: &str) -> Self {
        lock(&self.session)
            .credentials
            .entry(name.to_owned())
            .or_default()
            .push((header.to_owned(), value.to_owned()));
        self
    }

    /// Moves the emulator's clock (cache expiry) forward.
    pub fn advance(&mut self, by: Duration) {
        lock(&self.session).now += by;
    }

    /// Every HTTP call made so far (URL, headers, status or error), oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.session).calls.clone()
    }

    /// Renders `template` for a user with these `${attribute}`s, calling URLs for real.
    ///
    /// Panics, as Braze refuses to save such a template, when the template does not parse,
    /// an `abort_message` argument is not a string literal, or a `connected_content` option
    /// is unknown or not emulated (`:method post`, `:body`, `:basic_auth`).
    pub fn send(&mut self, template: &str, attributes: &[(&str, &str)]) -> Outcome {
        let (text, globals) = with_attributes(template, attributes);
        let prepared = prepare(&text);
        let extras = Arc::new(Mutex::new(MessageExtras::default()));
        let parser = parser_builder()
            .block(BrazeMessage)
            .tag(ConnectedContentTag {
                specs: Arc::new(prepared.connected),
                session: Arc::clone(&self.session),
            })
            .tag(MessageExtrasParser {
                specs: Arc::new(prepared.extras),
                extras: Arc::clone(&extras),
            })
            .tag(AbortMessageTag {
                reasons: Arc::new(prepared.aborts),
                session: Arc::clone(&self.session),
            })
            .build()
            .expect("a Liquid parser");
        let template = parser
            .parse(&format!(
                "{{% braze_message %}}{}{{% endbraze_message %}}",
                prepared.text
            ))
            .unwrap_or_else(|e| panic!("template does not parse: {e}"));
        // The first render, then one per retry: Braze puts a message whose `:retry` call
        // failed back in the queue and renders it again.
        for _ in 0..=RETRIES {
            {
                let mut session = lock(&self.session);
                session.abort = None;
                session.retry_wanted = false;
            }
            // Each render records its own extras; only a sent one's reach Currents.
            *lock(&extras) = MessageExtras::default();
            let rendered = template.render(&globals);
            let (abort, retry_wanted) = {
                let mut session = lock(&self.session);
                (session.abort.take(), session.retry_wanted)
            };
            // RETRIES: "If a Connected Content call uses abort logic for the same condition as
            // the retry logic, the abort logic takes precedence."
            if let Some(reason) = abort {
                return Outcome::Aborted(reason);
            }
            if retry_wanted {
                // The render is thrown away and the message queued again, so what it made
                // of the failed call's nil variable does not matter (the `liquid` crate's
                // filters refuse nil where Braze's Ruby Liquid reads it as empty: `map`).
                continue;
            }
            let rendered = rendered.unwrap_or_else(|e| panic!("template does not render: {e}"));
            return Outcome::Sent(Message {
                body: rendered,
                extras: std::mem::take(&mut *lock(&extras)),
            });
        }
        Outcome::Aborted(format!(
            "connected content failed after {} attempts",
            RETRIES + 1
        ))
    }
}

struct Session {
    agent: ureq::Agent,
    credentials: HashMap<String, Vec<(String, String)>>,
    now: Duration,
    cache: HashMap<String, Cached>,
    calls: Vec<Call>,
    /// Set by `abort_message` during the current render.
    abort: Option<String>,
    /// Set when a `:retry` call failed during the current render.
    retry_wanted: bool,
}

struct Cached {
    expires_at: Duration,
    status: u16,
    body: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Session {
    /// The response for `url`: from the cache, or from a real GET (logged, and cached when
    /// `cache_for` is given and the response is a 2xx body of at most 1 MB).
    fn get(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        cache_for: Option<Duration>,
    ) -> std::result::Result<(u16, String), String> {
        if cache_for.is_some() {
            if let Some(hit) = self.cache.get(url).filter(|c| self.now < c.expires_at) {
                return Ok((hit.status, hit.body.clone()));
            }
        }
        let response = fetch(&self.agent, url, headers);
        self.calls.push(Call {
            url: url.to_owned(),
            headers: headers.to_vec(),
            result: response
                .as_ref()
                .map(|(status, _)| *status)
                .map_err(Clone::clone),
        });
        if let (Some(age), Ok((status, body))) = (cache_for, &response) {
            if (200..300).contains(status) && body.len() <= CACHE_BODY_LIMIT {
                let cached = Cached {
                    expires_at: self.now + age,
                    status: *status,
                    body: body.clone(),
                };
                self.cache.insert(url.to_owned(), cached);
            }
        }
        response
    }
}

/// A blocking GET: the status and the body (gzip decoded), or why there is none.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
) -> std::result::Result<(u16, String), String> {
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request.call().map_err(|e| match e {
        ureq::Error::Timeout(_) => format!("no response within {} s", TIMEOUT.as_secs()),
        e => e.to_string(),
    })?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(16 * CACHE_BODY_LIMIT as u64)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => format!("body not read within {} s", TIMEOUT.as_secs()),
            e => format!("reading the body: {e}"),
        })?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Replaces `name: value` (case-insensitively) or adds it.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.to_owned()));
}

/// A `connected_content` tag as written: its URL and header values are Liquid.
#[derive(Debug, Clone, Default)]
struct ConnectedSpec {
    url: String,
    save: Option<String>,
    retry: bool,
    no_cache: bool,
    cache_max_age: Option<u64>,
    auth_credentials: Option<String>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
}

/// The template with each `connected_content`, `abort_message` and `message_extras` tag
/// replaced by `{% tag N %}`, N indexing what the tag said (the `liquid` lexer cannot read
/// Braze's URLs, `{{ }}` inside a tag, `abort_message(...)` or `:key`).
struct Prepared {
    text: String,
    connected: Vec<ConnectedSpec>,
    aborts: Vec<String>,
    extras: Vec<ExtrasSpec>,
}

/// The tags [`prepare`] rewrites.
const BRAZE_TAGS: [&str; 3] = ["connected_content", "abort_message", "message_extras"];

fn prepare(text: &str) -> Prepared {
    let mut prepared = Prepared {
        text: String::with_capacity(text.len()),
        connected: Vec::new(),
        aborts: Vec::new(),
        extras: Vec::new(),
    };
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        prepared.text.push_str(&rest[..start]);
        let after_open = &rest[start + 2..];
        let trim_left = after_open.starts_with('-');
        let inner = after_open
            .strip_prefix('-')
            .unwrap_or(after_open)
            .trim_start();
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let name = &inner[..name_len];
        if !BRAZE_TAGS.contains(&name) {
            prepared.text.push_str("{%");
            rest = after_open;
            continue;
        }
        let after_name = &inner[name_len..];
        let end =
            tag_end(after_name).unwrap_or_else(|| panic!("`{{% {name}` is not closed by `%}}`"));
        let markup = &after_name[..end];
        let trim_right = markup.ends_with('-');
        let markup = markup.strip_suffix('-').unwrap_or(markup);
        let index = match name {
            "connected_content" => {
                prepared.connected.push(parse_connected(markup));
                prepared.connected.len() - 1
            }
            "abort_message" => {
                prepared.aborts.push(abort_reason(markup));
                prepared.aborts.len() - 1
            }
            _ => {
                prepared.extras.push(parse_extras(markup));
                prepared.extras.len() - 1
            }
        };
        prepared.text.push_str(if trim_left { "{%-" } else { "{%" });
        prepared.text.push_str(&format!(" {name} {index} "));
        prepared
            .text
            .push_str(if trim_right { "-%}" } else { "%}" });
        rest = &after_name[end + 2..];
    }
    prepared.text.push_str(rest);
    prepared
}

/// Where the `%}` closing a tag starts, skipping `{{ ... }}` inside it.
fn tag_end(markup: &str) -> Option<usize> {
    let bytes = markup.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        match &bytes[i..i + 2] {
            b"{{" => i += 2 + markup[i + 2..].find("}}")? + 2,
            b"%}" => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The reason in `abort_message('...')`: a single string literal without Liquid, or none.
/// ABORTING: "You can also specify an abort reason [...] This abort reason must be a string
/// and cannot contain Liquid."
fn abort_reason(markup: &str) -> String {
    let not_a_literal = || -> String {
        panic!(
            "abort_message takes a string literal, without Liquid: Braze rejects \
             `{{% abort_message{markup} %}}`"
        )
    };
    let markup_trimmed = markup.trim();
    if markup_trimmed.is_empty() {
        return String::new();
    }
    let Some(argument) = markup_trimmed
        .strip_prefix('(')
        .and_then(|m| m.strip_suffix(')'))
        .map(str::trim)
    else {
        return not_a_literal();
    };
    if argument.is_empty() {
        return String::new();
    }
    for quote in ['\'', '"'] {
        if let Some(literal) = argument
            .strip_prefix(quote)
            .and_then(|a| a.strip_suffix(quote))
        {
            if literal.contains(quote) || literal.contains("{{") || literal.contains("{%") {
                return not_a_literal();
            }
            return literal.to_owned();
        }
    }
    not_a_literal()
}

/// Reads `URL [:save NAME] [:retry] [:no_cache] [:cache_max_age N] [:auth_credentials NAME]
/// [:content_type TYPE] [:method get] [:headers {JSON}]`.
fn parse_connected(markup: &str) -> ConnectedSpec {
    let mut spec = ConnectedSpec::default();
    let mut rest = markup.trim_start();
    // The URL runs to the first whitespace outside `{{ }}`.
    let mut url_end = rest.len();
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with("{{") {
            i +=
                2 + rest[i + 2..].find("}}").unwrap_or_else(|| {
                    panic!("connected_content: `{{{{` not closed in {markup:?}")
                }) + 2;
            continue;
        }
        let c = rest[i..].chars().next().expect("in bounds");
        if c.is_whitespace() {
            url_end = i;
            break;
        }
        i += c.len_utf8();
    }
    spec.url = rest[..url_end].to_owned();
    assert!(!spec.url.is_empty(), "connected_content needs a URL");
    rest = &rest[url_end..];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return spec;
        }
        let option = rest.strip_prefix(':').unwrap_or_else(|| {
            panic!("connected_content: expected an option such as `:save`, found {rest:?}")
        });
        let name_len = option
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(option.len());
        let name = &option[..name_len];
        rest = &option[name_len..];
        match name {
            "retry" => spec.retry = true,
            "no_cache" => spec.no_cache = true,
            "save" => spec.save = Some(word(&mut rest, name)),
            "auth_credentials" => spec.auth_credentials = Some(word(&mut rest, name)),
            "content_type" => spec.content_type = Some(word(&mut rest, name)),
            "cache_max_age" => {
                let seconds = word(&mut rest, name);
                spec.cache_max_age = Some(seconds.parse().unwrap_or_else(|_| {
                    panic!("connected_content: :cache_max_age takes seconds, not {seconds:?}")
                }));
            }
            "method" => {
                let method = word(&mut rest, name);
                assert!(
                    method.eq_ignore_ascii_case("get"),
                    "connected_content: only GET is emulated, not `:method {method}`"
                );
            }
            "headers" => spec.headers = json_headers(&mut rest),
            "body" | "basic_auth" => panic!("connected_content: `:{name}` is not emulated"),
            _ => panic!("connected_content: unknown option `:{name}`"),
        }
    }
}

/// The next whitespace-separated word of an option's value.
fn word(rest: &mut &str, option: &str) -> String {
    let text = rest.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    assert!(end > 0, "connected_content: `:{option}` needs a value");
    *rest = &text[end..];
    text[..end].to_owned()
}

/// A `{ "Name": "value", ... }` object (values may hold Liquid), as written.
fn json_headers(rest: &mut &str) -> Vec<(String, String)> {
    let text = rest.trim_start();
    assert!(
        text.starts_with('{'),
        "connected_content: `:headers` takes a JSON object, found {text:?}"
    );
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut end = None;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.unwrap_or_else(|| panic!("connected_content: `:headers` not closed: {text:?}"));
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text[..end])
        .unwrap_or_else(|e| panic!("connected_content: `:headers` is not JSON ({e}): {text:?}"));
    *rest = &text[end..];
    object
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(value) => (name, value),
            value => (name, value.to_string()),
        })
        .collect()
}

#[derive(Clone)]
struct ConnectedContentTag {
    specs: Arc<Vec<ConnectedSpec>>,
    session: Arc<Mutex<Session>>,
}

impl TagReflection for ConnectedContentTag {
    fn tag(&self) -> &str {
        "connected_content"
    }

    fn description(&self) -> &str {
        "Braze's Connected Content: a GET at send time."
    }
}

/// The index `prepare` put in a rewritten tag.
fn spec_index(mut arguments: TagTokenIter<'_>) -> Result<usize> {
    let index = arguments
        .expect_next("index expected")?
        .expect_literal()
        .into_result()?
        .as_scalar()
        .and_then(|s| s.to_integer())
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| Error::with_msg("index expected"))?;
    arguments.expect_nothing()?;
    Ok(index)
}

impl ParseTag for ConnectedContentTag {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let spec = self
            .specs
            .get(spec_index(arguments)?)
            .ok_or_else(|| Error::with_msg("unknown connected_content"))?
            .clone();
        let url = Template::new(parser::parse(&spec.url, options)?);
        let headers = spec
            .headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), Template::new(parser::parse(value, options)?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(ConnectedContent {
            spec,
            url,
            headers,
            session: Arc::clone(&self.session),
        }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

struct ConnectedContent {
    spec: ConnectedSpec,
    url: Template,
    headers: Vec<(String, Template)>,
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for ConnectedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedContent")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Renderable for ConnectedContent {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let spec = &self.spec;
        let url = self.url.render(runtime)?.trim().to_owned();
        let mut extra = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            extra.push((name.clone(), value.render(runtime)?));
        }
        let content_type = spec.content_type.as_deref().unwrap_or("application/json");
        let accept = spec.content_type.as_deref().unwrap_or("*/*");
        let mut headers = Vec::new();
        set_header(
            &mut headers,
            "User-Agent",
            &format!("Braze Sender {SENDER_VERSION}"),
        );
        set_header(&mut headers, "Accept-Encoding", "gzip");
        set_header(&mut headers, "Content-Type", content_type);
        set_header(&mut headers, "Accept", accept);

        let mut session = lock(&self.session);
        if let Some(name) = &spec.auth_credentials {
            let Some(credential) = session.credentials.get(name) else {
                // "If you delete a credential, ... any Connected Content calls trying to use
                // it will be aborted."
                session.abort = Some(format!(
                    "connected content credential `{name}` does not exist"
                ));
                return Err(Error::with_msg("aborted: unknown credential"));
            };
            for (header, value) in credential.clone() {
                set_header(&mut headers, &header, &value);
            }
        }
        for (name, value) in &extra {
            set_header(&mut headers, name, value);
        }
        set_header(&mut headers, "X-Braze-Sender-Version", SENDER_VERSION);

        let cache_for = (!spec.no_cache).then(|| {
            spec.cache_max_age.map_or(DEFAULT_CACHE_AGE, |s| {
                Duration::from_secs(s).clamp(DEFAULT_CACHE_AGE, MAX_CACHE_AGE)
            })
        });
        let response = session.get(&url, &headers, cache_for);
        // MAKING_A_CALL: "If the URL reaches an HTTP 500 or 502 page, the URL will fail on the
        // retry logic"; RETRIES speaks of an API "intermittently unavailable". Every 5xx, a
        // timeout and a connection error count as failures here (an assumption beyond 500 and
        // 502).
        let failed = match &response {
            Ok((status, _)) => *status >= 500,
            Err(_) => true,
        };
        if spec.retry && failed {
            session.retry_wanted = true;
        }
        drop(session);

        let variable: KString = spec
            .save
            .clone()
            .unwrap_or_else(|| "connected".to_owned())
            .into();
        match response {
            Ok((status, body)) if (200..300).contains(&status) => {
                // LOCAL_VARIABLES: "If the endpoint returns JSON, it's automatically parsed
                // and stored in a variable called `connected`. If the endpoint returns text,
                // it will be directly inserted into the message in place of the
                // `connected_content` tag. [...] if you want the response of Connected
                // Content to replace the tag with the text, make sure the response isn't
                // valid JSON (as defined by json.org)".
                match serde_json::from_str::<serde_json::Value>(&body) {
                    Ok(serde_json::Value::Object(mut object)) => {
                        // LOCAL_VARIABLES: "This key will only be automatically added to the
                        // Connected Content object if the endpoint returns a valid JSON
                        // object and a 2XX response. If the endpoint returns an array or
                        // other type, that key cannot be automatically set in the response."
                        object.insert("__http_status_code__".to_owned(), status.into());
                        runtime.set_global(variable, liquid_core::to_value(&object)?);
                    }
                    Ok(other) => {
                        runtime.set_global(variable, liquid_core::to_value(&other)?);
                    }
                    // PROFILE_DATA: when the body is not valid JSON, "the entire Connected
                    // Content response will be interpreted as text and be templated into the
                    // message, and none of the variables will be saved" — `:save` or not.
                    Err(_) => writer
                        .write_all(body.as_bytes())
                        .map_err(|e| Error::with_msg(format!("cannot write: {e}")))?,
                }
            }
            // MAKING_A_CALL: "If the URL is unavailable and reaches a 404 page, Braze will
            // render an empty string in its place. If the URL reaches an HTTP 500 or 502 page,
            // the URL will fail on the retry logic." A timeout is the same: "if the server
            // takes longer than 2 seconds to respond, the content will not be inserted."
            // Whether a non-2xx JSON body is saved (without `__http_status_code__`) is not
            // documented; an assumption: nothing is saved, and the variable stays nil.
            _ => {}
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AbortMessageTag {
    reasons: Arc<Vec<String>>,
    session: Arc<Mutex<Session>>,
}

impl TagReflection for AbortMessageTag {
    fn tag(&self) -> &str {
        "abort_message"
    }

    fn description(&self) -> &str {
        "Braze's abort_message('reason'): the message is not sent."
    }
}

impl ParseTag for AbortMessageTag {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        _options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let reason = self
            .reasons
            .get(spec_index(arguments)?)
            .ok_or_else(|| Error::with_msg("unknown abort_message"))?
            .clone();
        Ok(Box::new(AbortMessage {
            reason,
            session: Arc::clone(&self.session),
        }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

struct AbortMessage {
    reason: String,
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for AbortMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbortMessage")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl Renderable for AbortMessage {
    fn render_to(&self, _writer: &mut dyn Write, _runtime: &dyn Runtime) -> Result<()> {
        lock(&self.session).abort = Some(self.reason.clone());
        // An error stops the render; `send` reads the reason.
        Err(Error::with_msg("aborted by abort_message"))
    }
}

/// Parses the `{% message_extras N %}` that [`prepare`] wrote into a [`MessageExtrasTag`].
#[derive(Clone)]
struct MessageExtrasParser {
    specs: Arc<Vec<ExtrasSpec>>,
    extras: Arc<Mutex<MessageExtras>>,
}

impl TagReflection for MessageExtrasParser {
    fn tag(&self) -> &str {
        "message_extras"
    }

    fn description(&self) -> &str {
        "Braze's message_extras: a key/value pair for the Send event in Currents."
    }
}

impl ParseTag for MessageExtrasParser {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let spec = self
            .specs
            .get(spec_index(arguments)?)
            .ok_or_else(|| Error::with_msg("unknown message_extras"))?;
        Ok(Box::new(MessageExtrasTag {
            key: Template::new(parser::parse(&spec.key, options)?),
            value: Template::new(parser::parse(&spec.value, options)?),
            extras: Arc::clone(&self.extras),
        }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

/// `{% braze_message %}...{% endbraze_message %}`, wrapped around the whole template by
/// `send`: renders its content with Braze's lax lookups, where an unknown variable or key
/// (`{{ result.__http_status_code__ }}` when `result` is nil) is nil instead of an error.
/// Keys missing from a `for` loop's own variable are still errors (the loop's frame is
/// the `liquid` crate's); index from a global instead (`{{ r.items[i].x }}`).
#[derive(Clone)]
struct BrazeMessage;

impl BlockReflection for BrazeMessage {
    fn start_tag(&self) -> &str {
        "braze_message"
    }

    fn end_tag(&self) -> &str {
        "endbraze_message"
    }

    fn description(&self) -> &str {
        "A message rendered with Braze's lax variable lookups."
    }
}

impl ParseBlock for BrazeMessage {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut block: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        arguments.expect_nothing()?;
        let template = Template::new(block.parse_all(options)?);
        block.assert_empty();
        Ok(Box::new(LaxTemplate(template)))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct LaxTemplate(Template);

impl Renderable for LaxTemplate {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        self.0.render_to(writer, &Lax(runtime))
    }
}

/// A runtime whose `get` answers nil for what is not there.
struct Lax<'r>(&'r dyn Runtime);

impl Runtime for Lax<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.0.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.0.name()
    }

    fn roots(&self) -> std::collections::BTreeSet<KStringCow<'_>> {
        self.0.roots()
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.0.try_get(path)
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        Ok(self.0.try_get(path).unwrap_or(ValueCow::Owned(Value::Nil)))
    }

    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_global(name, val)
    }

    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.0.set_index(name, val)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.0.get_index(name)
    }

    fn registers(&self) -> &Registers {
        self.0.registers()
    }
}

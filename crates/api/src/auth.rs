//! Caller authentication for the block routes, two ways:
//!
//! - **API keys** in `x-sendtime-key` (or `Authorization: Bearer <key>`): Braze keeps the key
//!   as a stored connected-content credential, so it never appears in a URL or a template.
//!   Several keys may be active at once (rotation: add the new one, move callers, drop the
//!   old); only their SHA-256 digests are configured, compared in constant time.
//! - **Signed URLs** for fetches that cannot send a header (an email client loading an HTML
//!   fragment): `sig` is the hex HMAC-SHA256, under one of the configured signing secrets,
//!   of [`signed_message`] — the user id, the block, the expiry (`exp`, Unix seconds,
//!   optional) and the allow-listed query parameters ([`SIGNED_PARAMS`]). Any other query
//!   parameter (a cache buster) is ignored and not signed. Braze computes it with
//!   `{{ message | hmac_sha256_hex: 'secret' }}` (the message is the input, the secret the
//!   argument).
//!
//! With neither keys nor secrets configured the check is off (local use). Keys, secrets and
//! signatures are never logged.

use crate::error::ApiError;
use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use sendtime_domain::wire::KEY_HEADER;

/// The query parameters a signature covers, in the order they are written into the signed
/// message; every other parameter is left out of it (and ignored by the API).
/// (`min_score` last: signatures made before it existed still verify.)
pub const SIGNED_PARAMS: [&str; 5] = ["limit", "format", "channel", "locale", "min_score"];

/// Parses a hex SHA-256 (64 hex digits).
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = parse_hex(hex.trim())?;
    bytes.try_into().ok()
}

/// Parses comma-separated hex SHA-256 digests (several active keys); `None` if any is not
/// 64 hex digits. Blank entries are skipped.
pub fn parse_sha256_list(list: &str) -> Option<Vec<[u8; 32]>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_sha256_hex)
        .collect()
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// SHA-256 of a key: what a presented key is compared by, so the key itself is never kept.
pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The message a URL signature is computed over: `{user_id}|{block}|{exp}|{params}`, where
/// `exp` is empty without an expiry and `params` is `name=value` of each present parameter
/// of [`SIGNED_PARAMS`], in that order, joined by `&` — e.g. `u1|cart|1767225600|limit=4`.
/// The user id is the decoded one (as a Braze template has it).
pub fn signed_message(
    user_id: &str,
    block: &str,
    exp: Option<&str>,
    params: &[(&str, &str)],
) -> String {
    let mut message = format!("{user_id}|{block}|{}|", exp.unwrap_or(""));
    let mut first = true;
    for name in SIGNED_PARAMS {
        if let Some((_, value)) = params.iter().find(|(n, _)| *n == name) {
            if !first {
                message.push('&');
            }
            first = false;
            message.push_str(name);
            message.push('=');
            message.push_str(value);
        }
    }
    message
}

/// Hex HMAC-SHA256 of `message` under `secret`: what Braze's `hmac_sha256_hex` gives.
pub fn sign(secret: &[u8], message: &str) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this branch cannot happen.
        hmac::Hmac::<Sha256>::new_from_slice(b"").expect("empty HMAC key")
    });
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a block request presents for authentication, besides its headers.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The decoded user id.
    pub user_id: &'a str,
    /// The block's name.
    pub block: &'a str,
    /// `sig`, if sent.
    pub sig: Option<&'a str>,
    /// `exp`, if sent.
    pub exp: Option<&'a str>,
    /// The signed parameters present ([`SIGNED_PARAMS`]).
    pub params: &'a [(&'a str, &'a str)],
}

/// The configured credentials: key digests and signing secrets, several of each at once.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials {
    key_hashes: Vec<[u8; 32]>,
    signing_secrets: Vec<Vec<u8>>,
    /// Digests of the write keys: `POST /v1/events` only, never a read route.
    write_key_hashes: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digests or the secrets: only how many.
        f.debug_struct("Credentials")
            .field("keys", &self.key_hashes.len())
            .field("signing_secrets", &self.signing_secrets.len())
            .field("write_keys", &self.write_key_hashes.len())
            .finish()
    }
}

impl Credentials {
    /// Keys accepted by these SHA-256 digests, URLs signed by these secrets.
    pub fn new(key_hashes: Vec<[u8; 32]>, signing_secrets: Vec<Vec<u8>>) -> Self {
        Self {
            key_hashes,
            signing_secrets: signing_secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            write_key_hashes: Vec::new(),
        }
    }

    /// The same, with these write keys (by SHA-256 digest) for the write path.
    pub fn with_write_keys(mut self, write_key_hashes: Vec<[u8; 32]>) -> Self {
        self.write_key_hashes.extend(write_key_hashes);
        self
    }

    /// Whether a write key is configured (without one the write path refuses every caller).
    pub fn has_write_keys(&self) -> bool {
        !self.write_key_hashes.is_empty()
    }

    /// Adds the credentials in `text`, one per line (or comma): `key_sha256=<64 hex digits>`
    /// (a read key), `write_key_sha256=<64 hex digits>` (a write key) or
    /// `signing_secret=<secret>` (the format of the SSM parameter); an error names the line,
    /// never its value.
    pub fn add_from_text(&mut self, text: &str) -> Result<(), String> {
        for (n, entry) in text.split(['\n', ',']).map(str::trim).enumerate() {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            match entry.split_once('=') {
                Some(("key_sha256", hex)) => {
                    self.key_hashes.push(parse_sha256_hex(hex).ok_or_else(|| {
                        format!("entry {}: key_sha256 is not 64 hex digits", n + 1)
                    })?)
                }
                Some(("write_key_sha256", hex)) => {
                    self.write_key_hashes
                        .push(parse_sha256_hex(hex).ok_or_else(|| {
                            format!("entry {}: write_key_sha256 is not 64 hex digits", n + 1)
                        })?)
                }
                Some(("signing_secret", secret)) if !secret.trim().is_empty() => {
                    self.signing_secrets.push(secret.trim().as_bytes().to_vec())
                }
                _ => {
                    return Err(format!(
                        "entry {}: expected key_sha256=<hex>, write_key_sha256=<hex> or signing_secret=<secret>",
                        n + 1
                    ))
                }
            }
        }
        Ok(())
    }

    /// Whether any read credential is configured (else every read request is let through).
    pub fn is_enabled(&self) -> bool {
        !self.key_hashes.is_empty() || !self.signing_secrets.is_empty()
    }

    /// Lets a request through, or says why not: a wrong or missing key is `401
    /// unauthorized`; a wrong, expired or missing signature `403` (missing: `exp` without
    /// `sig`, or no credential at all where only signed URLs are configured). A request with
    /// a `sig` is judged by it alone; otherwise by its key. `now` is Unix seconds.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        presented: Presented<'_>,
        now: i64,
    ) -> Result<(), ApiError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if let Some(sig) = presented.sig {
            return self.check_signature(sig, presented, now);
        }
        if presented.exp.is_some() {
            // A signed URL that lost its signature.
            return Err(ApiError::BadSignature);
        }
        let Some(key) = presented_key(headers) else {
            // Without keys configured, only a signed URL could have been let through.
            return Err(if self.key_hashes.is_empty() {
                ApiError::BadSignature
            } else {
                ApiError::Unauthorized
            });
        };
        let digest = sha256(key);
        if matches(&self.key_hashes, &digest) {
            Ok(())
        } else if matches(&self.write_key_hashes, &digest) {
            Err(ApiError::Forbidden(
                "this is a write key: it may only send events (POST /v1/events)",
            ))
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    /// Lets a request of the write path (`POST /v1/events`) through, or says why not: only a
    /// write key passes; a read key is `403 forbidden`, no key or an unknown one `401`. With
    /// no write key configured, every caller is refused: the write path is never open.
    pub fn authorize_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = presented_key(headers) else {
            return Err(ApiError::Unauthorized);
        };
        let digest = sha256(key);
        if matches(&self.write_key_hashes, &digest) {
            Ok(())
        } else if matches(&self.key_hashes, &digest) {
            Err(ApiError::Forbidden(
                "this is a read key: sending events needs a write key",
            ))
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    fn check_signature(
        &self,
        sig: &str,
        presented: Presented<'_>,
        now: i64,
    ) -> Result<(), ApiError> {
        let Some(sig) = parse_hex(sig.trim()).filter(|s| s.len() == 32) else {
            return Err(ApiError::BadSignature);
        };
        let message = signed_message(
            presented.user_id,
            presented.block,
            presented.exp,
            presented.params,
        );
        let valid = self.signing_secrets.iter().any(|secret| {
            hmac::Hmac::<Sha256>::new_from_slice(secret)
                .map(|mut mac| {
                    mac.update(message.as_bytes());
                    mac.verify_slice(&sig).is_ok()
                })
                .unwrap_or(false)
        });
        if !valid {
            return Err(ApiError::BadSignature);
        }
        match presented.exp {
            None => Ok(()),
            Some(exp) => match exp.trim().parse::<i64>() {
                Ok(exp) if now <= exp => Ok(()),
                Ok(_) => Err(ApiError::SignatureExpired),
                Err(_) => Err(ApiError::BadSignature),
            },
        }
    }
}

/// The key in `x-sendtime-key`, or in `Authorization: Bearer <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
}

/// Whether `digest` is one of `hashes`: every digest compared, each in constant time.
fn matches(hashes: &[[u8; 32]], digest: &[u8; 32]) -> bool {
    let matched = hashes
        .iter()
        .fold(subtle::Choice::from(0), |any, h| any | h.ct_eq(digest));
    bool::from(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_digests_only() {
        let digest = sha256("secret");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_sha256_hex(&hex), Some(digest));
        assert_eq!(parse_sha256_hex(&hex.to_uppercase()), Some(digest));
        assert_eq!(parse_sha256_hex("abc"), None);
        assert_eq!(parse_sha256_hex(&"g".repeat(64)), None);
        assert_eq!(parse_sha256_hex(&"é".repeat(32)), None);
        assert_eq!(
            parse_sha256_list(&format!("{hex}, {}", "0".repeat(64))).map(|l| l.len()),
            Some(2)
        );
        assert_eq!(parse_sha256_list(&format!("{hex},nope")), None);
    }

    #[test]
    fn signatures_match_brazes_hmac_sha256_hex() {
        // Braze's documented example: {{'hey' | hmac_sha256_hex: 'secret_key'}}
        assert_eq!(
            sign(b"secret_key", "hey"),
            "8df897f8da3d7992fe57c8dbc6f27578cfbf2dcc4d0fbb4000b8c924841d508e"
        );
    }

    #[test]
    fn the_signed_message_covers_the_allow_listed_parameters_only() {
        assert_eq!(signed_message("u1", "cart", None, &[]), "u1|cart||");
        assert_eq!(
            signed_message("u1", "cart", Some("1767225600"), &[("limit", "4")]),
            "u1|cart|1767225600|limit=4"
        );
    }

    fn presented<'a>(
        sig: Option<&'a str>,
        exp: Option<&'a str>,
        params: &'a [(&'a str, &'a str)],
    ) -> Presented<'a> {
        Presented {
            user_id: "u1",
            block: "cart",
            sig,
            exp,
            params,
        }
    }

    #[test]
    fn any_of_several_keys_or_secrets_lets_a_request_through() {
        let creds = Credentials::new(
            vec![sha256("old-key"), sha256("new-key")],
            vec![b"old-secret".to_vec(), b"new-secret".to_vec()],
        );
        let mut headers = HeaderMap::new();
        let none = presented(None, None, &[]);
        assert!(matches!(
            creds.authorize(&headers, none, 0),
            Err(ApiError::Unauthorized)
        ));
        for key in ["old-key", "new-key"] {
            headers.insert(KEY_HEADER, key.parse().unwrap());
            assert!(creds.authorize(&headers, none, 0).is_ok(), "{key}");
        }
        headers.insert(KEY_HEADER, "wrong".parse().unwrap());
        assert!(matches!(
            creds.authorize(&headers, none, 0),
            Err(ApiError::Unauthorized)
        ));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer new-key".parse().unwrap(),
        );
        assert!(creds.authorize(&bearer, none, 0).is_ok());

        let headers = HeaderMap::new();
        let params = [("limit", "4")];
        for secret in [&b"old-secret"[..], b"new-secret"] {
            let sig = sign(secret, "u1|cart|100|limit=4");
            assert!(creds
                .authorize(&headers, presented(Some(&sig), Some("100"), &params), 99)
                .is_ok());
            // expired
            assert!(matches!(
                creds.authorize(&headers, presented(Some(&sig), Some("100"), &params), 101),
                Err(ApiError::SignatureExpired)
            ));
            // another limit, another expiry: not what was signed
            assert!(matches!(
                creds.authorize(
                    &headers,
                    presented(Some(&sig), Some("100"), &[("limit", "5")]),
                    99
                ),
                Err(ApiError::BadSignature)
            ));
            assert!(matches!(
                creds.authorize(&headers, presented(Some(&sig), Some("200"), &params), 99),
                Err(ApiError::BadSignature)
            ));
        }
        let forged = sign(b"guess", "u1|cart|100|limit=4");
        assert!(matches!(
            creds.authorize(&headers, presented(Some(&forged), Some("100"), &params), 99),
            Err(ApiError::BadSignature)
        ));
        assert!(matches!(
            creds.authorize(&headers, presented(Some("zz"), None, &[]), 0),
            Err(ApiError::BadSignature)
        ));
        assert_eq!(
            format!("{creds:?}"),
            "Credentials { keys: 2, signing_secrets: 2, write_keys: 0 }"
        );
    }

    #[test]
    fn a_read_key_only_reads_and_a_write_key_only_writes() {
        // GIVEN a read key and a write key
        let creds = Credentials::new(vec![sha256("reader")], vec![])
            .with_write_keys(vec![sha256("writer")]);
        let with = |key: &str| {
            let mut h = HeaderMap::new();
            h.insert(KEY_HEADER, key.parse().unwrap());
            h
        };
        let read = |h: &HeaderMap| creds.authorize(h, presented(None, None, &[]), 0);
        // THEN each passes its own path only: the other's is 403, an unknown key 401
        assert!(read(&with("reader")).is_ok());
        assert!(matches!(read(&with("writer")), Err(ApiError::Forbidden(_))));
        assert!(creds.authorize_write(&with("writer")).is_ok());
        assert!(matches!(
            creds.authorize_write(&with("reader")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            creds.authorize_write(&with("nobody")),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            creds.authorize_write(&HeaderMap::new()),
            Err(ApiError::Unauthorized)
        ));
        // AND with no write key configured the write path is closed to everyone
        let open = Credentials::default();
        assert!(matches!(
            open.authorize_write(&with("anything")),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn credentials_are_read_from_text_and_errors_never_echo_values() {
        let hex: String = sha256("k").iter().map(|b| format!("{b:02x}")).collect();
        let mut creds = Credentials::default();
        creds
            .add_from_text(&format!(
                "# rotation in progress\nkey_sha256={hex}\nsigning_secret=s1, signing_secret=s2\nwrite_key_sha256={}\n",
                "0".repeat(64)
            ))
            .unwrap();
        assert_eq!(
            format!("{creds:?}"),
            "Credentials { keys: 1, signing_secrets: 2, write_keys: 1 }"
        );
        let err = creds
            .add_from_text("signing_secret=ok\npassword=hunter2")
            .unwrap_err();
        assert!(err.contains("entry 2") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn without_credentials_everything_passes() {
        let creds = Credentials::default();
        assert!(creds
            .authorize(&HeaderMap::new(), presented(None, None, &[]), 0)
            .is_ok());
    }
}

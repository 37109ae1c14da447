//! Token introspection (RFC 7662): asking the identity provider whether an opaque token is active.
//!
//! Owns: the request (`POST` of `token=…` as a form, with the configured `Authorization`), the
//! answer's checks (`active: true`; `exp` not past; `aud` holding the audience when one is
//! configured; the agent from the mapped claim; scopes as for JWTs), and a short cache keyed by
//! the token's SHA-256, bounded, that never outlives the token's `exp`. An unreachable provider,
//! an error status or a malformed answer refuses the token (fail closed) and is not cached.
//! Never: keeps a token itself (only its hash); caches a failure to reach the provider.

use super::claims::{audience_holds, identity_from, ClaimMap};
use super::claims::{Identity, Refused};
use crate::http_client::{self as client, Url};
use crate::thread::lock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Answers kept at most.
const MAX_CACHED: usize = 10_000;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A workspace's introspection settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The provider's introspection endpoint (`http://` or `https://`).
    pub url: String,
    /// The `Authorization` header value the gate sends (e.g. `Basic …`), stored Fernet-encrypted
    /// as `encrypted:<token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Must be in the answer's `aud`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The claim that names the agent (default `sub`).
    #[serde(default = "default_agent_claim")]
    pub agent_claim: String,
    /// The claim with the tool globs (a list or a space-separated string), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_claim: Option<String>,
    /// The claim naming the workspace the token is for, when given (it must be the one called).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_claim: Option<String>,
    /// How long an answer is reused (default 30 s; never past the token's `exp`).
    #[serde(default = "default_cache")]
    pub cache_ttl_s: u64,
}

fn default_agent_claim() -> String {
    "sub".into()
}
fn default_cache() -> u64 {
    30
}

/// Cached answers by the token's SHA-256, each with the instant it stops being reused.
type Cache = HashMap<[u8; 32], (Result<Identity, Refused>, Instant)>;

/// A workspace's introspection client and its cache.
#[derive(Debug)]
pub struct Introspector {
    config: IntrospectionConfig,
    /// The decrypted `Authorization` value.
    authorization: Option<String>,
    cache: Mutex<Cache>,
    /// Requests made to the provider (for tests and logs).
    requests: Mutex<u64>,
}

impl Introspector {
    /// A client for `config`; `authorization` is the decrypted header value.
    pub fn new(
        config: IntrospectionConfig,
        authorization: Option<String>,
    ) -> Result<Introspector, String> {
        Url::parse(&config.url).map_err(|e| format!("introspection url: {e}"))?;
        Ok(Introspector {
            config,
            authorization,
            cache: Mutex::new(HashMap::new()),
            requests: Mutex::new(0),
        })
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        *lock(&self.requests)
    }

    /// Who `token` names, from the cache or the provider, at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Identity, Refused> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((answer, until)) = self.cache_lock().get(&key) {
            if Instant::now() < *until {
                return answer.clone();
            }
        }
        let claims = self.ask(token)?;
        let answer = self.judge(&claims, now);
        let mut ttl = Duration::from_secs(self.config.cache_ttl_s.min(3600));
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(left));
        }
        let mut cache = self.cache_lock();
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        if cache.len() < MAX_CACHED && !ttl.is_zero() {
            cache.insert(key, (answer.clone(), Instant::now() + ttl));
        }
        answer
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        lock(&self.cache)
    }

    /// The provider's answer; any failure refuses (and is not cached).
    fn ask(&self, token: &str) -> Result<Value, Refused> {
        *lock(&self.requests) += 1;
        let fail = |why: String| Refused(format!("introspection failed (refused): {why}"));
        let url = Url::parse(&self.config.url).map_err(|e| fail(e.to_string()))?;
        let mut headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Accept".to_owned(), "application/json".to_owned()),
        ];
        if let Some(auth) = &self.authorization {
            headers.push(("Authorization".to_owned(), auth.clone()));
        }
        let body = format!("token={}&token_type_hint=access_token", form_encode(token));
        let deadline = Instant::now() + TIMEOUT;
        let mut response = client::send(
            &url,
            "POST",
            &headers,
            body.as_bytes(),
            TIMEOUT,
            Some(deadline),
        )
        .map_err(|e| fail(e.to_string()))?;
        if response.status != 200 {
            return Err(fail(format!("HTTP {}", response.status)));
        }
        let bytes = response
            .read_all(64 * 1024)
            .map_err(|e| fail(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))
    }

    fn judge(&self, claims: &Value, now: i64) -> Result<Identity, Refused> {
        let no = |why: &str| Refused(why.to_owned());
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(no("the token is not active"));
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            if now >= exp {
                return Err(no("expired"));
            }
        }
        if let Some(audience) = &self.config.audience {
            if !audience_holds(claims, audience) {
                return Err(no("wrong audience"));
            }
        }
        identity_from(
            claims,
            &ClaimMap {
                agent: &self.config.agent_claim,
                scopes: self.config.scopes_claim.as_deref(),
                workspace: self.config.workspace_claim.as_deref(),
            },
        )
    }
}

/// `application/x-www-form-urlencoded` for a token (unreserved characters kept).
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! JWT access tokens from an identity provider: `EdDSA`, `RS256` or `ES256`, one algorithm pinned
//! per issuer.
//!
//! Owns: a workspace's JWT settings ([`JwtConfig`]) and the checks of a token, failing closed at
//! the first problem: three strict base64url parts; a header whose `alg` is exactly the pinned
//! one (so never `none` and never an HMAC made with a public key); the key its `kid` names in the
//! provider's key set ([`super::jwks`]); the signature over `header.payload`; `iss` exactly the
//! issuer; `aud` (a string or a list) holding the audience; `exp` present and not past, `nbf` not
//! in the future, both with [`JwtConfig::leeway_s`] of skew; the agent id from the mapped claim;
//! and the tool scopes (globs) from the mapped claim, when one is configured.
//! Never: accepts an algorithm the configuration did not pin; reads a claim before the signature
//! verified; takes identity from anything but a verified token.

use super::claims::{audience_holds, identity_from, ClaimMap, Identity, Refused};
use super::jwks::{self, Jwks, Key, Plan, Source, FETCH_TIMEOUT};
use crate::thread::lock;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest token looked at.
const MAX_TOKEN: usize = 16 * 1024;

/// The pinned algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519.
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// A workspace's JWT settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// `iss`, exactly.
    pub issuer: String,
    /// Must be in `aud`.
    pub audience: String,
    /// The one algorithm this issuer signs with.
    pub algorithm: Algorithm,
    /// The key set's `http://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The key set as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// How long fetched keys are used before fetching again (default 300).
    #[serde(default = "default_ttl")]
    pub jwks_ttl_s: u64,
    /// The claim that names the agent (default `sub`).
    #[serde(default = "default_agent_claim")]
    pub agent_claim: String,
    /// The claim with the tool globs the agent may see and call (a list, or a space-separated
    /// string); all tools when not configured, none when configured and missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_claim: Option<String>,
    /// The claim naming the workspace the token is for; when configured it must be the
    /// workspace called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_claim: Option<String>,
    /// Clock skew tolerated, seconds (default 60, at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_s: i64,
}

fn default_ttl() -> u64 {
    300
}
fn default_agent_claim() -> String {
    "sub".into()
}
fn default_leeway() -> i64 {
    60
}

impl JwtConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.jwks_url, &self.jwks_file) {
            (Some(url), None) => {
                crate::http_client::Url::parse(url).map_err(|e| format!("jwks_url: {e}"))?;
            }
            (None, Some(_)) => {}
            _ => return Err("give exactly one of jwks_url and jwks_file".into()),
        }
        if self.issuer.is_empty() || self.audience.is_empty() || self.agent_claim.is_empty() {
            return Err("issuer, audience and agent_claim must not be empty".into());
        }
        if !(0..=300).contains(&self.leeway_s) {
            return Err("leeway_s is 0 to 300".into());
        }
        Ok(())
    }
}

/// A workspace's verifier: its settings and its cached key set.
#[derive(Debug)]
pub struct Verifier {
    config: JwtConfig,
    jwks: Mutex<Jwks>,
    /// Told when a fetch of the key set ends, for callers waiting on it.
    fetched: Condvar,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Verifier {
    /// A verifier for `config` (validated first).
    pub fn new(config: JwtConfig) -> Result<Verifier, String> {
        config.validate()?;
        let source = match (&config.jwks_url, &config.jwks_file) {
            (Some(url), _) => Source::Url(url.clone()),
            (_, Some(file)) => Source::File(file.into()),
            _ => return Err("no key set".into()),
        };
        let ttl = Duration::from_secs(config.jwks_ttl_s.clamp(1, 86_400));
        Ok(Verifier {
            config,
            jwks: Mutex::new(Jwks::new(source, ttl)),
            fetched: Condvar::new(),
        })
    }

    /// Key-set fetches so far.
    pub fn fetches(&self) -> u64 {
        lock(&self.jwks).fetches
    }

    /// Every check of `token` at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Identity, Refused> {
        let no = |why: &str| Refused(why.to_owned());
        if token.len() > MAX_TOKEN {
            return Err(no("token too long"));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [head, body, sig] = parts.as_slice() else {
            return Err(no("not three parts"));
        };
        let header: Header =
            serde_json::from_slice(&decode(head)?).map_err(|_| no("header is not JSON"))?;
        let pinned = format!("{:?}", self.config.algorithm);
        if header.alg != pinned {
            return Err(Refused(format!(
                "alg {:?} is not the pinned {pinned}",
                header.alg.chars().take(20).collect::<String>()
            )));
        }
        let key = self.key(header.kid.as_deref()).map_err(Refused)?;
        let signed = format!("{head}.{body}");
        check_signature(
            &key,
            self.config.algorithm,
            signed.as_bytes(),
            &decode(sig)?,
        )?;
        let claims: Value =
            serde_json::from_slice(&decode(body)?).map_err(|_| no("payload is not JSON"))?;
        self.check_claims(&claims, now)
    }

    /// The key `kid` names. The key-set lock is never held across a fetch: one caller fetches
    /// while the others use the keys they know (see [`Jwks`]); only callers with no key at all
    /// yet wait, once, for at most a fetch's timeout and a second, and never fetch after waiting.
    fn key(&self, kid: Option<&str>) -> Result<Key, String> {
        let deadline = Instant::now() + FETCH_TIMEOUT + Duration::from_secs(1);
        let mut jwks = lock(&self.jwks);
        let mut may_fetch = true;
        loop {
            match jwks.plan(kid, may_fetch) {
                Plan::Found(key) => return Ok(key),
                Plan::Missing(why) => return Err(why),
                Plan::Fetch(source) => {
                    drop(jwks);
                    let fetched = catch_fetch(&source);
                    let mut jwks = lock(&self.jwks);
                    let installed = jwks.install(fetched);
                    self.fetched.notify_all();
                    // A failed refresh: the key this caller knew is still good within the grace.
                    return match (installed, jwks.usable(kid)) {
                        (_, Some(key)) => Ok(key),
                        (Err(why), None) => Err(why),
                        (Ok(()), None) => Err(format!("no key {kid:?} in the key set")),
                    };
                }
                Plan::Wait => {
                    may_fetch = false;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err("the key set is being fetched; try again".into());
                    }
                    jwks = self
                        .fetched
                        .wait_timeout(jwks, left)
                        .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
                }
            }
        }
    }

    fn check_claims(&self, claims: &Value, now: i64) -> Result<Identity, Refused> {
        let no = |why: &str| Refused(why.to_owned());
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(no("wrong issuer"));
        }
        if !audience_holds(claims, &self.config.audience) {
            return Err(no("wrong audience"));
        }
        let leeway = self.config.leeway_s;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(no("no exp"))?;
        if now.saturating_sub(leeway) >= exp {
            return Err(no("expired"));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_i64().ok_or(no("nbf is not a number"))?;
            if nbf > now.saturating_add(leeway) {
                return Err(no("not valid yet"));
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

fn decode(part: &str) -> Result<Vec<u8>, Refused> {
    let ok = part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Refused("not strict base64url".into()));
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refused("not strict base64url".into()))
}

fn check_signature(
    key: &Key,
    algorithm: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Refused> {
    let bad = || Refused("the signature does not verify".into());
    match (algorithm, key) {
        (Algorithm::EdDSA, Key::Ed25519(key)) => {
            let sig: [u8; 64] = signature.try_into().map_err(|_| bad())?;
            key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
                .map_err(|_| bad())
        }
        (Algorithm::RS256, Key::Rsa(key)) => {
            use rsa::signature::Verifier as _;
            let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone());
            let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| bad())?;
            verifier.verify(message, &sig).map_err(|_| bad())
        }
        (Algorithm::ES256, Key::P256(key)) => {
            use p256::ecdsa::signature::Verifier as _;
            let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| bad())?;
            key.verify(message, &sig).map_err(|_| bad())
        }
        _ => Err(Refused("the key does not fit the pinned algorithm".into())),
    }
}

/// [`jwks::fetch`], with a panic in it turned into an error: the cache must hear that the fetch
/// ended, or every later caller would wait for it.
fn catch_fetch(source: &Source) -> Result<std::collections::HashMap<String, Key>, String> {
    std::panic::catch_unwind(|| jwks::fetch(source))
        .unwrap_or_else(|_| Err("fetching the key set failed".to_owned()))
}

//! JWKS: an identity provider's public keys, from a file or a URL, cached.
//!
//! Owns: reading a JSON Web Key Set (`{"keys": [{"kid", "kty", …}]}`) and turning each key of a
//! supported type into a verifier (`OKP`/`Ed25519`, `RSA` of at least 2048 bits, `EC`/`P-256`);
//! the cache: keys are fetched again when older than the TTL, and once more when a token names
//! an unknown `kid`, but an unknown `kid` causes at most one fetch per [`MIN_REFETCH`] (so
//! made-up kids cannot turn the gate into a fetch loop).
//! Never: follows a redirect (URLs are fetched with [`crate::http_client`], TLS included); keeps a weak
//! Ed25519 key or a short RSA key; waits longer than [`FETCH_TIMEOUT`] for a fetch.

use crate::http_client::{self as client, Url};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The shortest time between two fetches.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS accepted.
const MAX_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A key from the set, ready to verify.
#[derive(Clone, Debug)]
pub enum Key {
    /// Ed25519 (`EdDSA`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA (`RS256`).
    Rsa(rsa::RsaPublicKey),
    /// P-256 (`ES256`).
    P256(p256::ecdsa::VerifyingKey),
}

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// An `http://` URL.
    Url(String),
}

#[derive(Deserialize)]
struct Set {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The cached key set of one identity provider.
#[derive(Debug)]
pub struct Jwks {
    source: Source,
    ttl: Duration,
    keys: HashMap<String, Key>,
    fetched: Option<Instant>,
    /// The last fetch an unknown `kid` caused: at most one per [`MIN_REFETCH`].
    forced: Option<Instant>,
    /// Fetches made (for tests and logs).
    pub fetches: u64,
}

impl Jwks {
    /// An empty cache of `source`, fetched on first use.
    pub fn new(source: Source, ttl: Duration) -> Jwks {
        Jwks {
            source,
            ttl,
            keys: HashMap::new(),
            fetched: None,
            forced: None,
            fetches: 0,
        }
    }

    /// The key `kid` names (or the only key when the token names none), fetching when the set
    /// is stale, or once more (rate-limited) when `kid` is unknown.
    pub fn key(&mut self, kid: Option<&str>) -> Result<Key, String> {
        let stale = self.fetched.is_none_or(|t| t.elapsed() >= self.ttl);
        if stale {
            self.refresh()?;
        }
        if let Some(key) = self.find(kid) {
            return Ok(key);
        }
        let may_refetch = self.forced.is_none_or(|t| t.elapsed() >= MIN_REFETCH);
        if !stale && may_refetch {
            self.forced = Some(Instant::now());
            self.refresh()?;
            if let Some(key) = self.find(kid) {
                return Ok(key);
            }
        }
        Err(format!("no key {kid:?} in the key set"))
    }

    fn find(&self, kid: Option<&str>) -> Option<Key> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }

    fn refresh(&mut self) -> Result<(), String> {
        self.fetches += 1;
        let bytes = self.fetch()?;
        let set: Set =
            serde_json::from_slice(&bytes).map_err(|e| format!("the key set is not JSON: {e}"))?;
        self.keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone().unwrap_or_default(), parse(jwk)?)))
            .collect();
        self.fetched = Some(Instant::now());
        Ok(())
    }

    fn fetch(&self) -> Result<Vec<u8>, String> {
        match &self.source {
            Source::File(path) => {
                std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
            }
            Source::Url(url) => {
                let url = Url::parse(url).map_err(|e| format!("the key set URL: {e}"))?;
                let deadline = Instant::now() + FETCH_TIMEOUT;
                let mut response =
                    client::send(&url, "GET", &[], b"", FETCH_TIMEOUT, Some(deadline))
                        .map_err(|e| format!("cannot fetch the key set: {e}"))?;
                if response.status != 200 {
                    return Err(format!("the key set URL answered HTTP {}", response.status));
                }
                response
                    .read_all(MAX_BYTES)
                    .map_err(|e| format!("reading the key set: {e}"))
            }
        }
    }
}

/// One JWK as a key, if it is of a supported, safe kind.
fn parse(jwk: &Jwk) -> Option<Key> {
    let b64 = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref()?).ok();
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => {
            let bytes: [u8; 32] = b64(&jwk.x)?.try_into().ok()?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
            (!key.is_weak()).then_some(Key::Ed25519(key))
        }
        ("RSA", _) => {
            let n = rsa::BigUint::from_bytes_be(&b64(&jwk.n)?);
            let e = rsa::BigUint::from_bytes_be(&b64(&jwk.e)?);
            let key = rsa::RsaPublicKey::new(n, e).ok()?;
            (rsa::traits::PublicKeyParts::size(&key) * 8 >= MIN_RSA_BITS).then_some(Key::Rsa(key))
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (b64(&jwk.x)?, b64(&jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .ok()
                .map(Key::P256)
        }
        _ => None,
    }
}

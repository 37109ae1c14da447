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
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
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

/// The cached key set of one identity provider. The cache decides under its lock and fetches
/// outside it ([`Jwks::plan`], [`fetch`], [`Jwks::install`]): one fetch at a time, and a
/// verification whose key is already known never waits for one.
#[derive(Debug)]
pub struct Jwks {
    source: Source,
    ttl: Duration,
    keys: HashMap<String, Key>,
    fetched: Option<Instant>,
    /// The last fetch an unknown `kid` caused: at most one per [`MIN_REFETCH`].
    forced: Option<Instant>,
    /// A fetch is under way (by the caller that was told [`Plan::Fetch`]).
    fetching: bool,
    /// Fetches made (for tests and logs).
    pub fetches: u64,
}

/// What a caller looking for a key does next.
#[derive(Debug)]
pub enum Plan {
    /// The key.
    Found(Key),
    /// Fetch the set from this source (outside the lock), then [`Jwks::install`] it.
    Fetch(Source),
    /// Another caller is fetching and the key is not known yet: wait for it.
    Wait,
    /// No such key, and no fetch is due.
    Missing(String),
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
            fetching: false,
            fetches: 0,
        }
    }

    /// What to do for the key `kid` names (or the only key when the token names none): fetch
    /// when the set is stale, or once more (rate-limited) when `kid` is unknown. While another
    /// caller fetches, a known key is used as it is (even from a stale set).
    pub fn plan(&mut self, kid: Option<&str>) -> Plan {
        let stale = self.fetched.is_none_or(|t| t.elapsed() >= self.ttl);
        let known = self.find(kid);
        if self.fetching {
            return known.map_or(Plan::Wait, Plan::Found);
        }
        if stale {
            return self.start_fetch();
        }
        if let Some(key) = known {
            return Plan::Found(key);
        }
        if self.forced.is_none_or(|t| t.elapsed() >= MIN_REFETCH) {
            self.forced = Some(Instant::now());
            return self.start_fetch();
        }
        Plan::Missing(format!("no key {kid:?} in the key set"))
    }

    fn start_fetch(&mut self) -> Plan {
        self.fetching = true;
        self.fetches += 1;
        Plan::Fetch(self.source.clone())
    }

    /// Takes the outcome of the fetch [`Jwks::plan`] asked for. A failed fetch keeps the keys
    /// there were (and leaves the set stale, so the next caller tries again).
    pub fn install(&mut self, fetched: Result<HashMap<String, Key>, String>) -> Result<(), String> {
        self.fetching = false;
        let keys = fetched?;
        self.keys = keys;
        self.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key `kid` names, from the set as it is.
    pub fn find(&self, kid: Option<&str>) -> Option<Key> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }
}

/// Reads the key set at `source` and turns it into keys (the slow part, done without a lock).
pub fn fetch(source: &Source) -> Result<HashMap<String, Key>, String> {
    let bytes = fetch_bytes(source)?;
    let set: Set =
        serde_json::from_slice(&bytes).map_err(|e| format!("the key set is not JSON: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| Some((jwk.kid.clone().unwrap_or_default(), parse(jwk)?)))
        .collect())
}

fn fetch_bytes(source: &Source) -> Result<Vec<u8>, String> {
    match source {
        Source::File(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        Source::Url(url) => {
            let url = Url::parse(url).map_err(|e| format!("the key set URL: {e}"))?;
            let deadline = Instant::now() + FETCH_TIMEOUT;
            let mut response = client::send(&url, "GET", &[], b"", FETCH_TIMEOUT, Some(deadline))
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

//! JWKS: an identity provider's public keys, from a file or a URL, cached.
//!
//! Owns: reading a JSON Web Key Set (`{"keys": [{"kid", "kty", …}]}`) and turning each key of a
//! supported type into a verifier (`OKP`/`Ed25519`, `RSA` of at least 2048 bits, `EC`/`P-256`);
//! the cache: keys are fetched again when older than the TTL, and once more when a token names
//! an unknown `kid`, but an unknown `kid` causes at most one fetch per [`MIN_REFETCH`] (so
//! made-up kids cannot turn the gate into a fetch loop).
//! Never: follows a redirect (URLs are fetched with [`crate::http_client`], TLS included); keeps a weak
//! Ed25519 key or a short RSA key; waits longer than [`FETCH_TIMEOUT`] for a fetch; uses a key
//! more than twice the TTL after its set was fetched.

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
/// outside it ([`Jwks::plan`], [`fetch`], [`Jwks::install`]): one fetch at a time. While a
/// fetch runs, a key the set knows is used as it is (for at most twice the TTL after the set was
/// fetched: a provider that stays down does not keep removed keys alive), a token naming an
/// unknown key is refused at once (once any key is known), and only the caller that started the
/// fetch, or callers that have no key at all yet, wait for it.
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
    /// Another caller is fetching the first set: wait for it.
    Wait,
    /// No such key, and no fetch is due (or this caller may not start one).
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
    /// when the set is stale, or once more (rate-limited) when `kid` is unknown; `may_fetch` is
    /// false for a caller that already waited for a fetch (it never starts another).
    pub fn plan(&mut self, kid: Option<&str>, may_fetch: bool) -> Plan {
        let stale = self.fetched.is_none_or(|t| t.elapsed() >= self.ttl);
        let known = self.usable(kid);
        if self.fetching {
            return match known {
                Some(key) => Plan::Found(key),
                None if self.keys.is_empty() => Plan::Wait,
                None => Plan::Missing(format!("no key {kid:?} in the key set")),
            };
        }
        if !may_fetch {
            return known.map_or_else(
                || Plan::Missing("the key set could not be fetched; try again".into()),
                Plan::Found,
            );
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

    /// The key `kid` names from the set as it is, if the set is still within its grace (twice
    /// the TTL): what the caller that fetched falls back on when its fetch failed.
    pub fn usable(&self, kid: Option<&str>) -> Option<Key> {
        let age = self.fetched.map(|t| t.elapsed())?;
        (age < self.ttl.saturating_mul(2))
            .then(|| self.find(kid))
            .flatten()
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
    fn find(&self, kid: Option<&str>) -> Option<Key> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_key(kid: &str) -> HashMap<String, Key> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        HashMap::from([(kid.to_owned(), Key::Ed25519(key))])
    }

    fn cache(ttl: Duration) -> Jwks {
        Jwks::new(Source::File("/nonexistent/jwks.json".into()), ttl)
    }

    #[test]
    fn one_fetch_at_a_time_and_only_the_first_set_is_waited_for() {
        let mut jwks = cache(Duration::from_secs(300));
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Fetch(_)));
        // No key yet: others wait for that fetch, and never start one of their own.
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Wait));
        assert!(matches!(jwks.plan(Some("a"), false), Plan::Wait));
        jwks.install(Ok(one_key("a"))).unwrap();
        assert!(matches!(jwks.plan(Some("a"), false), Plan::Found(_)));
        assert_eq!(jwks.fetches, 1);
    }

    #[test]
    fn an_unknown_kid_refetches_once_and_others_are_not_held_up_meanwhile() {
        let mut jwks = cache(Duration::from_secs(300));
        assert!(matches!(jwks.plan(None, true), Plan::Fetch(_)));
        jwks.install(Ok(one_key("a"))).unwrap();
        assert!(matches!(jwks.plan(Some("new"), true), Plan::Fetch(_)));
        // During that fetch: the known key is used, another unknown one is refused at once.
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Found(_)));
        assert!(matches!(jwks.plan(Some("other"), true), Plan::Missing(_)));
        assert!(jwks.install(Err("down".into())).is_err());
        // The known key survives the failed fetch; the unknown kid may not refetch for 10 s.
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Found(_)));
        assert!(matches!(jwks.plan(Some("new"), true), Plan::Missing(_)));
        assert_eq!(jwks.fetches, 2);
    }

    #[test]
    fn keys_past_twice_the_ttl_are_not_used_while_the_provider_is_down() {
        let mut jwks = cache(Duration::ZERO);
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Fetch(_)));
        jwks.install(Ok(one_key("a"))).unwrap();
        // Stale at once: the next caller fetches; while it does, the old key is past its grace.
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Fetch(_)));
        assert!(matches!(jwks.plan(Some("a"), true), Plan::Missing(_)));
        assert!(jwks.install(Err("down".into())).is_err());
        assert!(jwks.usable(Some("a")).is_none());
        assert!(matches!(jwks.plan(Some("a"), false), Plan::Missing(_)));
    }
}

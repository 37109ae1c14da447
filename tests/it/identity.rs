//! Agents identified by JWT access tokens from an identity provider, through the binary: one
//! algorithm pinned per issuer (EdDSA, RS256, ES256), keys from a JWKS endpoint on 127.0.0.1,
//! scopes that limit the tools an agent sees and calls, and every bad token refused.

use crate::support::http::{Endpoint, Response};
use crate::support::{
    call_request, initialize_request, listed_names, repo_file, unix_now, Serve, TempDir,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const ISSUER: &str = "https://idp.test";

struct Keys {
    ed: ed25519_dalek::SigningKey,
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
}

impl Keys {
    fn new() -> Keys {
        use rsa::pkcs8::DecodePrivateKey;
        let pem =
            std::fs::read_to_string(repo_file("tests/data/identity/rsa_test_key.pem")).unwrap();
        Keys {
            ed: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            rsa: rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap(),
            ec: p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap(),
        }
    }

    fn jwks(&self) -> String {
        use rsa::traits::PublicKeyParts;
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let public = self.rsa.to_public_key();
        let point = self.ec.verifying_key().to_encoded_point(false);
        json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(self.ed.verifying_key().as_bytes())},
            {"kty": "RSA", "kid": "rsa", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
        ]})
        .to_string()
    }

    /// A token signed with `alg` under `kid` (the signature matches `alg`'s key).
    fn token(&self, alg: &str, kid: &str, claims: &Value) -> String {
        let head =
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{head}.{body}");
        let sig: Vec<u8> = match alg {
            "EdDSA" => ed25519_dalek::Signer::sign(&self.ed, signed.as_bytes())
                .to_bytes()
                .to_vec(),
            "RS256" => {
                use rsa::signature::{SignatureEncoding, Signer};
                let key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.rsa.clone());
                key.sign(signed.as_bytes()).to_vec()
            }
            "ES256" => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = self.ec.sign(signed.as_bytes());
                sig.to_bytes().to_vec()
            }
            _ => Vec::new(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISSUER, "aud": "aegis", "sub": "alice", "exp": unix_now() + 300,
        "scope": "ex.echo ex.add"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A JWKS endpoint serving `body`.
fn jwks_server(body: String) -> Endpoint {
    Endpoint::start("/jwks", None, Box::new(move |_, _| body.clone()))
}

fn initialize_status(serve: &Serve, token: &str) -> u16 {
    serve.mcp("ws-1", token, None, &initialize_request()).status
}

/// `PUT /workspaces/ws-1/identity`.
fn put_identity(serve: &Serve, identity: Value) -> Response {
    serve.admin("PUT", "/workspaces/ws-1/identity", Some(identity))
}

fn set_algorithm(serve: &Serve, jwks: &Endpoint, alg: &str) {
    let identity = json!({"jwt": {"issuer": ISSUER, "audience": "aegis", "algorithm": alg,
        "jwks_url": jwks.url, "scopes_claim": "scope"}});
    let set = put_identity(serve, identity);
    assert_eq!(set.status, 200, "{}", set.body);
}

/// A serve with workspace ws-1 set up, the identity provider's keys, and its JWKS endpoint.
fn serve_and_idp() -> (Serve, Keys, Endpoint) {
    let serve = Serve::in_temp(&[]);
    serve.setup("ws-1");
    let keys = Keys::new();
    let jwks = jwks_server(keys.jwks());
    (serve, keys, jwks)
}

#[test]
fn identity_tokens_of_each_algorithm_name_the_agent_and_limit_its_tools() {
    let (serve, keys, jwks) = serve_and_idp();
    set_algorithm(&serve, &jwks, "EdDSA");
    let token = keys.token("EdDSA", "ed", &claims(json!({})));
    let client = serve.client("ws-1", &token);
    let list = client.list();
    let mut names = listed_names(&list.json());
    names.sort_unstable();
    assert_eq!(names, ["ex.add", "ex.echo"], "{}", list.body);
    let echo = client.call("ex.echo", json!({"message": "hi"}));
    assert_eq!(echo["result"]["content"][0]["text"], "hi", "{echo}");
    let outside = client.send(&call_request(3, "ex.get_env", json!({"name": "X"})));
    assert_eq!(outside.status, 403, "{}", outside.body);
    assert_eq!(outside.json()["error"]["code"], -32011, "{}", outside.body);

    // The other two algorithms, each pinned in turn; a token of another algorithm is refused.
    for (alg, kid) in [("RS256", "rsa"), ("ES256", "ec")] {
        set_algorithm(&serve, &jwks, alg);
        assert_eq!(
            initialize_status(&serve, &keys.token(alg, kid, &claims(json!({})))),
            200,
            "{alg}"
        );
        assert_eq!(initialize_status(&serve, &token), 401, "EdDSA under {alg}");
    }
    serve.assert_logged("alg \"EdDSA\" is not the pinned");
}

#[test]
fn every_bad_identity_token_is_refused() {
    let (serve, keys, jwks) = serve_and_idp();
    set_algorithm(&serve, &jwks, "RS256");
    let good = keys.token("RS256", "rsa", &claims(json!({})));
    assert_eq!(initialize_status(&serve, &good), 200);
    let cases = [
        (
            "wrong issuer",
            keys.token("RS256", "rsa", &claims(json!({"iss": "https://evil.test"}))),
        ),
        (
            "wrong audience",
            keys.token("RS256", "rsa", &claims(json!({"aud": ["other"]}))),
        ),
        (
            "expired",
            keys.token("RS256", "rsa", &claims(json!({"exp": unix_now() - 600}))),
        ),
        (
            "not valid yet",
            keys.token("RS256", "rsa", &claims(json!({"nbf": unix_now() + 600}))),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
            ),
        ),
        // An RS256 key's token re-labelled HS256 (the classic key-confusion attack).
        (
            "HS256",
            good.replacen(
                &URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rsa","typ":"JWT"}"#),
                &URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"rsa","typ":"JWT"}"#),
                1,
            ),
        ),
        ("tampered", {
            let parts: Vec<&str> = good.split('.').collect();
            let body = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "mallory"})).to_string());
            format!("{}.{body}.{}", parts[0], parts[2])
        }),
    ];
    for (why, token) in &cases {
        assert_eq!(initialize_status(&serve, token), 401, "{why}");
    }
    // An unknown kid: one fetch of the key set, then refused; a second at once fetches nothing.
    let before = jwks.hits.load(Ordering::SeqCst);
    let stranger = keys.token("RS256", "rotated-away", &claims(json!({})));
    assert_eq!(initialize_status(&serve, &stranger), 401);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), before + 1, "one refetch");
    assert_eq!(initialize_status(&serve, &stranger), 401);
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        before + 1,
        "no refetch within 10 s"
    );
    // Bad settings are refused and change nothing.
    let no_keys = json!({"jwt": {"issuer": ISSUER, "audience": "aegis", "algorithm": "RS256"}});
    assert_eq!(put_identity(&serve, no_keys).status, 422);
    let hmac = json!({"jwt": {"issuer": ISSUER, "audience": "aegis", "algorithm": "HS256", "jwks_url": jwks.url}});
    assert_eq!(put_identity(&serve, hmac).status, 400);
    assert_eq!(initialize_status(&serve, &good), 200);
}

/// An introspection endpoint: `opaque-good` is active for bob (scope ex.echo), anything else is
/// not; it insists on the gate's credential.
fn introspection() -> Endpoint {
    Endpoint::start(
        "/introspect",
        None,
        Box::new(|head, body| {
            let authorized = head
                .lines()
                .any(|l| l.trim() == "Authorization: Basic Y2xpZW50OnNlY3JldA==");
            if authorized && body.starts_with("token=opaque-good&") {
                json!({"active": true, "sub": "bob", "scope": "ex.echo", "aud": "aegis", "exp": unix_now() + 300})
            } else {
                json!({"active": false})
            }
            .to_string()
        }),
    )
}

#[test]
fn opaque_tokens_are_introspected_cached_and_refused_when_the_provider_is_down() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    let mut provider = introspection();
    let settings = json!({"introspection": {"url": provider.url, "audience": "aegis",
        "authorization": "Basic Y2xpZW50OnNlY3JldA==", "scopes_claim": "scope"}});
    let set = put_identity(&serve, settings);
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["introspection"]["authorization"], "(set)");
    let state = std::fs::read_to_string(serve.data.join("state.json")).unwrap();
    assert!(
        !state.contains("Y2xpZW50OnNlY3JldA"),
        "the credential is stored in plain text"
    );

    let client = serve.client("ws-1", "opaque-good");
    let hits = provider.hits.load(Ordering::SeqCst);
    let list = client.list();
    let names = listed_names(&list.json());
    assert_eq!(names, ["ex.echo"], "{}", list.body);
    assert_eq!(
        provider.hits.load(Ordering::SeqCst),
        hits,
        "the answer was cached"
    );
    assert_eq!(initialize_status(&serve, "opaque-off"), 401);
    // The provider goes away: a cached token still works, a new one fails closed.
    provider.stop();
    assert_eq!(initialize_status(&serve, "opaque-good"), 200);
    assert_eq!(initialize_status(&serve, "opaque-never-seen"), 401);
    serve.assert_logged("introspection failed (refused)");
}

#[test]
fn a_token_for_another_workspace_is_refused_when_a_workspace_claim_is_configured() {
    let (serve, keys, jwks) = serve_and_idp();
    let identity = json!({"jwt": {"issuer": ISSUER, "audience": "aegis", "algorithm": "ES256",
        "jwks_url": jwks.url, "workspace_claim": "ws"}});
    assert_eq!(put_identity(&serve, identity).status, 200);
    let for_ws = |ws: Value| keys.token("ES256", "ec", &claims(json!({"ws": ws})));
    assert_eq!(initialize_status(&serve, &for_ws(json!("ws-1"))), 200);
    assert_eq!(initialize_status(&serve, &for_ws(json!("ws-2"))), 401);
    assert_eq!(
        initialize_status(&serve, &keys.token("ES256", "ec", &claims(json!({})))),
        401
    );
}

/// A JWKS endpoint over TLS, with the test CA's certificate for 127.0.0.1.
fn tls_jwks_server(body: String) -> Endpoint {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = repo_file("tests/data/identity");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data.join("tls_test_cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(data.join("tls_test_key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    Endpoint::start("/jwks", Some(config), Box::new(move |_, _| body.clone()))
}

#[test]
fn keys_come_over_https_from_a_private_ca_and_an_unknown_ca_is_refused() {
    let dir = TempDir::new();
    let ca = repo_file("tests/data/identity/tls_test_cert.pem");
    let serve = Serve::start_with_env(dir.path(), &[], &[("AEGIS_CA_FILE", ca.to_str().unwrap())]);
    serve.setup("ws-1");
    let keys = Keys::new();
    let jwks = tls_jwks_server(keys.jwks());
    let identity = json!({"jwt": {"issuer": ISSUER, "audience": "aegis", "algorithm": "EdDSA",
        "jwks_url": jwks.url}});
    assert_eq!(put_identity(&serve, identity.clone()).status, 200);
    let token = keys.token("EdDSA", "ed", &claims(json!({})));
    assert_eq!(initialize_status(&serve, &token), 200, "{}", serve.log());

    // A gate that does not trust the CA refuses the key set, so the token.
    let other = Serve::in_temp(&[]);
    other.setup("ws-1");
    assert_eq!(put_identity(&other, identity).status, 200);
    assert_eq!(initialize_status(&other, &token), 401);
    other.assert_logged("cannot fetch the key set");
}

/// A key-set fetch never holds up tokens whose key is known: while an unknown `kid` has the gate
/// fetch the set again from a provider that does not answer yet, a token of a known key is let
/// in at once.
#[test]
fn a_slow_key_set_fetch_does_not_hold_up_tokens_of_known_keys() {
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;
    let serve = Serve::in_temp(&[]);
    serve.setup("ws-1");
    let keys = Keys::new();
    let body = keys.jwks();
    // The first fetch is answered at once; later ones say they arrived, then wait for a release.
    let (arrived_tx, arrived) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let (arrived_tx, release_rx) = (Mutex::new(arrived_tx), Mutex::new(release_rx));
    let first = std::sync::atomic::AtomicBool::new(true);
    let jwks = Endpoint::start(
        "/jwks",
        None,
        Box::new(move |_, _| {
            if !first.swap(false, Ordering::SeqCst) {
                let _ = arrived_tx.lock().unwrap().send(());
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(crate::support::WAIT);
            }
            body.clone()
        }),
    );
    set_algorithm(&serve, &jwks, "RS256");
    let good = keys.token("RS256", "rsa", &claims(json!({})));
    assert_eq!(initialize_status(&serve, &good), 200);
    let stranger = keys.token("RS256", "rotated-away", &claims(json!({})));
    std::thread::scope(|s| {
        let refetch = s.spawn(|| initialize_status(&serve, &stranger));
        arrived
            .recv_timeout(crate::support::WAIT)
            .expect("the unknown kid makes the gate fetch the key set again");
        let (done_tx, done) = mpsc::channel();
        let (serve, good) = (&serve, &good);
        s.spawn(move || {
            let _ = done_tx.send(initialize_status(serve, good));
        });
        // Bounded: the fetch is held until released below, so a verification that waited
        // for it would not be done within this time.
        let status = done.recv_timeout(Duration::from_secs(3));
        release.send(()).unwrap();
        assert_eq!(status, Ok(200), "a known key's token waited for the fetch");
        assert_eq!(refetch.join().unwrap(), 401);
    });
}

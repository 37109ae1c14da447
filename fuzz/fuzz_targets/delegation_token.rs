//! Fuzz target: the delegation token parser and verifier.
//! Properties: never panics on any token or payload; whatever verifies names this gate as `aud`,
//! the key's org as `iss`, and the body's hash as `bh`.
//! Half the inputs are raw tokens (parsing, base64url, footer, signature); the other half are
//! payloads signed with a registered key, so the claim and time checks are reached too.
#![no_main]

use aegis_gate::delegation::paseto;
use aegis_gate::delegation::token::{self, Inbound, PartnerKey, IMPLICIT};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        paseto::sign(&key, rest, br#"{"kid":"k1"}"#, IMPLICIT)
    };
    let lookup = |kid: &str| {
        (kid == "k1").then(|| PartnerKey {
            org_id: "org-a".into(),
            key: key.verifying_key(),
            not_after: None,
        })
    };
    let inbound = Inbound { token: &token, body: b"{}", tool: "", our_org: "org-b", now: NOW };
    if let Ok(verified) = token::verify(&inbound, lookup) {
        assert_eq!(verified.claims.iss, "org-a");
        assert_eq!(verified.claims.aud, "org-b");
        assert_eq!(verified.claims.bh, token::body_hash(b"{}"));
    }
});

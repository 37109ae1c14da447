//! Fuzz target: the JWT verifier (identity tokens).
//! Properties: never panics on any token; nothing verifies without a signature from the key set.
//! Half the inputs are raw tokens; the other half are payloads signed with the key set's
//! Ed25519 key, so the claim checks are reached too.
#![no_main]

use aegis_gate::identity::jwt::{Algorithm, JwtConfig, Verifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn verifier() -> &'static (Verifier, SigningKey) {
    static V: OnceLock<(Verifier, SigningKey)> = OnceLock::new();
    V.get_or_init(|| {
        let key = SigningKey::from_bytes(&[3; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let path = std::env::temp_dir().join(format!("aegis-fuzz-jwks-{}.json", std::process::id()));
        let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{x}"}}]}}"#);
        std::fs::write(&path, jwks).expect("jwks file");
        let config = JwtConfig {
            issuer: "i".into(),
            audience: "a".into(),
            algorithm: Algorithm::EdDSA,
            jwks_url: None,
            jwks_file: Some(path.display().to_string()),
            jwks_ttl_s: 86_400,
            agent_claim: "sub".into(),
            scopes_claim: Some("scope".into()),
            workspace_claim: None,
            leeway_s: 60,
        };
        (Verifier::new(config).expect("config"), key)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (verifier, key) = verifier();
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"k"}"#);
        let signed = format!("{head}.{}", URL_SAFE_NO_PAD.encode(rest));
        let sig = key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    if let Ok(identity) = verifier.verify(&token, 1_795_000_000) {
        assert!(!identity.agent.is_empty());
    }
});

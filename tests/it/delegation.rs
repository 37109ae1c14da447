//! Delegation crypto against published vectors: PASETO v4.public (the official test vectors) and
//! Ed25519 (RFC 8032 plus negative cases, including the identity-key forgery that only
//! `verify_strict` rejects).

use aegis_gate::delegation::paseto::{self, Parsed};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::Value;

fn data(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/delegation")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key32(text: &str) -> [u8; 32] {
    hex(text).try_into().unwrap()
}

#[test]
fn paseto_v4_public_vectors_sign_and_verify() {
    let vectors = data("paseto_v4_public_vectors.json");
    let tests = vectors["tests"].as_array().unwrap();
    // The failure vectors carry no public key of their own: they must fail under this one too.
    let public =
        VerifyingKey::from_bytes(&key32(tests[0]["public-key"].as_str().unwrap())).unwrap();
    let mut passed = 0;
    for t in tests {
        let name = t["name"].as_str().unwrap();
        let token = t["token"].as_str().unwrap();
        let footer = t["footer"].as_str().unwrap().as_bytes();
        let implicit = t["implicit-assertion"].as_str().unwrap().as_bytes();
        if t["expect-fail"].as_bool().unwrap() {
            let verified = Parsed::new(token).and_then(|p| p.verify(&public, implicit));
            assert!(verified.is_err(), "{name} verified");
            passed += 1;
            continue;
        }
        let seed = key32(t["secret-key-seed"].as_str().unwrap());
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            hex(t["public-key"].as_str().unwrap()),
            key.verifying_key().to_bytes(),
            "{name}"
        );
        let payload = t["payload"].as_str().unwrap().as_bytes();
        // Ed25519 is deterministic: our token must be the vector's, byte for byte.
        assert_eq!(
            paseto::sign(&key, payload, footer, implicit),
            token,
            "{name}"
        );
        let parsed = Parsed::new(token).unwrap();
        assert_eq!(parsed.footer(), footer, "{name}");
        assert_eq!(parsed.verify(&public, implicit).unwrap(), payload, "{name}");
        // The same token under another implicit assertion fails.
        let other = Parsed::new(token)
            .unwrap()
            .verify(&public, b"aegis-delegation-v1");
        assert!(other.is_err(), "{name}");
        passed += 1;
    }
    assert_eq!(passed, 8);
}

#[test]
fn ed25519_vectors_and_verify_strict_negative_cases() {
    let vectors = data("ed25519_vectors.json");
    for t in vectors["positive"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let key = SigningKey::from_bytes(&key32(t["secret_key"].as_str().unwrap()));
        assert_eq!(
            key.verifying_key().to_bytes().to_vec(),
            hex(t["public_key"].as_str().unwrap()),
            "{name}"
        );
        let message = hex(t["message"].as_str().unwrap());
        let signature = ed25519_dalek::Signer::sign(&key, &message);
        assert_eq!(
            signature.to_bytes().to_vec(),
            hex(t["signature"].as_str().unwrap()),
            "{name}"
        );
        assert!(key
            .verifying_key()
            .verify_strict(&message, &signature)
            .is_ok());
    }
    let negatives = vectors["negative"].as_array().unwrap();
    assert_eq!(negatives.len(), 5);
    for t in negatives {
        let name = t["name"].as_str().unwrap();
        let message = hex(t["message"].as_str().unwrap());
        let sig_bytes = hex(t["signature"].as_str().unwrap());
        let Ok(key) = VerifyingKey::from_bytes(&key32(t["public_key"].as_str().unwrap())) else {
            continue; // Not even a point: refused before any check.
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig_bytes.as_slice()) else {
            assert_eq!(t["expect_dalek_verify_strict"], "reject", "{name}");
            continue; // Not 64 bytes: no signature at all.
        };
        let signature = Signature::from_bytes(&sig);
        assert!(
            key.verify_strict(&message, &signature).is_err(),
            "{name}: verify_strict accepted"
        );
        let lax = ed25519_dalek::Verifier::verify(&key, &message, &signature).is_ok();
        assert_eq!(
            lax,
            t["expect_dalek_verify"] == "accept",
            "{name}: the lax check differs from the vector's note"
        );
        if lax {
            // The forgery the lax check lets through: a small-order key, refused as weak.
            assert!(key.is_weak(), "{name}");
        }
    }
}

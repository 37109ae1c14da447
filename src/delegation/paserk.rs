//! PASERK `k4.public`: how an Ed25519 public key is written for people and partners.
//!
//! Owns: `k4.public.` + unpadded base64url of the 32 key bytes, both ways, and the checks a key
//! from outside must pass: exact prefix, strict base64url, 32 bytes, a valid curve point, and not
//! a weak (small-order) key, under which forged signatures could verify.
//! Never: accepts a key it could not use safely.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "k4.public.";

/// Why a public key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not `k4.public.` followed by strict base64url of 32 bytes.
    Format,
    /// 32 bytes, but not a point on the curve.
    NotAPoint,
    /// A small-order key: refused, signatures under it prove nothing.
    Weak,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Format => "a public key is k4.public. followed by 43 base64url characters",
            KeyError::NotAPoint => "the public key is not a valid Ed25519 point",
            KeyError::Weak => "the public key is weak (small order) and is refused",
        })
    }
}

impl std::error::Error for KeyError {}

/// `k4.public.…` of `key`.
pub fn encode(key: &VerifyingKey) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(key.as_bytes()))
}

/// The key written as `k4.public.…`, if it is safe to verify with.
pub fn decode(text: &str) -> Result<VerifyingKey, KeyError> {
    let body = text.strip_prefix(PREFIX).ok_or(KeyError::Format)?;
    let strict = body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !strict {
        return Err(KeyError::Format);
    }
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| KeyError::Format)?
        .try_into()
        .map_err(|_| KeyError::Format)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)?;
    if key.is_weak() {
        return Err(KeyError::Weak);
    }
    Ok(key)
}

/// The key id a gate gives its key: 12 bytes of SHA-256 of the key, unpadded base64url.
pub fn kid_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn keys_round_trip_and_unsafe_ones_are_refused() {
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let text = encode(&key);
        assert!(text.starts_with("k4.public.") && text.len() == 53, "{text}");
        assert_eq!(decode(&text), Ok(key));
        assert_eq!(kid_of(&key).len(), 16);
        assert_eq!(decode("k3.public.AAAA"), Err(KeyError::Format));
        assert_eq!(decode(&format!("{text}=")), Err(KeyError::Format));
        assert_eq!(decode(&text[..50]), Err(KeyError::Format));
        // The identity point: small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = format!("k4.public.{}", URL_SAFE_NO_PAD.encode(identity));
        assert_eq!(decode(&weak), Err(KeyError::Weak));
    }
}

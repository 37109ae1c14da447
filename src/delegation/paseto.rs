//! PASETO `v4.public` (Ed25519): signing and verifying, nothing more.
//!
//! Owns: the token layout (`v4.public.` + base64url(message ‖ signature), then `.` +
//! base64url(footer) when there is a footer), the pre-authentication encoding (PAE) that binds the
//! header, message, footer and implicit assertion into what is signed, and strict base64url
//! (unpadded, canonical trailing bits, nothing else accepted).
//! Never: verifies with anything but `verify_strict` (the lax check accepts forgeries under
//! small-order keys); interprets the message (claims are the caller's, after verification); trusts
//! the footer before verification except to choose a key from the caller's own registry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;

/// The only header accepted.
pub const HEADER: &str = "v4.public.";
const SIGNATURE_LEN: usize = 64;

/// Why a token is not a valid `v4.public` token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasetoError {
    /// It does not start with exactly `v4.public.`.
    Header,
    /// A part is not strict unpadded base64url, or there are too many parts.
    Encoding,
    /// Shorter than a signature.
    Short,
    /// The signature does not verify under the key.
    Signature,
}

impl fmt::Display for PasetoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasetoError::Header => "not a v4.public token",
            PasetoError::Encoding => "not strict base64url",
            PasetoError::Short => "shorter than a signature",
            PasetoError::Signature => "the signature does not verify",
        })
    }
}

impl std::error::Error for PasetoError {}

/// Signs `message` with `footer` (may be empty) and the implicit assertion (never sent).
pub fn sign(key: &SigningKey, message: &[u8], footer: &[u8], implicit: &[u8]) -> String {
    let signed = pae(&[HEADER.as_bytes(), message, footer, implicit]);
    let signature = key.sign(&signed);
    let mut body = Vec::with_capacity(message.len() + SIGNATURE_LEN);
    body.extend_from_slice(message);
    body.extend_from_slice(&signature.to_bytes());
    let mut token = format!("{HEADER}{}", URL_SAFE_NO_PAD.encode(body));
    if !footer.is_empty() {
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(footer));
    }
    token
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub struct Parsed {
    message: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    footer: Vec<u8>,
}

impl Parsed {
    /// Splits and decodes `token`.
    pub fn new(token: &str) -> Result<Parsed, PasetoError> {
        let rest = token.strip_prefix(HEADER).ok_or(PasetoError::Header)?;
        let (body, footer) = match rest.split_once('.') {
            Some((body, footer)) => (body, Some(footer)),
            None => (rest, None),
        };
        let body = decode(body)?;
        let footer = match footer {
            // `x.` (an empty footer part) is not how any footer is written.
            Some("") => return Err(PasetoError::Encoding),
            Some(f) => decode(f)?,
            None => Vec::new(),
        };
        if body.len() < SIGNATURE_LEN {
            return Err(PasetoError::Short);
        }
        let (message, signature) = body.split_at(body.len() - SIGNATURE_LEN);
        let signature = signature.try_into().map_err(|_| PasetoError::Short)?;
        Ok(Parsed {
            message: message.to_vec(),
            signature,
            footer,
        })
    }

    /// The footer (signed, but unverified until [`Parsed::verify`]).
    pub fn footer(&self) -> &[u8] {
        &self.footer
    }

    /// The message, if the signature verifies under `key` with the implicit assertion.
    pub fn verify(self, key: &VerifyingKey, implicit: &[u8]) -> Result<Vec<u8>, PasetoError> {
        let signed = pae(&[HEADER.as_bytes(), &self.message, &self.footer, implicit]);
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&signed, &signature)
            .map_err(|_| PasetoError::Signature)?;
        Ok(self.message)
    }
}

/// Strict unpadded base64url: the engine refuses padding and non-canonical trailing bits; the
/// character check refuses everything outside the URL-safe alphabet before decoding.
fn decode(part: &str) -> Result<Vec<u8>, PasetoError> {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !part.bytes().all(alphabet) {
        return Err(PasetoError::Encoding);
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| PasetoError::Encoding)
}

/// PASETO's pre-authentication encoding: the piece count, then each piece's length and bytes,
/// lengths as 64-bit little-endian with the top bit clear.
pub fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let le64 = |n: usize| ((n as u64) & (u64::MAX >> 1)).to_le_bytes();
    let total: usize = pieces.iter().map(|p| 8 + p.len()).sum();
    let mut out = Vec::with_capacity(8 + total);
    out.extend_from_slice(&le64(pieces.len()));
    for piece in pieces {
        out.extend_from_slice(&le64(piece.len()));
        out.extend_from_slice(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn pae_matches_the_spec_examples() {
        assert_eq!(pae(&[]), b"\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            pae(&[b""]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            pae(&[b"test"]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00test"
        );
    }

    #[test]
    fn a_token_verifies_and_any_change_fails() {
        let token = sign(&key(), b"{\"a\":1}", b"{\"kid\":\"k1\"}", b"implicit");
        let parsed = Parsed::new(&token).unwrap();
        assert_eq!(parsed.footer(), b"{\"kid\":\"k1\"}");
        let public = key().verifying_key();
        assert_eq!(parsed.verify(&public, b"implicit").unwrap(), b"{\"a\":1}");
        let wrong_implicit = Parsed::new(&token).unwrap().verify(&public, b"other");
        assert_eq!(wrong_implicit, Err(PasetoError::Signature));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            Parsed::new(&token).unwrap().verify(&other, b"implicit"),
            Err(PasetoError::Signature)
        );
        let (body, footer) = token.rsplit_once('.').unwrap();
        let swapped = format!("{body}.{}", URL_SAFE_NO_PAD.encode(b"{\"kid\":\"k2\"}"));
        assert_eq!(
            Parsed::new(&swapped).unwrap().verify(&public, b"implicit"),
            Err(PasetoError::Signature)
        );
        assert!(!footer.is_empty());
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_crypto() {
        assert_eq!(
            Parsed::new("v4.local.AAAA").unwrap_err(),
            PasetoError::Header
        );
        assert_eq!(
            Parsed::new("V4.public.AAAA").unwrap_err(),
            PasetoError::Header
        );
        assert_eq!(
            Parsed::new("v4.public.AA==").unwrap_err(),
            PasetoError::Encoding
        );
        assert_eq!(
            Parsed::new("v4.public.AA+/").unwrap_err(),
            PasetoError::Encoding
        );
        assert_eq!(
            Parsed::new("v4.public.AAAA.").unwrap_err(),
            PasetoError::Encoding
        );
        assert_eq!(
            Parsed::new("v4.public.A.B.C").unwrap_err(),
            PasetoError::Encoding
        );
        assert_eq!(
            Parsed::new("v4.public.AAAA").unwrap_err(),
            PasetoError::Short
        );
        // Non-canonical trailing bits: "AB" decodes like "AA" in a lax decoder.
        assert_eq!(
            Parsed::new("v4.public.AB").unwrap_err(),
            PasetoError::Encoding
        );
    }
}

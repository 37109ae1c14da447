//! Delegation tokens: their claims, signing one for an outbound call, and every stateless check
//! of an inbound one, in the order that fails closed soonest.
//!
//! A token is PASETO `v4.public` with the implicit assertion [`IMPLICIT`] (never sent), the footer
//! `{"kid": …}` and the claims [`Claims`]: `iss` the delegating org, `aud` the receiving org, `sub`
//! the calling agent at `iss`, `scope` the globs the delegator allows, `tool` the exact tool called
//! (`""` for a request that calls no tool: `initialize`, `tools/list`, …), `bh` the SHA-256 of the
//! exact HTTP body (unpadded base64url), `iat`/`nbf`/`exp` as RFC 3339 UTC (`exp` at most
//! [`MAX_LIFETIME`] after `iat`) and `jti`, 128 random bits. One fresh token per request.
//!
//! Owns: the check order for an inbound token up to and including `tool` (size, header, strict
//! base64url, footer `kid` looked up only in the caller's registry, `verify_strict`, payload with
//! unknown fields and duplicate keys refused, `iss`, `aud`, times with [`MAX_SKEW`], `bh`, `tool`).
//! The replay cache, scopes and rate limits follow in `api::delegated`, which holds the state.
//! Never: tells the agent which check failed (see [`Rejection::class`]); reads a claim before the
//! signature verified.

use super::paseto::{self, Parsed, PasetoError};
use crate::glob::Scope;
use crate::time;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The implicit assertion: binds a token to this use, so no other PASETO token of the same key
/// verifies as a delegation.
pub const IMPLICIT: &[u8] = b"aegis-delegation-v1";
/// The HTTP header that carries the token.
pub const HEADER: &str = "Aegis-Delegation";
/// Longest token looked at.
pub const MAX_TOKEN: usize = 8 * 1024;
/// Longest lifetime (`exp` − `iat`), seconds.
pub const MAX_LIFETIME: i64 = 300;
/// Clock difference tolerated between the gates, seconds.
pub const MAX_SKEW: i64 = 60;

/// The claims of a delegation token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The delegating org.
    pub iss: String,
    /// The receiving org.
    pub aud: String,
    /// The calling agent at `iss`.
    pub sub: String,
    /// What `iss` allows this agent.
    pub scope: Scope,
    /// The exact tool called; `""` when the request calls none.
    pub tool: String,
    /// SHA-256 of the HTTP body, unpadded base64url.
    pub bh: String,
    /// Issued at (RFC 3339 UTC).
    pub iat: String,
    /// Not before.
    pub nbf: String,
    /// Expires.
    pub exp: String,
    /// 128 random bits, unpadded base64url.
    pub jti: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer {
    kid: String,
}

/// What the signing gate puts into a token besides times, body hash and id.
#[derive(Clone, Debug)]
pub struct Grant<'a> {
    /// This gate's org.
    pub iss: &'a str,
    /// The receiving org.
    pub aud: &'a str,
    /// The calling agent.
    pub sub: &'a str,
    /// What the agent may use at `aud`.
    pub scope: &'a Scope,
}

/// Why a token could not be signed.
#[derive(Debug)]
pub enum SignError {
    /// `now` is outside what a token can express.
    Clock,
    /// The OS random source failed.
    Random(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Clock => f.write_str("the clock is outside 1970-9999"),
            SignError::Random(e) => write!(f, "no random bytes for a token id: {e}"),
        }
    }
}

impl std::error::Error for SignError {}

/// A token for one request: `body` is the exact HTTP body sent, `tool` the tool it calls.
pub fn sign(
    key: &SigningKey,
    kid: &str,
    grant: &Grant<'_>,
    tool: &str,
    body: &[u8],
    now: i64,
    lifetime: i64,
) -> Result<String, SignError> {
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti).map_err(|e| SignError::Random(e.to_string()))?;
    let exp = now
        .checked_add(lifetime.clamp(1, MAX_LIFETIME))
        .ok_or(SignError::Clock)?;
    let claims = Claims {
        iss: grant.iss.to_owned(),
        aud: grant.aud.to_owned(),
        sub: grant.sub.to_owned(),
        scope: grant.scope.clone(),
        tool: tool.to_owned(),
        bh: body_hash(body),
        iat: time::format(now).ok_or(SignError::Clock)?,
        nbf: time::format(now).ok_or(SignError::Clock)?,
        exp: time::format(exp).ok_or(SignError::Clock)?,
        jti: URL_SAFE_NO_PAD.encode(jti),
    };
    // Serializing these plain structs cannot fail; an empty message would only fail to verify.
    let message = serde_json::to_vec(&claims).unwrap_or_default();
    let footer = serde_json::to_vec(&Footer {
        kid: kid.to_owned(),
    })
    .unwrap_or_default();
    Ok(paseto::sign(key, &message, &footer, IMPLICIT))
}

/// SHA-256 of `body`, unpadded base64url (the `bh` claim).
pub fn body_hash(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// A partner's key as the registry gives it for a `kid`.
#[derive(Clone, Debug)]
pub struct PartnerKey {
    /// The org the key belongs to.
    pub org_id: String,
    /// The key.
    pub key: VerifyingKey,
    /// Unix seconds after which it no longer verifies.
    pub not_after: Option<i64>,
}

/// What an inbound request brings.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    /// The `Aegis-Delegation` header.
    pub token: &'a str,
    /// The exact HTTP body.
    pub body: &'a [u8],
    /// `params.name` of a `tools/call`, `""` for any other request.
    pub tool: &'a str,
    /// This gate's org.
    pub our_org: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// A token that passed every stateless check.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Its claims.
    pub claims: Claims,
    /// The key id it was signed with.
    pub kid: String,
    /// Its expiry, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused: precise, for the gate's log only.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// Longer than [`MAX_TOKEN`].
    TooLarge,
    /// Not a strict `v4.public` token.
    Malformed(PasetoError),
    /// The footer is not `{"kid": …}`.
    BadFooter,
    /// No partner has this key (or it is past its `not_after`).
    UnknownKid(String),
    /// The signature does not verify.
    BadSignature,
    /// The payload is not exactly the claims.
    BadPayload(String),
    /// `iss` is not the org of the key.
    WrongIssuer,
    /// `aud` is not this gate's org.
    WrongAudience,
    /// A time claim is not RFC 3339 UTC, or the times contradict each other.
    BadTimes,
    /// `exp` is more than [`MAX_LIFETIME`] after `iat`.
    TooLong,
    /// `nbf` or `iat` is in the future (beyond the skew).
    NotYetValid,
    /// `exp` has passed (beyond the skew).
    Expired,
    /// `bh` is not the hash of the body received.
    BodyMismatch,
    /// `tool` is not the tool called.
    ToolMismatch,
    /// The `jti` was seen before.
    Replayed,
    /// The replay cache is full: refused rather than risk a replay.
    ReplayCacheFull,
    /// The tool is outside the token's scope or the partner's grant.
    OutOfScope,
    /// Over the rate; the seconds to wait.
    RateLimited(u64),
}

/// What the agent is told: one generic error per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The token is not acceptable.
    Unauthorized,
    /// The token is fine, the tool is not granted.
    Forbidden,
    /// Too many calls.
    RateLimited,
}

impl Rejection {
    /// The class the agent sees.
    pub fn class(&self) -> Class {
        match self {
            Rejection::OutOfScope | Rejection::ToolMismatch => Class::Forbidden,
            Rejection::RateLimited(_) => Class::RateLimited,
            _ => Class::Unauthorized,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooLarge => write!(f, "token longer than {MAX_TOKEN} bytes"),
            Rejection::Malformed(e) => write!(f, "malformed token: {e}"),
            Rejection::BadFooter => f.write_str("footer is not {\"kid\": ...}"),
            Rejection::UnknownKid(kid) => write!(f, "unknown or retired kid {kid:?}"),
            Rejection::BadSignature => f.write_str("signature does not verify"),
            Rejection::BadPayload(e) => write!(f, "payload is not the delegation claims: {e}"),
            Rejection::WrongIssuer => f.write_str("iss is not the org of the key"),
            Rejection::WrongAudience => f.write_str("aud is not this gate's org"),
            Rejection::BadTimes => f.write_str("iat/nbf/exp unreadable or contradictory"),
            Rejection::TooLong => write!(f, "lifetime over {MAX_LIFETIME} s"),
            Rejection::NotYetValid => f.write_str("not valid yet"),
            Rejection::Expired => f.write_str("expired"),
            Rejection::BodyMismatch => f.write_str("bh does not match the body"),
            Rejection::ToolMismatch => f.write_str("tool does not match the tool called"),
            Rejection::Replayed => f.write_str("jti seen before (replay)"),
            Rejection::ReplayCacheFull => f.write_str("replay cache full"),
            Rejection::OutOfScope => f.write_str("tool outside the token scope or the grant"),
            Rejection::RateLimited(s) => write!(f, "rate limited, retry after {s} s"),
        }
    }
}

/// Every stateless check of an inbound token, in order; `keys` looks a `kid` up in the partner
/// registry (and nowhere else).
pub fn verify(
    inbound: &Inbound<'_>,
    keys: impl Fn(&str) -> Option<PartnerKey>,
) -> Result<Verified, Rejection> {
    if inbound.token.len() > MAX_TOKEN {
        return Err(Rejection::TooLarge);
    }
    let parsed = Parsed::new(inbound.token).map_err(Rejection::Malformed)?;
    let footer: Footer =
        serde_json::from_slice(parsed.footer()).map_err(|_| Rejection::BadFooter)?;
    let partner = keys(&footer.kid)
        .filter(|k| k.not_after.is_none_or(|at| inbound.now <= at))
        .ok_or_else(|| Rejection::UnknownKid(footer.kid.clone()))?;
    let message = parsed
        .verify(&partner.key, IMPLICIT)
        .map_err(|_| Rejection::BadSignature)?;
    let claims: Claims =
        serde_json::from_slice(&message).map_err(|e| Rejection::BadPayload(e.to_string()))?;
    if !is_token_id(&claims.jti) {
        return Err(Rejection::BadPayload(
            "jti is not 128 bits in base64url".into(),
        ));
    }
    if claims.iss != partner.org_id {
        return Err(Rejection::WrongIssuer);
    }
    if claims.aud != inbound.our_org {
        return Err(Rejection::WrongAudience);
    }
    let exp = check_times(&claims, inbound.now)?;
    if claims.bh != body_hash(inbound.body) {
        return Err(Rejection::BodyMismatch);
    }
    if claims.tool != inbound.tool {
        return Err(Rejection::ToolMismatch);
    }
    Ok(Verified {
        claims,
        kid: footer.kid,
        exp,
    })
}

/// 128 bits as 22 characters of unpadded base64url (so the replay cache holds short keys).
fn is_token_id(jti: &str) -> bool {
    jti.len() == 22
        && URL_SAFE_NO_PAD
            .decode(jti)
            .is_ok_and(|bytes| bytes.len() == 16)
}

/// The time window: readable, ordered, short, and current within the skew. Returns `exp`.
fn check_times(claims: &Claims, now: i64) -> Result<i64, Rejection> {
    let read = |t: &str| time::parse(t).ok_or(Rejection::BadTimes);
    let (iat, nbf, exp) = (read(&claims.iat)?, read(&claims.nbf)?, read(&claims.exp)?);
    // All three are within 1970-9999 (parse guarantees it), so these cannot overflow.
    if exp <= iat || nbf > exp || nbf < iat {
        return Err(Rejection::BadTimes);
    }
    if exp - iat > MAX_LIFETIME {
        return Err(Rejection::TooLong);
    }
    let now_plus_skew = now.saturating_add(MAX_SKEW);
    if iat > now_plus_skew || nbf > now_plus_skew {
        return Err(Rejection::NotYetValid);
    }
    if now.saturating_sub(MAX_SKEW) >= exp {
        return Err(Rejection::Expired);
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn scope(allow: &[&str]) -> Scope {
        serde_json::from_value(serde_json::json!({ "allow": allow })).unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[3u8; 32])
    }

    fn lookup(kid: &str) -> Option<PartnerKey> {
        (kid == "a1").then(|| PartnerKey {
            org_id: "org-a".into(),
            key: key().verifying_key(),
            not_after: None,
        })
    }

    fn token_for(tool: &str, body: &[u8], now: i64) -> String {
        let s = scope(&["salesforce.read_*"]);
        let grant = Grant {
            iss: "org-a",
            aud: "org-b",
            sub: "agent-7",
            scope: &s,
        };
        sign(&key(), "a1", &grant, tool, body, now, 120).unwrap()
    }

    fn inbound<'a>(token: &'a str, body: &'a [u8], tool: &'a str, now: i64) -> Inbound<'a> {
        Inbound {
            token,
            body,
            tool,
            our_org: "org-b",
            now,
        }
    }

    #[test]
    fn a_fresh_token_verifies_with_its_claims() {
        let token = token_for("salesforce.read_account", b"{}", NOW);
        let ok = verify(
            &inbound(&token, b"{}", "salesforce.read_account", NOW),
            lookup,
        )
        .unwrap();
        assert_eq!(ok.claims.sub, "agent-7");
        assert_eq!(ok.kid, "a1");
        assert_eq!(ok.exp, NOW + 120);
        assert_eq!(ok.claims.jti.len(), 22);
    }

    #[test]
    fn each_stateless_check_refuses() {
        let token = token_for("salesforce.read_account", b"{}", NOW);
        let check = |t: &str, body: &[u8], tool: &str, now: i64, org: &str| {
            let mut i = inbound(t, body, tool, now);
            i.our_org = org;
            verify(&i, lookup).unwrap_err()
        };
        let tool = "salesforce.read_account";
        assert_eq!(
            check(&token, b"{ }", tool, NOW, "org-b"),
            Rejection::BodyMismatch
        );
        assert_eq!(
            check(&token, b"{}", "x.y", NOW, "org-b"),
            Rejection::ToolMismatch
        );
        assert_eq!(
            check(&token, b"{}", tool, NOW, "org-c"),
            Rejection::WrongAudience
        );
        assert_eq!(
            check(&token, b"{}", tool, NOW + 120 + 61, "org-b"),
            Rejection::Expired
        );
        assert_eq!(
            check(&token, b"{}", tool, NOW - 61, "org-b"),
            Rejection::NotYetValid
        );
        let big = "v".repeat(MAX_TOKEN + 1);
        assert_eq!(check(&big, b"{}", tool, NOW, "org-b"), Rejection::TooLarge);
        // A flipped payload byte: the signature no longer verifies.
        let mut tampered = token.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            check(&tampered, b"{}", tool, NOW, "org-b"),
            Rejection::BadSignature
        );
        // Another key under a known kid.
        let s = scope(&["*"]);
        let grant = Grant {
            iss: "org-a",
            aud: "org-b",
            sub: "x",
            scope: &s,
        };
        let forged = sign(
            &SigningKey::from_bytes(&[9; 32]),
            "a1",
            &grant,
            tool,
            b"{}",
            NOW,
            60,
        )
        .unwrap();
        assert_eq!(
            check(&forged, b"{}", tool, NOW, "org-b"),
            Rejection::BadSignature
        );
        let unknown = sign(&key(), "zz", &grant, tool, b"{}", NOW, 60).unwrap();
        assert_eq!(
            check(&unknown, b"{}", tool, NOW, "org-b"),
            Rejection::UnknownKid("zz".into())
        );
        // The key of org-a, claiming to be org-c.
        let grant_c = Grant {
            iss: "org-c",
            ..grant
        };
        let lying = sign(&key(), "a1", &grant_c, tool, b"{}", NOW, 60).unwrap();
        assert_eq!(
            check(&lying, b"{}", tool, NOW, "org-b"),
            Rejection::WrongIssuer
        );
    }

    #[test]
    fn payloads_with_extra_or_duplicate_claims_and_long_lives_are_refused() {
        let signed = |payload: &str| {
            let t = paseto::sign(&key(), payload.as_bytes(), br#"{"kid":"a1"}"#, IMPLICIT);
            verify(&inbound(&t, b"{}", "", NOW), lookup).unwrap_err()
        };
        let bh = body_hash(b"{}");
        let base = format!(
            r#""iss":"org-a","aud":"org-b","sub":"s","scope":{{"allow":["*"]}},"tool":"","bh":"{bh}","iat":"{}","nbf":"{}","jti":"AAAAAAAAAAAAAAAAAAAAAA""#,
            time::format(NOW).unwrap(),
            time::format(NOW).unwrap()
        );
        let exp = time::format(NOW + 60).unwrap();
        assert!(matches!(
            signed(&format!(r#"{{{base},"exp":"{exp}","admin":true}}"#)),
            Rejection::BadPayload(_)
        ));
        assert!(matches!(
            signed(&format!(r#"{{{base},"exp":"{exp}","aud":"org-b"}}"#)),
            Rejection::BadPayload(_)
        ));
        let short_jti = base.replace("AAAAAAAAAAAAAAAAAAAAAA", "j");
        assert!(matches!(
            signed(&format!(r#"{{{short_jti},"exp":"{exp}"}}"#)),
            Rejection::BadPayload(_)
        ));
        let late = time::format(NOW + 301).unwrap();
        assert_eq!(
            signed(&format!(r#"{{{base},"exp":"{late}"}}"#)),
            Rejection::TooLong
        );
        assert_eq!(
            signed(&format!(
                r#"{{{base},"exp":"{}"}}"#,
                time::format(NOW).unwrap()
            )),
            Rejection::BadTimes
        );
        assert_eq!(
            signed(&format!(r#"{{{base},"exp":"soon"}}"#)),
            Rejection::BadTimes
        );
        // The same claims under a token without the implicit assertion do not verify.
        let t = paseto::sign(
            &key(),
            format!(r#"{{{base},"exp":"{exp}"}}"#).as_bytes(),
            br#"{"kid":"a1"}"#,
            b"",
        );
        assert_eq!(
            verify(&inbound(&t, b"{}", "", NOW), lookup).unwrap_err(),
            Rejection::BadSignature
        );
    }

    #[test]
    fn a_retired_key_no_longer_verifies() {
        let token = token_for("", b"{}", NOW);
        let retired = |_: &str| {
            Some(PartnerKey {
                not_after: Some(NOW - 1),
                ..lookup("a1").unwrap()
            })
        };
        assert_eq!(
            verify(&inbound(&token, b"{}", "", NOW), retired).unwrap_err(),
            Rejection::UnknownKid("a1".into())
        );
    }
}

//! Identity: who is calling, from an authenticated channel only.
//!
//! Owns: the identity adapters besides agent keys (which `api::callers` checks against the
//! store): JWT access tokens from an identity provider ([`jwt`]) with the provider's key set
//! ([`jwks`]), and token introspection (RFC 7662) for opaque tokens ([`introspect`]). A workspace chooses its adapter in its settings (`PUT
//! /api/v1/aegis/workspaces/{id}/identity`).
//! Never: takes identity from `clientInfo`, tool arguments or any other part of a message.

pub mod claims;
pub mod introspect;
pub mod jwks;
pub mod jwt;

pub use claims::{Identity, Refused};

/// An identity adapter: who a bearer token names, at `now` (Unix seconds). Agent keys are the
/// store's; these adapters vouch for tokens from an identity provider.
pub trait Authenticate: Send + Sync {
    /// The identity `token` carries, or why it was refused (for the log).
    fn authenticate(&self, token: &str, now: i64) -> Result<Identity, Refused>;
}

impl Authenticate for jwt::Verifier {
    fn authenticate(&self, token: &str, now: i64) -> Result<Identity, Refused> {
        self.verify(token, now)
    }
}

impl Authenticate for introspect::Introspector {
    fn authenticate(&self, token: &str, now: i64) -> Result<Identity, Refused> {
        self.verify(token, now)
    }
}

/// Checks that a token's workspace claim, when one is configured, names the workspace called.
pub fn check_workspace(
    claims_workspace: Option<&str>,
    configured: bool,
    workspace: &str,
) -> Result<(), Refused> {
    match (configured, claims_workspace) {
        (false, _) => Ok(()),
        (true, Some(w)) if w == workspace => Ok(()),
        (true, _) => Err(Refused("the token is for another workspace".into())),
    }
}

//! Identity: who is calling, from an authenticated channel only.
//!
//! Owns: the identity adapters besides agent keys (which `api::mcp_http` checks against the
//! store): JWT access tokens from an identity provider ([`jwt`]) with the provider's key set
//! ([`jwks`]), and token introspection (RFC 7662) for opaque tokens ([`introspect`]). A workspace chooses its adapter in its settings (`PUT
//! /api/v1/aegis/workspaces/{id}/identity`).
//! Never: takes identity from `clientInfo`, tool arguments or any other part of a message.

pub mod introspect;
pub mod jwks;
pub mod jwt;

//! Remote MCP servers over Streamable HTTP: the transport of connections of kind `http` and
//! `partner`.
//!
//! Owns: server-sent events ([`sse`]), the command line a bridge is started with ([`spawn`]), the
//! bridge ([`bridge`]) that a remote connection runs as its child, so remote and local servers
//! share one supervision, and the words for an HTTP answer that carries no JSON-RPC ([`status`]).
//! Never: uses an async runtime; skips a certificate check (TLS is rustls with Mozilla's roots,
//! plus `AEGIS_CA_FILE`).

pub(crate) mod bridge;
pub(crate) mod spawn;
pub(crate) mod sse;
pub(crate) mod status;

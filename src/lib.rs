//! Aegis Gate: a synchronous MCP gateway.
//!
//! Agents talk to one gate; the gate starts and watches the MCP servers that hold the tools,
//! merges their tools into one namespace (`server.tool`), cleans what servers say, and routes each
//! call to the right child, over stdio or HTTP (serve mode, with delegation, identity, policy,
//! approvals and a signed audit trail). See ARCHITECTURE.md for the map.
//!
//! The modules, from the bottom up, in the order they are declared below: a module imports only
//! modules declared before it (the tests in `tests/it/layers.rs` check it; `rustfmt.toml` keeps
//! the order).
//! - foundations: `time`, `hex`, `json_text`, `thread`, `sys`, `supervisor` (the per-connection
//!   process that contains a server's whole tree, Linux), `logging`, [`jsonrpc`], `mcp`,
//!   [`glob`], `http_client`, [`http`] (the HTTP/1.1 server of serve mode);
//! - parts that know no state: [`sanitize`] (cleaning what servers say, pure), [`delegation`]
//!   (tokens, replay, rate; pure), `policy` (rules and verdicts, pure), [`allowlist`] (which
//!   commands and variables a connection may use), [`identity`] (JWT and
//!   introspection, which fetch over HTTP), `remote` (the bridge process to remote servers);
//! - state: `store` (the data dir and `state.json`), `crypto` (Fernet, signing keys), [`audit`],
//!   `approvals` (held calls and webhooks), [`config`] (the config file and the gate's
//!   settings), `launch` (a stored connection to a child);
//! - the gate: `downstream` (`ConnectionManager`, one `DownstreamConnection` per child),
//!   [`merger`] (the `SchemaMerger` thread), `gate` (the upstream endpoint, stdio transport),
//!   `example_server`;
//! - serve mode: `api` (REST, MCP over HTTP, sessions, callers, the answers' thread);
//! - [`cli`]: every subcommand; `main.rs` only calls [`cli::run`].
//!
//! Public (`pub`) are only the modules that the binary, the integration tests, the benches and
//! the fuzz targets reach; everything else is `pub(crate)`, so unused code shows as dead.
//!
//! No async runtime: concurrency is named threads, bounded crossbeam channels and `mio`.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub(crate) mod time;
mod hex;
pub(crate) mod json_text;
mod thread;
mod sys;
#[cfg(target_os = "linux")]
mod supervisor;
mod logging;
pub mod jsonrpc;
pub(crate) mod mcp;
pub mod glob;
pub(crate) mod http_client;
pub mod http;

pub mod sanitize;
pub mod delegation;
pub(crate) mod policy;
pub mod allowlist;
pub mod identity;
pub(crate) mod remote;

pub(crate) mod store;
pub(crate) mod crypto;
pub mod audit;
pub(crate) mod approvals;
pub mod config;
pub(crate) mod launch;

pub(crate) mod downstream;
pub mod merger;
pub(crate) mod gate;
pub(crate) mod example_server;

pub(crate) mod api;
pub mod cli;

//! Aegis Gate: a synchronous MCP gateway.
//!
//! Agents talk to one gate; the gate starts and watches the MCP servers that hold the tools,
//! merges their tools into one namespace (`server.tool`), cleans what servers say, and routes each
//! call to the right child, over stdio or HTTP (serve mode, with delegation, identity, policy,
//! approvals and a signed audit trail). See ARCHITECTURE.md for the map.
//!
//! The modules, from the bottom up, in the order they are declared below: a module imports only
//! modules declared before it (the `layers` test in `tests/it/tidy.rs` checks it).
//! - foundations: `time`, `thread`, `sys`, `logging`, [`jsonrpc`], `mcp`, [`glob`],
//!   `http_client`;
//! - pure parts: [`sanitize`] (cleaning what servers say), [`delegation`] (tokens, replay, rate),
//!   `policy` (rules and verdicts), [`identity`] (JWT and introspection), `remote` (the bridge to
//!   remote servers);
//! - state: `store` (the data dir and `state.json`), `crypto` (Fernet, signing keys), [`audit`],
//!   `approvals` (held calls and webhooks), [`config`] (the config file and the gate's
//!   settings), `launch` (a stored connection to a child);
//! - the gate: `downstream` (`ConnectionManager`, one `DownstreamConnection` per child),
//!   [`merger`] (the `SchemaMerger` thread), `gate` (the upstream endpoint, stdio transport),
//!   `example_server`;
//! - serve mode: `api` (REST, MCP over HTTP, the HTTP front);
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

pub mod glob;
pub mod http;
pub(crate) mod http_client;
pub mod jsonrpc;
mod logging;
pub(crate) mod mcp;
mod sys;
mod thread;
pub(crate) mod time;

pub mod delegation;
pub mod identity;
pub(crate) mod policy;
pub(crate) mod remote;
pub mod sanitize;

pub(crate) mod approvals;
pub mod audit;
pub mod config;
pub(crate) mod crypto;
pub(crate) mod launch;
pub(crate) mod store;

pub(crate) mod downstream;
pub(crate) mod example_server;
pub(crate) mod gate;
pub mod merger;

pub(crate) mod api;
pub mod cli;

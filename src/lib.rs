//! Aegis Gate: a synchronous MCP gateway.
//!
//! Agents talk to one gate; the gate starts and watches the MCP servers that hold the tools,
//! merges their tools into one namespace (`server.tool`) and routes each call to the right child.
//!
//! Brief overview of the parts (see ARCHITECTURE.md for the full map):
//! - [`jsonrpc`]: JSON-RPC 2.0 framing and message types, sans-IO.
//! - [`config`]: the `{"mcpServers": {...}}` file and the gate's settings.
//! - [`crypto`]: Fernet keys and credentials bound to their connection and variable.
//! - [`mcp`]: protocol versions and names shared by both sides.
//! - [`downstream`]: `ConnectionManager` and one `DownstreamConnection` thread per child server.
//! - [`merger`]: the `SchemaMerger` thread that builds the merged, cached tool view.
//! - [`sanitize`]: pure cleaning of tool definitions, server instructions and results.
//! - [`store`]: the data dir, atomic writes, tool pins.
//! - [`gate`]: the upstream MCP endpoint and its stdio transport.
//! - [`example_server`]: a small MCP server built into the binary for demos and tests.
//!
//! No async runtime: concurrency is named threads, bounded crossbeam channels and `mio`.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod delegation;
pub mod downstream;
pub mod example_server;
pub mod gate;
pub mod identity;
pub mod jsonrpc;
pub mod launch;
pub mod mcp;
pub mod merger;
pub mod policy;
pub mod remote;
pub mod sanitize;
pub mod store;
pub mod time;

pub mod approvals;
pub mod glob;
pub mod http_client;
mod logging;
mod sys;
mod thread;

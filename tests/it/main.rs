//! Integration tests: one binary, a module per boundary. They drive the real `aegis-gate` binary.
//!
//! Where new tests go (by the boundary a test drives, not by the feature it touches):
//! - `stdio_gate`: the upstream MCP protocol over stdio: naming, routing, multiplexing, errors.
//! - `config_compat`: config files as users have them (other clients' keys, VS Code's format,
//!   variables, `envFile`) and `aegis-gate doctor`.
//! - `faults`: supervision of misbehaving children (crashes, hangs, floods) and teardown.
//! - `containment`: a server's whole process tree, however it detaches, stopped with its
//!   connection, its workspace and the gate; orphans reaped as they exit.
//! - `integrity`: tool pins, poisoned tools and rug pulls, and the `tools` command.
//! - `sanitize`: the poisoning corpus against the sanitizers (no binary).
//! - `delegation`: delegation crypto against published vectors (no binary).
//! - `rest_api`: the REST admin API of serve: refusals, changes to running connections.
//! - `mcp_http`: MCP over Streamable HTTP with our own requests: sessions, transport checks,
//!   streams, progress, list changes.
//! - `http_front`: serve's HTTP front itself: health and metrics routes, keep-alive, connection
//!   limits, logged refusals.
//! - `http_limits`: what the front refuses and how early: oversized and dribbling heads, strict
//!   framing, the one listening socket.
//! - `http_connections`: one connection's life: kept-alive bodies, pipelining, deadlines.
//! - `serve_lifecycle`: serve's start and stop: config, `--demo`, SIGTERM, restarts, `kill -9`,
//!   a stored workspace served over stdio.
//! - `secrets`: credentials at rest: encryption, where secrets may appear, `rotate-key`.
//! - `policy`: workspace policies, escalation and approvals.
//! - `identity`: agents identified by JWT and token introspection.
//! - `partners`: delegation between gates: the gate's identity, partners, delegated calls.
//! - `remote`: remote MCP servers over HTTP as downstreams.
//! - `audit`: the audit trail and `audit verify`.
//! - `formats`: `state.json` and the audit records, byte for byte, against golden files.
//! - `cli_polish`: the command line as a person reads it: help pages, usage errors, completions,
//!   the man page, startup progress, what changed in a quarantined tool.
//! - `user_errors`: what a person reads when something fails: errors that name their cause and
//!   say what to do, no secret in them (issue 17).
//! - `surface`: the MCP surface beyond tools over stdio (issue #12): capabilities, prompts,
//!   resources and templates, the read cap, subscriptions, completion, logging, policies on them.
//! - `surface_requests`: a server's requests to the client (sampling, elicitation, roots), over
//!   stdio and HTTP.
//! - `surface_http`: the surface through serve: the REST resource view and collisions, updates and
//!   log messages per HTTP session, the audit trail, partners.
//! - `surface_hostile`: poisoned prompts and resources, hidden text, a rug-pulled prompt.
//! - `hostile_server`: every channel a hostile server writes through (results a tree parser
//!   refuses, errors, progress, logs, prompts, reads, its requests, `instructions`, failures,
//!   lines that are not JSON), over stdio and HTTP: no hidden character reaches the agent
//!   (issue 14, item 5).
//! - `modern_stdio`: MCP 2026-07-28 over stdio (issue #13): the envelope without `initialize`,
//!   `server/discover`, the era's results and refusals, both eras on one stdio,
//!   `subscriptions/listen`.
//! - `modern_input`: a server's requests during a 2026-07-28 call: `input_required`, the retry
//!   with `inputResponses` and `requestState`, over stdio and HTTP.
//! - `modern_http`: MCP 2026-07-28 through serve: stateless POSTs, the transport's rules, listens
//!   as event streams, both eras side by side, the era in the audit trail.
//! - `replicas`: serve replicas sharing their state through Valkey/Redis (`--store`): changes
//!   followed, the store going away and coming back, what each replica needs from its operator.
//! - `replicas_approvals`: held calls decided through any replica, and `audit verify --store`
//!   over every replica's trail.
//! - `replicas_delegation`: inbound delegation across replicas: a partner's rates and the replay
//!   cache shared through the store, delegated calls refused while the store is away.
//! - `replicas_lb`: replicas behind HAProxy run from `deploy/haproxy.cfg`: sessions sticking to
//!   their replica over kept-alive connections, 404 for a session elsewhere, a replica killed.
//! - `tidy`: house rules; `layers`: the module structure (no upward import, no circle).
//!
//! Tests against servers and clients someone else wrote (server-everything, the Python SDK, the
//! Inspector) are not here: they are the `peers` target (`tests/peers/`), whose harness says which
//! tests it skipped when the peers are missing. A test that needs a real peer goes there.
//!
//! Shared helpers live in `support`: `support::stdio` (the stdio gate), `support::serve` (the one
//! `Serve` harness), `support::http` (the one raw HTTP/1.1 client and receiver). A test module
//! never imports from another test module.

mod audit;
mod cli_polish;
mod config_compat;
#[cfg(target_os = "linux")]
mod containment;
mod delegation;
mod faults;
mod formats;
mod http_connections;
mod http_front;
mod hostile_server;
mod http_limits;
mod identity;
mod integrity;
mod layers;
mod mcp_http;
mod modern_http;
mod modern_input;
mod modern_stdio;
mod partners;
mod policy;
mod remote;
mod replicas;
mod replicas_approvals;
mod replicas_delegation;
mod replicas_lb;
mod rest_api;
mod sanitize;
mod secrets;
mod serve_lifecycle;
mod spawn_policy;
mod stdio_gate;
mod support;
mod surface;
mod surface_hostile;
mod surface_http;
mod surface_requests;
mod tidy;
mod user_errors;

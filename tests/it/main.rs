//! Integration tests: one binary, a module per boundary. They drive the real `aegis-gate` binary.
//!
//! Where new tests go: `stdio_gate` for the upstream protocol and routing, `faults` for
//! supervision of misbehaving children, `real_peers` for servers and clients someone else wrote,
//! `tidy` for house rules. Shared helpers live in `support`.

mod audit;
mod delegation;
mod faults;
mod http_front;
mod identity;
mod integrity;
mod layers;
mod partners;
mod policy;
mod real_peers;
mod sanitize;
mod serve_api;
mod stdio_gate;
mod support;
mod tidy;

//! HTTP/1.1 for serve mode: a small synchronous server, written for the gate.
//!
//! Owns: the wire format, sans-IO ([`wire`]: strict request heads and bodies within limits,
//! response heads and chunks), one connection's cycle ([`conn`]), the `http-front` thread that
//! owns the listening socket and every connection ([`front`]), the worker pool and the server's
//! start and stop ([`server`]), and what a handler gets ([`exchange`]: a complete request and its
//! one answer, whole or streamed).
//! Never: uses an async runtime; gives a handler a socket; buffers more than the limits allow
//! before a request is complete; opens a second listening socket.
//!
//! Why not `tiny_http` (which served the gate before): it gives every connection a thread for
//! the connection's life, reads request heads with no bound, ends its accept loop on the first
//! error, and has no deadline on a whole head; fencing it in took a relay that copied every byte
//! and a private second listener. This module is the part of a server the gate needs, with the
//! limits in one place.
//!
//! Threads: `http-front` and `http-worker-0..n` ([`server`]).

mod conn;
mod exchange;
mod front;
mod server;
pub mod wire;

pub(crate) use conn::Timeouts;
#[cfg(test)]
pub(crate) use exchange::testing;
pub(crate) use exchange::{After, Request, Stream};
pub(crate) use front::ConnLimits;
pub(crate) use server::{Config, Handler, Server};
pub use wire::{Limits, Method, Version};

//! One upstream peer's session: the route back to it, whether it has initialized, who the
//! caller is, what it declared it can answer, and which protocol era its results are shaped for.
//!
//! Owns: [`Session`]; a 2026-07-28 request's session of its own (`Session::modern`,
//! `for_modern_request`), which lives for one request.
//! Never: sends anything itself (the gate answers through its sink).

use super::modern;
use crate::jsonrpc::{SessionId, Shape, Sink};
use crate::mcp::ClientCaps;
use crate::thread::lock;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// One upstream peer's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(super) sink: Sink,
    pub(super) initialized: AtomicBool,
    /// The authenticated caller (an HTTP agent's id), passed to `partner` connections.
    pub(super) agent: Option<String>,
    /// What the agent declared at `initialize` it can answer (set by the gate for a session
    /// that lives across messages, by the transport for an HTTP session's later requests).
    pub(super) client: Mutex<ClientCaps>,
    /// A 2026-07-28 request's session: it lives for one request, its envelope said what the
    /// client can answer, and its results carry what that era needs.
    pub(super) modern: bool,
}

impl Session {
    /// A session that answers through `sink`.
    pub(crate) fn new(sink: Sink) -> Session {
        Session {
            sink,
            initialized: AtomicBool::new(false),
            agent: None,
            client: Mutex::new(ClientCaps::default()),
            modern: false,
        }
    }

    /// A session that has already been through `initialize` (a later request of an HTTP session).
    pub(crate) fn initialized(sink: Sink) -> Session {
        Session {
            sink,
            initialized: AtomicBool::new(true),
            agent: None,
            client: Mutex::new(ClientCaps::default()),
            modern: false,
        }
    }

    /// The same session, whose agent declared `client` at its `initialize`.
    pub(crate) fn with_client(self, client: ClientCaps) -> Session {
        *lock(&self.client) = client;
        self
    }

    /// What the agent declared it can answer.
    pub(crate) fn client(&self) -> ClientCaps {
        *lock(&self.client)
    }

    /// The session of one 2026-07-28 request, whose envelope declared `client`.
    pub(crate) fn modern(sink: Sink, client: ClientCaps) -> Session {
        Session {
            modern: true,
            ..Session::initialized(sink).with_client(client)
        }
    }

    /// The session of one 2026-07-28 request that arrived on this session's transport (the
    /// same sink and agent; stdio multiplexes both eras on one stream).
    pub(crate) fn for_modern_request(&self, client: ClientCaps) -> Session {
        Session {
            agent: self.agent.clone(),
            ..Session::modern(self.sink.clone(), client)
        }
    }

    /// What a result to `method` must carry in this session's era.
    pub(super) fn shape_for(&self, method: &str) -> Shape {
        match (self.modern, modern::CACHEABLE.contains(&method)) {
            (false, _) => Shape::Legacy,
            (true, false) => Shape::Modern,
            (true, true) => Shape::ModernCacheable,
        }
    }

    /// The same session, known to be `agent` (authenticated by the transport, never by a
    /// message's content).
    pub(crate) fn with_agent(mut self, agent: impl Into<String>) -> Session {
        self.agent = Some(agent.into());
        self
    }

    /// The session's id.
    pub(crate) fn id(&self) -> SessionId {
        self.sink.session()
    }

    /// Where this session's messages go.
    pub(crate) fn sink(&self) -> &Sink {
        &self.sink
    }
}

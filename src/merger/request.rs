//! What the gate may ask of the merger: [`Request`], the [`ViewKey`] of a merged view, and
//! [`Deferred`] work held until startup settles.
//!
//! Owns: the request vocabulary and its `Debug` form (which names the session or server, never a
//! payload), and [`MAX_HELD`], the bound on requests held during startup.
//! Never: imports another file of the merger; every other file may use it, so it stays the lowest
//! (no import circle through it). It holds no state and does no I/O.

use crate::downstream::{ConnHandle, ConnId, ListKind};
use crate::jsonrpc::{Id, Responder, SessionId, Sink};
use crate::mcp::LogLevel;

/// Requests held until startup settles; more are refused at once.
pub const MAX_HELD: usize = 1024;

/// Which merged view: a workspace, a list, and room for the caller's scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The workspace (`default` in stdio mode).
    pub workspace: String,
    /// The caller's tool scope, once scopes exist; `None` sees every tool.
    pub scope: Option<String>,
    /// Tools, prompts, resources or resource templates.
    pub kind: ListKind,
}

/// Work the gate wants done once startup is settled (a `tools/call` that arrived early); it gets
/// the request's responder back.
pub type Deferred = Box<dyn FnOnce(Responder) + Send>;

/// What the gate asks of the merger.
pub enum Request {
    /// Answer `tools/list` (or the list `key` names) for `key` at `cursor`.
    List {
        /// The view.
        key: ViewKey,
        /// The agent's cursor.
        cursor: Option<String>,
        /// Where the answer goes.
        responder: Responder,
    },
    /// Answer `initialize` once startup is settled, with the capabilities the servers offer
    /// then, and tell the session about list changes from then on.
    ReleaseWhenReady {
        /// Where the answer goes.
        responder: Responder,
        /// The protocol version negotiated.
        version: &'static str,
    },
    /// `resources/subscribe` (`on`) or `resources/unsubscribe` of `uri` for the responder's
    /// session.
    Watch {
        /// Where the answer goes.
        responder: Responder,
        /// The resource's URI.
        uri: String,
        /// Subscribe, or unsubscribe.
        on: bool,
        /// The calling agent (passed on to `partner` connections).
        agent: Option<String>,
    },
    /// A 2026-07-28 `subscriptions/listen` with request id `id`: acknowledged and told through
    /// `sink` from now on.
    Listen {
        /// Where its notices go.
        sink: Sink,
        /// The listen request's id (its `subscriptionId`).
        id: Id,
        /// What it asked for.
        filter: super::sessions::Filter,
    },
    /// A listen ended (its client cancelled it or went away).
    EndListen {
        /// Its session.
        session: SessionId,
        /// The listen request's id.
        id: Id,
    },
    /// `logging/setLevel` for the responder's session.
    SetLevel {
        /// Where the answer goes.
        responder: Responder,
        /// The level asked for.
        level: LogLevel,
    },
    /// Forget a session's subscription.
    Unsubscribe {
        /// The session.
        session: SessionId,
    },
    /// Tell this sink's session about list changes from now on, replacing an earlier sink of the
    /// same session (an HTTP session's queue of notifications for its next answer); servers'
    /// log messages too unless `logs` is false (a partner or a scoped token, limited to some
    /// servers, hears no server's log).
    Subscribe {
        /// Where its notices go.
        sink: Sink,
        /// Whether log messages go there.
        logs: bool,
    },
    /// A connection was added to the workspace (its tools arrive as events).
    AddServer(ConnHandle),
    /// A connection was removed: its tools leave the view.
    RemoveServer(ConnId),
    /// Run once startup is settled, in order with the other held requests.
    WhenReady {
        /// The request's responder, handed to `run` (or answered with an error if the merger
        /// cannot take the request).
        responder: Responder,
        /// The work.
        run: Deferred,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::List { key, .. } => write!(f, "List({key:?})"),
            Request::ReleaseWhenReady { responder, .. } => {
                write!(f, "ReleaseWhenReady({})", responder.session())
            }
            Request::Unsubscribe { session } => write!(f, "Unsubscribe({session})"),
            Request::Watch { responder, on, .. } => {
                write!(f, "Watch({}, {on})", responder.session())
            }
            Request::Listen { sink, .. } => write!(f, "Listen({})", sink.session()),
            Request::EndListen { session, .. } => write!(f, "EndListen({session})"),
            Request::SetLevel { responder, level } => {
                write!(f, "SetLevel({}, {level:?})", responder.session())
            }
            Request::AddServer(conn) => write!(f, "AddServer({})", conn.name()),
            Request::Subscribe { sink, .. } => write!(f, "Subscribe({})", sink.session()),
            Request::RemoveServer(id) => write!(f, "RemoveServer({id:?})"),
            Request::WhenReady { responder, .. } => write!(f, "WhenReady({})", responder.session()),
        }
    }
}

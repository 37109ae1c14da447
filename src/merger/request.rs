//! What the gate may ask of the merger: [`Request`], the [`ViewKey`] of a merged view, and
//! [`Deferred`] work held until startup settles.
//!
//! Owns: the request vocabulary and its `Debug` form (which names the session or server, never a
//! payload), and [`MAX_HELD`], the bound on requests held during startup.
//! Never: imports another file of the merger; every other file may use it, so it stays the lowest
//! (no import circle through it). It holds no state and does no I/O.

use crate::downstream::{ConnHandle, ConnId};
use crate::jsonrpc::{Responder, SessionId, Sink};

/// Requests held until startup settles; more are refused at once.
pub const MAX_HELD: usize = 1024;

/// Which merged view: a workspace, and room for the caller's scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The workspace (`default` in stdio mode).
    pub workspace: String,
    /// The caller's tool scope, once scopes exist; `None` sees every tool.
    pub scope: Option<String>,
}

/// Work the gate wants done once startup is settled (a `tools/call` that arrived early); it gets
/// the request's responder back.
pub type Deferred = Box<dyn FnOnce(Responder) + Send>;

/// What the gate asks of the merger.
pub enum Request {
    /// Answer `tools/list` for `key` at `cursor`.
    List {
        /// The view.
        key: ViewKey,
        /// The agent's cursor.
        cursor: Option<String>,
        /// Where the answer goes.
        responder: Responder,
    },
    /// Answer `initialize` with `result` once startup is settled, then subscribe the session to
    /// `notifications/tools/list_changed`.
    ReleaseWhenReady {
        /// Where the answer goes.
        responder: Responder,
        /// The result to send.
        result: String,
    },
    /// Forget a session's subscription.
    Unsubscribe {
        /// The session.
        session: SessionId,
    },
    /// Tell this sink's session about list changes from now on, replacing an earlier sink of the
    /// same session (an HTTP session's queue of notifications for its next answer).
    Subscribe(Sink),
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
            Request::AddServer(conn) => write!(f, "AddServer({})", conn.name()),
            Request::Subscribe(sink) => write!(f, "Subscribe({})", sink.session()),
            Request::RemoveServer(id) => write!(f, "RemoveServer({id:?})"),
            Request::WhenReady { responder, .. } => write!(f, "WhenReady({})", responder.session()),
        }
    }
}

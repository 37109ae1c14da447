//! [`ConnHandle`]: the cheap, clonable way other parts talk to one connection: its calls (written
//! by the calling thread when the connection is idle, else queued with a wake), commands, stop
//! flag and status [`Snapshot`].
//!
//! Owns: exactly one answer for every call it is handed (an error at once when the connection
//! cannot take it). Never: waits for the connection: a full command queue is an error, the
//! worker's lock is only tried.

use super::{connection, CallRequest, Command, ConnId, QueuedCall, Snapshot};
use crate::jsonrpc::{code, Id, SessionId};
use crate::thread::lock;
use crossbeam_channel::{Sender, TrySendError};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(super) struct HandleInner {
    pub(super) id: ConnId,
    /// Shared with every queued call (`QueuedCall`), which names it should it answer itself.
    pub(super) name: Arc<str>,
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) snapshot: Mutex<Snapshot>,
    /// Set once by the manager; a flag rather than a command so a full queue cannot lose it.
    pub(super) stop: AtomicBool,
    /// Whether policies may believe its tools' annotations.
    pub(super) trusted: bool,
    /// The worker itself, for a call its holder forwards without the queue (set once, when the
    /// worker is made).
    pub(super) direct: std::sync::OnceLock<connection::Direct>,
}

/// A clonable handle on one connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub(super) inner: Arc<HandleInner>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .finish()
    }
}

impl ConnHandle {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.inner.id
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the server is marked trusted (policies may use its tools' annotations).
    pub fn trusted(&self) -> bool {
        self.inner.trusted
    }

    /// Forwards an agent request. When the connection cannot take it (queue full, thread gone)
    /// the agent is answered with an error at once, so every request gets exactly one answer.
    /// The calling thread forwards the call itself when the connection's worker is free (see
    /// `connection/direct.rs`), else it queues it.
    pub fn call(&self, req: CallRequest) {
        if self.stop_requested() {
            // Stopping: a queued call would wait out the teardown only to be failed.
            return super::answer_stopped(req.responder, &self.inner.name);
        }
        // Boxed once, for either way (a queued command holds it boxed).
        let req = Box::new(req);
        let req = match self.inner.direct.get() {
            Some(direct) => match direct.call(req) {
                Ok(()) => return,
                Err(req) => req,
            },
            None => req,
        };
        let queued = QueuedCall::new(req, Arc::clone(&self.inner.name));
        match self.inner.tx.try_send(Command::Call(queued)) {
            Ok(()) => self.wake(),
            // Stopped: the call answers its agent itself as it drops (`QueuedCall`).
            Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(command)) => {
                if let Command::Call(queued) = command {
                    if let Some(req) = queued.take() {
                        let message = format!(
                            "server '{}' is overloaded (command queue full)",
                            self.inner.name
                        );
                        req.responder.error(code::OVERLOADED, &message);
                    }
                }
            }
        }
    }

    /// Tells the connection the agent cancelled request `id` of `session` (if it holds it).
    pub fn cancel(&self, session: SessionId, id: Id) {
        self.send(Command::Cancel { session, id });
    }

    /// Hands the child an agent's answer to its request `n`.
    pub(crate) fn client_answer(
        &self,
        session: SessionId,
        n: u64,
        outcome: crate::jsonrpc::Outcome,
    ) {
        self.send(Command::ClientAnswer {
            session,
            n,
            outcome,
        });
    }

    /// Sends the child a notification of the gate's own.
    pub(crate) fn notify(&self, method: &'static str, params: Option<String>) {
        self.send(Command::Notify { method, params });
    }

    /// Sends the child a request of the gate's own, whose answer is not awaited.
    pub(crate) fn tell(&self, method: &'static str, params: String) {
        self.send(Command::Tell { method, params });
    }

    /// Asks the connection to fetch its child's tool list again.
    pub fn refresh_tools(&self) {
        self.send(Command::RefreshTools);
    }

    /// Restarts the child now.
    pub fn restart(&self) {
        self.send(Command::Restart);
    }

    /// The connection's current state.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.inner.snapshot).clone()
    }

    fn send(&self, cmd: Command) {
        if self.inner.tx.try_send(cmd).is_ok() {
            self.wake();
        } else {
            log::warn!(
                "connection {}: command queue full or closed",
                self.inner.name
            );
        }
    }

    pub(super) fn stop_requested(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    pub(super) fn wake(&self) {
        if let Err(e) = self.inner.waker.wake() {
            log::error!("connection {}: wake failed: {e}", self.inner.name);
        }
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut lock(&self.inner.snapshot));
    }
}

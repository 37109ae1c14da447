//! Reply routes: how an answer finds its way back to the agent that asked.
//!
//! Owns: [`Sink`] (a bounded queue of outgoing lines for one upstream transport) and [`Responder`]
//! (a sink plus the agent's id and session, consumed by exactly one answer).
//! Never: blocks, except [`Sink::wait_idle`], which a transport calls while shutting down. A full
//! sink drops the line and logs it: a downstream thread must not stall because an agent stopped
//! reading.

use super::{error_line, raw_error_line, result_line, Id};
use crossbeam_channel::{Sender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Identifies one upstream session (one stdio peer, one HTTP session) inside the gate.
pub type SessionId = u64;

/// A bounded queue of serialized JSON-RPC lines bound for one upstream peer.
#[derive(Clone, Debug)]
pub struct Sink {
    session: SessionId,
    tx: Sender<Vec<u8>>,
    unanswered: Arc<Unanswered>,
}

/// Requests of one session that still owe an answer, so a closing transport can let them finish.
#[derive(Debug, Default)]
struct Unanswered {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Unanswered {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn done(&self) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.zero.notify_all();
        }
    }
}

impl Sink {
    /// Wraps the sending end of an upstream transport's queue.
    pub fn new(session: SessionId, tx: Sender<Vec<u8>>) -> Sink {
        Sink {
            session,
            tx,
            unanswered: Arc::default(),
        }
    }

    /// Waits until every request of this session has been answered, or `timeout` passes.
    /// Returns true when none is left.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = self
            .unanswered
            .count
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = match self.unanswered.zero.wait_timeout(count, left) {
                Ok((c, _)) => c,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// The session this sink belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Queues one line; returns false when the peer is gone or not reading.
    pub fn send(&self, line: Vec<u8>) -> bool {
        match self.tx.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!(
                    "session {}: outgoing queue full, a message was dropped",
                    self.session
                );
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The one answer owed to one agent request. Dropping it unanswered is allowed (a cancelled
/// request is owed nothing) and still counts it as settled for [`Sink::wait_idle`].
#[derive(Debug)]
pub struct Responder {
    id: Id,
    sink: Sink,
}

impl Responder {
    /// The route back for request `id` arriving on `sink`.
    pub fn new(id: Id, sink: Sink) -> Responder {
        sink.unanswered.add();
        Responder { id, sink }
    }

    /// The agent's id.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// The session the request came from.
    pub fn session(&self) -> SessionId {
        self.sink.session
    }

    /// The sink the answer will go to.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Sends a notification that belongs to this request (progress), keeping the responder.
    pub fn notify(&self, line: Vec<u8>) -> bool {
        self.sink.send(line)
    }

    /// Answers with a raw result, spliced in untouched.
    pub fn result(self, result: &str) {
        self.sink.send(result_line(&self.id, result));
    }

    /// Answers with an error of the gate's own.
    pub fn error(self, code: i64, message: &str) {
        self.sink.send(error_line(Some(&self.id), code, message));
    }

    /// Answers with a child's error object, verbatim.
    pub fn raw_error(self, error: &str) {
        self.sink.send(raw_error_line(Some(&self.id), error));
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.sink.unanswered.done();
    }
}

//! Reply routes: how an answer finds its way back to the agent that asked.
//!
//! Owns: [`Sink`] (a bounded queue of outgoing lines for one upstream transport, with an optional
//! [`Shortcut`] that lets the thread holding a line write it itself) and [`Responder`] (a sink
//! plus the agent's id and session, consumed by exactly one answer).
//! Never: blocks for long: a notification is dropped when the sink is full; an answer waits at
//! most [`REPLY_WAIT`] for room (a downstream thread must not stall on an agent that stopped
//! reading); [`Sink::wait_idle`] blocks only for a transport that is shutting down.

use super::{error_line, raw_error_line, result_line, Id};
use crate::thread::lock;
use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an answer waits for room in a full outgoing queue.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);

/// What became of a queued line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued for the peer, or already written to it by the sink's [`Shortcut`].
    Queued,
    /// Dropped: the queue was full.
    Full,
    /// Dropped: the peer is gone.
    Closed,
}

/// Identifies one upstream session (one stdio peer, one HTTP session) inside the gate.
pub type SessionId = u64;

/// A way for the thread that holds a line to write it to the peer itself, skipping the hop to
/// the transport's writer thread (a futex wake and a context switch per answer), when that keeps
/// the order of lines and cannot block.
pub trait Shortcut: Send + Sync + std::fmt::Debug {
    /// Writes `line` to the peer at once and returns `None`; or gives it back for the queue,
    /// counted as queued until the writer thread has written it (so no later line overtakes it).
    fn write_now(&self, line: Vec<u8>) -> Option<Vec<u8>>;
    /// A line that [`Shortcut::write_now`] gave back did not reach the queue after all.
    fn unqueued(&self);
}

/// A bounded queue of serialized JSON-RPC lines bound for one upstream peer.
#[derive(Clone, Debug)]
pub struct Sink {
    session: SessionId,
    tx: Sender<Vec<u8>>,
    unanswered: Arc<Unanswered>,
    /// A full queue already holds the same notice (`list_changed` says nothing more twice).
    coalescing: bool,
    /// Writes a line from the calling thread when it can (stdio's stdout).
    shortcut: Option<Arc<dyn Shortcut>>,
}

/// Requests of one session that still owe an answer, so a closing transport can let them finish.
#[derive(Debug, Default)]
struct Unanswered {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Unanswered {
    fn add(&self) {
        *lock(&self.count) += 1;
    }

    fn done(&self) {
        let mut count = lock(&self.count);
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
            coalescing: false,
            shortcut: None,
        }
    }

    /// The same sink, offering every line to `shortcut` before queueing it.
    pub fn with_shortcut(mut self, shortcut: Arc<dyn Shortcut>) -> Sink {
        self.shortcut = Some(shortcut);
        self
    }

    /// `line` written by the shortcut (`None`), or given back for the queue.
    fn write_now(&self, line: Vec<u8>) -> Option<Vec<u8>> {
        match &self.shortcut {
            Some(shortcut) => shortcut.write_now(line),
            None => Some(line),
        }
    }

    /// What became of a line given back by the shortcut: one not queued is not waited for.
    fn settle(&self, sent: Sent) -> Sent {
        if sent != Sent::Queued {
            if let Some(shortcut) = &self.shortcut {
                shortcut.unqueued();
            }
        }
        sent
    }

    /// A queue of notices for a session to pick up later, where a full queue means the notice
    /// is already waiting: dropping another is normal and not logged.
    pub fn notices(session: SessionId, tx: Sender<Vec<u8>>) -> Sink {
        Sink {
            coalescing: true,
            ..Sink::new(session, tx)
        }
    }

    /// Waits until every request of this session has been answered, or `timeout` passes.
    /// Returns true when none is left.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = lock(&self.unanswered.count);
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

    /// Queues one notification without waiting; a full queue drops it (notifications are the
    /// first thing to go when an agent does not keep up).
    pub fn send(&self, line: Vec<u8>) -> Sent {
        let Some(line) = self.write_now(line) else {
            return Sent::Queued;
        };
        let sent = match self.tx.try_send(line) {
            Ok(()) => Sent::Queued,
            Err(TrySendError::Full(_)) if self.coalescing => Sent::Full,
            Err(TrySendError::Full(_)) => {
                log::warn!(
                    "session {}: outgoing queue full, a notification was dropped",
                    self.session
                );
                Sent::Full
            }
            Err(TrySendError::Disconnected(_)) => Sent::Closed,
        };
        self.settle(sent)
    }

    /// Queues an answer, waiting up to [`REPLY_WAIT`] for room: an answer is owed and is not
    /// dropped while a slow agent catches up; only an agent that reads nothing at all loses it.
    pub fn send_reply(&self, line: Vec<u8>) -> Sent {
        let Some(line) = self.write_now(line) else {
            return Sent::Queued;
        };
        let sent = match self.tx.send_timeout(line, REPLY_WAIT) {
            Ok(()) => Sent::Queued,
            Err(SendTimeoutError::Timeout(_)) => {
                log::error!(
                    "session {}: the agent read nothing for {} s; an answer was dropped",
                    self.session,
                    REPLY_WAIT.as_secs()
                );
                Sent::Full
            }
            Err(SendTimeoutError::Disconnected(_)) => Sent::Closed,
        };
        self.settle(sent)
    }
}

/// The era of the request an answer goes to, and what its result must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A legacy (2024-11-05 … 2025-11-25) request: the result as the server wrote it.
    Legacy,
    /// A 2026-07-28 request: `resultType` on every result.
    Modern,
    /// A 2026-07-28 list or read: `resultType`, `ttlMs` and `cacheScope`.
    ModernCacheable,
}

/// The fields a 2026-07-28 result needs that a legacy server does not write, spliced in front
/// of its own: the gate's lists vary per agent and policy, so nothing is cached publicly.
const MODERN_FIELDS: &str = "\"resultType\":\"complete\"";
const CACHE_FIELDS: &str = "\"ttlMs\":0,\"cacheScope\":\"private\"";

/// `"_meta":{"io.modelcontextprotocol/serverInfo":{…}}`, the gate's stamp on a modern result.
fn server_stamp() -> String {
    format!(
        "\"_meta\":{{\"io.modelcontextprotocol/serverInfo\":{{\"name\":\"{}\",\"version\":\"{}\"}}}}",
        // The package's name and version: what `mcp::IMPLEMENTATION_NAME` and `_VERSION` say
        // (that module sits above this one).
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
}

/// `result` with what a `shape`'s era needs that it lacks (a modern server's own fields stay).
pub fn shape_result(result: &str, shape: Shape) -> std::borrow::Cow<'_, str> {
    let cacheable = shape == Shape::ModernCacheable;
    if shape == Shape::Legacy {
        return result.into();
    }
    // Only the result's own keys count (a tool's content may hold any key).
    let keys: std::collections::HashMap<String, serde::de::IgnoredAny> =
        serde_json::from_str(result).unwrap_or_default();
    let mut fields = Vec::new();
    if !keys.contains_key("resultType") {
        fields.push(MODERN_FIELDS);
    }
    if cacheable && !keys.contains_key("ttlMs") {
        fields.push(CACHE_FIELDS);
    }
    // Who answered (a SHOULD of the era on every result), unless the result has a `_meta`.
    let stamp = server_stamp();
    if !keys.contains_key("_meta") {
        fields.push(&stamp);
    }
    let trimmed = result.trim_start();
    let Some(rest) = trimmed.strip_prefix('{') else {
        return result.into();
    };
    if fields.is_empty() {
        return result.into();
    }
    let rest_trimmed = rest.trim_start();
    let sep = if rest_trimmed.starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{{}{sep}{rest}", fields.join(",")).into()
}

/// The one answer owed to one agent request. Dropping it unanswered is allowed (a cancelled
/// request is owed nothing) and still counts it as settled for [`Sink::wait_idle`].
#[derive(Debug)]
pub struct Responder {
    id: Id,
    sink: Sink,
    shape: Shape,
}

impl Responder {
    /// The route back for request `id` arriving on `sink`.
    pub fn new(id: Id, sink: Sink) -> Responder {
        sink.unanswered.add();
        Responder {
            id,
            sink,
            shape: Shape::Legacy,
        }
    }

    /// The same route, for a request of `shape`'s era.
    pub fn shaped(mut self, shape: Shape) -> Responder {
        self.shape = shape;
        self
    }

    /// The era of the request.
    pub fn shape(&self) -> Shape {
        self.shape
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
    pub fn notify(&self, line: Vec<u8>) -> Sent {
        self.sink.send(line)
    }

    /// Answers with a raw result, spliced in untouched (a modern request's gets the fields its
    /// era needs in front, see [`shape_result`]).
    pub fn result(self, result: &str) {
        let shaped = shape_result(result, self.shape);
        self.sink.send_reply(result_line(&self.id, &shaped));
    }

    /// Answers with a result exactly as given (a modern request's `input_required`).
    pub fn raw_result(self, result: &str) {
        self.sink.send_reply(result_line(&self.id, result));
    }

    /// Answers with an error of the gate's own. A modern request never gets -32002 (its era
    /// gave that code away): "server unavailable" becomes -32603 for it.
    pub fn error(self, code: i64, message: &str) {
        let code = match (self.shape, code) {
            (Shape::Modern | Shape::ModernCacheable, super::code::SERVER_UNAVAILABLE) => {
                super::code::INTERNAL_ERROR
            }
            _ => code,
        };
        self.sink
            .send_reply(error_line(Some(&self.id), code, message));
    }

    /// Answers with a child's error object, verbatim; for a modern request a legacy server's
    /// "resource not found" (-32002) becomes -32602, as the modern era says.
    pub fn raw_error(self, error: &str) {
        let modern = self.shape != Shape::Legacy;
        if modern && error.contains("-32002") {
            if let Ok(mut object) = serde_json::from_str::<serde_json::Value>(error) {
                if object.get("code").and_then(serde_json::Value::as_i64) == Some(-32002) {
                    object["code"] = serde_json::json!(super::code::INVALID_PARAMS);
                    let line = raw_error_line(Some(&self.id), &object.to_string());
                    self.sink.send_reply(line);
                    return;
                }
            }
        }
        self.sink.send_reply(raw_error_line(Some(&self.id), error));
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.sink.unanswered.done();
    }
}

#[cfg(test)]
mod tests {
    use super::{shape_result, Shape};

    #[test]
    fn a_modern_result_gets_its_fields_in_front_and_a_legacy_one_stays_as_written() {
        assert_eq!(shape_result(r#"{"a":1}"#, Shape::Legacy), r#"{"a":1}"#);
        let modern = shape_result(r#"{"a":1}"#, Shape::Modern);
        assert!(modern.starts_with(r#"{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"aegis-gate""#), "{modern}");
        assert!(modern.ends_with(r#"}},"a":1}"#), "{modern}");
        let empty = shape_result("{}", Shape::ModernCacheable);
        assert!(
            empty.starts_with(
                r#"{"resultType":"complete","ttlMs":0,"cacheScope":"private","_meta""#
            ),
            "{empty}"
        );
        let value: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(
            value["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "aegis-gate"
        );
        let modern =
            r#"{"resultType":"complete","ttlMs":5,"cacheScope":"public","tools":[],"_meta":{}}"#;
        assert_eq!(shape_result(modern, Shape::ModernCacheable), modern);
    }
}

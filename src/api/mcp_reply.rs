//! The answer to an MCP request over HTTP: waiting for it on the session's reply queue and
//! writing it, as one JSON body or as server-sent events.
//!
//! Owns: the [`Reply`] kinds, the wait for the answer to one request id ([`answer`]: JSON when
//! the answer comes first, an event stream when notifications come before it and the client
//! takes one), the event stream's body ([`SseBody`], which ends with the answer or with a
//! timeout error at the deadline), a partner's filtered `tools/list`, and writing each kind.
//! Never: waits past the request's deadline; passes a partner's tool list on unfiltered (an
//! answer that cannot be filtered becomes an error); buffers an event stream (each event is
//! flushed as it comes, so progress reaches the client before the answer).

use super::calls::CallInFlight;
use super::delegated::Admitted;
use super::http::ApiError;
use super::sse;
use crate::jsonrpc::{self, Id, Message};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a request is answered with.
pub(super) enum Reply {
    Json {
        status: u16,
        body: String,
        session: Option<String>,
    },
    Accepted,
    NoContent,
    /// Events, then the answer; the call it answers is recorded when the stream has ended.
    Stream(Box<SseBody>, Option<CallInFlight>),
    /// A request refused on who sent it: a JSON-RPC error with 401, 403 or 429.
    Refused {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A session's GET stream: the head goes out, then the stream is handed over.
    EventStream {
        session: String,
        notes: Receiver<Vec<u8>>,
        streaming: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// Waits for the answer to `id`: JSON when it comes first, server-sent events when progress
/// notifications come before it (and the client accepts them).
pub(super) fn answer(
    rx: Receiver<Vec<u8>>,
    id: &Id,
    deadline: Instant,
    accepts_sse: bool,
    waiting: Vec<Vec<u8>>,
    session: Option<String>,
) -> Result<Reply, ApiError> {
    if !waiting.is_empty() {
        let pending = waiting.iter().flat_map(|line| sse::event(line)).collect();
        let body = SseBody::new(rx, id.clone(), deadline, pending);
        return Ok(Reply::Stream(Box::new(body), None));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if is_answer_to(&line, id) => {
                return Ok(Reply::Json {
                    status: 200,
                    body: String::from_utf8_lossy(&line).into_owned(),
                    session,
                })
            }
            Ok(line) if accepts_sse => {
                let body = SseBody::new(rx, id.clone(), deadline, sse::event(&line).into());
                return Ok(Reply::Stream(Box::new(body), None));
            }
            // A notification the client cannot take as a stream: dropped.
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                return Err(ApiError::new(504, "timeout", "no answer in time"));
            }
        }
    }
}

fn is_answer_to(line: &[u8], id: &Id) -> bool {
    matches!(jsonrpc::parse(line), Ok(Message::Response { id: ref got, .. }) if got == id)
        || matches!(jsonrpc::parse(line), Err(ref e) if e.id() == Some(id))
}

/// The outcome label of a `tools/call` answered without a stream, for the metrics and the
/// audit trail.
pub(super) fn outcome(reply: &Result<Reply, ApiError>) -> String {
    match reply {
        Ok(Reply::Json { body, .. }) => jsonrpc::outcome_label(body.as_bytes()),
        Ok(Reply::Stream(..)) => "no_answer".to_owned(),
        Ok(Reply::Refused { .. }) => "refused".to_owned(),
        Ok(Reply::Accepted | Reply::NoContent | Reply::EventStream { .. }) => "invalid".to_owned(),
        Err(_) => "timeout".to_owned(),
    }
}

/// A partner's `tools/list` answer with only the tools it may call.
pub(super) fn only_permitted(reply: Reply, admitted: &Admitted) -> Reply {
    let Reply::Json {
        status,
        body,
        session,
    } = reply
    else {
        return reply;
    };
    let body = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(mut answer) => {
            if let Some(tools) = answer
                .pointer_mut("/result/tools")
                .and_then(serde_json::Value::as_array_mut)
            {
                tools.retain(|t| {
                    t.get("name")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|name| admitted.permits(name))
                });
            }
            answer.to_string()
        }
        // Never pass an answer on unfiltered.
        Err(_) => String::from_utf8_lossy(&jsonrpc::error_line(
            None,
            jsonrpc::code::INTERNAL_ERROR,
            "the tool list could not be filtered",
        ))
        .into_owned(),
    };
    Reply::Json {
        status,
        body,
        session,
    }
}

/// Server-sent events for one request: its notifications, then its answer, then the end.
pub(super) struct SseBody {
    rx: Receiver<Vec<u8>>,
    id: Id,
    deadline: Instant,
    pending: VecDeque<u8>,
    done: bool,
    /// The stream's final line (the answer, or the timeout error), for the call's record once
    /// the body has been written.
    last: Arc<Mutex<Option<Vec<u8>>>>,
}

impl SseBody {
    fn new(rx: Receiver<Vec<u8>>, id: Id, deadline: Instant, pending: VecDeque<u8>) -> SseBody {
        SseBody {
            rx,
            id,
            deadline,
            pending,
            done: false,
            last: Arc::default(),
        }
    }

    /// Where the stream's final line will be, once it is written.
    pub(super) fn last(&self) -> Arc<Mutex<Option<Vec<u8>>>> {
        Arc::clone(&self.last)
    }

    fn finish(&mut self, line: &[u8]) {
        self.done = true;
        self.pending = sse::event(line).into();
        *crate::thread::lock(&self.last) = Some(line.to_vec());
    }
}

impl Read for SseBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            if self.done {
                return Ok(0);
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if is_answer_to(&line, &self.id) => self.finish(&line),
                Ok(line) => self.pending = sse::event(&line).into(),
                // Nothing is owed any more (the request was cancelled): the stream just ends.
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
                // The headers are gone already: the stream's last event answers with a timeout,
                // so the client is not left waiting for an answer that will never come.
                Err(RecvTimeoutError::Timeout) => {
                    let line = jsonrpc::error_line(
                        Some(&self.id),
                        jsonrpc::code::REQUEST_TIMEOUT,
                        "no answer in time",
                    );
                    self.finish(&line);
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        for (slot, byte) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

fn with_header<R: Read>(
    response: tiny_http::Response<R>,
    name: &str,
    value: &str,
) -> tiny_http::Response<R> {
    match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

/// A JSON (or empty) answer, with the session id when one was just issued.
pub(super) fn respond(
    request: tiny_http::Request,
    status: u16,
    body: String,
    session: Option<String>,
) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if status == 200 || status == 400 {
        response = with_header(response, "Content-Type", "application/json");
    }
    if let Some(id) = session {
        response = with_header(response, "Mcp-Session-Id", &id);
    }
    let _ = request.respond(response);
}

/// A JSON body with `status`, `Retry-After` when the caller should wait, and `Allow` on 405.
pub(super) fn respond_refused(
    request: tiny_http::Request,
    status: u16,
    body: String,
    retry_after: Option<u64>,
) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    response = with_header(response, "Content-Type", "application/json");
    if let Some(secs) = retry_after {
        response = with_header(response, "Retry-After", &secs.to_string());
    }
    if status == 405 {
        response = with_header(response, "Allow", "GET, POST, DELETE");
    }
    let _ = request.respond(response);
}

/// Writes an event stream as it comes.
pub(super) fn stream(request: tiny_http::Request, mut body: SseBody) {
    if *request.http_version() < tiny_http::HTTPVersion(1, 1) {
        // No chunked encoding before HTTP/1.1: tiny_http sends the events at the end.
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ]
        .iter()
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect();
        let response =
            tiny_http::Response::new(tiny_http::StatusCode(200), headers, body, None, None);
        let _ = request.respond(response);
        return;
    }
    // Written here, not by `respond`: its chunk encoder holds 8 KiB before it sends anything,
    // which would keep progress notifications from the client until the answer.
    let mut writer = request.into_writer();
    let _ = write_events(&mut writer, &mut body);
}

/// A chunked `200 text/event-stream` response, one chunk (flushed) per read of `body`.
fn write_events(writer: &mut dyn Write, body: &mut SseBody) -> std::io::Result<()> {
    writer.write_all(sse::ANSWER_HEAD)?;
    writer.flush()?;
    let mut buf = [0u8; 8192];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sse::write_chunk(writer, buf.get(..n).unwrap_or_default())?;
        writer.flush()?;
    }
    writer.write_all(sse::LAST_CHUNK)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id7() -> Id {
        let raw = serde_json::value::RawValue::from_string("7".to_owned()).expect("raw");
        Id::from_raw(&raw).expect("id")
    }

    fn read_all(mut body: SseBody) -> String {
        let mut out = String::new();
        body.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn a_stream_past_its_deadline_ends_with_a_timeout_answer() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let note = jsonrpc::notification_line("notifications/tools/list_changed", None);
        let body = SseBody::new(rx, id7(), Instant::now(), sse::event(&note).into());
        let out = read_all(body);
        drop(tx);
        assert!(out.starts_with("event: message\ndata: "), "{out}");
        assert!(out.contains("list_changed"), "{out}");
        let last = out.lines().rev().find_map(|l| l.strip_prefix("data: "));
        let answer: serde_json::Value = serde_json::from_str(last.expect("data")).expect("json");
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], jsonrpc::code::REQUEST_TIMEOUT);
    }

    #[test]
    fn a_stream_whose_request_was_dropped_just_ends() {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
        drop(tx);
        let body = SseBody::new(
            rx,
            id7(),
            Instant::now() + Duration::from_secs(60),
            VecDeque::new(),
        );
        assert_eq!(read_all(body), "");
    }
}

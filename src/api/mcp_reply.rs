//! The answer to an MCP request over HTTP: waiting for it on the request's reply queue and
//! sending it, as one JSON body or as server-sent events, without holding a worker.
//!
//! Owns: [`Awaited`] (a request whose answer is coming: its reply queue, its id, its deadline,
//! what the client accepts, the list changes that go first, a partner's tool filter, the call's
//! record), the `http-answers` thread that waits on every awaited request at once (crossbeam
//! `Select`) and sends each answer as it comes: JSON when the answer comes first, an event
//! stream when notifications come before it and the client takes one (each event goes out as
//! it comes, so progress reaches the client before the answer); a timeout at the deadline; and
//! each call's record once answered. Also the short first look a worker takes before it hands a
//! request over ([`FIRST_LOOK`]), so a quick answer costs no thread hop.
//! Never: waits past a request's deadline; passes a partner's tool list on unfiltered (an answer
//! that cannot be filtered becomes an error); keeps more than [`MAX_AWAITED`] requests (more are
//! answered 503 at once).
//!
//! Threads: `http-answers`, ended by [`Answers::stop`] and joined: answers already queued are
//! sent first; then a request waiting for a JSON answer gets 503, one whose event stream is open
//! gets an error event and the stream ends.

use super::calls::CallInFlight;
use super::delegated::Admitted;
use super::http::ApiError;
use super::metrics::Metrics;
use super::sse;
use crate::audit::Audit;
use crate::http::{After, Request, Stream};
use crate::jsonrpc::{self, Id, Message};
use crate::merger::Routes;
use crate::thread::{self, lock, JoinOnDrop};
use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender, TrySendError};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker waits for an answer itself before it hands the request over: long enough
/// for a quick tool's answer, short enough that a burst of slow calls (up to the front's job
/// queue of 1 024, over 16 workers) delays other requests by about 20 ms at most.
pub(super) const FIRST_LOOK: Duration = Duration::from_micros(300);
/// Requests waiting for their answer at once.
const MAX_AWAITED: usize = 4096;
/// Requests handed over but not yet taken by the thread.
const HANDOVER_QUEUE: usize = 1024;

/// A request whose answer is coming.
pub(super) struct Awaited {
    pub(super) request: Request,
    pub(super) awaiting: Awaiting,
}

/// What waiting for an answer needs besides the request.
pub(super) struct Awaiting {
    pub(super) rx: Receiver<Vec<u8>>,
    pub(super) id: Id,
    pub(super) deadline: Instant,
    pub(super) accepts_sse: bool,
    /// Lines that go first, as events (list changes since the session's last request, and
    /// notifications a worker's first look saw).
    pub(super) first: Vec<Vec<u8>>,
    /// The session id issued with this answer (`initialize`).
    pub(super) session: Option<String>,
    /// A partner's or scoped token's list of tools, prompts, resources or templates: only what
    /// it may use, always as JSON.
    pub(super) only: Option<Only>,
    /// The call to record once answered.
    pub(super) call: Option<CallInFlight>,
    /// A 2026-07-28 request: a JSON answer's status follows its error code, and a client that
    /// closes the request's event stream cancels the request (`lost` tells the gate).
    pub(super) modern: bool,
    /// Tells the gate the client went away (a 2026-07-28 request's cancellation).
    pub(super) lost: Option<Lost>,
}

/// What tells the gate that a request's client went away.
pub(super) type Lost = Box<dyn FnOnce() + Send>;

/// A 2026-07-28 request still unanswered after this is answered as an event stream, so that
/// its keepalives find a client that went away (closing the stream cancels the request).
const MODERN_STREAM_AFTER: Duration = Duration::from_secs(5);
/// How often an open 2026-07-28 event stream gets a keepalive comment.
const MODERN_KEEPALIVE: Duration = Duration::from_secs(5);

/// Where an answer's record goes.
#[derive(Clone)]
pub(super) struct Records {
    pub(super) audit: Option<Arc<Audit>>,
    pub(super) metrics: Arc<Metrics>,
}

impl Awaited {
    /// The worker's first look: a quick answer is sent at once (`None`); otherwise the request
    /// goes on waiting, with what the look saw.
    pub(super) fn first_look(mut self, records: &Records) -> Option<Awaited> {
        let a = &mut self.awaiting;
        if !a.first.is_empty() {
            return Some(self);
        }
        match a.rx.recv_timeout(FIRST_LOOK) {
            Ok(line) if is_answer_to(&line, &a.id) => {
                Entry::new(self).answer(&line, records);
                None
            }
            Ok(line) => {
                if a.accepts_sse && a.only.is_none() {
                    a.first.push(line);
                }
                Some(self)
            }
            Err(RecvTimeoutError::Timeout) => Some(self),
            Err(RecvTimeoutError::Disconnected) => {
                Entry::new(self).fail(None, &timeout_error(), "timeout", records);
                None
            }
        }
    }
}

fn finish(call: Option<CallInFlight>, records: &Records, outcome: String) {
    if let Some(call) = call {
        call.finish(records.audit.as_deref(), &records.metrics, outcome);
    }
}

/// A JSON answer, with the session id when one was just issued.
pub(super) fn respond_json(request: Request, status: u16, body: &[u8], session: Option<&str>) {
    match session {
        Some(id) => {
            super::http::respond_json_with(request, status, &[("Mcp-Session-Id", id)], body)
        }
        None => super::http::respond_json(request, status, body),
    }
}

/// The error code of an answer line, if it is an error.
fn error_code(line: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_slice::<Answer>(line)
        .ok()?
        .error
        .map(|e| e.code)
}

fn is_answer_to(line: &[u8], id: &Id) -> bool {
    match jsonrpc::parse(line) {
        Ok(Message::Response { id: got, .. }) => got == *id,
        Err(e) => e.id() == Some(id),
        Ok(_) => false,
    }
}

/// What a limited caller may see of a list: its scopes, and the routes that name each
/// resource (scopes match a resource's `server.name`, not its URI).
pub(super) struct Only {
    pub(super) admitted: Admitted,
    pub(super) routes: Arc<Routes>,
}

impl Only {
    /// What a limited caller (`admitted`) may see of the list `method` asks for; `None` for an
    /// unlimited caller or a method that is not a list.
    pub(super) fn of_list(
        admitted: Option<&Admitted>,
        method: &str,
        gate: &crate::gate::Gate,
    ) -> Option<Only> {
        let list = matches!(
            method,
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list"
        );
        admitted.filter(|_| list).map(|admitted| Only {
            admitted: admitted.clone(),
            routes: gate.routes(),
        })
    }
}

/// Whether a limited caller may see one item of a list.
type Keep<'a> = dyn Fn(&Value) -> bool + 'a;

/// A limited caller's list answer with only what it may use: tools and prompts by name,
/// resources and templates by the name of the route their URI takes.
fn only_permitted(line: &[u8], only: &Only) -> Vec<u8> {
    let resources = only.routes.resources();
    let by_name = |item: &Value| {
        item.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| only.admitted.permits(name))
    };
    let by_uri = |item: &Value| {
        item.get("uri")
            .and_then(Value::as_str)
            .and_then(|uri| resources.route(uri))
            .is_some_and(|route| only.admitted.permits(&route.subject))
    };
    let by_template = |item: &Value| {
        item.get("uriTemplate")
            .and_then(Value::as_str)
            .and_then(|uri| resources.template(uri))
            .is_some_and(|route| only.admitted.permits(&route.subject))
    };
    match serde_json::from_slice::<Value>(line) {
        Ok(mut answer) => {
            let lists: [(&str, &Keep<'_>); 4] = [
                ("/result/tools", &by_name),
                ("/result/prompts", &by_name),
                ("/result/resources", &by_uri),
                ("/result/resourceTemplates", &by_template),
            ];
            for (pointer, keep) in lists {
                if let Some(items) = answer.pointer_mut(pointer).and_then(Value::as_array_mut) {
                    items.retain(|item| keep(item));
                }
            }
            answer.to_string().into_bytes()
        }
        // Never pass an answer on unfiltered.
        Err(_) => jsonrpc::error_line(
            None,
            jsonrpc::code::INTERNAL_ERROR,
            "the tool list could not be filtered",
        ),
    }
}

/// The running `http-answers` thread.
pub(super) struct Answers {
    handover: Mutex<Option<Sender<Awaited>>>,
    thread: Mutex<Option<JoinOnDrop<()>>>,
}

impl Answers {
    pub(super) fn start(records: Records) -> std::io::Result<Answers> {
        let (tx, rx) = crossbeam_channel::bounded(HANDOVER_QUEUE);
        let thread = thread::spawn("http-answers", move || run(&rx, &records))?;
        Ok(Answers {
            handover: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a request over; when the thread is full or stopped, it is answered 503 at once.
    pub(super) fn wait(&self, awaited: Awaited, records: &Records) {
        let refused = match lock(&self.handover).as_ref() {
            Some(tx) => match tx.try_send(awaited) {
                Ok(()) => None,
                Err(TrySendError::Full(a) | TrySendError::Disconnected(a)) => Some(a),
            },
            None => Some(awaited),
        };
        if let Some(awaited) = refused {
            log::warn!("too many MCP requests wait for their answers; one was refused");
            let busy = ApiError::new(503, "busy", "too many requests wait; try again later");
            Entry::new(awaited).fail(None, &busy, "refused", records);
        }
    }

    /// Answers every awaited request 503 and joins the thread.
    pub(super) fn stop(&self) {
        lock(&self.handover).take();
        if let Some(thread) = lock(&self.thread).take() {
            thread.join();
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An awaited request on the thread: its request until it is answered as JSON or its stream is
/// opened, then its stream.
struct Entry {
    request: Option<Request>,
    stream: Option<Stream>,
    a: Awaiting,
    /// When the entry last wrote to its client (or was handed over).
    last_write: Instant,
}

impl Entry {
    fn new(awaited: Awaited) -> Entry {
        Entry {
            request: Some(awaited.request),
            stream: None,
            a: awaited.awaiting,
            last_write: Instant::now(),
        }
    }

    /// The client went away: a 2026-07-28 request is cancelled at the gate, and its connection
    /// closed without an answer (nobody reads it).
    fn lost(&mut self) {
        if let Some(lost) = self.a.lost.take() {
            lost();
        }
        if let Some(request) = self.request.take() {
            request.abandon();
        }
    }

    /// A 2026-07-28 request waiting: false when its client hung up (the front saw its side of
    /// the connection end) or is gone; waiting long, its event stream is opened (or kept alive)
    /// so that a client that went away unseen is found by a write.
    fn keep_alive(&mut self, now: Instant) -> bool {
        // A client that hung up has gone away: the era says so (closing the connection is its
        // cancellation), whether or not anything was written to it yet.
        let hung_up = match (&self.request, &self.stream) {
            (_, Some(stream)) => stream.client_hung_up(),
            (Some(request), None) => request.client_hung_up(),
            (None, None) => false,
        };
        // An answer already waiting goes out first (the loop takes it next): the call is done,
        // nothing is left to cancel.
        if hung_up && self.a.rx.is_empty() {
            return false;
        }
        let quiet = now.saturating_duration_since(self.last_write);
        if self.stream.is_none() {
            if quiet < MODERN_STREAM_AFTER || !self.a.accepts_sse || self.a.only.is_some() {
                return true;
            }
            if !self.open_stream() {
                return false;
            }
        } else if quiet < MODERN_KEEPALIVE {
            return true;
        }
        self.last_write = now;
        self.stream
            .as_mut()
            .is_some_and(|s| s.send(sse::KEEPALIVE_COMMENT).is_ok())
    }

    fn record(&mut self, records: &Records, outcome: String) {
        finish(self.a.call.take(), records, outcome);
    }

    /// Starts the event stream with the lines that go first; `false` when the client is gone.
    fn open_stream(&mut self) -> bool {
        let Some(request) = self.request.take() else {
            return self.stream.is_some();
        };
        let mut headers = vec![
            ("Content-Type", "text/event-stream"),
            ("X-Accel-Buffering", "no"),
            ("Cache-Control", "no-cache"),
        ];
        if let Some(id) = &self.a.session {
            headers.push(("Mcp-Session-Id", id.as_str()));
        }
        let mut stream = request.stream(200, &headers, After::KeepAlive);
        for line in std::mem::take(&mut self.a.first) {
            if stream.send(&sse::event(&line)).is_err() {
                return false;
            }
        }
        self.stream = Some(stream);
        true
    }

    /// Ends the exchange with `line` as the answer (JSON, or the stream's last event). The
    /// call is recorded before the client can see its answer, so the trail's order is the order
    /// in which calls were answered.
    fn answer(&mut self, line: &[u8], records: &Records) {
        if let Some(mut stream) = self.stream.take() {
            self.record(records, jsonrpc::outcome_label(line));
            let _ = stream.send(&sse::event(line));
            stream.finish();
            return;
        }
        let Some(request) = self.request.take() else {
            return;
        };
        let body = match &self.a.only {
            Some(only) => only_permitted(line, only),
            None => line.to_vec(),
        };
        self.record(records, jsonrpc::outcome_label(&body));
        let status = if self.a.modern {
            crate::gate::modern::http_status(error_code(&body))
        } else {
            200
        };
        respond_json(request, status, &body, self.a.session.as_deref());
    }

    /// Ends the exchange without an answer: a stream gets `line` (an error) as its last event,
    /// or just ends when there is none; a JSON answer is `error`.
    fn fail(&mut self, line: Option<&[u8]>, error: &ApiError, outcome: &str, records: &Records) {
        if let Some(mut stream) = self.stream.take() {
            let outcome = line.map_or_else(|| "no_answer".to_owned(), jsonrpc::outcome_label);
            self.record(records, outcome);
            if let Some(line) = line {
                let _ = stream.send(&sse::event(line));
            }
            stream.finish();
            return;
        }
        self.record(records, outcome.to_owned());
        if let Some(request) = self.request.take() {
            respond_json(request, error.status, error.body().as_bytes(), None);
        }
    }
}

/// What the wait returned.
enum Woke {
    New(Option<Box<Awaited>>),
    Line(usize, Option<Vec<u8>>),
    Timeout,
}

fn run(handover: &Receiver<Awaited>, records: &Records) {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        match wait(handover, &entries) {
            Woke::New(Some(awaited)) => add(&mut entries, *awaited, records),
            Woke::New(None) => break,
            Woke::Line(i, Some(line)) => {
                let done = entries
                    .get_mut(i)
                    .is_some_and(|entry| on_line(entry, &line, records));
                if done {
                    entries.swap_remove(i);
                }
            }
            // The gate dropped the request's reply queue (cancelled, or its workspace stopped):
            // a stream just ends (nothing is owed any more); a JSON answer is a 504.
            Woke::Line(i, None) => {
                if i < entries.len() {
                    let mut entry = entries.swap_remove(i);
                    entry.fail(None, &timeout_error(), "timeout", records);
                }
            }
            Woke::Timeout => {}
        }
        expire(&mut entries, records);
    }
    // Answers already queued go out first (held calls expired just before the stop, say).
    let mut i = 0;
    while i < entries.len() {
        let mut done = false;
        if let Some(entry) = entries.get_mut(i) {
            while let Ok(line) = entry.a.rx.try_recv() {
                if on_line(entry, &line, records) {
                    done = true;
                    break;
                }
            }
        }
        if done {
            entries.swap_remove(i);
        } else {
            i += 1;
        }
    }
    let stopping = ApiError::new(503, "stopping", "the gate is stopping");
    for mut entry in entries {
        let line = jsonrpc::error_line(
            Some(&entry.a.id),
            jsonrpc::code::SERVER_UNAVAILABLE,
            "the gate is stopping",
        );
        entry.fail(Some(&line), &stopping, "refused", records);
    }
}

fn timeout_error() -> ApiError {
    ApiError::new(504, "timeout", "no answer in time")
}

fn wait(handover: &Receiver<Awaited>, entries: &[Entry]) -> Woke {
    let mut select = Select::new();
    select.recv(handover);
    for entry in entries {
        select.recv(&entry.a.rx);
    }
    let next = entries.iter().map(|e| e.a.deadline).min();
    let mut timeout = next.map_or(Duration::from_secs(1), |at| {
        at.saturating_duration_since(Instant::now())
    });
    if entries.iter().any(|e| e.a.modern) {
        // 2026-07-28 streams are looked at every second (keepalives find clients gone).
        timeout = timeout.min(Duration::from_secs(1));
    }
    let Ok(op) = select.select_timeout(timeout) else {
        return Woke::Timeout;
    };
    match op.index() {
        0 => Woke::New(op.recv(handover).ok().map(Box::new)),
        i => match entries.get(i - 1) {
            Some(entry) => Woke::Line(i - 1, op.recv(&entry.a.rx).ok()),
            None => Woke::Timeout,
        },
    }
}

fn add(entries: &mut Vec<Entry>, awaited: Awaited, records: &Records) {
    let mut entry = Entry::new(awaited);
    if entries.len() >= MAX_AWAITED {
        log::warn!("{MAX_AWAITED} MCP requests wait for their answers; one was refused");
        let busy = ApiError::new(503, "busy", "too many requests wait; try again later");
        entry.fail(None, &busy, "refused", records);
        return;
    }
    if !entry.a.first.is_empty() && !entry.open_stream() {
        entry.record(records, "no_answer".to_owned());
        return;
    }
    entries.push(entry);
}

/// A line from the gate for an entry; `true` when the entry is done.
fn on_line(entry: &mut Entry, line: &[u8], records: &Records) -> bool {
    if is_answer_to(line, &entry.a.id) {
        entry.answer(line, records);
        return true;
    }
    if entry.stream.is_none() {
        if !entry.a.accepts_sse || entry.a.only.is_some() {
            return false; // A notification the client cannot take as a stream: dropped.
        }
        entry.a.first.push(line.to_vec());
        if entry.open_stream() {
            return false;
        }
        entry.lost();
        entry.record(records, "no_answer".to_owned());
        return true;
    }
    let sent = entry
        .stream
        .as_mut()
        .is_some_and(|stream| stream.send(&sse::event(line)).is_ok());
    if !sent {
        entry.lost();
        entry.record(records, "no_answer".to_owned());
    }
    entry.last_write = Instant::now();
    !sent
}

/// Answers every entry past its deadline: a stream's last event is a timeout error, so the
/// client is not left waiting for an answer that will never come.
fn expire(entries: &mut Vec<Entry>, records: &Records) {
    let now = Instant::now();
    let mut i = 0;
    while i < entries.len() {
        let gone = entries
            .get_mut(i)
            .is_some_and(|e| e.a.modern && !e.keep_alive(now));
        if gone {
            // Closing a 2026-07-28 request's stream cancels it: nothing more is sent.
            let mut entry = entries.swap_remove(i);
            entry.lost();
            entry.record(records, "no_answer".to_owned());
            continue;
        }
        if entries.get(i).is_some_and(|e| e.a.deadline <= now) {
            let mut entry = entries.swap_remove(i);
            let line = jsonrpc::error_line(
                Some(&entry.a.id),
                jsonrpc::code::REQUEST_TIMEOUT,
                "no answer in time",
            );
            entry.fail(Some(&line), &timeout_error(), "timeout", records);
        } else {
            i += 1;
        }
    }
}

//! The requests the example server sends to its client (sampling, elicitation, roots).
//!
//! Owns: the `Ledger` (the client's requests in flight, the server's requests waiting for the
//! client's answer, the later request and how it ended), the server's request ids (`srv-1`,
//! `srv-2`, …), matching the client's responses and cancellations to them, and the texts a tool
//! answers with (`outcome_text`).
//! Never: waits for the client on the stdin loop: a tool call that asks is answered when the
//! client's response arrives (`on_response`), when it is cancelled, or by the timer after
//! `ASK_TIMEOUT` (`expire`), whichever comes first, exactly once (the one that removes the
//! waiter from the ledger answers).
//! Threads: none of its own; the main thread and `example-timer` share the ledger under its
//! mutex, which is taken before stdout's, never while holding it.

use super::{error_result, send_schedule, text_result, Action, Out, Reply, Scheduled, TimerMsg};
use crate::jsonrpc::{self, Id, Outcome};
use crate::thread;
use crossbeam_channel::Sender;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a tool call that asks the client waits for its answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many server requests wait for the client at once; more are refused.
const MAX_WAITING: usize = 256;

/// How long the later request waits for the calls in flight to end before it is given up.
const LATER_MAX_WAIT: Duration = Duration::from_secs(600);

/// How often the later request looks again whether calls are still in flight.
const LATER_RETRY: Duration = Duration::from_millis(10);

/// The text of a tool call that asked and got no answer in time.
const NO_ANSWER: &str = "no answer from the client";

/// The text of a request the client cancelled.
const CANCELLED: &str = "error: cancelled";

/// The ledger, shared by the stdin loop and the timer thread.
pub(super) type SharedLedger = Arc<Mutex<Ledger>>;

/// What is in flight between this server and its client.
#[derive(Default)]
pub(super) struct Ledger {
    /// The client's requests not answered yet (the one being handled included).
    in_flight: HashSet<Id>,
    /// The server's requests waiting for the client, by request id (`srv-N`).
    waiting: HashMap<String, Waiter>,
    /// Server request ids issued so far.
    n_issued: u64,
    /// The last request of `ask_sampling_later`, once one was asked for.
    later: Option<Later>,
}

/// Who waits for a server request's answer.
enum Waiter {
    /// The tool call (the client's request id) that asked.
    Call(Id),
    /// The later request, whose outcome is kept for `last_request_outcome`.
    Later,
}

struct Later {
    srv: String,
    /// `pending` until the request ends, then `result: …` or `error: …`.
    outcome: String,
}

/// What a tool asks the client for.
#[derive(Debug, PartialEq)]
pub(super) enum Ask {
    /// `sampling/createMessage` with this user prompt.
    Sampling(String),
    /// `elicitation/create` with this message and a one-string form.
    Elicitation(String),
    /// `roots/list`.
    Roots,
}

impl Ask {
    /// The request line asking for this, with id `srv`.
    pub(super) fn request_line(&self, srv: &str) -> Vec<u8> {
        let request = match self {
            Ask::Sampling(prompt) => json!({
                "jsonrpc": "2.0", "id": srv, "method": "sampling/createMessage",
                "params": {
                    "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                    "maxTokens": 50,
                },
            }),
            Ask::Elicitation(message) => json!({
                "jsonrpc": "2.0", "id": srv, "method": "elicitation/create",
                "params": {
                    "message": message,
                    "requestedSchema": {
                        "type": "object",
                        "properties": { "answer": { "type": "string" } },
                    },
                },
            }),
            Ask::Roots => json!({ "jsonrpc": "2.0", "id": srv, "method": "roots/list" }),
        };
        request.to_string().into_bytes()
    }
}

/// The prompt of the later request.
const LATER_PROMPT: &str = "Say something, later.";

impl Ledger {
    fn issue(&mut self) -> String {
        self.n_issued += 1;
        format!("srv-{}", self.n_issued)
    }
}

/// The client's request `id` is being handled.
pub(super) fn begin(ledger: &SharedLedger, id: &Id) {
    thread::lock(ledger).in_flight.insert(id.clone());
}

/// The client's request `id` was answered (or will never be).
pub(super) fn end(ledger: &SharedLedger, id: &Id) {
    thread::lock(ledger).in_flight.remove(id);
}

/// Sends `line`, the answer to the client's request `id`, which then is no longer in flight.
pub(super) fn answer(ledger: &SharedLedger, out: &Out, id: &Id, line: &[u8]) {
    let mut ledger = thread::lock(ledger);
    out.line(line);
    ledger.in_flight.remove(id);
}

/// Sends `ask` to the client for tool call `call`; the call is answered later (`None`), unless
/// too many requests wait already (an `isError` result at once).
pub(super) fn ask(
    ledger: &SharedLedger,
    out: &Out,
    timer: &Sender<TimerMsg>,
    call: &Id,
    ask: &Ask,
) -> Option<Reply> {
    let srv = {
        let mut ledger = thread::lock(ledger);
        if ledger.waiting.len() >= MAX_WAITING {
            return Some(Ok(error_result("too many requests wait for the client")));
        }
        let srv = ledger.issue();
        ledger
            .waiting
            .insert(srv.clone(), Waiter::Call(call.clone()));
        out.line(&ask.request_line(&srv));
        srv
    };
    send_schedule(
        timer,
        vec![Scheduled {
            at: Instant::now() + ASK_TIMEOUT,
            request: Some(call.clone()),
            action: Action::Expire(srv),
        }],
    );
    None
}

/// The timer's end of an ask: answers the waiting call with `NO_ANSWER` and tells the client
/// the request is cancelled; nothing if the client answered already.
pub(super) fn expire(ledger: &SharedLedger, out: &Out, srv: &str) {
    let mut ledger = thread::lock(ledger);
    if !matches!(ledger.waiting.get(srv), Some(Waiter::Call(_))) {
        return;
    }
    let Some(Waiter::Call(call)) = ledger.waiting.remove(srv) else {
        return;
    };
    out.line(&cancelled_line(srv, "no answer in time"));
    out.line(&jsonrpc::result_line(
        &call,
        &error_result(NO_ANSWER).to_string(),
    ));
    ledger.in_flight.remove(&call);
}

/// Asks for the later request: it is sent `delay_ms` from now, or once no call is in flight
/// after that. Supersedes an earlier one (whose answer is then ignored). Returns its id.
pub(super) fn schedule_later(
    ledger: &SharedLedger,
    timer: &Sender<TimerMsg>,
    delay_ms: u64,
) -> String {
    let srv = {
        let mut ledger = thread::lock(ledger);
        if let Some(old) = ledger.later.take() {
            if let Some(Waiter::Later) = ledger.waiting.get(&old.srv) {
                ledger.waiting.remove(&old.srv);
            }
        }
        let srv = ledger.issue();
        ledger.later = Some(Later {
            srv: srv.clone(),
            outcome: "pending".to_owned(),
        });
        srv
    };
    let since = Instant::now() + Duration::from_millis(delay_ms);
    send_schedule(
        timer,
        vec![Scheduled {
            at: since,
            request: None,
            action: Action::SendLater {
                srv: srv.clone(),
                since,
            },
        }],
    );
    srv
}

/// The timer's end of the later request: sends it if no call is in flight and returns `None`;
/// else when to look again. Gives up (an error outcome) after `LATER_MAX_WAIT`.
pub(super) fn send_later(
    ledger: &SharedLedger,
    out: &Out,
    srv: &str,
    since: Instant,
) -> Option<Instant> {
    let mut ledger = thread::lock(ledger);
    let ledger = &mut *ledger;
    let later = ledger.later.as_mut().filter(|l| l.srv == srv)?;
    if !ledger.in_flight.is_empty() {
        if since.elapsed() < LATER_MAX_WAIT {
            return Some(Instant::now() + LATER_RETRY);
        }
        later.outcome = "error: not sent, calls stayed in flight".to_owned();
        return None;
    }
    if ledger.waiting.len() >= MAX_WAITING {
        later.outcome = "error: not sent, too many requests wait for the client".to_owned();
        return None;
    }
    ledger.waiting.insert(srv.to_owned(), Waiter::Later);
    out.line(&Ask::Sampling(LATER_PROMPT.to_owned()).request_line(srv));
    None
}

/// How the later request ended, `pending`, or `none` when none was asked for.
pub(super) fn last_outcome(ledger: &SharedLedger) -> String {
    thread::lock(ledger)
        .later
        .as_ref()
        .map_or_else(|| "none".to_owned(), |l| l.outcome.clone())
}

/// The client answered request `id`: answers the tool call that waits for it, or records the
/// later request's outcome. Answers to ids this server did not issue are ignored.
pub(super) fn on_response(ledger: &SharedLedger, out: &Out, id: &Id, outcome: &Outcome) {
    let Some(srv) = server_id(id) else {
        eprintln!("example-server: an answer to {id}, which this server never asked");
        return;
    };
    if !finish(ledger, out, &srv, outcome_text(outcome)) {
        eprintln!("example-server: an answer to {srv}, which waits for nothing");
    }
}

/// The client cancelled request `srv`: it ends as `CANCELLED`. False when `srv` waits for
/// nothing (not this server's, or ended already).
pub(super) fn on_cancelled(ledger: &SharedLedger, out: &Out, srv: &str) -> bool {
    let found = finish(ledger, out, srv, Err(CANCELLED.to_owned()));
    if found {
        eprintln!("example-server: the client cancelled {srv}");
    }
    found
}

/// The client cancelled its call `call`: it is no longer in flight, and the requests it waits
/// for are cancelled towards the client.
pub(super) fn cancel_call(ledger: &SharedLedger, out: &Out, call: &Id) {
    let mut ledger = thread::lock(ledger);
    ledger.in_flight.remove(call);
    let asked: Vec<String> = ledger
        .waiting
        .iter()
        .filter(|(_, w)| matches!(w, Waiter::Call(c) if c == call))
        .map(|(srv, _)| srv.clone())
        .collect();
    for srv in asked {
        ledger.waiting.remove(&srv);
        out.line(&cancelled_line(&srv, "the tool call was cancelled"));
    }
}

/// Ends server request `srv` with `ended` (the result's JSON, or an error text); false when it
/// waits for nothing.
fn finish(ledger: &SharedLedger, out: &Out, srv: &str, ended: Result<String, String>) -> bool {
    let mut ledger = thread::lock(ledger);
    match ledger.waiting.remove(srv) {
        Some(Waiter::Call(call)) => {
            let result = match &ended {
                Ok(json) => text_result(json),
                Err(error) => error_result(error),
            };
            out.line(&jsonrpc::result_line(&call, &result.to_string()));
            ledger.in_flight.remove(&call);
            true
        }
        Some(Waiter::Later) => {
            if let Some(later) = ledger.later.as_mut().filter(|l| l.srv == srv) {
                later.outcome = match ended {
                    Ok(json) => format!("result: {json}"),
                    Err(error) => error,
                };
            }
            true
        }
        None => false,
    }
}

/// The text of a client's answer: `Ok` with the result's compact JSON, or `Err` with
/// `error: CODE MESSAGE`.
pub(super) fn outcome_text(outcome: &Outcome) -> Result<String, String> {
    match outcome {
        Outcome::Result(raw) => Ok(serde_json::from_str::<Value>(raw.get())
            .map_or_else(|_| raw.get().to_owned(), |v| v.to_string())),
        Outcome::Error(raw) => {
            let error: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(format!("error: {code} {message}"))
        }
    }
}

/// The server request id an answer's id names (`srv-N`), if it is a string.
pub(super) fn server_id(id: &Id) -> Option<String> {
    serde_json::from_str::<String>(id.as_json()).ok()
}

fn cancelled_line(srv: &str, reason: &str) -> Vec<u8> {
    let params = json!({ "requestId": srv, "reason": reason });
    jsonrpc::notification_line("notifications/cancelled", Some(&params.to_string()))
}

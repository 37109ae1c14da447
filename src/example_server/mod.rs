//! `aegis-gate example-server`: a small MCP server over stdio, built into the binary.
//!
//! Owns: a handful of tools for demos and tests (`echo`, `add`, `sleep`, `fail`, `progress`,
//! `toggle`, `get_env`) and, with `--faults`, tools that misbehave on purpose (`crash`, `hang`,
//! `big_line`, `garbage`, `stderr_flood`, `spawn_grandchild`) so the gate's supervision can be
//! tested against something real; with `--poison`, tools that try to steer the agent (`weather`
//! with a rug pull, `poisoned_add`) so the gate's sanitizers and pins can be.
//! Unless `--tools-only`, also the rest of the MCP surface, so the gate's aggregation of it can be
//! tested: prompts (`prompts.rs`), resources with subscriptions (`resources.rs`), completion
//! (`completion.rs`), logging (`logs.rs`), what they show now (`catalog.rs`), the tools that
//! drive them (`surface.rs`) and the requests this server sends to its client (`requests.rs`).
//! Imports between them run one way: `catalog.rs`, `logs.rs` and `requests.rs` import no
//! sibling; `prompts.rs` and `resources.rs` import `catalog.rs`; `completion.rs` those three;
//! `surface.rs` all of them; `tools.rs` (which dispatches every message) `surface.rs` and
//! `requests.rs`.
//! This file owns the process: the stdin loop, stdout, the timer thread, paging, the tool and
//! error shapes and the `initialize` answer.
//! Never: is used by the gate itself; it is a separate process like any other MCP server.
//! Never: blocks the stdin loop on a client's answer or a timed tool; a tool call that asks the
//! client waits at most 10 s (the later request of `ask_sampling_later` is a record, not a wait:
//! it stays `pending` until the client answers or cancels it).
//!
//! Threads: the main thread reads stdin and answers; `example-timer` sends delayed lines (`sleep`,
//! `progress`), gives up on requests the client left unanswered and sends the later request, so
//! slow calls never block fast ones. Channel: bounded schedule queue (1024), its sender held by
//! the main thread, dropped at stdin EOF, then the timer is joined. The `requests::Ledger` (calls
//! in flight, server requests waiting for the client) is shared by both under one mutex, taken
//! before stdout's.

mod catalog;
mod completion;
mod logs;
mod prompts;
mod requests;
mod resources;
mod surface;
#[cfg(test)]
mod tests;
mod tools;

use crate::jsonrpc::{self, code, Frame, Id, LineReader, Message};
use crate::mcp;
use crate::thread;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use requests::SharedLedger;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the example server behaves.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Offer the misbehaving tools.
    pub faults: bool,
    /// Answer `ping` with -32601, like servers that do not implement it.
    pub no_ping: bool,
    /// Keep running after stdin closes (like `server-everything`); only a signal stops it.
    pub ignore_eof: bool,
    /// Add `tool_0` … `tool_{N-1}` (echo tools), for large lists.
    pub extra_tools: usize,
    /// Page `tools/list` (and the prompt, resource and template lists) by this many entries; all
    /// in one page when unset.
    pub page_size: Option<usize>,
    /// Wait this long before reading stdin, like a server that is slow to start.
    pub startup_delay_ms: u64,
    /// Offer tools that attack the agent: `weather` (clean, until `rug_pull` swaps its
    /// description for a poisoned one), `poisoned_add` (a hidden instruction in its description);
    /// unless `tools_only`, hostile prompts and resources too.
    pub poison: bool,
    /// Offer only tools, as before the rest of the surface existed: `initialize` announces only
    /// `tools`, the other methods answer -32601 and the surface's tools are not offered.
    pub tools_only: bool,
    /// Add the resource `example://big`, this many bytes of `x`.
    pub big_resource: Option<usize>,
}

/// Shared stdout, written one whole line at a time.
#[derive(Clone)]
struct Out(Arc<Mutex<io::Stdout>>);

impl Out {
    fn line(&self, line: &[u8]) {
        let mut guard = thread::lock(&self.0);
        let _ = guard.write_all(line);
        let _ = guard.write_all(b"\n");
        let _ = guard.flush();
    }
}

/// What the timer does when an item is due.
enum Action {
    /// Sends a line that does not end the request (a progress notification).
    Line(Vec<u8>),
    /// Sends the request's answer; the request is then no longer in flight.
    Answer(Vec<u8>),
    /// Answers the tool call waiting for server request `srv` if the client has not answered.
    Expire(String),
    /// Sends the later request `srv` once no call is in flight (trying since `since`).
    SendLater { srv: String, since: Instant },
}

/// An action at a time, belonging to a client's request if any (so its cancel can drop it).
struct Scheduled {
    at: Instant,
    request: Option<Id>,
    action: Action,
}

enum TimerMsg {
    Schedule(Vec<Scheduled>),
    Cancel(Id),
}

/// A JSON-RPC error: code, message and optional `data`.
#[derive(Debug, PartialEq)]
struct Failure {
    code: i64,
    message: String,
    data: Option<Value>,
}

/// The answer to a request: a result, or a JSON-RPC error.
type Reply = Result<Value, Failure>;

fn failure(code: i64, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
        data: None,
    }
}

/// The answer line to request `id`: its result, or its error (with `data` when there is some).
fn reply_line(id: &Id, reply: Reply) -> Vec<u8> {
    match reply {
        Ok(result) => jsonrpc::result_line(id, &result.to_string()),
        Err(failure) => {
            let mut error = json!({ "code": failure.code, "message": failure.message });
            if let Some(data) = failure.data {
                error["data"] = data;
            }
            jsonrpc::raw_error_line(Some(id), &error.to_string())
        }
    }
}

/// Runs the example server on stdin/stdout until stdin closes.
pub(crate) fn run(options: Options) -> io::Result<()> {
    let out = Out(Arc::new(Mutex::new(io::stdout())));
    let ledger: SharedLedger = Arc::new(Mutex::new(requests::Ledger::default()));
    let (timer_tx, timer_rx) = crossbeam_channel::bounded(1024);
    let timer_out = out.clone();
    let timer_ledger = ledger.clone();
    let timer = thread::spawn("example-timer", move || {
        timer_loop(&timer_rx, &timer_out, &timer_ledger)
    })?;
    if options.startup_delay_ms > 0 {
        // Simulates a slow server on purpose; the gate's startup handling is what is tested.
        std::thread::sleep(Duration::from_millis(options.startup_delay_ms));
    }
    let mut server = tools::Server::new(options.clone(), out.clone(), timer_tx, ledger);
    let mut framer = LineReader::new(16 * 1024 * 1024);
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        framer.push(buf.get(..n).unwrap_or_default(), |frame| match frame {
            Frame::Line(line) => server.handle(line),
            Frame::Overlong => out.line(&jsonrpc::error_line(
                None,
                code::INVALID_REQUEST,
                "message too long",
            )),
        });
    }
    if options.ignore_eof {
        // Like servers with a running timer: stdin EOF is not a reason to stop; SIGTERM is.
        loop {
            std::thread::park();
        }
    }
    drop(server);
    timer.join();
    Ok(())
}

fn timer_loop(rx: &Receiver<TimerMsg>, out: &Out, ledger: &SharedLedger) {
    let mut queue: Vec<Scheduled> = Vec::new();
    loop {
        let next = queue.iter().map(|s| s.at).min();
        let msg = match next {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(TimerMsg::Schedule(items)) => queue.extend(items),
            Ok(TimerMsg::Cancel(id)) => queue.retain(|s| s.request.as_ref() != Some(&id)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let (due, later): (Vec<Scheduled>, Vec<Scheduled>) =
            queue.drain(..).partition(|s| s.at <= now);
        queue = later;
        let mut due = due;
        due.sort_by_key(|s| s.at);
        for item in due {
            match item.action {
                Action::Line(line) => out.line(&line),
                Action::Answer(line) => match &item.request {
                    Some(id) => requests::answer(ledger, out, id, &line),
                    None => out.line(&line),
                },
                Action::Expire(srv) => requests::expire(ledger, out, &srv),
                Action::SendLater { srv, since } => {
                    if let Some(at) = requests::send_later(ledger, out, &srv, since) {
                        queue.push(Scheduled {
                            at,
                            request: None,
                            action: Action::SendLater { srv, since },
                        });
                    }
                }
            }
        }
    }
}

/// A tool definition: name, description, and an object input schema of `properties` with the
/// `required` ones.
fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": { "type": "object", "properties": properties, "required": required },
    })
}

fn text_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }] })
}

/// A tool result that reports a failure of the tool (`isError`), not of the protocol.
fn error_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

fn initialize_result(params: Option<&RawValue>, tools_only: bool) -> Value {
    let requested = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| {
            v.get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let capabilities = if tools_only {
        json!({ "tools": { "listChanged": true } })
    } else {
        json!({
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "completions": {},
            "logging": {},
        })
    };
    json!({
        "protocolVersion": mcp::negotiate(requested.as_deref()),
        "capabilities": capabilities,
        "serverInfo": { "name": "aegis-example", "version": mcp::IMPLEMENTATION_VERSION },
    })
}

/// One page of a list answer, `{KEY: [...], "nextCursor": ...}`: all of `items` when
/// `page_size` is unset (or 0), else `page_size` of them from the request's `cursor` (an index).
fn page(
    items: Vec<Value>,
    key: &str,
    page_size: Option<usize>,
    params: Option<&RawValue>,
) -> Reply {
    let Some(page_size) = page_size.filter(|n| *n > 0) else {
        return Ok(json!({ key: items }));
    };
    let cursor = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| v.get("cursor").and_then(Value::as_str).map(str::to_owned));
    let start: usize = match cursor {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| failure(code::INVALID_PARAMS, "bad cursor"))?,
    };
    let n_items = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(page_size).collect();
    let end = start.saturating_add(page.len());
    let mut result = json!({ key: page });
    if end < n_items {
        result["nextCursor"] = Value::String(end.to_string());
    }
    Ok(result)
}

/// Parses a request line; `None` for anything the example server ignores.
fn parse(line: &[u8], out: &Out) -> Option<Message> {
    match jsonrpc::parse(line) {
        Ok(m) => Some(m),
        Err(e) => {
            out.line(&e.to_error_line());
            None
        }
    }
}

fn after(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn send_schedule(tx: &Sender<TimerMsg>, items: Vec<Scheduled>) {
    let _ = tx.send(TimerMsg::Schedule(items));
}

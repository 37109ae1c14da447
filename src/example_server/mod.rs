//! `aegis-gate example-server`: a small MCP server over stdio, built into the binary.
//!
//! Owns: a handful of tools for demos and tests (`echo`, `add`, `sleep`, `fail`, `progress`,
//! `toggle`, `get_env`) and, with `--faults`, tools that misbehave on purpose (`crash`, `hang`,
//! `big_line`, `garbage`, `stderr_flood`, `spawn_grandchild`) so the gate's supervision can be
//! tested against something real; with `--poison`, tools that try to steer the agent (`weather`
//! with a rug pull, `poisoned_add`) so the gate's sanitizers and pins can be.
//! Never: is used by the gate itself; it is a separate process like any other MCP server.
//!
//! Threads: the main thread reads stdin; `example-timer` sends delayed answers (`sleep`,
//! `progress`) so slow calls never block fast ones. Channel: bounded schedule queue (1024).

mod tools;

use crate::jsonrpc::{self, code, Frame, Id, LineReader, Message};
use crate::mcp;
use crate::thread;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
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
    /// Page `tools/list` by this many tools; all in one page when unset.
    pub page_size: Option<usize>,
    /// Wait this long before reading stdin, like a server that is slow to start.
    pub startup_delay_ms: u64,
    /// Offer tools that attack the agent: `weather` (clean, until `rug_pull` swaps its
    /// description for a poisoned one), `poisoned_add` (a hidden instruction in its description).
    pub poison: bool,
}

/// Shared stdout, written one whole line at a time.
#[derive(Clone)]
struct Out(Arc<Mutex<io::Stdout>>);

impl Out {
    fn line(&self, line: &[u8]) {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = guard.write_all(line);
        let _ = guard.write_all(b"\n");
        let _ = guard.flush();
    }
}

/// A line to send at a time, belonging to a request (so a cancel can drop it).
struct Scheduled {
    at: Instant,
    request: Id,
    line: Vec<u8>,
}

enum TimerMsg {
    Schedule(Vec<Scheduled>),
    Cancel(Id),
}

/// Runs the example server on stdin/stdout until stdin closes.
pub(crate) fn run(options: Options) -> io::Result<()> {
    let out = Out(Arc::new(Mutex::new(io::stdout())));
    let (timer_tx, timer_rx) = crossbeam_channel::bounded(1024);
    let timer_out = out.clone();
    let timer = thread::spawn("example-timer", move || timer_loop(&timer_rx, &timer_out))?;
    if options.startup_delay_ms > 0 {
        // Simulates a slow server on purpose; the gate's startup handling is what is tested.
        std::thread::sleep(Duration::from_millis(options.startup_delay_ms));
    }
    let mut server = tools::Server::new(options.clone(), out.clone(), timer_tx);
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

fn timer_loop(rx: &Receiver<TimerMsg>, out: &Out) {
    let mut queue: Vec<Scheduled> = Vec::new();
    loop {
        let next = queue.iter().map(|s| s.at).min();
        let msg = match next {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(TimerMsg::Schedule(items)) => queue.extend(items),
            Ok(TimerMsg::Cancel(id)) => queue.retain(|s| s.request != id),
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
            out.line(&item.line);
        }
    }
}

fn text_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }] })
}

fn initialize_result(params: Option<&RawValue>) -> Value {
    let requested = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| {
            v.get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    json!({
        "protocolVersion": mcp::negotiate(requested.as_deref()),
        "capabilities": { "tools": { "listChanged": true } },
        "serverInfo": { "name": "aegis-example", "version": mcp::IMPLEMENTATION_VERSION },
    })
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

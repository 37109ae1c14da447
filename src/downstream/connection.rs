//! DownstreamConnection: the thread that owns one child and speaks MCP to it.
//!
//! Owns: the child's lifecycle (spawn, `initialize` handshake, `tools/list` over every page,
//! heartbeats, restarts with backoff, the breaker, teardown), the table of requests in flight to
//! the child with their deadlines, and the rewriting of ids and progress tokens so that many agent
//! requests share one child.
//! Never: blocks on a pipe or a channel (one `mio::Poll` over the three pipes and a `Waker`);
//! re-serializes a child's `result` (its bytes go to the agent untouched, only the id changes);
//! sends `server/discover` (Python SDK servers refuse the handshake after it); logs payloads.
//!
//! Threads: runs on `conn-<name>`. Channels: reads its bounded `Command` queue after every wake;
//! writes `Event`s to the merger with a bounded wait.

use super::child::{ChildProc, ReadOutcome, STDERR, STDIN, STDOUT};
use super::health::{LineBudget, NextTry, RestartPolicy};
use super::{CallRequest, Command, ConnHandle, Event, Status};
use crate::config::{ServerConfig, Settings};
use crate::jsonrpc::{self, code, Frame, Id, LineReader, Message, Outcome, Responder};
use crate::mcp;
use crate::sanitize;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Poll, Token};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Token of the connection's `mio::Waker`.
pub(crate) const WAKER: Token = Token(3);

const READ_BUF: usize = 64 * 1024;
/// Bytes read from one pipe before the loop looks at its other sources again.
const READ_BUDGET: usize = 1024 * 1024;
const STDERR_MAX_LINE: usize = 8 * 1024;
const COMMANDS_PER_TURN: usize = 256;
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest time between two listings of one child.
const MIN_RELIST: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `initialize` sent, waiting for the answer.
    Initializing,
    /// Handshake done; requests are forwarded.
    Ready,
    /// No child; the next start is due at `until`.
    Waiting { until: Instant },
    /// Shut down for good.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// `ping`, every `heartbeat_interval`.
    Ping,
    /// The child answered `ping` with -32601: process liveness plus a `tools/list` probe.
    Probe,
}

#[derive(Debug)]
enum PendingKind {
    Agent {
        responder: Responder,
        progress_token: Option<Box<RawValue>>,
        /// A `tools/call`, whose result text is stripped of hidden characters.
        tool_call: bool,
    },
    Initialize,
    ListPage,
    Ping,
    Probe,
}

#[derive(Debug)]
struct Pending {
    kind: PendingKind,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Listing {
    tools: Vec<Value>,
    pages: usize,
    /// A `list_changed` arrived mid-listing: list again when this one ends.
    again: bool,
}

enum WriteResult {
    Written,
    /// The child is not reading its stdin; the backlog is at its cap.
    Backlogged,
    /// The pipe is broken: the child is gone.
    Broken(String),
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default)]
    capabilities: Map<String, Value>,
    #[serde(rename = "serverInfo", default)]
    server_info: Value,
    #[serde(default)]
    instructions: Option<String>,
}

#[derive(Deserialize)]
struct ToolsPage {
    tools: Vec<Value>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
}

/// The state of one connection, driven by its own thread.
pub(crate) struct Worker {
    cfg: ServerConfig,
    settings: Arc<Settings>,
    poll: Poll,
    rx: Receiver<Command>,
    events: Sender<Event>,
    handle: ConnHandle,
    child: Option<ChildProc>,
    phase: Phase,
    status: Status,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    n_agent: usize,
    listing: Option<Listing>,
    listed_once: bool,
    heartbeat: Heartbeat,
    next_heartbeat: Instant,
    misses: u32,
    invalid_lines: u32,
    policy: RestartPolicy,
    stderr_budget: LineBudget,
    stdout_reader: LineReader,
    stderr_reader: LineReader,
    stdout_more: bool,
    stderr_more: bool,
    started_once: bool,
    server_info: Value,
    instructions: Option<String>,
    /// When the last listing of this child ended.
    last_listed: Option<Instant>,
    /// A listing deferred by [`MIN_RELIST`].
    relist_at: Option<Instant>,
    buf: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(
        cfg: ServerConfig,
        settings: Arc<Settings>,
        poll: Poll,
        rx: Receiver<Command>,
        events: Sender<Event>,
        handle: ConnHandle,
    ) -> Worker {
        let now = Instant::now();
        Worker {
            policy: RestartPolicy::new(
                settings.backoff_min,
                settings.backoff_max,
                settings.breaker_window,
                settings.breaker_failures,
                settings.breaker_cooldown,
            ),
            stdout_reader: LineReader::new(settings.max_line_bytes),
            stderr_reader: LineReader::new(STDERR_MAX_LINE),
            cfg,
            settings,
            poll,
            rx,
            events,
            handle,
            child: None,
            phase: Phase::Waiting { until: now },
            status: Status::Starting,
            pending: HashMap::new(),
            next_id: 1,
            n_agent: 0,
            listing: None,
            listed_once: false,
            heartbeat: Heartbeat::Ping,
            next_heartbeat: now,
            misses: 0,
            invalid_lines: 0,
            stderr_budget: LineBudget::new(20, 200, now),
            stdout_more: false,
            stderr_more: false,
            started_once: false,
            server_info: Value::Null,
            instructions: None,
            last_listed: None,
            relist_at: None,
            buf: vec![0; READ_BUF],
        }
    }

    /// The connection's main loop; returns once the manager asked it to stop.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        self.start_child();
        while !self.handle.stop_requested() {
            let timeout = self.next_wakeup(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("connection {}: poll failed: {e}", self.cfg.name);
                break;
            }
            let (mut out, mut err, mut inp) = (self.stdout_more, self.stderr_more, false);
            for event in events.iter() {
                match event.token() {
                    STDOUT => out = true,
                    STDERR => err = true,
                    STDIN => inp = true,
                    // The waker, or a sporadic event for a pipe of a child already gone.
                    _ => {}
                }
            }
            if out {
                self.read_stdout();
            }
            if err {
                self.read_stderr();
            }
            if inp {
                self.flush_stdin();
            }
            if !self.drain_commands() {
                break;
            }
            self.on_timers(Instant::now());
        }
        self.stop();
    }

    fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        if self.stdout_more || self.stderr_more {
            return Some(Duration::ZERO);
        }
        let mut next = self.pending.values().map(|p| p.deadline).min();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        match self.phase {
            Phase::Ready => {
                consider(self.next_heartbeat);
                if let Some(at) = self.relist_at {
                    consider(at);
                }
            }
            Phase::Waiting { until } => consider(until),
            Phase::Initializing | Phase::Stopped => {}
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    // ---- lifecycle -------------------------------------------------------------------------

    fn start_child(&mut self) {
        self.pending.clear();
        self.n_agent = 0;
        self.listing = None;
        self.listed_once = false;
        self.last_listed = None;
        self.relist_at = None;
        self.heartbeat = Heartbeat::Ping;
        self.misses = 0;
        self.invalid_lines = 0;
        self.stdout_reader = LineReader::new(self.settings.max_line_bytes);
        self.stderr_reader = LineReader::new(STDERR_MAX_LINE);
        self.stdout_more = false;
        self.stderr_more = false;
        if self.started_once {
            self.handle.update(|s| s.restarts += 1);
        }
        self.started_once = true;
        log::info!(
            "connection {}: starting {}",
            self.cfg.name,
            self.cfg.command
        );
        match ChildProc::spawn(&self.cfg, &self.poll) {
            Ok(child) => {
                let pid = child.pid();
                log::info!("connection {}: child pid {pid}", self.cfg.name);
                self.child = Some(child);
                self.handle.update(|s| s.pid = Some(pid));
                self.phase = Phase::Initializing;
                self.set_status(Status::Starting, None);
                let params = serde_json::json!({
                    "protocolVersion": mcp::LATEST_VERSION,
                    "capabilities": {},
                    "clientInfo": {
                        "name": mcp::IMPLEMENTATION_NAME,
                        "version": mcp::IMPLEMENTATION_VERSION,
                    },
                });
                self.send_internal(
                    "initialize",
                    Some(&params.to_string()),
                    PendingKind::Initialize,
                    self.settings.init_timeout,
                );
            }
            Err(e) => {
                let reason = format!("cannot start {:?}: {e}", self.cfg.command);
                self.fail(reason);
            }
        }
    }

    /// Something is wrong with the child: answer every pending request, tear the child down,
    /// schedule the next start.
    fn fail(&mut self, reason: String) {
        log::warn!("connection {}: {reason}", self.cfg.name);
        self.set_status(Status::Unhealthy, Some(reason.clone()));
        self.fail_pending(&reason);
        self.teardown_child(false);
        let now = Instant::now();
        let (status, wait) = match self.policy.on_failure(now) {
            NextTry::Backoff(d) => (Status::Restarting, d),
            NextTry::BreakerOpen(d) => (Status::Failed, d),
        };
        log::info!(
            "connection {}: next start in {} ms",
            self.cfg.name,
            wait.as_millis()
        );
        self.phase = Phase::Waiting { until: now + wait };
        self.set_status(status, None);
    }

    fn teardown_child(&mut self, polite: bool) {
        if let Some(mut child) = self.child.take() {
            let exit = child.teardown(&mut self.poll, self.settings.teardown_grace, polite);
            log::debug!(
                "connection {}: child {} reaped ({exit:?})",
                self.cfg.name,
                child.pid()
            );
        }
        self.handle.update(|s| s.pid = None);
        self.stdout_more = false;
        self.stderr_more = false;
        // The teardown polled our Poll and may have taken the waker's event: look at the
        // command queue again right away.
        self.handle.wake();
    }

    fn fail_pending(&mut self, reason: &str) {
        for (_, pending) in self.pending.drain() {
            if let PendingKind::Agent { responder, .. } = pending.kind {
                let message = format!("server '{}' failed: {reason}", self.cfg.name);
                responder.error(code::SERVER_UNAVAILABLE, &message);
            }
        }
        self.n_agent = 0;
        self.listing = None;
    }

    fn stop(&mut self) {
        self.fail_pending("the gate is shutting down");
        self.teardown_child(true);
        self.phase = Phase::Stopped;
        self.set_status(Status::Stopped, None);
    }

    fn restart_now(&mut self) {
        self.fail_pending("was restarted by an operator");
        self.set_status(Status::Restarting, None);
        self.teardown_child(true);
        self.start_child();
    }

    fn set_status(&mut self, status: Status, error: Option<String>) {
        if status == self.status && error.is_none() {
            return;
        }
        if status != self.status {
            log::info!("connection {}: {} -> {status}", self.cfg.name, self.status);
        }
        self.status = status;
        self.handle.update(|s| {
            s.status = status;
            if error.is_some() {
                s.last_error = error;
            }
        });
        self.emit(Event::Status {
            conn: self.handle.id(),
            status,
        });
    }

    fn emit(&self, event: Event) {
        if let Err(e) = self.events.send_timeout(event, EVENT_SEND_TIMEOUT) {
            log::error!(
                "connection {}: the merger did not take an event: {e}",
                self.cfg.name
            );
        }
    }

    // ---- I/O -------------------------------------------------------------------------------

    fn read_stdout(&mut self) {
        let Some(child) = self.child.as_mut() else {
            self.stdout_more = false;
            return;
        };
        let mut frames: Vec<Option<Vec<u8>>> = Vec::new();
        let reader = &mut self.stdout_reader;
        let res = child.read_pipe(STDOUT, &mut self.buf, READ_BUDGET, |bytes| {
            reader.push(bytes, |frame| {
                frames.push(match frame {
                    Frame::Line(line) => Some(line.to_vec()),
                    Frame::Overlong => None,
                })
            })
        });
        self.stdout_more = matches!(res, Ok(ReadOutcome::More));
        for frame in frames {
            if self.child.is_none() {
                return;
            }
            match frame {
                Some(line) => self.on_line(&line),
                None => {
                    let reason = format!(
                        "wrote a line over the {} byte limit",
                        self.settings.max_line_bytes
                    );
                    self.fail(reason);
                    return;
                }
            }
        }
        if self.child.is_none() {
            // A frame already failed the child (and tore it down): one failure, one reason.
            return;
        }
        match res {
            Ok(ReadOutcome::Drained | ReadOutcome::More) => {}
            Ok(ReadOutcome::Closed) => {
                let how = self.exit_description();
                self.fail(how);
            }
            Err(e) => self.fail(format!("stdout read failed: {e}")),
        }
    }

    /// Why stdout closed: the exit status when the child exits within a moment (it usually
    /// closes stdout by exiting; the status is a little behind the hang-up).
    fn exit_description(&mut self) -> String {
        const EXIT_WAIT: Duration = Duration::from_millis(200);
        let deadline = Instant::now() + EXIT_WAIT;
        while let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_exit() {
                return format!("exited ({status})");
            }
            if Instant::now() >= deadline {
                break;
            }
            // Process exit is not a pollable event here; this wait is bounded by EXIT_WAIT.
            std::thread::sleep(Duration::from_millis(2));
        }
        "closed its stdout".to_owned()
    }

    fn read_stderr(&mut self) {
        let Some(child) = self.child.as_mut() else {
            self.stderr_more = false;
            return;
        };
        let mut lines: Vec<String> = Vec::new();
        let reader = &mut self.stderr_reader;
        let res = child.read_pipe(STDERR, &mut self.buf, READ_BUDGET, |bytes| {
            reader.push(bytes, |frame| {
                lines.push(match frame {
                    Frame::Line(line) => String::from_utf8_lossy(line).into_owned(),
                    Frame::Overlong => format!("[a stderr line over {STDERR_MAX_LINE} bytes]"),
                })
            })
        });
        self.stderr_more = matches!(res, Ok(ReadOutcome::More));
        let now = Instant::now();
        for line in lines {
            if self.stderr_budget.take(now) {
                let dropped = self.stderr_budget.take_suppressed();
                if dropped > 0 {
                    log::warn!(
                        "connection {}: {dropped} stderr lines suppressed (rate limit)",
                        self.cfg.name
                    );
                }
                log::info!(target: "aegis_gate::downstream::stderr", "{}: {line}", self.cfg.name);
            }
        }
        if !matches!(res, Ok(ReadOutcome::Drained | ReadOutcome::More)) {
            if let Some(child) = self.child.as_mut() {
                child.close_output(&self.poll, STDERR);
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Err(e) = child.flush_stdin() {
            self.fail(format!("stdin write failed: {e}"));
        }
    }

    fn write_line(&mut self, line: &[u8]) -> WriteResult {
        let Some(child) = self.child.as_mut() else {
            return WriteResult::Broken("no child is running".into());
        };
        match child.send_line(line) {
            Ok(()) => WriteResult::Written,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => WriteResult::Backlogged,
            Err(e) => WriteResult::Broken(format!("stdin write failed: {e}")),
        }
    }

    fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request of the gate's own; a broken pipe fails the connection.
    fn send_internal(
        &mut self,
        method: &str,
        params: Option<&str>,
        kind: PendingKind,
        timeout: Duration,
    ) {
        let id = self.next_request_id();
        let line = jsonrpc::request_line(&Id::from_u64(id), method, params);
        match self.write_line(&line) {
            WriteResult::Written | WriteResult::Backlogged => {
                let deadline = Instant::now() + timeout;
                self.pending.insert(id, Pending { kind, deadline });
            }
            WriteResult::Broken(reason) => self.fail(reason),
        }
    }

    fn send_notification(&mut self, method: &str, params: &Value) {
        let line = jsonrpc::notification_line(method, Some(&params.to_string()));
        if let WriteResult::Broken(reason) = self.write_line(&line) {
            self.fail(reason);
        }
    }

    // ---- messages from the child -----------------------------------------------------------

    fn on_line(&mut self, line: &[u8]) {
        match jsonrpc::parse(line) {
            Err(e) => {
                self.invalid_lines += 1;
                log::debug!("connection {}: invalid line from child: {e}", self.cfg.name);
                if self.invalid_lines >= self.settings.invalid_line_limit {
                    let reason = format!(
                        "wrote {} invalid JSON-RPC lines in a row",
                        self.invalid_lines
                    );
                    self.fail(reason);
                }
            }
            Ok(message) => {
                self.invalid_lines = 0;
                match message {
                    Message::Response { id, outcome } => self.on_response(&id, outcome),
                    Message::Request { id, method, .. } => self.answer_child_request(&id, &method),
                    Message::Notification { method, params } => {
                        self.on_notification(&method, params.as_deref())
                    }
                }
            }
        }
    }

    /// The gate declares no client capabilities: `ping` is answered, everything else refused at
    /// once so the child never waits on us.
    fn answer_child_request(&mut self, id: &Id, method: &str) {
        let line = if method == "ping" {
            jsonrpc::result_line(id, "{}")
        } else {
            let message = format!("the gate does not offer {method:?} to servers");
            jsonrpc::error_line(Some(id), code::METHOD_NOT_FOUND, &message)
        };
        if let WriteResult::Broken(reason) = self.write_line(&line) {
            self.fail(reason);
        }
    }

    fn on_notification(&mut self, method: &str, params: Option<&RawValue>) {
        match method {
            "notifications/progress" => self.relay_progress(params),
            "notifications/tools/list_changed" if self.phase == Phase::Ready => {
                log::debug!("connection {}: tool list changed", self.cfg.name);
                self.start_listing();
            }
            "notifications/message" => {
                log::debug!("connection {}: log message from child", self.cfg.name)
            }
            _ => {}
        }
    }

    fn relay_progress(&mut self, params: Option<&RawValue>) {
        let Some(mut params) = params
            .and_then(|p| serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(p.get()).ok())
        else {
            return;
        };
        let Some(id) = params
            .get("progressToken")
            .and_then(|t| serde_json::from_str::<u64>(t.get()).ok())
        else {
            return;
        };
        let Some(Pending {
            kind:
                PendingKind::Agent {
                    responder,
                    progress_token: Some(token),
                    ..
                },
            ..
        }) = self.pending.get(&id)
        else {
            return;
        };
        params.insert("progressToken".into(), token.clone());
        if let Ok(text) = serde_json::to_string(&params) {
            responder.notify(jsonrpc::notification_line(
                "notifications/progress",
                Some(&text),
            ));
        }
    }

    fn on_response(&mut self, id: &Id, outcome: Outcome) {
        let Some(pending) = id.as_u64().and_then(|n| self.pending.remove(&n)) else {
            log::debug!(
                "connection {}: answer to an unknown or late request",
                self.cfg.name
            );
            return;
        };
        match pending.kind {
            PendingKind::Agent {
                responder,
                tool_call,
                ..
            } => {
                self.n_agent = self.n_agent.saturating_sub(1);
                match outcome {
                    Outcome::Result(result) if tool_call => {
                        match sanitize::clean_result(result.get()) {
                            Some(cleaned) => responder.result(&cleaned),
                            None => responder.result(result.get()),
                        }
                    }
                    Outcome::Result(result) => responder.result(result.get()),
                    Outcome::Error(error) if is_error_object(&error) => {
                        responder.raw_error(error.get())
                    }
                    Outcome::Error(_) => {
                        let message = format!("server '{}' sent a malformed error", self.cfg.name);
                        responder.error(code::INTERNAL_ERROR, &message)
                    }
                }
            }
            PendingKind::Initialize => self.on_initialize_answer(outcome),
            PendingKind::ListPage => self.on_list_page(outcome),
            PendingKind::Ping => {
                if let Outcome::Error(error) = &outcome {
                    let not_found = serde_json::from_str::<ErrorObject>(error.get())
                        .is_ok_and(|e| e.code == code::METHOD_NOT_FOUND);
                    if not_found && self.heartbeat == Heartbeat::Ping {
                        log::info!(
                            "connection {}: child does not implement ping; watching process \
                             liveness and probing tools/list instead",
                            self.cfg.name
                        );
                        self.heartbeat = Heartbeat::Probe;
                        self.next_heartbeat = Instant::now() + self.settings.probe_interval;
                    }
                }
                self.on_heartbeat();
            }
            PendingKind::Probe => self.on_heartbeat(),
        }
    }

    fn on_heartbeat(&mut self) {
        self.misses = 0;
        self.handle
            .update(|s| s.last_heartbeat = Some(SystemTime::now()));
    }

    fn on_initialize_answer(&mut self, outcome: Outcome) {
        let result = match outcome {
            Outcome::Error(error) => {
                self.fail(format!("refused initialize: {}", error_message(&error)));
                return;
            }
            Outcome::Result(result) => result,
        };
        let Ok(init) = serde_json::from_str::<InitializeResult>(result.get()) else {
            self.fail("sent an invalid initialize result".into());
            return;
        };
        if !mcp::is_supported(&init.protocol_version) {
            let reason = format!(
                "speaks protocol version {:?}, which the gate does not",
                init.protocol_version
            );
            self.fail(reason);
            return;
        }
        log::info!(
            "connection {}: initialized (protocol {})",
            self.cfg.name,
            init.protocol_version
        );
        self.server_info = init.server_info;
        self.instructions = init.instructions;
        self.send_notification("notifications/initialized", &Value::Object(Map::new()));
        if self.child.is_none() {
            return;
        }
        self.phase = Phase::Ready;
        self.on_heartbeat();
        self.next_heartbeat = Instant::now() + self.settings.heartbeat_interval;
        if init.capabilities.contains_key("tools") {
            self.start_listing();
        } else {
            self.finish_listing(Vec::new());
        }
    }

    /// Lists the child's tools, at most once per [`MIN_RELIST`]: a child flooding
    /// `list_changed` gets its changes coalesced into one listing a second.
    fn start_listing(&mut self) {
        if let Some(listing) = self.listing.as_mut() {
            listing.again = true;
            return;
        }
        let now = Instant::now();
        if let Some(allowed) = self
            .last_listed
            .map(|t| t + MIN_RELIST)
            .filter(|a| *a > now)
        {
            self.relist_at = Some(allowed);
            return;
        }
        self.relist_at = None;
        self.listing = Some(Listing::default());
        self.request_page(None);
    }

    fn request_page(&mut self, cursor: Option<&str>) {
        let params = cursor.map(|c| serde_json::json!({ "cursor": c }).to_string());
        self.send_internal(
            "tools/list",
            params.as_deref(),
            PendingKind::ListPage,
            self.settings.list_timeout,
        );
    }

    fn on_list_page(&mut self, outcome: Outcome) {
        let page = match outcome {
            Outcome::Error(error) => {
                self.fail(format!("tools/list failed: {}", error_message(&error)));
                return;
            }
            Outcome::Result(result) => serde_json::from_str::<ToolsPage>(result.get()),
        };
        let Ok(page) = page else {
            self.fail("sent an invalid tools/list result".into());
            return;
        };
        let Some(listing) = self.listing.as_mut() else {
            return;
        };
        listing.pages += 1;
        let room = self
            .settings
            .max_tools_per_server
            .saturating_sub(listing.tools.len());
        if page.tools.len() > room {
            log::warn!(
                "connection {}: more than {} tools; the rest are ignored",
                self.cfg.name,
                self.settings.max_tools_per_server
            );
        }
        listing.tools.extend(page.tools.into_iter().take(room));
        let more_pages = listing.pages < self.settings.max_list_pages && room > 0;
        match page.next_cursor {
            Some(cursor) if more_pages => self.request_page(Some(&cursor)),
            rest => {
                if rest.is_some() {
                    log::warn!(
                        "connection {}: stopped listing after {} pages",
                        self.cfg.name,
                        self.settings.max_list_pages
                    );
                }
                let listing = self.listing.take().unwrap_or_default();
                self.finish_listing(listing.tools);
                if listing.again {
                    self.start_listing();
                }
            }
        }
    }

    fn finish_listing(&mut self, tools: Vec<Value>) {
        self.last_listed = Some(Instant::now());
        let n_tools = tools.len();
        self.handle.update(|s| s.tools = n_tools);
        log::debug!("connection {}: {n_tools} tools listed", self.cfg.name);
        self.emit(Event::Tools {
            conn: self.handle.id(),
            tools,
            server_info: self.server_info.clone(),
            instructions: self.instructions.clone(),
        });
        if !self.listed_once {
            self.listed_once = true;
            self.policy.on_healthy();
            self.set_status(Status::Healthy, None);
        }
    }

    // ---- commands from the gate ------------------------------------------------------------

    /// Drains the command queue; false when every handle is gone.
    fn drain_commands(&mut self) -> bool {
        for _ in 0..COMMANDS_PER_TURN {
            match self.rx.try_recv() {
                Ok(Command::Call(req)) => self.on_call(req),
                Ok(Command::Cancel { session, id }) => self.on_cancel(session, &id),
                Ok(Command::RefreshTools) => {
                    if self.phase == Phase::Ready {
                        self.start_listing();
                    }
                }
                Ok(Command::Restart) => self.restart_now(),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        // More commands wait; come back at once without sleeping in poll.
        self.handle.wake();
        true
    }

    fn on_call(&mut self, req: CallRequest) {
        if self.phase != Phase::Ready {
            let message = format!("server '{}' is {}", self.cfg.name, self.status);
            req.responder.error(code::SERVER_UNAVAILABLE, &message);
            return;
        }
        if self.n_agent >= self.settings.max_in_flight {
            let message = format!(
                "server '{}' already has {} requests in flight",
                self.cfg.name, self.n_agent
            );
            req.responder.error(code::OVERLOADED, &message);
            return;
        }
        let id = self.next_request_id();
        let CallRequest {
            responder,
            method,
            mut params,
            meta,
            progress_token,
            timeout,
            agent,
        } = req;
        let mut meta = meta.unwrap_or_default();
        if let Some(agent) = agent.filter(|_| self.cfg.pass_agent) {
            if let Ok(raw) = serde_json::value::to_raw_value(&agent) {
                meta.insert(crate::mcp::AGENT_META.into(), raw);
            }
        }
        if progress_token.is_some() {
            // The child's token is our request id: unique per child, and it finds the request.
            if let Ok(raw) = RawValue::from_string(id.to_string()) {
                meta.insert("progressToken".into(), raw);
            }
        }
        if !meta.is_empty() {
            if let Ok(raw) = serde_json::value::to_raw_value(&meta) {
                params.insert("_meta".into(), raw);
            }
        }
        let params_text = match serde_json::to_string(&params) {
            Ok(text) => text,
            Err(e) => {
                responder.error(code::INTERNAL_ERROR, &format!("cannot encode params: {e}"));
                return;
            }
        };
        let line = jsonrpc::request_line(&Id::from_u64(id), &method, Some(&params_text));
        match self.write_line(&line) {
            WriteResult::Written => {
                self.n_agent += 1;
                let kind = PendingKind::Agent {
                    responder,
                    progress_token,
                    tool_call: method == "tools/call",
                };
                let deadline = Instant::now() + timeout;
                self.pending.insert(id, Pending { kind, deadline });
            }
            WriteResult::Backlogged => {
                let message = format!("server '{}' is not reading its input", self.cfg.name);
                responder.error(code::OVERLOADED, &message);
            }
            WriteResult::Broken(reason) => {
                let message = format!("server '{}' failed: {reason}", self.cfg.name);
                responder.error(code::SERVER_UNAVAILABLE, &message);
                self.fail(reason);
            }
        }
    }

    fn on_cancel(&mut self, session: u64, id: &Id) {
        let found = self.pending.iter().find_map(|(n, p)| match &p.kind {
            PendingKind::Agent { responder, .. }
                if responder.session() == session && responder.id() == id =>
            {
                Some(*n)
            }
            _ => None,
        });
        if let Some(n) = found {
            self.pending.remove(&n);
            self.n_agent = self.n_agent.saturating_sub(1);
            self.cancel_downstream(n, "cancelled by the client");
        }
    }

    fn cancel_downstream(&mut self, child_id: u64, reason: &str) {
        let params = serde_json::json!({ "requestId": child_id, "reason": reason });
        self.send_notification("notifications/cancelled", &params);
    }

    // ---- timers ----------------------------------------------------------------------------

    fn on_timers(&mut self, now: Instant) {
        self.expire_pending(now);
        if self.phase == Phase::Ready && self.relist_at.is_some_and(|at| at <= now) {
            self.start_listing();
        }
        match self.phase {
            Phase::Ready if now >= self.next_heartbeat => self.beat(now),
            Phase::Waiting { until } if now >= until => self.start_child(),
            Phase::Ready | Phase::Waiting { .. } | Phase::Initializing | Phase::Stopped => {}
        }
    }

    fn expire_pending(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in expired {
            let Some(pending) = self.pending.remove(&n) else {
                continue;
            };
            match pending.kind {
                PendingKind::Agent { responder, .. } => {
                    self.n_agent = self.n_agent.saturating_sub(1);
                    let message = format!(
                        "server '{}' did not answer within {} ms",
                        self.cfg.name,
                        self.settings.call_timeout.as_millis()
                    );
                    responder.error(code::REQUEST_TIMEOUT, &message);
                    self.cancel_downstream(n, "timed out in the gate");
                }
                PendingKind::Initialize => {
                    self.fail("did not answer initialize in time".into());
                    return;
                }
                PendingKind::ListPage => {
                    self.fail("did not answer tools/list in time".into());
                    return;
                }
                PendingKind::Ping | PendingKind::Probe => {
                    self.misses += 1;
                    if self.misses >= self.settings.heartbeat_misses {
                        let reason = format!("missed {} heartbeats", self.misses);
                        self.fail(reason);
                        return;
                    }
                }
            }
        }
    }

    fn beat(&mut self, now: Instant) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_exit() {
                self.fail(format!("exited ({status})"));
                return;
            }
        }
        match self.heartbeat {
            Heartbeat::Ping => {
                self.next_heartbeat = now + self.settings.heartbeat_interval;
                let timeout = self.settings.heartbeat_interval;
                self.send_internal("ping", None, PendingKind::Ping, timeout);
            }
            Heartbeat::Probe => {
                self.next_heartbeat = now + self.settings.probe_interval;
                let timeout = self.settings.list_timeout;
                self.send_internal("tools/list", None, PendingKind::Probe, timeout);
            }
        }
    }
}

/// A JSON-RPC error object: an integer `code` and a string `message` (and any `data`).
fn is_error_object(error: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[allow(dead_code)] // Reason: read only to check its type.
        code: i64,
        #[allow(dead_code)] // Reason: read only to check its type.
        message: String,
    }
    serde_json::from_str::<Shape>(error.get()).is_ok()
}

/// The `message` of a child's error object, for logs (bounded, never the `data`).
fn error_message(error: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
    }
    let message = serde_json::from_str::<Message>(error.get())
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| "no message".into());
    message.chars().take(200).collect()
}

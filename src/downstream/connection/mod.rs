//! DownstreamConnection: the thread that owns one child and speaks MCP to it.
//!
//! Owns: the connection's loop and what wakes it, the child's lifecycle (spawn, restarts with
//! backoff, the breaker, teardown) and the status it reports, the gate's commands (agent calls,
//! their cancellation, refreshes, restarts), and when the timers are due. Its parts: `pipes` (the child and its pipes), `tail` (the child's
//! last stderr lines, redacted, which end the reason of a failure; no I/O), `inflight` (the
//! requests in flight, their ids, deadlines and progress tokens; no I/O), `handshake`
//! (`initialize` and `tools/list` paging), `calls` (agent calls forwarded to the child, and
//! their cancellation), `messages` (what the child sends), `timers` (what a missed deadline
//! does, the heartbeat).
//! Never: blocks on a pipe or a channel (one `mio::Poll` over the three pipes and a `Waker`);
//! re-serializes a child's `result`, except where the result cleaner must (`messages.rs`: a
//! result with hidden characters is re-encoded after they are stripped; any other result keeps
//! its bytes, only the id changes); lets the child's words reach an agent unclean (the reason
//! of a failure, which quotes its stderr and its errors, passes `sanitize::clean_text`);
//! sends `server/discover` (Python SDK servers refuse the handshake after it); logs payloads.
//!
//! Dependencies point one way: `pipes` (which holds a `tail`) and `inflight` know nothing of
//! [`Worker`] or of each other; `handshake`, `calls` and `messages` add methods to [`Worker`] and use its lifecycle
//! (`fail`, `emit`, the sends) and the two plain parts; `messages` calls into `handshake`, never
//! the reverse, and neither of them into `calls`.
//!
//! Threads: runs on `conn-<name>` (its loop is in `direct.rs`), behind a mutex that a thread
//! holding an agent's call may take to write the call itself (`Direct`). Channels: reads its
//! bounded `Command` queue after every wake; writes `Event`s to the merger with a bounded wait.

mod asks;
mod calls;
mod child_requests;
mod direct;
mod handshake;
mod inflight;
pub(crate) mod input;
mod lists;
mod messages;
mod parked;
mod rounds;
mod pipes;
mod tail;
mod timers;

use super::child::{STDERR, STDIN, STDOUT};
use super::health::{LineBudget, NextTry, RestartPolicy};
use super::{Command, ConnHandle, Event, Status};
use crate::config::{ServerConfig, Settings};
use crate::jsonrpc::{self, code, Id};
use crate::thread::lock;
use asks::Asks;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
pub(crate) use direct::{run, Direct};
use handshake::Handshake;
use inflight::{InFlight, PendingKind};
use lists::Lists;
use mio::{Events, Poll, Token};
use parked::ParkedCalls;
use pipes::{Pipes, WriteResult};
use rounds::Rounds;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token of the connection's `mio::Waker`.
pub(crate) const WAKER: Token = Token(3);

/// The target of every log line of the connection, whichever file it comes from: the split into
/// files kept the target it always had, which operators filter on.
const LOG_TARGET: &str = module_path!();

const COMMANDS_PER_TURN: usize = 256;
/// A child's log messages passed on: this many a second, after a burst of
/// [`LOG_MESSAGES_BURST`]; the rest are dropped, so a flood cannot starve calls.
const LOG_MESSAGES_PER_SEC: u32 = 50;
const LOG_MESSAGES_BURST: u32 = 200;
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The state of one connection, driven by its own thread.
pub(crate) struct Worker {
    cfg: ServerConfig,
    settings: Arc<Settings>,
    /// The loop sleeps in it without the worker's lock (so that a caller may forward a call
    /// meanwhile, see [`Direct`]); the worker takes it to register and tear down pipes.
    poll: Arc<Mutex<Poll>>,
    rx: Receiver<Command>,
    events: Sender<Event>,
    handle: ConnHandle,
    /// The current child and its pipes.
    pipes: Pipes,
    phase: Phase,
    status: Status,
    /// Requests sent to the child and not answered yet.
    inflight: InFlight,
    /// What the child said at `initialize`.
    handshake: Handshake,
    /// The child's lists (tools, prompts, resources, templates) and their listings.
    lists: Lists,
    /// The child's requests waiting for an agent's answer.
    asks: Asks,
    /// Calls of 2026-07-28 agents that wait for their agent's input.
    parked: ParkedCalls,
    /// Calls of legacy agents whose 2026-07-28 child asked for their input.
    rounds: Rounds,
    /// The child's log messages passed on per second (a flood is dropped, not queued).
    log_budget: LineBudget,
    /// Where the child's requests to agents are recorded.
    audit: Option<Arc<crate::audit::Audit>>,
    heartbeat: Heartbeat,
    /// Speak 2026-07-28 to the child: configured, or learned when it refused `initialize`
    /// with -32022 (kept across its restarts).
    modern: bool,
    /// A 2026-07-28 child announces list changes: a listen is kept open towards it.
    listens: bool,
    /// A remote server's era is being probed (a `server/discover` of 2026-07-28 is out).
    probing: bool,
    /// A remote server refused the probe: it is legacy (kept across its restarts).
    probed_legacy: bool,
    /// When a listen that ended with an error is opened again.
    relisten_at: Option<Instant>,
    next_heartbeat: Instant,
    misses: u32,
    invalid_lines: u32,
    policy: RestartPolicy,
    started_once: bool,
    /// When the loop, asleep in `poll`, wakes by itself: a call forwarded directly with an
    /// earlier deadline wakes it (`None`: it waits for an event only).
    asleep_until: Option<Instant>,
    /// The child's stdin broke under a call forwarded directly: the loop fails the child (a
    /// teardown waits, which the caller's thread must not); cleared by any failure.
    stdin_broken: Option<String>,
}

impl Worker {
    pub(crate) fn new(
        cfg: ServerConfig,
        settings: Arc<Settings>,
        poll: Poll,
        rx: Receiver<Command>,
        events: Sender<Event>,
        handle: ConnHandle,
        audit: Option<Arc<crate::audit::Audit>>,
    ) -> Worker {
        let now = Instant::now();
        let modern = cfg.modern;
        Worker {
            policy: RestartPolicy::new(
                settings.backoff_min,
                settings.backoff_max,
                settings.breaker_window,
                settings.breaker_failures,
                settings.breaker_cooldown,
            ),
            pipes: Pipes::new(settings.max_line_bytes, &cfg.env, now),
            cfg,
            settings,
            poll: Arc::new(Mutex::new(poll)),
            rx,
            events,
            handle,
            phase: Phase::Waiting { until: now },
            status: Status::Starting,
            inflight: InFlight::new(),
            handshake: Handshake::new(),
            lists: Lists::default(),
            asks: Asks::default(),
            parked: ParkedCalls::default(),
            rounds: Rounds::default(),
            log_budget: LineBudget::new(LOG_MESSAGES_PER_SEC, LOG_MESSAGES_BURST, now),
            audit,
            heartbeat: Heartbeat::Ping,
            modern,
            listens: false,
            probing: false,
            probed_legacy: false,
            relisten_at: None,
            next_heartbeat: now,
            misses: 0,
            invalid_lines: 0,
            started_once: false,
            asleep_until: None,
            stdin_broken: None,
        }
    }

    /// What woke the loop: the pipes with news, then the commands, the timers, and a stdin
    /// that broke under a call forwarded directly. False once the command queue is closed.
    fn on_wake(&mut self, events: &Events) -> bool {
        let (mut out, mut err, mut inp) =
            (self.pipes.stdout_more(), self.pipes.stderr_more(), false);
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
            self.pipes.read_stderr(&lock(&self.poll), &self.cfg.name);
        }
        if inp {
            self.flush_stdin();
        }
        // Before the queue: a call queued behind the broken write is then told the server is
        // restarting, as it would be had the loop written it.
        if let Some(reason) = self.stdin_broken.take() {
            self.fail(reason);
        }
        if !self.drain_commands() {
            return false;
        }
        self.on_timers(Instant::now());
        true
    }

    /// When the loop must wake by itself at the latest (`None`: only for an event).
    fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if self.pipes.stdout_more() || self.pipes.stderr_more() {
            return Some(now);
        }
        let mut next = self.inflight.next_deadline();
        for at in [
            self.relisten_at,
            self.asks.next_deadline(),
            self.parked.next_deadline(),
            self.rounds.next_deadline(),
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        match self.phase {
            Phase::Ready => {
                consider(self.next_heartbeat);
                if let Some(at) = self.lists.relist_at() {
                    consider(at);
                }
            }
            Phase::Waiting { until } => consider(until),
            Phase::Initializing | Phase::Stopped => {}
        }
        next
    }

    // ---- lifecycle -------------------------------------------------------------------------

    fn start_child(&mut self) {
        self.stdin_broken = None;
        self.inflight.clear();
        self.lists.restart();
        self.heartbeat = Heartbeat::Ping;
        self.misses = 0;
        self.invalid_lines = 0;
        self.pipes.reset();
        if self.started_once {
            self.handle.update(|s| s.restarts += 1);
        }
        self.started_once = true;
        log::info!(
            "connection {}: starting {}",
            self.cfg.name,
            self.cfg.command
        );
        let spawned = self
            .pipes
            .spawn(&self.cfg, self.settings.teardown_grace, &lock(&self.poll));
        match spawned {
            Ok(pid) => {
                log::info!("connection {}: child pid {pid}", self.cfg.name);
                self.handle.update(|s| s.pid = Some(pid));
                self.phase = Phase::Initializing;
                self.set_status(Status::Starting, None);
                self.send_initialize();
            }
            Err(e) => {
                let reason = format!("cannot start {:?}: {e}", self.cfg.command);
                self.fail(reason);
            }
        }
    }

    /// Something is wrong with the child: answer every pending request, tear the child down,
    /// schedule the next start. The reason ends with the child's last stderr lines, if it wrote
    /// any (read now: a child that exits leaves them in the pipe).
    fn fail(&mut self, reason: String) {
        // A stdin found broken under a direct call is this same failure: one failure, one
        // reason (else the backoff would double and the breaker count it twice).
        self.stdin_broken = None;
        self.pipes.read_stderr(&lock(&self.poll), &self.cfg.name);
        let reason = match self.pipes.stderr_summary() {
            Some(tail) => format!("{reason}; {tail}"),
            None => reason,
        };
        // Every call in flight is answered with these words, and they quote the child (its
        // stderr, its error messages, what it claimed to speak): they pass the text cleaner like
        // anything else a server says to an agent.
        let (reason, _) = crate::sanitize::clean_text(&reason, &crate::sanitize::Limits::default());
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
        let grace = self.settings.teardown_grace;
        let torn_down = self.pipes.teardown(&mut lock(&self.poll), grace, polite);
        if let Some((pid, exit)) = torn_down {
            log::debug!(
                "connection {}: child {} reaped ({exit:?})",
                self.cfg.name,
                pid
            );
        }
        self.handle.update(|s| s.pid = None);
        // The teardown polled our Poll and may have taken the waker's event: look at the
        // command queue again right away.
        self.handle.wake();
    }

    fn fail_pending(&mut self, reason: &str) {
        for responder in self.inflight.take_agent_calls() {
            let message = format!("server '{}' failed: {reason}", self.cfg.name);
            responder.error(code::SERVER_UNAVAILABLE, &message);
        }
        for (n, ask) in self.asks.drain() {
            self.tell_agent_cancelled(n, &ask, "the server failed or stopped");
        }
        // Their agents' retries find no park and are told so.
        self.parked.clear();
        self.fail_rounds(reason);
        self.lists.abort();
    }

    fn stop(&mut self) {
        self.fail_pending("the gate is shutting down");
        self.teardown_child(true);
        self.phase = Phase::Stopped;
        self.set_status(Status::Stopped, None);
        self.fail_queued();
    }

    /// Answers the calls still queued (each as it drops, see `QueuedCall`): those handed over
    /// just before the stop flag was set, or while a teardown held the worker. Last, after the
    /// teardown, so the handle's own look at the flag answers every later call; one that slips
    /// in after this drain answers when the queue itself goes.
    fn fail_queued(&mut self) {
        while self.rx.try_recv().is_ok() {}
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

    // ---- writing to the child --------------------------------------------------------------

    fn flush_stdin(&mut self) {
        if let Err(e) = self.pipes.flush_stdin() {
            self.fail(format!("stdin write failed: {e}"));
        }
    }

    /// Writes one line to the child; a broken pipe fails the connection.
    fn write_or_fail(&mut self, line: &[u8]) {
        if let WriteResult::Broken(reason) = self.pipes.write_line(line) {
            self.fail(reason);
        }
    }

    /// Sends a request of the gate's own; a broken pipe fails the connection.
    fn send_internal(
        &mut self,
        method: &str,
        params: Option<&str>,
        kind: PendingKind,
        timeout: Duration,
    ) {
        let id = self.inflight.next_id();
        let enveloped = self.modern.then(|| modern_params(params));
        let params = enveloped.as_deref().or(params);
        let line = jsonrpc::request_line(&Id::from_u64(id), method, params);
        match self.pipes.write_line(&line) {
            WriteResult::Written | WriteResult::Backlogged => {
                let deadline = Instant::now() + timeout;
                self.inflight.insert(id, kind, deadline);
            }
            WriteResult::Broken(reason) => self.fail(reason),
        }
    }

    fn send_notification(&mut self, method: &str, params: &Value) {
        let line = jsonrpc::notification_line(method, Some(&params.to_string()));
        self.write_or_fail(&line);
    }

    // ---- commands from the gate ------------------------------------------------------------

    /// Drains the command queue; false when every handle is gone.
    fn drain_commands(&mut self) -> bool {
        for _ in 0..COMMANDS_PER_TURN {
            match self.rx.try_recv() {
                Ok(Command::Call(queued)) => {
                    if let Some(req) = queued.take() {
                        self.on_call(*req);
                    }
                }
                Ok(Command::Cancel { session, id }) => self.on_cancel(session, &id),
                Ok(Command::ClientAnswer {
                    session,
                    n,
                    outcome,
                }) => self.on_client_answer(session, n, outcome),
                Ok(Command::Notify { method, params }) => {
                    if self.phase == Phase::Ready {
                        let line = jsonrpc::notification_line(method, params.as_deref());
                        self.write_or_fail(&line);
                    }
                }
                Ok(Command::Tell { method, params }) => {
                    if self.phase == Phase::Ready {
                        let timeout = self.settings.call_timeout;
                        self.send_internal(method, Some(&params), PendingKind::Quiet, timeout);
                    }
                }
                Ok(Command::RefreshTools) => {
                    if self.phase == Phase::Ready {
                        let offered = self.lists.offered();
                        self.list_all(offered);
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

    /// What the child declared it offers.
    fn lists_offered(&self) -> crate::downstream::Offered {
        self.lists.offered()
    }
}

/// The `_meta` envelope of every request to a 2026-07-28 child.
fn envelope() -> serde_json::Map<String, Value> {
    let capabilities: Value =
        serde_json::from_str(crate::mcp::CLIENT_CAPABILITIES).unwrap_or_default();
    let mut meta = serde_json::Map::new();
    meta.insert(
        crate::mcp::ENVELOPE_VERSION_KEY.into(),
        Value::String(crate::mcp::MODERN_VERSION.into()),
    );
    meta.insert(crate::mcp::ENVELOPE_CAPABILITIES_KEY.into(), capabilities);
    meta.insert(
        crate::mcp::ENVELOPE_CLIENT_INFO_KEY.into(),
        serde_json::json!({
            "name": crate::mcp::IMPLEMENTATION_NAME,
            "version": crate::mcp::IMPLEMENTATION_VERSION,
        }),
    );
    meta
}

/// `params` (an object, or none) with the envelope in its `_meta`.
fn modern_params(params: Option<&str>) -> String {
    let mut object: serde_json::Map<String, Value> = params
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let mut meta = match object.remove("_meta") {
        Some(Value::Object(meta)) => meta,
        _ => serde_json::Map::new(),
    };
    meta.extend(envelope());
    object.insert("_meta".into(), Value::Object(meta));
    Value::Object(object).to_string()
}

/// Whether a child's error is -32601 (method not found).
fn is_not_found(error: &serde_json::value::RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get()).is_ok_and(|c| c.code == code::METHOD_NOT_FOUND)
}

/// The `message` of a child's error object, for logs (bounded, never the `data`).
fn error_message(error: &serde_json::value::RawValue) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: Option<String>,
    }
    let message = serde_json::from_str::<Message>(error.get())
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| "no message".into());
    message.chars().take(200).collect()
}

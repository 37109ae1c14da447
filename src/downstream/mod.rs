//! Downstream: the MCP servers behind the gate, one supervised connection each.
//!
//! Owns: [`ConnectionManager`] (the registry of live connections: spawn on start, teardown on
//! shutdown), the types the connections and the rest share (`Event`, `Status`, `CallRequest`,
//! `Command`), and, in `handle.rs`, [`ConnHandle`], the cheap clonable way other parts talk to one
//! `DownstreamConnection`, whose thread lives in `connection/`.
//! Never: merges tool lists (that is the merger's) or interprets an agent's session; it only
//! forwards requests it is handed and reports tool lists and status changes as [`Event`]s.
//!
//! Threads: one `conn-<name>` thread per connection, its `JoinOnDrop` held by the manager.
//! Channels: per connection a bounded `Command` queue (capacity [`COMMAND_QUEUE`]), written by any
//! thread through [`ConnHandle`] followed by a `mio::Waker` wake (a call to a connection with
//! nothing in flight is written to its child by the calling thread instead, when the connection's
//! worker is free: `connection/direct.rs`); one bounded [`Event`] queue from all
//! connections to the merger. Shutdown: a stop flag and a wake to every connection, then join them all
//! (each tears its child down in parallel with the others).

mod child;
mod connection;
mod handle;
mod health;
#[cfg(test)]
mod stop_tests;

pub(crate) use crate::mcp::ListKind;
pub(crate) use connection::input;
pub(crate) use handle::ConnHandle;
use handle::HandleInner;

use crate::config::{ServerConfig, Settings};
use crate::json_text::JsonText;
use crate::jsonrpc::{self, Id, Responder, SessionId};
use crate::thread::{self, JoinOnDrop};
use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Capacity of each connection's command queue; a full queue is an immediate error to the agent.
pub(crate) const COMMAND_QUEUE: usize = 256;

/// Identifies a connection for the lifetime of the process (names may be reused after removal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A connection's health, as logged and as the REST API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Spawned; handshake or first listing under way.
    Starting,
    /// Answering.
    Healthy,
    /// A fault was just detected; the child is being torn down.
    Unhealthy,
    /// Waiting out the backoff before the next start.
    Restarting,
    /// The breaker is open after repeated failures; retried after a cooldown.
    Failed,
    /// Torn down for good.
    Stopped,
}

impl Status {
    /// The lowercase name used in logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
            Status::Restarting => "restarting",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point-in-time view of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The configured name (the tool prefix).
    pub name: String,
    /// The command line, for display.
    pub command: Vec<String>,
    /// The child's pid while one runs.
    pub pid: Option<u32>,
    /// Current status.
    pub status: Status,
    /// When the child last answered a heartbeat.
    pub last_heartbeat: Option<SystemTime>,
    /// Restarts since the connection was created.
    pub restarts: u32,
    /// Tools in the child's last complete listing.
    pub tools: usize,
    /// The last fault, in words (never a secret: no env values, no payloads).
    pub last_error: Option<String>,
}

/// What a server offers as it declared at `initialize`: which lists exist, and whether its
/// resources take subscriptions, completions and log levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// `tools`.
    pub tools: bool,
    /// `prompts`.
    pub prompts: bool,
    /// `resources` (lists, templates and reads).
    pub resources: bool,
    /// `resources.subscribe`.
    pub subscribe: bool,
    /// `completions`.
    pub completions: bool,
    /// `logging`.
    pub logging: bool,
}

impl Offered {
    /// What an `initialize` result's `capabilities` object declares.
    pub fn from_capabilities(caps: &serde_json::Map<String, Value>) -> Offered {
        let flag = |kind: &str, field: &str| {
            caps.get(kind)
                .and_then(|c| c.get(field))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Offered {
            tools: caps.contains_key("tools"),
            prompts: caps.contains_key("prompts"),
            resources: caps.contains_key("resources"),
            subscribe: flag("resources", "subscribe"),
            completions: caps.contains_key("completions"),
            logging: caps.contains_key("logging"),
        }
    }
}

/// Everything a child listed: its tools, prompts, resources and resource templates (each in the
/// child's order, as raw objects), with what it declared. Each list is shared, not copied, between
/// the connection and the merger, and each item is kept as its compact text ([`Items`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// `tools/list`, every page.
    pub tools: Items,
    /// `prompts/list`, every page.
    pub prompts: Items,
    /// `resources/list`, every page.
    pub resources: Items,
    /// `resources/templates/list`, every page.
    pub templates: Items,
    /// What the child declared at `initialize`.
    pub offered: Offered,
}

/// The items of one list as their compact texts: a tool kept as text costs about a seventh of the
/// `Value` tree it parses into, and the merger parses each only when it judges it.
pub(crate) type Items = Arc<[JsonText]>;

/// Something a child said that concerns sessions, not one request.
#[derive(Debug)]
pub enum Notice {
    /// `notifications/resources/updated` for `uri`.
    Updated {
        /// The resource's URI as the child wrote it.
        uri: String,
    },
    /// `notifications/message`: a log message, its hidden characters already stripped.
    Log {
        /// Its RFC 5424 level.
        level: crate::mcp::LogLevel,
        /// The params to forward (`logger` names the server).
        params: String,
    },
}

/// What a connection tells the merger.
#[derive(Debug)]
pub enum Event {
    /// A complete listing (all pages of every list the child offers).
    Listed {
        /// The connection.
        conn: ConnId,
        /// What the child offers.
        catalog: Catalog,
        /// The child's `serverInfo` from its `initialize` answer (pinned with each tool).
        server_info: Value,
        /// The child's `instructions`, if any (model-read: sanitized and pinned, never forwarded).
        instructions: Option<String>,
    },
    /// The connection's status changed.
    Status {
        /// The connection.
        conn: ConnId,
        /// The new status.
        status: Status,
    },
    /// A resource changed or the child logged something.
    Notice {
        /// The connection.
        conn: ConnId,
        /// What it said.
        notice: Notice,
    },
}

/// An agent request to forward to a child.
#[derive(Debug)]
pub struct CallRequest {
    /// Where the answer goes.
    pub responder: Responder,
    /// The MCP method (`tools/call`).
    pub method: String,
    /// The params object, already rewritten for the child (tool name without prefix); `_meta` is
    /// held apart so the connection can put its own progress token in.
    pub params: BTreeMap<String, Box<RawValue>>,
    /// The params' `_meta` without `progressToken`, values raw.
    pub meta: Option<BTreeMap<String, Box<RawValue>>>,
    /// The agent's progress token, rewritten per child and restored on each progress notification.
    pub progress_token: Option<Box<RawValue>>,
    /// How long the agent waits before the gate answers with a timeout.
    pub timeout: Duration,
    /// The authenticated agent, when the transport knows it (sent on only to `partner`
    /// connections, see [`crate::mcp::AGENT_META`]).
    pub agent: Option<String>,
    /// The requests of the child this session may be sent while the call is in flight (what it
    /// declared, less what the workspace's policy denies this connection).
    pub client: crate::mcp::ClientCaps,
    /// A result longer than this is refused with an error (`resources/read`'s size cap).
    pub max_result_bytes: Option<usize>,
    /// A 2026-07-28 retry of a call that was answered `input_required`: the park it resumes
    /// and the agent's answers to the child's requests.
    pub resume: Option<Resume>,
}

/// A retried call's `requestState` (the gate's, `aegis:TOKEN`) and `inputResponses`.
#[derive(Debug)]
pub struct Resume {
    /// The token after `aegis:`.
    pub token: String,
    /// The agent's answers, by the keys of the `inputRequests` it was sent.
    pub responses: BTreeMap<String, Box<RawValue>>,
}

/// A call in a connection's command queue. One dropped there, never handled (the connection
/// stopped between the handle's look at its stop flag and the queue's last drain), answers its
/// agent that the server is stopped: every call gets one answer.
pub(crate) struct QueuedCall {
    call: Option<Box<CallRequest>>,
    server: Arc<str>,
}

impl QueuedCall {
    pub(crate) fn new(call: Box<CallRequest>, server: Arc<str>) -> QueuedCall {
        QueuedCall {
            call: Some(call),
            server,
        }
    }

    /// The call, to be handled: dropping what is left answers nothing.
    pub(crate) fn take(mut self) -> Option<Box<CallRequest>> {
        self.call.take()
    }
}

impl Drop for QueuedCall {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            answer_stopped(call.responder, &self.server);
        }
    }
}

/// Answers a call its connection will never handle: the server is stopped.
fn answer_stopped(responder: Responder, server: &str) {
    let message = format!("server '{server}' is stopped");
    responder.error(jsonrpc::code::SERVER_UNAVAILABLE, &message);
}

impl fmt::Debug for QueuedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedCall")
            .field("server", &self.server)
            .field("call", &self.call)
            .finish()
    }
}

/// Commands a connection thread accepts.
#[derive(Debug)]
pub(crate) enum Command {
    /// Boxed: the queue's slots are all allocated (and touched) up front, each the size of the
    /// largest command; a call inline made 256 slots of a few hundred bytes per connection.
    Call(QueuedCall),
    Cancel {
        session: SessionId,
        id: Id,
    },
    /// An agent's answer to the child's request `n` (see [`server_request_id`]).
    ClientAnswer {
        session: SessionId,
        n: u64,
        outcome: crate::jsonrpc::Outcome,
    },
    /// A notification of the gate's own to the child.
    Notify {
        method: &'static str,
        params: Option<String>,
    },
    /// A request of the gate's own whose answer nobody waits for (`logging/setLevel`,
    /// `resources/unsubscribe` of the last session).
    Tell {
        method: &'static str,
        params: String,
    },
    RefreshTools,
    Restart,
}

/// The id under which an agent sees request `n` of connection `conn` (`sampling/createMessage`
/// and the like): a string no agent's own ids are compared with.
pub(crate) fn server_request_id(conn: ConnId, n: u64) -> String {
    format!("aegis-{}-{n}", conn.0)
}

/// The connection and number an id of [`server_request_id`]'s names.
pub(crate) fn parse_server_request_id(id: &str) -> Option<(ConnId, u64)> {
    let rest = id.strip_prefix("\"aegis-")?.strip_suffix('"')?;
    let (conn, n) = rest.split_once('-')?;
    Some((ConnId(conn.parse().ok()?), n.parse().ok()?))
}

/// Why a connection could not be started.
#[derive(Debug)]
pub(crate) enum Error {
    /// A connection with this name exists already.
    Duplicate(String),
    /// The OS refused a poll, waker or thread.
    Io {
        /// The connection.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Duplicate(name) => write!(f, "downstream error: connection {name:?} exists"),
            Error::Io { name, source } => {
                write!(
                    f,
                    "downstream error: cannot start connection {name:?}: {source}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Duplicate(_) => None,
            Error::Io { source, .. } => Some(source),
        }
    }
}

struct Conn {
    handle: ConnHandle,
    thread: Option<JoinOnDrop<()>>,
}

/// A connection told to stop and out of its registry; dropping it also waits for its teardown.
pub(crate) struct Retiring(Conn);

impl Retiring {
    /// The connection's handle.
    pub(crate) fn handle(&self) -> &ConnHandle {
        &self.0.handle
    }

    /// Waits until the connection's thread has torn its child down.
    pub(crate) fn join(mut self) -> ConnHandle {
        if let Some(thread) = self.0.thread.take() {
            thread.join();
        }
        self.0.handle
    }
}

/// The registry of live downstream connections.
pub(crate) struct ConnectionManager {
    settings: Arc<Settings>,
    events: Sender<Event>,
    /// Where the children's requests to agents are recorded.
    audit: Option<Arc<crate::audit::Audit>>,
    conns: Vec<Conn>,
    next_id: u64,
}

impl ConnectionManager {
    /// An empty manager whose connections report to `events` and record the children's
    /// requests to agents in `audit`.
    pub(crate) fn new(
        settings: Arc<Settings>,
        events: Sender<Event>,
        audit: Option<Arc<crate::audit::Audit>>,
    ) -> ConnectionManager {
        ConnectionManager {
            settings,
            events,
            audit,
            conns: Vec::new(),
            next_id: 1,
        }
    }

    /// Starts a connection: its thread spawns the child and runs the handshake.
    pub(crate) fn add(&mut self, cfg: ServerConfig) -> Result<ConnHandle, Error> {
        if self.conns.iter().any(|c| c.handle.name() == cfg.name) {
            return Err(Error::Duplicate(cfg.name));
        }
        let io_err = |source| Error::Io {
            name: cfg.name.clone(),
            source,
        };
        let (handle, worker) = self.prepare(&cfg).map_err(io_err)?;
        let thread = thread::spawn(format!("conn-{}", cfg.name), move || {
            connection::run(worker)
        })
        .map_err(io_err)?;
        self.conns.push(Conn {
            handle: handle.clone(),
            thread: Some(thread),
        });
        Ok(handle)
    }

    /// A connection's handle and its worker, not running yet (`add` gives the worker its
    /// thread).
    fn prepare(
        &mut self,
        cfg: &ServerConfig,
    ) -> std::io::Result<(ConnHandle, Arc<Mutex<connection::Worker>>)> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), connection::WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let mut command = vec![cfg.command.clone()];
        command.extend(cfg.args.iter().cloned());
        let handle = ConnHandle {
            inner: Arc::new(HandleInner {
                id,
                trusted: cfg.trusted,
                name: cfg.name.as_str().into(),
                tx,
                waker,
                snapshot: Mutex::new(Snapshot {
                    name: cfg.name.clone(),
                    command,
                    pid: None,
                    status: Status::Starting,
                    last_heartbeat: None,
                    restarts: 0,
                    tools: 0,
                    last_error: None,
                }),
                stop: AtomicBool::new(false),
                direct: std::sync::OnceLock::new(),
            }),
        };
        let worker = connection::Worker::new(
            cfg.clone(),
            Arc::clone(&self.settings),
            poll,
            rx,
            self.events.clone(),
            handle.clone(),
            self.audit.clone(),
        );
        let worker = Arc::new(Mutex::new(worker));
        let _ = handle.inner.direct.set(connection::Direct::to(&worker));
        Ok((handle, worker))
    }

    /// Handles of every connection, in the order they were added.
    pub(crate) fn handles(&self) -> Vec<ConnHandle> {
        self.conns.iter().map(|c| c.handle.clone()).collect()
    }

    /// Takes the connection named `name` out of the registry and tells it to stop, without
    /// waiting: the caller joins the [`Retiring`] after releasing any lock it shares, because a
    /// child's teardown can take seconds.
    pub(crate) fn detach(&mut self, name: &str) -> Option<Retiring> {
        let idx = self.conns.iter().position(|c| c.handle.name() == name)?;
        let conn = self.conns.remove(idx);
        conn.handle.inner.stop.store(true, Ordering::SeqCst);
        conn.handle.wake();
        Some(Retiring(conn))
    }

    /// The handle of the connection named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<ConnHandle> {
        self.conns
            .iter()
            .find(|c| c.handle.name() == name)
            .map(|c| c.handle.clone())
    }

    /// Tears every connection down (in parallel) and joins their threads.
    pub(crate) fn shutdown(&mut self) {
        for conn in &self.conns {
            conn.handle.inner.stop.store(true, Ordering::SeqCst);
            conn.handle.wake();
        }
        for conn in &mut self.conns {
            if let Some(thread) = conn.thread.take() {
                thread.join();
            }
        }
        self.conns.clear();
    }
}

impl Drop for ConnectionManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

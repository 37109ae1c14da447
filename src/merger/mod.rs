//! SchemaMerger: the thread that turns every connection's tool list into one merged view.
//!
//! Owns: the latest tool list of each connection, the LRU cache of merged views (keyed by
//! workspace and, later, the caller's scope; each entry stamped and expired after the TTL), the
//! published route table, the list of sessions to tell `notifications/tools/list_changed`, and the
//! startup gate that holds each session's `initialize` answer until every child has listed or failed.
//! Never: blocks on a connection (it only sends them non-blocking commands) or on a session (sinks
//! are bounded and non-blocking); it never forwards a call.
//!
//! Threads: `merger`, its handle held by [`Merger`]. Channels in: connection `Event`s (bounded,
//! shared by all connections), [`Request`]s from the gate (bounded, [`REQUEST_QUEUE`]), and a stop
//! channel whose sender [`Merger`] drops to end the thread. Out: replies through `Responder`s and
//! `Sink`s, and the route table through a shared `RwLock`.

mod judge;
mod view;

pub use view::{Route, Routes};

use crate::config::Settings;
use crate::downstream::{ConnHandle, ConnId, Event, Status};
use crate::jsonrpc::{self, code, Responder, SessionId, Sink};
use crate::thread::{self, JoinOnDrop};
use crossbeam_channel::{select, Receiver, Sender};
use judge::{Judge, Listing};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use view::{MergedView, Namer, ServerTools};

/// Capacity of the gate → merger request queue.
pub const REQUEST_QUEUE: usize = 1024;
/// Capacity of the connections → merger event queue.
pub const EVENT_QUEUE: usize = 1024;
/// Merged views kept in the cache.
const CACHE_ENTRIES: usize = 64;
/// Listings kept for connections that reported before they joined the view.
const MAX_EARLY: usize = 256;
/// How often the merger looks whether an operator changed the pins on disk.
const PIN_CHECK: Duration = Duration::from_secs(1);

fn namer(settings: &Settings) -> Namer {
    Namer {
        separator: settings.separator,
        naming: settings.naming,
    }
}

/// Which merged view: a workspace, and room for the caller's scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The workspace (`default` in stdio mode).
    pub workspace: String,
    /// The caller's tool scope, once scopes exist; `None` sees every tool.
    pub scope: Option<String>,
}

/// Work the gate wants done once startup is settled (a `tools/call` that arrived early); it gets
/// the request's responder back.
pub type Deferred = Box<dyn FnOnce(Responder) + Send>;

/// Requests held until startup settles; more are refused at once.
pub const MAX_HELD: usize = 1024;

/// What the gate asks of the merger.
pub enum Request {
    /// Answer `tools/list` for `key` at `cursor`.
    List {
        /// The view.
        key: ViewKey,
        /// The agent's cursor.
        cursor: Option<String>,
        /// Where the answer goes.
        responder: Responder,
    },
    /// Answer `initialize` with `result` once startup is settled, then subscribe the session to
    /// `notifications/tools/list_changed`.
    ReleaseWhenReady {
        /// Where the answer goes.
        responder: Responder,
        /// The result to send.
        result: String,
    },
    /// Forget a session's subscription.
    Unsubscribe {
        /// The session.
        session: SessionId,
    },
    /// Tell this sink's session about list changes from now on, replacing an earlier sink of the
    /// same session (an HTTP session's queue of notifications for its next answer).
    Subscribe(Sink),
    /// A connection was added to the workspace (its tools arrive as events).
    AddServer(ConnHandle),
    /// A connection was removed: its tools leave the view.
    RemoveServer(ConnId),
    /// Run once startup is settled, in order with the other held requests.
    WhenReady {
        /// The request's responder, handed to `run` (or answered with an error if the merger
        /// cannot take the request).
        responder: Responder,
        /// The work.
        run: Deferred,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::List { key, .. } => write!(f, "List({key:?})"),
            Request::ReleaseWhenReady { responder, .. } => {
                write!(f, "ReleaseWhenReady({})", responder.session())
            }
            Request::Unsubscribe { session } => write!(f, "Unsubscribe({session})"),
            Request::AddServer(conn) => write!(f, "AddServer({})", conn.name()),
            Request::Subscribe(sink) => write!(f, "Subscribe({})", sink.session()),
            Request::RemoveServer(id) => write!(f, "RemoveServer({id:?})"),
            Request::WhenReady { responder, .. } => write!(f, "WhenReady({})", responder.session()),
        }
    }
}

/// The route table as the gate reads it: swapped whole by the merger on every change.
pub type SharedRoutes = Arc<RwLock<Arc<Routes>>>;

/// The gate's end of the merger: send requests, read routes.
#[derive(Clone, Debug)]
pub struct MergerHandle {
    tx: Sender<Request>,
    routes: SharedRoutes,
    ready: Arc<AtomicBool>,
    stats: Arc<CacheStats>,
}

/// Cache hits and misses of merged views (for the metrics).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// `tools/list` answered from a cached view.
    pub hits: std::sync::atomic::AtomicU64,
    /// `tools/list` that built the view (absent or expired).
    pub misses: std::sync::atomic::AtomicU64,
}

impl MergerHandle {
    /// Queues a request; when the merger cannot take it, the agent is answered with an error.
    pub fn send(&self, req: Request) {
        let Err(e) = self.tx.try_send(req) else {
            return;
        };
        let full = e.is_full();
        let responder = match e.into_inner() {
            Request::List { responder, .. }
            | Request::ReleaseWhenReady { responder, .. }
            | Request::WhenReady { responder, .. } => responder,
            other @ (Request::Unsubscribe { .. }
            | Request::Subscribe(_)
            | Request::AddServer(_)
            | Request::RemoveServer(_)) => {
                log::error!("merger queue full or closed; {other:?} was dropped");
                return;
            }
        };
        if full {
            responder.error(
                code::OVERLOADED,
                "the gate is overloaded (merger queue full)",
            );
        } else {
            responder.error(code::INTERNAL_ERROR, "the gate is shutting down");
        }
    }

    /// Cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.stats.hits.load(Ordering::Relaxed),
            self.stats.misses.load(Ordering::Relaxed),
        )
    }

    /// True once every child has listed or failed (or the startup deadline passed).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The current route table.
    pub fn routes(&self) -> Arc<Routes> {
        match self.routes.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// The running merger thread; dropping it stops and joins the thread.
pub struct Merger {
    // Declared before `thread`: dropped first, so the thread sees the stop before the join.
    stop: Option<Sender<()>>,
    thread: Option<JoinOnDrop<()>>,
}

impl Merger {
    /// Starts the merger over `conns`, reading their events from `events`.
    pub fn spawn(
        settings: Arc<Settings>,
        options: MergerOptions,
        conns: Vec<ConnHandle>,
        events: Receiver<Event>,
    ) -> std::io::Result<(Merger, MergerHandle)> {
        let (tx, requests) = crossbeam_channel::bounded(REQUEST_QUEUE);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let routes: SharedRoutes = Arc::new(RwLock::new(Arc::new(Routes::default())));
        let ready = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CacheStats::default());
        let mut state = State::new(
            settings,
            options,
            conns,
            Arc::clone(&routes),
            Arc::clone(&ready),
        );
        state.stats = Arc::clone(&stats);
        let thread = thread::spawn("merger", move || state.run(events, requests, stop_rx))?;
        let merger = Merger {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        Ok((
            merger,
            MergerHandle {
                tx,
                routes,
                ready,
                stats,
            },
        ))
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.stop.take();
    }
}

struct CachedView {
    built_at: Instant,
    view: Arc<MergedView>,
}

struct Server {
    /// The judged entries that the view is merged from.
    tools: ServerTools<ConnHandle>,
    /// The last listing as the child sent it, kept to judge again when pins change.
    listing: Listing,
    /// Listed, or failed, at least once since the gate started.
    settled: bool,
}

/// Where the merger keeps pins and how it names tools.
pub struct MergerOptions {
    /// The workspace the view belongs to (`default` in stdio mode).
    pub workspace: String,
    /// The pin store; `None` keeps pins in memory only (trust on first use for this run).
    pub pins: Option<crate::store::pins::PinStore>,
}

struct State {
    settings: Arc<Settings>,
    judge: Judge,
    servers: Vec<Server>,
    cache: LruCache<ViewKey, CachedView>,
    routes: SharedRoutes,
    startup_deadline: Instant,
    startup_done: bool,
    ready: Arc<AtomicBool>,
    /// Requests that arrived before startup settled, in arrival order.
    held: Vec<Request>,
    subscribers: Vec<Sink>,
    /// Listings of connections not joined yet (see `on_event`).
    early: std::collections::HashMap<ConnId, Event>,
    stats: Arc<CacheStats>,
}

impl State {
    fn new(
        settings: Arc<Settings>,
        options: MergerOptions,
        conns: Vec<ConnHandle>,
        routes: SharedRoutes,
        ready: Arc<AtomicBool>,
    ) -> State {
        let servers = conns
            .into_iter()
            .map(|conn| Server {
                tools: ServerTools {
                    name: conn.name().to_owned(),
                    conn,
                    tools: Vec::new(),
                },
                listing: Listing::default(),
                settled: false,
            })
            .collect();
        let capacity = NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        let judge = Judge {
            limits: crate::sanitize::Limits::default(),
            workspace: options.workspace,
            pinning: settings.pinning,
            on_change: settings.on_change,
            namer: namer(&settings),
            pins: options.pins,
        };
        State {
            judge,
            startup_deadline: Instant::now() + settings.startup_timeout,
            settings,
            servers,
            cache: LruCache::new(capacity),
            routes,
            startup_done: false,
            ready,
            held: Vec::new(),
            subscribers: Vec::new(),
            early: std::collections::HashMap::new(),
            stats: Arc::default(),
        }
    }

    fn run(mut self, events: Receiver<Event>, requests: Receiver<Request>, stop: Receiver<()>) {
        let mut events = events;
        self.check_startup(Instant::now());
        let mut next_pin_check = Instant::now() + PIN_CHECK;
        loop {
            let now = Instant::now();
            if now >= next_pin_check {
                next_pin_check = now + PIN_CHECK;
                if self.judge.pins_changed() {
                    self.on_pins_changed();
                }
            }
            let mut wake = next_pin_check;
            if !self.startup_done {
                wake = wake.min(self.startup_deadline);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => self.on_event(ev),
                    // Every connection is gone; requests are still answered from what we have.
                    Err(_) => events = crossbeam_channel::never(),
                },
                recv(requests) -> req => match req {
                    Ok(req) => self.on_request(req),
                    Err(_) => return,
                },
                recv(stop) -> _ => return,
                default(timeout) => {}
            }
            self.check_startup(Instant::now());
        }
    }

    fn server_mut(&mut self, conn: ConnId) -> Option<&mut Server> {
        self.servers.iter_mut().find(|s| s.tools.conn.id() == conn)
    }

    fn on_event(&mut self, event: Event) {
        let conn = match &event {
            Event::Tools { conn, .. } | Event::Status { conn, .. } => *conn,
        };
        if self.servers.iter().all(|s| s.tools.conn.id() != conn) {
            // A connection added live can report before its AddServer is read (two channels):
            // keep its latest listing for when it joins.
            if matches!(event, Event::Tools { .. }) && self.early.len() < MAX_EARLY {
                self.early.insert(conn, event);
            }
            return;
        }
        match event {
            Event::Tools {
                conn,
                tools,
                server_info,
                instructions,
            } => {
                let listing = Listing {
                    tools,
                    server_info,
                    instructions,
                };
                let Some(idx) = self.servers.iter().position(|s| s.tools.conn.id() == conn) else {
                    return;
                };
                let server = &mut self.servers[idx];
                server.settled = true;
                if server.listing != listing || server.tools.tools.is_empty() {
                    server.listing = listing;
                    self.judge_server(idx);
                    self.invalidate();
                }
            }
            Event::Status { conn, status } => {
                let Some(server) = self.server_mut(conn) else {
                    return;
                };
                match status {
                    // Stopped comes only at shutdown: the view stays as it is, unannounced.
                    Status::Unhealthy | Status::Restarting | Status::Stopped => {
                        server.settled = true
                    }
                    Status::Failed => {
                        server.settled = true;
                        if !server.tools.tools.is_empty() {
                            server.tools.tools.clear();
                            server.listing = Listing::default();
                            self.invalidate();
                        }
                    }
                    Status::Starting | Status::Healthy => {}
                }
            }
        }
    }

    fn on_request(&mut self, req: Request) {
        let holds = matches!(
            req,
            Request::List { .. } | Request::ReleaseWhenReady { .. } | Request::WhenReady { .. }
        );
        if holds && !self.startup_done {
            if self.held.len() < MAX_HELD {
                self.held.push(req);
            } else if let Request::List { responder, .. }
            | Request::ReleaseWhenReady { responder, .. }
            | Request::WhenReady { responder, .. } = req
            {
                responder.error(
                    code::OVERLOADED,
                    "the gate is still starting and holds too many requests",
                );
            }
            return;
        }
        match req {
            Request::List {
                key,
                cursor,
                responder,
            } => self.list(key, cursor.as_deref(), responder),
            Request::ReleaseWhenReady { responder, result } => self.release(responder, &result),
            Request::WhenReady { responder, run } => run(responder),
            Request::Subscribe(sink) => {
                self.subscribers.retain(|s| s.session() != sink.session());
                self.subscribers.push(sink);
            }
            Request::AddServer(conn) => {
                let early = self.early.remove(&conn.id());
                if self.servers.iter().all(|s| s.tools.conn.id() != conn.id()) {
                    self.servers.push(Server {
                        tools: ServerTools {
                            name: conn.name().to_owned(),
                            conn,
                            tools: Vec::new(),
                        },
                        listing: Listing::default(),
                        settled: true,
                    });
                    self.invalidate();
                }
                if let Some(event) = early {
                    self.on_event(event);
                }
            }
            Request::RemoveServer(id) => {
                self.early.remove(&id);
                let before = self.servers.len();
                self.servers.retain(|s| s.tools.conn.id() != id);
                if self.servers.len() != before {
                    self.invalidate();
                }
            }
            Request::Unsubscribe { session } => {
                self.subscribers.retain(|s| s.session() != session);
            }
        }
    }

    fn release(&mut self, responder: Responder, result: &str) {
        let sink = responder.sink().clone();
        responder.result(result);
        if !self
            .subscribers
            .iter()
            .any(|s| s.session() == sink.session())
        {
            self.subscribers.push(sink);
        }
    }

    fn check_startup(&mut self, now: Instant) {
        if self.startup_done {
            return;
        }
        let all_settled = self.servers.iter().all(|s| s.settled);
        if !all_settled && now < self.startup_deadline {
            return;
        }
        if !all_settled {
            let late: Vec<&str> = self
                .servers
                .iter()
                .filter(|s| !s.settled)
                .map(|s| s.tools.name.as_str())
                .collect();
            log::warn!(
                "startup deadline passed; answering without {late:?}, which join when ready"
            );
        }
        self.startup_done = true;
        self.ready.store(true, Ordering::SeqCst);
        for req in std::mem::take(&mut self.held) {
            self.on_request(req);
        }
    }

    fn list(&mut self, key: ViewKey, cursor: Option<&str>, responder: Responder) {
        let now = Instant::now();
        let fresh = self
            .cache
            .get(&key)
            .filter(|c| now.duration_since(c.built_at) < self.settings.cache_ttl)
            .map(|c| Arc::clone(&c.view));
        let view = match fresh {
            Some(view) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                view
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                if self.cache.contains(&key) {
                    // Expired: ask every child for its list again; changes arrive as events.
                    for server in &self.servers {
                        server.tools.conn.refresh_tools();
                    }
                }
                let view = Arc::new(self.build_view());
                let cached = CachedView {
                    built_at: now,
                    view: Arc::clone(&view),
                };
                self.cache.put(key, cached);
                view
            }
        };
        match view.page(cursor) {
            Some(page) => responder.result(page.get()),
            None => responder.error(code::INVALID_PARAMS, "invalid cursor"),
        }
    }

    fn build_view(&self) -> MergedView {
        let lists = self.servers.iter().map(|s| &s.tools);
        let merged = view::merge(lists, namer(&self.settings), false);
        MergedView::build(&merged, self.settings.page_size)
    }

    /// Judges one server's listing again (sanitize, pin, decide).
    fn judge_server(&mut self, idx: usize) {
        let others: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != idx)
            .map(|(_, s)| s.tools.name.clone())
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let Some(server) = self.servers.get(idx) else {
            return;
        };
        let entries = self
            .judge
            .judge(&server.tools.name, &others, &server.listing);
        if let Some(server) = self.servers.get_mut(idx) {
            server.tools.tools = entries;
        }
    }

    /// An operator changed the pins (`tools approve`): judge every server again.
    fn on_pins_changed(&mut self) {
        log::info!("pins changed on disk; judging every server's tools again");
        for idx in 0..self.servers.len() {
            self.judge_server(idx);
        }
        self.invalidate();
    }

    /// The merged view changed: drop cached views, publish new routes, tell subscribers.
    fn invalidate(&mut self) {
        self.cache.clear();
        let lists = self.servers.iter().map(|s| &s.tools);
        let merged = view::merge(lists, namer(&self.settings), true);
        let connections = self.servers.iter().map(|s| s.tools.conn.clone()).collect();
        let routes = Arc::new(view::routes(&merged, connections));
        log::info!("merged view: {} callable tools", routes.callable());
        match self.routes.write() {
            Ok(mut r) => *r = routes,
            Err(poisoned) => *poisoned.into_inner() = routes,
        }
        let line = jsonrpc::notification_line("notifications/tools/list_changed", None);
        // A full queue loses this notification, not the subscription.
        self.subscribers
            .retain(|sink| sink.send(line.clone()) != crate::jsonrpc::Sent::Closed);
    }
}

/// For the bench only: judges every listing (sanitize, pin in memory, decide) the way the merger
/// thread does, then times judging the first `rejudge` servers again plus the merge, the routes
/// and the pages of the whole view. Returns the time and the number of tools listed.
#[doc(hidden)]
pub fn rebuild_for_bench(
    settings: &Settings,
    listings: &[(String, Vec<serde_json::Value>)],
    rejudge: usize,
) -> (Duration, usize) {
    let mut judge = Judge {
        limits: crate::sanitize::Limits::default(),
        workspace: "bench".into(),
        pinning: settings.pinning,
        on_change: settings.on_change,
        namer: namer(settings),
        pins: None,
    };
    let names: Vec<&str> = listings.iter().map(|(n, _)| n.as_str()).collect();
    let listings: Vec<(String, Listing)> = listings
        .iter()
        .map(|(name, tools)| {
            let listing = Listing {
                tools: tools.clone(),
                server_info: serde_json::json!({ "name": name }),
                instructions: None,
            };
            (name.clone(), listing)
        })
        .collect();
    let mut judge_one = |name: &str, listing: &Listing| {
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != name).collect();
        judge.judge(name, &others, listing)
    };
    let mut servers: Vec<ServerTools<()>> = listings
        .iter()
        .map(|(name, listing)| ServerTools {
            name: name.clone(),
            conn: (),
            tools: judge_one(name, listing),
        })
        .collect();
    let start = Instant::now();
    for (server, (name, listing)) in servers.iter_mut().zip(&listings).take(rejudge) {
        server.tools = judge_one(name, listing);
    }
    let merged = view::merge(&servers, namer(settings), false);
    let routes = view::routes(&merged, Vec::new());
    let view = MergedView::build(&merged, settings.page_size);
    let elapsed = start.elapsed();
    let mut n_pages = 0;
    while view.page(Some(&format!("aegis-p{n_pages}"))).is_some() {
        n_pages += 1;
    }
    let n_tools = routes.callable().min(n_pages.max(1) * settings.page_size);
    (elapsed, n_tools)
}

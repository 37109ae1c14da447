//! The merger thread's loop and everything it holds: one [`State`] value, owned by the `merger`
//! thread alone (no lock around it).
//!
//! Owns: the per-server state (judged tools, prompts and resources, last listing, settled or
//! not), the startup gate (the deadline, the requests held until every child listed or failed),
//! the sessions told about list changes, resource updates and log messages (`sessions.rs`; what
//! reaches them and the servers, and the answers to `initialize`, subscriptions, listens and log
//! levels, are in `surface.rs`), listings of connections that reported before they joined,
//! the pin re-check every [`PIN_CHECK`], publishing the route table once per turn in which the
//! view changed (a burst of listings is drained in one turn and merged once; judging, building,
//! answering lists and publishing are in `publish.rs`), and the progress of
//! startup at INFO: one line per server as it first lists or fails, one line when startup
//! settles (servers ready, tools, seconds).
//! Never: blocks on a connection (it only sends them non-blocking commands) or on a session (sinks
//! are bounded and non-blocking); never forwards a call; never spawns a thread or creates a channel
//! (`Merger::spawn` in `mod.rs` does, and hands this state the receiving ends).
//!
//! Channels read by [`State::run`]: connection events (bounded `EVENT_QUEUE`; when every sender is
//! gone the loop keeps answering from what it has), requests (bounded `REQUEST_QUEUE`; when every
//! `MergerHandle` is gone the loop ends) and the stop channel (capacity 1, nothing is ever sent:
//! `Merger` drops its sender and the loop ends).

mod publish;
mod surface;

use super::cache::{CacheStats, ViewCache};

use super::judge::{Judge, Listing};
use super::request::{Request, MAX_HELD};
use super::sessions::Sessions;
use super::view::{Namer, Routes, ServerTools};
use crate::config::Settings;
use crate::downstream::{ConnHandle, ConnId, Event, Status};
use crate::jsonrpc::code;
use crate::mcp::LogLevel;
use crate::store::pins::PinStore;
use crossbeam_channel::{select, Receiver};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The route table as the gate reads it: swapped whole by the merger on every change.
pub type SharedRoutes = Arc<RwLock<Arc<Routes>>>;

/// Listings kept for connections that reported before they joined the view.
const MAX_EARLY: usize = 256;
/// How often the merger looks whether an operator changed the pins on disk.
const PIN_CHECK: Duration = Duration::from_secs(1);

struct Server {
    /// The judged entries that the view is merged from.
    tools: ServerTools<ConnHandle>,
    /// The last listing as the child sent it, kept to judge again when pins change.
    listing: Listing,
    /// Listed, or failed, at least once since the gate started.
    settled: bool,
    /// Listed at least once since the gate started.
    listed: bool,
    /// Its child was restarted since it last listed: the new child is told the log level and
    /// the subscriptions again when it lists.
    restarted: bool,
    /// Its listing (or the pins) changed this turn: judged again at the turn's end, with every
    /// other server judged this turn, in one pin update.
    stale: bool,
    /// Listed for the first time this turn: its "ready" line waits for its judged tools.
    announce: bool,
}

/// The merger thread's state; [`State::run`] is the thread's body.
pub(super) struct State {
    settings: Arc<Settings>,
    judge: Judge,
    servers: Vec<Server>,
    cache: ViewCache,
    routes: SharedRoutes,
    /// When the merger started, for the time to ready.
    started: Instant,
    startup_deadline: Instant,
    startup_done: bool,
    ready: Arc<AtomicBool>,
    /// Requests that arrived before startup settled, in arrival order.
    held: Vec<Request>,
    sessions: Sessions,
    /// The log level last sent to the servers (the most verbose any session asked for).
    log_level: Option<LogLevel>,
    /// The lists that changed this turn, each announced once at the turn's end.
    changed: Changed,
    /// Listings of connections not joined yet (see `on_event`).
    early: std::collections::HashMap<ConnId, Event>,
    /// The view changed this turn: merge, publish and announce once, at the turn's end.
    dirty: bool,
    /// When freed memory was last handed back (at most once per [`TRIM_EVERY`]).
    trimmed: Option<Instant>,
}

/// The least time between two `malloc_trim`s: a server that relists every second must not make
/// the merger walk the heap (under malloc's locks) every second.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Which lists changed in a turn: each gets one `list_changed` to every session.
#[derive(Clone, Copy, Debug, Default)]
struct Changed {
    tools: bool,
    prompts: bool,
    resources: bool,
}

impl Changed {
    const ALL: Changed = Changed {
        tools: true,
        prompts: true,
        resources: true,
    };

    fn between(old: &Listing, new: &Listing) -> Changed {
        let (a, b) = (&old.catalog, &new.catalog);
        let pinned_by = old.server_info != new.server_info || old.instructions != new.instructions;
        Changed {
            tools: a.tools != b.tools || pinned_by,
            prompts: a.prompts != b.prompts || pinned_by,
            resources: a.resources != b.resources || a.templates != b.templates,
        }
    }

    fn add(&mut self, other: Changed) {
        self.tools |= other.tools;
        self.prompts |= other.prompts;
        self.resources |= other.resources;
    }
}

/// Events handled in one turn before the view is merged: a burst of listings (50 servers
/// starting) costs one merge, not one per server.
const MAX_EVENTS_PER_TURN: usize = 1024;

impl State {
    /// The state of a merger over `conns` in `workspace`; it writes `routes`, `ready` and `stats`,
    /// which the `MergerHandle` reads.
    pub(super) fn new(
        settings: Arc<Settings>,
        workspace: String,
        pins: Option<PinStore>,
        conns: Vec<ConnHandle>,
        routes: SharedRoutes,
        ready: Arc<AtomicBool>,
        stats: Arc<CacheStats>,
    ) -> State {
        let servers = conns
            .into_iter()
            .map(|conn| Server {
                tools: ServerTools::empty(conn.name().to_owned(), conn),
                listing: Listing::default(),
                settled: false,
                listed: false,
                restarted: false,
                stale: false,
                announce: false,
            })
            .collect();
        let judge = Judge {
            limits: settings.guard.limits(),
            workspace,
            pinning: settings.pinning,
            on_change: settings.on_change,
            namer: Namer::from_settings(&settings),
            pins,
            reload_error: None,
        };
        State {
            judge,
            started: Instant::now(),
            startup_deadline: Instant::now() + settings.startup_timeout,
            cache: ViewCache::new(settings.cache_ttl, stats),
            settings,
            servers,
            routes,
            startup_done: false,
            ready,
            held: Vec::new(),
            sessions: Sessions::default(),
            log_level: None,
            changed: Changed::default(),
            early: std::collections::HashMap::new(),
            dirty: false,
            trimmed: None,
        }
    }

    /// The loop: one event, request or timeout per turn, then the startup check. Returns when the
    /// stop sender or every request sender is dropped.
    pub(super) fn run(
        mut self,
        events: Receiver<Event>,
        requests: Receiver<Request>,
        stop: Receiver<()>,
    ) {
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
            if self.dirty {
                self.publish();
            }
            self.announce_listed();
            let mut wake = next_pin_check;
            if !self.startup_done {
                wake = wake.min(self.startup_deadline);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => {
                        self.on_event(ev);
                        // The rest of a burst, so that it is merged once.
                        for ev in events.try_iter().take(MAX_EVENTS_PER_TURN) {
                            self.on_event(ev);
                        }
                    }
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
            // Before held requests are released: they route by the published table.
            if self.dirty {
                self.publish();
            }
            self.announce_listed();
            self.check_startup(Instant::now());
        }
    }

    fn on_event(&mut self, event: Event) {
        let conn = match &event {
            Event::Listed { conn, .. }
            | Event::Status { conn, .. }
            | Event::Notice { conn, .. } => *conn,
        };
        if self.servers.iter().all(|s| s.tools.conn.id() != conn) {
            // A connection added live can report before its AddServer is read (two channels):
            // keep its latest listing for when it joins.
            if matches!(event, Event::Listed { .. }) && self.early.len() < MAX_EARLY {
                self.early.insert(conn, event);
            }
            return;
        }
        match event {
            Event::Listed {
                conn,
                catalog,
                server_info,
                instructions,
            } => {
                let listing = Listing {
                    catalog,
                    server_info,
                    instructions,
                };
                let Some(idx) = self.servers.iter().position(|s| s.tools.conn.id() == conn) else {
                    return;
                };
                let server = &mut self.servers[idx];
                let first = !server.listed || server.restarted;
                server.restarted = false;
                // Its "ready" line waits for the turn's end, when its tools are judged.
                server.announce = !server.settled;
                server.settled = true;
                server.listed = true;
                server.tools.offered = listing.catalog.offered;
                if server.listing != listing || server.tools.is_empty() {
                    let changed = Changed::between(&server.listing, &listing);
                    server.listing = listing;
                    self.changed.add(changed);
                    self.judge_server(idx);
                    self.invalidate();
                }
                if first {
                    self.send_level(idx);
                    self.resubscribe(idx);
                }
            }
            Event::Notice { conn, notice } => self.on_notice(conn, notice),
            Event::Status { conn, status } => {
                let Some(idx) = self.servers.iter().position(|s| s.tools.conn.id() == conn) else {
                    return;
                };
                let server = &mut self.servers[idx];
                let first = !server.settled;
                match status {
                    // Stopped comes only at shutdown: the view stays as it is, unannounced.
                    Status::Unhealthy | Status::Restarting => {
                        server.settled = true;
                        server.restarted = true;
                    }
                    Status::Stopped => server.settled = true,
                    Status::Failed => {
                        server.settled = true;
                        if !server.tools.is_empty() {
                            server.tools.clear();
                            server.listing = Listing::default();
                            self.changed.add(Changed::ALL);
                            self.invalidate();
                        }
                    }
                    Status::Starting | Status::Healthy => {}
                }
                if first && self.servers.get(idx).is_some_and(|s| s.settled) {
                    self.note_settled(idx, Some(status));
                }
            }
        }
    }

    /// The "ready" lines of servers that listed for the first time this turn, now that their
    /// tools are judged.
    fn announce_listed(&mut self) {
        for idx in 0..self.servers.len() {
            if self.servers.get(idx).is_some_and(|s| s.announce) {
                if let Some(server) = self.servers.get_mut(idx) {
                    server.announce = false;
                }
                self.note_settled(idx, None);
            }
        }
    }

    /// One line per server when it first lists (`None`) or first fails (its status), with the
    /// time since the merger started; servers added to a running gate are logged by their
    /// connection only.
    fn note_settled(&self, idx: usize, failed: Option<Status>) {
        let Some(server) = self.servers.get(idx) else {
            return;
        };
        let (name, after) = (&server.tools.name, self.started.elapsed().as_secs_f64());
        if let Some(status) = failed {
            log::info!("server {name}: not ready after {after:.2} s ({status})");
            return;
        }
        let tools = &server.tools.tools;
        let served = tools.iter().filter(|t| t.blocked.is_none()).count();
        let held = match tools.len() - served {
            0 => String::new(),
            n => format!(" ({n} not served)"),
        };
        log::info!("server {name}: ready after {after:.2} s with {served} tools{held}");
    }

    fn on_request(&mut self, req: Request) {
        let holds = matches!(
            req,
            Request::List { .. }
                | Request::ReleaseWhenReady { .. }
                | Request::WhenReady { .. }
                | Request::Watch { .. }
                | Request::SetLevel { .. }
                | Request::Listen { .. }
                | Request::EndListen { .. }
        );
        if holds && !self.startup_done {
            if self.held.len() < MAX_HELD {
                self.held.push(req);
            } else if let Request::List { responder, .. }
            | Request::ReleaseWhenReady { responder, .. }
            | Request::WhenReady { responder, .. }
            | Request::Watch { responder, .. }
            | Request::SetLevel { responder, .. } = req
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
            Request::ReleaseWhenReady { responder, version } => self.release(responder, version),
            Request::WhenReady { responder, run } => run(responder),
            Request::Subscribe { sink, logs } => self.sessions.subscribe(sink, logs),
            Request::Watch {
                responder,
                uri,
                on,
                agent,
            } => self.watch(responder, uri, on, agent),
            Request::SetLevel { responder, level } => {
                self.sessions.add(responder.sink().clone());
                let wanted = self.sessions.set_level(responder.session(), level);
                // The servers are told before the agent hears back, so a message logged after
                // the answer is already at the new level.
                if wanted != self.log_level {
                    self.log_level = wanted;
                    for idx in 0..self.servers.len() {
                        self.send_level(idx);
                    }
                }
                responder.result("{}");
            }
            Request::AddServer(conn) => {
                let early = self.early.remove(&conn.id());
                if self.servers.iter().all(|s| s.tools.conn.id() != conn.id()) {
                    self.servers.push(Server {
                        tools: ServerTools::empty(conn.name().to_owned(), conn),
                        listing: Listing::default(),
                        settled: true,
                        listed: false,
                        restarted: false,
                        stale: false,
                        announce: false,
                    });
                    self.changed.add(Changed::ALL);
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
                    self.changed.add(Changed::ALL);
                    self.invalidate();
                }
            }
            Request::Unsubscribe { session } => {
                let gone = self.sessions.remove(session);
                self.tell_servers("resources/unsubscribe", gone);
                // The level follows the sessions that are left (a debug session that left no
                // longer keeps every server at debug).
                let wanted = self.sessions.most_verbose();
                if wanted.is_some() && wanted != self.log_level {
                    self.log_level = wanted;
                    for idx in 0..self.servers.len() {
                        self.send_level(idx);
                    }
                }
            }
            Request::Listen { sink, id, filter } => self.listen(sink, id, filter),
            Request::EndListen { session, id } => {
                let gone = self.sessions.end_listen(session, &id);
                self.tell_servers("resources/unsubscribe", gone);
            }
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
        log::info!(
            "workspace {}: {} of {} servers ready, {} tools, after {:.2} s",
            self.judge.workspace,
            self.servers.iter().filter(|s| s.listed).count(),
            self.servers.len(),
            crate::thread::read(&self.routes).callable(),
            self.started.elapsed().as_secs_f64()
        );
        for req in std::mem::take(&mut self.held) {
            self.on_request(req);
        }
    }
}

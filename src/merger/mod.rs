//! SchemaMerger: the thread that turns every connection's tool list into one merged view.
//!
//! Owns: the merger's public face ([`MergerHandle`], [`Merger`], [`MergerOptions`], the queue
//! capacities) and the thread's lifecycle. The parts, lowest first (each file imports only files
//! below it; none imports this one):
//! - `request.rs`: [`Request`], [`ViewKey`], [`Deferred`], [`MAX_HELD`], the gate's vocabulary.
//! - `resources.rs`: resources and templates across servers, sans-IO: the merge by URI and the
//!   routes of URIs ([`ResourceRoutes`]).
//! - `view.rs`: the merge itself, sans-IO (naming, collisions, pages, [`Routes`]).
//! - `judge.rs`: sanitize, pin and decide one server's listing (tools, prompts, resources).
//! - `sessions.rs`: the sessions told about list changes, resource updates and log messages.
//! - `cache.rs`: the LRU of merged views with timestamps, and [`CacheStats`].
//! - `state/`: the thread's loop and state (`mod.rs`: servers, startup gate, route publishing;
//!   `surface.rs`: capabilities, subscriptions, listens, log levels, notices).
//! - `bench.rs`: [`rebuild_for_bench`], the rebuild work without a thread, for `benches/gate.rs`.
//!
//! Never: blocks on a connection (it only sends them non-blocking commands) or on a session (sinks
//! are bounded and non-blocking); it never forwards a call.
//!
//! Threads: `merger`, spawned by [`Merger::spawn`]; its `JoinOnDrop` is held by [`Merger`], which
//! joins it on [`Merger::stop`] or drop. Channels in:
//! - connection `Event`s, bounded [`EVENT_QUEUE`], created by the caller (`gate::runtime`), whose
//!   senders the `ConnectionManager` and each connection hold; when all are gone the merger keeps
//!   answering from the view it has.
//! - [`Request`]s, bounded [`REQUEST_QUEUE`], created here; every [`MergerHandle`] clone holds a
//!   sender, and the thread ends once the last one is dropped. A full queue answers the agent with
//!   an error at once ([`MergerHandle::send`] never blocks).
//! - stop, bounded 1 and never sent on: [`Merger`] drops its sender (declared before the thread
//!   handle, so on every path the stop comes before the join) and the thread ends.
//!
//! Out: replies through `Responder`s and `Sink`s; the route table through a shared `RwLock`
//! ([`SharedRoutes`], swapped whole); readiness through an `AtomicBool`; cache counters through
//! [`CacheStats`] atomics.

mod bench;
mod cache;
mod judge;
mod request;
mod resources;
mod sessions;
mod state;
mod view;

#[doc(hidden)]
pub use bench::rebuild_for_bench;
pub use cache::CacheStats;
pub(crate) use judge::PROMPT_PIN;
pub use request::{Deferred, Request, ViewKey, MAX_HELD};
pub use resources::{Collision, ResourceRoute, ResourceRoutes};
pub(crate) use sessions::Filter;
pub use state::SharedRoutes;
pub use view::{Route, Routes};

use crate::config::Settings;
use crate::downstream::{ConnHandle, Event};
use crate::jsonrpc::code;
use crate::thread::{self, read, JoinOnDrop};
use crossbeam_channel::{Receiver, Sender};
use state::State;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Capacity of the gate → merger request queue.
pub const REQUEST_QUEUE: usize = 1024;
/// Capacity of the connections → merger event queue.
pub const EVENT_QUEUE: usize = 1024;

/// Where the merger keeps pins and how it names tools.
pub struct MergerOptions {
    /// The workspace the view belongs to (`default` in stdio mode).
    pub workspace: String,
    /// The pin store; `None` keeps pins in memory only (trust on first use for this run).
    pub pins: Option<crate::store::pins::PinStore>,
}

/// The gate's end of the merger: send requests, read routes.
#[derive(Clone, Debug)]
pub struct MergerHandle {
    tx: Sender<Request>,
    routes: SharedRoutes,
    ready: Arc<AtomicBool>,
    stats: Arc<CacheStats>,
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
            | Request::WhenReady { responder, .. }
            | Request::Watch { responder, .. }
            | Request::SetLevel { responder, .. } => responder,
            other @ (Request::Unsubscribe { .. }
            | Request::Listen { .. }
            | Request::EndListen { .. }
            | Request::Subscribe { .. }
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
        Arc::clone(&read(&self.routes))
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
        let MergerOptions { workspace, pins } = options;
        let state = State::new(
            settings,
            workspace,
            pins,
            conns,
            Arc::clone(&routes),
            Arc::clone(&ready),
            Arc::clone(&stats),
        );
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

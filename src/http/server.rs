//! The server: the `http-front` thread and the `http-worker-N` pool, started and stopped
//! together.
//!
//! Owns: binding the one listening socket (its error names the address), the two bounded
//! queues (complete requests to the workers, [`JOB_QUEUE`]; answers back to the front,
//! [`ANSWER_QUEUE`]), the workers (each takes a request, runs the [`Handler`] on it, isolated
//! from its panics, and goes back for the next: a handler that must wait for something hands
//! the request on instead of blocking), and the stop: draining (no new connections or
//! requests; the workers finish what they took), then stopping (answers still on their way get
//! a moment to go out).
//! Never: detaches a thread; leaves a request unanswered (a dropped request answers 500).
//!
//! Threads: `http-front` and `http-worker-0..n`, joined by [`Server::stop`] (or drop).

use super::conn::Timeouts;
use super::exchange::Request;
use super::front::{ConnLimits, Front, DRAINING, LISTENER, RUNNING, STOPPING, WAKER};
use super::wire::Limits;
use crate::thread::{self, JoinOnDrop};
use crossbeam_channel::Receiver;
use mio::{Interest, Poll, Waker};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Complete requests waiting for a worker; beyond, a request is answered 503 at once.
const JOB_QUEUE: usize = 1024;
/// Answers (and parts of streamed answers) waiting for the front.
const ANSWER_QUEUE: usize = 8192;

/// Answers requests. Called on worker threads, concurrently; must not block for long (a wait
/// for something slow hands the request to a thread that waits on many at once).
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers `request` (or hands it on); a request dropped unanswered gets a 500.
    fn handle(&self, request: Request);
}

/// How the server listens and what it allows.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Where to listen.
    pub(crate) listen: SocketAddr,
    /// Worker threads. Default 16.
    pub(crate) workers: usize,
    /// Connection limits.
    pub(crate) connections: ConnLimits,
    /// Size limits of a request.
    pub(crate) limits: Limits,
    /// Deadlines of a connection.
    pub(crate) timeouts: Timeouts,
}

/// A listening socket bound by [`Server::bind`], not served yet: a caller can bind first and
/// decide what to keep only once the address is its own.
pub(crate) struct Bound {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

/// A running server.
pub(crate) struct Server {
    addr: SocketAddr,
    phase: Arc<AtomicU8>,
    waker: Arc<Waker>,
    workers: Vec<JoinOnDrop<()>>,
    front: Option<JoinOnDrop<()>>,
}

impl Server {
    /// Binds `listen`; the error names the address (`cannot listen on 127.0.0.1:8787: Address
    /// already in use (os error 98)`).
    pub(crate) fn bind(listen: SocketAddr) -> io::Result<Bound> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"));
        let listener = std::net::TcpListener::bind(listen).map_err(named)?;
        let addr = listener.local_addr().map_err(named)?;
        Ok(Bound { listener, addr })
    }

    /// Starts serving `handler` on `bound` (from [`Server::bind`]).
    pub(crate) fn start(
        bound: Bound,
        config: &Config,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        let Bound {
            listener: std_listener,
            addr,
        } = bound;
        std_listener.set_nonblocking(true)?;
        let mut listener = mio::net::TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let phase = Arc::new(AtomicU8::new(RUNNING));
        let (job_tx, job_rx) = crossbeam_channel::bounded(JOB_QUEUE);
        let answers = crossbeam_channel::bounded(ANSWER_QUEUE);
        let mut workers = Vec::new();
        for idx in 0..config.workers.max(1) {
            let jobs = job_rx.clone();
            let handler = Arc::clone(&handler);
            workers.push(thread::spawn(format!("http-worker-{idx}"), move || {
                work(&jobs, &*handler)
            })?);
        }
        let front = Front::new(
            poll,
            listener,
            Arc::clone(&waker),
            Arc::clone(&phase),
            job_tx,
            answers,
            config.limits.clone(),
            config.connections,
            config.timeouts,
        );
        let front = thread::spawn("http-front", move || front.run())?;
        Ok(Server {
            addr,
            phase,
            waker,
            workers,
            front: Some(front),
        })
    }

    /// The address actually bound (a port of 0 becomes the one the OS chose).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops: no new connections or requests, the workers finish theirs and are joined, then
    /// the answers on their way get a moment to go out, and the front is joined.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(front) = self.front.take() else {
            return;
        };
        self.set_phase(DRAINING);
        for worker in self.workers.drain(..) {
            worker.join();
        }
        self.set_phase(STOPPING);
        front.join();
    }

    fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the HTTP front: {e}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A worker: requests until the queue closes (the front drops it when draining).
fn work(jobs: &Receiver<Request>, handler: &dyn Handler) {
    for request in jobs.iter() {
        // A panicking handler costs its request (answered 500 as it unwinds), not the worker.
        if catch_unwind(AssertUnwindSafe(|| handler.handle(request))).is_err() {
            log::error!("an HTTP handler panicked; its request was answered 500");
        }
    }
}

//! The HTTP front: a `tiny_http` server that survives hostile clients and accept errors.
//!
//! Owns: the listening socket, the `http-worker-N` threads that take requests from `tiny_http` and
//! hand each to a [`Handler`], read/write timeouts on every connection, and recovery of the
//! accept loop. `tiny_http` 0.12 ends its accept thread on the first accept error (EMFILE when
//! descriptors run out), reporting it once through `recv`, and its accept thread panics when
//! cloning an accepted socket fails the same way, reporting nothing. So two signals restart it: an
//! error from `recv`, and the `http-watchdog` seeing connections wait in the socket's accept queue
//! without being taken (Linux: `/proc/net/tcp`). A restart builds a new `tiny_http` server on a
//! clone of the same listening socket, with backoff, so the port keeps being served.
//! `tiny_http` listens on a private loopback socket; clients reach it only through the
//! [`super::admit`] relay, which bounds how many connections (so `tiny_http` pool threads) exist.
//! Never: calls `tiny_http::Server::num_connections` (unimplemented in 0.12); never leaves a
//! request unanswered on purpose (a dropped `tiny_http::Request` answers 500).
//!
//! Threads: `http-worker-0..n`, `http-watchdog` and `http-admit` (joined by [`Front::stop`]), plus
//! `tiny_http`'s own accept thread and connection pool, which belong to `tiny_http`. Shutdown: set
//! the stop flag, `unblock` once per worker, join the workers, then stop the admission (so the
//! last answers still reach their clients).
//!
//! Timeouts: the private socket's read and write timeouts (inherited by every connection
//! `tiny_http` accepts) close a connection whose client sends or reads nothing for that long; the
//! relay then closes the client's side.

use super::admit::{Admission, Limits};
use crate::thread::{self, JoinOnDrop};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How the front treats connections.
#[derive(Clone, Debug)]
pub(crate) struct FrontConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Threads taking requests. Default 8.
    pub workers: usize,
    /// Read and write timeout of every connection. Default 15 s.
    pub io_timeout: Duration,
    /// Connections open at once, in all. Default 256.
    pub max_connections: usize,
    /// Connections open at once from one IP address. Default 64.
    pub max_per_peer: usize,
}

/// Answers one request. Called on worker threads, concurrently.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Must answer (`request.respond(...)`); a request dropped unanswered gets a 500.
    fn handle(&self, request: tiny_http::Request);
}

/// A running front; [`Front::stop`] (or drop) stops and joins its workers.
pub(crate) struct Front {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    server: Arc<RwLock<Arc<tiny_http::Server>>>,
    workers: Vec<JoinOnDrop<()>>,
    admission: Admission,
}

impl Front {
    /// Binds and starts serving `handler`.
    pub(crate) fn start(config: &FrontConfig, handler: Arc<dyn Handler>) -> io::Result<Front> {
        let public = TcpListener::bind(config.listen)?;
        let addr = public.local_addr()?;
        // tiny_http's own socket: only the admission thread connects to it.
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        set_timeouts(&listener, config.io_timeout)?;
        let private = listener.local_addr()?;
        let server = Arc::new(RwLock::new(Arc::new(serve_on(&listener)?)));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = Arc::new(listener);
        let mut workers = Vec::new();
        let accept = Accept {
            server: Arc::clone(&server),
            listener: Arc::clone(&listener),
            stop: Arc::clone(&stop),
        };
        for idx in 0..config.workers.max(1) {
            let worker = Worker {
                accept: accept.clone(),
                handler: Arc::clone(&handler),
            };
            workers.push(thread::spawn(format!("http-worker-{idx}"), move || {
                worker.run()
            })?);
        }
        let port = private.port();
        workers.push(thread::spawn("http-watchdog", move || {
            watchdog(&accept, port)
        })?);
        let limits = Limits {
            max_connections: config.max_connections.max(1),
            max_per_peer: config.max_per_peer.max(1),
            connect_timeout: config.io_timeout,
        };
        let admission = Admission::start(public, private, limits)?;
        Ok(Front {
            addr,
            stop,
            server,
            workers,
            admission,
        })
    }

    /// The address actually bound (a port of 0 becomes the one the OS chose).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and joins the workers (requests being handled finish first).
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let server = current(&self.server);
        for _ in 0..self.workers.len() {
            server.unblock();
        }
        for worker in self.workers.drain(..) {
            worker.join();
        }
        // After the workers: their last answers still pass through the relay.
        self.admission.stop();
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn current(server: &RwLock<Arc<tiny_http::Server>>) -> Arc<tiny_http::Server> {
    match server.read() {
        Ok(s) => Arc::clone(&s),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

fn serve_on(listener: &TcpListener) -> io::Result<tiny_http::Server> {
    let clone = listener.try_clone()?;
    tiny_http::Server::from_listener(clone, None).map_err(|e| io::Error::other(e.to_string()))
}

/// Accepted sockets inherit the listening socket's timeouts (Linux copies them on accept), so a
/// client that sends nothing, or reads nothing, releases its thread when they expire.
fn set_timeouts(listener: &TcpListener, timeout: Duration) -> io::Result<()> {
    crate::sys::set_socket_timeouts(listener.as_raw_fd(), timeout)
}

/// What restarting the accept loop needs; shared by the workers and the watchdog.
#[derive(Clone)]
struct Accept {
    server: Arc<RwLock<Arc<tiny_http::Server>>>,
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
}

impl Accept {
    /// Builds a new `tiny_http` server on the same socket, retrying while descriptors are short.
    fn restart(&self, failed: &Arc<tiny_http::Server>) {
        let mut delay = Duration::from_millis(50);
        while !self.stop.load(Ordering::SeqCst) {
            let mut slot = match self.server.write() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !Arc::ptr_eq(&slot, failed) {
                return; // Restarted already.
            }
            match serve_on(&self.listener) {
                Ok(fresh) => {
                    *slot = Arc::new(fresh);
                    log::info!("HTTP accept loop restarted");
                    return;
                }
                Err(e) => {
                    drop(slot);
                    log::warn!("cannot restart the HTTP accept loop yet: {e}");
                    // Descriptors are short; nothing to wait on but time. Bounded backoff.
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Restarts the accept loop when connections sit in the accept queue and nobody takes them.
fn watchdog(accept: &Accept, port: u16) {
    const TICK: Duration = Duration::from_millis(500);
    let mut previous = 0;
    while !accept.stop.load(Ordering::SeqCst) {
        // A tick of a watchdog: there is no event for "nobody accepts".
        std::thread::sleep(TICK);
        let waiting = accept_queue(port).unwrap_or(0);
        if waiting > 0 && previous > 0 && waiting >= previous {
            log::error!(
                "the HTTP accept loop stopped ({waiting} connections wait); starting a new one"
            );
            let failed = current(&accept.server);
            accept.restart(&failed);
            previous = 0;
        } else {
            previous = waiting;
        }
    }
}

/// Connections waiting in the accept queue of the listening socket on `port` (Linux).
fn accept_queue(port: u16) -> Option<u64> {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local = fields.get(1)?;
                let state = fields.get(3)?;
                if *state != "0A" || !local.ends_with(&wanted) {
                    return None;
                }
                let rx = fields.get(4)?.split(':').nth(1)?;
                u64::from_str_radix(rx, 16).ok()
            })
        })
}

struct Worker {
    accept: Accept,
    handler: Arc<dyn Handler>,
}

impl Worker {
    fn run(self) {
        const POLL: Duration = Duration::from_millis(500);
        while !self.accept.stop.load(Ordering::SeqCst) {
            let server = current(&self.accept.server);
            match server.recv_timeout(POLL) {
                Ok(Some(request)) => self.handler.handle(request),
                Ok(None) => {}
                Err(e) => {
                    log::error!("the HTTP accept loop stopped ({e}); starting a new one");
                    self.accept.restart(&server);
                }
            }
        }
    }
}

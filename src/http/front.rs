//! The `http-front` thread: the one listening socket and every client connection, driven by one
//! `mio::Poll`.
//!
//! Owns: accepting (with the limits on connections in all and per client address: over either,
//! an immediate 503 and the socket lingers a moment, or, with [`MAX_LINGERING`] refusals still
//! lingering, a close without an answer; an accept error pauses accepting, it never
//! ends the loop), each connection's reads, parse and writes ([`super::conn`]), the deadlines
//! (head, body, keep-alive, write), handing complete requests to the workers (a full queue is
//! answered 503 at once), and writing the handlers' answers, which come back through one
//! bounded queue and a `mio::Waker`.
//! Never: blocks on a socket or on a queue (the job queue is `try_send`; the answer queue is only
//! read here); runs a handler; listens on anything but the configured address.

use super::conn::{Conn, Next, Timeouts, LINGER};
use super::exchange::{ConnId, Out, Request};
use super::wire::Limits;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(1);
/// Connection tokens are `FIRST + slot`; lingering refusals count down from `usize::MAX`.
const FIRST: usize = 2;
/// Refused connections kept at once while their 503 goes out.
const MAX_LINGERING: usize = 256;
/// How long accepting pauses after an accept error (descriptors ran out).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one log line per this about refused connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a stop waits for answers on their way out.
const STOP_DRAIN: Duration = Duration::from_secs(1);
/// Bytes all connections together may hold of request bodies not yet complete (before anything
/// is authenticated), at least two bodies of the largest size: past it, a connection that would
/// read more of a body is answered 503 (retry).
const BODY_BUDGET: usize = 64 * 1024 * 1024;

/// The server's phase, shared with [`super::Server`].
pub(super) const RUNNING: u8 = 0;
/// No new connections or requests; answers in progress finish.
pub(super) const DRAINING: u8 = 1;
/// Write what is left (at most [`STOP_DRAIN`]) and end.
pub(super) const STOPPING: u8 = 2;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    /// Connections open at once, in all. Default 256.
    pub(crate) max_connections: usize,
    /// Connections open at once from one IP address. Default 64.
    pub(crate) max_per_peer: usize,
}

/// What an event says about a connection.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// An error on the socket (the client reset it).
    reset: bool,
}

/// A refused connection whose 503 is going out.
struct Lingering {
    stream: TcpStream,
    until: Instant,
}

pub(super) struct Front {
    pub(super) poll: Poll,
    pub(super) listener: Option<TcpListener>,
    pub(super) waker: Arc<Waker>,
    pub(super) phase: Arc<AtomicU8>,
    pub(super) jobs: Option<Sender<Request>>,
    pub(super) answers: Receiver<Out>,
    pub(super) answer_tx: Sender<Out>,
    pub(super) limits: Limits,
    pub(super) conn_limits: ConnLimits,
    pub(super) timeouts: Timeouts,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    generation: u64,
    per_peer: HashMap<IpAddr, usize>,
    lingering: HashMap<usize, Lingering>,
    next_linger: usize,
    paused_until: Option<Instant>,
    refused: u64,
    refusal_logged: Option<Instant>,
}

impl Front {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        poll: Poll,
        listener: TcpListener,
        waker: Arc<Waker>,
        phase: Arc<AtomicU8>,
        jobs: Sender<Request>,
        (answer_tx, answers): (Sender<Out>, Receiver<Out>),
        limits: Limits,
        conn_limits: ConnLimits,
        timeouts: Timeouts,
    ) -> Front {
        Front {
            poll,
            listener: Some(listener),
            waker,
            phase,
            jobs: Some(jobs),
            answers,
            answer_tx,
            limits,
            conn_limits,
            timeouts,
            conns: Vec::new(),
            free: Vec::new(),
            generation: 0,
            per_peer: HashMap::new(),
            lingering: HashMap::new(),
            next_linger: 0,
            paused_until: None,
            refused: 0,
            refusal_logged: None,
        }
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut drain_until: Option<Instant> = None;
        loop {
            let phase = self.phase.load(Ordering::SeqCst);
            if phase >= DRAINING && self.listener.is_some() {
                self.begin_drain();
            }
            if phase == STOPPING {
                // Answers sent since the last look are written before the check.
                self.take_answers();
                let until = *drain_until.get_or_insert_with(|| Instant::now() + STOP_DRAIN);
                let pending = self.conns.iter().flatten().any(Conn::has_output);
                if !pending || Instant::now() >= until {
                    break;
                }
            }
            let wait = self.next_wake();
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("the HTTP front cannot poll ({e}); stopping it");
                    break;
                }
            }
            for event in events.iter() {
                let readiness = Readiness {
                    readable: event.is_readable() || event.is_read_closed(),
                    writable: event.is_writable(),
                    reset: event.is_error(),
                };
                self.on_event(event.token(), readiness);
            }
            self.take_answers();
            self.on_time();
        }
        for slot in 0..self.conns.len() {
            self.close(slot);
        }
    }

    /// Stops accepting and reading new requests: the listener closes, idle connections close,
    /// the workers' queue closes (they finish what they have).
    fn begin_drain(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.jobs = None;
        let idle: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().filter(|c| c.is_idle()).map(|_| slot))
            .collect();
        for slot in idle {
            self.close(slot);
        }
    }

    /// The longest the loop may sleep: until the next deadline, at most 1 s.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        if let Some(at) = self.paused_until {
            wake = wake.min(at);
        }
        for conn in self.conns.iter().flatten() {
            wake = wake.min(conn.deadline(&self.timeouts));
        }
        if let Some(until) = self.lingering.values().map(|r| r.until).min() {
            wake = wake.min(until);
        }
        wake.saturating_duration_since(now)
    }

    fn on_event(&mut self, token: Token, readiness: Readiness) {
        match token {
            LISTENER => {
                if self.paused_until.is_none() {
                    self.accept_all();
                }
            }
            WAKER => {}
            Token(t) if t >= FIRST && t - FIRST < self.conns.len() => {
                let slot = t - FIRST;
                if readiness.reset {
                    // The client reset the connection: nothing more can reach it.
                    return self.close(slot);
                }
                if readiness.writable {
                    self.step(slot, |c, l, t| c.on_writable(l, t));
                }
                if readiness.readable {
                    let allowance = self.body_allowance(slot);
                    self.step(slot, |c, l, t| c.on_readable(l, t, allowance));
                }
            }
            Token(t) => self.drain_lingering(t),
        }
    }

    /// What the budget for bodies in flight leaves connection `slot` (whose own buffers count
    /// as free: they are its already).
    fn body_allowance(&self, slot: usize) -> usize {
        // A connection reading a head needs only a head's room, which the budget never takes;
        // only one reading a body looks at the others (not on every request's first read).
        let Some(own) = self.conns.get(slot).and_then(Option::as_ref) else {
            return usize::MAX;
        };
        if !own.reads_body() {
            return usize::MAX;
        }
        let budget = BODY_BUDGET.max(self.limits.max_body.saturating_mul(2));
        let held: usize = self
            .conns
            .iter()
            .flatten()
            .fold(0usize, |sum, c| sum.saturating_add(c.body_held()));
        budget.saturating_sub(held)
    }

    /// Runs `f` on a connection and carries out what it asks.
    fn step(&mut self, slot: usize, f: impl FnOnce(&mut Conn, &Limits, &Timeouts) -> Next) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let next = f(conn, &self.limits, &self.timeouts);
        self.carry_out(slot, next);
    }

    fn carry_out(&mut self, slot: usize, next: Next) {
        match next {
            Next::Wait => {}
            Next::Close => self.close(slot),
            Next::Dispatch(head, body) => self.dispatch(slot, *head, body),
        }
    }

    /// Hands a complete request to the workers; a full queue (or a draining server) answers 503.
    fn dispatch(&mut self, slot: usize, head: super::wire::Head, body: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let line = conn.line(&self.answer_tx, &self.waker);
        let request = Request::new(head, body, conn.peer, line);
        let refused = match &self.jobs {
            None => Some((request, "the gate is stopping")),
            Some(jobs) => match jobs.try_send(request) {
                Ok(()) => None,
                Err(TrySendError::Full(request)) => Some((request, "the gate is busy")),
                Err(TrySendError::Disconnected(request)) => Some((request, "the gate is stopping")),
            },
        };
        if let Some((request, why)) = refused {
            request.disarm();
            let next =
                conn.refuse_status(503, "unavailable", &format!("{why}; try again later"), true);
            self.carry_out(slot, next);
        }
    }

    /// Every answer the handlers sent since the last look.
    fn take_answers(&mut self) {
        while let Ok(out) = self.answers.try_recv() {
            let ConnId { slot, generation } = out.conn;
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if conn.id.generation != generation {
                continue; // For a connection that closed since.
            }
            let next = conn.on_answer(out.what, &self.limits, &self.timeouts);
            self.carry_out(slot, next);
        }
    }

    fn on_time(&mut self) {
        let now = Instant::now();
        if self.paused_until.is_some_and(|at| at <= now) {
            self.paused_until = None;
            // Readiness is edge-triggered: connections that queued meanwhile raise no new event.
            self.accept_all();
        }
        self.lingering.retain(|_, r| r.until > now);
        let timeouts = self.timeouts;
        let due: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| {
                c.as_ref()
                    .filter(|c| c.deadline(&timeouts) <= now)
                    .map(|_| slot)
            })
            .collect();
        for slot in due {
            self.step(slot, |c, _, t| c.on_deadline(now, t));
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    log::error!(
                        "cannot accept an HTTP connection ({e}); trying again in {} ms",
                        ACCEPT_PAUSE.as_millis()
                    );
                    self.paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let open = self.conns.len() - self.free.len();
        let from_peer = self.per_peer.get(&peer.ip()).copied().unwrap_or(0);
        // Connections already accepted are never dropped to make room, idle or not: a client
        // keeps what it holds within the keep-alive time; the newcomer is refused.
        if open >= self.conn_limits.max_connections {
            return self.refuse(stream, "the gate has too many open connections");
        }
        if from_peer >= self.conn_limits.max_per_peer {
            return self.refuse(stream, "too many open connections from your address");
        }
        // Answers go out as they are written: no 40 ms wait for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(FIRST + slot), interest)
        {
            log::error!("the HTTP front cannot watch a connection: {e}");
            self.free.push(slot);
            return;
        }
        self.generation += 1;
        let id = ConnId {
            slot,
            generation: self.generation,
        };
        if let Some(place) = self.conns.get_mut(slot) {
            *place = Some(Conn::new(stream, peer, id));
        }
        *self.per_peer.entry(peer.ip()).or_insert(0) += 1;
        // Bytes may have come with the connection: edge-triggered readiness reports them once.
        self.step(slot, |c, l, t| c.on_readable(l, t, usize::MAX));
    }

    fn close(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        conn.closed.store(true, Ordering::SeqCst);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let ip = conn.peer.ip();
        if let Some(count) = self.per_peer.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&ip);
            }
        }
        self.free.push(slot);
    }

    /// Answers 503 at once, then drains what the client sends for a moment before closing:
    /// closing a socket with unread input resets it, and the reset can destroy the answer.
    fn refuse(&mut self, mut stream: TcpStream, why: &str) {
        self.note_refusal(why);
        if self.lingering.len() >= MAX_LINGERING {
            return; // Closed unanswered: the bound matters more than the courtesy.
        }
        let body = format!(
            "{{\"error\":{{\"code\":\"too_many_connections\",\"message\":\"{why}; try again later\"}}}}\n"
        );
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // A fresh socket's send buffer holds this small answer; if not, the client gets less.
        let _ = stream.write(answer.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let token = self.linger_token();
        if self
            .poll
            .registry()
            .register(&mut stream, Token(token), Interest::READABLE)
            .is_ok()
        {
            self.lingering.insert(
                token,
                Lingering {
                    stream,
                    until: Instant::now() + LINGER,
                },
            );
        }
    }

    /// A token no lingering refusal has (there are at most [`MAX_LINGERING`], so one is found).
    fn linger_token(&mut self) -> usize {
        loop {
            self.next_linger = (self.next_linger + 1) % (MAX_LINGERING * 2);
            let token = usize::MAX - self.next_linger;
            if !self.lingering.contains_key(&token) {
                return token;
            }
        }
    }

    fn note_refusal(&mut self, why: &str) {
        self.refused += 1;
        let now = Instant::now();
        if self
            .refusal_logged
            .is_none_or(|at| now - at >= REFUSAL_LOG_EVERY)
        {
            log::warn!(
                "refused {} HTTP connection(s): {why} (limits: {} in all, {} per address)",
                self.refused,
                self.conn_limits.max_connections,
                self.conn_limits.max_per_peer
            );
            self.refused = 0;
            self.refusal_logged = Some(now);
        }
    }

    fn drain_lingering(&mut self, token: usize) {
        let Some(lingering) = self.lingering.get_mut(&token) else {
            return;
        };
        let mut sink = [0u8; 1024];
        loop {
            match std::io::Read::read(&mut lingering.stream, &mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if let Some(mut done) = self.lingering.remove(&token) {
            let _ = self.poll.registry().deregister(&mut done.stream);
        }
    }
}

/// Accept errors about one connection (it went away before we took it), not about the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

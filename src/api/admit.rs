//! Admission: the public listening socket and the bound on concurrent HTTP connections.
//!
//! Owns: the socket clients connect to, the `http-admit` thread, and every admitted connection's
//! [`Pair`]. `tiny_http` gives each connection a thread for as long as the connection lives and
//! has no limit, so it never sees the public socket: it listens on a private loopback socket, and
//! this thread accepts on the public one (mio), refuses a connection over the total or per-peer
//! limit with an immediate 503, and relays the admitted ones to the private socket (a finished
//! one lingers a moment, its input discarded, so its last answer is not reset away). So at most
//! `max_connections` connections, and so `tiny_http` threads, exist at once, whatever clients do.
//! An accept error (descriptors run out) pauses accepting for a moment; it never ends the loop.
//! Never: blocks (every socket is non-blocking); parses HTTP; keeps more than a bounded number of
//! closing connections (each is drained for at most [`LINGER`], then closed).
//!
//! Threads: `http-admit`, stopped through a [`mio::Waker`] and joined by [`Admission::stop`].

use super::relay::Pair;
use crate::thread::{self, JoinOnDrop};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many connections may be open at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// In all. Default 256.
    pub(crate) max_connections: usize,
    /// From one IP address. Default 64.
    pub(crate) max_per_peer: usize,
    /// How long the relay's connect to the private socket may take, and how long a connection
    /// may make no progress while bytes wait. The front's I/O timeout.
    pub(crate) connect_timeout: Duration,
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Tokens from here are pairs: `FIRST + 2 * slot` the client, `+ 1` our side.
const FIRST: usize = 2;
/// Connections kept at once while their last answer goes out (a refusal's 503, or the end of a
/// relayed connection); more are closed at once.
const MAX_LINGERING: usize = 256;
/// How long such a connection's input is drained: closing a socket with unread input resets it,
/// and the reset can destroy the answer still on its way.
const LINGER: Duration = Duration::from_secs(1);
/// How long accepting pauses after an accept error.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a stop waits for answers already written by `tiny_http` to reach their clients.
const STOP_DRAIN: Duration = Duration::from_secs(1);
/// At most one log line per this about refused connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The running `http-admit` thread.
pub(crate) struct Admission {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinOnDrop<()>>,
}

impl Admission {
    /// Starts admitting from `public` into `private` (the `tiny_http` listener's address).
    pub(crate) fn start(
        public: std::net::TcpListener,
        private: SocketAddr,
        limits: Limits,
    ) -> io::Result<Admission> {
        public.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(public);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut admit = Admit {
            poll,
            listener,
            private,
            limits,
            slots: Vec::new(),
            free: Vec::new(),
            per_peer: HashMap::new(),
            lingering: HashMap::new(),
            next_linger: 0,
            paused_until: None,
            refused: 0,
            refusal_logged: None,
            stop: Arc::clone(&stop),
        };
        let thread = thread::spawn("http-admit", move || admit.run())?;
        Ok(Admission {
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// Stops accepting, gives answers in flight [`STOP_DRAIN`] to reach clients, closes all, joins.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the HTTP admission thread: {e}");
        }
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client connection whose last answer is going out: its input is drained, then it closes.
struct Lingering {
    stream: TcpStream,
    until: Instant,
}

struct Admit {
    poll: Poll,
    listener: TcpListener,
    private: SocketAddr,
    limits: Limits,
    slots: Vec<Option<Pair>>,
    free: Vec<usize>,
    per_peer: HashMap<IpAddr, usize>,
    /// Lingering clients by token (just below `usize::MAX`, far from the pairs').
    lingering: HashMap<usize, Lingering>,
    next_linger: usize,
    paused_until: Option<Instant>,
    refused: u64,
    refusal_logged: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Admit {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.poll.poll(&mut events, Some(self.next_wake())) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("HTTP admission cannot poll ({e}); stopping it");
                    break;
                }
            }
            for event in events.iter() {
                self.on_event(event.token());
            }
            self.on_time();
        }
        self.drain_before_stop(&mut events);
    }

    /// The longest the loop may sleep: until the next deadline it must act on, at most 1 s.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        if let Some(at) = self.paused_until {
            wake = wake.min(at);
        }
        if let Some(until) = self.lingering.values().map(|r| r.until).min() {
            wake = wake.min(until);
        }
        wake.saturating_duration_since(now)
    }

    fn on_event(&mut self, token: Token) {
        match token {
            LISTENER => {
                if self.paused_until.is_none() {
                    self.accept_all();
                }
            }
            WAKER => {}
            Token(t) if t >= FIRST && (t - FIRST) / 2 < self.slots.len() => {
                self.pump((t - FIRST) / 2);
            }
            Token(t) => self.drain_lingering(t),
        }
    }

    /// Deadlines: accepting again after a pause, lingering clients done, connects too slow,
    /// connections stuck with bytes waiting.
    fn on_time(&mut self) {
        let now = Instant::now();
        if self.paused_until.is_some_and(|at| at <= now) {
            self.paused_until = None;
            // Readiness is edge-triggered: connections that queued meanwhile raise no new event.
            self.accept_all();
        }
        self.lingering.retain(|_, r| r.until > now);
        let late: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, pair)| {
                let pair = pair.as_ref()?;
                let late = !pair.connected() && now - pair.since > self.limits.connect_timeout;
                (late || pair.stalled(self.limits.connect_timeout)).then_some(slot)
            })
            .collect();
        for slot in late {
            log::warn!("HTTP admission: a connection made no progress in time; closed");
            self.close(slot);
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer.ip()),
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

    fn admit(&mut self, stream: TcpStream, peer: IpAddr) {
        let open = self.slots.len() - self.free.len();
        let from_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
        if open >= self.limits.max_connections {
            return self.refuse(stream, "the gate has too many open connections");
        }
        if from_peer >= self.limits.max_per_peer {
            return self.refuse(stream, "too many open connections from your address");
        }
        let inner = match TcpStream::connect(self.private) {
            Ok(inner) => inner,
            Err(e) => {
                log::error!("HTTP admission cannot reach the private listener: {e}");
                return self.refuse(stream, "the gate cannot take the connection now");
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let mut pair = Pair::new(stream, inner, peer);
        if let Err(e) = register(self.poll.registry(), &mut pair, slot) {
            log::error!("HTTP admission cannot watch a connection: {e}");
            self.free.push(slot);
            return;
        }
        self.slots[slot] = Some(pair);
        *self.per_peer.entry(peer).or_insert(0) += 1;
        self.pump(slot);
    }

    fn pump(&mut self, slot: usize) {
        let Some(pair) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match pair.pump() {
            Ok(false) => {}
            // The server side ended and all its bytes went to the client (whose side is shut
            // for writing): let the client read them before the socket closes.
            Ok(true) => {
                if let Some(client) = self.close(slot) {
                    self.linger(client);
                }
            }
            Err(e) => {
                log::debug!("HTTP connection from {} ended: {e}", pair.peer);
                self.close(slot);
            }
        }
    }

    /// Frees the slot; returns the client's socket (dropping it closes it).
    fn close(&mut self, slot: usize) -> Option<TcpStream> {
        let mut pair = self.slots.get_mut(slot).and_then(Option::take)?;
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut pair.client);
        let _ = registry.deregister(&mut pair.inner);
        if let Some(count) = self.per_peer.get_mut(&pair.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&pair.peer);
            }
        }
        self.free.push(slot);
        Some(pair.client)
    }

    /// Answers 503 at once, then drains what the client sends for a moment before closing:
    /// closing a socket with unread input resets it, and the reset can destroy the answer.
    fn refuse(&mut self, mut stream: TcpStream, why: &str) {
        self.note_refusal(why);
        if self.lingering.len() >= MAX_LINGERING {
            return; // Dropped: closed unanswered; the bound matters more than the courtesy.
        }
        let body = format!(
            "{{\"error\":{{\"code\":\"too_many_connections\",\"message\":\"{why}; try again later\"}}}}"
        );
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // A fresh socket's send buffer holds this small answer; if not, the client gets less.
        let _ = stream.write(answer.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        self.linger(stream);
    }

    /// Keeps `stream` (already shut for writing) for at most [`LINGER`], discarding its input,
    /// so that closing it sends a FIN after the answer rather than a reset.
    fn linger(&mut self, mut stream: TcpStream) {
        if self.lingering.len() >= MAX_LINGERING {
            return; // Dropped: closed now; the bound matters more than the courtesy.
        }
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

    /// A token no lingering client has (there are at most [`MAX_LINGERING`], so one is found).
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
                self.limits.max_connections,
                self.limits.max_per_peer
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
            match lingering.stream.read(&mut sink) {
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

    /// After a stop: `tiny_http`'s workers have finished, so what is left are answers on their
    /// way out. Relay them until none is left or [`STOP_DRAIN`] passes, then close everything.
    fn drain_before_stop(&mut self, events: &mut Events) {
        let deadline = Instant::now() + STOP_DRAIN;
        while Instant::now() < deadline {
            let pending = self.slots.iter().flatten().any(|p| p.has_pending_output());
            let wait = Duration::from_millis(50).min(deadline - Instant::now());
            if self.poll.poll(events, Some(wait)).is_err() {
                break;
            }
            if events.is_empty() && !pending {
                break;
            }
            let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
            for token in tokens {
                if token.0 >= FIRST && (token.0 - FIRST) / 2 < self.slots.len() {
                    self.pump((token.0 - FIRST) / 2);
                }
            }
        }
    }
}

fn register(registry: &Registry, pair: &mut Pair, slot: usize) -> io::Result<()> {
    let both = Interest::READABLE | Interest::WRITABLE;
    registry.register(&mut pair.client, Token(FIRST + 2 * slot), both)?;
    if let Err(e) = registry.register(&mut pair.inner, Token(FIRST + 2 * slot + 1), both) {
        let _ = registry.deregister(&mut pair.client);
        return Err(e);
    }
    Ok(())
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

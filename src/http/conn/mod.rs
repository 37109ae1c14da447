//! One client connection of the front: its buffers and where it stands in the request cycle
//! (reading a head, reading a body, answered by a handler, closing).
//!
//! Owns: the connection's input (while a head is read, at most `max_head` bytes; while a body is
//! read, at most `max_body + max_head` bytes not yet decoded, besides the decoded body of at most
//! `max_body`; more is never read), its output (the answer's bytes, with at most [`BACKLOG`] of a stream's parts
//! waiting for a client that reads slowly), its deadlines, and the shutdown of a finished
//! connection (its input drained for [`LINGER`] so the last answer is not lost to a reset).
//! Never: blocks (the socket is non-blocking); parses a head again for each byte that dribbles
//! in (only when a line ends, or when a line or the head passes its limit); keeps memory past a
//! request (buffers shrink back).

mod output;

use super::exchange::{ConnId, Line, What};
use super::wire::{self, BodyReader, Framing, Head, HeadError, Limits};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream's parts waiting for a client that does not read: past this the connection closes.
pub(super) const BACKLOG: usize = 1024 * 1024;
/// How long a finished connection's input is drained before it closes.
pub(super) const LINGER: Duration = Duration::from_secs(1);
/// What a buffer shrinks back to after a request.
const KEEP: usize = 16 * 1024;
/// One read at most.
const READ_CHUNK: usize = 16 * 1024;

/// The front's timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// From a request's first byte to the end of its head. Default 10 s.
    pub(crate) head: Duration,
    /// From the end of a head to the end of its body. Default 30 s.
    pub(crate) body: Duration,
    /// Between requests on a kept-alive connection. Default 60 s.
    pub(crate) keep_alive: Duration,
    /// No progress: a started request whose bytes stop coming, or an answer the client does
    /// not read, for this long. Default 15 s (`serve --io-timeout-ms`).
    pub(crate) io: Duration,
}

/// Where a connection stands.
enum Phase {
    /// Waiting for (the rest of) a head; `started` is when its first byte came.
    Head {
        idle_since: Instant,
        started: Option<Instant>,
    },
    /// Reading the body of `head`.
    Body {
        head: Box<Head>,
        reader: BodyReader,
        body: Vec<u8>,
        deadline: Instant,
    },
    /// A handler has the request; the answer is coming (`end`: it has all come, and the
    /// connection closes afterwards or not).
    Answering { end: Option<bool> },
    /// Done: output flushed and shut, input drained until the deadline.
    Closing { until: Instant },
}

/// What the front should do with a connection after an event.
pub(super) enum Next {
    /// Nothing more now.
    Wait,
    /// A complete request to hand to a worker.
    Dispatch(Box<Head>, Vec<u8>),
    /// Close the socket now.
    Close,
}

/// One connection.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) id: ConnId,
    pub(super) closed: Arc<AtomicBool>,
    /// Set when the client hangs up (its side of the socket ends) while a request of it is
    /// answered; see [`Line`](super::exchange::Line).
    hung_up: Arc<AtomicBool>,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    phase: Phase,
    /// The socket had input we did not read yet (a request was being answered).
    unread: bool,
    /// The client shut its side.
    eof: bool,
    /// How much of the input the last parse of an unfinished head saw.
    scanned: usize,
    last_write: Instant,
    last_read: Instant,
    /// Whether a request was answered on this connection (until then, its first byte is due
    /// within the head deadline, not the keep-alive time).
    served: bool,
    /// How long the input is drained after the last answer: [`LINGER`], or the body's deadline
    /// when a body was left unread (the client may still be sending it, and a close with its
    /// bytes unread would reset the connection and lose the answer).
    linger: Duration,
}

impl Conn {
    pub(super) fn new(stream: TcpStream, peer: SocketAddr, id: ConnId) -> Conn {
        let now = Instant::now();
        Conn {
            stream,
            peer,
            id,
            closed: Arc::new(AtomicBool::new(false)),
            hung_up: Arc::new(AtomicBool::new(false)),
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            phase: Phase::Head {
                idle_since: now,
                started: None,
            },
            unread: false,
            eof: false,
            scanned: 0,
            last_write: now,
            last_read: now,
            served: false,
            linger: LINGER,
        }
    }

    /// The reply line a request of this connection answers through.
    pub(super) fn line(
        &self,
        out: &crossbeam_channel::Sender<super::exchange::Out>,
        waker: &Arc<mio::Waker>,
    ) -> Line {
        // A client that ended its side right after its request (no more input, none waiting)
        // has hung up already: no later event will say so.
        if self.eof && self.input.is_empty() {
            self.hung_up.store(true, Ordering::SeqCst);
        }
        Line {
            conn: self.id,
            out: out.clone(),
            waker: Arc::clone(waker),
            closed: Arc::clone(&self.closed),
            hung_up: Arc::clone(&self.hung_up),
        }
    }

    /// Whether the connection is between requests with nothing buffered (a drain closes those).
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head { started: None, .. }) && self.input.is_empty()
    }

    /// Whether an answer is still being written.
    pub(super) fn has_output(&self) -> bool {
        self.written < self.output.len()
    }

    /// The socket is readable: reads what the phase may take (within `allowance`, what the
    /// front's budget for bodies in flight leaves) and moves on.
    pub(super) fn on_readable(
        &mut self,
        limits: &Limits,
        timeouts: &Timeouts,
        allowance: usize,
    ) -> Next {
        match self.phase {
            Phase::Answering { .. } => {
                // Not now: the next request waits until this one is answered.
                self.unread = true;
                self.look_for_hang_up();
                Next::Wait
            }
            Phase::Closing { .. } => {
                if self.drain() {
                    Next::Close
                } else {
                    Next::Wait
                }
            }
            Phase::Head { .. } | Phase::Body { .. } => self.pump(limits, timeouts, allowance),
        }
    }

    /// While a request is answered the socket is not read (a pipelined request waits), but a
    /// peek tells whether the client hung up: nothing more will come, its side is closed (or
    /// reset). A 2026-07-28 request's client that hangs up cancels it, even one that shut only
    /// its sending side (the era reads a disconnection as the cancellation); an earlier era's
    /// request is still answered (see `api::mcp_reply`). A pipelined request, read or still on
    /// the socket, says the client is still there: no hang-up is seen behind it, and a client
    /// gone then is found by the gate's next write.
    fn look_for_hang_up(&mut self) {
        let mut probe = [0u8; 1];
        let gone = match self.stream.peek(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        };
        // (An end that came with the request itself was seen when it was dispatched: `line`.)
        if gone && self.input.is_empty() {
            self.hung_up.store(true, Ordering::SeqCst);
        }
    }

    /// Reads and parses while the phase reads and the socket has input: a read that stopped at
    /// the phase's room leaves input on the socket that no new event will announce
    /// (readiness is edge-triggered), so it is read once the parse made room.
    fn pump(&mut self, limits: &Limits, timeouts: &Timeouts, allowance: usize) -> Next {
        loop {
            let room = self.room(limits).min(allowance);
            if room == 0 {
                // Other connections' bodies use the whole budget: this one is told to retry.
                return self.refuse_status(
                    503,
                    "busy",
                    "the gate is receiving too many request bodies; try again later",
                    true,
                );
            }
            if self.read_some(room).is_err() {
                return Next::Close;
            }
            let next = self.advance(limits, timeouts);
            let reading = matches!(self.phase, Phase::Head { .. } | Phase::Body { .. });
            if !(matches!(next, Next::Wait) && self.unread && reading) {
                return next;
            }
        }
    }

    /// Bytes this connection holds for a body not yet complete (its buffers' capacity): what
    /// counts against the front's budget for bodies in flight.
    pub(super) fn body_held(&self) -> usize {
        match &self.phase {
            Phase::Body { body, .. } => body.capacity().saturating_add(self.input.capacity()),
            _ => 0,
        }
    }

    /// Whether the connection reads a body now.
    pub(super) fn reads_body(&self) -> bool {
        matches!(self.phase, Phase::Body { .. })
    }

    /// How much input the phase may still buffer: a head's limit, or the body's remaining bytes
    /// plus the next head's limit (a pipelined request may follow).
    fn room(&self, limits: &Limits) -> usize {
        let cap = match &self.phase {
            Phase::Body { head, body, .. } => {
                let remaining = match head.body {
                    Framing::Length(n) => usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(body.len()),
                    // Chunk framing adds a little to the body's bytes; a head's room covers it.
                    Framing::Chunked | Framing::None => limits.max_body.saturating_sub(body.len()),
                };
                remaining.saturating_add(limits.max_head)
            }
            _ => limits.max_head.saturating_add(1),
        };
        cap.saturating_sub(self.input.len()).max(1)
    }

    /// Reads until the socket would block or `room` bytes came; `eof` at the client's end.
    fn read_some(&mut self, room: usize) -> io::Result<()> {
        let mut left = room;
        let mut chunk = [0u8; READ_CHUNK];
        self.unread = false;
        while left > 0 {
            let want = left.min(READ_CHUNK);
            let buf = chunk.get_mut(..want).unwrap_or_default();
            match self.stream.read(buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.input
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    left = left.saturating_sub(n);
                    self.last_read = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Stopped at the limit with input still waiting: read it when the phase allows.
        self.unread = true;
        Ok(())
    }

    /// Parses what the input holds for the current phase.
    fn advance(&mut self, limits: &Limits, timeouts: &Timeouts) -> Next {
        loop {
            match &mut self.phase {
                Phase::Head { started, .. } => {
                    if self.input.is_empty() {
                        return if self.eof { Next::Close } else { Next::Wait };
                    }
                    if started.is_none() {
                        *started = Some(Instant::now());
                    }
                    if !worth_parsing(&self.input, self.scanned, limits) {
                        return if self.eof { Next::Close } else { Next::Wait };
                    }
                    match wire::parse_head(&self.input, limits) {
                        Ok(None) if self.eof => return Next::Close,
                        Ok(None) => {
                            self.scanned = self.input.len();
                            return Next::Wait;
                        }
                        Err(e) => return self.refuse(&e),
                        Ok(Some((head, used))) => {
                            self.input.drain(..used);
                            self.scanned = 0;
                            if let Some(next) = self.start_body(head, limits, timeouts) {
                                return next;
                            }
                        }
                    }
                }
                Phase::Body { reader, body, .. } => {
                    // Grown to what came, not doubled: a body never holds twice its size.
                    let room = limits.max_body.saturating_sub(body.len());
                    body.reserve_exact(self.input.len().min(room));
                    let (used, done) = match reader.feed(&self.input, body) {
                        Ok(fed) => fed,
                        Err(e) => return self.refuse(&e),
                    };
                    self.input.drain(..used);
                    if !done {
                        return if self.eof { Next::Close } else { Next::Wait };
                    }
                    let Phase::Body { head, body, .. } =
                        std::mem::replace(&mut self.phase, Phase::Answering { end: None })
                    else {
                        return Next::Close;
                    };
                    return Next::Dispatch(head, body);
                }
                Phase::Answering { .. } | Phase::Closing { .. } => return Next::Wait,
            }
        }
    }

    /// A head arrived: a request without a body is complete; one with a body reads it (after a
    /// `100 Continue` when the client waits for one). `None`: go on parsing the body.
    fn start_body(&mut self, head: Head, limits: &Limits, timeouts: &Timeouts) -> Option<Next> {
        if matches!(head.body, Framing::None | Framing::Length(0)) {
            self.phase = Phase::Answering { end: None };
            return Some(Next::Dispatch(Box::new(head), Vec::new()));
        }
        if lacks_credential(&head, limits) {
            // Refused on its head alone (401, or the route's own earlier refusal): its body is
            // not kept. What is left of it on the socket means the connection cannot carry
            // another request: it closes after the answer, draining what the client still
            // sends (see `Phase::Closing`).
            let mut head = head;
            head.keep_alive = false;
            self.input.clear();
            self.linger = timeouts.body;
            self.phase = Phase::Answering { end: None };
            return Some(Next::Dispatch(Box::new(head), Vec::new()));
        }
        if head.expect_continue && self.input.is_empty() {
            self.queue(b"HTTP/1.1 100 Continue\r\n\r\n");
            // What does not fit now goes when the socket is writable.
            let _ = self.flush();
        }
        // The body's time runs from now (the head may have waited behind an earlier answer).
        self.last_read = Instant::now();
        self.phase = Phase::Body {
            reader: BodyReader::new(head.body, limits),
            head: Box::new(head),
            body: Vec::new(),
            deadline: Instant::now() + timeouts.body,
        };
        None
    }

    /// Answers a malformed or oversized request and closes.
    fn refuse(&mut self, e: &HeadError) -> Next {
        self.refuse_status(e.status(), code_of(e), &e.reason(), false)
    }

    /// Answers `status` with a JSON error and closes (a request the front cannot take); `retry`
    /// adds `Retry-After: 1` (the refusal is about load, not about the request).
    pub(super) fn refuse_status(
        &mut self,
        status: u16,
        code: &str,
        message: &str,
        retry: bool,
    ) -> Next {
        // A JSON answer ends with a newline, as the handlers' do.
        let body =
            serde_json::json!({ "error": { "code": code, "message": message } }).to_string() + "\n";
        let mut headers = vec![("Content-Type", "application/json")];
        if retry {
            headers.push(("Retry-After", "1"));
        }
        let mut bytes = wire::response_head(
            status,
            &headers,
            Some(body.len()),
            false,
            wire::Version::Http11,
        );
        bytes.extend_from_slice(body.as_bytes());
        self.input.clear();
        self.queue(&bytes);
        self.phase = Phase::Answering { end: Some(true) };
        self.flush_and_settle()
    }

    /// A handler's message for this connection.
    pub(super) fn on_answer(&mut self, what: What, limits: &Limits, timeouts: &Timeouts) -> Next {
        if !matches!(self.phase, Phase::Answering { end: None }) {
            return Next::Wait; // A late part of an answer already ended: ignored.
        }
        let (bytes, end) = match what {
            What::Bytes(bytes) => (bytes, None),
            // A client that shut its side after its requests still gets every answer it is
            // sent (a 2026-07-28 request of a client that hung up is cancelled instead, see
            // `look_for_hang_up`): the parse closes the connection when no complete request is
            // left.
            What::End { bytes, close } => (bytes, Some(close)),
        };
        if self.output.len() - self.written > BACKLOG {
            log::debug!(
                "an HTTP client at {} does not read its answer; closed",
                self.peer
            );
            return Next::Close;
        }
        self.queue(&bytes);
        self.phase = Phase::Answering { end };
        self.settle_then_next(limits, timeouts)
    }

    /// Flushes; when the answer is done and the connection kept alive, takes up the next
    /// request.
    fn settle_then_next(&mut self, limits: &Limits, timeouts: &Timeouts) -> Next {
        let answering = matches!(self.phase, Phase::Answering { .. });
        match self.flush_and_settle() {
            Next::Wait if answering && matches!(self.phase, Phase::Head { .. }) => {
                self.next_request(limits, timeouts)
            }
            next => next,
        }
    }

    /// After an answer: a request that already waits in the input (or on the socket) is read.
    fn next_request(&mut self, limits: &Limits, timeouts: &Timeouts) -> Next {
        if self.unread {
            // The front checks the budget for bodies when the socket is readable; here a read
            // takes at most what the phase's room allows.
            return self.pump(limits, timeouts, usize::MAX);
        }
        self.advance(limits, timeouts)
    }

    /// The socket is writable.
    pub(super) fn on_writable(&mut self, limits: &Limits, timeouts: &Timeouts) -> Next {
        self.settle_then_next(limits, timeouts)
    }

    /// The next moment this connection must be looked at.
    pub(super) fn deadline(&self, timeouts: &Timeouts) -> Instant {
        match &self.phase {
            // A new connection's first byte is due within the head deadline; between requests a
            // kept-alive connection may idle for the keep-alive time.
            Phase::Head {
                idle_since,
                started: None,
            } if self.served => *idle_since + timeouts.keep_alive,
            Phase::Head {
                idle_since,
                started: None,
            } => *idle_since + timeouts.head,
            Phase::Head {
                started: Some(at), ..
            } => (*at + timeouts.head).min(self.last_read + timeouts.io),
            Phase::Body { deadline, .. } => (*deadline).min(self.last_read + timeouts.io),
            Phase::Answering { .. } if self.has_output() => self.last_write + timeouts.io,
            // Waiting for a handler: its own deadlines bound it.
            Phase::Answering { .. } => Instant::now() + Duration::from_secs(3600),
            Phase::Closing { until } => *until,
        }
    }

    /// The deadline passed: what happens to the connection.
    pub(super) fn on_deadline(&mut self, now: Instant, timeouts: &Timeouts) -> Next {
        if self.deadline(timeouts) > now {
            return Next::Wait;
        }
        match self.phase {
            Phase::Head { started: None, .. } | Phase::Closing { .. } => Next::Close,
            Phase::Head { .. } | Phase::Body { .. } => {
                log::debug!("an HTTP request from {} was not sent in time", self.peer);
                self.input.clear();
                self.refuse_status(
                    408,
                    "request_timeout",
                    "the request was not sent in time",
                    false,
                )
            }
            Phase::Answering { .. } => {
                log::debug!("an HTTP client at {} stopped reading; closed", self.peer);
                Next::Close
            }
        }
    }
}

/// Whether the input is worth a parse: a line ended since the last parse (which saw the first
/// `scanned` bytes), or the unfinished line or the whole input passed a limit (then the parse
/// refuses it). Keeps a head that dribbles in byte by byte from costing a parse per byte.
fn worth_parsing(input: &[u8], scanned: usize, limits: &Limits) -> bool {
    let fresh = input.get(scanned..).unwrap_or_default();
    if fresh.contains(&b'\n') || input.len() > limits.max_head {
        return true;
    }
    let line_start = input.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    input.len() - line_start > limits.max_request_line.min(limits.max_header_line)
}

/// The stable code of an error's JSON body.
fn code_of(e: &HeadError) -> &'static str {
    match e {
        HeadError::UriTooLong => "uri_too_long",
        HeadError::HeaderTooLarge | HeadError::TooManyHeaders | HeadError::HeadTooLarge => {
            "header_too_large"
        }
        HeadError::BadRequest(_) => "bad_request",
        HeadError::VersionNotSupported => "version_not_supported",
        HeadError::BodyTooLarge => "payload_too_large",
        HeadError::NotImplemented(_) => "not_implemented",
    }
}

/// Whether the server wants credentials (see [`Limits::credential_headers`]) and `head` carries
/// none.
fn lacks_credential(head: &Head, limits: &Limits) -> bool {
    !limits.credential_headers.is_empty()
        && !limits
            .credential_headers
            .iter()
            .any(|name| head.header(name).is_some())
}

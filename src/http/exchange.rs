//! One request and its answer, as a handler sees them: the parsed head and the whole body in, and
//! one way out ([`Request::respond`], or [`Request::stream`] for a body that comes in parts).
//!
//! Owns: [`Request`], [`Stream`] and the messages they send to the `http-front` thread
//! ([`Out`], for the connection [`ConnId`]): every byte a handler answers goes through that
//! bounded queue, and the front alone writes to sockets. A request dropped unanswered (a handler
//! that forgot, or panicked) is answered 500; a stream dropped unfinished is finished.
//! Never: writes to a socket; blocks on a slow client (the front buffers a bounded amount per
//! connection and closes a connection that does not read); sends a header with CR or LF in it.

use super::wire::{self, Head, Method, Version};
use crossbeam_channel::{SendTimeoutError, Sender};
use mio::Waker;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a handler waits for room in the front's queue before its answer is dropped (the
/// connection then times out on its own).
const SEND_WAIT: Duration = Duration::from_secs(5);

/// A connection of the front: its slot and the generation of the slot, so a message for a
/// connection that closed never reaches the next one in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnId {
    pub(super) slot: usize,
    pub(super) generation: u64,
}

/// What a handler sends to the front for a connection.
#[derive(Debug)]
pub(super) enum What {
    /// Bytes of the answer (a head, a body, a chunk).
    Bytes(Vec<u8>),
    /// The answer ends with these bytes; then the connection closes (`close`) or serves the next
    /// request.
    End { bytes: Vec<u8>, close: bool },
}

/// One message to the front.
#[derive(Debug)]
pub(crate) struct Out {
    pub(super) conn: ConnId,
    pub(super) what: What,
}

/// The way back to the front for one connection.
#[derive(Clone)]
pub(super) struct Line {
    pub(super) conn: ConnId,
    pub(super) out: Sender<Out>,
    pub(super) waker: Arc<Waker>,
    /// Set by the front when the connection is gone: sends fail at once.
    pub(super) closed: Arc<AtomicBool>,
    /// Set by the front when the client hung up while its request was answered (its side of
    /// the socket ended): sends may still reach it, but the client has said it is done.
    pub(super) hung_up: Arc<AtomicBool>,
}

impl Line {
    /// Whether the client hung up or the connection is gone.
    fn hung_up(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst)
    }

    fn send(&self, what: What) -> io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client's connection is closed",
            ));
        }
        let out = Out {
            conn: self.conn,
            what,
        };
        match self.out.send_timeout(out, SEND_WAIT) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the HTTP front is too busy to take an answer",
                ))
            }
            Err(SendTimeoutError::Disconnected(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the HTTP front has stopped",
                ))
            }
        }
        self.waker.wake()
    }
}

/// A complete request (head and body), and the one answer it is owed.
pub(crate) struct Request {
    head: Head,
    body: Vec<u8>,
    peer: SocketAddr,
    line: Option<Line>,
}

/// Whether the connection serves another request after a streamed answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// The next request may follow (an answer with a known end).
    KeepAlive,
    /// The connection closes when the stream ends (a server-initiated stream).
    Close,
}

impl Request {
    pub(super) fn new(head: Head, body: Vec<u8>, peer: SocketAddr, line: Line) -> Request {
        Request {
            head,
            body,
            peer,
            line: Some(line),
        }
    }

    /// Whether the client hung up while this request was answered (or its connection is
    /// gone): it will not read an answer, or has said it is done with the request.
    pub(crate) fn client_hung_up(&self) -> bool {
        self.line.as_ref().is_some_and(Line::hung_up)
    }

    /// The method.
    pub(crate) fn method(&self) -> &Method {
        &self.head.method
    }

    /// The target as sent (path and query).
    pub(crate) fn url(&self) -> &str {
        &self.head.target
    }

    /// The path (the target up to `?`).
    pub(crate) fn path(&self) -> &str {
        self.head.path()
    }

    /// The first value of a header (names compare case-insensitively).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body (empty when the request had none).
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection may serve another request after this one.
    fn keep_alive(&self) -> bool {
        self.head.keep_alive
    }

    /// Answers with a whole body.
    pub(crate) fn respond(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let Some(line) = self.line.take() else { return };
        let keep_alive = self.keep_alive();
        let mut bytes = wire::response_head(
            status,
            headers,
            Some(body.len()),
            keep_alive,
            self.head.version,
        );
        // A HEAD request's answer carries the head only.
        if self.head.method != Method::Head {
            bytes.extend_from_slice(body);
        }
        let _ = line.send(What::End {
            bytes,
            close: !keep_alive,
        });
    }

    /// Starts an answer whose body comes in parts: the head goes out now, each
    /// [`Stream::send`] goes out as it comes (a chunk on HTTP/1.1; on HTTP/1.0 the body runs to
    /// the connection's end).
    pub(crate) fn stream(mut self, status: u16, headers: &[(&str, &str)], after: After) -> Stream {
        let line = self.line.take();
        let chunked = self.head.version == Version::Http11;
        let keep_alive = chunked && after == After::KeepAlive && self.keep_alive();
        // On HTTP/1.0 (no chunks) the head has no length and the body ends with the connection.
        let head = wire::response_head(status, headers, None, keep_alive, self.head.version);
        let mut stream = Stream {
            line,
            chunked,
            close: !keep_alive,
            ended: false,
        };
        if stream.send_raw(head).is_err() {
            stream.ended = true;
        }
        stream
    }

    /// The client hung up before its answer: nothing is sent, and the connection closes.
    pub(crate) fn abandon(mut self) {
        if let Some(line) = self.line.take() {
            // A connection gone already needs nothing more.
            let _ = line.send(What::End {
                bytes: Vec::new(),
                close: true,
            });
        }
    }

    /// Gives up the answer without sending anything: the front answers the request itself (it
    /// could not hand it to a worker).
    pub(super) fn disarm(mut self) {
        self.line.take();
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let Some(line) = self.line.take() else { return };
        log::error!(
            "an HTTP request ({} {}) was dropped unanswered; answering 500",
            self.head.method.as_str(),
            self.head.path().chars().take(100).collect::<String>()
        );
        let body =
            b"{\"error\":{\"code\":\"internal\",\"message\":\"the request was not answered\"}}\n";
        let mut bytes = wire::response_head(
            500,
            &[("Content-Type", "application/json")],
            Some(body.len()),
            false,
            self.head.version,
        );
        bytes.extend_from_slice(body);
        let _ = line.send(What::End { bytes, close: true });
    }
}

/// An answer whose body is being sent in parts. `Write` sends each write as one part.
pub(crate) struct Stream {
    line: Option<Line>,
    chunked: bool,
    close: bool,
    ended: bool,
}

impl Stream {
    /// Whether the client hung up (see [`Request::client_hung_up`]).
    pub(crate) fn client_hung_up(&self) -> bool {
        self.line.as_ref().is_some_and(Line::hung_up)
    }

    /// Sends `data` as the next part of the body (nothing for empty `data`). An error means the
    /// client is gone, or does not read: the stream is over.
    pub(crate) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let bytes = if self.chunked {
            wire::chunk(data)
        } else {
            data.to_vec()
        };
        self.send_raw(bytes)
    }

    fn send_raw(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if self.ended {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream ended",
            ));
        }
        let Some(line) = &self.line else {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "no connection"));
        };
        let sent = line.send(What::Bytes(bytes));
        if sent.is_err() {
            self.ended = true;
        }
        sent
    }

    /// Ends the body; the connection then serves the next request or closes.
    pub(crate) fn finish(mut self) {
        self.end();
    }

    /// Ends the body, as [`Stream::finish`] does, for an owner that keeps the stream.
    pub(crate) fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let Some(line) = self.line.take() else { return };
        let bytes = if self.chunked {
            wire::LAST_CHUNK.to_vec()
        } else {
            Vec::new()
        };
        let _ = line.send(What::End {
            bytes,
            close: self.close,
        });
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.end();
    }
}

/// Streams for unit tests of code that writes to one: what is sent is collected as text.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ConnId, Line, Out, Stream, What};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    /// The bytes seen so far, and where more come from.
    type Seen = (Vec<u8>, Option<crossbeam_channel::Receiver<Out>>);

    /// What a test stream received, as text.
    #[derive(Clone, Default)]
    pub(crate) struct Received(Arc<Mutex<Seen>>);

    impl Received {
        /// Everything sent so far (chunk framing included).
        pub(crate) fn text(&self) -> String {
            let mut inner = crate::thread::lock(&self.0);
            let mut got = Vec::new();
            if let Some(rx) = &inner.1 {
                while let Ok(out) = rx.try_recv() {
                    match out.what {
                        What::Bytes(b) | What::End { bytes: b, .. } => got.extend(b),
                    }
                }
            }
            inner.0.extend(got);
            String::from_utf8_lossy(&inner.0).into_owned()
        }
    }

    /// A chunked stream (its head already sent) and what it receives.
    pub(crate) fn stream() -> (Stream, Received) {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (out, rx) = crossbeam_channel::bounded(1024);
        let line = Line {
            conn: ConnId {
                slot: 0,
                generation: 1,
            },
            out,
            waker,
            closed: Arc::new(AtomicBool::new(false)),
            hung_up: Arc::new(AtomicBool::new(false)),
        };
        // The poll may go: a waker stays usable after its poll is dropped (wakes go nowhere).
        std::mem::forget(poll);
        let stream = Stream {
            line: Some(line),
            chunked: true,
            close: true,
            ended: false,
        };
        (
            stream,
            Received(Arc::new(Mutex::new((Vec::new(), Some(rx))))),
        )
    }
}

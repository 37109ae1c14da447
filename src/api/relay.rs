//! Relay: one admitted client connection copied byte for byte to `tiny_http`'s private socket.
//!
//! Owns: a [`Pair`] of non-blocking sockets (the client's and ours to `tiny_http`) and two bounded
//! buffers ([`Pipe`]s), one per direction. A full buffer stops reading its side until the other
//! side drains it, so a client that does not read, or a server that does not read, holds at most
//! one buffer per direction. The pair is finished when the server's side has ended and all of its
//! bytes reached the client, or when either socket fails.
//! Never: parses HTTP or changes a byte; blocks; waits on its own (timeouts are the private side's
//! socket timeouts in `tiny_http`, plus the admission's connect deadline).

use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::time::Instant;

/// Bytes buffered per direction and connection.
const BUFFER: usize = 16 * 1024;

/// One direction's buffer: bytes read from one socket, not yet written to the other.
pub(crate) struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source sent EOF.
    eof: bool,
    /// The EOF was passed on (`shutdown(Write)` on the destination).
    shut: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn is_full(&self) -> bool {
        self.end == self.buf.len() && self.start == 0
    }

    /// Gives this direction up: what is buffered is dropped, nothing more is read.
    fn abandon(&mut self) -> bool {
        let changed = !self.eof || !self.is_empty();
        self.start = 0;
        self.end = 0;
        self.eof = true;
        self.shut = true;
        changed
    }

    /// Reads what `from` has, while there is room; true when something happened.
    fn fill(&mut self, from: &mut TcpStream) -> io::Result<bool> {
        if self.eof || self.end == self.buf.len() {
            return Ok(false);
        }
        match from.read(&mut self.buf[self.end..]) {
            Ok(0) => {
                self.eof = true;
                Ok(true)
            }
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Writes buffered bytes to `to`, and passes the EOF on once they are all written.
    fn drain(&mut self, to: &mut TcpStream) -> io::Result<bool> {
        if self.is_empty() {
            if self.eof && !self.shut {
                self.shut = true;
                // The peer may have closed already; nothing more to pass on then.
                let _ = to.shutdown(Shutdown::Write);
                return Ok(true);
            }
            return Ok(false);
        }
        match to.write(&self.buf[self.start..self.end]) {
            Ok(n) => {
                self.start += n;
                if self.is_empty() {
                    self.start = 0;
                    self.end = 0;
                }
                Ok(n > 0)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// An admitted client and our connection to `tiny_http` for it.
pub(crate) struct Pair {
    pub(crate) client: TcpStream,
    pub(crate) inner: TcpStream,
    /// The client's address, for the per-peer count.
    pub(crate) peer: IpAddr,
    /// When it was admitted: the connect to the private socket must finish in time.
    pub(crate) since: Instant,
    /// When a byte last moved either way.
    last_progress: Instant,
    connected: bool,
    up: Pipe,
    down: Pipe,
}

impl Pair {
    pub(crate) fn new(client: TcpStream, inner: TcpStream, peer: IpAddr) -> Pair {
        Pair {
            client,
            inner,
            peer,
            since: Instant::now(),
            last_progress: Instant::now(),
            connected: false,
            up: Pipe::new(),
            down: Pipe::new(),
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected
    }

    /// Moves every byte that can move now (mio's readiness is edge-triggered: each side is read
    /// and written until it would block or its buffer is full or empty). `Ok(true)` when the pair
    /// is finished and can be dropped.
    pub(crate) fn pump(&mut self) -> io::Result<bool> {
        if !self.connected {
            self.connected = self.finish_connect()?;
        }
        loop {
            let mut moved = self.up.fill(&mut self.client)?;
            if self.connected {
                moved |= match self.up.drain(&mut self.inner) {
                    Ok(moved) => moved,
                    // The server stopped reading (it answered early, 413 or 401, and closed):
                    // drop the rest of the upload, keep relaying its answer.
                    Err(_) => self.up.abandon(),
                };
                moved |= self.down.fill(&mut self.inner)?;
            }
            moved |= self.down.drain(&mut self.client)?;
            if !moved {
                break;
            }
            self.last_progress = Instant::now();
        }
        Ok(self.down.eof && self.down.is_empty())
    }

    /// Whether the pair is stuck: bytes wait to go one way and none moved for `limit` (a client
    /// that does not read, or that sends into a server that does not read).
    pub(crate) fn stalled(&self, limit: std::time::Duration) -> bool {
        let waiting = !self.down.is_empty() || self.up.is_full();
        waiting && self.last_progress.elapsed() > limit
    }

    /// Whether bytes from the server still wait to reach the client.
    pub(crate) fn has_pending_output(&self) -> bool {
        !self.down.is_empty()
    }

    /// A non-blocking connect has finished when the socket has a peer (mio's documented check).
    fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(e) = self.inner.take_error()? {
            return Err(e);
        }
        match self.inner.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

//! A connection's way out: its answer's bytes queued and written as the socket takes them, and
//! what follows an answer written whole (back to reading heads with buffers shrunk, or the
//! shutdown of the write side and the input drained for [`LINGER`](super::LINGER), or longer
//! after a body left unread).
//!
//! Never: blocks (a full socket leaves the rest queued for the next writable event); keeps
//! more than [`KEEP`] bytes already written at the front of the output.

use super::{Conn, Next, Phase, KEEP};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Conn {
    pub(super) fn queue(&mut self, bytes: &[u8]) {
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        } else if self.written > KEEP {
            // A stream read about as fast as it is written would otherwise keep every byte.
            self.output.drain(..self.written);
            self.written = 0;
        }
        self.output.extend_from_slice(bytes);
    }

    /// Writes what it can; when the answer has ended and is all written, the connection closes
    /// (lingers) or goes back to reading heads.
    pub(super) fn flush_and_settle(&mut self) -> Next {
        if let Err(e) = self.flush() {
            log::debug!(
                "HTTP connection from {} ended while writing: {e}",
                self.peer
            );
            return Next::Close;
        }
        if self.has_output() {
            return Next::Wait;
        }
        match self.phase {
            Phase::Answering { end: Some(true) } => {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.closed.store(true, Ordering::SeqCst);
                self.phase = Phase::Closing {
                    until: Instant::now() + self.linger,
                };
                if self.drain() {
                    Next::Close
                } else {
                    Next::Wait
                }
            }
            Phase::Answering { end: Some(false) } => {
                self.shrink();
                let now = Instant::now();
                self.served = true;
                self.last_read = now;
                self.phase = Phase::Head {
                    idle_since: now,
                    started: None,
                };
                Next::Wait
            }
            _ => Next::Wait,
        }
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        while self.written < self.output.len() {
            let pending = self.output.get(self.written..).unwrap_or_default();
            match self.stream.write(pending) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.written += n;
                    self.last_write = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Discards input of a closing connection; `true` when the client has closed its side.
    pub(super) fn drain(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    pub(super) fn shrink(&mut self) {
        self.output.clear();
        self.written = 0;
        self.output.shrink_to(KEEP);
        self.input.shrink_to(KEEP);
    }
}

//! Newline-delimited framing with a hard cap on line length.
//!
//! Owns: splitting a byte stream into lines. An over-long line is reported the moment it passes the
//! cap and then skipped up to its newline: it is never buffered whole.
//! Never: performs I/O; callers push the bytes they read.

/// One result of feeding bytes to a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`). Blank lines are skipped.
    Line(&'a [u8]),
    /// A line passed the cap; its bytes so far were dropped and the rest will be skipped.
    Overlong,
}

/// The buffer kept between lines; a bigger one (grown for a long line) is freed once its line is
/// out.
const KEEP: usize = 16 * 1024;

/// Splits pushed bytes into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl LineReader {
    /// A reader that accepts lines up to `max` bytes (the newline excluded).
    pub fn new(max: usize) -> LineReader {
        LineReader {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Feeds `bytes` and calls `on_frame` for every complete line or overflow they produce.
    pub fn push(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while !bytes.is_empty() {
            let newline = memchr(bytes);
            let (chunk, rest, ends_line) = match newline {
                Some(pos) => (&bytes[..pos], &bytes[pos + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.skipping {
                if ends_line {
                    self.skipping = false;
                }
                continue;
            }
            if self.buf.len() + chunk.len() > self.max {
                self.buf.clear();
                self.buf.shrink_to(KEEP);
                self.skipping = !ends_line;
                on_frame(Frame::Overlong);
                continue;
            }
            if !ends_line {
                self.buf.extend_from_slice(chunk);
                continue;
            }
            if self.buf.is_empty() {
                emit(chunk, &mut on_frame);
            } else {
                self.buf.extend_from_slice(chunk);
                let line = std::mem::take(&mut self.buf);
                emit(&line, &mut on_frame);
                // The buffer of a big line (a listing) is let go after it: a reader is kept per
                // connection, and most lines are small.
                if line.capacity() <= KEEP {
                    self.buf = line;
                    self.buf.clear();
                }
            }
        }
    }

    /// Bytes of an unfinished line held so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn emit(line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|b| !b.is_ascii_whitespace()) {
        on_frame(Frame::Line(line));
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

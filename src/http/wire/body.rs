//! Request bodies: `Content-Length` and chunked decoding, fed incrementally, within the limits.
//!
//! Owns: [`BodyReader`], a byte-at-a-time-safe state machine that turns the bytes after a head
//! into the decoded body and says where the body ends (the next request starts there).
//! Never: appends more than [`Limits::max_body`] bytes in total; holds more than
//! [`MAX_CHUNK_LINE`] bytes of a chunk-size line; holds any trailer bytes (trailers are checked,
//! counted against [`Limits::max_head`] and dropped); consumes a byte past the end of the body;
//! accepts a line end other than CRLF or a bare LF.

use super::{is_forbidden_ctl, to_u64, Framing, HeadError, Limits};

/// The longest chunk-size line (size and extensions, without CRLF) a [`BodyReader`] accepts.
pub const MAX_CHUNK_LINE: usize = 1024;

/// Decodes one request body as its bytes arrive, in pieces of any size.
///
/// Once `feed` has returned an error, every later call returns the same error.
#[derive(Debug, Clone)]
pub struct BodyReader {
    state: State,
    /// The bytes of the chunk-size line so far (at most `MAX_CHUNK_LINE + 1`, CR included).
    size_line: Vec<u8>,
    /// Body bytes appended so far, never over `max_body`.
    decoded: u64,
    max_body: u64,
    max_trailer_line: usize,
    max_trailers: usize,
}

#[derive(Debug, Clone)]
enum State {
    /// `Content-Length` framing: this many bytes still to come.
    Length {
        remaining: u64,
    },
    /// Reading a chunk-size line into `size_line`.
    SizeLine,
    /// Inside a chunk's data.
    Data {
        remaining: u64,
    },
    /// After a chunk's data: CRLF or LF must follow.
    DataEnd {
        after_cr: bool,
    },
    /// After the last chunk: trailer lines until an empty one.
    Trailers {
        line_len: usize,
        total: usize,
        after_cr: bool,
    },
    Done,
    Failed(HeadError),
}

impl BodyReader {
    /// A reader for a body framed as `framing`, bounded by `limits` (`max_body` for the body,
    /// `max_header_line` and `max_head` for a chunked body's trailers).
    ///
    /// A `Length` over `max_body` is refused with [`HeadError::BodyTooLarge`] by the first `feed`.
    pub fn new(framing: Framing, limits: &Limits) -> BodyReader {
        let max_body = to_u64(limits.max_body);
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) if n > max_body => State::Failed(HeadError::BodyTooLarge),
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => State::SizeLine,
        };
        BodyReader {
            state,
            size_line: Vec::new(),
            decoded: 0,
            max_body,
            max_trailer_line: limits.max_header_line,
            max_trailers: limits.max_head,
        }
    }

    /// Consumes from `input` and appends the decoded body bytes to `out`.
    ///
    /// Returns how many bytes of `input` were used and whether the body is complete; when it is,
    /// the unused bytes belong to the next request. Errors: [`HeadError::BodyTooLarge`] as soon
    /// as the body would go over `max_body` (for a chunk, when its size line arrives, before its
    /// data); [`HeadError::BadRequest`] for malformed chunked framing, a chunk-size line over
    /// [`MAX_CHUNK_LINE`], a trailer line over `max_header_line` or trailers over `max_head`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HeadError> {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        self.run(input, out).inspect_err(|err| {
            self.state = State::Failed(err.clone());
        })
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HeadError> {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            match self.state {
                State::Done => return Ok((used, true)),
                State::Failed(ref err) => return Err(err.clone()),
                State::Length { remaining } | State::Data { remaining } => {
                    if rest.is_empty() {
                        return Ok((used, false));
                    }
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    out.extend_from_slice(rest.get(..take).unwrap_or_default());
                    used += take;
                    let remaining = remaining.saturating_sub(to_u64(take));
                    self.state = match (&self.state, remaining) {
                        (State::Length { .. }, 0) => State::Done,
                        (State::Length { .. }, _) => State::Length { remaining },
                        (_, 0) => State::DataEnd { after_cr: false },
                        (_, _) => State::Data { remaining },
                    };
                }
                State::SizeLine | State::DataEnd { .. } | State::Trailers { .. } => {
                    let Some(&byte) = rest.first() else {
                        return Ok((used, false));
                    };
                    used += 1;
                    self.state = self.line_byte(byte)?;
                }
            }
        }
    }

    /// One byte of chunked framing outside chunk data: the next state.
    fn line_byte(&mut self, byte: u8) -> Result<State, HeadError> {
        match self.state {
            State::SizeLine if byte == b'\n' => {
                let size = parse_chunk_size(&self.size_line)?;
                self.size_line.clear();
                if size == 0 {
                    return Ok(State::Trailers {
                        line_len: 0,
                        total: 0,
                        after_cr: false,
                    });
                }
                self.decoded = match self.decoded.checked_add(size) {
                    Some(total) if total <= self.max_body => total,
                    _ => return Err(HeadError::BodyTooLarge),
                };
                Ok(State::Data { remaining: size })
            }
            State::SizeLine => {
                if self.size_line.len() > MAX_CHUNK_LINE {
                    return Err(HeadError::BadRequest("chunk-size line too long"));
                }
                self.size_line.push(byte);
                Ok(State::SizeLine)
            }
            State::DataEnd { after_cr } => match byte {
                b'\n' => Ok(State::SizeLine),
                b'\r' if !after_cr => Ok(State::DataEnd { after_cr: true }),
                _ => Err(HeadError::BadRequest(
                    "chunk data not followed by a line end",
                )),
            },
            State::Trailers {
                line_len,
                total,
                after_cr,
            } => {
                let total = total.saturating_add(1);
                if total > self.max_trailers {
                    return Err(HeadError::BadRequest("trailer section too large"));
                }
                let line_done = match byte {
                    b'\n' => true,
                    _ if after_cr => return Err(HeadError::BadRequest("bare CR in trailers")),
                    b'\r' => {
                        return Ok(State::Trailers {
                            line_len,
                            total,
                            after_cr: true,
                        })
                    }
                    _ if is_forbidden_ctl(byte) => {
                        return Err(HeadError::BadRequest("control character in trailers"))
                    }
                    _ => false,
                };
                if line_done {
                    return Ok(if line_len == 0 {
                        State::Done
                    } else {
                        State::Trailers {
                            line_len: 0,
                            total,
                            after_cr: false,
                        }
                    });
                }
                let line_len = line_len.saturating_add(1);
                if line_len > self.max_trailer_line {
                    return Err(HeadError::BadRequest("trailer line too long"));
                }
                Ok(State::Trailers {
                    line_len,
                    total,
                    after_cr: false,
                })
            }
            // Not reached: `run` hands only the three line states to this function.
            ref other => Ok(other.clone()),
        }
    }
}

/// `1*HEXDIG [ BWS ";" chunk-ext ]` (the extensions are ignored, but may hold no control bytes).
fn parse_chunk_size(line: &[u8]) -> Result<u64, HeadError> {
    let content = line.strip_suffix(b"\r").unwrap_or(line);
    if content.len() > MAX_CHUNK_LINE {
        return Err(HeadError::BadRequest("chunk-size line too long"));
    }
    let n_digits = content
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(content.len());
    let digits = content.get(..n_digits).unwrap_or_default();
    let rest = content.get(n_digits..).unwrap_or_default();
    if digits.is_empty() {
        return Err(HeadError::BadRequest("missing chunk size"));
    }
    let extensions = rest
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .and_then(|start| rest.get(start..))
        .unwrap_or_default();
    if !rest.is_empty() && !extensions.starts_with(b";") {
        return Err(HeadError::BadRequest("malformed chunk-size line"));
    }
    if extensions.iter().any(|b| is_forbidden_ctl(*b)) {
        return Err(HeadError::BadRequest(
            "control character in a chunk extension",
        ));
    }
    digits.iter().try_fold(0u64, |size, digit| {
        let value = char::from(*digit).to_digit(16).unwrap_or_default();
        size.checked_mul(16)
            .and_then(|size| size.checked_add(u64::from(value)))
            .ok_or(HeadError::BadRequest("chunk size overflows"))
    })
}

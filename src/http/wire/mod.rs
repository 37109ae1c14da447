//! HTTP/1.1 on the wire, sans-IO: request heads and bodies in, response heads and chunks out.
//!
//! Owns: the strict reading of a request head ([`parse_head`] into a [`Head`]), the incremental
//! decoding of a request body ([`BodyReader`]), the bytes of a response head ([`response_head`]) and
//! of chunked framing ([`chunk`], [`LAST_CHUNK`]), and every size limit on what a peer may make us
//! hold ([`Limits`]).
//! Never: touches sockets, threads or clocks; allocates more than the limits allow for one request;
//! panics on any input; reads one request two ways (every ambiguity in framing is refused);
//! echoes a peer's bytes in an error ([`HeadError`] carries only static text).
//! Threads: none; the front's event loop and workers call these functions on their own buffers.
//! Errors: [`HeadError`], each variant mapped to the status the front answers before closing.
//!
//! Brief overview: the front accumulates bytes and calls [`parse_head`] until it returns a [`Head`]
//! and the head's length; it then builds a [`BodyReader`] from [`Head::body`] and feeds it the bytes
//! after the head until the body is complete; the bytes after the body are the next request.
//! Answers start with [`response_head`]; a body of unknown length follows as [`chunk`]s and
//! [`LAST_CHUNK`].

mod body;
mod head;
mod response;
#[cfg(test)]
mod tests;

pub use body::{BodyReader, MAX_CHUNK_LINE};
pub use head::{parse_head, Head};
pub use response::{chunk, reason_phrase, response_head, LAST_CHUNK};

use std::fmt;

/// How much a peer may make us buffer for one request.
///
/// Every field is a hard cap in bytes (or fields); going over one refuses the request with the
/// matching [`HeadError`]. Line limits count the line's content, not its CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The request line, together with any empty lines skipped before it. Default 8 KiB.
    pub max_request_line: usize,
    /// One header (or trailer) line. Default 8 KiB.
    pub max_header_line: usize,
    /// The whole head, request line to final empty line included; also caps a chunked body's
    /// trailer section. Default 64 KiB.
    pub max_head: usize,
    /// The number of header fields. Default 100.
    pub max_headers: usize,
    /// The decoded body. Default 4 MiB.
    pub max_body: usize,
    /// Header fields that carry a credential. When not empty, a request with a body whose head
    /// has none of them is handed on at once with its body unread (the handler refuses it on
    /// its head), no `100 Continue` sent, and its connection closes after the answer: a peer
    /// that presents no credential makes the server hold none of its body. Default empty: every
    /// body is read.
    pub credential_headers: &'static [&'static str],
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_line: 8 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
            max_body: 4 * 1024 * 1024,
            credential_headers: &[],
        }
    }
}

/// A request method. The standard ones are matched case-sensitively, as RFC 9110 requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other token, as sent (`CONNECT`, `TRACE`, `get`, ...).
    Other(String),
}

impl Method {
    /// The method as it appears on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(other) => other,
        }
    }
}

/// The protocol version of a request; nothing else is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`: the body is empty.
    None,
    /// `Content-Length`; already checked against [`Limits::max_body`]. `Length(0)` is kept as sent.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request head or body is refused. The front answers [`HeadError::status`] and closes.
///
/// Guaranteed: no variant carries a peer's bytes, so an error body can never echo input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The request line (with any empty lines before it) is over [`Limits::max_request_line`].
    UriTooLong,
    /// One header line, or one trailer line, is over [`Limits::max_header_line`].
    HeaderTooLarge,
    /// More than [`Limits::max_headers`] header fields.
    TooManyHeaders,
    /// The head is over [`Limits::max_head`].
    HeadTooLarge,
    /// The bytes are not a request we read exactly one way; the text says which rule failed.
    BadRequest(&'static str),
    /// The request line names an HTTP version other than 1.0 or 1.1 (`HTTP/2.0`, `HTTP/1.2`).
    VersionNotSupported,
    /// The body (declared or decoded) is over [`Limits::max_body`].
    BodyTooLarge,
    /// A well-formed request asks for something we don't do (a transfer coding other than
    /// `chunked`).
    NotImplemented(&'static str),
}

impl HeadError {
    /// The status code of the answer.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::UriTooLong => 414,
            HeadError::HeaderTooLarge => 431,
            HeadError::TooManyHeaders => 431,
            HeadError::HeadTooLarge => 431,
            HeadError::BadRequest(_) => 400,
            HeadError::VersionNotSupported => 505,
            HeadError::BodyTooLarge => 413,
            HeadError::NotImplemented(_) => 501,
        }
    }

    /// A short text for the error body; built only from static text, never from input bytes.
    pub fn reason(&self) -> String {
        match self {
            HeadError::UriTooLong => "request line too long".to_owned(),
            HeadError::HeaderTooLarge => "header line too long".to_owned(),
            HeadError::TooManyHeaders => "too many header fields".to_owned(),
            HeadError::HeadTooLarge => "request head too large".to_owned(),
            HeadError::BadRequest(why) => format!("bad request: {why}"),
            HeadError::VersionNotSupported => "http version not supported".to_owned(),
            HeadError::BodyTooLarge => "request body too large".to_owned(),
            HeadError::NotImplemented(what) => format!("not implemented: {what}"),
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http request error: {}", self.reason())
    }
}

impl std::error::Error for HeadError {}

/// RFC 9110 `tchar`: the bytes of a token (methods, header names, transfer codings).
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Whether `bytes` is a non-empty token.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| is_tchar(*b))
}

/// A control byte other than HTAB (never allowed in a field value).
pub(crate) fn is_forbidden_ctl(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// `usize` to `u64` without a cast (lossless on every platform Rust supports).
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

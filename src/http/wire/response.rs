//! Responses: the bytes of a response head and of chunked framing.
//!
//! Owns: [`response_head`] (status line, caller's fields, framing and `Connection` fields),
//! [`chunk`], [`LAST_CHUNK`] and the reason phrases ([`reason_phrase`]).
//! Never: writes a field whose name is not a token or whose value holds CR, LF or another control
//! byte (so a value can never inject a field or end the head); lets a caller's field contradict
//! the framing this module writes; sends chunked framing to an HTTP/1.0 peer.

use super::{is_forbidden_ctl, is_token, Version};

/// The end of a chunked body: the zero-size chunk, no trailers, the final empty line.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The reason phrase of the statuses the gate sends; `"Unknown"` for any other.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The bytes of a response head, blank line included.
///
/// - The status line is always `HTTP/1.1 <status> <reason>` (a server answers with its own
///   version); a status outside 100..=999 is written as 500.
/// - `headers` are written in order, except that a field whose name is not a token, or whose
///   value holds a control byte other than HTAB (CR and LF included), is skipped, and so is any
///   `Content-Length`, `Transfer-Encoding` or `Connection` field: those are this function's.
/// - A 1xx answer gets nothing else. 204 and 304 get no framing field.
/// - Otherwise `body_len` `Some(n)` writes `Content-Length: n`, and `None` writes
///   `Transfer-Encoding: chunked`, with the body to follow as [`chunk`]s and [`LAST_CHUNK`].
///   Exception: an HTTP/1.0 peer cannot read chunked framing, so for `version` `Http10` and
///   `None` no framing field is written, the connection is closed (`keep_alive` is overridden),
///   and the caller must write the body raw (not chunked) and then close.
/// - `Connection: close` when the connection will not be kept; `Connection: keep-alive` when it
///   will and the peer is HTTP/1.0.
pub fn response_head(
    status: u16,
    headers: &[(&str, &str)],
    body_len: Option<usize>,
    keep_alive: bool,
    version: Version,
) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    for (name, value) in headers {
        if is_writable(name, value) {
            push_field(&mut out, name, value);
        }
    }
    if status < 200 {
        out.extend_from_slice(b"\r\n");
        return out;
    }
    let bodiless = status == 204 || status == 304;
    let close_delimited = !bodiless && body_len.is_none() && version == Version::Http10;
    if !bodiless {
        match body_len {
            Some(n) => push_field(&mut out, "Content-Length", &n.to_string()),
            None if version == Version::Http11 => {
                push_field(&mut out, "Transfer-Encoding", "chunked");
            }
            None => {}
        }
    }
    if !keep_alive || close_delimited {
        push_field(&mut out, "Connection", "close");
    } else if version == Version::Http10 {
        push_field(&mut out, "Connection", "keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// One chunk of a chunked body: hex size, CRLF, the data, CRLF.
///
/// Empty `data` gives empty bytes, never a zero-size chunk (that would end the body early); end a
/// body with [`LAST_CHUNK`].
pub fn chunk(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(data.len().saturating_add(20));
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether a caller's field may be written as is.
fn is_writable(name: &str, value: &str) -> bool {
    let owned = ["content-length", "transfer-encoding", "connection"];
    is_token(name.as_bytes())
        && !value.bytes().any(is_forbidden_ctl)
        && !owned.iter().any(|o| name.eq_ignore_ascii_case(o))
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

//! Server-sent events as the gate writes them on HTTP/1.x: one JSON-RPC line as a `message`
//! event, the chunks of an HTTP/1.1 chunked body, and the heads of event-stream answers.
//!
//! Owns: the bytes of the SSE framing and of chunked transfer coding, for both the answer
//! streams of `POST` ([`super::mcp_reply`]) and the sessions' `GET` streams ([`super::streams`]).
//! Never: flushes (callers flush once per event, so each event leaves at once but is written in
//! one piece); reads from a socket.

use std::io::{self, Write};

/// The head of a `POST`'s answer as an event stream (HTTP/1.1, chunked; the connection stays
/// open for the client's next request).
pub(super) const ANSWER_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
      Transfer-Encoding: chunked\r\n\r\n";

/// The head of a session's `GET` stream on HTTP/1.1 (chunked; the connection closes with it).
pub(super) const STREAM_HEAD_CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
      Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n";

/// The head of a session's `GET` stream on HTTP/1.0 (no chunks: the body ends with the
/// connection).
pub(super) const STREAM_HEAD_PLAIN: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
      Connection: close\r\n\r\n";

/// The last chunk of a chunked body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A comment that keeps an idle stream's connection alive.
pub(super) const KEEPALIVE_COMMENT: &[u8] = b": keepalive\n\n";

/// One JSON-RPC line as a `message` event.
pub(super) fn event(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(line);
    out.extend_from_slice(b"\n\n");
    out
}

/// `data` as one chunk of a chunked body (an empty `data` would end the body: callers never
/// pass one).
pub(super) fn write_chunk(writer: &mut dyn Write, data: &[u8]) -> io::Result<()> {
    writer.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    writer.write_all(data)?;
    writer.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_becomes_one_message_event_in_one_chunk() {
        let mut out = Vec::new();
        write_chunk(&mut out, &event(br#"{"id":1}"#)).expect("write");
        assert_eq!(out, b"1f\r\nevent: message\ndata: {\"id\":1}\n\n\r\n");
    }
}

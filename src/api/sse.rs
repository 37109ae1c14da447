//! Server-sent events as the gate writes them: one JSON-RPC line as a `message` event, and the
//! comment that keeps an idle stream alive.
//!
//! Owns: the bytes of the SSE framing, for both the answer streams of `POST`
//! ([`super::mcp_reply`]) and the sessions' `GET` streams ([`super::streams`]); the HTTP framing
//! around them (chunks) is the server's ([`crate::http::Stream`]).
//! Never: writes anything itself.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_becomes_one_message_event() {
        assert_eq!(
            event(br#"{"id":1}"#),
            b"event: message\ndata: {\"id\":1}\n\n"
        );
    }
}

//! Unit tests for response heads and chunk framing.

use super::super::*;

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("response heads are ASCII here")
}

#[test]
fn a_response_with_a_length() {
    let head = response_head(
        200,
        &[("Content-Type", "application/json")],
        Some(5),
        true,
        Version::Http11,
    );
    assert_eq!(
        text(head),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
    );
}

#[test]
fn a_chunked_response_that_closes() {
    let head = response_head(202, &[], None, false, Version::Http11);
    assert_eq!(
        text(head),
        "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn http_1_0_keep_alive_is_said_out_loud() {
    let head = response_head(404, &[], Some(0), true, Version::Http10);
    assert_eq!(
        text(head),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    );
    let head = response_head(404, &[], Some(0), false, Version::Http10);
    assert_eq!(
        text(head),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn http_1_0_never_gets_chunked_framing() {
    let head = response_head(200, &[], None, true, Version::Http10);
    assert_eq!(text(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

#[test]
fn no_content_and_informational_answers_carry_no_framing() {
    let head = response_head(204, &[("X-A", "1")], Some(10), true, Version::Http11);
    assert_eq!(text(head), "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    let head = response_head(204, &[], None, false, Version::Http11);
    assert_eq!(
        text(head),
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    );
    let head = response_head(100, &[], Some(10), false, Version::Http11);
    assert_eq!(text(head), "HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn header_values_never_inject_fields() {
    let headers = [
        ("X-Evil", "a\r\nSet-Cookie: x"),
        ("X-Lf", "a\nb"),
        ("X-Cr", "a\rb"),
        ("X-Nul", "a\0b"),
        ("X-Bad Name", "v"),
        ("X-Bad:Name", "v"),
        ("X-Bad\r\nName", "v"),
        ("", "v"),
        ("content-length", "999"),
        ("Transfer-Encoding", "gzip"),
        ("Connection", "upgrade"),
        ("X-Good", "tab\tand caf\u{e9}"),
    ];
    let head = response_head(200, &headers, Some(2), true, Version::Http11);
    assert_eq!(
        text(head),
        "HTTP/1.1 200 OK\r\nX-Good: tab\tand caf\u{e9}\r\nContent-Length: 2\r\n\r\n"
    );
}

#[test]
fn reason_phrases_and_odd_statuses() {
    for (status, reason) in [
        (100, "Continue"),
        (200, "OK"),
        (202, "Accepted"),
        (204, "No Content"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (406, "Not Acceptable"),
        (409, "Conflict"),
        (411, "Length Required"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (415, "Unsupported Media Type"),
        (421, "Misdirected Request"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
        (418, "Unknown"),
    ] {
        assert_eq!(reason_phrase(status), reason);
    }
    let head = text(response_head(299, &[], Some(0), true, Version::Http11));
    assert!(head.starts_with("HTTP/1.1 299 Unknown\r\n"));
    for odd in [0, 42, 1000, u16::MAX] {
        let head = text(response_head(odd, &[], Some(0), true, Version::Http11));
        assert!(
            head.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{odd}"
        );
    }
}

#[test]
fn chunk_framing() {
    assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
    let big = chunk(&[b'a'; 255]);
    assert!(big.starts_with(b"ff\r\naaa"));
    assert!(big.ends_with(b"a\r\n"));
    assert_eq!(chunk(b""), b"");
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
}

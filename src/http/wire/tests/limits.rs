//! Unit tests for the limits of `parse_head`: each is enforced, at once, and exactly.

use super::super::*;
use super::{limits, refused, with_field};

#[test]
fn a_long_request_line_is_refused_before_its_line_end_arrives() {
    let max = limits().max_request_line;
    let mut line = b"GET /".to_vec();
    line.resize(max, b'a');
    assert_eq!(parse_head(&line, &limits()), Ok(None));
    line.push(b'\r');
    assert_eq!(
        parse_head(&line, &limits()),
        Ok(None),
        "the CR may start the CRLF"
    );
    line.pop();
    line.push(b'a');
    assert_eq!(parse_head(&line, &limits()), Err(HeadError::UriTooLong));
    // The same line, complete, is refused the same way.
    line.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(parse_head(&line, &limits()), Err(HeadError::UriTooLong));
}

#[test]
fn a_request_line_of_exactly_the_limit_is_accepted() {
    let max = limits().max_request_line;
    let mut text = "GET /".to_owned();
    text.push_str(&"a".repeat(max - "GET / HTTP/1.1".len()));
    text.push_str(" HTTP/1.1");
    assert_eq!(text.len(), max);
    let buf = format!("{text}\r\nHost: h\r\n\r\n");
    assert!(matches!(parse_head(buf.as_bytes(), &limits()), Ok(Some(_))));
}

#[test]
fn leading_empty_lines_count_toward_the_request_line_limit() {
    let max = limits().max_request_line;
    assert_eq!(parse_head(&vec![b'\n'; max], &limits()), Ok(None));
    assert_eq!(
        parse_head(&vec![b'\n'; max + 1], &limits()),
        Err(HeadError::UriTooLong)
    );
    let buf = format!("\r\n{}", "GET /".to_owned() + &"a".repeat(max - 6));
    assert_eq!(
        parse_head(buf.as_bytes(), &limits()),
        Err(HeadError::UriTooLong)
    );
}

#[test]
fn binary_noise_is_refused_without_waiting_for_a_line_end() {
    // The start of a TLS ClientHello.
    assert_eq!(
        parse_head(b"\x16\x03\x01\x02\x00", &limits()).map_err(|e| e.status()),
        Err(400)
    );
    assert_eq!(
        parse_head(b"GET /\xc3", &limits()).map_err(|e| e.status()),
        Err(400)
    );
    let partial_field = b"GET / HTTP/1.1\r\nHost: h\x00";
    assert_eq!(
        parse_head(partial_field, &limits()).map_err(|e| e.status()),
        Err(400)
    );
}

#[test]
fn header_count_is_capped() {
    let fields =
        |n: usize| -> String { (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>() };
    let ok = format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", fields(99));
    assert!(matches!(parse_head(ok.as_bytes(), &limits()), Ok(Some(_))));
    let over = format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", fields(100));
    assert_eq!(refused(over.as_bytes()), HeadError::TooManyHeaders);
    assert_eq!(HeadError::TooManyHeaders.status(), 431);
    // Refused as soon as the 101st field line is complete, before the head ends.
    let early = format!("GET / HTTP/1.1\r\nHost: h\r\n{}", fields(100));
    assert_eq!(
        parse_head(early.as_bytes(), &limits()),
        Err(HeadError::TooManyHeaders)
    );
}

#[test]
fn a_long_header_line_is_refused_with_or_without_its_line_end() {
    let big = format!("X-Big: {}", "a".repeat(9 * 1024));
    let complete = with_field(&big);
    assert_eq!(refused(complete.as_bytes()), HeadError::HeaderTooLarge);
    let partial = format!("GET / HTTP/1.1\r\nHost: h\r\n{big}");
    assert_eq!(
        parse_head(partial.as_bytes(), &limits()),
        Err(HeadError::HeaderTooLarge)
    );
    assert_eq!(HeadError::HeaderTooLarge.status(), 431);
    // Exactly at the limit is fine.
    let max = limits().max_header_line;
    let at_limit = format!("X-Big: {}", "a".repeat(max - 7));
    assert_eq!(at_limit.len(), max);
    assert!(matches!(
        parse_head(with_field(&at_limit).as_bytes(), &limits()),
        Ok(Some(_))
    ));
}

#[test]
fn the_whole_head_is_capped() {
    let field = format!("X-Big: {}\r\n", "a".repeat(8000));
    let many = field.repeat(9);
    let complete = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    assert_eq!(refused(complete.as_bytes()), HeadError::HeadTooLarge);
    let partial = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}");
    assert_eq!(
        parse_head(partial.as_bytes(), &limits()),
        Err(HeadError::HeadTooLarge)
    );
    let small = Limits {
        max_head: 40,
        ..limits()
    };
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n", &small),
        Ok(None)
    );
    assert_eq!(
        parse_head(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1234567890123456",
            &small
        ),
        Err(HeadError::HeadTooLarge)
    );
    assert_eq!(HeadError::HeadTooLarge.status(), 431);
}

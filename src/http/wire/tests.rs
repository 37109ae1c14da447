//! Unit tests for the HTTP wire core: heads, bodies, responses.

use super::*;

fn limits() -> Limits {
    Limits::default()
}

/// Parses a complete head, checking on the way that every shorter prefix asks for more bytes.
fn parsed(text: &str) -> (Head, usize) {
    let buf = text.as_bytes();
    let (head, n) = parse_head(buf, &limits())
        .expect("head is valid")
        .expect("head is complete");
    for cut in 0..n {
        let prefix = buf.get(..cut).expect("cut within buf");
        assert_eq!(
            parse_head(prefix, &limits()),
            Ok(None),
            "prefix {cut} of {text:?}"
        );
    }
    let again = parse_head(buf.get(..n).expect("n within buf"), &limits());
    assert_eq!(again, Ok(Some((head.clone(), n))));
    (head, n)
}

/// The error for a bad input; every prefix must either ask for more or fail the same way
/// (a refused prefix implies a refused whole).
fn refused(buf: &[u8]) -> HeadError {
    refused_with(buf, &limits())
}

fn refused_with(buf: &[u8], limits: &Limits) -> HeadError {
    let err = parse_head(buf, limits).expect_err("input is refused");
    // Every cut of a short input; a sample of cuts of a long one (each parse is linear).
    let stride = if buf.len() <= 4096 { 1 } else { 61 };
    let cuts = (0..buf.len())
        .step_by(stride)
        .chain(buf.len().saturating_sub(16)..buf.len());
    for cut in cuts {
        let prefix = buf.get(..cut).expect("cut within buf");
        if let Err(prefix_err) = parse_head(prefix, limits) {
            assert_eq!(prefix_err.status(), err.status(), "prefix {cut}");
        }
    }
    err
}

fn status(text: &str) -> u16 {
    refused(text.as_bytes()).status()
}

fn with_field(field: &str) -> String {
    format!("POST /mcp HTTP/1.1\r\nHost: gate\r\n{field}\r\n\r\n")
}

#[test]
fn a_simple_head_is_read_field_by_field() {
    let text = "GET /mcp/ws?x=1&y=2 HTTP/1.1\r\nHost: gate:8080\r\nX-Thing: \t  a  b \t\r\n\
                x-thing: second\r\nAccept:\r\n\r\n";
    let (head, n) = parsed(text);
    assert_eq!(n, text.len());
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.method.as_str(), "GET");
    assert_eq!(head.target, "/mcp/ws?x=1&y=2");
    assert_eq!(head.path(), "/mcp/ws");
    assert_eq!(head.query(), "x=1&y=2");
    assert_eq!(head.version, Version::Http11);
    let names: Vec<_> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Host", "gate:8080"),
            ("X-Thing", "a  b"),
            ("x-thing", "second"),
            ("Accept", "")
        ]
    );
    assert_eq!(head.header("x-THING"), Some("a  b"));
    assert_eq!(head.header("missing"), None);
    assert_eq!(head.body, Framing::None);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
}

#[test]
fn path_and_query_without_a_query() {
    let (head, _) = parsed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((head.path(), head.query()), ("/", ""));
    let (head, _) = parsed("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((head.path(), head.query()), ("/a", "b?c"));
}

#[test]
fn bare_lf_line_ends_and_leading_empty_lines_are_accepted() {
    let text = "GET / HTTP/1.1\nHost: h\n\n";
    let (lf, n) = parsed(text);
    assert_eq!(n, text.len());
    let (crlf, _) = parsed("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(lf, crlf);
}

#[test]
fn a_head_split_at_every_byte_boundary_parses_the_same() {
    // `head` checks every prefix; here the bytes after the head (a body) must not matter either.
    let text = "POST /mcp HTTP/1.1\r\nHost: gate\r\nContent-Length: 5\r\n\r\n";
    let (whole, n) = parsed(text);
    let with_body = format!("{text}hello");
    let parsed = parse_head(with_body.as_bytes(), &limits());
    assert_eq!(parsed, Ok(Some((whole, n))));
}

#[test]
fn pipelined_requests_are_read_one_at_a_time() {
    let first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let second = "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let buf = format!("{first}{second}");
    let (head_a, n) = parse_head(buf.as_bytes(), &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!((head_a.target.as_str(), n), ("/a", first.len()));
    let rest = buf.as_bytes().get(n..).expect("n within buf");
    let (head_b, m) = parse_head(rest, &limits())
        .expect("valid")
        .expect("complete");
    assert_eq!(
        (head_b.target.as_str(), m, head_b.keep_alive),
        ("/b", second.len(), false)
    );
}

#[test]
fn methods_are_case_sensitive_tokens() {
    for (text, method) in [
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("PATCH", Method::Patch),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("get", Method::Other("get".to_owned())),
        ("M-SEARCH", Method::Other("M-SEARCH".to_owned())),
    ] {
        let (head, _) = parsed(&format!("{text} / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert_eq!(head.method.as_str(), text);
        assert_eq!(head.method, method);
    }
    assert_eq!(status("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(" / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn the_request_line_is_three_parts_and_single_spaces() {
    for line in [
        "GET  / HTTP/1.1",
        "GET / HTTP/1.1 ",
        " GET / HTTP/1.1",
        "GET\t/ HTTP/1.1",
        "GET / HTTP/1.1 extra",
        "GET /a b HTTP/1.1",
    ] {
        assert_eq!(
            status(&format!("{line}\r\nHost: h\r\n\r\n")),
            400,
            "{line:?}"
        );
    }
}

#[test]
fn a_request_line_without_a_version_is_http_0_9_and_refused() {
    assert_eq!(status("GET /\r\n\r\n"), 400);
    // Refused as soon as the line is complete.
    assert_eq!(
        parse_head(b"GET /\r\n", &limits()).map_err(|e| e.status()),
        Err(400)
    );
}

#[test]
fn other_http_versions_are_505_and_non_http_is_400() {
    for version in [
        "HTTP/2.0",
        "HTTP/1.2",
        "HTTP/3",
        "HTTP/2",
        "HTTP/0.9",
        "HTTP/10.10",
    ] {
        assert_eq!(
            status(&format!("GET / {version}\r\nHost: h\r\n\r\n")),
            505,
            "{version}"
        );
    }
    assert_eq!(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
    for version in [
        "http/1.1",
        "HTTP/1.1x",
        "HTTP/",
        "HTTP/1.",
        "HTTP/.1",
        "HTTPS/1.1",
        "1.1",
    ] {
        assert_eq!(
            status(&format!("GET / {version}\r\nHost: h\r\n\r\n")),
            400,
            "{version}"
        );
    }
}

#[test]
fn targets_are_origin_form_or_an_asterisk_for_options() {
    let (options, _) = parsed("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        (options.target.as_str(), options.path(), options.query()),
        ("*", "*", "")
    );
    for target in [
        "*",
        "http://gate/mcp",
        "gate:443",
        "mcp",
        "/a#frag",
        "/caf\u{e9}",
        "/a\x01b",
        "/a\x7fb",
    ] {
        assert_eq!(
            status(&format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")),
            400,
            "{target:?}"
        );
    }
    assert_eq!(status("GET  HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn field_lines_are_strict() {
    for field in [
        " X-Folded: yes",
        "\tX-Folded: yes",
        "X-Space : v",
        "X-Space\t: v",
        "No colon",
        ": empty name",
        "X(y): v",
        "X-Ctl: a\x01b",
        "X-Del: a\x7fb",
        "X-Cr: a\rb",
        "X-Nul: \x00",
    ] {
        assert_eq!(status(&with_field(field)), 400, "{field:?}");
    }
    // obs-fold: a continuation line after a field.
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  b\r\n\r\n"),
        400
    );
    // Whitespace between the request line and the first field.
    assert_eq!(status("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
    // A CR not followed by LF is not a line end.
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\rHost: h\r\n\r\n"), 400);
}

#[test]
fn field_values_are_utf8() {
    let (head, _) = parsed(&with_field("X-Name: caf\u{e9}"));
    assert_eq!(head.header("x-name"), Some("caf\u{e9}"));
    let latin1 = b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n";
    assert_eq!(refused(latin1).status(), 400);
}

#[test]
fn content_length_is_digits_and_all_copies_agree() {
    let framing = |fields: &str| parsed(&with_field(fields)).0.body;
    assert_eq!(framing("Content-Length: 5"), Framing::Length(5));
    assert_eq!(framing("Content-Length: 0"), Framing::Length(0));
    assert_eq!(framing("Content-Length: 5, 5"), Framing::Length(5));
    assert_eq!(
        framing("Content-Length: 5\r\ncontent-length: 5"),
        Framing::Length(5)
    );
    assert_eq!(framing("Content-Length: 005"), Framing::Length(5));
    for fields in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: -1",
        "Content-Length: +5",
        "Content-Length: 0x5",
        "Content-Length: 5 5",
        "Content-Length: 5,",
        "Content-Length: ,5",
        "Content-Length: ",
        "Content-Length: 5.0",
        "Content-Length: 99999999999999999999999",
        "Content-Length: 18446744073709551616",
    ] {
        assert_eq!(status(&with_field(fields)), 400, "{fields:?}");
    }
}

#[test]
fn content_length_over_max_body_is_413() {
    let max = limits().max_body;
    let ok = with_field(&format!("Content-Length: {max}"));
    assert_eq!(parsed(&ok).0.body, Framing::Length(max as u64));
    let over = with_field(&format!("Content-Length: {}", max + 1));
    assert_eq!(refused(over.as_bytes()), HeadError::BodyTooLarge);
    assert_eq!(
        status(&with_field("Content-Length: 18446744073709551615")),
        413
    );
}

#[test]
fn transfer_encoding_is_chunked_only() {
    assert_eq!(
        parsed(&with_field("Transfer-Encoding: chunked")).0.body,
        Framing::Chunked
    );
    assert_eq!(
        parsed(&with_field("transfer-encoding: ChUnKeD")).0.body,
        Framing::Chunked
    );
    for fields in [
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked;q=1",
    ] {
        assert_eq!(status(&with_field(fields)), 501, "{fields:?}");
    }
    for fields in [
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Content-Length: 5\r\nTransfer-Encoding: gzip",
        "Transfer-Encoding: chunked,",
        "Transfer-Encoding: ",
    ] {
        assert_eq!(status(&with_field(fields)), 400, "{fields:?}");
    }
    let http10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status(http10), 400);
}

#[test]
fn host_is_required_once_on_http_1_1() {
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    let (head, _) = parsed("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((head.version, head.body), (Version::Http10, Framing::None));
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    let keep = |text: &str| parsed(text).0.keep_alive;
    assert!(keep("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(!keep(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keep(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"
    ));
    assert!(!keep(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
    assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!keep(
        "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
}

#[test]
fn expect_continue_is_case_insensitive_and_http_1_1_only() {
    let expect = |text: &str| parsed(text).0.expect_continue;
    assert!(expect(&with_field(
        "Expect: 100-Continue\r\nContent-Length: 3"
    )));
    assert!(!expect(&with_field("Expect: something-else")));
    assert!(!expect("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
}

#[test]
fn errors_map_to_statuses_and_never_echo_input() {
    let cases = [
        (HeadError::UriTooLong, 414),
        (HeadError::HeaderTooLarge, 431),
        (HeadError::TooManyHeaders, 431),
        (HeadError::HeadTooLarge, 431),
        (HeadError::BadRequest("x"), 400),
        (HeadError::VersionNotSupported, 505),
        (HeadError::BodyTooLarge, 413),
        (HeadError::NotImplemented("x"), 501),
    ];
    for (err, code) in cases {
        assert_eq!(err.status(), code);
        assert!(!err.reason().is_empty());
    }
    let hostile = "GET /EVIL HTTP/1.1\r\nHost: h\r\nEVIL : EVIL\r\n\r\n";
    let err = refused(hostile.as_bytes());
    assert!(!err.reason().contains("EVIL"));
    assert!(!err.to_string().contains("EVIL"));
}

mod body;
mod limits;
mod response;

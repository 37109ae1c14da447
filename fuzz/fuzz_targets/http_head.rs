//! Fuzz target: the HTTP/1.1 wire core (request heads, request bodies, response heads).
//! Properties: never panics; a complete head is `buf[..n]` with `n <= buf.len()` and parses the
//! same again; a refused prefix means a refused whole; `Ok(None)` never holds more than
//! `max_head` bytes; a body fed whole or in pieces decodes the same and never grows past
//! `max_body`; a response head never carries a CR or LF from a caller's field.
#![no_main]

use aegis_gate::http::wire::{
    chunk, parse_head, response_head, BodyReader, Framing, HeadError, Limits, Version, LAST_CHUNK,
};
use libfuzzer_sys::fuzz_target;

fn small_limits() -> Limits {
    Limits {
        max_request_line: 64,
        max_header_line: 48,
        max_head: 256,
        max_headers: 6,
        max_body: 96,
        // Head and body framing only: no credential is asked for here.
        credential_headers: &[],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, buf)) = data.split_first() else {
        return;
    };
    let limits = if ctrl & 1 == 0 {
        Limits::default()
    } else {
        small_limits()
    };
    let piece = usize::from(ctrl >> 4) + 1;

    let whole = parse_head(buf, &limits);
    match &whole {
        Ok(Some((head, n))) => {
            assert!(*n <= buf.len());
            assert!(*n <= limits.max_head);
            assert!(head.headers.len() <= limits.max_headers);
            assert!(head.target.starts_with('/') || head.target == "*");
            if let Framing::Length(len) = head.body {
                assert!(len <= limits.max_body as u64);
            }
            let again = parse_head(&buf[..*n], &limits);
            assert_eq!(again.as_ref(), Ok(&Some((head.clone(), *n))));
            check_body(head.body, &limits, &buf[*n..], piece);
        }
        Ok(None) => assert!(buf.len() <= limits.max_head),
        Err(err) => assert!(!err.reason().is_empty()),
    }

    // A prefix decides nothing the whole contradicts.
    let cut = usize::from(ctrl).min(buf.len());
    match parse_head(&buf[..cut], &limits) {
        Err(_) => assert!(whole.is_err(), "prefix refused, whole accepted"),
        Ok(Some(found)) => assert_eq!(whole, Ok(Some(found))),
        Ok(None) => {}
    }

    // The raw input as a body, both framings.
    check_body(Framing::Chunked, &limits, buf, piece);
    let declared = u64::from(ctrl) * 3;
    check_body(Framing::Length(declared), &limits, buf, piece);

    check_response(ctrl, buf);
});

/// Decodes `input` whole and in `piece`-sized pieces: same answer, `out` within `max_body`.
fn check_body(framing: Framing, limits: &Limits, input: &[u8], piece: usize) {
    let mut whole_out = Vec::new();
    let whole = BodyReader::new(framing, limits).feed(input, &mut whole_out);
    assert!(whole_out.len() <= limits.max_body);
    if let Ok((used, done)) = whole {
        assert!(used <= input.len());
        assert!(done || used == input.len(), "not done but input left over");
    }

    let mut reader = BodyReader::new(framing, limits);
    let mut out = Vec::new();
    let mut used_total = 0;
    let mut pieces: Result<(usize, bool), HeadError> = Ok((0, input.is_empty()));
    if input.is_empty() {
        pieces = reader.feed(input, &mut out);
    }
    for part in input.chunks(piece) {
        match reader.feed(part, &mut out) {
            Ok((used, done)) => {
                assert!(used <= part.len());
                used_total += used;
                pieces = Ok((used_total, done));
                if done {
                    break;
                }
                assert_eq!(used, part.len());
            }
            Err(err) => {
                pieces = Err(err);
                break;
            }
        }
        assert!(out.len() <= limits.max_body);
    }
    assert!(out.len() <= limits.max_body);
    assert_eq!(whole, pieces, "whole vs pieces");
    assert_eq!(whole_out, out);

    // What `chunk` writes, `BodyReader` reads back.
    if framing == Framing::Chunked && input.len() <= limits.max_body {
        let mut wire = Vec::new();
        for part in input.chunks(piece) {
            wire.extend_from_slice(&chunk(part));
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut back = Vec::new();
        let res = BodyReader::new(Framing::Chunked, limits).feed(&wire, &mut back);
        assert_eq!(res, Ok((wire.len(), true)));
        assert_eq!(back, input);
    }
}

/// Fields made of the input never break the head's lines.
fn check_response(ctrl: u8, buf: &[u8]) {
    let text = String::from_utf8_lossy(buf);
    let parts: Vec<&str> = text.split('|').collect();
    let fields: Vec<(&str, &str)> = parts
        .chunks(2)
        .map(|pair| (pair[0], pair.get(1).copied().unwrap_or("")))
        .collect();
    let status = u16::from(ctrl) * 4;
    let body_len = (ctrl & 2 == 0).then_some(usize::from(ctrl));
    let version = if ctrl & 4 == 0 {
        Version::Http11
    } else {
        Version::Http10
    };
    let head = response_head(status, &fields, body_len, ctrl & 8 == 0, version);
    let head = String::from_utf8(head).expect("built from str");
    assert!(head.starts_with("HTTP/1.1 "));
    let lines = head
        .strip_suffix("\r\n\r\n")
        .expect("the head ends with an empty line");
    let mut framing_fields = 0;
    for (idx, line) in lines.split("\r\n").enumerate() {
        assert!(!line.is_empty(), "an empty line inside the head");
        assert!(!line.contains(['\r', '\n']), "a bare CR or LF in {line:?}");
        if idx > 0 {
            let (name, _) = line.split_once(':').expect("a field line has a colon");
            assert!(!name.is_empty() && !name.contains([' ', '\t']));
            let lower = name.to_ascii_lowercase();
            if lower == "content-length" || lower == "transfer-encoding" {
                framing_fields += 1;
            }
        }
    }
    assert!(framing_fields <= 1);
}

//! Unit tests for `BodyReader`: length and chunked bodies, fed whole and byte by byte.

use super::super::*;

fn limits() -> Limits {
    Limits::default()
}

/// Feeds `input` whole; returns the body, the bytes used and whether it completed.
fn feed_whole(
    framing: Framing,
    limits: &Limits,
    input: &[u8],
) -> Result<(Vec<u8>, usize, bool), HeadError> {
    let mut reader = BodyReader::new(framing, limits);
    let mut out = Vec::new();
    let (used, done) = reader.feed(input, &mut out)?;
    Ok((out, used, done))
}

/// Feeds `input` one byte at a time, stopping when the body completes.
fn feed_bytes(
    framing: Framing,
    limits: &Limits,
    input: &[u8],
) -> Result<(Vec<u8>, usize, bool), HeadError> {
    let mut reader = BodyReader::new(framing, limits);
    let mut out = Vec::new();
    let mut used = 0;
    for byte in input {
        let (n, done) = reader.feed(std::slice::from_ref(byte), &mut out)?;
        used += n;
        if done {
            return Ok((out, used, true));
        }
    }
    let (n, done) = reader.feed(&[], &mut out)?;
    Ok((out, used + n, done))
}

/// Both ways of feeding agree; returns their common answer.
fn decode(
    framing: Framing,
    limits: &Limits,
    input: &[u8],
) -> Result<(Vec<u8>, usize, bool), HeadError> {
    let whole = feed_whole(framing, limits, input);
    let bytes = feed_bytes(framing, limits, input);
    assert_eq!(whole, bytes, "whole vs byte by byte for {input:?}");
    whole
}

fn chunked_err(input: &[u8]) -> HeadError {
    decode(Framing::Chunked, &limits(), input).expect_err("refused")
}

#[test]
fn no_framing_is_an_empty_body() {
    assert_eq!(
        decode(Framing::None, &limits(), b"GET"),
        Ok((vec![], 0, true))
    );
    assert_eq!(
        decode(Framing::Length(0), &limits(), b"GET"),
        Ok((vec![], 0, true))
    );
}

#[test]
fn a_length_body_stops_at_its_length() {
    assert_eq!(
        decode(Framing::Length(5), &limits(), b"helloGET /"),
        Ok((b"hello".to_vec(), 5, true))
    );
    assert_eq!(
        decode(Framing::Length(5), &limits(), b"hel"),
        Ok((b"hel".to_vec(), 3, false))
    );
}

#[test]
fn a_length_body_split_anywhere_decodes_the_same() {
    let input = b"0123456789";
    for cut in 0..=input.len() {
        let mut reader = BodyReader::new(Framing::Length(10), &limits());
        let mut out = Vec::new();
        let (first, second) = input.split_at(cut);
        let (a, done_a) = reader.feed(first, &mut out).expect("ok");
        let (b, done_b) = reader.feed(second, &mut out).expect("ok");
        assert_eq!((a + b, done_a, done_b), (10, cut == 10, true));
        assert_eq!(out, input);
    }
}

#[test]
fn a_length_over_max_body_is_413() {
    let small = Limits {
        max_body: 4,
        ..limits()
    };
    assert_eq!(
        decode(Framing::Length(5), &small, b"hello"),
        Err(HeadError::BodyTooLarge)
    );
    assert_eq!(
        decode(Framing::Length(4), &small, b"hell"),
        Ok((b"hell".to_vec(), 4, true))
    );
}

#[test]
fn a_chunked_body_decodes_whole_and_byte_by_byte() {
    let input = b"5\r\nhello\r\n6;name=value;x\r\n world\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT";
    let used = input.len() - 4;
    assert_eq!(
        decode(Framing::Chunked, &limits(), input),
        Ok((b"hello world0123456789".to_vec(), used, true))
    );
}

#[test]
fn chunked_framing_accepts_bare_lf_extensions_and_trailers() {
    let input = b"3\nabc\n3 ; ext\r\ndef\r\n0;last\r\nX-Trailer: 1\r\nY: 2\n\r\nNEXT";
    let used = input.len() - 4;
    assert_eq!(
        decode(Framing::Chunked, &limits(), input),
        Ok((b"abcdef".to_vec(), used, true))
    );
    assert_eq!(
        decode(Framing::Chunked, &limits(), b"0\r\n"),
        Ok((vec![], 3, false))
    );
    assert_eq!(
        decode(Framing::Chunked, &limits(), b"00000\r\n\r\n"),
        Ok((vec![], 9, true))
    );
}

#[test]
fn chunk_sizes_are_hex_digits_that_fit() {
    let fits = b"fFfFfFfFfFfFfFfF\r\n";
    let mut reader = BodyReader::new(Framing::Chunked, &limits());
    assert_eq!(
        reader.feed(fits, &mut Vec::new()),
        Err(HeadError::BodyTooLarge)
    );
    for line in [
        &b"10000000000000000\r\n"[..],
        b"\r\n",
        b";ext\r\n",
        b"0x5\r\n",
        b"-1\r\n",
        b"+5\r\n",
        b" 5\r\n",
        b"5 \r\n",
        b"5 x\r\n",
        b"g\r\n",
        b"5;a\x01b\r\n",
        b"5\r\r\n",
    ] {
        assert_eq!(chunked_err(line).status(), 400, "{line:?}");
    }
}

#[test]
fn a_chunk_size_line_is_bounded_without_waiting_for_its_end() {
    let mut long = vec![b'0'; MAX_CHUNK_LINE + 2];
    assert_eq!(chunked_err(&long).status(), 400);
    long.truncate(MAX_CHUNK_LINE);
    long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        decode(Framing::Chunked, &limits(), &long).map(|r| r.2),
        Ok(true)
    );
    let ext = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    assert_eq!(chunked_err(ext.as_bytes()).status(), 400);
}

#[test]
fn chunk_data_must_end_with_a_line_end() {
    for input in [
        &b"5\r\nhelloX"[..],
        b"5\r\nhello\rX",
        b"5\r\nhello\r\r\n",
        b"2\r\nhello\r\n",
    ] {
        assert_eq!(chunked_err(input).status(), 400, "{input:?}");
    }
}

#[test]
fn a_chunked_body_past_max_body_is_413_before_its_data_arrives() {
    let small = Limits {
        max_body: 10,
        ..limits()
    };
    assert_eq!(
        decode(Framing::Chunked, &small, b"b\r\n"),
        Err(HeadError::BodyTooLarge)
    );
    let two = b"6\r\nabcdef\r\n5\r\n";
    assert_eq!(
        decode(Framing::Chunked, &small, two),
        Err(HeadError::BodyTooLarge)
    );
    let exact = b"6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
    let decoded = decode(Framing::Chunked, &small, exact).map(|r| r.0);
    assert_eq!(decoded, Ok(b"abcdefghij".to_vec()));
}

#[test]
fn out_never_grows_past_max_body() {
    let small = Limits {
        max_body: 3,
        ..limits()
    };
    let mut reader = BodyReader::new(Framing::Chunked, &small);
    let mut out = Vec::new();
    let input = b"2\r\nab\r\n1\r\nc\r\n1\r\nd\r\n0\r\n\r\n";
    assert_eq!(reader.feed(input, &mut out), Err(HeadError::BodyTooLarge));
    assert_eq!(out, b"abc");
}

#[test]
fn trailers_are_bounded_and_strict() {
    let small = Limits {
        max_head: 20,
        max_header_line: 10,
        ..limits()
    };
    let ok = b"0\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(decode(Framing::Chunked, &small, ok).map(|r| r.2), Ok(true));
    let long_line = b"0\r\nA: 123456789\r\n\r\n";
    assert_eq!(
        decode(Framing::Chunked, &small, long_line).map_err(|e| e.status()),
        Err(400)
    );
    let many = b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(
        decode(Framing::Chunked, &small, many).map_err(|e| e.status()),
        Err(400)
    );
    for input in [
        &b"0\r\nA: 1\rB\r\n\r\n"[..],
        b"0\r\nA: \x00\r\n\r\n",
        b"0\r\n\r\r\n",
    ] {
        assert_eq!(chunked_err(input).status(), 400, "{input:?}");
    }
}

#[test]
fn a_failed_reader_keeps_failing() {
    let mut reader = BodyReader::new(Framing::Chunked, &limits());
    let mut out = Vec::new();
    let err = reader.feed(b"zz\r\n", &mut out).expect_err("refused");
    assert_eq!(reader.feed(b"0\r\n\r\n", &mut out), Err(err));
}

#[test]
fn a_done_reader_consumes_nothing_more() {
    let mut reader = BodyReader::new(Framing::Length(2), &limits());
    let mut out = Vec::new();
    assert_eq!(reader.feed(b"ab", &mut out), Ok((2, true)));
    assert_eq!(reader.feed(b"cd", &mut out), Ok((0, true)));
    assert_eq!(out, b"ab");
}

#[test]
fn chunks_written_by_chunk_read_back() {
    let mut wire = Vec::new();
    for piece in [&b"hello"[..], b"", &[b'x'; 300][..]] {
        wire.extend_from_slice(&chunk(piece));
    }
    wire.extend_from_slice(LAST_CHUNK);
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&[b'x'; 300]);
    assert_eq!(
        decode(Framing::Chunked, &limits(), &wire),
        Ok((expected, wire.len(), true))
    );
}

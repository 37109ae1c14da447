//! What can still be read of a frame that is not JSON-RPC: the id of the answer it seems to be,
//! so that the request it answers gets an error at once instead of waiting for its deadline.
//!
//! Owns: [`answered_id`], a lenient byte-level scan of a frame's top-level members: no tree and
//! no validation of values (a string is skipped to its closing quote, an object or an array to
//! its matching bracket, anything else to the next comma or closing brace), so it reads what a
//! strict parser refuses (a raw control character, a `NaN`, bytes that are not UTF-8, a line cut
//! short); and [`string_end`], the same lenient end of a string literal, which the result
//! cleaner (`sanitize::clean_result`) walks a payload's literals with.
//! Never: reads a value for anything but the id, or hands out any of the frame's text: the id is
//! a number the gate issued, which only says which request to answer with an error.

/// The id of the response a frame that [`super::parse`] refused seems to be: its top-level `id`
/// is an unsigned integer (the ids the gate gives its requests to a child are), and it has a
/// `result` or an `error` member and no `method`. `None` for anything else (a request, a
/// notification, an id that is not the gate's, no object at all).
pub fn answered_id(frame: &[u8]) -> Option<u64> {
    let members = top_level_members(frame);
    let has = |name: &[u8]| members.iter().any(|(key, _)| *key == name);
    if has(b"method") || !(has(b"result") || has(b"error")) {
        return None;
    }
    let (_, value) = members.iter().find(|(key, _)| *key == b"id")?;
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Each top-level member's key (its bytes between the quotes, as written) and value bytes, as
/// far as they can be read; a member whose value is cut short still counts by its key.
fn top_level_members(frame: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut members = Vec::new();
    let mut at = skip_space(frame, 0);
    if frame.get(at) != Some(&b'{') {
        return members;
    }
    at += 1;
    loop {
        at = skip_space(frame, at);
        if frame.get(at) != Some(&b'"') {
            return members;
        }
        let key_end = string_end(frame, at);
        let key = frame
            .get(at + 1..key_end.saturating_sub(1))
            .unwrap_or_default();
        at = skip_space(frame, key_end);
        if frame.get(at) != Some(&b':') {
            return members;
        }
        at = skip_space(frame, at + 1);
        let end = value_end(frame, at);
        members.push((key, frame.get(at..end).unwrap_or_default()));
        at = skip_space(frame, end);
        if frame.get(at) != Some(&b',') {
            return members;
        }
        at += 1;
    }
}

fn skip_space(frame: &[u8], mut at: usize) -> usize {
    while frame.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Where the string literal that opens at `start` (its quote) ends: one past its closing quote
/// (an escaped quote does not close it), or the end of `frame` for one that never closes. Always
/// a character boundary of UTF-8: a quote is one byte, and no byte of a multi-byte character is
/// a quote.
pub(crate) fn string_end(frame: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while let Some(&byte) = frame.get(at) {
        match byte {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    frame.len()
}

/// Where the value that starts at `start` ends (exclusive), or the frame's end.
fn value_end(frame: &[u8], start: usize) -> usize {
    match frame.get(start) {
        Some(b'"') => string_end(frame, start),
        Some(b'{' | b'[') => nested_end(frame, start),
        _ => {
            let mut at = start;
            while frame.get(at).is_some_and(|b| !matches!(b, b',' | b'}')) {
                at += 1;
            }
            at
        }
    }
}

/// One past the bracket that closes the object or array opening at `start`, or the frame's end.
fn nested_end(frame: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut at = start;
    while let Some(&byte) = frame.get(at) {
        match byte {
            b'"' => {
                at = string_end(frame, at);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    frame.len()
}

#[cfg(test)]
mod tests {
    use super::answered_id;

    #[test]
    fn the_id_of_an_answer_a_parser_refuses_is_read_and_nothing_else_is() {
        let cases: [(&[u8], Option<u64>); 12] = [
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"t\":\"a\x1bb\"}}",
                Some(7),
            ),
            (br#"{"jsonrpc":"2.0","id":8,"result":{"n":NaN}}"#, Some(8)),
            (
                br#"{"jsonrpc":"2.0","result":{"deep":[[{"id":1}]]}, "id" : 9 }"#,
                Some(9),
            ),
            (
                br#"{"jsonrpc":"2.0","id":10,"error":{"code":1,"message":"x"#,
                Some(10),
            ),
            (b"{\"id\":11,\"result\":\"\xff\xfe\"}", Some(11)),
            (
                br#"{"jsonrpc":"2.0","id":12,"method":"sampling/createMessage","params":NaN}"#,
                None,
            ),
            (br#"{"jsonrpc":"2.0","id":"s1","result":NaN}"#, None),
            (br#"{"jsonrpc":"2.0","id":-3,"result":NaN}"#, None),
            (br#"{"jsonrpc":"2.0","id":13}"#, None),
            (br#"[{"id":14,"result":1}]"#, None),
            (b"", None),
            (br#"{"id":99999999999999999999999,"result":NaN}"#, None),
        ];
        for (frame, want) in cases {
            assert_eq!(
                answered_id(frame),
                want,
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn any_bytes_are_scanned_without_a_panic() {
        let pieces: [&[u8]; 12] = [
            b"{", b"}", b"[", b"]", b"\"", b"\\", b":", b",", b"id", b"result", b"7", b"\xff",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut frame = Vec::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let idx = usize::try_from(state % 12).unwrap_or_default();
                frame.extend_from_slice(pieces.get(idx).copied().unwrap_or_default());
            }
            let _ = answered_id(&frame);
        }
    }
}

use super::*;

fn frames(reader: &mut LineReader, bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    reader.push(bytes, |f| match f {
        Frame::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
        Frame::Overlong => out.push("<overlong>".into()),
    });
    out
}

#[test]
fn lines_split_across_pushes() {
    let mut r = LineReader::new(100);
    assert_eq!(frames(&mut r, b"{\"a\":1}\n{\"b\""), vec!["{\"a\":1}"]);
    assert_eq!(frames(&mut r, b":2}\r\n\n  \n"), vec!["{\"b\":2}"]);
    assert_eq!(r.pending(), 0);
}

#[test]
fn overlong_line_is_reported_once_and_skipped_without_buffering() {
    let mut r = LineReader::new(8);
    assert_eq!(frames(&mut r, b"0123456789"), vec!["<overlong>"]);
    assert_eq!(r.pending(), 0);
    assert!(frames(&mut r, b"more bytes of the same line").is_empty());
    assert_eq!(frames(&mut r, b"tail\nok\n"), vec!["ok"]);
}

#[test]
fn overlong_line_ending_in_the_same_push() {
    let mut r = LineReader::new(4);
    assert_eq!(frames(&mut r, b"123456\nab\n"), vec!["<overlong>", "ab"]);
}

#[test]
fn classify_messages() {
    let m = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
    assert!(
        matches!(m, Message::Request { ref id, ref method, .. } if id.as_json() == "7" && method == "ping")
    );
    let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert!(matches!(m, Message::Notification { .. }));
    let m = parse(br#"{"jsonrpc":"2.0","id":"a","result":{"x": 1}}"#).unwrap();
    match m {
        Message::Response {
            outcome: Outcome::Result(r),
            ..
        } => assert_eq!(r.get(), r#"{"x": 1}"#),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_have_standard_codes() {
    assert_eq!(parse(b"{not json").unwrap_err().code(), code::PARSE_ERROR);
    assert_eq!(
        parse(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]").unwrap_err(),
        ParseError::Batch
    );
    assert_eq!(parse(b"[oops").unwrap_err().code(), code::PARSE_ERROR);
    assert_eq!(parse(b"42").unwrap_err().code(), code::INVALID_REQUEST);
    let e = parse(br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).unwrap_err();
    assert_eq!(e.id().map(Id::as_json), Some("3"));
    for bad_id in ["null", "1.5", "{}", "[1]", "true", "1e3"] {
        let line = format!(r#"{{"jsonrpc":"2.0","id":{bad_id},"method":"ping"}}"#);
        assert_eq!(
            parse(line.as_bytes()).unwrap_err().code(),
            code::INVALID_REQUEST,
            "{bad_id}"
        );
    }
    let e = parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err();
    assert_eq!(e.code(), code::INVALID_REQUEST);
}

#[test]
fn ids_are_echoed_byte_for_byte() {
    let m = parse(br#"{"jsonrpc":"2.0","id":"x\u0041y","method":"ping"}"#).unwrap();
    let Message::Request { id, .. } = m else {
        panic!()
    };
    let line = result_line(&id, "{}");
    assert_eq!(
        line,
        br#"{"jsonrpc":"2.0","id":"x\u0041y","result":{}}"#.to_vec()
    );
    let line = error_line(None, -32700, "parse error");
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["id"], serde_json::Value::Null);
    assert_eq!(v["error"]["code"], -32700);
}

#[test]
fn a_null_result_is_a_result() {
    let m = parse(br#"{"jsonrpc":"2.0","id":4,"result":null}"#).unwrap();
    assert!(
        matches!(m, Message::Response { outcome: Outcome::Result(ref r), .. } if r.get() == "null")
    );
}

#[test]
fn the_shallow_answer_reader_labels_as_the_full_parse_does() {
    let cases: [(&[u8], &str); 11] = [
        (br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, "ok"),
        (
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#,
            "tool_error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":"yes"}}"#,
            "ok",
        ),
        (
            br#"{"jsonrpc":"2.0","id":"a","result":{"resultType":"input_required"}}"#,
            "input_required",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"late"}}"#,
            "timeout",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#,
            "error_-32602",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#,
            "error_0",
        ),
        // Not plainly a response: the full parse decides.
        (br#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#, "ok"),
        (br#"{"jsonrpc":"2.0","id":1,"result":[true,null]}"#, "ok"),
        (br#"{"jsonrpc":"2.0","id":1,"error":[-32001]}"#, "error_0"),
        (br#"not json"#, "invalid"),
    ];
    for (line, label) in cases {
        assert_eq!(
            outcome_label(line),
            label,
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(
            full_outcome_label(line),
            label,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    let (id, label) = answer_of(br#"{"jsonrpc":"2.0","id":"x\"y","result":{}}"#).unwrap();
    assert_eq!((id.as_json(), label.as_str()), (r#""x\"y""#, "ok"));
    // Requests, notifications and results that are not objects are not read shallowly.
    for line in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#[..],
        br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":7}"#,
        br#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":[true,null]}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":null,"error":{"code":1}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{},"error":null}"#,
        br#"["2.0",1,null,{},null]"#,
    ] {
        assert!(
            answer_of(line).is_none(),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

//! Fuzz target: framing and classification of JSON-RPC input from an agent or a child.
//! Properties: never panics; no line handed out exceeds the cap; every parse error maps to a
//! standard code and renders as a valid JSON-RPC error line; reading what id an unreadable line
//! answers never panics either.
#![no_main]

use aegis_gate::jsonrpc::{self, code, Frame, LineReader};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::new(MAX);
    // Feed in two uneven pieces so that lines split across reads are exercised.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    for piece in [&data[..cut], &data[cut..]] {
        reader.push(piece, |frame| {
            let Frame::Line(line) = frame else { return };
            assert!(line.len() <= MAX);
            if let Err(e) = jsonrpc::parse(line) {
                let _ = jsonrpc::answered_id(line);
                assert!([code::PARSE_ERROR, code::INVALID_REQUEST].contains(&e.code()));
                let rendered: serde_json::Value =
                    serde_json::from_slice(&e.to_error_line()).expect("error line is JSON");
                assert_eq!(rendered["jsonrpc"], "2.0");
            }
        });
        assert!(reader.pending() <= MAX);
    }
});

//! Fuzz target: the result cleaner, the byte-level one every payload a server sends passes.
//! Properties: never panics; idempotent (what it passes on has nothing left to clean); no
//! character it names forbidden stands outside a string; a payload that was JSON stays JSON, and
//! none of its strings, keys included, holds a hidden character (line breaks are data).
#![no_main]

use aegis_gate::sanitize;
use libfuzzer_sys::fuzz_target;

fn is_hidden(c: char) -> bool {
    sanitize::is_forbidden(c) && !matches!(c, '\r' | '\n' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Every string of a JSON value, object keys included.
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let out = sanitize::clean_result(raw).unwrap_or_else(|| raw.to_owned());
    assert_eq!(sanitize::clean_result(&out), None, "not idempotent: {raw:?} -> {out:?}");
    let outside: String = out.split('"').step_by(2).collect();
    assert!(!outside.chars().any(is_hidden), "{out:?}");
    if serde_json::from_str::<serde_json::Value>(raw).is_ok() {
        let value: serde_json::Value = serde_json::from_str(&out).expect("JSON stays JSON");
        let mut found = Vec::new();
        strings(&value, &mut found);
        for s in found {
            assert!(!s.chars().any(is_hidden), "{s:?} in {out:?}");
            if !s.contains('\u{1f3f4}') {
                assert!(!s.chars().any(|c| ('\u{e0000}'..='\u{e007f}').contains(&c)), "{s:?}");
            }
        }
    }
});

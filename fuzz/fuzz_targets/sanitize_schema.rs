//! Fuzz target: the tool and schema sanitizers on any JSON.
//! Properties: never panics; a usable verdict never carries a forbidden code point in a
//! model-read string; sanitizing the cleaned tool again gives the same cleaned tool.
#![no_main]

use aegis_gate::sanitize::{self, Context, Limits};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn model_read(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        Value::String(s) if matches!(key, Some("description" | "title")) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| model_read(x, None, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| model_read(x, Some(k), out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<Value>(data) else { return };
    let tool = serde_json::json!({ "name": "t", "description": "d", "inputSchema": raw });
    let limits = Limits::default();
    let ctx = Context::default();
    let out = sanitize::sanitize_tool(&tool, &limits, &ctx);
    if out.verdict.is_usable() {
        let mut texts = Vec::new();
        model_read(&out.clean, None, &mut texts);
        assert!(texts.iter().all(|t| !t.chars().any(sanitize::is_forbidden)));
        let again = sanitize::sanitize_tool(&out.clean, &limits, &ctx);
        assert_eq!(again.clean, out.clean, "not idempotent");
    }
});

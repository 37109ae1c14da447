//! Tool results: hidden characters are stripped from text content before an agent reads it.
//!
//! Owns: the fast path (a byte scan; most results are forwarded untouched, never parsed) and the
//! slow path (parse, strip hidden code points from `content[].text` and embedded resource text,
//! re-serialize) taken only when the scan finds something that may be hidden.
//! Never: rewrites whitespace, markup or meaning of a result: it is data the agent asked for.

use super::text;
use serde_json::Value;

/// The cleaned result JSON, or `None` when the raw bytes can be forwarded untouched.
pub fn clean_result(raw: &str) -> Option<String> {
    if !may_hide_anything(raw.as_bytes()) {
        return None;
    }
    let mut value: Value = serde_json::from_str(raw).ok()?;
    let mut changed = false;
    if let Some(content) = value.get_mut("content").and_then(Value::as_array_mut) {
        for block in content {
            for text_field in text_fields(block) {
                if let Some(clean) = text::strip_hidden(text_field) {
                    *text_field = clean;
                    changed = true;
                }
            }
        }
    }
    if changed {
        serde_json::to_string(&value).ok()
    } else {
        None
    }
}

/// Plain printable ASCII without escapes hides nothing; anything else takes the slow path.
fn may_hide_anything(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !(0x20..0x80).contains(b)) || bytes.windows(2).any(|w| w == b"\\u")
}

fn text_fields(block: &mut Value) -> Vec<&mut String> {
    let Some(obj) = block.as_object_mut() else {
        return Vec::new();
    };
    let is_text = obj.get("type").and_then(Value::as_str) == Some("text");
    let mut out = Vec::new();
    for (key, value) in obj.iter_mut() {
        if key == "resource" {
            if let Some(Value::String(s)) = value.get_mut("text") {
                out.push(s);
            }
        } else if let (true, "text", Value::String(s)) = (is_text, key.as_str(), value) {
            out.push(s);
        }
    }
    out
}

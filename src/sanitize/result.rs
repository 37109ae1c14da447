//! Tool results: hidden characters are stripped from text content before an agent reads it.
//!
//! Owns: the fast path (a byte scan; a result of plain ASCII text is forwarded untouched, never
//! parsed) and the slow path (parse, strip hidden code points from every string but base64
//! payloads, re-serialize) taken when the scan finds a byte that may start or encode a hidden
//! character (any non-ASCII byte, a control byte, a `\u` escape). A re-serialized result keeps its values but not its formatting: keys
//! come out sorted, whitespace between tokens goes, numbers are printed again.
//! Never: changes the text of a string beyond removing hidden characters: a result is data the
//! agent asked for.

use super::text;
use serde_json::Value;

/// The cleaned result JSON, or `None` when the raw bytes can be forwarded untouched.
pub fn clean_result(raw: &str) -> Option<String> {
    if !may_hide_anything(raw.as_bytes()) {
        return None;
    }
    let mut value: Value = serde_json::from_str(raw).ok()?;
    let mut changed = false;
    strip_strings(&mut value, &mut changed);
    if changed {
        serde_json::to_string(&value).ok()
    } else {
        None
    }
}

/// Strips hidden code points from every string of the result (text content, structured content,
/// resource links, annotations), except base64 payloads (`data`, `blob`), which are not text.
fn strip_strings(value: &mut Value, changed: &mut bool) {
    match value {
        Value::String(s) => {
            if let Some(clean) = text::strip_hidden(s) {
                *s = clean;
                *changed = true;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_strings(v, changed)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key != "data" && key != "blob" {
                    strip_strings(v, changed);
                }
            }
        }
        _ => {}
    }
}

/// Plain printable ASCII without escapes hides nothing; anything else takes the slow path.
fn may_hide_anything(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !(0x20..0x80).contains(b)) || bytes.windows(2).any(|w| w == b"\\u")
}

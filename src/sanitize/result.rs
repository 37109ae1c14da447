//! What servers send as data at call time: hidden characters are stripped before an agent reads
//! it.
//!
//! Owns: [`clean_result`], for any JSON payload a server sends as data: a `tools/call`,
//! `prompts/get` or `resources/read` result, the params of a `notifications/message` (whose `data`
//! may be any JSON). Its fast path is a byte scan: plain ASCII without escapes is forwarded
//! untouched, never parsed. Its slow path (parse, strip hidden code points from every string,
//! re-serialize) is taken when the scan finds a byte that may start or encode a hidden character
//! (any non-ASCII byte, a control byte, a `\u` escape). A re-serialized payload keeps its values
//! but not its formatting: keys come out sorted, whitespace between tokens goes, numbers are
//! printed again. Also [`clean_text`], the same stripping for one bare string (a progress
//! notification's `message`), with findings and a length cap.
//! Never: changes the text of a string beyond removing hidden characters (a payload is data the
//! agent asked for), runs the detectors or decides a verdict; base64 payloads (`data`, `blob`)
//! are printable ASCII and come out as they went in.

use super::finding::{Finding, Kind};
use super::{text, Limits};
use serde_json::Value;

/// The cleaned JSON, or `None` when the raw bytes can be forwarded untouched.
///
/// Any JSON payload a server sends as data fits: a `tools/call`, `prompts/get` or
/// `resources/read` result, or the params of a `notifications/message`. Object keys are not
/// changed.
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

/// One bare string sent as data (a progress notification's `message`): hidden characters
/// stripped, then cut at [`Limits::message_chars`]. The findings (at `message`) say what was
/// removed, for the log; they make no verdict, since the text is never held.
pub fn clean_text(input: &str, limits: &Limits) -> (String, Vec<Finding>) {
    let mut findings = Vec::new();
    let stripped = text::strip_hidden_at(input, "message", &mut findings);
    let text = stripped.as_deref().unwrap_or(input);
    let n_chars = text.chars().count();
    if n_chars <= limits.message_chars {
        return (stripped.unwrap_or_else(|| input.to_owned()), findings);
    }
    findings.push(Finding::new(
        "message",
        Kind::Truncated,
        format!("{n_chars} characters cut to {}", limits.message_chars),
    ));
    let mut cut: String = text
        .chars()
        .take(limits.message_chars.saturating_sub(1))
        .collect();
    cut.push('…');
    (cut, findings)
}

/// Strips hidden code points from every string of the payload (text content, structured content,
/// resource contents and links, annotations, a log message's data). Base64 payloads (`data`,
/// `blob`) take the same walk: printable ASCII, they cost one scan and are never copied.
fn strip_strings(value: &mut Value, changed: &mut bool) {
    match value {
        Value::String(s) => {
            if let Some(clean) = text::strip_hidden(s) {
                *s = clean;
                *changed = true;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_strings(v, changed)),
        Value::Object(map) => map.values_mut().for_each(|v| strip_strings(v, changed)),
        _ => {}
    }
}

/// Plain printable ASCII without escapes hides nothing; anything else (DEL included) takes the slow
/// path.
fn may_hide_anything(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !(0x20..0x7f).contains(b)) || bytes.windows(2).any(|w| w == b"\\u")
}

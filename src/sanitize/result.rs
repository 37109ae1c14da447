//! What servers send as data at call time: hidden characters are stripped before an agent reads
//! it.
//!
//! Owns: [`clean_result`], for any JSON payload a server sends as data: a `tools/call`,
//! `prompts/get` or `resources/read` result, the params of a `notifications/message` (whose `data`
//! may be any JSON). Its fast path is a byte scan: plain ASCII without escapes is forwarded
//! untouched, never parsed. Its slow path walks the payload as text, string literal by string
//! literal (keys included, at any depth: no tree is built), and writes again only a string that
//! lost a hidden character; every other byte keeps the server's formatting. A string literal
//! that does not decode becomes empty (the cleaner fails closed). Also [`clean_text`], the same
//! stripping for one bare string (a progress notification's `message`), with findings and a
//! length cap.
//! Never: changes the text of a string beyond removing hidden characters (a payload is data the
//! agent asked for), runs the detectors or decides a verdict; base64 payloads (`data`, `blob`)
//! are printable ASCII and come out as they went in.

use super::finding::{Finding, Kind};
use super::{text, Limits};

/// The cleaned JSON, or `None` when the raw bytes can be forwarded untouched.
///
/// Any JSON payload a server sends as data fits: a `tools/call`, `prompts/get` or
/// `resources/read` result, or the params of a `notifications/message`. Every string is
/// cleaned, object keys included, at any depth: the payload is walked as text, string by
/// string (no tree is built, so no nesting limit lets anything through), and only a string that
/// lost a hidden character is written again; every other byte stays as the server sent it.
pub fn clean_result(raw: &str) -> Option<String> {
    if !may_hide_anything(raw.as_bytes()) {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut changed = false;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(bytes, i);
        let literal = &raw[i..end];
        if let Some(clean) = clean_literal(literal) {
            out.push_str(&raw[copied..i]);
            out.push_str(&clean);
            copied = end;
            changed = true;
        }
        i = end;
    }
    if !changed {
        return None;
    }
    out.push_str(&raw[copied..]);
    Some(out)
}

/// Where the string literal that starts at `start` (its opening quote) ends: one past its
/// closing quote, or the end of the input for one that never closes.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A string literal without its hidden characters, re-encoded; `None` when it hides none. A
/// literal that does not decode is replaced by an empty string (never passed on unread).
fn clean_literal(literal: &str) -> Option<String> {
    if !may_hide_anything(literal.as_bytes()) {
        return None;
    }
    let Ok(decoded) = serde_json::from_str::<String>(literal) else {
        return Some("\"\"".to_owned());
    };
    let clean = text::strip_hidden(&decoded)?;
    serde_json::to_string(&clean).ok()
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

/// Plain printable ASCII without escapes hides nothing; anything else (DEL included) takes the slow
/// path.
fn may_hide_anything(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !(0x20..0x7f).contains(b)) || bytes.windows(2).any(|w| w == b"\\u")
}

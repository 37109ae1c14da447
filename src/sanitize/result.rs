//! What servers send as data at call time: hidden characters are stripped before an agent reads
//! it.
//!
//! Owns: [`clean_result`], for any JSON payload a server sends: a `tools/call`, `prompts/get`,
//! `resources/read` or `completion/complete` result, an error object (its `message` and `data`),
//! the params of a `notifications/progress` or `notifications/message` (whose `data` may be any
//! JSON), the params of a server's request to an agent (sampling, elicitation). Its fast path is
//! a byte scan: plain ASCII without a `\u`, `\b` or `\f` escape is forwarded untouched, never
//! parsed. Its slow path is a byte-level cleaner: it walks the payload as text, string literal
//! by string literal (keys included, at any depth), and writes again only a string that lost
//! something; every other byte keeps the server's formatting. It builds no tree and parses no
//! number, so nothing a tree parser refuses (`1e400`, nesting deeper than 128) makes it give up:
//! it fails closed by construction. A literal is decoded leniently (a lone surrogate or an
//! invalid escape is dropped, a literal that never closes ends where the payload ends), and a
//! character that is not JSON outside any literal is dropped, so even a payload that is not
//! JSON comes out with no hidden character. Also [`clean_text`], the same stripping for one bare
//! string, with findings and a length cap.
//! Never: changes the text of a string beyond removing hidden characters (a payload is data the
//! agent asked for), runs the detectors or decides a verdict; panics on any input; base64
//! payloads (`data`, `blob`) are printable ASCII and come out as they went in.

use super::finding::{Finding, Kind};
use super::{text, Limits};
use crate::jsonrpc::string_end;

/// The cleaned JSON, or `None` when the raw bytes can be forwarded untouched.
///
/// Any JSON payload a server sends fits (see the module's docs). Every string is cleaned,
/// object keys included, at any depth: the payload is walked as text, string by string (no tree
/// is built, so no nesting limit or number range lets anything through), and only a string that
/// lost a hidden character (or a lone surrogate, or an invalid escape) is written again; every
/// other byte stays as the server sent it.
pub fn clean_result(raw: &str) -> Option<String> {
    if !may_hide_anything(raw.as_bytes()) {
        return None;
    }
    let mut walk = Walk::new(raw);
    let mut i = 0;
    while let Some(&byte) = raw.as_bytes().get(i) {
        i = match byte {
            b'"' => walk.literal(i),
            b' ' | b'\t' | b'\n' | b'\r' | 0x21..=0x7e => i + 1,
            _ => walk.stray(i),
        };
    }
    walk.finish()
}

/// The cleaner's output so far: the input's bytes up to `copied`, with their replacements.
struct Walk<'a> {
    raw: &'a str,
    out: String,
    copied: usize,
    changed: bool,
}

impl<'a> Walk<'a> {
    fn new(raw: &'a str) -> Walk<'a> {
        Walk {
            raw,
            out: String::with_capacity(raw.len()),
            copied: 0,
            changed: false,
        }
    }

    /// The string literal that opens at `start`: written again when it hid something. Returns
    /// where the walk goes on (one past its closing quote, or the end).
    fn literal(&mut self, start: usize) -> usize {
        let end = string_end(self.raw.as_bytes(), start);
        let clean = self.raw.get(start..end).and_then(clean_literal);
        if let Some(clean) = clean {
            self.replace(start, end, &clean);
        }
        end
    }

    /// A character outside any literal that valid JSON never has there (a control, anything
    /// not ASCII): dropped. Returns where the walk goes on.
    fn stray(&mut self, start: usize) -> usize {
        let width = self
            .raw
            .get(start..)
            .and_then(|rest| rest.chars().next())
            .map_or(1, char::len_utf8);
        let end = start + width;
        self.replace(start, end, "");
        end
    }

    /// The input's bytes `start..end` become `with`.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        self.out
            .push_str(self.raw.get(self.copied..start).unwrap_or_default());
        self.out.push_str(with);
        self.copied = end;
        self.changed = true;
    }

    /// The cleaned payload; `None` when nothing was replaced.
    fn finish(mut self) -> Option<String> {
        if !self.changed {
            return None;
        }
        self.out
            .push_str(self.raw.get(self.copied..).unwrap_or_default());
        Some(self.out)
    }
}

/// A string literal (its quotes included, the closing one possibly missing) without its hidden
/// characters, re-encoded; `None` when it hides nothing and decodes as it is.
fn clean_literal(literal: &str) -> Option<String> {
    if !may_hide_anything(literal.as_bytes()) {
        return None;
    }
    let decoded = decode_literal(literal);
    let stripped = text::strip_hidden(&decoded.text);
    if stripped.is_none() && !decoded.lossy {
        return None;
    }
    let text = stripped.unwrap_or(decoded.text);
    // Serializing a `String` cannot fail; an empty string stands in all the same.
    Some(serde_json::to_string(&text).unwrap_or_else(|_| "\"\"".to_owned()))
}

/// A literal's text, and whether decoding dropped anything (so it must be written again).
struct Decoded {
    text: String,
    lossy: bool,
}

/// Decodes a literal without ever failing, where a strict parser would refuse it: a lone
/// surrogate, an invalid escape or a backslash at the end is dropped, a raw control character
/// is kept (for [`text::strip_hidden`] to remove), a literal that never closes ends at the end.
fn decode_literal(literal: &str) -> Decoded {
    let mut decoded = Decoded {
        text: String::with_capacity(literal.len()),
        lossy: false,
    };
    let mut chars = literal.chars();
    // The opening quote.
    chars.next();
    loop {
        match chars.next() {
            None => {
                // Never closed: the re-encoded literal closes it.
                decoded.lossy = true;
                return decoded;
            }
            Some('"') => return decoded,
            Some('\\') => decode_escape(&mut chars, &mut decoded),
            Some(c) => decoded.text.push(c),
        }
    }
}

/// One escape, its backslash read.
fn decode_escape(chars: &mut std::str::Chars<'_>, decoded: &mut Decoded) {
    let c = match chars.next() {
        Some('"') => '"',
        Some('\\') => '\\',
        Some('/') => '/',
        Some('b') => '\u{8}',
        Some('f') => '\u{c}',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('t') => '\t',
        Some('u') => match decode_unicode(chars) {
            Some(c) => c,
            None => {
                decoded.lossy = true;
                return;
            }
        },
        // An invalid escape (or a backslash at the end): the backslash goes, what followed it
        // stays as text (and is cleaned like any other).
        Some(other) => {
            decoded.lossy = true;
            decoded.text.push(other);
            return;
        }
        None => {
            decoded.lossy = true;
            return;
        }
    };
    decoded.text.push(c);
}

/// The character of a `\uXXXX` escape (its `\u` read), joining a surrogate pair; `None` for a
/// lone surrogate or digits that are not hex (what was read of them is dropped).
fn decode_unicode(chars: &mut std::str::Chars<'_>) -> Option<char> {
    let unit = hex4(chars)?;
    if !(0xd800..0xdc00).contains(&unit) {
        // A low surrogate alone is refused by `from_u32`.
        return char::from_u32(unit);
    }
    // A high surrogate: only a `\u` low surrogate right after completes it. Otherwise what
    // follows is read as the text it is.
    let mut ahead = chars.clone();
    if ahead.next() != Some('\\') || ahead.next() != Some('u') {
        return None;
    }
    let low = hex4(&mut ahead).filter(|low| (0xdc00..0xe000).contains(low))?;
    *chars = ahead;
    char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
}

/// Four hex digits as a number; `None` (with what was read of them consumed) otherwise.
fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut unit = 0;
    for _ in 0..4 {
        unit = unit * 16 + chars.next()?.to_digit(16)?;
    }
    Some(unit)
}

/// One bare string sent as data: hidden characters stripped, then cut at
/// [`Limits::message_chars`]. The findings (at `message`) say what was removed, for the log;
/// they make no verdict, since the text is never held.
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

/// Plain printable ASCII without escapes that decode to anything but printable ASCII hides
/// nothing; anything else (DEL, `\u`, `\b` and `\f` included) takes the slow path. An escaped
/// backslash before a `b` (`C:\\bin`) takes it too, and comes out untouched.
fn may_hide_anything(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !(0x20..0x7f).contains(b))
        || bytes
            .windows(2)
            .any(|w| matches!(w, [b'\\', b'u' | b'b' | b'f']))
}

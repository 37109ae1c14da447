//! The byte decodings: base64 and hex runs, `%XX` escapes and HTML character references.
//!
//! Owns: one decoder each (a text in, its decoded view or `None`), the base64 decoder the
//! detectors share ([`decode_base64`]), the tests of a token the prefilter asks too (a base64
//! chunk or run, hex digits or byte pairs, an escape), and the bounds of a run ([`MIN_RUN`],
//! [`MIN_HEX_PAIRS`], [`MAX_FRAGMENTS`]).
//! Never: decodes its own output again (`%2569` is `%69`, `&amp;lt;` is `&lt;`), keeps a base64
//! or hex run that does not read as text, puts more than [`MAX_FRAGMENTS`] runs in one view,
//! writes a control character a reference spells, or panics on any bytes.

use super::mostly_printable;
use super::tokens::{tokens, trim_punct};

/// Shortest base64 or hex run decoded (after joining chunks split by spaces).
pub(super) const MIN_RUN: usize = 16;
/// Fewest hex byte pairs in a row (`69 67 6e …`, `\x69\x67…`) decoded.
pub(super) const MIN_HEX_PAIRS: usize = 8;
/// Decoded base64 or hex runs kept in one view.
const MAX_FRAGMENTS: usize = 64;
/// Chunks of a base64 group tried as the first one (a word before the payload is skipped).
const CHUNK_STARTS: usize = 3;

/// Standard or URL-safe base64 (padding optional; decoding stops at the first `=`) to bytes;
/// `None` for any other character.
pub(crate) fn decode_base64(run: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut n_bits = 0;
    let mut out = Vec::with_capacity(run.len() * 3 / 4);
    for b in run.bytes().take_while(|&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = ((bits << 6) | u32::from(v)) & 0xff_ffff;
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push(u8::try_from((bits >> n_bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

fn is_b64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Runs of base64 characters in a token, each with the `=` padding that ends it.
pub(super) fn b64_runs(token: &str) -> impl Iterator<Item = &str> {
    let bytes = token.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while bytes.get(at).is_some_and(|&b| !is_b64_byte(b)) {
            at += 1;
        }
        let start = at;
        while bytes.get(at).is_some_and(|&b| is_b64_byte(b)) {
            at += 1;
        }
        if at == start {
            return None;
        }
        while bytes.get(at) == Some(&b'=') {
            at += 1;
        }
        token.get(start..at)
    })
}

/// Base64 of text mixes cases (the top bits of each ASCII byte give `I`–`Z` and `a`–`f`); a
/// lowercase word or an all-caps name does not.
pub(super) fn looks_encoded(run: &str) -> bool {
    let upper = run.bytes().any(|b| b.is_ascii_uppercase());
    let lower = run.bytes().any(|b| b.is_ascii_lowercase());
    let other = run
        .bytes()
        .any(|b| b.is_ascii_digit() || matches!(b, b'+' | b'/' | b'='));
    (upper && lower) || (other && (upper || lower))
}

/// A token that may be one chunk of a base64 payload split by spaces: base64 characters with a
/// digit, a `+`, a `/` or padding, or a capital after a small letter (`IGFsbCBw`); a word such
/// as `Config` or `README` is not.
pub(super) fn is_chunk(core: &str) -> bool {
    let body = core.trim_end_matches('=');
    if core.len() < 4 || body.is_empty() || !body.bytes().all(is_b64_byte) {
        return false;
    }
    let bytes = body.as_bytes();
    body.len() < core.len()
        || bytes
            .iter()
            .any(|b| b.is_ascii_digit() || matches!(b, b'+' | b'/'))
        || bytes
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.is_ascii_lowercase() && b.is_ascii_uppercase()))
}

/// Decoded bytes that read as text: at least four characters, at most one in ten a control or
/// an invalid byte, at least half letters or whitespace.
fn reads_as_text(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut n = 0usize;
    let mut wordy = 0usize;
    for c in text.chars() {
        n += 1;
        if c.is_alphabetic() || c.is_whitespace() {
            wordy += 1;
        }
    }
    (n >= 4 && wordy * 2 >= n && mostly_printable(&text)).then(|| text.into_owned())
}

/// Base64 runs that decode to text, one per line. Chunks split by spaces on one line are joined
/// first (from the first, second or third chunk, so that a word before the payload is skipped);
/// failing that, each run of at least [`MIN_RUN`] characters alone, and its pieces between `-`
/// and `_` (a standard run glued to a word).
pub(super) fn base64_runs(text: &str) -> Option<String> {
    let mut fragments: Vec<String> = Vec::new();
    let mut group: Vec<&str> = Vec::new();
    for token in tokens(text) {
        if fragments.len() >= MAX_FRAGMENTS {
            break;
        }
        if token.new_line {
            flush(&mut group, &mut fragments);
        }
        if token.text.contains("://") {
            flush(&mut group, &mut fragments);
            continue;
        }
        let core = trim_punct(token.text);
        if is_chunk(core) {
            group.push(core);
            if core.ends_with('=') {
                flush(&mut group, &mut fragments);
            }
            continue;
        }
        flush(&mut group, &mut fragments);
        for run in b64_runs(token.text) {
            single_run(run, &mut fragments);
        }
    }
    flush(&mut group, &mut fragments);
    fragments.truncate(MAX_FRAGMENTS);
    (!fragments.is_empty()).then(|| fragments.join("\n"))
}

/// Decodes a group of chunks joined, else each chunk alone; empties the group.
fn flush(group: &mut Vec<&str>, fragments: &mut Vec<String>) {
    if group.len() >= 2 && group.iter().map(|c| c.len()).sum::<usize>() >= MIN_RUN {
        for first in 0..group.len().min(CHUNK_STARTS) {
            let joined: String = group.get(first..).unwrap_or_default().concat();
            if joined.len() < MIN_RUN {
                break;
            }
            if let Some(t) = decode_base64(&joined).and_then(|b| reads_as_text(&b)) {
                fragments.push(t);
                group.clear();
                return;
            }
        }
    }
    for chunk in group.drain(..) {
        single_run(chunk, fragments);
    }
}

fn single_run(run: &str, fragments: &mut Vec<String>) {
    if run.len() < MIN_RUN || !looks_encoded(run) {
        return;
    }
    if let Some(t) = decode_base64(run).and_then(|b| reads_as_text(&b)) {
        fragments.push(t);
        return;
    }
    if run.contains(['-', '_']) {
        for piece in run.split(['-', '_']) {
            if piece.len() >= MIN_RUN && looks_encoded(piece) {
                if let Some(t) = decode_base64(piece).and_then(|b| reads_as_text(&b)) {
                    fragments.push(t);
                }
            }
        }
    }
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Hex digits in a token: a whole alphanumeric run of at least [`MIN_RUN`] of them (after an
/// optional `0x`), or at least [`MIN_HEX_PAIRS`] `\xNN` escapes in a row; the digits alone.
pub(super) fn hex_candidates(token: &str) -> impl Iterator<Item = String> + '_ {
    let bytes = token.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || loop {
        if at >= bytes.len() {
            return None;
        }
        if bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == Some(&b'x') {
            let mut digits = String::new();
            while bytes.get(at) == Some(&b'\\')
                && bytes.get(at + 1) == Some(&b'x')
                && hex_value(bytes.get(at + 2)).is_some()
                && hex_value(bytes.get(at + 3)).is_some()
            {
                digits.push_str(token.get(at + 2..at + 4).unwrap_or_default());
                at += 4;
            }
            if digits.len() >= 2 * MIN_HEX_PAIRS {
                return Some(digits);
            }
            at += 1;
            continue;
        }
        if !bytes.get(at).is_some_and(u8::is_ascii_alphanumeric) {
            at += 1;
            continue;
        }
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_alphanumeric) {
            at += 1;
        }
        let word = token.get(start..at).unwrap_or_default();
        let digits = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))
            .unwrap_or(word);
        if digits.len() >= MIN_RUN && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(digits.to_owned());
        }
    })
}

/// Hex digits to bytes (an odd last digit is dropped).
fn decode_hex(digits: &str) -> Vec<u8> {
    digits
        .as_bytes()
        .chunks_exact(2)
        .filter_map(|pair| Some(hex_value(pair.first())? << 4 | hex_value(pair.get(1))?))
        .collect()
}

/// Hex runs that decode to text, one per line: runs inside tokens, and byte pairs spaced or
/// joined by `:` or `-` (`69 67 6e`, `69:67:6e`).
pub(super) fn hex_runs(text: &str) -> Option<String> {
    let mut fragments = Vec::new();
    let mut pairs = String::new();
    for token in tokens(text) {
        if fragments.len() >= MAX_FRAGMENTS {
            break;
        }
        if token.new_line {
            flush_pairs(&mut pairs, &mut fragments);
        }
        let core = trim_punct(token.text);
        if hex_pairs(core).is_some() {
            pairs.extend(core.chars().filter(char::is_ascii_hexdigit));
            continue;
        }
        flush_pairs(&mut pairs, &mut fragments);
        for digits in hex_candidates(token.text) {
            if let Some(t) = reads_as_text(&decode_hex(&digits)) {
                fragments.push(t);
            }
        }
    }
    flush_pairs(&mut pairs, &mut fragments);
    fragments.truncate(MAX_FRAGMENTS);
    (!fragments.is_empty()).then(|| fragments.join("\n"))
}

/// Decodes the byte pairs gathered so far, when there are enough; empties them.
fn flush_pairs(pairs: &mut String, fragments: &mut Vec<String>) {
    if pairs.len() >= 2 * MIN_HEX_PAIRS {
        if let Some(t) = reads_as_text(&decode_hex(pairs)) {
            fragments.push(t);
        }
    }
    pairs.clear();
}

/// Hex byte pairs spaced or joined by `:` or `-` (`69`, `69:67:6e`): how many, if that is all
/// the token is.
pub(super) fn hex_pairs(core: &str) -> Option<usize> {
    let bytes = core.as_bytes();
    if bytes.len() % 3 != 2 {
        return None;
    }
    for (idx, &b) in bytes.iter().enumerate() {
        let ok = if idx % 3 == 2 {
            matches!(b, b':' | b'-')
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    Some(bytes.len() / 3 + 1)
}

pub(super) fn percent_at(bytes: &[u8], idx: usize) -> Option<u8> {
    Some(hex_value(bytes.get(idx + 1))? << 4 | hex_value(bytes.get(idx + 2))?)
}

/// `%XX` escapes decoded (once: `%2569` is `%69`); bytes that are not UTF-8 become U+FFFD.
pub(super) fn percent(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&b) = bytes.get(idx) {
        if b == b'%' {
            if let Some(decoded) = percent_at(bytes, idx) {
                out.push(decoded);
                idx += 3;
                continue;
            }
        }
        out.push(b);
        idx += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// What a character reference at `idx` stands for, and its length: `Some(None)` for an invisible
/// character (dropped from the view).
pub(super) fn entity_at(text: &str, idx: usize) -> Option<(Option<char>, usize)> {
    let bytes = text.as_bytes();
    let rest = bytes.get(idx + 1..)?;
    if rest.first() == Some(&b'#') {
        let (radix, digits_at) = match rest.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest
            .get(digits_at..)?
            .iter()
            .take(8)
            .take_while(|b| char::from(**b).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let number = text.get(idx + 1 + digits_at..idx + 1 + digits_at + digits)?;
        let value = u32::from_str_radix(number, radix).ok()?;
        let mut len = 1 + digits_at + digits;
        if rest.get(digits_at + digits) == Some(&b';') {
            len += 1;
        }
        let c = char::from_u32(value)?;
        return visible(c).map(|c| (c, len));
    }
    let name_len = rest
        .iter()
        .take(12)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if name_len < 2 || rest.get(name_len) != Some(&b';') {
        return None;
    }
    let name = text.get(idx + 1..idx + 1 + name_len)?;
    let c = named_entity(name)?;
    Some((c, name_len + 2))
}

/// `None` for a control (whitespace aside): the reference is then left as written. `Some(None)`
/// for a format character a reader does not see (zero-width, bidi, soft hyphen).
fn visible(c: char) -> Option<Option<char>> {
    let invisible = matches!(c,
        '\u{ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}');
    if invisible {
        return Some(None);
    }
    if c.is_control() && !matches!(c, '\t' | '\n') {
        return None;
    }
    Some(Some(c))
}

/// The named references that spell ASCII (and the accented vowels, as their base letter).
fn named_entity(name: &str) -> Option<Option<char>> {
    let c = match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" | "numsp" | "puncsp" | "hairsp" => ' ',
        "sol" => '/',
        "bsol" => '\\',
        "colon" => ':',
        "semi" => ';',
        "period" => '.',
        "comma" => ',',
        "excl" => '!',
        "quest" => '?',
        "num" => '#',
        "dollar" => '$',
        "percnt" => '%',
        "lpar" => '(',
        "rpar" => ')',
        "ast" | "midast" => '*',
        "plus" => '+',
        "equals" => '=',
        "commat" => '@',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lowbar" | "UnderBar" => '_',
        "grave" | "DiacriticalGrave" => '`',
        "lcub" | "lbrace" => '{',
        "rcub" | "rbrace" => '}',
        "verbar" | "vert" | "VerticalLine" => '|',
        "tilde" | "DiacriticalTilde" => '~',
        "hyphen" | "dash" | "minus" => '-',
        "Tab" => '\t',
        "NewLine" => '\n',
        "shy" | "zwj" | "zwnj" | "lrm" | "rlm" | "ZeroWidthSpace" | "NoBreak" => return Some(None),
        _ => return accented(name).map(Some),
    };
    Some(Some(c))
}

/// `&iacute;`, `&Ouml;`, `&ccedil;`…: the base letter.
fn accented(name: &str) -> Option<char> {
    let mut chars = name.chars();
    let letter = chars.next().filter(char::is_ascii_alphabetic)?;
    let mark = chars.as_str();
    matches!(
        mark,
        "acute" | "grave" | "circ" | "uml" | "tilde" | "cedil" | "ring" | "slash" | "caron"
    )
    .then_some(letter)
}

/// Character references decoded (once: `&amp;lt;` is `&lt;`); a control stays written.
pub(super) fn html_entities(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).unwrap_or_default());
        match entity_at(rest, at) {
            Some((c, len)) => {
                out.extend(c);
                rest = rest.get(at + len..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = rest.get(at + 1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_hex_pairs_are_read() {
        let text = "MAC-like: 69:67:6e:6f:72:65:20:61:6c:6c";
        assert_eq!(hex_runs(text).as_deref(), Some("ignore all"));
    }
}

//! The letter decodings: regional-indicator symbols, leetspeak, letters spaced or dotted apart,
//! rot13 and the text reversed.
//!
//! Owns: one decoder each (a text in, its decoded view or `None`) and the tests of a token the
//! prefilter asks too ([`leet_word`], [`separated_letters`], [`MIN_SPACED`]).
//! Never: makes a view longer than its input (each puts a character no wider in the place of
//! one, or drops one), or splits a multi-byte character (only ASCII bytes are replaced one by
//! one; a regional indicator goes whole).

use super::tokens::{punct_bounds, tokens, trim_punct, Token};

/// Fewest letters spaced apart (`I g n o r e`) joined into a word.
pub(super) const MIN_SPACED: usize = 3;

/// Regional-indicator symbols as the letters they stand for (a flag is two of them: 🇫🇷 → `fr`).
pub(super) fn regional(text: &str) -> Option<String> {
    Some(
        text.chars()
            .map(|c| match u32::from(c).checked_sub(0x1f1e6) {
                Some(offset @ 0..=25) => {
                    char::from(b'a' + u8::try_from(offset).unwrap_or_default())
                }
                _ => c,
            })
            .collect(),
    )
}

/// Words with leet characters between letters (see [`leet_word`]) and words of letters and leet
/// characters next to one (`a11`) read as letters; numbers stay numbers.
pub(super) fn leet(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'@' || b == b'$';
    let mut idx = 0;
    while idx < bytes.len() {
        if !bytes.get(idx).is_some_and(|&b| is_word(b)) {
            idx += 1;
            continue;
        }
        let start = idx;
        while bytes.get(idx).is_some_and(|&b| is_word(b)) {
            idx += 1;
        }
        let word = bytes.get(start..idx).unwrap_or_default();
        if !word.iter().any(u8::is_ascii_alphabetic) {
            continue;
        }
        for at in start..idx {
            let (Some(&b), Some(slot)) = (bytes.get(at), out.get_mut(at)) else {
                continue;
            };
            let prev = at.checked_sub(1).and_then(|p| bytes.get(p)).copied();
            let next = bytes.get(at + 1).copied();
            if let Some(letter) = leet_letter(b, next, prev) {
                *slot = letter;
            }
        }
    }
    // Only ASCII bytes were replaced, by ASCII bytes: still UTF-8.
    String::from_utf8(out).ok()
}

/// Single letters spaced apart on one line (`I g n o r e`) joined; where the gaps differ, the
/// wider ones are word breaks (`i g n o r e  a l l` → `ignore all`). Letters joined by one
/// repeated separator inside a token (`i.g.n.o.r.e`) too.
pub(super) fn spaced(text: &str) -> Option<String> {
    let toks: Vec<Token<'_>> = tokens(text).collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut idx = 0;
    while let Some(first) = toks.get(idx) {
        let mut end = idx + 1;
        if is_single_letter(trim_punct(first.text)) {
            while toks.get(end).is_some_and(|t| {
                !t.new_line && is_single_letter(trim_punct(t.text)) && trim_punct(t.text) == t.text
            }) {
                end += 1;
            }
            // A letter with punctuation after it ends the run, and belongs to it ("e.").
            if let Some(t) = toks.get(end) {
                if !t.new_line && is_single_letter(trim_punct(t.text)) {
                    end += 1;
                }
            }
        }
        let run = toks.get(idx..end).unwrap_or_default();
        if run.len() >= MIN_SPACED {
            out.push_str(text.get(copied..first.start).unwrap_or_default());
            let min_gap = run.iter().skip(1).map(|t| t.gap).min().unwrap_or(1);
            for (k, t) in run.iter().enumerate() {
                if k > 0 && t.gap > min_gap {
                    out.push(' ');
                }
                out.push_str(t.text);
            }
            copied = run.last().map_or(copied, Token::end);
            idx = end;
            continue;
        }
        let (lead, trail) = punct_bounds(first.text);
        let core = first.text.get(lead..trail).unwrap_or_default();
        if let Some(letters) = separated_letters(core) {
            out.push_str(text.get(copied..first.start + lead).unwrap_or_default());
            out.push_str(&letters);
            copied = first.start + trail;
        }
        idx += 1;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Some(out)
}

pub(super) fn rot13(text: &str) -> Option<String> {
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| match b {
            b'a'..=b'm' | b'A'..=b'M' => b + 13,
            b'n'..=b'z' | b'N'..=b'Z' => b - 13,
            _ => b,
        })
        .collect();
    // Only ASCII letters were replaced, by ASCII letters: still UTF-8.
    String::from_utf8(bytes).ok()
}

pub(super) fn reversed(text: &str) -> Option<String> {
    Some(text.chars().rev().collect())
}

/// A leet character: a digit or sign that stands for a letter.
fn leet_letter(b: u8, next: Option<u8>, prev: Option<u8>) -> Option<u8> {
    Some(match b {
        b'0' => b'o',
        // "a11" is "all", "1gn0re" is "ignore".
        b'1' if next == Some(b'1') || prev == Some(b'1') => b'l',
        b'1' => b'i',
        b'3' => b'e',
        b'4' => b'a',
        b'5' => b's',
        b'7' => b't',
        b'8' => b'b',
        b'9' => b'g',
        b'@' if next.is_some_and(|n| n.is_ascii_alphabetic()) => b'a',
        b'$' if next.is_some_and(|n| n.is_ascii_alphabetic()) => b's',
        _ => return None,
    })
}

/// A word with a run of leet characters between two letters (`1gn0re`, `s3cr3t`, `prev10us`);
/// version numbers and units (`100ms`, `h264`, `x86_64`) are not.
pub(super) fn leet_word(core: &str) -> bool {
    let bytes = core.as_bytes();
    let mut idx = 0;
    while idx < bytes.len() {
        let prev = idx.checked_sub(1).and_then(|p| bytes.get(p)).copied();
        if !prev.is_some_and(|p| p.is_ascii_alphabetic()) {
            idx += 1;
            continue;
        }
        let mut end = idx;
        while let Some(&b) = bytes.get(end) {
            let next = bytes.get(end + 1).copied();
            if b.is_ascii_alphabetic() || leet_letter(b, next, None).is_none() {
                break;
            }
            end += 1;
        }
        if end > idx && bytes.get(end).is_some_and(|b| b.is_ascii_alphabetic()) {
            return true;
        }
        idx = end.max(idx + 1);
    }
    false
}

/// Letters joined by one repeated separator (`i.g.n.o.r.e`, `i-g-n-o-r-e`), as the letters.
pub(super) fn separated_letters(core: &str) -> Option<String> {
    let bytes = core.as_bytes();
    let sep = *bytes.get(1)?;
    if !matches!(sep, b'.' | b'-' | b'_' | b'*' | b'|' | b'/' | b'+' | b'~') {
        return None;
    }
    if bytes.len() < 2 * MIN_SPACED - 1 || bytes.len() % 2 == 0 {
        return None;
    }
    let mut letters = String::with_capacity(bytes.len() / 2 + 1);
    for (idx, &b) in bytes.iter().enumerate() {
        if idx % 2 == 0 {
            if !b.is_ascii_alphabetic() {
                return None;
            }
            letters.push(char::from(b));
        } else if b != sep {
            return None;
        }
    }
    Some(letters)
}

fn is_single_letter(core: &str) -> bool {
    core.len() == 1 && core.bytes().all(|b| b.is_ascii_alphabetic())
}

//! Cleaning of text that only the model reads (descriptions, titles, server instructions).
//!
//! Owns: the fixed order of cleaning steps: ANSI escapes; control, invisible, bidi, tag,
//! variation-selector, private-use and noncharacter code points; line separators and whitespace
//! (flagging padding); NFKC; HTML comments, markdown images and links; the length cap.
//! Never: judges meaning (that is `detect`); it only records what it removed, and hands the removed
//! hidden text back so the detectors can read it too.

use super::finding::{Finding, Kind};
use unicode_normalization::UnicodeNormalization;

/// Cleaning rounds before nested markup is held instead of peeled further.
const MAX_ROUNDS: usize = 8;

/// Horizontal whitespace run that counts as padding.
const PADDING_RUN: usize = 40;
/// Consecutive line breaks that count as padding.
const PADDING_LINES: usize = 5;

/// Cleaned text plus the hidden text that was removed from it (for the detectors).
#[derive(Debug, Default)]
pub(crate) struct Cleaned {
    pub(crate) text: String,
    pub(crate) hidden: Vec<String>,
}

/// Runs every cleaning step on `input`, appending findings for `location`. Steps repeat until the
/// text is stable (a removal can join pieces into something a step removes), so cleaning is
/// idempotent.
pub(crate) fn clean(
    input: &str,
    max_chars: usize,
    location: &str,
    findings: &mut Vec<Finding>,
) -> Cleaned {
    let mut out = clean_once(input, max_chars, location, findings);
    if out.text == input {
        return out;
    }
    let mut stable = false;
    for _ in 0..MAX_ROUNDS {
        let mut again = Vec::new();
        let next = clean_once(&out.text, max_chars, location, &mut again);
        if next.text == out.text {
            stable = true;
            break;
        }
        for f in again {
            if !findings
                .iter()
                .any(|g| g.kind == f.kind && g.location == f.location)
            {
                findings.push(f);
            }
        }
        out.hidden.extend(next.hidden);
        out.text = next.text;
    }
    if !stable {
        // Markup nested to outlast the rounds: hold it rather than guess what it renders as, and
        // take every bracket out so that the text (shown to reviewers only) is stable.
        findings.push(Finding::new(
            location,
            Kind::MarkdownImage,
            "markup nested too deep",
        ));
        let flat: String = out
            .text
            .chars()
            .filter(|c| !matches!(c, '[' | ']' | '<' | '>'))
            .collect();
        out.text = clean_once(&flat, max_chars, location, &mut Vec::new()).text;
    }
    out
}

fn clean_once(
    input: &str,
    max_chars: usize,
    location: &str,
    findings: &mut Vec<Finding>,
) -> Cleaned {
    let mut hidden = Vec::new();
    let text = strip_ansi(input, location, findings);
    let text = strip_code_points(&text, location, findings, &mut hidden);
    let text = if text.is_ascii() {
        text
    } else {
        let nfkc: String = text.nfkc().collect();
        if nfkc != text {
            findings.push(Finding::new(
                location,
                Kind::Compatibility,
                "NFKC changed the text",
            ));
        }
        nfkc
    };
    let text = normalize_whitespace(&text, location, findings);
    let text = strip_markup(&text, location, findings, &mut hidden);
    let text = cap(text.trim(), max_chars, location, findings);
    Cleaned { text, hidden }
}

/// Removes CSI, OSC and two-character ESC sequences.
fn strip_ansi(input: &str, location: &str, findings: &mut Vec<Finding>) -> String {
    if !input.contains(['\u{1b}', '\u{9b}']) {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    let mut n_removed = 0;
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                n_removed += 1;
                match chars.next() {
                    Some('[') => skip_csi(&mut chars),
                    Some(']') => skip_osc(&mut chars),
                    _ => {}
                }
            }
            '\u{9b}' => {
                n_removed += 1;
                skip_csi(&mut chars);
            }
            c => out.push(c),
        }
    }
    findings.push(Finding::new(
        location,
        Kind::AnsiEscape,
        format!("{n_removed} escape sequences"),
    ));
    out
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
    }
}

fn skip_osc(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        if c == '\u{7}' || c == '\u{9c}' {
            return;
        }
        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
            chars.next();
            return;
        }
    }
}

/// How one code point is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Keep,
    LineBreak,
    Control,
    Invisible,
    Joiner,
    Bidi,
    BidiMark,
    Tag,
    Selector,
    PrivateUse,
    Noncharacter,
}

fn classify(c: char) -> Class {
    let u = u32::from(c);
    match u {
        0x09 | 0x0a => Class::Keep,
        0x0d | 0x85 | 0x2028 | 0x2029 => Class::LineBreak,
        0x00..=0x1f | 0x7f..=0x9f => Class::Control,
        0x200c | 0x200d => Class::Joiner,
        // Default_Ignorable_Code_Point and format (Cf) characters that render as nothing.
        0x200b
        | 0x2060..=0x2065
        | 0xfeff
        | 0x180b..=0x180f
        | 0x00ad
        | 0x034f
        | 0x115f
        | 0x1160
        | 0x3164
        | 0xffa0
        | 0x17b4
        | 0x17b5
        | 0x206a..=0x206f
        | 0xfff0..=0xfffb
        | 0x1d173..=0x1d17a
        | 0x0600..=0x0605
        | 0x06dd
        | 0x070f
        | 0x0890
        | 0x0891
        | 0x08e2
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0xe0080..=0xe00ff
        | 0xe01f0..=0xe0fff => Class::Invisible,
        0x202a..=0x202e | 0x2066..=0x2069 => Class::Bidi,
        0x200e | 0x200f | 0x061c => Class::BidiMark,
        0xe0000..=0xe007f => Class::Tag,
        0xfe00..=0xfe0f | 0xe0100..=0xe01ef => Class::Selector,
        0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd => Class::PrivateUse,
        0xfdd0..=0xfdef => Class::Noncharacter,
        _ if u & 0xfffe == 0xfffe => Class::Noncharacter,
        _ => Class::Keep,
    }
}

/// Pictographs, dingbats and symbols that take part in emoji sequences (an approximation of
/// Extended_Pictographic that errs towards keeping benign emoji intact).
fn is_emoji(c: char) -> bool {
    matches!(u32::from(c),
        0x1f000..=0x1faff | 0x2600..=0x27bf | 0x2300..=0x23ff | 0x2b00..=0x2bff | 0x2190..=0x21ff
        | 0x3030 | 0x303d | 0x3297 | 0x3299 | 0x00a9 | 0x00ae | 0x203c | 0x2049 | 0x2122 | 0x2139)
}

/// A base with standardized variation sequences: emoji and keycap bases take VS15/VS16, CJK
/// ideographs the ideographic selectors. A selector after anything else only smuggles bytes.
fn is_variation_base(base: char, selector: char) -> bool {
    let cjk = matches!(u32::from(base), 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff | 0x20000..=0x3134f);
    match u32::from(selector) {
        0xfe0e | 0xfe0f => is_emoji(base) || base.is_ascii_digit() || base == '#' || base == '*',
        0xfe00..=0xfe0d | 0xe0100..=0xe01ef => cjk,
        _ => false,
    }
}

/// Letters of scripts that use joiners legitimately (Arabic, Persian, Indic…): non-ASCII letters
/// that do not look like ASCII ones (a joiner between two look-alikes only splits a word).
fn is_joining_letter(c: char) -> bool {
    !c.is_ascii() && c.is_alphabetic() && super::fold::fold_char(c) == c
}

fn strip_code_points(
    input: &str,
    location: &str,
    findings: &mut Vec<Finding>,
    hidden: &mut Vec<String>,
) -> String {
    if input
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t')
    {
        return input.to_owned();
    }
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
    let mut line_breaks = 0;
    let mut idx = 0;
    while let Some(&c) = chars.get(idx) {
        let prev = idx.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let next = chars.get(idx + 1).copied();
        match classify(c) {
            Class::Keep => out.push(c),
            Class::LineBreak => {
                // \r\n is one break.
                if !(c == '\r' && next == Some('\n')) {
                    out.push('\n');
                }
                line_breaks += 1;
            }
            Class::Control => *counts.entry("control").or_default() += 1,
            Class::Invisible => *counts.entry("invisible").or_default() += 1,
            Class::Joiner => {
                let emoji_join = c == '\u{200d}'
                    && prev.is_some_and(|p| is_emoji(p) || classify(p) == Class::Selector)
                    && next.is_some_and(is_emoji);
                let script_join =
                    prev.is_some_and(is_joining_letter) && next.is_some_and(is_joining_letter);
                if emoji_join || script_join {
                    out.push(c);
                } else {
                    *counts.entry("invisible").or_default() += 1;
                }
            }
            Class::Bidi => *counts.entry("bidi").or_default() += 1,
            Class::BidiMark => *counts.entry("bidi_mark").or_default() += 1,
            Class::Tag => {
                let end = run_end(&chars, idx, |c| classify(c) == Class::Tag);
                let run = chars.get(idx..end).unwrap_or_default();
                if prev == Some('\u{1f3f4}') && is_flag_tag_sequence(run) {
                    out.extend(run);
                } else {
                    let decoded: String = run.iter().filter_map(|&t| decode_tag(t)).collect();
                    hidden.push(decoded.clone());
                    findings.push(Finding::new(
                        location,
                        Kind::TagChars,
                        format!("hidden text: {decoded:?}"),
                    ));
                }
                idx = end;
                continue;
            }
            Class::Selector => {
                let end = run_end(&chars, idx, |c| classify(c) == Class::Selector);
                let run = chars.get(idx..end).unwrap_or_default();
                let standard = run.len() == 1
                    && prev
                        .zip(run.first().copied())
                        .is_some_and(|(p, vs)| is_variation_base(p, vs));
                if standard {
                    out.extend(run);
                } else {
                    let bytes: Vec<u8> = run.iter().filter_map(|&s| selector_byte(s)).collect();
                    let decoded = String::from_utf8_lossy(&bytes).into_owned();
                    hidden.push(decoded.clone());
                    let detail = format!("{} selectors, as bytes: {decoded:?}", run.len());
                    findings.push(Finding::new(location, Kind::VariationSelectors, detail));
                }
                idx = end;
                continue;
            }
            Class::PrivateUse => *counts.entry("private_use").or_default() += 1,
            Class::Noncharacter => *counts.entry("noncharacter").or_default() += 1,
        }
        idx += 1;
    }
    if line_breaks > 0 {
        findings.push(Finding::new(
            location,
            Kind::LineSeparator,
            format!("{line_breaks} line separators"),
        ));
    }
    for (what, n) in counts {
        let kind = match what {
            "control" => Kind::ControlChar,
            "bidi" => Kind::Bidi,
            "bidi_mark" => Kind::BidiMark,
            "private_use" => Kind::PrivateUse,
            "noncharacter" => Kind::Noncharacter,
            _ => Kind::Invisible,
        };
        findings.push(Finding::new(location, kind, format!("{n} removed")));
    }
    out
}

fn run_end(chars: &[char], start: usize, pred: impl Fn(char) -> bool) -> usize {
    let mut end = start;
    while chars.get(end).is_some_and(|&c| pred(c)) {
        end += 1;
    }
    end
}

/// 🏴 + tags + CANCEL TAG spelling one of the three recommended subdivision flags (England,
/// Scotland, Wales). Any other tag text is a message, not a flag.
fn is_flag_tag_sequence(run: &[char]) -> bool {
    let Some((&last, body)) = run.split_last() else {
        return false;
    };
    let text: String = body.iter().filter_map(|&c| decode_tag(c)).collect();
    last == '\u{e007f}'
        && text.chars().count() == body.len()
        && matches!(text.as_str(), "gbeng" | "gbsct" | "gbwls")
}

fn decode_tag(c: char) -> Option<char> {
    let u = u32::from(c);
    (0xe0020..=0xe007e)
        .contains(&u)
        .then(|| char::from_u32(u - 0xe0000))
        .flatten()
}

/// The byte a variation selector encodes in the known smuggling scheme (VS1–16 → 0–15,
/// VS17–256 → 16–255).
fn selector_byte(c: char) -> Option<u8> {
    let u = u32::from(c);
    match u {
        0xfe00..=0xfe0f => u8::try_from(u - 0xfe00).ok(),
        0xe0100..=0xe01ef => u8::try_from(u - 0xe0100 + 16).ok(),
        _ => None,
    }
}

/// Trims lines, collapses runs of spaces and tabs, keeps at most one blank line; flags padding.
fn normalize_whitespace(input: &str, location: &str, findings: &mut Vec<Finding>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut longest_run = 0;
    let mut run = 0;
    let mut blank_lines = 0;
    let mut most_breaks = 0;
    let mut breaks: usize = 0;
    for c in input.chars() {
        if c == ' ' || c == '\t' || c == '\u{2800}' || (c.is_whitespace() && c != '\n') {
            run += 1;
            longest_run = longest_run.max(run);
            continue;
        }
        if c == '\n' {
            breaks += 1;
            most_breaks = most_breaks.max(breaks);
            run = 0;
            continue;
        }
        if breaks > 0 {
            if !out.is_empty() {
                out.push_str(if breaks > 1 { "\n\n" } else { "\n" });
            }
            blank_lines += breaks.saturating_sub(1);
        } else if run > 0 && !out.is_empty() {
            out.push(' ');
        }
        breaks = 0;
        run = 0;
        out.push(c);
    }
    if longest_run >= PADDING_RUN || most_breaks >= PADDING_LINES {
        let detail = format!("{longest_run} blanks in a row, {most_breaks} line breaks in a row");
        findings.push(Finding::new(location, Kind::Padding, detail));
    } else if out != input {
        let detail = format!("collapsed ({blank_lines} blank lines)");
        findings.push(Finding::new(location, Kind::Whitespace, detail));
    }
    out
}

/// Removes HTML comments and markdown images; turns markdown links into their text.
fn strip_markup(
    input: &str,
    location: &str,
    findings: &mut Vec<Finding>,
    hidden: &mut Vec<String>,
) -> String {
    if !input.contains("<!--") && !input.contains("](") {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            let (comment, tail) = match after.find("-->") {
                Some(end) => (&after[..end], &after[end + 3..]),
                None => (after, ""),
            };
            hidden.push(comment.to_owned());
            findings.push(Finding::new(location, Kind::HtmlComment, comment.trim()));
            rest = tail;
            continue;
        }
        let image = rest.starts_with("![");
        if image || rest.starts_with('[') {
            if let Some((text, url, tail)) = markdown_link(&rest[usize::from(image)..]) {
                if image {
                    findings.push(Finding::new(location, Kind::MarkdownImage, url));
                    hidden.push(format!("{text} {url}"));
                } else {
                    findings.push(Finding::new(location, Kind::MarkdownLink, url));
                    out.push_str(text);
                }
                rest = tail;
                continue;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `[text](url)` at the start of `s` → (text, url, rest).
/// Searches are bounded (link text 1 KiB, destination 2 KiB) so that a description of nothing but
/// brackets costs linear time, not quadratic.
fn markdown_link(s: &str) -> Option<(&str, &str, &str)> {
    const MAX_TEXT: usize = 1024;
    const MAX_URL: usize = 2048;
    let inner = s.strip_prefix('[')?;
    let close = head(inner, MAX_TEXT).find("](")?;
    let text = inner.get(..close)?;
    if text.contains(['[', '\n']) {
        return None;
    }
    let after = inner.get(close + 2..)?;
    let end = head(after, MAX_URL).find(')')?;
    let url = after.get(..end)?;
    if url.contains(char::is_whitespace) && !url.contains('"') {
        return None;
    }
    Some((text, url, after.get(end + 1..)?))
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
fn head(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn cap(input: &str, max_chars: usize, location: &str, findings: &mut Vec<Finding>) -> String {
    let n_chars = input.chars().count();
    if n_chars <= max_chars {
        return input.to_owned();
    }
    findings.push(Finding::new(
        location,
        Kind::Truncated,
        format!("{n_chars} characters cut to {max_chars}"),
    ));
    let mut out: String = input.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Code points that never survive [`clean`] (tag characters aside, which survive only inside an
/// emoji subdivision flag).
pub(crate) fn is_forbidden(c: char) -> bool {
    matches!(
        classify(c),
        Class::Control
            | Class::LineBreak
            | Class::Invisible
            | Class::Bidi
            | Class::BidiMark
            | Class::PrivateUse
            | Class::Noncharacter
    )
}

/// True for a code point that has no place in an address a client quotes back (a resource URI
/// or URI template): every one [`clean`] removes or rewrites (tag characters, variation
/// selectors and joiners included, wherever they stand), and every whitespace but the space.
pub(crate) fn is_hidden_in_address(c: char) -> bool {
    c != ' ' && (classify(c) != Class::Keep || c.is_whitespace() || c == '\u{2800}')
}

/// Removes hidden code points only (no whitespace or markup changes): for tool results, where the
/// text is data the agent asked for. Returns `None` when nothing was removed.
pub(crate) fn strip_hidden(input: &str) -> Option<String> {
    strip_hidden_at(input, "result", &mut Vec::new())
}

/// [`strip_hidden`], appending what was removed to `findings` under `location`.
pub(crate) fn strip_hidden_at(
    input: &str,
    location: &str,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    // Printable ASCII, tabs and line breaks hide nothing (a `\r` is only a line break, and line
    // breaks are kept as they were): no copy for the common case, a base64 payload included.
    if input
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\n' | b'\t' | b'\r'))
    {
        return None;
    }
    let mut found = Vec::new();
    let mut hidden = Vec::new();
    let text = strip_ansi(input, location, &mut found);
    let text = strip_code_points(&text, location, &mut found, &mut hidden);
    found.retain(|f| f.kind != Kind::LineSeparator);
    // Line breaks in results are data: keep the original's when nothing else was removed.
    if found.is_empty() {
        return None;
    }
    findings.extend(found);
    Some(text)
}

//! Decodings: the readings of a text that an encoding hides from the phrase detectors.
//!
//! Owns: [`decoded_views`] (a text in, each reading of it that differs from it out, with the
//! [`Decoding`] that produced it: rot13, reversed, leetspeak, letters spaced apart, percent and
//! HTML-entity encoding, base64 and hex runs, regional-indicator letters), the promises every
//! view keeps (cut to [`MAX_INPUT_BYTES`], never longer than its input, [`mostly_printable`]),
//! and the base64 decoder the detectors share ([`decode_base64`]).
//! Never: judges (that is `detect.rs`), decodes a decoded view again (one level: base64 of
//! percent-encoding is not read), reads more than [`MAX_INPUT_BYTES`] of a text, yields more than
//! one view per decoding or a view longer than its input, or panics on any input.
//!
//! Parts: `scan.rs` is the prefilter (which decodings can change a text, in one pass over its
//! bytes); `bytes.rs` the byte decodings (base64, hex, percent, HTML entities); `letters.rs` the
//! letter decodings (regional indicators, leet, spaced and dotted letters, rot13, reversed);
//! `tokens.rs` the whitespace-separated tokens the decoders read. The prefilter asks the
//! decoders' own tests of a token (a base64 chunk, a leet word…), so the two cannot disagree;
//! no decoder knows the prefilter.
//!
//! Cost: one pass over the bytes, judging each whitespace-separated token as it ends, decides
//! which decodings can change anything (`scan`); only those run, and plain prose yields no view
//! at all: each view costs the detectors one more pass. rot13 and reversed text would otherwise
//! be such a pass over every text, so they run only when a word of the text is a common English
//! word in rot13 (`gur`, `vtaber`) or reversed (`eht`, `erongi`), or the text mentions such a
//! reading (`rot13`, `backwards`, `decode`).
//! Homoglyphs are not a decoding here: the detectors fold every view (`fold_confusables`).

mod bytes;
mod letters;
mod scan;
mod tokens;

pub(crate) use bytes::decode_base64;

use bytes::{base64_runs, hex_runs, html_entities, percent};
use letters::{leet, regional, reversed, rot13, spaced};
use scan::scan;

/// Bytes of a text read at most; the rest is not decoded. Model-read text is capped far below
/// this before detection (a description at 4096 characters); only dropped fields can be longer.
pub(crate) const MAX_INPUT_BYTES: usize = 128 * 1024;

/// How a view was decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Decoding {
    /// Letters rotated by 13 (`vtaber` → `ignore`).
    Rot13,
    /// The text read backwards (`erongi` → `ignore`).
    Reversed,
    /// Digits and signs inside words read as letters (`1gn0re` → `ignore`).
    Leet,
    /// Single letters spaced or dotted apart joined (`I g n o r e`, `i.g.n.o.r.e` → `ignore`).
    Spaced,
    /// `%XX` escapes (`%69gnore` → `ignore`).
    Percent,
    /// HTML character references, named and numeric (`&lt;`, `&#105;`, `&#x69;`).
    HtmlEntity,
    /// Base64 runs of at least 16 characters, also split by spaces into chunks; only the
    /// decoded runs that read as text, one per line.
    Base64,
    /// Hex runs of at least 16 digits (`0x` prefix allowed), `\xNN` escapes and spaced byte
    /// pairs; only the decoded runs that read as text, one per line.
    Hex,
    /// Regional-indicator symbols read as letters (🇮🇬🇳🇴🇷🇪 → `ignore`).
    Regional,
}

impl Decoding {
    /// A stable snake_case name for findings, logs and tests.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decoding::Rot13 => "rot13",
            Decoding::Reversed => "reversed",
            Decoding::Leet => "leet",
            Decoding::Spaced => "spaced",
            Decoding::Percent => "percent",
            Decoding::HtmlEntity => "html_entity",
            Decoding::Base64 => "base64",
            Decoding::Hex => "hex",
            Decoding::Regional => "regional",
        }
    }
}

/// One reading of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The decoding that produced it.
    pub(crate) how: Decoding,
    /// The decoded text: never equal to the input, never longer, mostly printable.
    pub(crate) text: String,
}

/// Every reading of `text` (its first [`MAX_INPUT_BYTES`]) that differs from it and is mostly
/// printable text, at most one per [`Decoding`], in a fixed order: percent, HTML entities,
/// regional indicators, base64, hex, leetspeak, spaced letters, rot13, reversed.
pub(crate) fn decoded_views(text: &str) -> Vec<Decoded> {
    let text = head(text);
    let signals = scan(text);
    if !signals.any() {
        return Vec::new();
    }
    let candidates = [
        (
            Decoding::Percent,
            signals.percent,
            percent as fn(&str) -> Option<String>,
        ),
        (Decoding::HtmlEntity, signals.html_entity, html_entities),
        (Decoding::Regional, signals.regional, regional),
        (Decoding::Base64, signals.base64, base64_runs),
        (Decoding::Hex, signals.hex, hex_runs),
        (Decoding::Leet, signals.leet, leet),
        (Decoding::Spaced, signals.spaced, spaced),
        (Decoding::Rot13, signals.rot13, rot13),
        (Decoding::Reversed, signals.reversed, reversed),
    ];
    let mut views = Vec::new();
    for (how, signalled, decode) in candidates {
        if !signalled {
            continue;
        }
        let Some(mut decoded) = decode(text) else {
            continue;
        };
        // Every decoding shrinks or keeps the length; the cut only guards that promise.
        decoded.truncate(floor_char_boundary(&decoded, text.len()));
        if decoded != text && !decoded.trim().is_empty() && mostly_printable(&decoded) {
            views.push(Decoded { how, text: decoded });
        }
    }
    views
}

/// At least nine characters in ten are not controls (whitespace aside) nor U+FFFD (what an
/// invalid byte decodes to).
pub(crate) fn mostly_printable(text: &str) -> bool {
    let mut n = 0usize;
    let mut bad = 0usize;
    for c in text.chars() {
        n += 1;
        if c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) {
            bad += 1;
        }
    }
    bad * 10 <= n
}

/// The first [`MAX_INPUT_BYTES`] of a text, cut at a character boundary.
fn head(text: &str) -> &str {
    text.get(..floor_char_boundary(text, MAX_INPUT_BYTES))
        .unwrap_or_default()
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

//! Tokens: a text split at ASCII whitespace, as the decoders that read it token by token see it
//! (base64 chunks, hex byte pairs, spaced letters), and a token without the punctuation around
//! it.
//!
//! Owns: [`Token`] (its text, where it starts, the whitespace before it, whether a line break
//! is in it), [`tokens`], [`trim_punct`] and [`punct_bounds`].
//! Never: judges or decodes a token, or cuts a text anywhere but next to an ASCII byte (so every
//! bound it gives is a character boundary). Its whitespace is the prefilter's (`scan.rs`): the
//! bytes `u8::is_ascii_whitespace` takes.

/// A whitespace-separated token and what stands before it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Token<'a> {
    pub(super) text: &'a str,
    pub(super) start: usize,
    /// Bytes of whitespace before it.
    pub(super) gap: usize,
    /// A line break before it (or it starts the text).
    pub(super) new_line: bool,
}

impl Token<'_> {
    pub(super) fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// The whitespace-separated tokens of `text`, in order.
pub(super) fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let gap_start = at;
        let mut new_line = at == 0;
        for &b in bytes.get(at..).unwrap_or_default() {
            if !b.is_ascii_whitespace() {
                break;
            }
            new_line |= b == b'\n';
            at += 1;
        }
        let start = at;
        for &b in bytes.get(at..).unwrap_or_default() {
            if b.is_ascii_whitespace() {
                break;
            }
            at += 1;
        }
        // Whitespace is ASCII, so both ends are character boundaries.
        let token = text.get(start..at)?;
        (!token.is_empty()).then_some(Token {
            text: token,
            start,
            gap: start - gap_start,
            new_line,
        })
    })
}

/// A token without the punctuation around it (`(word),` → `word`).
pub(super) fn trim_punct(token: &str) -> &str {
    let (start, end) = punct_bounds(token);
    token.get(start..end).unwrap_or_default()
}

/// Where a token's text starts and ends without the punctuation around it. Only ASCII bytes are
/// cut off, so both are character boundaries.
pub(super) fn punct_bounds(token: &str) -> (usize, usize) {
    let bytes = token.as_bytes();
    let lead = |b: &u8| matches!(b, b'(' | b'[' | b'{' | b'"' | b'\'' | b'<' | b'`');
    let trail = |b: &u8| {
        matches!(
            b,
            b')' | b']'
                | b'}'
                | b'"'
                | b'\''
                | b'>'
                | b'`'
                | b'.'
                | b','
                | b';'
                | b':'
                | b'!'
                | b'?'
        )
    };
    let start = bytes.iter().position(|b| !lead(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !trail(b))
        .map_or(start, |at| (at + 1).max(start));
    (start, end)
}

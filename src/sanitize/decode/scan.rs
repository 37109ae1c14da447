//! The prefilter: which decodings can change a text, found in one pass over its bytes.
//!
//! Owns: [`scan`] and its [`Signals`], the byte classes, the judging of each token as it ends
//! (a plain word, a single letter, hex pairs, a base64 chunk, an escape) and of runs of tokens
//! on one line, and the word filter (common English words in rot13 or reversed, and words that
//! ask for such a reading).
//! Never: decodes or builds a view (the decoders in `bytes.rs` and `letters.rs` do, and only the
//! ones it signals run), or writes its own copy of a decoder's test of a token (a base64 chunk
//! or run, hex digits, an escape, a leet word, dotted letters): it calls theirs.

use super::bytes::{
    b64_runs, entity_at, hex_candidates, hex_pairs, is_chunk, looks_encoded, percent_at,
    MIN_HEX_PAIRS, MIN_RUN,
};
use super::letters::{leet_word, separated_letters, MIN_SPACED};
use super::tokens::trim_punct;

/// Which decodings can change a text.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Signals {
    pub(super) percent: bool,
    pub(super) html_entity: bool,
    pub(super) regional: bool,
    pub(super) base64: bool,
    pub(super) hex: bool,
    pub(super) leet: bool,
    pub(super) spaced: bool,
    pub(super) rot13: bool,
    pub(super) reversed: bool,
}

impl Signals {
    pub(super) fn any(&self) -> bool {
        self.percent
            || self.html_entity
            || self.regional
            || self.base64
            || self.hex
            || self.leet
            || self.spaced
            || self.rot13
            || self.reversed
    }
}

/// Which decodings are worth running, in one pass over the bytes: each byte's class bits are
/// gathered per token, and a token is judged when it ends. Plain words (letters only, no
/// capital after a small letter), most of any text, cost one word lookup; such a word is never
/// read as base64 (base64 of text has a capital after a small letter, a digit or a sign).
pub(super) fn scan(text: &str) -> Signals {
    let mut s = Signals::default();
    let mut runs = Runs::default();
    let mut token = TokenState {
        start: 0,
        mask: 0,
        new_line: true,
    };
    let mut in_token = false;
    for (idx, &b) in text.as_bytes().iter().enumerate() {
        let c = class(b);
        if c == SPACE {
            if in_token {
                in_token = false;
                end_token(text, &token, idx, &mut runs, &mut s);
                token.new_line = false;
            }
            token.new_line |= b == b'\n';
            continue;
        }
        if !in_token {
            in_token = true;
            token.start = idx;
            token.mask = 0;
        }
        token.mask |= c;
    }
    if in_token {
        end_token(text, &token, text.len(), &mut runs, &mut s);
    }
    s
}

/// What [`scan`] knows of the token it is in.
struct TokenState {
    start: usize,
    /// The class bits of its bytes.
    mask: u8,
    /// A line break before it (or it starts the text).
    new_line: bool,
}

fn end_token(text: &str, state: &TokenState, end: usize, runs: &mut Runs, s: &mut Signals) {
    if state.new_line {
        *runs = Runs::default();
    }
    let bytes = text.as_bytes().get(state.start..end).unwrap_or_default();
    if is_plain_word(bytes, state.mask) {
        // A plain word (`records`, `Returns`, `README`): only a word lookup can signal.
        *runs = Runs::default();
        word_signals(bytes, s);
        return;
    }
    // Whitespace is ASCII, so both ends are character boundaries.
    let token = text.get(state.start..end).unwrap_or_default();
    let (core, mask) = if state.mask & (OTHER | HIGH) == 0 {
        (token, state.mask)
    } else {
        if state.mask & OTHER != 0 && bytes.iter().any(|&b| b == b'%' || b == b'&') {
            s.percent |= token
                .match_indices('%')
                .any(|(idx, _)| percent_at(bytes, idx).is_some());
            s.html_entity |= token
                .match_indices('&')
                .any(|(idx, _)| entity_at(token, idx).is_some());
        }
        if state.mask & HIGH != 0 {
            s.regional |= token
                .chars()
                .any(|c| ('\u{1f1e6}'..='\u{1f1ff}').contains(&c));
        }
        // Every character `trim_punct` takes off is `OTHER`.
        let core = trim_punct(token);
        (core, class_mask(core))
    };
    if is_plain_word(core.as_bytes(), mask) {
        *runs = Runs::default();
        word_signals(core.as_bytes(), s);
        return;
    }
    token_signals(token, state.mask, core, mask, runs, s);
}

/// What a run of tokens on one line adds up to so far.
#[derive(Default)]
struct Runs {
    /// Single letters in a row (`I g n`).
    single_letters: usize,
    /// Characters of base64 chunks in a row.
    chunks: usize,
    /// Hex byte pairs in a row (`69 67`).
    hex_pairs: usize,
}

/// ASCII whitespace, which separates tokens (no bit: no other byte has class 0).
const SPACE: u8 = 0;
const LOWER: u8 = 1;
const UPPER: u8 = 2;
const DIGIT: u8 = 4;
/// `+` and `/`, base64's own signs.
const B64_SIGN: u8 = 8;
/// `-` and `_`, URL-safe base64's signs (and separators).
const URL_SIGN: u8 = 16;
const EQUALS: u8 = 32;
/// Any other ASCII punctuation (`:`, `.`, `@`, `$`, `\\`…).
const OTHER: u8 = 64;
/// A byte of a non-ASCII character.
const HIGH: u8 = 128;

/// The class bits of every byte, built at compile time.
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = if byte.is_ascii_lowercase() {
            LOWER
        } else if byte.is_ascii_uppercase() {
            UPPER
        } else if byte.is_ascii_digit() {
            DIGIT
        } else if byte == b'+' || byte == b'/' {
            B64_SIGN
        } else if byte == b'-' || byte == b'_' {
            URL_SIGN
        } else if byte == b'=' {
            EQUALS
        } else if byte.is_ascii_whitespace() {
            SPACE
        } else if byte >= 0x80 {
            HIGH
        } else {
            OTHER
        };
        b += 1;
    }
    table
};

fn class(b: u8) -> u8 {
    // A byte indexes the 256 entries: `get` never fails.
    CLASS.get(usize::from(b)).copied().unwrap_or(HIGH)
}

fn class_mask(core: &str) -> u8 {
    core.bytes().fold(0, |mask, b| mask | class(b))
}

/// Three letters or more, with no capital right after a small letter (`records`, `Returns`,
/// `README`; not `GitHub`, `IGFsbCBw`): a word, where base64 mostly has such a capital.
fn is_plain_word(bytes: &[u8], mask: u8) -> bool {
    if bytes.len() < 3 {
        return false;
    }
    if mask == LOWER || mask == UPPER {
        return true;
    }
    mask == LOWER | UPPER
        && !bytes
            .windows(2)
            .any(|pair| matches!(pair, [a, b] if a.is_ascii_lowercase() && b.is_ascii_uppercase()))
}

/// What a token other than a plain word signals (`core` is its text without the punctuation
/// around it, `mask` the class bits of `core`, `token_mask` those of the whole token).
fn token_signals(
    token: &str,
    token_mask: u8,
    core: &str,
    mask: u8,
    runs: &mut Runs,
    s: &mut Signals,
) {
    let len = core.len();
    if len == 1 && mask & !(LOWER | UPPER) == 0 {
        runs.single_letters += 1;
        s.spaced |= runs.single_letters >= MIN_SPACED;
        runs.hex_pairs = 0;
        runs.chunks = 0;
        return;
    }
    runs.single_letters = 0;
    match hex_pairs(core) {
        Some(n_pairs) => {
            runs.hex_pairs += n_pairs;
            s.hex |= runs.hex_pairs >= MIN_HEX_PAIRS;
        }
        None => runs.hex_pairs = 0,
    }
    if (3..=WORD_MAX).contains(&len) && mask & !(LOWER | UPPER | DIGIT | URL_SIGN) == 0 {
        word_signals(core.as_bytes(), s);
    }
    if len < 4 {
        runs.chunks = 0;
        return;
    }
    if mask & (DIGIT | OTHER | B64_SIGN | URL_SIGN) != 0 && mask & (LOWER | UPPER) != 0 {
        s.spaced |= separated_letters(core).is_some();
        s.leet |= leet_word(core);
    }
    if token_mask & (OTHER | B64_SIGN) == OTHER | B64_SIGN && token.contains("://") {
        runs.chunks = 0;
        return;
    }
    let encoded_signs = mask & (DIGIT | B64_SIGN | EQUALS) != 0;
    let both_cases = mask & (LOWER | UPPER) == LOWER | UPPER;
    if mask & !(LOWER | UPPER | DIGIT | B64_SIGN | URL_SIGN | EQUALS) == 0
        && (encoded_signs || both_cases)
        && is_chunk(core)
    {
        runs.chunks += len;
        s.base64 |= runs.chunks >= MIN_RUN;
        if core.ends_with('=') {
            runs.chunks = 0;
        }
    } else {
        runs.chunks = 0;
    }
    if len >= MIN_RUN && (both_cases || encoded_signs) {
        s.base64 |= b64_runs(token).any(|run| run.len() >= MIN_RUN && looks_encoded(run));
        if mask & DIGIT != 0 {
            s.hex |= hex_candidates(token).next().is_some();
        }
    }
}

/// The longest word [`word_signals`] looks up.
const WORD_MAX: usize = 13;

const ROT13: u8 = 1;
const REVERSED: u8 = 2;

/// Common English words in rot13 and reversed, and words that ask for such a reading. None is
/// an English word itself, nor a common abbreviation (rot13 `gb` and `va`, reversed `era` and
/// `elif` are left out for that).
const WORDS: &[(&[u8], u8)] = &[
    (b"gur", ROT13),
    (b"naq", ROT13),
    (b"nyy", ROT13),
    (b"lbh", ROT13),
    (b"guvf", ROT13),
    (b"sbe", ROT13),
    (b"jvgu", ROT13),
    (b"lbhe", ROT13),
    (b"gung", ROT13),
    (b"abg", ROT13),
    (b"vtaber", ROT13),
    (b"vafgehpgvba", ROT13),
    (b"vafgehpgvbaf", ROT13),
    (b"cerivbhf", ROT13),
    (b"flfgrz", ROT13),
    (b"hfre", ROT13),
    (b"fraq", ROT13),
    (b"ernq", ROT13),
    (b"frperg", ROT13),
    (b"cnffjbeq", ROT13),
    (b"cebzcg", ROT13),
    (b"svyr", ROT13),
    (b"gbby", ROT13),
    (b"zhfg", ROT13),
    (b"nyjnlf", ROT13),
    (b"arire", ROT13),
    (b"orsber", ROT13),
    (b"qvfertneq", ROT13),
    (b"sbetrg", ROT13),
    (b"eht", REVERSED),
    (b"dna", REVERSED),
    (b"lla", REVERSED),
    (b"uoy", REVERSED),
    (b"siht", REVERSED),
    (b"rof", REVERSED),
    (b"htiw", REVERSED),
    (b"ruoy", REVERSED),
    (b"taht", REVERSED),
    (b"erongi", REVERSED),
    (b"noitcurtsni", REVERSED),
    (b"snoitcurtsni", REVERSED),
    (b"suoiverp", REVERSED),
    (b"metsys", REVERSED),
    (b"resu", REVERSED),
    (b"dnes", REVERSED),
    (b"daer", REVERSED),
    (b"terces", REVERSED),
    (b"drowssap", REVERSED),
    (b"tpmorp", REVERSED),
    (b"tsum", REVERSED),
    (b"syawla", REVERSED),
    (b"reven", REVERSED),
    (b"erofeb", REVERSED),
    (b"dragersid", REVERSED),
    (b"tegrof", REVERSED),
    (b"rot13", ROT13 | REVERSED),
    (b"rot-13", ROT13 | REVERSED),
    (b"rot_13", ROT13 | REVERSED),
    (b"caesar", ROT13 | REVERSED),
    (b"cipher", ROT13 | REVERSED),
    (b"decipher", ROT13 | REVERSED),
    (b"backwards", ROT13 | REVERSED),
    (b"backward", ROT13 | REVERSED),
    (b"reverse", ROT13 | REVERSED),
    (b"reversed", ROT13 | REVERSED),
    (b"decode", ROT13 | REVERSED),
    (b"decoded", ROT13 | REVERSED),
    (b"unscramble", ROT13 | REVERSED),
    (b"mirrored", ROT13 | REVERSED),
];

/// Where a byte stands in the word filters: letters by their place in the alphabet, anything
/// else at 26.
const fn filter_slot(b: u8) -> usize {
    let lower = b | 0x20;
    if lower.is_ascii_lowercase() {
        (lower - b'a') as usize
    } else {
        26
    }
}

/// [`filter_slot`] of every byte, built at compile time.
const SLOT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = filter_slot(b as u8) as u8;
        b += 1;
    }
    table
};

/// For each first and last letter (27 × 27), the lengths of [`WORDS`] with them: with
/// [`SECOND_FILTER`], two lookups rule out almost every other word before any comparison.
const WORD_FILTER: [u16; 729] = letter_filter(false);
/// For each first and second letter, the lengths of [`WORDS`] with them.
const SECOND_FILTER: [u16; 729] = letter_filter(true);

const fn letter_filter(second: bool) -> [u16; 729] {
    let mut bits = [0u16; 729];
    let mut idx = 0;
    while idx < WORDS.len() {
        let word = WORDS[idx].0;
        let first = filter_slot(word[0]);
        let other = filter_slot(if second {
            word[1]
        } else {
            word[word.len() - 1]
        });
        bits[first * 27 + other] |= 1 << word.len();
        idx += 1;
    }
    bits
}

fn word_signals(bytes: &[u8], s: &mut Signals) {
    let (Some(&first), Some(&second), Some(&last)) = (bytes.first(), bytes.get(1), bytes.last())
    else {
        return;
    };
    if bytes.len() > WORD_MAX {
        return;
    }
    let slot = |b: u8| usize::from(SLOT.get(usize::from(b)).copied().unwrap_or(26));
    let lengths = |filter: &[u16; 729], other: u8| {
        filter
            .get(slot(first) * 27 + slot(other))
            .copied()
            .unwrap_or_default()
    };
    let bit = 1 << bytes.len();
    if lengths(&WORD_FILTER, last) & lengths(&SECOND_FILTER, second) & bit == 0 {
        return;
    }
    if let Some((_, flags)) = WORDS
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(bytes))
    {
        s.rot13 |= flags & ROT13 != 0;
        s.reversed |= flags & REVERSED != 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed word is found by the lookup the scan does, in any case, and no word of
    /// ordinary prose around it is.
    #[test]
    fn every_word_passes_the_filters() {
        for (word, flags) in WORDS {
            assert!(word.len() <= WORD_MAX);
            for text in [
                String::from_utf8_lossy(word).into_owned(),
                String::from_utf8_lossy(word).to_uppercase(),
                format!("Read: {}.", String::from_utf8_lossy(word)),
            ] {
                let s = scan(&text);
                assert_eq!(s.rot13, flags & ROT13 != 0, "{text}");
                assert_eq!(s.reversed, flags & REVERSED != 0, "{text}");
            }
        }
        let prose = "The cursor, the string and the required fields are read from the store.";
        assert!(!scan(prose).any());
    }

    /// Plain prose and its usual look-alikes of an encoding (a URL, units, a camel-case brand)
    /// run no decoder at all: the cost the module's docs promise.
    #[test]
    fn plain_prose_and_look_alikes_signal_nothing() {
        for text in [
            "Reads records of kind 7 from the store. Returns at most `limit` records, newest \
             first. Use `cursor` from a previous answer to continue. Only works within the \
             configured project; see https://example.com/docs/records for the query syntax.",
            "Filter expression, e.g. `status = open`.",
            "Send a message to a Slack channel. Formatting guide: https://api.slack.com/reference",
            "Latency is 100ms at p50; supports h264, x86_64 and IPv4 on port 8080.",
            "Open the repository in GitHub Codespaces with developer mode enabled.",
        ] {
            assert!(!scan(text).any(), "{text:?}");
        }
    }

    #[test]
    fn joined_hex_pairs_signal_hex_and_a_mac_address_does_not() {
        assert!(scan("MAC-like: 69:67:6e:6f:72:65:20:61:6c:6c").hex);
        assert!(!scan("Wakes a host by MAC address, e.g. 00:1A:2B:3C:4D:5E.").hex);
    }
}

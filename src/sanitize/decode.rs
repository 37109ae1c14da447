//! Decodings: the readings of a text that an encoding hides from the phrase detectors.
//!
//! Owns: [`decoded_views`] (a text in, each reading of it that differs from it out, with the
//! [`Decoding`] that produced it: rot13, reversed, leetspeak, letters spaced apart, percent and
//! HTML-entity encoding, base64 and hex runs, regional-indicator letters), its cheap prefilter
//! [`worth_decoding`], and the base64 decoder the detectors share.
//! Never: judges (that is `detect.rs`), decodes a decoded view again (one level: base64 of
//! percent-encoding is not read), reads more than [`MAX_INPUT_BYTES`] of a text, yields more than
//! one view per decoding or a view longer than its input, or panics on any input.
//!
//! Cost: one pass over the bytes, judging each whitespace-separated token as it ends, decides
//! which decodings can change anything (`scan`); only those run, and plain prose yields no view
//! at all: each view costs the detectors one more pass. rot13 and reversed text would otherwise
//! be such a pass over every text, so they run only when a word of the text is a common English
//! word in rot13 (`gur`, `vtaber`) or reversed (`eht`, `erongi`), or the text mentions such a
//! reading (`rot13`, `backwards`, `decode`).
//! Homoglyphs are not a decoding here: the detectors fold every view (`fold_confusables`).
//!
//! Size: past 1,300 lines, and due to be split along its three seams: the prefilter (`scan`, the
//! byte classes, tokens and the word filter), the byte decodings (base64, hex, percent, HTML
//! entities) and the letter decodings (regional, leet, spaced, rot13, reversed). Not done in the
//! change that wrote it, for want of time; nothing here depends on it being one file.

/// Bytes of a text read at most; the rest is not decoded. Model-read text is capped far below
/// this before detection (a description at 4096 characters); only dropped fields can be longer.
pub(crate) const MAX_INPUT_BYTES: usize = 128 * 1024;

/// Shortest base64 or hex run decoded (after joining chunks split by spaces).
const MIN_RUN: usize = 16;
/// Fewest letters spaced apart (`I g n o r e`) joined into a word.
const MIN_SPACED: usize = 3;
/// Fewest hex byte pairs in a row (`69 67 6e …`, `\x69\x67…`) decoded.
const MIN_HEX_PAIRS: usize = 8;
/// Decoded base64 or hex runs kept in one view.
const MAX_FRAGMENTS: usize = 64;
/// Chunks of a base64 group tried as the first one (a word before the payload is skipped).
const CHUNK_STARTS: usize = 3;

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

/// Whether any decoding could change `text`: the cheap test [`decoded_views`] starts with.
/// False for plain prose; true does not promise a view.
// Reason: the detectors call `decoded_views`, which runs the same test; this is for callers that
// want the answer without the views (the learned model's featuriser).
#[allow(dead_code)]
pub(crate) fn worth_decoding(text: &str) -> bool {
    scan(head(text)).any()
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

/// Which decodings can change a text.
#[derive(Clone, Copy, Debug, Default)]
struct Signals {
    percent: bool,
    html_entity: bool,
    regional: bool,
    base64: bool,
    hex: bool,
    leet: bool,
    spaced: bool,
    rot13: bool,
    reversed: bool,
}

impl Signals {
    fn any(&self) -> bool {
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

/// Which decodings are worth running, in one pass over the bytes: each byte's class bits are
/// gathered per token, and a token is judged when it ends. Plain words (letters only, no
/// capital after a small letter), most of any text, cost one word lookup; such a word is never
/// read as base64 (base64 of text has a capital after a small letter, a digit or a sign).
fn scan(text: &str) -> Signals {
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

/// Hex byte pairs spaced or joined by `:` or `-` (`69`, `69:67:6e`): how many, if that is all
/// the token is.
fn hex_pairs(core: &str) -> Option<usize> {
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

/// A whitespace-separated token and what stands before it.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    text: &'a str,
    start: usize,
    /// Bytes of whitespace before it.
    gap: usize,
    /// A line break before it (or it starts the text).
    new_line: bool,
}

impl Token<'_> {
    fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let gap_start = at;
        let mut new_line = at == 0;
        for &b in bytes.get(at..).unwrap_or_default() {
            if class(b) != SPACE {
                break;
            }
            new_line |= b == b'\n';
            at += 1;
        }
        let start = at;
        for &b in bytes.get(at..).unwrap_or_default() {
            if class(b) == SPACE {
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
fn trim_punct(token: &str) -> &str {
    let (start, end) = punct_bounds(token);
    token.get(start..end).unwrap_or_default()
}

/// Where a token's text starts and ends without the punctuation around it. Only ASCII bytes are
/// cut off, so both are character boundaries.
fn punct_bounds(token: &str) -> (usize, usize) {
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

fn is_single_letter(core: &str) -> bool {
    core.len() == 1 && core.bytes().all(|b| b.is_ascii_alphabetic())
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
fn leet_word(core: &str) -> bool {
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
fn separated_letters(core: &str) -> Option<String> {
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

fn is_b64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Runs of base64 characters in a token, each with the `=` padding that ends it.
fn b64_runs(token: &str) -> impl Iterator<Item = &str> {
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
fn looks_encoded(run: &str) -> bool {
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
fn is_chunk(core: &str) -> bool {
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
fn base64_runs(text: &str) -> Option<String> {
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
fn hex_candidates(token: &str) -> impl Iterator<Item = String> + '_ {
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
fn hex_runs(text: &str) -> Option<String> {
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

fn percent_at(bytes: &[u8], idx: usize) -> Option<u8> {
    Some(hex_value(bytes.get(idx + 1))? << 4 | hex_value(bytes.get(idx + 2))?)
}

/// `%XX` escapes decoded (once: `%2569` is `%69`); bytes that are not UTF-8 become U+FFFD.
fn percent(text: &str) -> Option<String> {
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
fn entity_at(text: &str, idx: usize) -> Option<(Option<char>, usize)> {
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
fn html_entities(text: &str) -> Option<String> {
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

/// Regional-indicator symbols as the letters they stand for (a flag is two of them: 🇫🇷 → `fr`).
fn regional(text: &str) -> Option<String> {
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
fn leet(text: &str) -> Option<String> {
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
fn spaced(text: &str) -> Option<String> {
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

fn rot13(text: &str) -> Option<String> {
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

fn reversed(text: &str) -> Option<String> {
    Some(text.chars().rev().collect())
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

    #[test]
    fn joined_hex_pairs_are_read() {
        let text = "MAC-like: 69:67:6e:6f:72:65:20:61:6c:6c";
        assert!(scan(text).hex);
        assert_eq!(hex_runs(text).as_deref(), Some("ignore all"));
        assert!(!scan("Wakes a host by MAC address, e.g. 00:1A:2B:3C:4D:5E.").hex);
    }
}

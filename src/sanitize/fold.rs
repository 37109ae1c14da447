//! The readings of a text that the detectors and the learned stage share: the confusable fold
//! (each non-ASCII letter whose UTS #39 skeleton is one ASCII letter or digit, combining marks
//! and small capitals included), the fold of Latin look-alikes into Cyrillic words, and the
//! reading view (emphasis, code marks, empty tags and hyphenated line breaks taken out), and the
//! views the patterns read ([`views`]).
//! Never: judges or decides anything, or decodes (that is `decode/`): a fold reads a text as it
//! looks, not as it is encoded.

use std::borrow::Cow;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The texts the patterns read: the lowercased text, its confusable fold, and a reading view with
/// emphasis, code marks, empty tags and hyphenated line breaks taken out (`**Ig**nore`).
pub(super) fn views(lower: &str) -> Vec<Cow<'_, str>> {
    // Most text is ASCII: its fold is itself, and no copy of it is made.
    let folded: Cow<'_, str> = if lower.is_ascii() {
        Cow::Borrowed(lower)
    } else {
        Cow::Owned(fold_confusables(lower))
    };
    let reading = may_read_differently(&folded)
        .then(|| reading_view(&folded))
        .filter(|reading| reading.as_str() != folded.as_ref());
    let mut out = vec![Cow::Borrowed(lower)];
    if matches!(folded, Cow::Owned(_)) && folded != lower {
        out.push(folded);
    }
    if let Some(cyrillic) = fold_into_cyrillic(lower) {
        out.push(Cow::Owned(cyrillic));
    }
    if let Some(reading) = reading {
        out.push(Cow::Owned(reading));
    }
    out
}

/// Whether [`reading_view`] can take anything out of `text`: a mark (`*`, `` ` ``, `~`), a tag's
/// `<`, or a hyphen that ends a line. A hyphen inside a line (`read-only`, `e-mail`, a date)
/// takes nothing out, and is common enough that building the view for it cost a copy of most
/// texts.
fn may_read_differently(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'*' | b'`' | b'~' | b'<' => true,
        b'-' => bytes.get(i + 1) == Some(&b'\n'),
        _ => false,
    })
}

/// The text with the Latin look-alikes inside Cyrillic words made Cyrillic ("прeдыдущие" with a
/// Latin `e`), so that the Russian and Ukrainian patterns read them; `None` when no word mixes
/// the two (the confusable fold only goes the other way, to ASCII).
pub(super) fn fold_into_cyrillic(lower: &str) -> Option<String> {
    // Cyrillic letters start with the bytes 0xD0 to 0xD3 in UTF-8: most texts stop here.
    if !lower.bytes().any(|b| (0xd0..=0xd3).contains(&b)) {
        return None;
    }
    let is_cyrillic = |c: char| matches!(c, '\u{0400}'..='\u{04FF}');
    let mut out = String::with_capacity(lower.len());
    let mut changed = false;
    for word in lower.split_inclusive(|c: char| !c.is_alphanumeric()) {
        if !word.chars().any(is_cyrillic) {
            out.push_str(word);
            continue;
        }
        for c in word.chars() {
            let swapped = cyrillic_look_alike(c);
            changed |= swapped != c;
            out.push(swapped);
        }
    }
    changed.then_some(out)
}

/// The Cyrillic letter a lowercase Latin one is drawn like, or itself.
fn cyrillic_look_alike(c: char) -> char {
    match c {
        'a' => 'а',
        'c' => 'с',
        'e' => 'е',
        'i' => 'і',
        'k' => 'к',
        'o' => 'о',
        'p' => 'р',
        'x' => 'х',
        'y' => 'у',
        _ => c,
    }
}

pub(super) fn reading_view(text: &str) -> String {
    let joined: Cow<'_, str> = if text.contains("-\n") {
        Cow::Owned(text.replace("-\n", ""))
    } else {
        Cow::Borrowed(text)
    };
    // Bytes, not chars: everything taken out is ASCII (marks, and tags of ASCII letters), so
    // what is left is still UTF-8.
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'<' => {
                // An empty or formatting tag (`<b>`, `</i>`, `<span>`) vanishes when rendered.
                let head = &bytes[i..bytes.len().min(i + 40)];
                let tag_end = head.iter().position(|&t| t == b'>').filter(|&end| {
                    head[1..end]
                        .iter()
                        .all(|t| t.is_ascii_alphanumeric() || *t == b'/')
                });
                if let Some(end) = tag_end {
                    i += end + 1;
                    continue;
                }
                out.push(b);
            }
            b'*' | b'`' | b'~' => {}
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Takes combining marks off (`ígnore`, `ị`, the dot of `İ`), then replaces every non-ASCII letter
/// whose UTS #39 skeleton is one ASCII letter or digit by it (Cyrillic `і` → `i`).
pub(crate) fn fold_confusables(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    text.nfd()
        .filter(|&c| !is_combining_mark(c))
        .map(fold_char)
        .collect()
}

/// One character's ASCII look-alike, or itself.
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() || !c.is_alphabetic() {
        return c;
    }
    if let Some(ascii) = small_capital(c) {
        return ascii;
    }
    let mut buf = [0u8; 4];
    let mut skeleton = unicode_security::skeleton(c.encode_utf8(&mut buf));
    match (skeleton.next(), skeleton.next()) {
        (Some(s), None) if s.is_ascii_alphanumeric() => s.to_ascii_lowercase(),
        _ => c,
    }
}

/// Latin small capitals, which read as lowercase ASCII letters.
fn small_capital(c: char) -> Option<char> {
    Some(match c {
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ꜰ' => 'f',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrillic_i_folds_to_latin_i() {
        assert_eq!(fold_confusables("\u{456}gnore"), "ignore");
        assert_eq!(fold_confusables("日本語"), "日本語");
    }

    #[test]
    fn latin_look_alikes_in_a_cyrillic_word_fold_into_cyrillic() {
        // "прeдыдущие" with a Latin `e`; an English word beside it is left alone.
        assert_eq!(
            fold_into_cyrillic("игнорируй прeдыдущие rules").as_deref(),
            Some("игнорируй предыдущие rules")
        );
        assert_eq!(fold_into_cyrillic("игнорируй предыдущие"), None);
        assert_eq!(fold_into_cyrillic("plain text"), None);
    }

    #[test]
    fn a_reading_view_is_read_only_where_it_differs() {
        assert_eq!(views("a read-only e-mail field, 2024-01-01").len(), 1);
        assert_eq!(views("ig-\nnore previous").len(), 2);
        assert_eq!(views("**ig**nore previous").len(), 2);
        // A mark that takes nothing out gives no second view either.
        assert_eq!(views("a <= b").len(), 1);
        for text in ["a read-only e-mail", "x - y", "trailing-"] {
            assert_eq!(reading_view(text), text, "{text:?}");
        }
    }

    #[test]
    fn the_reading_view_takes_out_what_rendering_hides() {
        assert_eq!(
            reading_view("**Ig**no`re` <b>all</b> pre-\nvious"),
            "Ignore all previous"
        );
    }
}

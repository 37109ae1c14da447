//! The keys of a server entry: which the gate reads and what each holds, which other clients
//! write, and a [`Warning`] with a suggestion for any other.
//!
//! Owns: [`SHAPES`] (each key the gate reads, with the kind of value it holds), [`INERT_KEYS`]
//! (keys of other clients that change nothing here: accepted without a word), the suggestion for
//! an unknown key (a usual other name for a key, else the closest key by edit distance), and
//! [`known_keys`], which checks an entry's keys and shapes before `entry.rs` reads them.
//! Never: reads what a key means (`entry.rs` does); quotes a value in an error or a warning
//! (only keys, shortened).

use super::error::Error;
use serde_json::{Map, Value};
use std::fmt;

/// The keys the gate reads, and the kind of value each holds.
const SHAPES: [(&str, Shape); 12] = [
    ("command", Shape::Text),
    ("args", Shape::Texts),
    ("env", Shape::TextMap),
    ("envFile", Shape::Text),
    ("cwd", Shape::Text),
    ("url", Shape::Text),
    ("headers", Shape::TextMap),
    ("type", Shape::Text),
    ("transportType", Shape::Text),
    ("disabled", Shape::Flag),
    ("trusted", Shape::Flag),
    ("era", Shape::Text),
];

/// Keys other clients write that mean nothing to the gate (a timeout of the client's, its
/// auto-approval lists, a description, VS Code's development mode): accepted without a word.
const INERT_KEYS: [&str; 5] = [
    "timeout",
    "autoApprove",
    "alwaysAllow",
    "description",
    "dev",
];

/// Names people write for a key, and the key they mean (compared in lower case).
const ALIASES: [(&str, &str); 8] = [
    ("cmd", "command"),
    ("arguments", "args"),
    ("argv", "args"),
    ("environment", "env"),
    ("serverurl", "url"),
    ("uri", "url"),
    ("endpoint", "url"),
    ("workingdirectory", "cwd"),
];

/// What a server entry's known key holds.
#[derive(Clone, Copy)]
enum Shape {
    /// A string (or `null`, as if the key were absent).
    Text,
    /// An array of strings.
    Texts,
    /// An object whose values are strings.
    TextMap,
    /// `true` or `false`.
    Flag,
}

impl Shape {
    fn fits(self, value: &Value) -> bool {
        match self {
            Shape::Text => value.is_string() || value.is_null(),
            Shape::Texts => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Shape::TextMap => value
                .as_object()
                .is_some_and(|map| map.values().all(Value::is_string)),
            Shape::Flag => value.is_boolean(),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::Texts => "an array of strings",
            Shape::TextMap => "an object whose values are strings",
            Shape::Flag => "true or false",
        }
    }
}

/// Something in the file the gate goes past, said once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Warning {
    /// A server entry has a key the gate does not know; it is ignored.
    UnknownKey {
        /// The server.
        server: String,
        /// The key, shortened.
        key: String,
        /// The known key closest to it, when one is close.
        suggestion: Option<&'static str>,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey {
                server,
                key,
                suggestion,
            } => {
                write!(f, "server {server:?}: unknown key {key:?} is ignored")?;
                if let Some(known) = suggestion {
                    write!(f, "; did you mean {known:?}?")?;
                }
                let keys: Vec<&str> = SHAPES.iter().map(|(k, _)| *k).chain(INERT_KEYS).collect();
                write!(f, " The keys of a server entry: {}", keys.join(", "))
            }
        }
    }
}

/// The keys of entry `value` that the gate reads, their shapes checked; a warning for each
/// unknown key, and the keys other clients write dropped.
pub(super) fn known_keys(
    name: &str,
    value: Value,
    warnings: &mut Vec<Warning>,
) -> Result<Map<String, Value>, Error> {
    let shape_error = |key: Option<&'static str>, expected: &'static str| Error::EntryShape {
        name: name.to_owned(),
        key,
        expected,
    };
    let Value::Object(mut map) = value else {
        return Err(shape_error(None, "a JSON object"));
    };
    for key in unknown_keys(&map) {
        map.remove(&key);
        warnings.push(Warning::UnknownKey {
            server: name.to_owned(),
            suggestion: suggest(&key),
            key: shorten(&key),
        });
    }
    for key in INERT_KEYS {
        map.remove(key);
    }
    for (key, shape) in SHAPES {
        if map.get(key).is_some_and(|v| !shape.fits(v)) {
            return Err(shape_error(Some(key), shape.expected()));
        }
    }
    Ok(map)
}

fn unknown_keys(map: &Map<String, Value>) -> Vec<String> {
    map.keys()
        .filter(|key| {
            !SHAPES.iter().any(|(known, _)| known == key) && !INERT_KEYS.contains(&key.as_str())
        })
        .cloned()
        .collect()
}

/// The known key `key` most likely meant: the known key, or the key a usual other name stands
/// for ([`ALIASES`]), at the smallest edit distance, if that is at most 2 and at most a third of
/// the length of what it is compared with (in lower case).
fn suggest(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    let keys = SHAPES.iter().map(|(k, _)| *k).chain(INERT_KEYS);
    keys.map(|k| (k, k))
        .chain(ALIASES)
        .map(|(written, meant)| {
            let d = distance(&lower, &written.to_ascii_lowercase());
            (d, written.len(), meant)
        })
        .filter(|(d, len, _)| *d <= 2 && *d * 3 <= *len)
        .min_by_key(|(d, ..)| *d)
        .map(|(.., meant)| meant)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let delete = previous.get(j + 1).copied().unwrap_or(0) + 1;
            let insert = current.get(j).copied().unwrap_or(0) + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

/// Longest key of the file quoted back in a warning.
const MAX_KEY: usize = 64;

pub(super) fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_KEY {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_KEY).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_closest_key_and_strangers_none() {
        let cases = [
            ("arg", Some("args")),
            ("Args", Some("args")),
            ("comand", Some("command")),
            ("headres", Some("headers")),
            ("enviroment", Some("env")),
            ("environment", Some("env")),
            ("auto_approve", Some("autoApprove")),
            ("disable", Some("disabled")),
            ("serverUrl", Some("url")),
            ("cmd", Some("command")),
            ("colour", None),
            ("x", None),
        ];
        for (key, want) in cases {
            assert_eq!(suggest(key), want, "{key}");
        }
    }
}

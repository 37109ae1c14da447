//! Which texts of a cleaned definition the learned stage reads, and where each is.
//!
//! Owns: the walk over a cleaned definition (a tool, a prompt, a resource, a template) that
//! collects every string a model reads — descriptions, titles, schema text, enum, const, default
//! and example values, prompt argument text — and the names read as words (the definition's
//! name, schema property names), each with its location in the finding format
//! (`inputSchema.properties.q.description`).
//! Never: reads fields that are addresses or machine keywords (`type`, `format`, `uri`,
//! `mimeType`, `$ref`…), or goes past a bound: at most [`MAX_TEXTS`] texts and
//! [`MAX_TOTAL_CHARS`] characters per definition.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Texts read per definition.
pub(super) const MAX_TEXTS: usize = 256;
/// Characters read per definition.
pub(super) const MAX_TOTAL_CHARS: usize = 32 * 1024;

/// Keys whose string values are addresses, identifiers or machine keywords, not prose.
const NOT_PROSE: &[&str] = &[
    "type",
    "format",
    "$schema",
    "$ref",
    "$id",
    "$anchor",
    "pattern",
    "uri",
    "uriTemplate",
    "mimeType",
    "src",
    "sizes",
    "theme",
    "contentEncoding",
    "contentMediaType",
    "required",
    "taskSupport",
];

/// Every model-read text of a cleaned definition, with its location. A string of the
/// definition is borrowed, not copied; a name read as words is a new string.
pub fn model_texts(clean: &Value) -> Vec<(String, Cow<'_, str>)> {
    let mut walk = Walk::default();
    if let Some(name) = clean.get("name").and_then(Value::as_str) {
        walk.push("name".to_owned(), Cow::Owned(words(name)));
    }
    walk.value(clean);
    walk.out
}

#[derive(Default)]
struct Walk<'a> {
    out: Vec<(String, Cow<'a, str>)>,
    chars: usize,
    /// The location of the value being walked (`inputSchema.properties.q`): one buffer grown
    /// and cut back as the walk goes down and up, copied only for a text that is kept.
    at: String,
}

impl<'a> Walk<'a> {
    fn push(&mut self, location: String, text: Cow<'a, str>) {
        if self.out.len() >= MAX_TEXTS || self.chars >= MAX_TOTAL_CHARS || text.trim().is_empty() {
            return;
        }
        let room = MAX_TOTAL_CHARS - self.chars;
        let mut text = text;
        if text.len() > room {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text = match text {
                Cow::Borrowed(s) => Cow::Borrowed(&s[..cut]),
                Cow::Owned(mut s) => {
                    s.truncate(cut);
                    Cow::Owned(s)
                }
            };
        }
        self.chars += text.len();
        self.out.push((location, text));
    }

    fn full(&self) -> bool {
        self.out.len() >= MAX_TEXTS || self.chars >= MAX_TOTAL_CHARS
    }

    fn value(&mut self, value: &'a Value) {
        match value {
            Value::Object(map) => {
                let top = self.at.is_empty();
                for (key, v) in map {
                    if self.full() {
                        return;
                    }
                    if NOT_PROSE.contains(&key.as_str()) || (top && key == "name") {
                        continue;
                    }
                    let back = self.at.len();
                    self.enter_key(key);
                    if key == "properties" {
                        if let Value::Object(props) = v {
                            for name in props.keys() {
                                let here = self.at.len();
                                self.enter_key(name);
                                let location = self.at.clone();
                                self.at.truncate(here);
                                self.push(location, Cow::Owned(words(name)));
                            }
                        }
                    }
                    self.value(v);
                    self.at.truncate(back);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    if self.full() {
                        return;
                    }
                    let back = self.at.len();
                    // Writing into a String cannot fail.
                    let _ = write!(self.at, "[{i}]");
                    self.value(v);
                    self.at.truncate(back);
                }
            }
            // A blank string is not kept (see `push`): its location is not copied either.
            Value::String(s) if !s.trim().is_empty() => {
                let location = self.at.clone();
                self.push(location, Cow::Borrowed(s));
            }
            _ => {}
        }
    }

    fn enter_key(&mut self, key: &str) {
        if !self.at.is_empty() {
            self.at.push('.');
        }
        self.at.push_str(key);
    }
}

/// A name as the model reads it: `_`, `-`, `.` and camelCase humps as spaces.
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.') {
            out.push(' ');
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_prose_and_names_not_keywords() {
        let tool = json!({
            "name": "get_weather",
            "description": "Weather.",
            "inputSchema": {"type": "object", "properties": {
                "cityName": {"type": "string", "description": "City.", "enum": ["Paris"]}
            }, "required": ["cityName"]}
        });
        let texts = model_texts(&tool);
        let locs: Vec<&str> = texts.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            locs,
            [
                "name",
                "description",
                "inputSchema.properties.cityName",
                "inputSchema.properties.cityName.description",
                "inputSchema.properties.cityName.enum[0]"
            ]
        );
        assert_eq!(texts[0].1, "get weather");
        assert_eq!(texts[2].1, "city Name");
    }

    #[test]
    fn bounded() {
        let many: Vec<Value> = (0..1000).map(|i| json!(format!("v{i}"))).collect();
        let definition = json!({"description": "x".repeat(100_000), "enum": many});
        let texts = model_texts(&definition);
        assert!(texts.len() <= MAX_TEXTS);
        assert!(texts.iter().map(|(_, t)| t.len()).sum::<usize>() <= MAX_TOTAL_CHARS);
    }
}

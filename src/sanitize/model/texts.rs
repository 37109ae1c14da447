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

/// Every model-read text of a cleaned definition, with its location.
pub fn model_texts(clean: &Value) -> Vec<(String, String)> {
    let mut walk = Walk::default();
    if let Some(name) = clean.get("name").and_then(Value::as_str) {
        walk.push("name".to_owned(), words(name));
    }
    walk.value(clean, "");
    walk.out
}

#[derive(Default)]
struct Walk {
    out: Vec<(String, String)>,
    chars: usize,
}

impl Walk {
    fn push(&mut self, location: String, text: String) {
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
            text.truncate(cut);
        }
        self.chars += text.len();
        self.out.push((location, text));
    }

    fn value(&mut self, value: &Value, at: &str) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if NOT_PROSE.contains(&key.as_str()) || (at.is_empty() && key == "name") {
                        continue;
                    }
                    let here = join(at, key);
                    if key == "properties" {
                        if let Value::Object(props) = v {
                            for name in props.keys() {
                                self.push(join(&here, name), words(name));
                            }
                        }
                    }
                    self.value(v, &here);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(v, &format!("{at}[{i}]"));
                }
            }
            Value::String(s) => self.push(at.to_owned(), s.clone()),
            _ => {}
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
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
        let texts = model_texts(&json!({"description": "x".repeat(100_000), "enum": many}));
        assert!(texts.len() <= MAX_TEXTS);
        assert!(texts.iter().map(|(_, t)| t.len()).sum::<usize>() <= MAX_TOTAL_CHARS);
    }
}

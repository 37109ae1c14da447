//! [`JsonText`]: a JSON value held as its compact text, for values kept long and rarely read
//! (a server's listed tools, a pinned definition).
//!
//! Owns: the one canonical text of a value (compact, object keys sorted: what `serde_json::Value`
//! writes), so that two texts are equal exactly when their values are; the value parsed again on
//! demand; and the value's serialization, which writes it as a `Value` would be written (a
//! pretty writer indents it like the rest), so a file's bytes do not depend on this type.
//! Never: holds text that is not JSON (it is only built from a `Value`), or is read on a hot path:
//! every [`JsonText::value`] parses.
//!
//! Why: a `Value` tree costs about seven times its text (a map node of eleven slots for every
//! object, however small); 5 000 tools kept as trees were most of the gate's memory.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::sync::Arc;

/// A JSON value as its compact text; clones share the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// The text of `value`.
    pub fn new(value: &Value) -> JsonText {
        JsonText(Arc::from(value.to_string()))
    }

    /// Text already written from a `Value` the way [`JsonText::new`] writes it (compact, keys in
    /// the map's order), for a caller that wrote the value's pairs one by one (see
    /// `ToolEntry::visible_with_text`); it is not checked.
    pub(crate) fn from_written(text: String) -> JsonText {
        JsonText(Arc::from(text))
    }

    /// The value itself, parsed again from its text.
    pub fn value(&self) -> Value {
        // The text was written from a `Value`: it always parses.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// Its compact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> JsonText {
        JsonText::new(value)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Through a `Value`, so that a pretty writer indents it as it indents the rest.
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonText, D::Error> {
        Value::deserialize(deserializer).map(|v| JsonText::new(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_have_equal_texts_and_the_value_comes_back() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, 2.5, "x"], "a": {"z": null, "y": true}}"#).unwrap();
        let b = json!({"a": {"y": true, "z": null}, "b": [1, 2.5, "x"]});
        assert_eq!(JsonText::new(&a), JsonText::new(&b));
        assert_eq!(JsonText::new(&a).value(), b);
        assert_ne!(JsonText::new(&a), JsonText::new(&json!({"a": 1})));
    }

    #[test]
    fn it_is_written_and_read_as_the_value_itself() {
        let v = json!({"name": "t", "inputSchema": {"type": "object", "properties": {}}});
        let text = JsonText::new(&v);
        assert_eq!(
            serde_json::to_string_pretty(&text).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(serde_json::from_str::<JsonText>(&pretty).unwrap(), text);
    }
}

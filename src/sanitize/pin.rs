//! Canonical JSON and the pin hash of a tool.
//!
//! Owns: the canonical form (object keys sorted by their UTF-8 bytes at every level, no
//! insignificant whitespace, strings and numbers as serde_json writes them) and the SHA-256 pin of
//! a tool: its whole raw definition plus the server's `serverInfo` and `instructions`.
//! Never: depends on serde_json's own key order (which changes with its features).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical JSON text of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Hex SHA-256 over the canonical JSON of `{"tool", "serverInfo", "instructions"}`.
pub fn pin_hash(tool: &Value, server_info: &Value, instructions: Option<&str>) -> String {
    let subject = serde_json::json!({
        "tool": tool,
        "serverInfo": server_info,
        "instructions": instructions,
    });
    let digest = Sha256::digest(canonical_json(&subject).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":1}],"x":"é"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"é","y":[1,{"p":1,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é","y":[1,{"p":1,"q":2}]},"b":1}"#
        );
        assert_eq!(
            pin_hash(&a, &json!({}), None),
            pin_hash(&b, &json!({}), None)
        );
    }

    #[test]
    fn instructions_and_server_info_are_pinned_too() {
        let tool = json!({"name": "t"});
        let base = pin_hash(&tool, &json!({"name": "s"}), None);
        assert_ne!(base, pin_hash(&tool, &json!({"name": "s"}), Some("x")));
        assert_ne!(base, pin_hash(&tool, &json!({"name": "s2"}), None));
        assert_eq!(base.len(), 64);
    }
}

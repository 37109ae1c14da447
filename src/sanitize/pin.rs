//! Canonical JSON and the pin hash of a tool.
//!
//! Owns: the canonical form (object keys sorted by their UTF-8 bytes at every level, no
//! insignificant whitespace, strings and numbers as serde_json writes them) and the SHA-256 pin of
//! a definition (a tool, a prompt, a resource): its whole raw JSON plus the server's `serverInfo`
//! and `instructions`.
//! Never: depends on serde_json's own key order (which changes with its features).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical JSON text of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the canonical form into any sink (a hasher, a buffer) without building it first.
fn write_canonical(value: &Value, out: &mut impl std::io::Write) {
    // Writing to a Vec or a hasher cannot fail; serde_json cannot fail on a `Value` or a `&str`.
    let _ = write_value(value, out);
}

fn write_value(value: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.write_all(b"{")?;
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                if let Some(v) = map.get(key) {
                    write_value(v, out)?;
                }
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_value(item, out)?;
            }
            out.write_all(b"]")
        }
        scalar => serde_json::to_writer(&mut *out, scalar).map_err(std::io::Error::other),
    }
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hex SHA-256 over the canonical JSON of `{"instructions", "serverInfo", "tool"}`.
///
/// `tool` is any definition's raw JSON: a prompt, a resource or a resource template pins the same
/// way (the key stays `"tool"`), so a pin tells kinds apart only by where it is stored.
pub fn pin_hash(tool: &Value, server_info: &Value, instructions: Option<&str>) -> String {
    let mut hasher = HashWriter(Sha256::new());
    // The same bytes as canonical_json of {"instructions":…,"serverInfo":…,"tool":…}.
    let _ = (|| -> std::io::Result<()> {
        hasher.0.update(b"{\"instructions\":");
        serde_json::to_writer(&mut hasher, &instructions)?;
        hasher.0.update(b",\"serverInfo\":");
        write_value(server_info, &mut hasher)?;
        hasher.0.update(b",\"tool\":");
        write_value(tool, &mut hasher)?;
        hasher.0.update(b"}");
        Ok(())
    })();
    crate::hex::encode(&hasher.0.finalize())
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

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_canonical_text() {
        let tool = json!({"name": "t", "inputSchema": {"type": "object"}});
        let info = json!({"version": "1", "name": "s"});
        let text = canonical_json(&json!({"tool": tool, "serverInfo": info, "instructions": "hi"}));
        let expected: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(pin_hash(&tool, &info, Some("hi")), expected);
    }
}

//! `x-mcp-header` (MCP 2026-07-28): a tool's input property whose value a client also sends as
//! an `Mcp-Param-{name}` HTTP header.
//!
//! Owns: which annotations a cleaned `inputSchema` keeps (an RFC 9110 token, on a property of
//! the root's `properties` whose type is `string`, `integer` or `boolean`, unique without regard
//! to case (two properties naming one header both lose it); any other is removed with a finding, as clients drop a tool with an invalid one) and
//! [`param_headers`], the annotations of a cleaned tool that a transport checks.
//! Never: rewrites a property or its value; reads a clock or does I/O.

use super::finding::{Finding, Kind};
use serde_json::{Map, Value};

/// The schema keyword.
pub(crate) const KEYWORD: &str = "x-mcp-header";

/// The type of an annotated property, which says how its header compares with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// The header is the string.
    String,
    /// The header is the integer in decimal (compared as numbers).
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// One annotated property: its header's name (after `Mcp-Param-`), the property, its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header's name after `Mcp-Param-`.
    pub header: String,
    /// The property of the tool's arguments.
    pub property: String,
    /// How the header compares with the value.
    pub kind: ParamType,
}

/// Keeps the valid annotations of a cleaned `inputSchema` and removes every other one.
pub(crate) fn check(schema: &mut Value, findings: &mut Vec<Finding>) {
    // A header two properties name is no one's: both annotations go.
    let named: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.values()
                .filter_map(|v| v.get(KEYWORD).and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let twice = |header: &str| {
        let lower = header.to_ascii_lowercase();
        named.iter().filter(|h| **h == lower).count() > 1
    };
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            let Some(object) = property.as_object_mut() else {
                continue;
            };
            let Some(annotation) = object.get(KEYWORD) else {
                continue;
            };
            let header = annotation.as_str().unwrap_or_default().to_owned();
            let problem = if !is_token(&header) {
                Some("is not an HTTP token")
            } else if kind_of(object).is_none() {
                Some("is on a property that is not a string, an integer or a boolean")
            } else if twice(&header) {
                Some("names a header another property names")
            } else {
                None
            };
            match problem {
                None => {}
                Some(problem) => {
                    object.remove(KEYWORD);
                    let location = format!("inputSchema.properties.{name}.{KEYWORD}");
                    findings.push(Finding::new(&location, Kind::DroppedField, problem));
                }
            }
        }
    }
    // Anywhere else it means nothing to a client: removed.
    strip_nested(schema, true, findings);
}

/// Removes every annotation of a schema where none means anything (`outputSchema`).
pub(crate) fn strip(schema: &mut Value, findings: &mut Vec<Finding>) {
    strip_nested(schema, false, findings);
}

fn strip_nested(value: &mut Value, root: bool, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(map) => {
            if !root && map.remove(KEYWORD).is_some() {
                findings.push(Finding::new(
                    "inputSchema",
                    Kind::DroppedField,
                    "x-mcp-header below the root's properties",
                ));
            }
            for (key, child) in map.iter_mut() {
                // The root's own properties keep theirs (checked above); below them, none.
                let keeps = root && key == "properties";
                if keeps {
                    if let Value::Object(props) = child {
                        for property in props.values_mut() {
                            if let Value::Object(p) = property {
                                for grandchild in p.values_mut() {
                                    strip_nested(grandchild, false, findings);
                                }
                            }
                        }
                    }
                } else {
                    strip_nested(child, false, findings);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                strip_nested(item, false, findings);
            }
        }
        _ => {}
    }
}

fn kind_of(property: &Map<String, Value>) -> Option<ParamType> {
    match property.get("type").and_then(Value::as_str)? {
        "string" => Some(ParamType::String),
        "integer" => Some(ParamType::Integer),
        "boolean" => Some(ParamType::Boolean),
        _ => None,
    }
}

/// RFC 9110 `token`: 1 or more of `tchar`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The annotations of a cleaned tool definition (as `check` left them).
pub fn param_headers(tool: &Value) -> Vec<ParamHeader> {
    let Some(properties) = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    properties
        .iter()
        .filter_map(|(name, property)| {
            let object = property.as_object()?;
            let header = object.get(KEYWORD)?.as_str()?;
            Some(ParamHeader {
                header: header.to_owned(),
                property: name.clone(),
                kind: kind_of(object)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_annotation_stays_and_every_other_goes_with_a_finding() {
        let mut schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "ratio": {"type": "number", "x-mcp-header": "Ratio"},
            "bad": {"type": "string", "x-mcp-header": "not a token"},
            "dup": {"type": "string", "x-mcp-header": "region"},
            "nested": {"type": "object", "properties": {
                "deep": {"type": "string", "x-mcp-header": "Deep"}}},
        }});
        let mut findings = Vec::new();
        check(&mut schema, &mut findings);
        let tool = json!({"inputSchema": schema});
        let kept: Vec<(String, ParamType)> = param_headers(&tool)
            .into_iter()
            .map(|h| (h.header, h.kind))
            .collect();
        assert_eq!(kept, [("Count".to_owned(), ParamType::Integer)]);
        assert_eq!(findings.len(), 5, "{findings:?}");
        assert!(
            tool["inputSchema"]["properties"]["nested"]["properties"]["deep"]
                .get(KEYWORD)
                .is_none()
        );
    }
}

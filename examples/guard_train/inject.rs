//! Poisoned definitions made from a payload and a benign host tool, the way public attacks
//! place them: after, before or inside the description, in a parameter's description, a title,
//! an enum value or a default.

use crate::corpus::{fnv, Payload};
use serde_json::{json, Map, Value};

/// A tool with `payload` placed where its `field` says (`any`: chosen by the payload's id).
pub fn inject(host: &Value, payload: &Payload) -> Value {
    let mut tool = host.clone();
    let h = fnv(&payload.id);
    let field = match payload.field.as_str() {
        "any" | "" => [
            "description",
            "description",
            "description",
            "param_description",
        ][(h % 4) as usize],
        f => f,
    };
    match field {
        "param_description" => param_description(&mut tool, &payload.text, h),
        "title" => tool["title"] = json!(payload.text),
        "enum" => property(&mut tool, h)["enum"] = json!(["default", payload.text]),
        "default" => property(&mut tool, h)["default"] = json!(payload.text),
        _ => description(&mut tool, &payload.text, h),
    }
    tool
}

fn description(tool: &mut Value, text: &str, h: u64) {
    let host = tool["description"].as_str().unwrap_or("").to_owned();
    let placed = match (h >> 8) % 8 {
        0 => format!("{text}\n{host}"),
        1 => match host.find(". ") {
            Some(i) => format!("{} {text} {}", &host[..=i], &host[i + 2..]),
            None => format!("{host} {text}"),
        },
        2 => format!("{host}\n\n{text}"),
        _ => format!("{host} {text}"),
    };
    tool["description"] = json!(placed.trim());
}

fn param_description(tool: &mut Value, text: &str, h: u64) {
    let prop = property(tool, h);
    let host = prop["description"].as_str().unwrap_or("").to_owned();
    prop["description"] = json!(format!("{host} {text}").trim());
}

/// One of the tool's properties (chosen by `h`), made if it has none.
fn property(tool: &mut Value, h: u64) -> &mut Value {
    if !tool["inputSchema"].is_object() {
        tool["inputSchema"] = json!({"type": "object"});
    }
    let schema = &mut tool["inputSchema"];
    if !schema["properties"].is_object()
        || schema["properties"].as_object().is_some_and(Map::is_empty)
    {
        schema["properties"] = json!({"note": {"type": "string"}});
    }
    let props = schema["properties"]
        .as_object_mut()
        .expect("made an object above");
    let n = props.len();
    let key = props
        .keys()
        .nth((h >> 16) as usize % n)
        .cloned()
        .unwrap_or_default();
    let prop = props.entry(key).or_insert_with(|| json!({}));
    if !prop.is_object() {
        *prop = json!({});
    }
    prop
}

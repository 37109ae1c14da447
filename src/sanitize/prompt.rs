//! A prompt definition (a `prompts/list` entry, MCP 2025-11-25) in, a cleaned definition with
//! findings and a verdict out.
//!
//! Owns: which fields of a prompt are passed on (`name` under the tool-name rule, `title`,
//! `description`, `arguments` with their `name`, `title`, `description` and `required`, `icons`
//! with `https:`/`data:` URIs) and the argument-name rule.
//! Never: rewrites a name: the prompt's name and its arguments' names go back to the server in
//! `prompts/get` (the arguments' as keys), so a name is valid as sent or the prompt is rejected.

use super::definition::{self, dropped_field, text_field, Sanitized};
use super::detect::Context;
use super::finding::{Finding, Kind};
use super::schema::is_valid_property_name;
use super::tool;
use super::Limits;
use serde_json::{Map, Value};

/// Sanitizes one raw prompt definition.
///
/// The verdict means what it means for a tool: `Pass` and `Sanitized` may be listed (the latter
/// as cleaned), `Held` waits for an operator, `Rejected` is never listed nor fetched.
pub fn sanitize_prompt(raw: &Value, limits: &Limits, ctx: &Context) -> Sanitized {
    definition::sanitize(raw, "prompt", limits, ctx, |map, findings| {
        clean_fields(map, limits, ctx, findings)
    })
}

/// The argument-name rule: 1 to 64 of `A-Z a-z 0-9 _ - .`, the rule of schema property names
/// (an argument is a key of `prompts/get`'s `arguments`, as a property is of `tools/call`'s).
fn is_valid_argument_name(name: &str) -> bool {
    is_valid_property_name(name)
}

fn clean_fields(
    map: &Map<String, Value>,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    let mut out = Map::new();
    tool::name(map, ctx, findings, &mut out);
    for (key, value) in map {
        match key.as_str() {
            "name" => {}
            "title" => text_field(key, value, limits.title_chars, key, ctx, findings, &mut out),
            "description" => text_field(
                key,
                value,
                limits.description_chars,
                key,
                ctx,
                findings,
                &mut out,
            ),
            "arguments" => {
                if let Some(arguments) = arguments(value, limits, ctx, findings) {
                    out.insert(key.clone(), arguments);
                }
            }
            "icons" => {
                if let Some(icons) = definition::icons(value, findings) {
                    out.insert(key.clone(), icons);
                }
            }
            _ => dropped_field(key, value, ctx, findings),
        }
    }
    Value::Object(out)
}

/// The arguments: an array of at most [`Limits::max_properties`] objects with distinct valid
/// names; any other shape is structural.
fn arguments(
    value: &Value,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Option<Value> {
    let Some(list) = value.as_array() else {
        findings.push(Finding::new(
            "arguments",
            Kind::WrongType,
            "must be an array",
        ));
        return None;
    };
    if list.len() > limits.max_properties {
        let detail = format!("{} arguments, over {}", list.len(), limits.max_properties);
        findings.push(Finding::new("arguments", Kind::Bounds, detail));
        return None;
    }
    let mut seen: Vec<&str> = Vec::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for (idx, argument) in list.iter().enumerate() {
        let here = format!("arguments[{idx}]");
        let Some(map) = argument.as_object() else {
            findings.push(Finding::new(&here, Kind::WrongType, "must be an object"));
            continue;
        };
        if let Some(name) = map.get("name").and_then(Value::as_str) {
            if seen.contains(&name) {
                let detail = format!("{} given twice", definition::shown_name(Some(name)));
                findings.push(Finding::new(
                    &format!("{here}.name"),
                    Kind::InvalidName,
                    detail,
                ));
            }
            seen.push(name);
        }
        out.push(argument_fields(map, &here, limits, ctx, findings));
    }
    Some(Value::Array(out))
}

fn argument_fields(
    map: &Map<String, Value>,
    here: &str,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    let mut out = Map::new();
    argument_name(
        map.get("name"),
        &format!("{here}.name"),
        ctx,
        findings,
        &mut out,
    );
    for (key, value) in map {
        let location = format!("{here}.{key}");
        match key.as_str() {
            "name" => {}
            "title" => text_field(
                key,
                value,
                limits.title_chars,
                &location,
                ctx,
                findings,
                &mut out,
            ),
            "description" => text_field(
                key,
                value,
                limits.schema_text_chars,
                &location,
                ctx,
                findings,
                &mut out,
            ),
            "required" => match value {
                Value::Bool(_) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => findings.push(Finding::new(
                    &location,
                    Kind::WrongType,
                    "must be a boolean",
                )),
            },
            _ => dropped_field(&location, value, ctx, findings),
        }
    }
    Value::Object(out)
}

/// An argument's name goes back to the server as a key: valid as sent, or the prompt is
/// rejected; a valid name that reads as an instruction is rejected too, as a property name is.
fn argument_name(
    value: Option<&Value>,
    location: &str,
    ctx: &Context,
    findings: &mut Vec<Finding>,
    out: &mut Map<String, Value>,
) {
    let name = match value.and_then(Value::as_str) {
        Some(name) if is_valid_argument_name(name) => name,
        other => {
            let shown = definition::shown_name(other);
            findings.push(Finding::new(location, Kind::InvalidName, shown));
            return;
        }
    };
    let mut found = Vec::new();
    definition::detect_name_words(name, location, ctx, &mut found);
    for f in found {
        let detail = format!("argument name reads as {}: {}", f.kind, f.detail);
        findings.push(Finding::new(location, Kind::InvalidName, detail));
    }
    out.insert("name".into(), Value::String(name.to_owned()));
}

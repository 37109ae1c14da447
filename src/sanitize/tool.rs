//! A whole tool definition in, a cleaned definition with findings and a verdict out.
//!
//! Owns: which top-level fields of a tool are passed on (`name`, `title`, `description`,
//! `inputSchema`, `outputSchema`, `annotations` as hints, `icons` with `https:`/`data:` URIs,
//! `execution`), the tool-name rule, and the verdict.
//! Never: uses `annotations` for a decision; they are hints passed on, nothing more.

use super::definition::{self, dropped_field, text_field, Sanitized, MAX_NAME_BYTES};
use super::detect::Context;
use super::finding::{Finding, Kind};
use super::schema::{self, clean_and_detect};
use super::Limits;
use serde_json::{Map, Value};

/// A sanitized tool: the outcome every definition sanitizer shares, under its older name.
pub type SanitizedTool = Sanitized;

const HINTS: [&str; 4] = [
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
];

/// The MCP tool-name rule (2025-11-25): 1 to 128 of `A-Z a-z 0-9 _ - .`.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Sanitizes one raw tool definition.
pub fn sanitize_tool(raw: &Value, limits: &Limits, ctx: &Context) -> SanitizedTool {
    definition::sanitize(raw, "tool", limits, ctx, |map, findings| {
        clean_fields(map, limits, ctx, findings)
    })
}

fn clean_fields(
    map: &Map<String, Value>,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    let mut out = Map::new();
    name(map, ctx, findings, &mut out);
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
            "inputSchema" | "outputSchema" => {
                let mut cleaned = schema::sanitize(value, key, limits, ctx, findings);
                if key == "inputSchema" {
                    super::headers::check(&mut cleaned, findings);
                } else {
                    super::headers::strip(&mut cleaned, findings);
                }
                out.insert(key.clone(), cleaned);
            }
            "annotations" => {
                if let Some(a) = annotations(value, limits, ctx, findings) {
                    out.insert(key.clone(), a);
                }
            }
            "icons" => {
                if let Some(icons) = definition::icons(value, findings) {
                    out.insert(key.clone(), icons);
                }
            }
            "execution" => {
                if let Some(execution) = execution(value, ctx, findings) {
                    out.insert(key.clone(), execution);
                }
            }
            _ => dropped_field(key, value, ctx, findings),
        }
    }
    if !map.contains_key("inputSchema") {
        findings.push(Finding::new("inputSchema", Kind::WrongType, "missing"));
    }
    Value::Object(out)
}

/// The name goes back to the server in every call: checked against the MCP rule, never
/// rewritten, and read as words by the detectors. A tool and a prompt share the rule.
pub(super) fn name(
    map: &Map<String, Value>,
    ctx: &Context,
    findings: &mut Vec<Finding>,
    out: &mut Map<String, Value>,
) {
    match map.get("name").and_then(Value::as_str) {
        Some(name) if is_valid_tool_name(name) => {
            definition::detect_name_words(name, "name", ctx, findings);
            out.insert("name".into(), Value::String(name.to_owned()));
        }
        other => {
            let shown = definition::shown_name(other);
            findings.push(Finding::new("name", Kind::InvalidName, shown));
        }
    }
}

/// Hints are passed on (booleans only, title cleaned); they never decide anything in the gate.
fn annotations(
    value: &Value,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Option<Value> {
    let map = value.as_object()?;
    let mut out = Map::new();
    for (key, v) in map {
        let here = format!("annotations.{key}");
        match (key.as_str(), v) {
            (k, Value::Bool(_)) if HINTS.contains(&k) => {
                out.insert(key.clone(), v.clone());
            }
            ("title", Value::String(s)) => {
                let cleaned = clean_and_detect(s, limits.title_chars, &here, ctx, findings);
                out.insert(key.clone(), Value::String(cleaned));
            }
            _ => dropped_field(&here, v, ctx, findings),
        }
    }
    Some(Value::Object(out))
}

/// `execution` keeps only `taskSupport` with a value MCP defines.
fn execution(value: &Value, ctx: &Context, findings: &mut Vec<Finding>) -> Option<Value> {
    let map = value.as_object()?;
    let mut out = Map::new();
    for (key, v) in map {
        match (key.as_str(), v.as_str()) {
            ("taskSupport", Some(t @ ("forbidden" | "optional" | "required"))) => {
                out.insert(key.clone(), Value::String(t.to_owned()));
            }
            _ => dropped_field(&format!("execution.{key}"), v, ctx, findings),
        }
    }
    Some(Value::Object(out))
}

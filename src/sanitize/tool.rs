//! A whole tool definition in, a cleaned definition with findings and a verdict out.
//!
//! Owns: which top-level fields of a tool are passed on (`name`, `title`, `description`,
//! `inputSchema`, `outputSchema`, `annotations` as hints, `icons` with `https:`/`data:` URIs,
//! `execution`), the tool-name rule, and the verdict.
//! Never: uses `annotations` for a decision; they are hints passed on, nothing more.

use super::detect::Context;
use super::finding::{Finding, Kind, Verdict};
use super::schema::{self, clean_and_detect};
use super::{text, Limits};
use serde_json::{Map, Value};

/// A sanitized tool.
#[derive(Clone, Debug)]
pub struct SanitizedTool {
    /// The cleaned definition, as agents would see it (before namespacing).
    pub clean: Value,
    /// Everything found, in order.
    pub findings: Vec<Finding>,
    /// What the findings add up to.
    pub verdict: Verdict,
}

const HINTS: [&str; 4] = [
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
];

/// The longest name the name rules allow (a tool name; property names are shorter).
const MAX_NAME_BYTES: usize = 128;

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
    let mut findings = Vec::new();
    if super::json_size(raw) > limits.max_tool_bytes {
        // Before anything reads the text: an oversized tool costs nothing but this walk.
        let detail = format!("over {} bytes", limits.max_tool_bytes);
        findings.push(Finding::new("tool", Kind::Bounds, detail));
        return SanitizedTool {
            clean: Value::Null,
            findings,
            verdict: Verdict::Rejected,
        };
    }
    // Most tools are plain ASCII prose: one pass over all their text decides whether the
    // per-string detector passes can find anything at all.
    ctx.set_quiet(!could_fire(raw, ctx));
    let clean = match raw.as_object() {
        Some(map) => clean_fields(raw, map, limits, ctx, &mut findings),
        None => {
            findings.push(Finding::new(
                "tool",
                Kind::WrongType,
                "a tool must be an object",
            ));
            Value::Null
        }
    };
    ctx.set_quiet(false);
    let verdict = Verdict::from_findings(&findings, &clean != raw);
    SanitizedTool {
        clean,
        findings,
        verdict,
    }
}

fn clean_fields(
    raw: &Value,
    map: &Map<String, Value>,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    let size = super::json_size(raw);
    if size > limits.max_tool_bytes {
        let detail = format!("{size} bytes, over {}", limits.max_tool_bytes);
        findings.push(Finding::new("tool", Kind::Bounds, detail));
        return Value::Null;
    }
    let mut out = Map::new();
    match map.get("name").and_then(Value::as_str) {
        Some(name) if is_valid_tool_name(name) => {
            let words = name.replace(['_', '-', '.'], " ");
            super::detect::detect(&words, "name", ctx, findings);
            out.insert("name".into(), Value::String(name.to_owned()));
        }
        other => {
            let shown: String = other.unwrap_or("(missing)").chars().take(80).collect();
            findings.push(Finding::new(
                "name",
                Kind::InvalidName,
                format!("{shown:?}"),
            ));
        }
    }
    for (key, value) in map {
        match key.as_str() {
            "name" => {}
            "title" | "description" => {
                let cap = if key == "title" {
                    limits.title_chars
                } else {
                    limits.description_chars
                };
                match value.as_str() {
                    Some(s) => {
                        let cleaned = clean_and_detect(s, cap, key, ctx, findings);
                        out.insert(key.clone(), Value::String(cleaned));
                    }
                    None => findings.push(Finding::new(key, Kind::WrongType, "must be a string")),
                }
            }
            "inputSchema" | "outputSchema" => {
                let cleaned = schema::sanitize(value, key, limits, ctx, findings);
                out.insert(key.clone(), cleaned);
            }
            "annotations" => {
                if let Some(a) = annotations(value, limits, ctx, findings) {
                    out.insert(key.clone(), a);
                }
            }
            "icons" => {
                if let Some(icons) = icons(value, findings) {
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

/// Icons only with `https:` or raster `data:image/` URIs, rebuilt from the fields MCP defines
/// (`src`, `mimeType`, `sizes`, `theme`); anything else about an icon is dropped.
fn icons(value: &Value, findings: &mut Vec<Finding>) -> Option<Value> {
    let list = value.as_array()?;
    let mut kept = Vec::new();
    for icon in list {
        let src = icon.get("src").and_then(Value::as_str).unwrap_or_default();
        let lower = src.trim_start().to_ascii_lowercase();
        let raster = [
            "data:image/png",
            "data:image/jpeg",
            "data:image/gif",
            "data:image/webp",
        ];
        let ok = lower.starts_with("https:") || raster.iter().any(|r| lower.starts_with(r));
        if !ok || src.len() > 64 * 1024 {
            let shown: String = src.chars().take(80).collect();
            findings.push(Finding::new("icons", Kind::IconRemoved, shown));
            continue;
        }
        let mut clean = Map::new();
        clean.insert("src".into(), Value::String(src.to_owned()));
        if let Some(mime) = icon.get("mimeType").and_then(Value::as_str) {
            if ["image/png", "image/jpeg", "image/gif", "image/webp"].contains(&mime) {
                clean.insert("mimeType".into(), Value::String(mime.to_owned()));
            }
        }
        if let Some(sizes) = icon.get("sizes").and_then(Value::as_array) {
            let valid: Vec<Value> = sizes
                .iter()
                .filter(|s| s.as_str().is_some_and(is_icon_size))
                .cloned()
                .collect();
            if !valid.is_empty() {
                clean.insert("sizes".into(), Value::Array(valid));
            }
        }
        if let Some(theme @ ("light" | "dark")) = icon.get("theme").and_then(Value::as_str) {
            clean.insert("theme".into(), Value::String(theme.to_owned()));
        }
        if icon.as_object().is_some_and(|m| m.len() > clean.len()) {
            findings.push(Finding::new(
                "icons",
                Kind::DroppedField,
                "fields MCP does not define",
            ));
        }
        kept.push(Value::Object(clean));
    }
    (!kept.is_empty()).then_some(Value::Array(kept))
}

fn is_icon_size(size: &str) -> bool {
    size == "any"
        || size.split_once('x').is_some_and(|(w, h)| {
            !w.is_empty()
                && !h.is_empty()
                && w.len() <= 5
                && h.len() <= 5
                && w.bytes().chain(h.bytes()).all(|b| b.is_ascii_digit())
        })
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

/// A field the gate does not pass on; its text is still read, since clients may have shown it.
fn dropped_field(key: &str, value: &Value, ctx: &Context, findings: &mut Vec<Finding>) {
    findings.push(Finding::new(key, Kind::DroppedField, "not passed on"));
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                let cleaned = text::clean(s, usize::MAX, key, &mut found);
                super::detect::detect(&cleaned.text, key, ctx, &mut found);
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    findings.extend(
        found
            .into_iter()
            .filter(|f| f.severity() >= super::Severity::Hold),
    );
}

/// False only when every string and key of the tool is printable ASCII and one detector pass over
/// all of it (keys, and strings short enough to be names, also with `_`, `-`, `.` read as spaces,
/// as the name checks read them) finds nothing.
fn could_fire(raw: &Value, ctx: &Context) -> bool {
    let mut joined = String::new();
    let mut stack = vec![raw];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                push_text(&mut joined, s);
                if s.len() <= MAX_NAME_BYTES && s.contains(['_', '-', '.']) {
                    push_text(&mut joined, &s.replace(['_', '-', '.'], " "));
                }
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                for (k, child) in m {
                    push_text(&mut joined, k);
                    push_text(&mut joined, &k.replace(['_', '-', '.'], " "));
                    stack.push(child);
                }
            }
            _ => {}
        }
    }
    let printable = joined
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t');
    // Markup is cleaned before detection (a link's text joins the words around it), so text with
    // markup is read string by string after cleaning.
    let markup = joined.contains("](") || joined.contains("<!--") || joined.contains("![");
    if !printable || markup {
        return true;
    }
    let lower = joined.to_ascii_lowercase();
    super::detect::suspicious(&lower, &joined, ctx)
}

fn push_text(joined: &mut String, s: &str) {
    joined.push_str(s);
    joined.push('\n');
}

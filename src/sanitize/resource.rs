//! A resource (a `resources/list` entry) or a resource template (a `resources/templates/list`
//! entry, MCP 2025-11-25) in, a cleaned definition with findings and a verdict out.
//!
//! Owns: which fields are passed on (`uri` or `uriTemplate` as sent, `name`, `title`,
//! `description`, `mimeType`, a resource's `size`, `annotations` with the fields MCP defines,
//! `icons` with `https:`/`data:` URIs), the address check (`Limits::uri_bytes`, no hidden or
//! control character), and the shapes of `mimeType`, `size` and `annotations`.
//! Never: rewrites or reads the address as prose: clients quote it back byte for byte in
//! `resources/read` and `resources/subscribe`, so it is valid as sent or the entry is rejected,
//! and a `file:///home/me/.env` is an address, not an instruction.

use super::definition::{self, dropped, dropped_field, text_field, Sanitized};
use super::detect::Context;
use super::finding::{Finding, Kind};
use super::{text, Limits};
use serde_json::{Map, Value};

/// Longest `mimeType` kept, parameters included (RFC 6838 allows 127 bytes per name).
const MAX_MIME_BYTES: usize = 255;

/// Longest `annotations.lastModified` kept (an ISO 8601 date-time needs about 35).
const MAX_DATE_BYTES: usize = 64;

/// Which list an entry comes from: its address field and whether it has a `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `resources/list`: `uri`, and `size`.
    Resource,
    /// `resources/templates/list`: `uriTemplate` (RFC 6570), no `size`.
    Template,
}

impl Shape {
    fn what(self) -> &'static str {
        match self {
            Shape::Resource => "resource",
            Shape::Template => "resourceTemplate",
        }
    }

    fn address(self) -> &'static str {
        match self {
            Shape::Resource => "uri",
            Shape::Template => "uriTemplate",
        }
    }
}

/// Sanitizes one raw resource (`{"uri", "name", "title"?, "description"?, "mimeType"?, "size"?,
/// "annotations"?, "icons"?}`).
///
/// The verdict means what it means for a tool: `Pass` and `Sanitized` may be listed (the latter
/// as cleaned) and read, `Held` waits for an operator, `Rejected` is neither listed nor read.
pub fn sanitize_resource(raw: &Value, limits: &Limits, ctx: &Context) -> Sanitized {
    sanitize_entry(raw, Shape::Resource, limits, ctx)
}

/// Sanitizes one raw resource template (`{"uriTemplate", "name", "title"?, "description"?,
/// "mimeType"?, "annotations"?, "icons"?}`); the template is kept as sent, `{id}` and all.
///
/// Verdicts as for [`sanitize_resource`].
pub fn sanitize_resource_template(raw: &Value, limits: &Limits, ctx: &Context) -> Sanitized {
    sanitize_entry(raw, Shape::Template, limits, ctx)
}

/// Why an address (a `uri` or a `uriTemplate`) cannot be passed on as sent: empty, over
/// [`Limits::uri_bytes`], or holding a hidden or control character. `None` for a good one.
fn address_problem(address: &str, limits: &Limits) -> Option<String> {
    if address.is_empty() {
        return Some("empty".to_owned());
    }
    if address.len() > limits.uri_bytes {
        return Some(format!(
            "{} bytes, over {}",
            address.len(),
            limits.uri_bytes
        ));
    }
    address
        .char_indices()
        .find(|&(_, c)| text::is_hidden_in_address(c))
        .map(|(at, c)| format!("U+{:04X} at byte {at}", u32::from(c)))
}

fn sanitize_entry(raw: &Value, shape: Shape, limits: &Limits, ctx: &Context) -> Sanitized {
    definition::sanitize(raw, shape.what(), limits, ctx, |map, findings| {
        clean_fields(map, shape, limits, ctx, findings)
    })
}

fn clean_fields(
    map: &Map<String, Value>,
    shape: Shape,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    let mut out = Map::new();
    let address = shape.address();
    match map.get(address) {
        Some(Value::String(s)) => match address_problem(s, limits) {
            None => {
                out.insert(address.into(), Value::String(s.clone()));
            }
            Some(why) => findings.push(Finding::new(address, Kind::InvalidUri, why)),
        },
        Some(_) => findings.push(Finding::new(address, Kind::WrongType, "must be a string")),
        None => findings.push(Finding::new(address, Kind::WrongType, "missing")),
    }
    if !map.contains_key("name") {
        findings.push(Finding::new("name", Kind::WrongType, "missing"));
    }
    for (key, value) in map {
        match key.as_str() {
            k if k == address => {}
            // A resource's name is display text (its address is its identity): cleaned as a title.
            "name" | "title" => {
                text_field(key, value, limits.title_chars, key, ctx, findings, &mut out)
            }
            "description" => text_field(
                key,
                value,
                limits.description_chars,
                key,
                ctx,
                findings,
                &mut out,
            ),
            "mimeType" => match value.as_str() {
                Some(mime) if is_mime_type(mime) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => dropped(key, value, "not a type/subtype media type", ctx, findings),
            },
            "size" if shape == Shape::Resource => match value.as_u64() {
                Some(_) => {
                    out.insert(key.clone(), value.clone());
                }
                None => dropped(key, value, "not a non-negative integer", ctx, findings),
            },
            "annotations" => {
                if let Some(annotations) = annotations(value, ctx, findings) {
                    out.insert(key.clone(), annotations);
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

/// The annotations MCP defines for resources, each kept only in its shape: `audience` (an array
/// of `"user"` and `"assistant"`), `priority` (a number from 0 to 1), `lastModified` (a short
/// ISO 8601 string). Hints for clients; the gate decides nothing by them.
fn annotations(value: &Value, ctx: &Context, findings: &mut Vec<Finding>) -> Option<Value> {
    let Some(map) = value.as_object() else {
        dropped("annotations", value, "not an object", ctx, findings);
        return None;
    };
    let mut out = Map::new();
    for (key, v) in map {
        let here = format!("annotations.{key}");
        let kept = match key.as_str() {
            "audience" => v.as_array().is_some_and(|roles| {
                roles
                    .iter()
                    .all(|r| matches!(r.as_str(), Some("user" | "assistant")))
            }),
            "priority" => v.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)),
            "lastModified" => v.as_str().is_some_and(is_date_text),
            _ => {
                dropped_field(&here, v, ctx, findings);
                continue;
            }
        };
        if kept {
            out.insert(key.clone(), v.clone());
        } else {
            dropped(&here, v, "not in the shape MCP defines", ctx, findings);
        }
    }
    Some(Value::Object(out))
}

/// `type/subtype` of RFC 6838 restricted names, optionally with `;name=value` parameters of
/// token characters (`text/html;profile=mcp-app`, `text/plain; charset=utf-8`).
fn is_mime_type(mime: &str) -> bool {
    if mime.len() > MAX_MIME_BYTES {
        return false;
    }
    let mut parts = mime.split(';');
    let essence = parts.next().unwrap_or_default();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    is_restricted_name(kind)
        && is_restricted_name(subtype)
        && parts.all(|param| {
            param
                .trim_start_matches(' ')
                .split_once('=')
                .is_some_and(|(name, value)| {
                    is_restricted_name(name) && !value.is_empty() && value.bytes().all(is_tchar)
                })
        })
}

/// RFC 6838 `restricted-name`: an alphanumeric, then up to 126 of alphanumerics and
/// `! # $ & - ^ _ . +`.
fn is_restricted_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 127
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Date-time text: at most [`MAX_DATE_BYTES`] of digits, ASCII letters and `- : . + ,`.
fn is_date_text(date: &str) -> bool {
    !date.is_empty()
        && date.len() <= MAX_DATE_BYTES
        && date
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:.+,".contains(&b))
}

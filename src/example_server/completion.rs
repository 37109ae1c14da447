//! The example server's argument completion (`completion/complete`), sans-IO.
//!
//! Owns: which arguments complete (`greet`'s `style`, the item template's `id`) and how (the
//! known values that start with what was typed, in their fixed order).
//! Never: keeps state; completes nothing else (other arguments of known prompts and resources
//! answer no values; unknown prompts and resources are -32602).

use super::catalog::Catalog;
use super::{failure, prompts, resources, Failure};
use crate::jsonrpc::code;
use serde_json::{json, Value};

/// `completion/complete`: `{"completion": {"values", "total", "hasMore": false}}`.
pub(super) fn complete(catalog: &Catalog, params: &Value) -> Result<Value, Failure> {
    let reference = params
        .get("ref")
        .ok_or_else(|| failure(code::INVALID_PARAMS, "ref is missing"))?;
    let argument = params
        .get("argument")
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| failure(code::INVALID_PARAMS, "argument.name must be a string"))?;
    let typed = params
        .get("argument")
        .and_then(|a| a.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = |key: &str| reference.get(key).and_then(Value::as_str);
    let known: &[&str] = match text("type") {
        Some("ref/prompt") => {
            let name = text("name")
                .ok_or_else(|| failure(code::INVALID_PARAMS, "ref.name must be a string"))?;
            let listed = prompts::list(catalog)
                .iter()
                .any(|p| p.get("name").and_then(Value::as_str) == Some(name));
            if !listed {
                return Err(failure(
                    code::INVALID_PARAMS,
                    format!("unknown prompt: {name}"),
                ));
            }
            match (name, argument) {
                ("greet", "style") => &prompts::STYLES,
                _ => &[],
            }
        }
        Some("ref/resource") => {
            let uri = text("uri")
                .ok_or_else(|| failure(code::INVALID_PARAMS, "ref.uri must be a string"))?;
            if uri == resources::ITEM_TEMPLATE {
                if argument == "id" {
                    &resources::ITEM_IDS
                } else {
                    &[]
                }
            } else if resources::exists(catalog, uri) {
                &[]
            } else {
                return Err(failure(
                    code::INVALID_PARAMS,
                    format!("unknown resource: {uri}"),
                ));
            }
        }
        other => {
            return Err(failure(
                code::INVALID_PARAMS,
                format!(
                    "ref.type must be ref/prompt or ref/resource, not {}",
                    other.unwrap_or("missing")
                ),
            ))
        }
    };
    let values = matching(known, typed);
    Ok(json!({
        "completion": { "values": values, "total": values.len(), "hasMore": false },
    }))
}

/// The `known` values that start with `typed`, in their order.
pub(super) fn matching<'a>(known: &[&'a str], typed: &str) -> Vec<&'a str> {
    known
        .iter()
        .copied()
        .filter(|v| v.starts_with(typed))
        .collect()
}

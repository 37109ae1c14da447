//! The JSON Schema sanitizer for `inputSchema` and `outputSchema`.
//!
//! Owns: the bounds (depth, node count, serialized size, properties per object), the keyword
//! allowlist (everything else is dropped and its text scanned), local-only `$ref`, known `$schema`
//! dialects, an object root; cleaning of model-read strings (`description`, `title`); validation,
//! never rewriting, of values that go back to the server (property names, `enum`, `const`,
//! `default`, `examples`).
//! Never: follows a `$ref` or fetches anything.

use super::detect::{self, Context};
use super::finding::{Finding, Kind, Severity};
use super::text;
use super::Limits;
use serde_json::{Map, Value};

const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

const DIALECTS: [&str; 8] = [
    "http://json-schema.org/draft-04/schema#",
    "http://json-schema.org/draft-06/schema#",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
    "http://json-schema.org/schema#",
    "https://json-schema.org/draft/2020-12/schema#",
];

/// Sanitizes one schema whose root must be an object schema; `location` is `inputSchema` or
/// `outputSchema`.
pub(crate) fn sanitize(
    schema: &Value,
    location: &str,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> Value {
    if let Some(why) = out_of_bounds(schema, limits) {
        findings.push(Finding::new(location, Kind::Bounds, why));
        return placeholder();
    }
    let root_is_object = schema.as_object().is_some_and(|m| match m.get("type") {
        Some(Value::String(t)) => t == "object",
        _ => false,
    });
    if !root_is_object {
        findings.push(Finding::new(
            location,
            Kind::WrongType,
            "the root must be {\"type\": \"object\"}",
        ));
        return placeholder();
    }
    Walker {
        limits,
        ctx,
        findings,
        path: location.to_owned(),
    }
    .node(schema)
}

fn placeholder() -> Value {
    serde_json::json!({ "type": "object" })
}

/// Depth, node count and size, measured before anything else looks at the schema.
fn out_of_bounds(schema: &Value, limits: &Limits) -> Option<String> {
    let mut n_nodes = 0usize;
    let mut max_depth = 0usize;
    let mut stack = vec![(schema, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        n_nodes += 1;
        max_depth = max_depth.max(depth);
        if depth > limits.max_schema_depth {
            return Some(format!(
                "nesting deeper than {} levels",
                limits.max_schema_depth
            ));
        }
        if n_nodes > limits.max_schema_nodes {
            return Some(format!("more than {} nodes", limits.max_schema_nodes));
        }
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    let size = super::json_size(schema);
    (size > limits.max_schema_bytes)
        .then(|| format!("{size} bytes, over {}", limits.max_schema_bytes))
}

/// The documented pattern of property names: `^[A-Za-z0-9_.-]{1,64}$`.
pub(crate) fn is_valid_property_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

struct Walker<'a> {
    limits: &'a Limits,
    ctx: &'a Context,
    findings: &'a mut Vec<Finding>,
    /// Where the walk is (`inputSchema.properties.x`): one buffer, grown and cut as the walk
    /// descends and returns, so no location is built unless a finding needs it.
    path: String,
}

impl Walker<'_> {
    fn found(&mut self, kind: Kind, detail: impl Into<String>) {
        self.findings.push(Finding::new(&self.path, kind, detail));
    }

    /// Runs `f` with `.key` (or `[i]`) appended to the path.
    fn at<T>(&mut self, segment: std::fmt::Arguments<'_>, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.path.len();
        let _ = std::fmt::Write::write_fmt(&mut self.path, segment);
        let out = f(self);
        self.path.truncate(len);
        out
    }

    fn node(&mut self, v: &Value) -> Value {
        match v {
            Value::Bool(b) => Value::Bool(*b),
            Value::Object(map) => Value::Object(self.object(map)),
            other => {
                let detail = format!(
                    "a schema must be an object or a boolean, not {}",
                    json_type(other)
                );
                self.found(Kind::WrongType, detail);
                Value::Bool(false)
            }
        }
    }

    fn object(&mut self, map: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in map {
            if let Some(kept) = self.at(format_args!(".{key}"), |w| w.keyword(key, value)) {
                out.insert(key.clone(), kept);
            }
        }
        out
    }

    /// The sanitized value of one keyword, or `None` when it is dropped.
    fn keyword(&mut self, key: &str, value: &Value) -> Option<Value> {
        match key {
            "type" => self.type_keyword(value),
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                self.schema_map(key, value)
            }
            "items" if value.is_array() => self.schema_list(value),
            "items"
            | "additionalProperties"
            | "unevaluatedProperties"
            | "unevaluatedItems"
            | "propertyNames"
            | "contains"
            | "not"
            | "if"
            | "then"
            | "else"
            | "additionalItems" => Some(self.node(value)),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => self.schema_list(value),
            "description" | "title" => self.model_text(key, value),
            "enum" | "examples" | "const" | "default" => {
                self.validate_values(value);
                Some(value.clone())
            }
            "$ref" => self.reference(value),
            "$schema" => self.dialect(value),
            "required" => self.string_list(value),
            "format" | "pattern" | "contentMediaType" | "contentEncoding" => {
                self.plain_string(value)
            }
            "minimum" | "maximum" | "multipleOf" | "minLength" | "maxLength" | "minItems"
            | "maxItems" | "minProperties" | "maxProperties" | "minContains" | "maxContains" => {
                self.number(value)
            }
            "exclusiveMinimum" | "exclusiveMaximum" if value.is_boolean() => Some(value.clone()),
            "exclusiveMinimum" | "exclusiveMaximum" => self.number(value),
            "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" | "nullable" => {
                self.boolean(value)
            }
            "dependentRequired" => self.dependent_required(value),
            // Where it may stand is checked on the whole schema (`headers.rs`).
            super::headers::KEYWORD => self.plain_string(value),
            _ => {
                self.dropped(value);
                None
            }
        }
    }

    fn type_keyword(&mut self, value: &Value) -> Option<Value> {
        let ok = match value {
            Value::String(t) => TYPES.contains(&t.as_str()),
            Value::Array(ts) => ts
                .iter()
                .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))),
            _ => false,
        };
        if !ok {
            self.found(Kind::WrongType, "unknown type");
        }
        Some(value.clone())
    }

    fn schema_map(&mut self, key: &str, value: &Value) -> Option<Value> {
        let Some(map) = value.as_object() else {
            self.found(Kind::WrongType, "must be an object");
            return None;
        };
        if map.len() > self.limits.max_properties {
            let detail = format!("{} entries, over {}", map.len(), self.limits.max_properties);
            self.found(Kind::Bounds, detail);
            return None;
        }
        let names_matter = key != "patternProperties";
        let mut out = Map::new();
        for (name, schema) in map {
            let child = self.at(format_args!(".{name}"), |w| {
                if names_matter {
                    w.property_name(name);
                } else {
                    // A pattern goes to validators, but clients show it: scanned, never rewritten.
                    w.validate_values(&Value::String(name.clone()));
                }
                w.node(schema)
            });
            out.insert(name.clone(), child);
        }
        Some(Value::Object(out))
    }

    /// Names go back to the server: never rewritten. An invalid name or one that carries
    /// instructions is structural: the tool is rejected.
    fn property_name(&mut self, name: &str) {
        if !is_valid_property_name(name) {
            let shown: String = name.chars().take(80).collect();
            self.found(Kind::InvalidName, format!("{shown:?}"));
            return;
        }
        let words = name.replace(['_', '-', '.'], " ");
        let mut found = Vec::new();
        detect::detect(&words, &self.path, self.ctx, &mut found);
        for f in found {
            let detail = format!("property name reads as {}: {}", f.kind, f.detail);
            self.found(Kind::InvalidName, detail);
        }
    }

    fn schema_list(&mut self, value: &Value) -> Option<Value> {
        let Some(items) = value.as_array() else {
            self.found(Kind::WrongType, "must be an array");
            return None;
        };
        let out = items
            .iter()
            .enumerate()
            .map(|(i, s)| self.at(format_args!("[{i}]"), |w| w.node(s)))
            .collect();
        Some(Value::Array(out))
    }

    fn model_text(&mut self, key: &str, value: &Value) -> Option<Value> {
        let Some(s) = value.as_str() else {
            self.found(Kind::WrongType, "must be a string");
            return None;
        };
        let cap = if key == "title" {
            self.limits.title_chars
        } else {
            self.limits.schema_text_chars
        };
        Some(Value::String(clean_and_detect(
            s,
            cap,
            &self.path,
            self.ctx,
            self.findings,
        )))
    }

    /// Values go back to the server: findings only, the value itself is never changed.
    fn validate_values(&mut self, value: &Value) {
        for s in strings_in(value) {
            if plainly_harmless(s) && self.ctx.is_quiet() {
                continue;
            }
            let mut found = Vec::new();
            let cleaned = text::clean(s, usize::MAX, &self.path, &mut found);
            found.retain(|f| f.severity() >= Severity::Hold);
            detect::detect(&cleaned.text, &self.path, self.ctx, &mut found);
            for hidden in cleaned.hidden {
                detect::detect(&hidden, &self.path, self.ctx, &mut found);
            }
            self.findings.extend(found);
        }
    }

    fn reference(&mut self, value: &Value) -> Option<Value> {
        match value.as_str() {
            Some(r) if is_local_ref(r) => Some(value.clone()),
            Some(r) => {
                self.found(Kind::RemoteRef, r);
                None
            }
            None => {
                self.found(Kind::WrongType, "must be a string");
                None
            }
        }
    }

    fn dialect(&mut self, value: &Value) -> Option<Value> {
        match value.as_str() {
            Some(d) if DIALECTS.contains(&d) => Some(value.clone()),
            other => {
                let shown = other.unwrap_or("(not a string)").to_owned();
                self.found(Kind::UnknownDialect, shown);
                None
            }
        }
    }

    fn string_list(&mut self, value: &Value) -> Option<Value> {
        let ok = value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            self.found(Kind::WrongType, "must be an array of strings");
            return None;
        }
        self.validate_values(value);
        Some(value.clone())
    }

    fn plain_string(&mut self, value: &Value) -> Option<Value> {
        if !value.is_string() {
            self.found(Kind::WrongType, "must be a string");
            return None;
        }
        self.validate_values(value);
        Some(value.clone())
    }

    fn number(&mut self, value: &Value) -> Option<Value> {
        if value.is_number() {
            Some(value.clone())
        } else {
            self.found(Kind::WrongType, "must be a number");
            None
        }
    }

    fn boolean(&mut self, value: &Value) -> Option<Value> {
        if value.is_boolean() {
            Some(value.clone())
        } else {
            self.found(Kind::WrongType, "must be a boolean");
            None
        }
    }

    /// A keyword outside the allowlist: dropped, and its text scanned (clients may have shown it).
    fn dropped(&mut self, value: &Value) {
        self.found(Kind::DroppedKeyword, "not in the allowlist");
        for s in strings_in(value) {
            let mut found = Vec::new();
            let cleaned = text::clean(s, usize::MAX, &self.path, &mut found);
            found.retain(|f| f.severity() >= Severity::Hold);
            detect::detect(&cleaned.text, &self.path, self.ctx, &mut found);
            self.findings.extend(found);
        }
    }
}

impl Walker<'_> {
    /// `{"a": ["b", "c"]}`: property names to lists of property names, checked as names.
    fn dependent_required(&mut self, value: &Value) -> Option<Value> {
        let Some(map) = value.as_object() else {
            self.found(Kind::WrongType, "must be an object");
            return None;
        };
        for (name, list) in map {
            self.at(format_args!(".{name}"), |w| {
                w.property_name(name);
                match list.as_array() {
                    Some(items) => {
                        for item in items {
                            match item.as_str() {
                                Some(dep) => w.property_name(dep),
                                None => w.found(Kind::WrongType, "must be an array of strings"),
                            }
                        }
                    }
                    None => w.found(Kind::WrongType, "must be an array of strings"),
                }
            });
        }
        Some(value.clone())
    }
}

/// `#` or a JSON pointer into this schema made of plain name characters (`#/$defs/address`).
fn is_local_ref(r: &str) -> bool {
    let Some(pointer) = r.strip_prefix('#') else {
        return false;
    };
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment.len() <= 64
            && segment.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'$' | b'~' | b'%')
            })
    };
    pointer.len() <= 256
        && (pointer.is_empty() || pointer.starts_with('/'))
        && pointer.split('/').skip(1).all(segment_ok)
}

/// Printable ASCII with nothing the text cleaner removes as hidden (no comment, no image, no
/// padding run): cleaning it cannot yield a finding that matters for a value.
fn plainly_harmless(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !s.contains("<!--")
        && !s.contains("](")
        && !s.contains("    ")
}

/// Cleans a model-read string and runs the detectors on the result and on what was hidden in it.
pub(crate) fn clean_and_detect(
    s: &str,
    cap: usize,
    here: &str,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) -> String {
    let cleaned = text::clean(s, cap, here, findings);
    detect::detect(&cleaned.text, here, ctx, findings);
    for hidden in &cleaned.hidden {
        detect::detect(hidden, here, ctx, findings);
    }
    cleaned.text
}

/// Every string in a JSON value, depth first.
fn strings_in(value: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.as_str()),
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                out.extend(m.keys().map(String::as_str));
                stack.extend(m.values());
            }
            _ => {}
        }
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

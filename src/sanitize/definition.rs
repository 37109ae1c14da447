//! What every definition a server lists shares (a tool, a prompt, a resource, a resource
//! template): the [`Sanitized`] outcome and the steps around the fields.
//!
//! Owns: the whole-definition bound and the object check, the one-pass shortcut that skips the
//! detectors for plain text (`could_fire`, with the `Context`'s quiet flag set and reset around
//! one definition), the verdict, and the helpers the definition sanitizers share: model-read
//! text fields, names read as words, icons, dropped fields whose text is still read.
//! Never: knows which fields a kind of definition has; `tool.rs`, `prompt.rs` and `resource.rs`
//! decide that.

use super::detect::{self, Context};
use super::finding::{Finding, Kind, Severity, Verdict};
use super::model;
use super::schema::clean_and_detect;
use super::{text, Limits};
use serde_json::{Map, Value};

/// A sanitized definition: a tool, a prompt, a resource or a resource template.
#[derive(Clone, Debug)]
pub struct Sanitized {
    /// The cleaned definition, as agents would see it (before namespacing); `Null` when the raw
    /// definition was not an object or was over [`Limits::max_tool_bytes`].
    pub clean: Value,
    /// Everything found, in order.
    pub findings: Vec<Finding>,
    /// What the findings add up to.
    pub verdict: Verdict,
}

/// The longest name the name rules allow (a tool or prompt name; property and argument names are
/// shorter).
pub(super) const MAX_NAME_BYTES: usize = 128;

/// Runs `clean_fields` over one raw definition's fields inside the steps every definition shares:
/// the size bound first, then the object check, the shortcut, and the verdict. `what` locates
/// the findings about the whole definition (`tool`, `prompt`, `resource`, `resourceTemplate`).
pub(super) fn sanitize(
    raw: &Value,
    what: &str,
    limits: &Limits,
    ctx: &Context,
    clean_fields: impl FnOnce(&Map<String, Value>, &mut Vec<Finding>) -> Value,
) -> Sanitized {
    let mut findings = Vec::new();
    let size = super::json_size(raw);
    if size > limits.max_tool_bytes {
        // Before anything reads the text: an oversized definition costs nothing but this walk.
        let detail = format!("{size} bytes, over {}", limits.max_tool_bytes);
        findings.push(Finding::new(what, Kind::Bounds, detail));
        return Sanitized {
            clean: Value::Null,
            findings,
            verdict: Verdict::Rejected,
        };
    }
    // Most definitions are plain ASCII prose: one pass over all their text decides whether the
    // per-string detector passes can find anything at all.
    ctx.set_quiet(!could_fire(raw, ctx));
    let clean = match raw.as_object() {
        Some(map) => clean_fields(map, &mut findings),
        None => {
            let detail = format!("a {what} must be an object");
            findings.push(Finding::new(what, Kind::WrongType, detail));
            Value::Null
        }
    };
    ctx.set_quiet(false);
    // The learned stage reads what agents would see, once the cleaner and the detectors are done
    // (a rejected definition is not shown, so it is not scored).
    if !clean.is_null() && findings.iter().all(|f| f.severity() < Severity::Reject) {
        model::judge(&model::model_texts(&clean), limits, ctx, &mut findings);
    }
    let verdict = Verdict::from_findings(&findings, &clean != raw);
    Sanitized {
        clean,
        findings,
        verdict,
    }
}

/// A model-read text field (`title`, `description`, a resource's `name`): cleaned, cut at `cap`
/// and read by the detectors; anything but a string is a structural violation.
pub(super) fn text_field(
    key: &str,
    value: &Value,
    cap: usize,
    location: &str,
    ctx: &Context,
    findings: &mut Vec<Finding>,
    out: &mut Map<String, Value>,
) {
    match value.as_str() {
        Some(s) => {
            let cleaned = clean_and_detect(s, cap, location, ctx, findings);
            out.insert(key.to_owned(), Value::String(cleaned));
        }
        None => findings.push(Finding::new(location, Kind::WrongType, "must be a string")),
    }
}

/// A valid name read as words (`_`, `-`, `.` as spaces), as the model reads it.
pub(super) fn detect_name_words(
    name: &str,
    location: &str,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) {
    let words = name.replace(['_', '-', '.'], " ");
    detect::detect(&words, location, ctx, findings);
}

/// At most 80 characters of a name, quoted, for a finding's detail.
pub(super) fn shown_name(name: Option<&str>) -> String {
    let shown: String = name.unwrap_or("(missing)").chars().take(80).collect();
    format!("{shown:?}")
}

/// Icons only with `https:` or raster `data:image/` URIs, rebuilt from the fields MCP defines
/// (`src`, `mimeType`, `sizes`, `theme`); anything else about an icon is dropped.
pub(super) fn icons(value: &Value, findings: &mut Vec<Finding>) -> Option<Value> {
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

/// A field the gate does not pass on; its text is still read, since clients may have shown it.
pub(super) fn dropped_field(key: &str, value: &Value, ctx: &Context, findings: &mut Vec<Finding>) {
    dropped(key, value, "not passed on", ctx, findings);
}

/// A field dropped for the reason in `detail` (a value of the wrong shape); its text is still
/// read, and only what would hold the definition is kept of what the reading finds.
pub(super) fn dropped(
    key: &str,
    value: &Value,
    detail: &str,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) {
    findings.push(Finding::new(key, Kind::DroppedField, detail));
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                let cleaned = text::clean(s, usize::MAX, key, &mut found);
                detect::detect(&cleaned.text, key, ctx, &mut found);
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    findings.extend(found.into_iter().filter(|f| f.severity() >= Severity::Hold));
}

/// False only when every string and key of the definition is printable ASCII and one detector
/// pass over all of it (keys, and strings short enough to be names, also with `_`, `-`, `.` read
/// as spaces, as the name checks read them) finds nothing.
fn could_fire(raw: &Value, ctx: &Context) -> bool {
    let mut joined = String::with_capacity(1024);
    let mut stack = vec![raw];
    let name_like = |s: &str| s.contains(['_', '-', '.']);
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                push_text(&mut joined, s);
                if s.len() <= MAX_NAME_BYTES && name_like(s) {
                    push_text(&mut joined, &s.replace(['_', '-', '.'], " "));
                }
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                for (k, child) in m {
                    push_text(&mut joined, k);
                    if name_like(k) {
                        push_text(&mut joined, &k.replace(['_', '-', '.'], " "));
                    }
                    stack.push(child);
                }
            }
            _ => {}
        }
    }
    // Markup is cleaned before detection (a link's text joins the words around it), so text with
    // markup is read string by string after cleaning.
    if !printable_without_markup(&joined) {
        return true;
    }
    let lower = joined.to_ascii_lowercase();
    detect::suspicious(&lower, &joined, ctx)
}

/// Every byte printable ASCII (or a newline or tab), and no markup that cleaning changes: no
/// link or image (`](`, `![`), no comment (`<!--`). One pass over the bytes.
fn printable_without_markup(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut previous = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        if !((0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t') {
            return false;
        }
        let markup = match (previous, b) {
            (b']', b'(') | (b'!', b'[') => true,
            (b'<', b'!') => bytes.get(i + 1..i + 3) == Some(b"--"),
            _ => false,
        };
        if markup {
            return false;
        }
        previous = b;
    }
    true
}

fn push_text(joined: &mut String, s: &str) {
    joined.push_str(s);
    joined.push('\n');
}

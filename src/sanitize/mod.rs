//! Sanitizers: pure functions that clean what downstream servers say before an agent reads it.
//!
//! Owns: the description sanitizer ([`description`], text in → cleaned text + findings); the
//! definition sanitizers, each a raw definition in → a [`Sanitized`] (clean definition, findings,
//! [`Verdict`]) out: tools ([`sanitize_tool`], with the schema sanitizer), prompts
//! ([`sanitize_prompt`]), resources and resource templates ([`sanitize_resource`],
//! [`sanitize_resource_template`]); server instructions ([`instructions`]); what servers send as
//! data at call time ([`clean_result`], byte-level, no tree, for any JSON payload: results, error
//! objects, progress and log params, a server's requests to agents; [`clean_text`] for a bare
//! message: a progress `message`, a failure's words); the canonical hash that pins a definition
//! ([`pin_hash`]: any definition's JSON, a prompt's or a resource's as well as a tool's); and the
//! line diff that shows a reviewer what changed in a definition (`diff.rs`).
//! Never: does I/O, keeps state or panics on input: every function is a pure map from what a
//! server sent to what the gate passes on plus why.
//!
//! Order of the text steps (see `text.rs`): ANSI escapes; C0/C1 controls, zero-width and invisible
//! characters, bidi controls, tag characters (decoded into the finding), variation-selector runs,
//! private-use and noncharacters; line separators and whitespace (padding flagged); NFKC; HTML
//! comments, markdown images, markdown links to their text; the length cap. The detectors then run
//! on the cleaned text, on its confusable fold and on every piece of hidden text that was removed,
//! and on each decoded view of the cleaned and the hidden text (`decode/`, which imports nothing
//! outside itself): rot13, reversed text, leetspeak, letters spaced apart, percent and
//! HTML-entity encoding, base64 and hex runs of 16 characters or more, regional-indicator
//! letters; one level only, never a decoding of a decoded view. A finding from a view names its decoding (`… (decoded: rot13)`).
//!
//! What goes back to the server is validated, never rewritten: tool and prompt names, schema
//! property and prompt argument names, schema values, resource URIs and URI templates. Such a
//! value that breaks its rule rejects the definition.
//!
//! File order (each imports only files before it): `finding.rs`, `detect.rs`, `text.rs`,
//! `schema.rs`, `definition.rs` (what the definition sanitizers share), `tool.rs`, `prompt.rs`,
//! `resource.rs`; `result.rs` uses `finding.rs`, `text.rs` and `jsonrpc::string_end` (where a
//! literal ends), `pin.rs` and `diff.rs` nothing.

mod decode;
mod definition;
mod detect;
pub(crate) mod diff;
mod finding;
mod fold;
mod headers;
pub mod model;
mod pin;
mod prompt;
mod resource;
mod result;
mod schema;
#[cfg(test)]
mod tests;
mod text;
mod tool;

pub use definition::Sanitized;
pub use detect::Context;
pub use finding::{Finding, Kind, Severity, Verdict};
pub use headers::{param_headers, ParamHeader, ParamType};
pub use pin::{canonical_json, pin_hash};
pub use prompt::sanitize_prompt;
pub use resource::{sanitize_resource, sanitize_resource_template};
pub use result::{clean_result, clean_text};
pub use tool::{is_valid_tool_name, sanitize_tool, SanitizedTool};

/// Every bound the sanitizers apply, with the documented defaults, and the learned stage's
/// thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Characters of a description (a tool's, a prompt's, a resource's) kept. Default 4096.
    pub description_chars: usize,
    /// Characters of a title (and of a resource's `name`, display text) kept. Default 256.
    pub title_chars: usize,
    /// Characters of a schema `description` (and of a prompt argument's) kept. Default 2048.
    pub schema_text_chars: usize,
    /// Characters of server instructions kept. Default 4096.
    pub instructions_chars: usize,
    /// JSON nesting depth of a schema. Default 32.
    pub max_schema_depth: usize,
    /// JSON values in a schema. Default 10 000.
    pub max_schema_nodes: usize,
    /// Serialized bytes of a schema. Default 262 144.
    pub max_schema_bytes: usize,
    /// Entries of one `properties` (or `$defs`) object, and arguments of one prompt. Default 512.
    pub max_properties: usize,
    /// Serialized bytes of a whole definition (a tool, a prompt, a resource or a resource
    /// template). Default 524 288.
    pub max_tool_bytes: usize,
    /// Bytes of a resource's `uri` or a template's `uriTemplate`; a longer one rejects the entry.
    /// Default 2048.
    pub uri_bytes: usize,
    /// Characters of a bare message cleaned by [`clean_text`] (a progress notification's
    /// `message`) kept. Default 4096.
    pub message_chars: usize,
    /// The learned stage's score (0–1) at or above which a definition is held; `None` for the
    /// threshold the trainer chose on its held-out split (setting `guard_hold`).
    pub guard_hold: Option<f32>,
    /// The score at or above which the learned stage flags a definition without holding it, and
    /// below which a weak detector phrase alone does not hold it; `None` for the trainer's
    /// (setting `guard_flag`).
    pub guard_flag: Option<f32>,
}

impl Limits {
    /// The (hold, flag) thresholds: the settings', else the model's (1, 1 without a model).
    pub(crate) fn guard_thresholds(&self, model: Option<&model::Model>) -> (f32, f32) {
        let (hold, flag) = model.map_or((1.0, 1.0), model::Model::thresholds);
        let hold = self.guard_hold.unwrap_or(hold);
        (hold, self.guard_flag.unwrap_or(flag).min(hold))
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            description_chars: 4096,
            title_chars: 256,
            schema_text_chars: 2048,
            instructions_chars: 4096,
            max_schema_depth: 32,
            max_schema_nodes: 10_000,
            max_schema_bytes: 262_144,
            max_properties: 512,
            max_tool_bytes: 524_288,
            uri_bytes: 2048,
            message_chars: 4096,
            guard_hold: None,
            guard_flag: None,
        }
    }
}

/// The description sanitizer: cleaned text and findings, for any text only the model reads.
pub fn description(input: &str, limits: &Limits, ctx: &Context) -> (String, Vec<Finding>) {
    let mut findings = Vec::new();
    let cleaned = schema::clean_and_detect(
        input,
        limits.description_chars,
        "description",
        ctx,
        &mut findings,
    );
    judge_text("description", &cleaned, limits, ctx, &mut findings);
    (cleaned, findings)
}

/// Server `instructions`, cleaned the same way (they are model-read and pinned with each tool).
pub fn instructions(input: &str, limits: &Limits, ctx: &Context) -> (String, Vec<Finding>) {
    let mut findings = Vec::new();
    let cleaned = schema::clean_and_detect(
        input,
        limits.instructions_chars,
        "instructions",
        ctx,
        &mut findings,
    );
    judge_text("instructions", &cleaned, limits, ctx, &mut findings);
    (cleaned, findings)
}

/// The learned stage over one cleaned text.
fn judge_text(
    location: &str,
    cleaned: &str,
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) {
    let texts = [(location.to_owned(), cleaned.to_owned())];
    model::judge(&texts, limits, ctx, findings);
}

/// True for a code point the text sanitizer never lets through (controls other than `\t` and
/// `\n`, invisible and bidi controls, tag characters, private use, noncharacters). Variation
/// selectors and joiners are allowed in their legitimate positions and are not listed here.
pub fn is_forbidden(c: char) -> bool {
    text::is_forbidden(c)
}

/// Serialized size of a value, without building the bytes.
fn json_size(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

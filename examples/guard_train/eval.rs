//! The gate's whole verdict on a definition (cleaner, detectors, learned stage), as the gate
//! reaches it, and the figures of a set of definitions.

use crate::corpus::Shape;
use aegis_gate::sanitize::model::{model_texts, Model};
use aegis_gate::sanitize::{self, Context, Finding, Limits, Severity, Verdict};
use serde_json::Value;
use std::borrow::Cow;

/// What the sanitizers say of a definition, with `limits`' thresholds.
pub fn judge(
    shape: Shape,
    value: &Value,
    limits: &Limits,
    ctx: &Context,
) -> (Verdict, Vec<Finding>, Value) {
    match shape {
        Shape::Tool => done(sanitize::sanitize_tool(value, limits, ctx)),
        Shape::Prompt => done(sanitize::sanitize_prompt(value, limits, ctx)),
        Shape::Resource => done(sanitize::sanitize_resource(value, limits, ctx)),
        Shape::Template => done(sanitize::sanitize_resource_template(value, limits, ctx)),
        Shape::Text => {
            let text = value.as_str().unwrap_or("");
            let (clean, findings) = sanitize::description(text, limits, ctx);
            let verdict = Verdict::from_findings(&findings, clean != text);
            (verdict, findings, Value::String(clean))
        }
    }
}

fn done(s: sanitize::Sanitized) -> (Verdict, Vec<Finding>, Value) {
    (s.verdict, s.findings, s.clean)
}

/// What decides a definition's verdict for any thresholds: held whatever the model says
/// (`strong`), weak phrases only (`weak`), and the model's score.
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    /// Rejected for its structure, whatever the text says.
    pub rejected: bool,
    pub strong: bool,
    pub weak: bool,
    pub p: f32,
}

impl Parts {
    pub fn held(&self, hold: f32, flag: f32) -> bool {
        self.rejected || self.strong || self.p >= hold || (self.weak && self.p >= flag)
    }
}

/// The parts of one definition under `model`.
pub fn parts(shape: Shape, value: &Value, model: &Model, ctx: &Context) -> Parts {
    // `ctx` scores with `model`; the thresholds below keep its finding out.
    // Thresholds no score reaches: the model adds nothing and every weak phrase is a flag.
    let limits = Limits {
        guard_hold: Some(2.0),
        guard_flag: Some(2.0),
        ..Limits::default()
    };
    let (_, findings, clean) = judge(shape, value, &limits, ctx);
    let rejected = findings.iter().any(|f| f.severity() == Severity::Reject);
    let strong = findings.iter().any(|f| f.severity() == Severity::Hold);
    let weak = findings
        .iter()
        .any(|f| f.severity() == Severity::Flag && sanitize::model::is_weak(f.kind));
    let texts = match &clean {
        Value::String(s) => vec![("description".to_owned(), Cow::Borrowed(s.as_str()))],
        v => model_texts(v),
    };
    let p = sanitize::model::best_text(model, &texts, &findings).map_or(0.0, |b| b.p);
    Parts {
        rejected,
        strong,
        weak,
        p,
    }
}

//! Fuzz target: the learned stage's input path (sentence split, normalisation, features,
//! windows, scoring, explanation) on any text, alone and as a tool's description.
//! Properties: never panics; a score is a probability; the runtime score of a text is the
//! highest of the windows the trainer builds for it (the two paths agree); bounded time (CI
//! runs the fuzzers with `-timeout`).
#![no_main]

use aegis_gate::sanitize::model::{self, embedded};
use aegis_gate::sanitize::{self, Context, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(model) = embedded() else { panic!("the embedded model does not load") };
    let score = model.score_text(text, &[]);
    assert!((0.0..=1.0).contains(&score.p), "{}", score.p);
    let best = model::windows(text, &[])
        .iter()
        .map(|w| model.probability(&w.vector))
        .fold(0f32, f32::max);
    assert!((best - score.p).abs() < 1e-3, "runtime {} vs windows {best}", score.p);
    let _ = model.explain(&score.window, &[], 4);
    let tool = serde_json::json!({
        "name": "fuzz",
        "description": text,
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string", "description": text}}}
    });
    let _ = sanitize::sanitize_tool(&tool, &Limits::default(), &Context::new(["other"], "."));
});

//! The trainer's report: the test split through the whole sanitizer, per source and per
//! held-out real server, and the learned stage's time per definition.

use crate::corpus::{Corpus, Definition, Split};
use crate::{eval, evaluation_set};
use aegis_gate::sanitize::model::{self, Model};
use aegis_gate::sanitize::{Context, Finding, Kind, Limits, Severity, Verdict};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Counts of one row of the report.
#[derive(Clone, Copy, Default)]
struct Row {
    n: usize,
    held: usize,
    rejected: usize,
    by_model: usize,
    flagged: usize,
}

impl Row {
    fn add(&mut self, verdict: Verdict, findings: &[Finding]) {
        self.n += 1;
        self.held += usize::from(verdict == Verdict::Held);
        self.rejected += usize::from(verdict == Verdict::Rejected);
        let model_holds = findings
            .iter()
            .any(|f| f.kind == Kind::Model && f.severity() == Severity::Hold);
        let others_hold = findings
            .iter()
            .any(|f| f.kind != Kind::Model && f.severity() >= Severity::Hold);
        self.by_model += usize::from(model_holds && !others_hold);
        self.flagged += usize::from(
            verdict.is_usable() && findings.iter().any(|f| f.severity() == Severity::Flag),
        );
    }

    fn not_listed(&self) -> usize {
        self.held + self.rejected
    }
}

/// The test split through the whole sanitizer with the new model: the table per source.
pub fn report(corpus: &Corpus, model: Arc<Model>, hold: f32, flag: f32) -> String {
    let ctx = Context::default().with_model(model);
    let limits = Limits::default();
    let mut rows: BTreeMap<(String, bool), Row> = BTreeMap::new();
    let mut servers: BTreeMap<String, Row> = BTreeMap::new();
    let test = evaluation_set(corpus, &|split, _| split == Split::Test);
    for c in &test {
        let (verdict, findings, _) = eval::judge(c.shape, &c.value, &limits, &ctx);
        rows.entry((c.source.clone(), c.malicious))
            .or_default()
            .add(verdict, &findings);
        if !c.server.is_empty() {
            servers
                .entry(c.server.clone())
                .or_default()
                .add(verdict, &findings);
        }
    }
    // Every real server, trained on or not, for the in-sample rate.
    let mut all_real = Row::default();
    for d in corpus
        .definitions
        .iter()
        .filter(|d| d.source == "real-servers")
    {
        let (verdict, findings, _) = eval::judge(d.shape, &d.value, &limits, &ctx);
        all_real.add(verdict, &findings);
    }
    let mut out = String::new();
    out.push_str("# Guard model: held-out report\n\n");
    out.push_str("Written by `cargo run --release --example guard_train`. The test split was never trained on\n");
    out.push_str("nor used to choose the thresholds (they come from 5-fold cross-validation on the development split). Malicious rows of\n");
    out.push_str("`written:*` sources are the split's payloads placed in the split's real tools. Every stage is on:\n");
    out.push_str("cleaner, detectors and the learned stage. *Held* and *rejected* are not listed to agents;\n");
    out.push_str("*by model only* were held by the learned stage and nothing else; *flagged* stay listed.\n\n");
    out.push_str(&format!(
        "Thresholds: hold at {hold:.2}, flag at {flag:.2}.\n\n"
    ));
    out.push_str("| source (test split) | label | definitions | held | rejected | not listed | by model only | flagged |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    let mut malicious = Row::default();
    for ((source, is_malicious), r) in &rows {
        let label = if *is_malicious { "malicious" } else { "benign" };
        out.push_str(&format!(
            "| {source} | {label} | {} | {} | {} | {:.1} % | {} | {} |\n",
            r.n,
            r.held,
            r.rejected,
            pct(r.not_listed(), r.n),
            r.by_model,
            r.flagged
        ));
        if *is_malicious {
            malicious.n += r.n;
            malicious.held += r.held;
            malicious.rejected += r.rejected;
        }
    }
    let real = rows
        .get(&("real-servers".to_owned(), false))
        .copied()
        .unwrap_or_default();
    out.push_str(&format!(
        "\n**Recall on the malicious test split: {:.1} %** ({} of {}).  \n\
         **Real tools held on the held-out servers: {:.1} %** ({} of {}; {} more rejected for their structure); \
         on every real server, trained on or not: {:.1} % held ({} of {}), {} rejected.\n",
        pct(malicious.not_listed(), malicious.n), malicious.not_listed(), malicious.n,
        pct(real.held, real.n), real.held, real.n, real.rejected,
        pct(all_real.held, all_real.n), all_real.held, all_real.n, all_real.rejected
    ));
    out.push_str(&per_server(&servers));
    out
}

/// The held-out real servers one by one: their mean share held, and each server with a tool
/// held (one server's tools move together, so the share per tool can be one server's).
fn per_server(servers: &BTreeMap<String, Row>) -> String {
    let mean = servers
        .values()
        .map(|r| r.held as f64 / r.n.max(1) as f64)
        .sum::<f64>()
        / servers.len().max(1) as f64;
    let mut out = format!(
        "**Held-out real servers: {}; mean share of a server's definitions held: {:.1} %.**",
        servers.len(),
        mean * 100.0
    );
    let held: Vec<String> = servers
        .iter()
        .filter(|(_, r)| r.held > 0)
        .map(|(name, r)| format!("{name} {} of {}", r.held, r.n))
        .collect();
    if held.is_empty() {
        out.push_str(" None had a definition held.\n");
    } else {
        out.push_str(&format!(" Held: {}.\n", held.join(", ")));
    }
    let names: Vec<String> = servers
        .iter()
        .map(|(name, r)| format!("{name} ({})", r.n))
        .collect();
    out.push_str(&format!("\nHeld-out servers: {}.\n", names.join(", ")));
    out
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

/// Time spent by the learned stage alone against the whole sanitizer, per definition.
pub fn timing(corpus: &Corpus, model: &Model) -> String {
    let ctx = Context::default();
    let limits = Limits::default();
    let defs: Vec<&Definition> = corpus
        .definitions
        .iter()
        .filter(|d| d.source == "real-servers")
        .collect();
    let started = Instant::now();
    let mut cleaned = Vec::new();
    for d in &defs {
        let (_, findings, clean) = eval::judge(d.shape, &d.value, &limits, &ctx);
        cleaned.push((clean, findings));
    }
    let whole = started.elapsed();
    let started = Instant::now();
    for (clean, findings) in &cleaned {
        let texts = match clean {
            Value::String(s) => vec![("description".to_owned(), Cow::Borrowed(s.as_str()))],
            v => model::model_texts(v),
        };
        std::hint::black_box(model::best_text(model, &texts, findings));
    }
    let stage = started.elapsed();
    format!(
        "{} real definitions: whole sanitizer {:.1} µs each, learned stage alone {:.1} µs each",
        defs.len(),
        whole.as_secs_f64() * 1e6 / defs.len() as f64,
        stage.as_secs_f64() * 1e6 / defs.len() as f64
    )
}

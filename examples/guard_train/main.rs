//! Trains the gate's learned detection stage from the corpora in the repository, chooses its
//! thresholds on a validation split, reports on a test split it never trained on, and writes
//! `src/sanitize/model/guard.model` and `tools/guard/REPORT.md`.
//!
//! `cargo run --release --example guard_train` (about a minute); `-- --check` writes nothing
//! and fails when the committed model differs from the one the corpora give (training is
//! deterministic).

mod corpus;
mod eval;
mod inject;
mod train;

use aegis_gate::sanitize::model::{self, Model, Weights};
use aegis_gate::sanitize::{Context, Finding, Kind, Limits, Severity, Verdict};
use corpus::{Corpus, Definition, Payload, Shape, Split};
use eval::Parts;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use train::Example;

/// The share of the validation split's real tools the thresholds may hold (the aim is at most
/// 2 % of real tools held; structural rejections are not detections and are not counted).
const MAX_FP_REAL: f64 = 0.02;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let check = std::env::args().any(|a| a == "--check");
    if std::env::args().any(|a| a == "--cases") {
        cases(&root);
        return;
    }
    if let Err(e) = run(&root, check) {
        eprintln!("guard_train: {e}");
        std::process::exit(1);
    }
}

fn run(root: &Path, check: bool) -> Result<(), String> {
    let started = Instant::now();
    let corpus = corpus::load(root)?;
    let ctx = Context::default();
    let examples = scored(examples(&corpus, &ctx));
    let positives = examples.iter().filter(|e| e.malicious).count();
    eprintln!("{} windows ({positives} malicious)", examples.len());
    let trained = train::train(&examples);
    let draft = Model::from_bytes(Cow::Owned(Weights::encode(
        &trained.weights,
        trained.bias,
        0.5,
        0.5,
    )))
    .map_err(|e| e.to_string())?;
    let validate = evaluation_set(&corpus, Split::Validate);
    let (hold, flag) = choose(&validate, &draft);
    eprintln!("thresholds from the validation split: hold {hold:.2}, flag {flag:.2}");
    let bytes = Weights::encode(&trained.weights, trained.bias, hold, flag);
    let path = root.join("src/sanitize/model/guard.model");
    if check {
        let committed = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if committed != bytes {
            return Err("the committed model differs from the one the corpora give".into());
        }
        eprintln!("the committed model is the one the corpora give");
        return Ok(());
    }
    let model = Arc::new(Model::from_bytes(Cow::Owned(bytes.clone())).map_err(|e| e.to_string())?);
    eprintln!("{}", timing(&corpus, &model));
    let report = report(&corpus, model, hold, flag);
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let out = root.join("tools/guard/REPORT.md");
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{report}");
    eprintln!(
        "wrote {} ({} bytes) and {} in {:.1} s",
        path.display(),
        bytes.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The training windows: every window of the benign texts, and each malicious text whole.
fn examples(corpus: &Corpus, ctx: &Context) -> Vec<Example> {
    let mut out = Vec::new();
    let hosts = hosts(corpus, Split::Train);
    for d in corpus
        .definitions
        .iter()
        .filter(|d| d.split == Split::Train)
    {
        if d.malicious {
            if let Some(text) = redteam_payload(d) {
                out.push(positive(&text, ctx));
            }
            continue;
        }
        for (_, text) in texts(d) {
            for w in model::windows(&text, &model::text_hits(&text, ctx)) {
                out.push(Example {
                    vector: w.vector,
                    malicious: false,
                });
            }
        }
    }
    for p in corpus.payloads.iter().filter(|p| p.split == Split::Train) {
        out.push(positive(&p.text, ctx));
        let windows = model::windows(&p.text, &model::text_hits(&p.text, ctx));
        let sentences = aegis_gate::sanitize::model::features::sentences(&p.text);
        if sentences.len() >= 3 {
            let pairs = windows.into_iter().skip(sentences.len());
            out.extend(pairs.map(|w| Example {
                vector: w.vector,
                malicious: true,
            }));
        }
        // The window that joins a host's last sentence to the payload's first.
        let host = &hosts[(corpus::fnv(&p.id) as usize) % hosts.len()];
        let host_text = host["description"].as_str().unwrap_or("");
        if let (Some(last), Some(first)) = (
            aegis_gate::sanitize::model::features::sentences(host_text).last(),
            sentences.first(),
        ) {
            out.push(positive(&format!("{last} {first}"), ctx));
        }
    }
    out
}

fn positive(text: &str, ctx: &Context) -> Example {
    Example {
        vector: model::vector(text, &model::text_hits(text, ctx)),
        malicious: true,
    }
}

/// Keeps only windows the model scores (see `model::MIN_WORDS`).
fn scored(examples: Vec<Example>) -> Vec<Example> {
    examples
        .into_iter()
        .filter(|e| e.vector.words >= model::MIN_WORDS)
        .collect()
}

/// A red-team case's description without the host sentence every case starts with.
fn redteam_payload(d: &Definition) -> Option<String> {
    let text = d.value["description"].as_str()?;
    let rest = text.replace("Fetches the weather for a city.", "");
    let rest = rest.trim();
    (rest.len() >= 8).then(|| rest.to_owned())
}

/// The model-read texts of a benign definition.
fn texts(d: &Definition) -> Vec<(String, String)> {
    match &d.value {
        Value::String(s) => vec![("description".into(), s.clone())],
        v => model::model_texts(v),
    }
}

/// The real tools of a split, to carry payloads (a plain tool when the corpus has none).
fn hosts(corpus: &Corpus, split: Split) -> Vec<Value> {
    let hosts: Vec<Value> = corpus
        .definitions
        .iter()
        .filter(|d| d.split == split && d.source == "real-servers" && d.shape == Shape::Tool)
        .map(|d| d.value.clone())
        .collect();
    if hosts.is_empty() {
        return vec![
            json!({"name": "get_weather", "description": "Fetches the weather for a city.",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string", "description": "City name."}}}}),
        ];
    }
    hosts
}

/// One definition to judge: (source, malicious, shape, value).
struct Case {
    source: String,
    malicious: bool,
    shape: Shape,
    value: Value,
}

/// The definitions of a split, with the split's payloads placed in the split's hosts.
fn evaluation_set(corpus: &Corpus, split: Split) -> Vec<Case> {
    let mut out: Vec<Case> = corpus
        .definitions
        .iter()
        .filter(|d| d.split == split)
        .map(|d| Case {
            source: d.source.clone(),
            malicious: d.malicious,
            shape: d.shape,
            value: d.value.clone(),
        })
        .collect();
    let hosts = hosts(corpus, split);
    out.extend(
        corpus
            .payloads
            .iter()
            .filter(|p| p.split == split)
            .map(|p: &Payload| Case {
                source: p.source.clone(),
                malicious: true,
                shape: Shape::Tool,
                value: inject::inject(&hosts[(corpus::fnv(&p.id) as usize) % hosts.len()], p),
            }),
    );
    out
}

/// The thresholds with the best recall whose false positives stay under the ceilings.
fn choose(cases: &[Case], model: &Model) -> (f32, f32) {
    let ctx_model = Context::default().with_model(Arc::new(model.clone()));
    let parts: Vec<(&Case, Parts)> = cases
        .iter()
        .map(|c| (c, eval::parts(c.shape, &c.value, model, &ctx_model)))
        .collect();
    // What the cleaner and the detectors hold without the model (every weak phrase holding): the
    // model may not add false positives beyond that, nor beyond the 2 % aim when that is higher.
    let real_fp = |hold: f32, flag: f32| {
        let set: Vec<_> = parts
            .iter()
            .filter(|(c, _)| !c.malicious && c.source == "real-servers")
            .collect();
        let held = set
            .iter()
            .filter(|(_, p)| !p.rejected && p.held(hold, flag))
            .count();
        held as f64 / set.len().max(1) as f64
    };
    let ceiling_real = MAX_FP_REAL.max(real_fp(2.0, 0.0));
    let mut best = (-1.0f64, 0.99f32, 0.99f32);
    for h in (50..=99).rev() {
        let hold = h as f32 / 100.0;
        // A weak detector phrase holds when the model gives it at least `flag`.
        for f in (1..=h.min(50)).rev().step_by(2) {
            let flag = f as f32 / 100.0;
            let rate = |pred: &dyn Fn(&Case) -> bool| {
                let set: Vec<_> = parts.iter().filter(|(c, _)| pred(c)).collect();
                let held = set.iter().filter(|(_, p)| p.held(hold, flag)).count();
                held as f64 / set.len().max(1) as f64
            };
            let fp_real = real_fp(hold, flag);
            let recall = rate(&|c| c.malicious);
            if fp_real > ceiling_real {
                continue;
            }
            if recall > best.0 + 1e-9 {
                best = (recall, hold, flag);
            }
        }
    }
    (best.1, best.2)
}

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
fn report(corpus: &Corpus, model: Arc<Model>, hold: f32, flag: f32) -> String {
    let ctx = Context::default().with_model(model);
    let limits = Limits::default();
    let mut rows: BTreeMap<(String, bool), Row> = BTreeMap::new();
    let test = evaluation_set(corpus, Split::Test);
    for c in &test {
        let (verdict, findings, _) = eval::judge(c.shape, &c.value, &limits, &ctx);
        rows.entry((c.source.clone(), c.malicious))
            .or_default()
            .add(verdict, &findings);
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
    out.push_str("nor used to choose the thresholds (they come from the validation split). Malicious rows of\n");
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
            Value::String(s) => vec![("description".to_owned(), s.clone())],
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

/// `--cases`: the red-team cases whose verdict differs from their recorded baseline, with the
/// embedded model (to update the file's baselines after a change).
fn cases(root: &Path) {
    let path = root.join("tests/data/poisoning/redteam_cases.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("cannot read {}", path.display());
        return;
    };
    let Ok(data) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let ctx = Context::new(["slack"], ".");
    for case in data["cases"].as_array().into_iter().flatten() {
        let out = aegis_gate::sanitize::sanitize_tool(&case["tool"], &Limits::default(), &ctx);
        let baseline = case["baseline"].as_str().unwrap_or("");
        if out.verdict.as_str() != baseline {
            let kinds: Vec<String> = out
                .findings
                .iter()
                .map(|f| format!("{}{}", f.kind, if f.flagged { "(flag)" } else { "" }))
                .collect();
            println!(
                "{} {} {} -> {} {:?}",
                case["label"].as_str().unwrap_or(""),
                case["id"].as_str().unwrap_or(""),
                baseline,
                out.verdict,
                kinds
            );
        }
    }
}

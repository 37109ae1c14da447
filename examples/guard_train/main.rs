//! Trains the gate's learned detection stage from the corpora in the repository, chooses its
//! thresholds by cross-validation on the development split, reports on a test split it never
//! trained on, and writes `src/sanitize/model/guard.model` and `tools/guard/REPORT.md`.
//!
//! `cargo run --release --example guard_train` (about 15 s after its build); `-- --check`
//! writes nothing and fails when the committed model differs from the one the corpora give
//! (training is deterministic). `GUARD_CURVE=1` prints the out-of-fold trade-off between real
//! tools held and recall for every hold threshold; `GUARD_EVAL_MODEL=FILE` writes nothing and
//! prints the report of another model file (an older `guard.model`) on today's test split.

mod corpus;
mod eval;
mod inject;
mod report;
mod train;

use aegis_gate::sanitize::model::{self, Model, Weights};
use aegis_gate::sanitize::{Context, Kind, Limits};
use corpus::{Corpus, Definition, Payload, Shape, Split, FOLDS};
use eval::Parts;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use train::Example;

/// The share of the development split's real tools (scored out of fold) the thresholds may hold (the aim is at most
/// 2 % of real tools held; structural rejections are not detections and are not counted).
const MAX_FP_REAL: f64 = 0.02;

/// The share of the development split's hard benign texts (written to look risky, and the
/// red-team's benign tools) the thresholds may hold, scored out of fold.
const MAX_FP_HARD: f64 = 0.06;

fn main() {
    // `GUARD_ROOT=DIR`: read the corpora from (and write the model and report into) a copy of
    // the repository, for an experiment on a snapshot while the corpora change.
    let root = std::env::var_os("GUARD_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
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
    if let Some(path) = std::env::var_os("GUARD_EVAL_MODEL") {
        // Experiment: the report of another model file (an older one) on today's test split.
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        let model = Model::from_bytes(Cow::Owned(bytes)).map_err(|e| e.to_string())?;
        let (hold, flag) = model.thresholds();
        println!("{}", report::report(&corpus, Arc::new(model), hold, flag));
        return Ok(());
    }
    let ctx = Context::default();
    let (hold, flag) = cross_validated_thresholds(&corpus, &ctx)?;
    eprintln!("thresholds from {FOLDS}-fold cross-validation: hold {hold:.2}, flag {flag:.2}");
    let trained = fit(&corpus, &ctx, &|split, _| split.is_development());
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
    eprintln!("{}", report::timing(&corpus, &model));
    let report = report::report(&corpus, model, hold, flag);
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

/// Which items a step reads: by split and cross-validation fold.
type Take<'a> = &'a dyn Fn(Split, u8) -> bool;

/// A model trained on the items `take` admits.
fn fit(corpus: &Corpus, ctx: &Context, take: Take<'_>) -> train::Trained {
    let examples = scored(examples(corpus, ctx, take));
    let positives = examples.iter().filter(|e| e.malicious).count();
    eprintln!("{} windows ({positives} malicious)", examples.len());
    train::train(&examples)
}

/// The thresholds chosen on out-of-fold scores: each development fold (its real servers whole,
/// its written items) judged by a model trained on the other folds, so that every development
/// item is scored as unseen and the 2 % ceiling is read on all of them rather than on one
/// validation split's few servers.
fn cross_validated_thresholds(corpus: &Corpus, ctx: &Context) -> Result<(f32, f32), String> {
    let mut scored: Vec<(Case, Parts)> = Vec::new();
    for k in 0..FOLDS {
        let trained = fit(corpus, ctx, &|split, fold| {
            split.is_development() && fold != k
        });
        let bytes = Weights::encode(&trained.weights, trained.bias, 0.5, 0.5);
        let model = Arc::new(Model::from_bytes(Cow::Owned(bytes)).map_err(|e| e.to_string())?);
        let ctx_model = Context::default().with_model(Arc::clone(&model));
        for case in evaluation_set(corpus, &|split, fold| split.is_development() && fold == k) {
            let parts = eval::parts(case.shape, &case.value, &model, &ctx_model);
            scored.push((case, parts));
        }
    }
    Ok(choose(&scored))
}

/// The training windows of the items `take` admits: every window of the benign texts, and each
/// malicious text whole.
fn examples(corpus: &Corpus, ctx: &Context, take: Take<'_>) -> Vec<Example> {
    let mut out = Vec::new();
    let hosts = hosts(corpus, take);
    for d in corpus.definitions.iter().filter(|d| take(d.split, d.fold)) {
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
    for p in corpus.payloads.iter().filter(|p| take(p.split, p.fold)) {
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
fn texts(d: &Definition) -> Vec<(String, Cow<'_, str>)> {
    match &d.value {
        Value::String(s) => vec![("description".into(), Cow::Borrowed(s.as_str()))],
        v => model::model_texts(v),
    }
}

/// The real tools `take` admits, to carry payloads (a plain tool when the corpus has none).
fn hosts(corpus: &Corpus, take: Take<'_>) -> Vec<Value> {
    let hosts: Vec<Value> = corpus
        .definitions
        .iter()
        .filter(|d| take(d.split, d.fold) && d.source == "real-servers" && d.shape == Shape::Tool)
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

/// One definition to judge: (source, real server, malicious, shape, value).
struct Case {
    source: String,
    server: String,
    malicious: bool,
    shape: Shape,
    value: Value,
}

/// The definitions `take` admits, with the payloads it admits placed in its real tools.
fn evaluation_set(corpus: &Corpus, take: Take<'_>) -> Vec<Case> {
    let mut out: Vec<Case> = corpus
        .definitions
        .iter()
        .filter(|d| take(d.split, d.fold))
        .map(|d| Case {
            source: d.source.clone(),
            server: d.server.clone(),
            malicious: d.malicious,
            shape: d.shape,
            value: d.value.clone(),
        })
        .collect();
    let hosts = hosts(corpus, take);
    out.extend(
        corpus
            .payloads
            .iter()
            .filter(|p| take(p.split, p.fold))
            .map(|p: &Payload| Case {
                source: p.source.clone(),
                server: String::new(),
                malicious: true,
                shape: Shape::Tool,
                value: inject::inject(&hosts[(corpus::fnv(&p.id) as usize) % hosts.len()], p),
            }),
    );
    out
}

/// The thresholds with the best recall whose false positives stay under the ceilings, from
/// each case's parts under a model that never saw it.
fn choose(parts: &[(Case, Parts)]) -> (f32, f32) {
    // `GUARD_CURVE=1`: print the out-of-fold trade-off, one line per hold threshold.
    let curve = std::env::var_os("GUARD_CURVE").is_some();
    // What the cleaner and the detectors hold without the model (every weak phrase holding): the
    // model may not add false positives beyond that, nor beyond the 2 % aim when that is higher.
    let real_fp = |hold: f32, flag: f32| {
        share(
            parts,
            |c| !c.malicious && c.source == "real-servers",
            |p| !p.rejected && p.held(hold, flag),
        )
    };
    // The same per server (each server's share held, averaged): reported beside, since a
    // server's tools share their wording and move together.
    let real_fp_per_server = |hold: f32, flag: f32| {
        share_per_server(
            parts,
            |c| !c.malicious && c.source == "real-servers",
            |p| !p.rejected && p.held(hold, flag),
        )
    };
    let ceiling_real = MAX_FP_REAL.max(real_fp(2.0, 0.0));
    // Written benign texts are hard on purpose (a `.env` loader, an SSH tool, "call this first"):
    // the model may hold no more of them than `MAX_FP_HARD`, or than the strong detectors alone
    // when they hold more.
    let hard_fp = |hold: f32, flag: f32| {
        share(
            parts,
            |c| !c.malicious && c.source != "real-servers",
            |p| p.held(hold, flag),
        )
    };
    let ceiling_hard = MAX_FP_HARD.max(hard_fp(2.0, 2.0));
    if curve {
        eprintln!(
            "without the model: real tools held {:.2} % (weak phrases holding), hard benign held {:.2} % (weak phrases flagged)",
            real_fp(2.0, 0.0) * 100.0,
            hard_fp(2.0, 2.0) * 100.0
        );
    }
    let mut best = (-1.0f64, 0.99f32, 0.99f32);
    for h in (50..=99).rev() {
        let hold = h as f32 / 100.0;
        // A weak detector phrase holds when the model gives it at least `flag`; never below
        // even odds: a score under 0.5 is the model reading the text as benign.
        for f in (50..=h).rev().step_by(2) {
            let flag = f as f32 / 100.0;
            let fp_real = real_fp(hold, flag);
            let recall = share(parts, |c| c.malicious, |p| p.held(hold, flag));
            let fp_hard = hard_fp(hold, flag);
            if curve && f == 50 {
                eprintln!(
                    "hold {hold:.2}, flag {flag:.2}: real tools held {:.2} %, hard benign held {:.2} %, recall {:.1} %",
                    fp_real * 100.0,
                    fp_hard * 100.0,
                    recall * 100.0
                );
            }
            if fp_real > ceiling_real || fp_hard > ceiling_hard {
                continue;
            }
            if recall > best.0 + 1e-9 {
                best = (recall, hold, flag);
            }
        }
    }
    eprintln!(
        "out of fold at hold {:.2}, flag {:.2}: recall {:.1} %, real tools held {:.2} % (ceiling {:.2} %; per server {:.2} %), hard benign held {:.2} %",
        best.1,
        best.2,
        best.0 * 100.0,
        real_fp(best.1, best.2) * 100.0,
        ceiling_real * 100.0,
        real_fp_per_server(best.1, best.2) * 100.0,
        hard_fp(best.1, best.2) * 100.0
    );
    if curve {
        let mut servers: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
        for (c, p) in parts
            .iter()
            .filter(|(c, _)| !c.malicious && c.source == "real-servers")
        {
            let e = servers.entry(c.server.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(!p.rejected && p.held(best.1, best.2));
            e.2 += usize::from(!p.rejected && p.held(2.0, 0.0));
        }
        for (name, (n, held, without)) in servers.iter().filter(|(_, v)| v.1 + v.2 > 0) {
            eprintln!("  {name}: {held} of {n} held ({without} without the model)");
        }
        for (c, p) in parts
            .iter()
            .filter(|(c, _)| !c.malicious && c.source == "real-servers")
        {
            if !p.rejected && (p.strong || p.weak || p.held(best.1, best.2)) {
                let text = c.value["description"]
                    .as_str()
                    .or(c.value.as_str())
                    .unwrap_or("");
                let text: String = text.chars().take(160).collect();
                eprintln!(
                    "    {} {} strong={} weak={} p={:.2}: {}",
                    c.server,
                    c.value["name"],
                    p.strong,
                    p.weak,
                    p.p,
                    text.replace('\n', " ")
                );
            }
        }
    }
    (best.1, best.2)
}

/// The share of the cases `pick` chooses whose parts satisfy `held`.
fn share(
    parts: &[(Case, Parts)],
    pick: impl Fn(&Case) -> bool,
    held: impl Fn(&Parts) -> bool,
) -> f64 {
    let (mut n, mut yes) = (0usize, 0usize);
    for (_, p) in parts.iter().filter(|(c, _)| pick(c)) {
        n += 1;
        yes += usize::from(held(p));
    }
    yes as f64 / n.max(1) as f64
}

/// The mean over real servers of the share of each one's cases `pick` chooses that satisfy
/// `held`.
fn share_per_server(
    parts: &[(Case, Parts)],
    pick: impl Fn(&Case) -> bool,
    held: impl Fn(&Parts) -> bool,
) -> f64 {
    let mut servers: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (c, p) in parts.iter().filter(|(c, _)| pick(c)) {
        let counts = servers.entry(c.server.as_str()).or_default();
        counts.0 += 1;
        counts.1 += usize::from(held(p));
    }
    let sum: f64 = servers
        .values()
        .map(|&(n, yes)| yes as f64 / n.max(1) as f64)
        .sum();
    sum / servers.len().max(1) as f64
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
                .map(|f| {
                    let flag = if f.flagged { "(flag)" } else { "" };
                    match f.kind {
                        // The model's finding says its score.
                        Kind::Model => format!("{}{flag} {}", f.kind, f.detail),
                        _ => format!("{}{flag}", f.kind),
                    }
                })
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

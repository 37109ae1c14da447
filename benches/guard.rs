//! The learned detection stage's cost: per definition, against the whole sanitizer in the same
//! run, on the real servers' tools of the guard corpus and on the realistic tools of the gate
//! bench; and the judging of 5,000 tools at first sight (50 servers x 100 tools), the aim being
//! 200 ms, then of the real servers' tools at first sight (longer and more varied text).
//!
//! `cargo bench --bench guard` (`-- first-sight`: only the 5,000 tools at first sight)

use aegis_gate::sanitize::model::{self, embedded};
use aegis_gate::sanitize::{sanitize_tool, Context, Limits};
use serde_json::Value;
use std::time::{Duration, Instant};

mod common;

use common::{pct, realistic_tool};

fn main() {
    let Some(model) = embedded() else {
        eprintln!("the embedded model does not load");
        std::process::exit(1);
    };
    // `cargo bench --bench guard -- first-sight`: only the 5,000-tool first sight (to profile it).
    if std::env::args().any(|a| a == "first-sight") {
        first_sight_5000();
        return;
    }
    println!("aegis-gate guard bench (release build, this machine, one thread)");
    let listings = real_listings();
    let real: Vec<Value> = listings
        .iter()
        .flat_map(|(_, t)| t.iter().cloned())
        .collect();
    let synthetic: Vec<Value> = (0..2000).map(realistic_tool).collect();
    for (label, tools) in [
        ("real servers' tools", &real),
        ("realistic bench tools", &synthetic),
    ] {
        let (whole, stage) = per_definition(tools, model);
        println!(
            "{label} ({} definitions): whole sanitizer {:.1} µs each, learned stage {:.1} µs each ({:.0} % of the whole)",
            tools.len(),
            whole,
            stage,
            100.0 * stage / whole.max(f64::MIN_POSITIVE)
        );
    }
    first_sight_5000();
    // The real servers' tools at first sight: no aim of their own, but their text is what a gate
    // meets (longer and more varied than the bench tools).
    first_sight(&listings, 5, "real servers' tools", "");
}

/// The tools of every real server in tools/guard/corpus/real, by server.
fn real_listings() -> Vec<(String, Vec<Value>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/guard/corpus/real");
    let mut listings = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return listings;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let tools: Vec<Value> = v["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let (Some(name), false) = (name, tools.is_empty()) {
            listings.push((name, tools));
        }
    }
    listings
}

/// Mean µs per definition of the whole sanitizer, and of the learned stage alone on the cleaned
/// definitions (the best of three rounds each).
fn per_definition(tools: &[Value], model: &model::Model) -> (f64, f64) {
    let limits = Limits::default();
    let ctx = Context::new((0..49).map(|i| format!("s{i}")), ".");
    let n = tools.len().max(1) as f64;
    let mut whole = f64::MAX;
    let mut stage = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let out: Vec<_> = tools
            .iter()
            .map(|t| sanitize_tool(t, &limits, &ctx))
            .collect();
        whole = whole.min(start.elapsed().as_secs_f64() * 1e6 / n);
        let start = Instant::now();
        for s in &out {
            let texts = model::model_texts(&s.clean);
            std::hint::black_box(model::best_text(model, &texts, &s.findings));
        }
        stage = stage.min(start.elapsed().as_secs_f64() * 1e6 / n);
    }
    (whole, stage)
}

fn first_sight_5000() {
    let listings: Vec<(String, Vec<Value>)> = (0..50)
        .map(|s| (format!("s{s}"), (0..100).map(realistic_tool).collect()))
        .collect();
    first_sight(&listings, 10, "tools", " (aim 200 ms)");
}

/// Every listing judged at first sight as one burst and the merged view built, `runs` times.
fn first_sight(listings: &[(String, Vec<Value>)], runs: usize, what: &str, aim: &str) {
    let settings = aegis_gate::config::Settings::default();
    let n: usize = listings.iter().map(|(_, t)| t.len()).sum();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| aegis_gate::merger::rebuild_for_bench(&settings, listings, listings.len()).0)
        .collect();
    times.sort();
    println!(
        "{n} {what} judged at first sight ({} servers, merged view built): p50 {:.1} ms, max {:.1} ms{aim}",
        listings.len(),
        pct(&times, 50).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

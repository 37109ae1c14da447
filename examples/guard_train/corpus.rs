//! The corpora the trainer reads, each item with its source and its split.
//!
//! Sources (see tools/guard/README.md for their origins and licences):
//! - `tools/guard/corpus/real/*.json`: tools, prompts, resources and instructions of real MCP
//!   servers, as they list them (benign), split by server;
//! - `tools/guard/corpus/written/*.jsonl`: payloads and hard benign texts written for this
//!   project, split by id;
//! - `tests/data/poisoning/redteam_cases.json`: the project's red-team definitions, split by id;
//! - `tests/data/poisoning/gate_synthetic_corpus.json`: the CC0 shared corpus, never trained on.

use serde_json::Value;
use std::path::Path;

/// Which part of the data an item belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Trained on, and cross-validated to choose the thresholds.
    Development,
    /// Reported, never trained on nor used to choose anything.
    Test,
}

/// Folds of the development split for cross-validation.
pub const FOLDS: u8 = 5;

impl Split {
    /// 80 / 20 by a hash of the id.
    pub fn of(id: &str) -> Split {
        match fnv(id) % 10 {
            0 | 1 => Split::Test,
            _ => Split::Development,
        }
    }

    pub fn is_development(self) -> bool {
        self == Split::Development
    }
}

/// The cross-validation fold of a written item or a red-team case, by a hash of its id (other
/// bits than its split's).
pub fn fold_of(id: &str) -> u8 {
    ((fnv(id) >> 16) % u64::from(FOLDS)) as u8
}

pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a definition is, for the sanitizer to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Tool,
    Prompt,
    Resource,
    Template,
    /// Bare text (server instructions, a written benign description).
    Text,
}

/// A whole definition with its label.
#[derive(Clone, Debug)]
pub struct Definition {
    pub source: String,
    /// The real server a definition comes from (empty for the others): false positives are
    /// also counted per server, so that one big server does not stand for all.
    pub server: String,
    pub split: Split,
    /// Cross-validation fold (development items only; a real server's tools share one).
    pub fold: u8,
    pub malicious: bool,
    pub shape: Shape,
    pub value: Value,
}

/// An injected text written for this project.
#[derive(Clone, Debug)]
pub struct Payload {
    pub id: String,
    pub source: String,
    pub split: Split,
    pub fold: u8,
    pub field: String,
    pub text: String,
}

#[derive(Default)]
pub struct Corpus {
    /// Benign and labelled definitions.
    pub definitions: Vec<Definition>,
    /// Malicious texts to inject into benign hosts.
    pub payloads: Vec<Payload>,
}

pub fn load(root: &Path) -> Result<Corpus, String> {
    let mut corpus = Corpus::default();
    real(&root.join("tools/guard/corpus/real"), &mut corpus)?;
    written(&root.join("tools/guard/corpus/written"), &mut corpus)?;
    cases(
        &root.join("tests/data/poisoning/redteam_cases.json"),
        "redteam",
        false,
        &mut corpus,
    )?;
    cases(
        &root.join("tests/data/poisoning/gate_synthetic_corpus.json"),
        "cc0-synthetic",
        true,
        &mut corpus,
    )?;
    Ok(corpus)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<std::path::PathBuf>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// One file per server. A server marked `held_out` in `servers.json` (those added on
/// 2026-12-07) is in the test split, never trained on; of the others, every fifth (in name
/// order) is a test server and the rest take the development folds in turn, so no server's
/// wording is on both sides of a split or a fold.
fn real(dir: &Path, corpus: &mut Corpus) -> Result<(), String> {
    let listed = read_json(&dir.join("servers.json"))?;
    let held_out: Vec<&str> = listed["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["held_out"] == true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let mut development = 0u8;
    let mut others = 0usize;
    for path in sorted_files(dir, "json")? {
        let server = read_json(&path)?;
        if server.get("tools").is_none() {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_owned();
        let split = if held_out.contains(&name.as_str()) {
            Split::Test
        } else {
            others += 1;
            if (others - 1) % 5 == 0 {
                Split::Test
            } else {
                Split::Development
            }
        };
        // Development servers take the folds in turn, so no server is in two.
        let fold = development % FOLDS;
        development = development.wrapping_add(u8::from(split.is_development()));
        let mut push = |shape: Shape, items: &Value| {
            for item in items.as_array().into_iter().flatten() {
                corpus.definitions.push(Definition {
                    source: "real-servers".into(),
                    server: name.clone(),
                    split,
                    fold,
                    malicious: false,
                    shape,
                    value: item.clone(),
                });
            }
        };
        push(Shape::Tool, &server["tools"]);
        push(Shape::Prompt, &server["prompts"]);
        push(Shape::Resource, &server["resources"]);
        push(Shape::Template, &server["resourceTemplates"]);
        if let Some(text) = server["instructions"].as_str() {
            push(Shape::Text, &Value::Array(vec![Value::from(text)]));
        }
    }
    Ok(())
}

fn written(dir: &Path, corpus: &mut Corpus) -> Result<(), String> {
    for path in sorted_files(dir, "jsonl")? {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let id = v["id"].as_str().unwrap_or("").to_owned();
            let body = v["text"].as_str().unwrap_or("").to_owned();
            let source = format!("written:{stem}");
            let split = Split::of(&id);
            if v["label"] == "malicious" {
                corpus.payloads.push(Payload {
                    fold: fold_of(&id),
                    id,
                    source,
                    split,
                    field: v["field"].as_str().unwrap_or("any").to_owned(),
                    text: body,
                });
            } else {
                corpus.definitions.push(Definition {
                    fold: fold_of(&id),
                    source,
                    server: String::new(),
                    split,
                    malicious: false,
                    shape: Shape::Text,
                    value: Value::String(body),
                });
            }
        }
    }
    Ok(())
}

/// The labelled tool-definition files; `held_out` puts every case in the test split.
fn cases(path: &Path, source: &str, held_out: bool, corpus: &mut Corpus) -> Result<(), String> {
    let v = read_json(path)?;
    for case in v["cases"].as_array().into_iter().flatten() {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        corpus.definitions.push(Definition {
            fold: fold_of(&id),
            split: if held_out {
                Split::Test
            } else {
                Split::of(&id)
            },
            source: source.into(),
            server: String::new(),
            malicious: case["label"] == "malicious",
            shape: Shape::Tool,
            value: case["tool"].clone(),
        });
    }
    Ok(())
}

//! The poisoning corpus (tests/data/poisoning, CC0): every case's expected action holds.

use aegis_gate::sanitize::{self, Context, Kind, Limits, Severity, Verdict};
use serde_json::Value;

fn corpus() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/poisoning/gate_synthetic_corpus.json"
    );
    let data: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    data["cases"].as_array().unwrap().clone()
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn every_corpus_case_gets_its_expected_action() {
    let limits = Limits::default();
    let ctx = Context::default();
    let cases = corpus();
    assert_eq!(cases.len(), 44);
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let tool = &case["tool"];
        if let Some(text) = tool
            .get("_initialize_result_instructions")
            .and_then(Value::as_str)
        {
            let (clean, findings) = sanitize::instructions(text, &limits, &ctx);
            if !findings.iter().any(|f| f.severity() == Severity::Hold)
                || clean.chars().any(sanitize::is_forbidden)
            {
                failures.push(format!("{id}: instructions not flagged: {findings:?}"));
            }
            continue;
        }
        let out = sanitize::sanitize_tool(tool, &limits, &ctx);
        let mut texts = Vec::new();
        strings(&out.clean, &mut texts);
        if texts.iter().any(|s| s.chars().any(sanitize::is_forbidden))
            && out.verdict != Verdict::Rejected
        {
            failures.push(format!("{id}: a forbidden code point survived"));
        }
        let ok = match expect {
            "pass" => out.verdict == Verdict::Pass && &out.clean == tool,
            "pass-with-normalization" | "pass-or-strip-link" | "namespace" | "pin" => {
                out.verdict.is_usable()
            }
            "flag" | "strip+flag" | "normalize+flag" => out.verdict == Verdict::Held,
            "reject" => out.verdict == Verdict::Rejected,
            "truncate/reject" => {
                let desc = out.clean["description"]
                    .as_str()
                    .map_or(0, |d| d.chars().count());
                out.verdict == Verdict::Rejected
                    || (out.verdict != Verdict::Pass && desc <= limits.description_chars)
            }
            "ignore-annotations" => {
                out.verdict == Verdict::Pass && out.clean["annotations"] == tool["annotations"]
            }
            "strip" => {
                let icons = out.clean["icons"].as_array().cloned().unwrap_or_default();
                out.verdict == Verdict::Sanitized
                    && icons
                        .iter()
                        .all(|i| i["src"].as_str().unwrap().starts_with("https:"))
            }
            "block-on-hash-change" => out.verdict != Verdict::Rejected,
            other => panic!("{id}: unknown expectation {other}"),
        };
        if !ok {
            failures.push(format!(
                "{id} (expect {expect}): verdict {} findings {:?}",
                out.verdict, out.findings
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rug_pull_versions_hash_differently() {
    let cases = corpus();
    let tool = |id: &str| cases.iter().find(|c| c["id"] == id).unwrap()["tool"].clone();
    let info = serde_json::json!({"name": "s", "version": "1"});
    let v1 = sanitize::pin_hash(&tool("rugpull-v1"), &info, None);
    let v2 = sanitize::pin_hash(&tool("rugpull-v2"), &info, None);
    let schema_only = sanitize::pin_hash(&tool("rugpull-schema-only"), &info, None);
    assert_ne!(v1, v2);
    assert_ne!(v1, schema_only, "a schema-only change must change the pin");
    assert_eq!(v1, sanitize::pin_hash(&tool("rugpull-v1"), &info, None));
}

#[test]
fn findings_explain_what_was_hidden() {
    let cases = corpus();
    let tool = |id: &str| cases.iter().find(|c| c["id"] == id).unwrap()["tool"].clone();
    let out = sanitize::sanitize_tool(
        &tool("desc-tag-smuggle"),
        &Limits::default(),
        &Context::default(),
    );
    let tag = out
        .findings
        .iter()
        .find(|f| f.kind == Kind::TagChars)
        .unwrap();
    assert!(tag.detail.contains(".aws/credentials"), "{}", tag.detail);
    assert_eq!(out.clean["description"], "Gets the weather for a city.");
    let out = sanitize::sanitize_tool(
        &tool("desc-homoglyph"),
        &Limits::default(),
        &Context::default(),
    );
    assert!(
        out.findings.iter().any(|f| f.kind == Kind::Override),
        "{:?}",
        out.findings
    );
    assert!(
        out.findings.iter().any(|f| f.kind == Kind::MixedScript),
        "{:?}",
        out.findings
    );
}

/// The red-team cases (tests/data/poisoning/redteam_cases.json): what was caught stays caught,
/// what passed stays passing. Cases that still get through are listed there with their baseline,
/// so a fix shows up as a better verdict and the file is updated with it.
#[test]
fn red_team_cases_do_not_regress() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/poisoning/redteam_cases.json"
    );
    let data: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let ctx = Context::new(["slack"], ".");
    let mut regressions = Vec::new();
    for case in data["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let out = sanitize::sanitize_tool(&case["tool"], &Limits::default(), &ctx);
        let baseline = case["baseline"].as_str().unwrap();
        let caught = |v: &str| v == "held" || v == "rejected";
        let regressed = match case["label"].as_str().unwrap() {
            "malicious" => caught(baseline) && !caught(out.verdict.as_str()),
            _ => !caught(baseline) && caught(out.verdict.as_str()),
        };
        if regressed {
            regressions.push(format!(
                "{id}: baseline {baseline}, now {} {:?}",
                out.verdict, out.findings
            ));
        }
    }
    assert!(regressions.is_empty(), "{}", regressions.join("\n"));
}

//! The audit trail through the binary: calls and admin changes land in signed, chained,
//! rotated `audit*.log` files; `audit verify` passes on the real trail and names the first broken
//! record after an edit, a removal or a reordering.

use crate::support::{assert_success, example, gate, Gate, Serve, TempDir, SECRET};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn verify(data: &Path) -> Output {
    gate(&["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn the_audit_trail_verifies_and_any_edit_removal_or_reordering_is_named() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--audit-rotate-bytes", "2048"]);
    let client = serve.setup_client("ws-1");
    for n in 0..12 {
        let answer = client.call("ex.echo", json!({"message": format!("m{n}")}));
        assert!(answer["result"].is_object(), "{answer}");
    }
    client.call("ex.get_env", json!({"name": "MY_SECRET"}));
    let (data, key) = (serve.data.clone(), client.key);
    assert!(serve.stop().success());

    let ok = verify(&data);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let files = aegis_gate::audit::files(&data).unwrap();
    assert!(files.len() >= 2, "no rotation: {files:?}");
    let all: Vec<Value> = files
        .iter()
        .flat_map(|f| lines(f))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let events: Vec<&Value> = all.iter().map(|r| &r["body"]["event"]).collect();
    let calls = events.iter().filter(|e| e["type"] == "call").count();
    assert_eq!(calls, 13, "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "admin"
        && e["path"] == "/api/v1/aegis/connections"
        && e["status"] == 201));
    let call = events.iter().find(|e| e["type"] == "call").unwrap();
    assert_eq!(call["tool"], "ex.echo");
    assert_eq!(call["outcome"], "ok");
    assert_eq!(call["verdict"], "allow");
    assert_eq!(call["arguments_sha256"].as_str().unwrap().len(), 64);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains(SECRET) && !text.contains(&key),
            "a secret reached {file:?}"
        );
    }

    // Each kind of damage is found and named; the trail is restored after each.
    let live = data.join("audit.log");
    let original = lines(&live);
    assert!(original.len() >= 3, "{original:?}");
    let broken = |damaged: Vec<String>, path: &Path, want: &str| {
        let keep = lines(path);
        write_lines(path, &damaged);
        let out = verify(&data);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        write_lines(path, &keep);
        assert!(!out.status.success(), "damage not found ({want})");
        assert!(err.contains(want), "{want}: {err}");
    };
    let mut edited = original.clone();
    edited[1] = edited[1]
        .replacen("\"ok\"", "\"no\"", 1)
        .replacen("\"m", "\"x", 1);
    assert_ne!(edited[1], original[1]);
    // An unsigned line is proved by the next line's prev; a signed one by its own signature.
    let want = if original[1].contains(r#","sig":""#) {
        "audit.log line 2"
    } else {
        "audit.log line 3"
    };
    broken(edited, &live, want);
    let mut removed = original.clone();
    removed.remove(1);
    broken(removed, &live, "removed or moved");
    let mut swapped = original.clone();
    swapped.swap(1, 2);
    broken(swapped, &live, "audit.log line 2");
    let first = &files[0];
    let mut headless = lines(first);
    headless.remove(0);
    broken(headless, first, "line 1");
    assert!(verify(&data).status.success(), "restored");
}

#[test]
fn a_stdio_gate_records_its_calls_in_the_same_verifiable_trail() {
    let mut gate = Gate::ready(json!({"ex": example(&[])}), json!({"agent": "dev"}));
    assert!(gate.call("ex.echo", json!({"message": "hi"}))["result"].is_object());
    assert!(gate.call("ex.fail", json!({}))["result"]["isError"] == true);
    let data = gate.data_dir();
    gate.close_stdin();
    assert!(gate.wait_exit(std::time::Duration::from_secs(20)).success());
    let ok = verify(&data);
    assert_success(&ok);
    let events: Vec<Value> = lines(&data.join("audit.log"))
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"]["event"].clone())
        .collect();
    let outcomes: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["transport"].as_str().unwrap_or_default(),
                e["tool"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("stdio", "ex.echo", "ok"),
            ("stdio", "ex.fail", "tool_error")
        ]
    );
    assert!(events
        .iter()
        .all(|e| e["agent"] == "dev" && e["verdict"] == "allow"));
}

#[test]
fn a_stdio_gate_with_audit_off_writes_no_trail() {
    let mut gate = Gate::ready(json!({"ex": example(&[])}), json!({"audit": false}));
    assert!(gate.call("ex.echo", json!({"message": "hi"}))["result"].is_object());
    let data = gate.data_dir();
    gate.close_stdin();
    assert!(gate.wait_exit(std::time::Duration::from_secs(20)).success());
    assert!(!data.join("audit.log").exists());
}

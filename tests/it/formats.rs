//! The on-disk formats stay byte for byte what they are: `state.json` and the audit trail
//! (`audit.log`), written by the real binary for one fixed set of inputs, against golden files in
//! `tests/data/formats/` (`UPDATE_EXPECT=1` rewrites them; review the diff). The golden files
//! were written by the code before the restructure of issue #10 (commit 5f35ed0), running this
//! very test: a change that alters them changes what every gate and operator tool reads.
//!
//! The inputs: `serve --org-id org-b` with a fixed `AEGIS_ADMIN_TOKEN`, a fixed
//! `AEGIS_FERNET_KEYS` and a fixed signing key (`signing.key` written before the first start);
//! REST calls that create a workspace with two connections with env (one marked trusted), two
//! remote connections (`http` with a header, `partner` with a scope) in a second workspace that
//! is never activated, two agents, a partner with a second key, a policy and identity settings
//! (JWT, and introspection with a credential), one refused change and one tool approval; MCP
//! calls over HTTP (a call answered, a tool error, a call the policy refuses, an unknown tool,
//! an escalated call approved and one denied); then, serve stopped, a stdio gate on the stored
//! workspace whose calls (answered, refused, escalated) go to the same trail.
//!
//! What is masked, and why (everything else is compared byte for byte: key order, white space,
//! field names, values):
//! - Random ids: connection ids (`conn_…`) become `<conn WS/NAME>` and agent ids (`agent_…`)
//!   become `<agent WS/NAME>`, named from the entry they belong to, wherever they appear (map keys,
//!   `id` fields, audit `agent` fields, admin paths); approval ids (`apr_…`) become `<approval N>`,
//!   numbered in order of first appearance.
//! - The entries of `state.json`'s `connections` and `agents` maps are put in order of those
//!   masked keys: the gate keeps them in order of their random ids, so their order is random too.
//!   Each entry's own bytes are untouched.
//! - Hashes of random values: an agent's `key_hash` (SHA-256 of its random key).
//! - Fernet tokens (their IV and timestamp are random and clock-dependent): each is decrypted with
//!   the fixed key and replaced by `<fernet PLAINTEXT>`, so the bound plaintext
//!   (`{"c":…,"n":…,"v":…}`) is still compared.
//! - Timestamps: a pin's `at` (Unix seconds) in `state.json`; an approval's `created_at` and
//!   `expires_at` and a call's `ms` in the audit events; a line's `at`, `prev` (the hash of the
//!   previous line, which holds a timestamp) and `sig` (over bytes that hold one) in the framing,
//!   which is checked by pattern, not against a golden file: keys in the order
//!   `{"body":{"at","event","kid","prev","seq"},"sig"}` (the body's keys come out sorted:
//!   serde_json without `preserve_order`), `kid` exactly the fixed key's, `seq` counting from 1,
//!   `prev` 64 hex digits, `sig` 86 base64url characters.
//! - The path of the gate binary under test (where the checkout is), as `<aegis-gate>`.
//! - One order: the record of a held call's own answer is written by its HTTP thread while the
//!   thread that decides it writes the approval's record and then the admin record, so thread
//!   scheduling orders those three; the call's record is put after the other two.
//!
//! `aegis-gate audit verify` must pass on the trail as written.

use crate::support::{
    assert_success, gate, gate_bin, repo_file, retry, settings_file, Gate, Serve, TempDir, SECRET,
};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use regex::Regex;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The fixed Fernet key (`AEGIS_FERNET_KEYS`).
fn fernet_key() -> String {
    URL_SAFE.encode([0x11u8; 32])
}

/// The fixed seed of the gate's signing key.
const SIGNING_SEED: [u8; 32] = [0x22; 32];

#[test]
fn state_json_and_the_audit_records_keep_their_format() {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let kid = write_signing_key(&data);
    let key = fernet_key();
    let env = [("AEGIS_FERNET_KEYS", key.as_str())];
    let serve = Serve::start_with_env(dir.path(), &["--org-id", "org-b"], &env);
    let agent_key = rest_changes(&serve);
    mcp_calls(&serve, &agent_key);
    approve_tool(&serve);
    assert!(serve.stop().success());
    stdio_calls(&dir, &data, &env);

    let verified = gate(&["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&verified);
    let state = std::fs::read_to_string(data.join("state.json")).unwrap();
    let ids = random_ids(&serde_json::from_str(&state).unwrap());
    check("state.json", &mask_state(&state, &ids, &key));
    let trail = std::fs::read_to_string(data.join("audit.log")).unwrap();
    check("audit_events.jsonl", &audit_events(&trail, &kid, &ids));
}

/// Writes `signing.key` with [`SIGNING_SEED`] into a new data dir; the key's kid.
fn write_signing_key(data: &Path) -> String {
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(data)
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&SIGNING_SEED);
    let kid = aegis_gate::delegation::paserk::kid_of(&key.verifying_key());
    let file =
        json!({"version": 1, "keys": [{"kid": kid, "seed": URL_SAFE_NO_PAD.encode(SIGNING_SEED)}]});
    std::fs::write(data.join("signing.key"), file.to_string()).unwrap();
    kid
}

/// The admin changes; the key of agent `bot`.
fn rest_changes(serve: &Serve) -> String {
    let created = |path: &str, body: Value| {
        let answer = serve.admin("POST", path, Some(body));
        assert_eq!(answer.status, 201, "{path}: {}", answer.body);
        answer.json()
    };
    created(
        "/connections",
        json!({"workspace_id": "ws-1", "name": "ex",
            "command": [gate_bin(), "example-server", "--poison"],
            "env": {"MY_SECRET": SECRET, "OTHER": "two"}}),
    );
    let more = created(
        "/connections",
        json!({"workspace_id": "ws-1", "name": "more",
            "command": [gate_bin(), "example-server", "--extra-tools", "1"],
            "env": {"LEVEL": "3"}}),
    );
    // Remote connections in a workspace never activated: stored, never started (a started one
    // that cannot connect would get pins written or not depending on timing).
    created(
        "/connections",
        json!({"workspace_id": "ws-2", "name": "far", "kind": "http",
            "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer far-token"}}),
    );
    created(
        "/connections",
        json!({"workspace_id": "ws-2", "name": "peer", "kind": "partner",
            "url": "http://127.0.0.1:9/mcp/ws-9", "org_id": "org-c",
            "scope": {"allow": ["ex.*"], "deny": ["ex.get_env"]}}),
    );
    let more_id = more["id"].as_str().unwrap();
    let trusted = serve.admin(
        "PATCH",
        &format!("/connections/{more_id}"),
        Some(json!({"trusted": true})),
    );
    assert_eq!(trusted.status, 200, "{}", trusted.body);
    // A refused change is recorded too.
    let refused = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-1", "name": "bad name", "command": [gate_bin()]})),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    serve.activate("ws-1");
    let key = serve.agent("ws-1", "bot")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    serve.agent("ws-1", "other");
    let partner_key = |seed: u8| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        aegis_gate::delegation::paserk::encode(&key.verifying_key())
    };
    created(
        "/partners",
        json!({"org_id": "org-a", "keys": [{"kid": "a1", "public_key": partner_key(4)}],
            "workspace_id": "ws-1", "allow": ["ex.echo", "ex.get_*"], "deny": ["ex.get_env"],
            "rate": {"per_minute": 60, "burst": 5}, "agent_rate": {"per_minute": 6, "burst": 2}}),
    );
    created(
        "/partners/org-a/keys",
        json!({"kid": "a2", "public_key": partner_key(6), "not_after": "2099-01-01T00:00:00Z"}),
    );
    let policy = json!({"default": "allow", "rules": [
        {"match": "ex.get_*", "verdict": "deny"},
        {"match": "ex.add", "verdict": "escalate"},
        {"match": "more.*", "annotations": {"destructiveHint": true}, "verdict": "deny"}],
        "approval_timeout_s": 120, "webhooks": []});
    let set = serve.admin("PUT", "/workspaces/ws-1/policy", Some(policy));
    assert_eq!(set.status, 200, "{}", set.body);
    let identity = json!({
        "jwt": {"issuer": "https://idp.example", "audience": "aegis", "algorithm": "EdDSA",
            "jwks_url": "https://idp.example/jwks", "scopes_claim": "scope"},
        "introspection": {"url": "https://idp.example/introspect", "audience": "aegis",
            "authorization": "Basic Y2xpZW50OnNlY3JldA==", "scopes_claim": "scope"}});
    let set = serve.admin("PUT", "/workspaces/ws-1/identity", Some(identity));
    assert_eq!(set.status, 200, "{}", set.body);
    // Every tool of both local servers is listed (and pinned) before any agent connects, so no
    // list change reaches a session.
    retry(Duration::from_millis(50), || {
        let tools = serve.admin("GET", "/workspaces/ws-1/tools", None).json();
        let names = tools.to_string();
        match names.contains("\"ex.weather\"") && names.contains("\"more.tool_0\"") {
            true => Ok(()),
            false => Err(format!("tools never listed: {tools}")),
        }
    });
    key
}

/// The MCP calls over HTTP, one at a time.
fn mcp_calls(serve: &Serve, key: &str) {
    let client = serve.client("ws-1", key);
    let answered = client.call("ex.echo", json!({"message": "hello"}));
    assert_eq!(answered["result"]["content"][0]["text"], "hello");
    let failed = client.call("ex.fail", json!({}));
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let denied = client.call("ex.get_env", json!({"name": "MY_SECRET"}));
    assert_eq!(denied["error"]["code"], -32013, "{denied}");
    let unknown = client.call("ex.nope", json!({}));
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let more = client.call("more.tool_0", json!({"message": "m"}));
    assert!(more["result"].is_object(), "{more}");
    for (n, decision) in ["approve", "deny"].into_iter().enumerate() {
        std::thread::scope(|s| {
            let call = s.spawn(|| client.call("ex.add", json!({"a": 40, "b": 2})));
            let held = serve.pending_approval();
            // The pending record is written by the held call's thread: wait for it, so the
            // decision's records come after it.
            wait_for_records(&serve.data, "\"status\":\"pending\"", n + 1);
            let id = held["id"].as_str().unwrap();
            let decided = serve.admin("POST", &format!("/approvals/{id}/{decision}"), None);
            assert_eq!(decided.status, 200, "{}", decided.body);
            let answer = call.join().unwrap();
            match decision {
                "approve" => assert_eq!(answer["result"]["content"][0]["text"], "42"),
                _ => assert_eq!(answer["error"]["code"], -32013, "{answer}"),
            }
        });
    }
}

/// An operator approves the poisoned tool that was held (a pin approved by `operator`).
fn approve_tool(serve: &Serve) {
    let approved = serve.admin(
        "POST",
        "/workspaces/ws-1/tools/ex.poisoned_add/approve",
        None,
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
}

/// Waits until `audit.log` holds `n` records containing `needle`.
fn wait_for_records(data: &Path, needle: &str, n: usize) {
    retry(Duration::from_millis(20), || {
        let trail = std::fs::read_to_string(data.join("audit.log")).unwrap_or_default();
        match trail.lines().filter(|l| l.contains(needle)).count() >= n {
            true => Ok(()),
            false => Err(format!("no {n} records with {needle} in:\n{trail}")),
        }
    });
}

/// A stdio gate on the stored workspace (agent `dev` from its config file): one call at a time.
fn stdio_calls(dir: &TempDir, data: &Path, env: &[(&str, &str)]) {
    let config = settings_file(dir.path(), json!({"agent": "dev"}));
    let mut cmd = gate(&["--log-level", "debug", "stdio", "--workspace", "ws-1"]);
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().copied());
    let mut stdio = Gate::spawn(cmd, TempDir::new());
    stdio.initialize();
    stdio.assert_echo("ex.echo", "over stdio");
    let denied = stdio.call("ex.get_env", json!({"name": "MY_SECRET"}));
    assert_eq!(denied["error"]["code"], -32013, "{denied}");
    let escalated = stdio.call("ex.add", json!({"a": 1, "b": 2}));
    assert_eq!(escalated["error"]["code"], -32013, "{escalated}");
    stdio.close_stdin();
    assert!(stdio.wait_exit(Duration::from_secs(20)).success());
}

/// Random id → its mask, for the connections and agents of `state`.
fn random_ids(state: &Value) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for (map, kind) in [("connections", "conn"), ("agents", "agent")] {
        for (id, entry) in state[map].as_object().unwrap() {
            let (ws, name) = (&entry["workspace_id"], &entry["name"]);
            let mask = format!(
                "<{kind} {}/{}>",
                ws.as_str().unwrap(),
                name.as_str().unwrap()
            );
            ids.push((id.clone(), mask));
        }
    }
    ids
}

fn replace_all(
    text: &str,
    pattern: &str,
    mut with: impl FnMut(&regex::Captures) -> String,
) -> String {
    Regex::new(pattern)
        .unwrap()
        .replace_all(text, |c: &regex::Captures| with(c))
        .into_owned()
}

/// `state.json` with what is random or clock-dependent masked (see the module doc).
fn mask_state(state: &str, ids: &[(String, String)], fernet_key: &str) -> String {
    let mut text = state.replace(gate_bin(), "<aegis-gate>");
    for (id, mask) in ids {
        text = text.replace(id, mask);
    }
    text = replace_all(&text, r#""key_hash": "[0-9a-f]{64}""#, |_| {
        r#""key_hash": "<sha256 of a random key>""#.to_owned()
    });
    text = replace_all(&text, r#""at": [0-9]+"#, |_| {
        r#""at": "<unix time>""#.to_owned()
    });
    let fernet = fernet::Fernet::new(fernet_key).unwrap();
    text = replace_all(&text, "gAAAAA[0-9A-Za-z_=-]+", |c| {
        let plain = fernet.decrypt(&c[0]).unwrap();
        let shown = json!(format!("<fernet {}>", String::from_utf8(plain).unwrap()));
        let shown = shown.to_string();
        shown[1..shown.len() - 1].to_owned()
    });
    for map in ["connections", "agents"] {
        text = sort_entries(&text, map);
    }
    text
}

/// The pretty-printed top-level map `map` with its entries in order of their keys.
fn sort_entries(text: &str, map: &str) -> String {
    let open = format!("\n  \"{map}\": {{\n");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no {map} in {text}"))
        + open.len();
    let end = start + text[start..].find("\n  }").unwrap();
    let mut entries: Vec<Vec<&str>> = Vec::new();
    for line in text[start..end].split('\n') {
        if line.starts_with("    \"") {
            entries.push(Vec::new());
        }
        entries.last_mut().unwrap().push(line);
    }
    let mut entries: Vec<String> = entries
        .iter()
        .map(|lines| lines.join("\n").trim_end_matches(',').to_owned())
        .collect();
    entries.sort();
    format!("{}{}{}", &text[..start], entries.join(",\n"), &text[end..])
}

/// Each record's `event`, masked, one a line; the framing of every line checked on the way.
fn audit_events(trail: &str, kid: &str, ids: &[(String, String)]) -> String {
    let framing = Regex::new(concat!(
        r#"^\{"body":\{"at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z","#,
        r#""event":(\{.*\}),"kid":"([^"]*)","prev":"[0-9a-f]{64}","seq":([0-9]+)\},?"#,
        r#"("sig":"[A-Za-z0-9_-]{86}")?\}$"#
    ))
    .unwrap();
    let mut events = Vec::new();
    // Batches are signed on their last line: the trail ends on a signature.
    assert!(
        trail
            .lines()
            .last()
            .is_some_and(|l| l.contains(r#","sig":""#)),
        "{trail}"
    );
    for (n, line) in trail.lines().enumerate() {
        let parts = framing
            .captures(line)
            .unwrap_or_else(|| panic!("line {} is not framed as before: {line}", n + 1));
        assert_eq!(&parts[2], kid, "line {}", n + 1);
        assert_eq!(parts[3].parse::<usize>().unwrap(), n + 1, "line {}", n + 1);
        let mut event = parts[1].replace(gate_bin(), "<aegis-gate>");
        for (id, mask) in ids {
            event = event.replace(id, mask);
        }
        event = replace_all(&event, r#""ms":[0-9]+"#, |_| r#""ms":"<ms>""#.to_owned());
        event = replace_all(&event, r#""(created_at|expires_at)":"[^"]*""#, |c| {
            format!(r#""{}":"<time>""#, &c[1])
        });
        events.push(event);
    }
    let mut approvals: Vec<String> = Vec::new();
    let numbered: Vec<String> = events
        .iter()
        .map(|event| {
            replace_all(event, "apr_[0-9a-f]{16}", |c| {
                let n = match approvals.iter().position(|a| *a == c[0]) {
                    Some(n) => n,
                    None => {
                        approvals.push(c[0].to_owned());
                        approvals.len() - 1
                    }
                };
                format!("<approval {}>", n + 1)
            })
        })
        .collect();
    let mut ordered = numbered;
    put_held_calls_after_their_decisions(&mut ordered);
    ordered.iter().map(|e| format!("{e}\n")).collect()
}

/// Moves the record of each decided held call after the approval and admin records of its
/// decision (the three are written by two threads at once; see the module doc).
fn put_held_calls_after_their_decisions(events: &mut Vec<String>) {
    let is_decided = |e: &str| {
        e.contains(r#""type":"approval""#)
            && (e.contains(r#""status":"approved""#) || e.contains(r#""status":"denied""#))
    };
    let mut i = 0;
    while i < events.len() {
        if !is_decided(&events[i]) {
            i += 1;
            continue;
        }
        // The admin record of the decision follows its approval record.
        let admin = (i + 1..events.len())
            .find(|&j| events[j].contains(r#""type":"admin""#) && events[j].contains("/approvals/"))
            .unwrap_or_else(|| panic!("no admin record after {}", events[i]));
        let held = [i.wrapping_sub(1), i + 1, admin + 1]
            .into_iter()
            .find(|&j| {
                events.get(j).is_some_and(|e| {
                    e.contains(r#""type":"call""#) && e.contains(r#""verdict":"escalate""#)
                })
            })
            .unwrap_or_else(|| panic!("no held call's record next to {}", events[i]));
        let call = events.remove(held);
        let admin = if held < admin { admin - 1 } else { admin };
        events.insert(admin + 1, call);
        i = admin + 2;
    }
}

/// Compares `actual` with `tests/data/formats/NAME`, or rewrites that under `UPDATE_EXPECT=1`.
fn check(name: &str, actual: &str) {
    let path = repo_file("tests/data/formats").join(name);
    if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_EXPECT=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\nexpected: {:?}\nactual:   {:?}\n\
             whole actual text:\n{actual}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line),
        );
    }
}

#[test]
fn a_held_calls_record_goes_after_its_decision_whichever_thread_wrote_first() {
    let (pending, decided) = (
        r#"{"approval":{"status":"pending"},"type":"approval"}"#,
        r#"{"approval":{"status":"denied"},"type":"approval"}"#,
    );
    let admin = r#"{"path":"/api/v1/aegis/approvals/<approval 1>/deny","type":"admin"}"#;
    let call = r#"{"type":"call","verdict":"escalate"}"#;
    let next = r#"{"type":"call","verdict":"allow"}"#;
    let want = [pending, decided, admin, call, next];
    for written in [
        [pending, call, decided, admin, next],
        [pending, decided, call, admin, next],
        [pending, decided, admin, call, next],
    ] {
        let mut events: Vec<String> = written.iter().map(|e| (*e).to_owned()).collect();
        put_held_calls_after_their_decisions(&mut events);
        assert_eq!(events, want, "{written:?}");
    }
}

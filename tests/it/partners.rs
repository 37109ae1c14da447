//! Delegation through the binary: the gate's identity (`GET /identity`, `keys show`), and the
//! partner registry's rules (weak keys, kids owned by one partner, unknown workspaces, globs).

use crate::serve_api::Serve;
use crate::support::{gate_bin, TempDir};
use aegis_gate::delegation::paserk;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::process::Command;

fn partner_key(seed: u8) -> String {
    paserk::encode(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

fn partner(org: &str, kid: &str, seed: u8) -> Value {
    json!({
        "org_id": org,
        "keys": [{"kid": kid, "public_key": partner_key(seed)}],
        "workspace_id": "ws-1",
        "allow": ["ex.echo", "ex.get_*"],
        "deny": ["ex.get_env"],
        "rate": {"per_minute": 60, "burst": 5}
    })
}

#[test]
fn the_gate_shows_its_identity_over_rest_and_on_the_command_line() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--org-id", "org-b"]);
    let identity = serve.admin("GET", "/identity", None);
    assert_eq!(identity.status, 200, "{}", identity.body);
    let identity = identity.json();
    assert_eq!(identity["org_id"], "org-b");
    let key = &identity["keys"][0];
    assert!(
        paserk::decode(key["public_key"].as_str().unwrap()).is_ok(),
        "{key}"
    );
    let shown = Command::new(gate_bin())
        .args(["keys", "show", "--data-dir"])
        .arg(&serve.data)
        .output()
        .unwrap();
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown, identity);
    // No private key anywhere but its file.
    let state = std::fs::read_to_string(serve.data.join("state.json")).unwrap();
    assert!(state.contains("\"org_id\": \"org-b\""), "{state}");
    // Rotation needs serve stopped, then lists the new key first and keeps the old one.
    let refused = Command::new(gate_bin())
        .args(["keys", "rotate", "--data-dir"])
        .arg(&serve.data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let rotated = Command::new(gate_bin())
        .args(["keys", "rotate", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 2);
    assert_eq!(rotated["keys"][1], identity["keys"][0]);
    assert_eq!(rotated["org_id"], "org-b");
}

#[test]
fn partners_are_registered_only_when_every_rule_holds() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--org-id", "org-b"]);
    serve.setup("ws-1");
    let created = serve.admin("POST", "/partners", Some(partner("org-a", "a1", 4)));
    assert_eq!(created.status, 201, "{}", created.body);
    let status = |body: Value| serve.admin("POST", "/partners", Some(body)).status;
    assert_eq!(status(partner("org-a", "a9", 5)), 409, "same org twice");
    assert_eq!(
        status(partner("org-c", "a1", 5)),
        409,
        "a kid of another partner"
    );
    assert_eq!(
        status(partner("org-b", "b1", 5)),
        422,
        "this gate's own org id"
    );
    let mut weak = partner("org-c", "c1", 5);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    weak["keys"][0]["public_key"] = json!(format!(
        "k4.public.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, identity)
    ));
    let refused = serve.admin("POST", "/partners", Some(weak));
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("weak"), "{}", refused.body);
    let mut nowhere = partner("org-c", "c1", 5);
    nowhere["workspace_id"] = json!("ws-none");
    assert_eq!(status(nowhere), 422);
    let mut recursive = partner("org-c", "c1", 5);
    recursive["allow"] = json!(["ex.**"]);
    assert_eq!(status(recursive), 400);
    let mut stopped = partner("org-c", "c1", 5);
    stopped["rate"] = json!({"per_minute": 0, "burst": 1});
    assert_eq!(status(stopped), 422);
    let mut extra = partner("org-c", "c1", 5);
    extra["admin"] = json!(true);
    assert_eq!(status(extra), 400);
    let listed = serve.admin("GET", "/partners", None).json();
    assert_eq!(listed["partners"].as_array().unwrap().len(), 1, "{listed}");

    // A second key for rotation, then the first removed; then the partner.
    let added = serve.admin(
        "POST",
        "/partners/org-a/keys",
        Some(
            json!({"kid": "a2", "public_key": partner_key(6), "not_after": "2099-01-01T00:00:00Z"}),
        ),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.json()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        serve
            .admin("DELETE", "/partners/org-a/keys/a1", None)
            .status,
        200
    );
    assert_eq!(
        serve
            .admin("DELETE", "/partners/org-a/keys/a1", None)
            .status,
        404
    );
    let kept = serve.admin("GET", "/partners/org-a", None).json();
    assert_eq!(kept["keys"][0]["kid"], "a2", "{kept}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(serve.data.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["partners"]["org-a"]["keys"][0]["kid"], "a2");
    assert_eq!(serve.admin("DELETE", "/partners/org-a", None).status, 200);
    assert_eq!(serve.admin("GET", "/partners/org-a", None).status, 404);
}

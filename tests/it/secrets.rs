//! Credentials at rest through the binary: connection secrets are Fernet-encrypted in the data
//! dir, reach their child decrypted and appear nowhere else (answers, log, files); `rotate-key`
//! re-encrypts them under a new key.

use crate::support::http::Endpoint;
use crate::support::{
    assert_success, gate, stdio_call, text, unix_now, Serve, TempDir, ADMIN, SECRET,
};
use serde_json::json;
use std::path::{Path, PathBuf};

#[test]
fn secrets_are_encrypted_at_rest_reach_the_child_and_appear_nowhere_else() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let listed = serve.admin("GET", "/connections?workspace_id=ws-1", None);
    assert!(
        listed.body.contains("MY_SECRET") && !listed.body.contains(SECRET),
        "{}",
        listed.body
    );
    let client = serve.client("ws-1", &key);
    let env_of = |name: &str| text(&client.call("ex.get_env", json!({ "name": name })));
    assert_eq!(env_of("MY_SECRET"), SECRET);
    assert_eq!(env_of("AEGIS_ADMIN_TOKEN"), "(unset)");
    assert_eq!(env_of("AEGIS_TEST_GATE_ONLY"), "(unset)");
    let data_dir = serve.data.clone();
    let log = serve.log();
    assert!(serve.stop().success());
    assert!(
        !log.contains(SECRET) && !log.contains(ADMIN),
        "a secret reached the log"
    );
    for entry in walk(&data_dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
            || bytes.windows(ADMIN.len()).any(|w| w == ADMIN.as_bytes());
        assert!(!found, "a secret is in {}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn rotate_key_reencrypts_every_secret_and_drops_the_old_key() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    let data = serve.data.clone();
    let data_arg = data.to_str().unwrap().to_owned();
    let rotate = || {
        gate(&["rotate-key", "--data-dir", &data_arg])
            .output()
            .unwrap()
    };
    let refused = rotate();
    assert_ne!(
        refused.status.code(),
        Some(0),
        "rotation under a running serve"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it first"));
    assert!(serve.stop().success());
    let old_key = std::fs::read_to_string(data.join("fernet.key")).unwrap();
    let old_state = std::fs::read_to_string(data.join("state.json")).unwrap();
    let out = rotate();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 secrets re-encrypted"));
    let new_key = std::fs::read_to_string(data.join("fernet.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!new_key.contains(','), "the old key is dropped");
    assert_ne!(
        std::fs::read_to_string(data.join("state.json")).unwrap(),
        old_state
    );
    // The secret still reaches the child, decrypted with the new key alone.
    let last = stdio_call(
        &data,
        "ws-1",
        &[],
        "ex.get_env",
        json!({"name": "MY_SECRET"}),
    );
    assert_eq!(text(&last), SECRET);
}

#[test]
fn rotate_key_also_reencrypts_header_values_and_introspection_credentials() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    // A remote connection with a header value, in a workspace not running (its server is
    // nowhere: only starting it, which decrypts the header, matters here).
    let remote = serve.connect(
        "ws-r",
        json!({"name": "remote1", "kind": "http", "url": "http://127.0.0.1:9/mcp",
               "headers": {"X-Api-Key": "header-secret"}}),
    );
    assert_eq!(remote.status, 201, "{}", remote.body);
    // An introspection endpoint that insists on the gate's credential.
    let provider = Endpoint::start(
        "/introspect",
        None,
        Box::new(|head, body| {
            let authorized = head
                .lines()
                .any(|l| l.trim() == "Authorization: Basic cm90YXRl");
            if authorized && body.starts_with("token=opaque-good&") {
                json!({"active": true, "sub": "bob", "aud": "aegis", "exp": unix_now() + 300})
            } else {
                json!({"active": false})
            }
            .to_string()
        }),
    );
    let settings = json!({"introspection": {"url": provider.url, "audience": "aegis",
        "authorization": "Basic cm90YXRl"}});
    let set = serve.admin("PUT", "/workspaces/ws-1/identity", Some(settings));
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(serve.stop().success());

    let data_arg = dir.path().join("data").to_str().unwrap().to_owned();
    let out = gate(&["rotate-key", "--data-dir", &data_arg])
        .output()
        .unwrap();
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("3 secrets re-encrypted"), "{said}");
    let key = std::fs::read_to_string(dir.path().join("data/fernet.key")).unwrap();
    assert!(!key.contains(','), "the old key is dropped");

    // With the new key alone: the header decrypts (the remote connection starts) and the
    // introspection credential does (the provider accepts the gate's request).
    let serve = Serve::start(dir.path());
    let started = serve.admin("POST", "/workspaces/ws-r/activate", None);
    assert_eq!(started.status, 200, "{}", started.body);
    let client = serve.client("ws-1", "opaque-good");
    assert_eq!(client.list().status, 200);
    assert!(serve.stop().success());
}

//! Credentials at rest through the binary: connection secrets are Fernet-encrypted in the data
//! dir, reach their child decrypted and appear nowhere else (answers, log, files); `rotate-key`
//! re-encrypts them under a new key.

use crate::support::{assert_success, gate, stdio_call, text, Serve, TempDir, ADMIN, SECRET};
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

//! Replicas of serve sharing their state through Valkey/Redis (`serve --store`, issue #18): a
//! change made through one replica is run by the others, the store going away and coming back,
//! and what a replica needs from its operator (the same Fernet keys and admin token, the
//! store's password from the environment).

use crate::support::redis::Redis;
use crate::support::replicas::{replica_with_keys, Replicas, FERNET_KEY};
use crate::support::{
    assert_success, gate, initialize_request, retry, text, wait_exit, Serve, TempDir, ADMIN, WAIT,
};
use serde_json::json;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(20);

/// The readiness status of `node`.
fn ready(node: &Serve) -> u16 {
    node.get("/readyz").map(|(status, _)| status).unwrap_or(0)
}

/// A session of agent `key` on `node`, once `node` knows the agent (it may be a replica that
/// has not applied the agent's creation yet).
fn session_on(node: &Serve, ws: &str, key: &str) -> String {
    retry(EVERY, || {
        let opened = node.mcp(ws, key, None, &initialize_request());
        match opened.header("Mcp-Session-Id") {
            Some(id) if opened.status == 200 => Ok(id),
            _ => Err(format!("{}: {}", opened.status, opened.body)),
        }
    })
}

/// `serve --store URL` on `data` with `env` (and no admin token unless `env` gives one), which
/// must stop by itself: its exit status and what it said on stderr.
fn start_refused(url: &str, data: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut child = gate(&["serve", "--listen", "127.0.0.1:0", "--store", url])
        .arg("--data-dir")
        .arg(data)
        .env_remove("AEGIS_ADMIN_TOKEN")
        .env_remove("AEGIS_CA_FILE")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, WAIT, || "serve did not stop".into());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    (status, err)
}

#[test]
fn a_connection_registered_through_one_replica_is_served_by_the_other() {
    let replicas = Replicas::start(2);
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let key = a.setup("team");
    // B starts the workspace and its connection from the shared state: the agent created on A
    // opens a session on B and calls the tool there.
    let session = session_on(b, "team", &key);
    let answer = retry(EVERY, || {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": "from b"}}});
        let called = b.mcp("team", &key, Some(&session), &call);
        let body = called.json();
        if body.get("result").is_some() {
            Ok(body)
        } else {
            Err(called.body)
        }
    });
    assert_eq!(text(&answer), "from b");
    // B's view of the connection is its own child, healthy.
    let view = b.admin("GET", "/workspaces/team", None).json();
    assert_eq!(
        view["connections"][0]["health"]["status"], "healthy",
        "{view}"
    );

    // Removed through B: A stops the child.
    let id = view["connections"][0]["id"].as_str().unwrap().to_owned();
    let removed = b.admin("DELETE", &format!("/connections/{id}"), None);
    assert!(removed.status < 300, "{}", removed.body);
    retry(EVERY, || {
        let client = a.client("team", &key);
        let list = client.list().json();
        let names = crate::support::listed_names(&list);
        if names.iter().any(|n| n.starts_with("ex.")) {
            Err(format!("A still lists {names:?}"))
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_change_made_over_another_replicas_unseen_change_runs_both() {
    // As a load balancer spreads an operator's requests: the connection is added on A, the
    // workspace activated on B, and the agent created on A before A has read B's activation.
    // A's write takes the activation in with it; A must run the workspace all the same.
    let replicas = Replicas::start(2);
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let conn = a.connect(
        "team",
        json!({"name": "ex", "command": [crate::support::gate_bin(), "example-server"]}),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    b.activate("team");
    let key = a.agent("team", "bot")["key"].as_str().unwrap().to_owned();
    for node in [a, b] {
        let session = session_on(node, "team", &key);
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": "runs"}}});
        let answer = retry(EVERY, || {
            let called = node.mcp("team", &key, Some(&session), &call);
            match called.json().get("result") {
                Some(_) => Ok(called.json()),
                None => Err(format!("{}\n{}", called.body, node.log())),
            }
        });
        assert_eq!(text(&answer), "runs");
    }
}

#[test]
fn a_policy_set_through_one_replica_holds_on_the_other() {
    let replicas = Replicas::start(2);
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let key = a.setup("team");
    let policy = json!({"default": "allow", "rules": [{"match": "ex.echo", "verdict": "deny"}]});
    let set = a.admin("PUT", "/workspaces/team/policy", Some(policy));
    assert_eq!(set.status, 200, "{}", set.body);
    let session = session_on(b, "team", &key);
    retry(EVERY, || {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": "x"}}});
        let called = b.mcp("team", &key, Some(&session), &call);
        let body = called.json();
        match body.get("error") {
            Some(e) if e["message"].as_str().unwrap_or("").contains("denied by") => Ok(()),
            _ => Err(called.body),
        }
    });
}

#[test]
fn without_the_store_changes_and_new_sessions_wait_while_running_sessions_go_on() {
    let mut replicas = Replicas::start(2);
    let key = replicas.nodes[0].setup("team");
    let running = {
        let a = &replicas.nodes[0];
        retry(EVERY, || match ready(&replicas.nodes[1]) {
            200 => Ok(()),
            s => Err(format!("B not ready: {s}")),
        });
        a.client("team", &key).session
    };
    replicas.redis.stop();
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    for node in [a, b] {
        retry(EVERY, || match node.get("/readyz") {
            Ok((503, body)) if body.contains("store_unavailable") => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }
    // A session opened before goes on: its calls need nothing from the store.
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "ex.echo", "arguments": {"message": "still here"}}});
    let answer = a.mcp("team", &key, Some(&running), &call);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(text(&answer.json()), "still here");
    // A new session, and a change, are refused with the reason.
    let opened = a.mcp("team", &key, None, &initialize_request());
    assert_eq!(opened.status, 503, "{}", opened.body);
    assert!(opened.body.contains("shared store"), "{}", opened.body);
    let change = b.admin(
        "POST",
        "/agents",
        Some(json!({"workspace_id": "team", "name": "x"})),
    );
    assert_eq!(change.status, 503, "{}", change.body);
    assert!(change.body.contains("store_unavailable"), "{}", change.body);

    // The store comes back: both replicas are ready again without a restart, and a change made
    // through B reaches A.
    replicas.redis.start_again();
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    for node in [a, b] {
        retry(EVERY, || match ready(node) {
            200 => Ok(()),
            s => Err(format!("not ready again: {s}")),
        });
    }
    let agent = b.agent("team", "later");
    let later = agent["key"].as_str().unwrap();
    session_on(a, "team", later);
}

#[test]
fn a_replica_with_other_fernet_keys_does_not_start() {
    let replicas = Replicas::start(1);
    replicas.nodes[0].setup("team");
    let dir = TempDir::new();
    let other = "z4X5Qk9cLyfM6Dm2mY0aR0lE3tJ4bTn8kG1oP7sV2uI=";
    assert_ne!(other, FERNET_KEY);
    let (_, err) = start_refused(
        &replicas.redis.url(),
        dir.path(),
        &[("AEGIS_ADMIN_TOKEN", ADMIN), ("AEGIS_FERNET_KEYS", other)],
    );
    assert!(err.contains("Fernet keys"), "{err}");
    assert!(err.contains("same keys"), "{err}");
}

#[test]
fn a_replica_needs_the_operators_admin_token_and_takes_the_password_from_the_environment() {
    let dir = TempDir::new();
    let redis = Redis::start_with_password(dir.path(), Some("st0re-pass"));
    let run = |env: &[(&str, &str)], url: &str| {
        let data = TempDir::new();
        let mut env = env.to_vec();
        env.push(("AEGIS_FERNET_KEYS", FERNET_KEY));
        start_refused(url, data.path(), &env)
    };
    let url = redis.url();
    let (_, err) = run(&[("AEGIS_STORE_PASSWORD", "st0re-pass")], &url);
    assert!(err.contains("AEGIS_ADMIN_TOKEN_FILE"), "{err}");

    let with_password = url.replace("redis://", "redis://default:st0re-pass@");
    let (status, err) = run(&[("AEGIS_ADMIN_TOKEN", ADMIN)], &with_password);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("AEGIS_STORE_PASSWORD"), "{err}");
    assert!(!err.contains("st0re-pass"), "{err}");

    let (status, err) = run(&[("AEGIS_ADMIN_TOKEN", ADMIN)], &url);
    assert!(!status.success());
    assert!(
        err.contains("unreachable") || err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("st0re-pass"), "{err}");

    // With the password from the environment and the token from a file, it serves.
    let token_file = crate::support::write_file(dir.path(), "admin-token", &format!("{ADMIN}\n"));
    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir).unwrap();
    let node = Serve::start_with_env(
        &node_dir,
        &["--store", &url],
        &[
            ("AEGIS_STORE_PASSWORD", "st0re-pass"),
            ("AEGIS_FERNET_KEYS", FERNET_KEY),
            ("AEGIS_ADMIN_TOKEN_FILE", token_file.to_str().unwrap()),
        ],
    );
    assert_eq!(ready(&node), 200, "{}", node.log());
}

#[test]
fn a_store_that_lost_its_data_is_not_written_over() {
    let mut replicas = Replicas::start(2);
    let key = replicas.nodes[0].setup("team");
    session_on(&replicas.nodes[1], "team", &key);
    let running = session_on(&replicas.nodes[0], "team", &key);
    replicas.redis.lose_everything();
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    for node in [a, b] {
        retry(EVERY, || match node.get("/readyz") {
            Ok((503, body)) if body.contains("lost data") => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }
    // A change would replace everyone's state with the store's nothing: refused, and the
    // replicas keep serving what they run.
    let change = a.admin(
        "POST",
        "/agents",
        Some(json!({"workspace_id": "team", "name": "x"})),
    );
    assert_eq!(change.status, 503, "{}", change.body);
    assert!(change.body.contains("lost data"), "{}", change.body);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "ex.echo", "arguments": {"message": "on"}}});
    let answer = a.mcp("team", &key, Some(&running), &call);
    assert_eq!(text(&answer.json()), "on", "{}", answer.body);
}

#[test]
fn rotate_key_with_store_re_encrypts_the_shared_secrets_for_every_replica() {
    let replicas = Replicas::start(1);
    replicas.nodes[0].setup("team");
    let new_key = "z4X5Qk9cLyfM6Dm2mY0aR0lE3tJ4bTn8kG1oP7sV2uI=";
    let dir = TempDir::new();
    let out = gate(&["rotate-key", "--store"])
        .arg(replicas.redis.url())
        .arg("--data-dir")
        .arg(dir.path())
        .env("AEGIS_FERNET_KEYS", format!("{new_key},{FERNET_KEY}"))
        .output()
        .unwrap();
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 secrets re-encrypted"), "{said}");
    // A replica given the new key alone starts (the key check was re-encrypted too) and runs
    // the connection, whose secret it decrypts.
    let node = replica_with_keys(&dir.path().join("new"), &replicas.redis.url(), &[], new_key);
    retry(EVERY, || {
        let view = node.admin("GET", "/workspaces/team", None).json();
        match view["connections"][0]["health"]["status"].as_str() {
            Some("healthy") => Ok(()),
            _ => Err(view.to_string()),
        }
    });
}

#[test]
fn a_tool_approved_through_one_replica_is_served_by_the_other() {
    let replicas = Replicas::start(2);
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let key = a.setup("team");
    let listed = |node: &Serve, session: &str| {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        crate::support::listed_names(&node.mcp("team", &key, Some(session), &list).json())
    };
    // The poisoned tool is held on both replicas (the same pin, judged once per replica).
    let on_a = session_on(a, "team", &key);
    let on_b = session_on(b, "team", &key);
    retry(EVERY, || match listed(b, &on_b) {
        names if names.contains(&"ex.echo".to_owned()) => Ok(()),
        names => Err(format!("{names:?}")),
    });
    assert!(!listed(a, &on_a).contains(&"ex.poisoned_add".to_owned()));
    assert!(!listed(b, &on_b).contains(&"ex.poisoned_add".to_owned()));
    let approved = b.admin(
        "POST",
        "/workspaces/team/tools/ex.poisoned_add/approve",
        None,
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    // A's merger reads the shared pins again and lists it.
    retry(EVERY, || match listed(a, &on_a) {
        names if names.contains(&"ex.poisoned_add".to_owned()) => Ok(()),
        names => Err(format!("A lists {names:?}")),
    });
    // The operator's command line reads the same pins.
    let dir = TempDir::new();
    let out = gate(&["tools", "list", "--workspace", "team", "--store"])
        .arg(replicas.redis.url())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_success(&out);
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing
        .lines()
        .find(|l| l.contains("ex.poisoned_add"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("approved"), "{listing}");
}

#[test]
fn a_store_over_tls_is_reached_with_the_operators_ca_and_refused_without_it() {
    let dir = TempDir::new();
    let cert = crate::support::repo_file("tests/data/identity/tls_test_cert.pem");
    let key = crate::support::repo_file("tests/data/identity/tls_test_key.pem");
    let redis = Redis::start_tls(dir.path(), &cert, &key);
    assert!(redis.url().starts_with("rediss://"));
    // The self-signed certificate is no public CA's: without AEGIS_CA_FILE the start fails.
    let data = TempDir::new();
    let (_, err) = start_refused(
        &redis.url(),
        data.path(),
        &[
            ("AEGIS_ADMIN_TOKEN", ADMIN),
            ("AEGIS_FERNET_KEYS", FERNET_KEY),
        ],
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    // With it, two replicas share their state over TLS.
    let ca = cert.to_str().unwrap();
    let start = |name: &str| {
        let node_dir = dir.path().join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        Serve::start_with_env(
            &node_dir,
            &["--store", &redis.url()],
            &[("AEGIS_FERNET_KEYS", FERNET_KEY), ("AEGIS_CA_FILE", ca)],
        )
    };
    let (a, b) = (start("a"), start("b"));
    let key = a.setup("team");
    let session = session_on(&b, "team", &key);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "ex.echo", "arguments": {"message": "over tls"}}});
    let answer = retry(EVERY, || {
        let body = b.mcp("team", &key, Some(&session), &call).json();
        match body.get("result") {
            Some(_) => Ok(body),
            None => Err(body.to_string()),
        }
    });
    assert_eq!(text(&answer), "over tls");
}

#[test]
fn a_second_replica_with_a_copied_signing_key_does_not_start() {
    let replicas = Replicas::start(1);
    let dir = TempDir::new();
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let key = replicas.nodes[0].data.join("signing.key");
    std::fs::copy(&key, copy.join("signing.key")).unwrap();
    let (_, err) = start_refused(
        &replicas.redis.url(),
        &copy,
        &[
            ("AEGIS_ADMIN_TOKEN", ADMIN),
            ("AEGIS_FERNET_KEYS", FERNET_KEY),
        ],
    );
    assert!(err.contains("signing key id"), "{err}");
    assert!(err.contains("data dir of its own"), "{err}");
}

#[test]
fn doctor_checks_a_replica_against_its_store() {
    let replicas = Replicas::start(1);
    replicas.nodes[0].setup("team");
    let dir = TempDir::new();
    let doctor = |keys: &str| {
        gate(&["doctor", "--store"])
            .arg(replicas.redis.url())
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--allow-command", crate::support::gate_bin()])
            .env("AEGIS_ADMIN_TOKEN", ADMIN)
            .env("AEGIS_FERNET_KEYS", keys)
            .output()
            .unwrap()
    };
    let out = doctor(FERNET_KEY);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("its state (version"), "{said}");
    assert!(said.contains("open the shared store's key check"), "{said}");
    assert!(
        said.contains("connection \"ex\" of workspace \"team\": its secrets decrypt"),
        "{said}"
    );
    let out = doctor("z4X5Qk9cLyfM6Dm2mY0aR0lE3tJ4bTn8kG1oP7sV2uI=");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("do not open the shared store's secrets"),
        "{said}"
    );
}

#[test]
fn a_replica_killed_holding_the_state_lock_holds_the_others_up_for_seconds_not_longer() {
    let replicas = Replicas::start(1);
    let node = &replicas.nodes[0];
    node.setup("team");
    // What a replica killed between its lock and its write leaves: the lock, with its whole
    // expiry (the gate's LOCK_TTL, 5 s).
    let took = replicas.redis.command(&[
        "SET",
        "aegis:state:lock",
        "dead-replica",
        "NX",
        "PX",
        "5000",
    ]);
    assert_eq!(took, "+OK");
    // A change waits for the expiry, then is made: 201, not a refusal.
    let made = node.admin(
        "POST",
        "/agents",
        Some(json!({"workspace_id": "team", "name": "late"})),
    );
    assert_eq!(made.status, 201, "{}", made.body);
}

#[test]
fn a_key_rotation_restarts_no_child() {
    let dir = TempDir::new();
    let redis = Redis::start(dir.path());
    let new_key = "z4X5Qk9cLyfM6Dm2mY0aR0lE3tJ4bTn8kG1oP7sV2uI=";
    // The replica runs with the new key first and the old one after it, as the rotation asks.
    let keys = format!("{new_key},{FERNET_KEY}");
    let node = replica_with_keys(&dir.path().join("a"), &redis.url(), &[], &keys);
    node.setup("team");
    let pid = |node: &Serve| {
        retry(EVERY, || {
            let view = node.admin("GET", "/workspaces/team", None).json();
            match view["connections"][0]["health"]["pid"].as_u64() {
                Some(pid) => Ok(pid),
                None => Err(view.to_string()),
            }
        })
    };
    let before = pid(&node);
    let runs = |node: &Serve| node.log().matches(")) runs").count();
    let ran = runs(&node);
    let out = gate(&["rotate-key", "--store"])
        .arg(redis.url())
        .arg("--data-dir")
        .arg(dir.path().join("rotator"))
        .env("AEGIS_FERNET_KEYS", &keys)
        .output()
        .unwrap();
    assert_success(&out);
    // The replica runs the rotated state (new ciphertext, the same secrets)...
    retry(EVERY, || match runs(&node) > ran {
        true => Ok(()),
        false => Err("the rotation is not run yet".to_owned()),
    });
    // ...without restarting the child it started from the same values.
    assert_eq!(pid(&node), before, "{}", node.log());
}

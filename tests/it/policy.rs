//! Workspace policies through the binary: ordered rules over tool names, per agent, applied live;
//! a refusal names the rule.

use crate::support::http::{header, receive_one};
use crate::support::{error_of, example, gate, gate_bin, retry, Gate, Serve, TempDir, ADMIN};
use serde_json::{json, Value};
use std::time::Duration;

/// `PUT /workspaces/ws-1/policy`; the status.
fn put_policy(serve: &Serve, policy: Value) -> u16 {
    serve
        .admin("PUT", "/workspaces/ws-1/policy", Some(policy))
        .status
}

#[test]
fn a_policy_refuses_by_rule_and_agent_and_applies_at_once() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let other = serve.agent("ws-1", "other");
    let other_key = other["key"].as_str().unwrap().to_owned();
    let other_id = other["id"].as_str().unwrap().to_owned();
    let client = serve.client("ws-1", &key);
    let other_client = serve.client("ws-1", &other_key);
    // No policy: everything allowed.
    assert_eq!(
        serve.admin("GET", "/workspaces/ws-1/policy", None).json()["default"],
        "allow"
    );
    let add = json!({"a": 1, "b": 2});
    assert!(client.call("ex.add", add.clone())["result"].is_object());

    let policy = json!({"default": "allow", "rules": [
        {"match": "ex.get_*", "verdict": "deny"},
        {"match": "ex.add", "agents": [other_id], "verdict": "allow"},
        {"match": "ex.add", "verdict": "escalate"}], "webhooks": []});
    let set = serve.admin("PUT", "/workspaces/ws-1/policy", Some(policy.clone()));
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        serve.admin("GET", "/workspaces/ws-1/policy", None).json(),
        policy
    );

    let (code, message) = error_of(&client.call("ex.get_env", json!({"name": "X"})));
    assert_eq!(code, -32013);
    assert!(message.contains("policy rule 1 (ex.get_*)"), "{message}");
    // Rule 2 lets the named agent add; everyone else meets rule 3, which needs a person.
    assert!(other_client.call("ex.add", add.clone())["result"].is_object());
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        let held = serve.pending_approval();
        assert_ne!(held["agent"], json!(other_id), "{held}");
        let id = held["id"].as_str().unwrap();
        assert_eq!(
            serve
                .admin("POST", &format!("/approvals/{id}/deny"), None)
                .status,
            200
        );
        assert_eq!(error_of(&call.join().unwrap()).0, -32013);
    });
    assert!(client.call("ex.echo", json!({"message": "hi"}))["result"].is_object());

    // Bad policies change nothing.
    for bad in [
        json!({"rules": [{"match": "ex.**", "verdict": "deny"}]}),
        json!({"rules": [{"match": "ex.add", "verdict": "maybe"}]}),
        json!({"default": "allow", "unknown": true}),
    ] {
        assert_eq!(put_policy(&serve, bad), 400);
    }
    assert_eq!(put_policy(&serve, json!({"webhooks": ["ftp://x"]})), 422);
    assert_eq!(
        serve
            .admin("PUT", "/workspaces/nope/policy", Some(json!({})))
            .status,
        404
    );
    assert_eq!(
        serve.admin("GET", "/workspaces/ws-1/policy", None).json(),
        policy
    );

    // It is on disk, so a restart keeps it.
    let data = serve.data.clone();
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["workspaces"]["ws-1"]["policy"], policy);
    assert!(serve.stop().success());
    let again = Serve::start(dir.path());
    let client = again.client("ws-1", &key);
    let (code, _) = error_of(&client.call("ex.get_env", json!({"name": "X"})));
    assert_eq!(
        code, -32013,
        "the policy is applied when the workspace starts again"
    );
}

#[test]
fn an_escalated_call_waits_for_a_person_who_approves_or_denies_it() {
    use base64::Engine;
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    let (hook, received) = receive_one("/hook");
    let policy = json!({"rules": [{"match": "ex.add", "verdict": "escalate"}], "webhooks": [hook]});
    assert_eq!(put_policy(&serve, policy), 200);
    let add = json!({"a": 40, "b": 2});

    // Approved: the held call completes with the server's own answer.
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        let held = serve.pending_approval();
        assert_eq!(held["tool"], "ex.add");
        assert_eq!(held["preview"]["a"], "number");
        let approved = serve.admin(
            "POST",
            &format!("/approvals/{}/approve", held["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(approved.status, 200, "{}", approved.body);
        let answer = call.join().unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "42", "{answer}");
        let again = serve.admin(
            "POST",
            &format!("/approvals/{}/deny", held["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(again.status, 409);
    });
    // The webhook got a notice signed with the gate's key.
    let (head, body) = received.join().unwrap();
    let signature = header(&head, "aegis-signature").unwrap_or_default();
    let identity = serve.admin("GET", "/identity", None).json();
    let public =
        aegis_gate::delegation::paserk::decode(identity["keys"][0]["public_key"].as_str().unwrap())
            .unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&signature)
        .unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&sig.try_into().unwrap());
    assert!(
        public.verify_strict(body.as_bytes(), &sig).is_ok(),
        "{body}"
    );
    assert!(body.contains("\"status\":\"pending\""), "{body}");

    // Denied from the command line: the agent is told, the server never sees the call.
    let cli = |args: &[&str]| {
        gate(&["approvals"])
            .args(args)
            .args(["--url", &format!("http://{}", serve.addr)])
            .env("AEGIS_ADMIN_TOKEN", ADMIN)
            .output()
            .unwrap()
    };
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        let held = serve.pending_approval();
        let id = held["id"].as_str().unwrap();
        let listed = cli(&["list"]);
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains(id),
            "{listed:?}"
        );
        let denied = cli(&["deny", id]);
        assert!(denied.status.success(), "{denied:?}");
        assert!(
            !cli(&["deny", id]).status.success(),
            "a second decision is refused"
        );
        let (code, message) = error_of(&call.join().unwrap());
        assert_eq!(code, -32013);
        assert!(message.contains("denied by a person"), "{message}");
    });
}

#[test]
fn an_escalated_call_expires_and_the_number_held_is_bounded() {
    let serve = Serve::in_temp(&["--max-held-calls", "1"]);
    let client = serve.setup_client("ws-1");
    let second = serve.client("ws-1", &client.key);
    // A receiver that is down: deliveries fail and are retried; nothing else waits for them.
    let policy = json!({"rules": [{"match": "ex.add", "verdict": "escalate"}],
        "approval_timeout_s": 2, "webhooks": ["http://127.0.0.1:9/hook"]});
    assert_eq!(put_policy(&serve, policy), 200);
    let add = json!({"a": 1, "b": 2});
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        serve.pending_approval();
        // One is held: a second is refused at once.
        let (code, message) = error_of(&second.call("ex.add", add.clone()));
        assert_eq!(code, -32003, "{message}");
        // Nobody decides: the first expires (the policy gives it 2 s).
        let (code, message) = error_of(&call.join().unwrap());
        assert_eq!(code, -32013);
        assert!(message.contains("not approved in time"), "{message}");
    });
    let list = serve.admin("GET", "/approvals", None).json();
    assert_eq!(list["approvals"][0]["status"], "expired", "{list}");
    serve.assert_logged("webhook http://127.0.0.1:9/hook");
}

#[test]
fn a_stdio_gate_applies_its_config_policy_to_its_configured_agent() {
    let policy = json!({"rules": [
        {"match": "ex.add", "agents": ["dev"], "verdict": "deny"},
        {"match": "ex.echo", "verdict": "escalate"}]});
    let mut gate = Gate::ready(
        json!({"ex": example(&[])}),
        json!({"agent": "dev", "policy": policy}),
    );
    let (code, message) = error_of(&gate.call("ex.add", json!({"a": 1, "b": 2})));
    assert_eq!(code, -32013);
    assert!(message.contains("policy rule 1 (ex.add)"), "{message}");
    // Escalation needs approvals, which stdio does not keep: refused, never run.
    let (code, message) = error_of(&gate.call("ex.echo", json!({"message": "hi"})));
    assert_eq!(code, -32013);
    assert!(message.contains("keeps no approvals"), "{message}");
    assert!(gate.call("ex.get_env", json!({"name": "X"}))["result"].is_object());
}

#[test]
fn annotation_rules_apply_only_to_tools_of_trusted_servers() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let un = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-1", "name": "un",
            "command": [gate_bin(), "example-server"]})),
    );
    assert_eq!(un.status, 201, "{}", un.body);
    let ex = serve
        .admin("GET", "/connections?workspace_id=ws-1", None)
        .json()["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ex")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = serve.admin(
        "PATCH",
        &format!("/connections/{ex}"),
        Some(json!({"trusted": true})),
    );
    assert_eq!(patched.json()["trusted"], true, "{}", patched.body);
    let policy = json!({"rules": [{"match": "*.*", "annotations": {"destructiveHint": true}, "verdict": "deny"}]});
    assert_eq!(put_policy(&serve, policy), 200);
    let client = serve.client("ws-1", &key);
    // `fail` claims destructiveHint on both servers; only the trusted one's claim counts.
    let call_until_served = |tool: &str| {
        retry(Duration::from_millis(50), || {
            let answer = client.call(tool, json!({}));
            match answer["error"]["code"] != -32002 && answer["error"]["code"] != -32602 {
                true => Ok(answer),
                false => Err(format!("{tool}: {answer}")),
            }
        })
    };
    let (code, message) = error_of(&call_until_served("ex.fail"));
    assert_eq!(code, -32013, "{message}");
    assert!(message.contains("policy rule 1"), "{message}");
    let untrusted = call_until_served("un.fail");
    assert_eq!(untrusted["result"]["isError"], true, "{untrusted}");
}

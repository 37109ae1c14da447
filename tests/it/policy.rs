//! Workspace policies through the binary: ordered rules over tool names, per agent, applied live;
//! a refusal names the rule.

use crate::serve_api::Serve;
use crate::support::TempDir;
use serde_json::{json, Value};

fn error_of(answer: &Value) -> (i64, String) {
    (
        answer["error"]["code"].as_i64().unwrap_or(0),
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn a_policy_refuses_by_rule_and_agent_and_applies_at_once() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let other = serve.admin(
        "POST",
        "/agents",
        Some(json!({"workspace_id": "ws-1", "name": "other"})),
    );
    let other_key = other.json()["key"].as_str().unwrap().to_owned();
    let other_id = other.json()["id"].as_str().unwrap().to_owned();
    let session = serve.session("ws-1", &key);
    let other_session = serve.session("ws-1", &other_key);
    // No policy: everything allowed.
    assert_eq!(
        serve.admin("GET", "/workspaces/ws-1/policy", None).json()["default"],
        "allow"
    );
    let add = json!({"a": 1, "b": 2});
    assert!(serve.call("ws-1", &key, &session, "ex.add", add.clone())["result"].is_object());

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

    let (code, message) =
        error_of(&serve.call("ws-1", &key, &session, "ex.get_env", json!({"name": "X"})));
    assert_eq!(code, -32013);
    assert!(message.contains("policy rule 1 (ex.get_*)"), "{message}");
    // Rule 2 lets the named agent add; everyone else meets rule 3, which needs a person.
    assert!(
        serve.call("ws-1", &other_key, &other_session, "ex.add", add.clone())["result"].is_object()
    );
    let (code, message) = error_of(&serve.call("ws-1", &key, &session, "ex.add", add.clone()));
    assert_eq!(code, -32013);
    assert!(
        message.contains("approval") && message.contains("rule 3"),
        "{message}"
    );
    assert!(
        serve.call("ws-1", &key, &session, "ex.echo", json!({"message": "hi"}))["result"]
            .is_object()
    );

    // Bad policies change nothing.
    for bad in [
        json!({"rules": [{"match": "ex.**", "verdict": "deny"}]}),
        json!({"rules": [{"match": "ex.add", "verdict": "maybe"}]}),
        json!({"default": "allow", "unknown": true}),
    ] {
        assert_eq!(
            serve
                .admin("PUT", "/workspaces/ws-1/policy", Some(bad))
                .status,
            400
        );
    }
    assert_eq!(
        serve
            .admin(
                "PUT",
                "/workspaces/ws-1/policy",
                Some(json!({"webhooks": ["ftp://x"]}))
            )
            .status,
        422
    );
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
    let session = again.session("ws-1", &key);
    let (code, _) =
        error_of(&again.call("ws-1", &key, &session, "ex.get_env", json!({"name": "X"})));
    assert_eq!(
        code, -32013,
        "the policy is applied when the workspace starts again"
    );
}

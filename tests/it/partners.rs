//! Delegation through the binary: the gate's identity (`GET /identity`, `keys show`), the partner
//! registry's rules (weak keys, kids owned by one partner, unknown workspaces, globs), and inbound
//! delegated calls: what is granted is served, every bad token is refused with one generic error
//! per class, and the rate limit answers 429 with `retry_after`.

use crate::support::http::Response;
use crate::support::partner::{call_body, partner, partner_key, post, OrgA};
use crate::support::{
    assert_success, gate, initialize_request, listed_names, retry, settings_file, unix_now, Serve,
    TempDir,
};
use aegis_gate::delegation::paserk;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

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
    let keys = |action: &str, data: &Path| {
        gate(&["keys", action, "--data-dir"])
            .arg(data)
            .output()
            .unwrap()
    };
    let shown = keys("show", &serve.data);
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown, identity);
    // No private key anywhere but its file.
    let state = std::fs::read_to_string(serve.data.join("state.json")).unwrap();
    assert!(state.contains("\"org_id\": \"org-b\""), "{state}");
    // Rotation needs serve stopped, then lists the new key first and keeps the old one.
    let refused = keys("rotate", &serve.data);
    assert!(!refused.status.success());
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let rotated = keys("rotate", &data);
    assert_success(&rotated);
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 2);
    assert_eq!(rotated["keys"][1], identity["keys"][0]);
    assert_eq!(rotated["org_id"], "org-b");
}

#[test]
fn partners_are_registered_only_when_every_rule_holds() {
    let serve = Serve::in_temp(&["--org-id", "org-b"]);
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

/// Gate B (org-b; workspace ws-1 with the example server) with org A registered: `ex.*` allowed,
/// `ex.get_env` denied, at `rate`; and org A's signing side.
fn gate_b_with_org_a(dir: &TempDir, rate: Value) -> (Serve, OrgA) {
    let serve = Serve::start_with(dir.path(), &["--org-id", "org-b"]);
    serve.setup("ws-1");
    let mut grant = partner("org-a", "a1", 4);
    grant["allow"] = json!(["ex.*"]);
    grant["deny"] = json!(["ex.get_env"]);
    grant["rate"] = rate;
    assert_eq!(serve.admin("POST", "/partners", Some(grant)).status, 201);
    (serve, OrgA::new())
}

fn list_body(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}).to_string()
}

#[test]
fn a_partner_calls_what_it_is_granted_and_every_bad_token_is_refused() {
    let dir = TempDir::new();
    let (serve, a) = gate_b_with_org_a(&dir, json!({"per_minute": 60, "burst": 12}));
    let scope = ["ex.echo", "ex.add", "ex.get_env"];
    let now = unix_now();

    // A token of org A for gate B, signed now, naming `tool` and bound to `body`.
    let signed = |tool: &str, body: &str| a.token("org-b", &scope, tool, body, now);
    let init = initialize_request().to_string();
    let opened = post(&serve, &signed("", &init), None, &init);
    assert_eq!(opened.status, 200, "{}\n{}", opened.body, serve.log());
    let session = opened.header("Mcp-Session-Id").unwrap();
    let ready = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let s = Some(session.as_str());
    assert_eq!(post(&serve, &signed("", &ready), s, &ready).status, 202);

    // The listing holds only what both the token and the grant permit.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let listed = post(&serve, &signed("", &list), s, &list).json();
    let mut names = listed_names(&listed);
    names.sort_unstable();
    assert_eq!(names, ["ex.add", "ex.echo"], "{listed}");

    // Granted: answered by the server.
    let echo = call_body(3, "ex.echo");
    let answered = post(&serve, &signed("ex.echo", &echo), s, &echo);
    assert_eq!(
        answered.json()["result"]["content"][0]["text"],
        "hi",
        "{}",
        answered.body
    );

    let code = |r: &Response| r.json()["error"]["code"].as_i64().unwrap_or(0);
    let refused = |token: String, body: &str, status: u16, want: i64, why: &str| {
        let r = post(&serve, &token, s, body);
        assert_eq!((r.status, code(&r)), (status, want), "{why}: {}", r.body);
    };
    let (get_env, weather) = (call_body(4, "ex.get_env"), call_body(5, "ex.weather"));
    let body = call_body(6, "ex.echo");
    let good = |n: i64| a.token("org-b", &scope, "ex.echo", &body, n);
    let stranger = OrgA {
        key: SigningKey::from_bytes(&[9; 32]),
        kid: "zz",
    };
    let mut flipped = good(now).into_bytes();
    flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
    // A duplicate `name`: the gate routes the last one, and that is what is checked. Signed with
    // no tool, or with the first name, it is refused; the denied tool never runs.
    let twice = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ex.echo","name":"ex.get_env","arguments":{"name":"X"}}}"#;
    let nameless = r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"arguments":{}}}"#;
    let swapped = call_body(6, "ex.add");
    let (forbidden, unauthorized) = ((403, -32011), (401, -32010));
    let cases: [(String, &str, (u16, i64), &str); 13] = [
        // Denied by the partner's grant although the token allows it.
        (
            signed("ex.get_env", &get_env),
            &get_env,
            forbidden,
            "denied",
        ),
        // Allowed by the grant, outside the token's scope.
        (signed("ex.weather", &weather), &weather, forbidden, "scope"),
        // The token names another tool than the one called.
        (signed("ex.echo", &weather), &weather, forbidden, "tool"),
        (
            a.token("org-c", &scope, "ex.echo", &body, now),
            &body,
            unauthorized,
            "aud",
        ),
        (good(now - 1000), &body, unauthorized, "expired"),
        (good(now + 1000), &body, unauthorized, "not yet valid"),
        (good(now), &swapped, unauthorized, "body swapped"),
        (
            stranger.token("org-b", &scope, "ex.echo", &body, now),
            &body,
            unauthorized,
            "kid",
        ),
        // A flipped byte in the signed payload.
        (
            String::from_utf8(flipped).unwrap(),
            &body,
            unauthorized,
            "tampered",
        ),
        (signed("", twice), twice, forbidden, "no tool"),
        (signed("ex.echo", twice), twice, forbidden, "first name"),
        (signed("ex.get_env", twice), twice, forbidden, "last name"),
        (signed("", nameless), nameless, forbidden, "no name"),
    ];
    for (token, body, (status, want), why) in cases {
        refused(token, body, status, want, why);
    }
    // The same token twice: the second is a replay.
    let once = good(now);
    assert_eq!(post(&serve, &once, s, &body).status, 200);
    refused(once, &body, 401, -32010, "replay");

    // The log has the precise reasons; the answers never did.
    let log = serve.log();
    for reason in [
        "aud is not",
        "expired",
        "not valid yet",
        "bh does not match",
        "unknown or retired kid",
        "signature does not verify",
        "replay",
        "outside the token scope",
    ] {
        assert!(log.contains(reason), "{reason} not logged:\n{log}");
    }
    assert!(
        log.contains("delegation accepted: iss=org-a sub=\"agent-7\" tool=\"ex.echo\""),
        "{log}"
    );

    // Removing the partner takes effect at once.
    assert_eq!(serve.admin("DELETE", "/partners/org-a", None).status, 200);
    refused(good(now), &body, 401, -32010, "removed partner");

    // Refused delegated calls are in the audit trail with their reason, accepted ones with iss.
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let trail = std::fs::read_to_string(data.join("audit.log")).unwrap();
    for needle in [
        "refused: bh does not match the body",
        "\"delegation\":{\"iss\":\"org-a\"",
    ] {
        assert!(trail.contains(needle), "{trail}");
    }
}

#[test]
fn a_partner_over_its_rate_waits_retry_after_and_is_served_again() {
    // Issue #11: a partner's rate counts what it does (tool calls), not its protocol chatter.
    let dir = TempDir::new();
    let (serve, a) = gate_b_with_org_a(&dir, json!({"per_minute": 60, "burst": 3}));
    let init = initialize_request().to_string();
    let scope = ["ex.echo"];
    let opened = post(
        &serve,
        &a.token("org-b", &scope, "", &init, unix_now()),
        None,
        &init,
    );
    let session = opened.header("Mcp-Session-Id").unwrap();
    let s = Some(session.as_str());
    let body = call_body(2, "ex.echo");
    let send = || {
        post(
            &serve,
            &a.token("org-b", &scope, "ex.echo", &body, unix_now()),
            s,
            &body,
        )
    };
    // The burst of 3 is for calls: the handshake and lists are not charged (issue #11), so a
    // partner that connected makes its 3 calls, and the 4th quick one waits.
    let listed = post(
        &serve,
        &a.token("org-b", &scope, "", &list_body(3), unix_now()),
        s,
        &list_body(3),
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    for n in 1..=3 {
        let answered = send();
        assert_eq!(answered.status, 200, "call {n}: {}", answered.body);
    }
    let limited = send();
    assert_eq!(limited.status, 429, "{}", limited.body);
    let error = &limited.json()["error"];
    assert_eq!(error["code"], -32012);
    let wait = error["data"]["retry_after"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&wait),
        "{limited:?}",
        limited = limited.body
    );
    assert_eq!(limited.header("Retry-After").unwrap(), wait.to_string());
    // The wait is the rate limit's own time, not a synchronisation.
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(send().status, 200);
}

#[test]
fn an_agent_at_org_a_calls_a_tool_behind_org_b_through_both_gates() {
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let b = Serve::start_with(dir_b.path(), &["--org-id", "org-b"]);
    b.setup("ws-1");
    let a = Serve::start_with(dir_a.path(), &["--org-id", "org-a"]);
    // Onboarding: B registers A's identity exactly as A shows it.
    let identity = a.admin("GET", "/identity", None).json();
    let mut grant = json!({
        "org_id": "org-a", "keys": identity["keys"], "workspace_id": "ws-1",
        "allow": ["ex.*"], "deny": ["ex.get_env"], "rate": {"per_minute": 600, "burst": 50}
    });
    assert_eq!(b.admin("POST", "/partners", Some(grant.take())).status, 201);
    // A's side: a partner connection to B's workspace, an agent.
    let conn = a.connect(
        "wa",
        json!({"name": "partner_b", "kind": "partner",
            "url": format!("http://{}/mcp/ws-1", b.addr), "org_id": "org-b"}),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    assert_eq!(conn.json()["kind"], "partner");
    a.activate("wa");
    let agent = a.agent("wa", "bot");
    let key = agent["key"].as_str().unwrap().to_owned();
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let client = a.client("wa", &key);
    let echoed = retry(Duration::from_millis(100), || {
        let answer = client.call("partner_b.ex.echo", json!({"message": "hi"}));
        match answer["result"]["content"][0]["text"] == "hi" {
            true => Ok(answer),
            false => Err(format!(
                "never answered: {answer}\nA:\n{}\nB:\n{}",
                a.log(),
                b.log()
            )),
        }
    });
    assert_eq!(echoed["result"]["content"][0]["text"], "hi");
    // What B denies is not even listed at A, so A refuses the call itself.
    let names = listed_names(&client.list().json());
    assert!(names.contains(&"partner_b.ex.echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("get_env")), "{names:?}");
    let denied = client.call("partner_b.ex.get_env", json!({"name": "X"}));
    assert!(denied["error"].is_object(), "{denied}");
    // An agent cannot name another caller: the gate drops the key from what agents send.
    let spoof = client.send(
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
            "name": "partner_b.ex.add", "arguments": {"a": 1, "b": 2},
            "_meta": {"io.aegis-gate/agent": "agent_someone_else"}}}),
    );
    assert!(spoof.json()["result"].is_object(), "{}", spoof.body);
    // B saw signed requests from org A, each call naming the calling agent at A as sub.
    let log = b.log();
    let accepted = format!("delegation accepted: iss=org-a sub=\"{agent_id}\" tool=");
    assert!(log.contains(&format!("{accepted}\"ex.echo\"")), "{log}");
    assert!(log.contains(&format!("{accepted}\"ex.add\"")), "{log}");
    assert!(!log.contains("agent_someone_else"), "{log}");
    // Requests that call no tool (initialize, tools/list) are signed as the workspace.
    assert!(
        log.contains("delegation accepted: iss=org-a sub=\"wa\" tool=\"\""),
        "{log}"
    );
}

#[test]
fn partners_are_managed_on_the_command_line_with_serve_stopped() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--org-id", "org-b"]);
    serve.setup("ws-1");
    let file = dir.path().join("partner.json");
    std::fs::write(&file, partner("org-a", "a1", 4).to_string()).unwrap();
    let cli = |args: &[&str]| {
        gate(&[])
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap()
    };
    let file = file.to_str().unwrap();
    let busy = cli(&["partners", "add", file]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("serve is running"));
    assert!(serve.stop().success());
    assert!(cli(&["partners", "add", file]).status.success());
    let again = cli(&["partners", "add", file]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let listed: Value = serde_json::from_slice(&cli(&["partners", "list"]).stdout).unwrap();
    assert_eq!(listed["partners"][0]["org_id"], "org-a");
    let mut weak = partner("org-c", "c1", 5);
    weak["keys"][0]["public_key"] = json!("k4.public.AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    std::fs::write(dir.path().join("weak.json"), weak.to_string()).unwrap();
    let refused = cli(&[
        "partners",
        "add",
        dir.path().join("weak.json").to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("weak"),
        "{refused:?}"
    );
    assert!(cli(&["partners", "remove", "org-a"]).status.success());
    let shown = cli(&["partners", "show", "org-a"]);
    assert!(!shown.status.success());
}

#[test]
fn the_org_id_can_come_from_the_config_file() {
    let dir = TempDir::new();
    let config = settings_file(dir.path(), json!({"org_id": "org-z"}));
    let serve = Serve::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    assert_eq!(
        serve.admin("GET", "/identity", None).json()["org_id"],
        "org-z"
    );
}

//! The MCP surface beyond tools through serve: the REST view of resources and their collisions,
//! resource updates and log messages per HTTP session, prompts and resources in the audit trail,
//! and a partner that sees only the prompts and resources of the server it is granted.

use crate::support::http::{read_until, Response};
use crate::support::serve::Client;
use crate::support::{
    call_request, error_of, gate_bin, initialize_request, retry, text, Serve, TempDir,
};
use aegis_gate::delegation::paserk;
use aegis_gate::delegation::token::{self, Grant};
use aegis_gate::glob::Scope;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

/// A connection named `name` running the example server with `args`.
fn example_conn(name: &str, args: &[&str]) -> Value {
    let mut command = vec![gate_bin(), "example-server"];
    command.extend_from_slice(args);
    json!({ "name": name, "command": command })
}

/// Registers `conns` in `ws`, activates it, creates an agent; its key.
fn workspace_of(serve: &Serve, ws: &str, conns: &[Value]) -> String {
    for conn in conns {
        let made = serve.connect(ws, conn.clone());
        assert_eq!(made.status, 201, "{}", made.body);
    }
    serve.activate(ws);
    serve.agent(ws, "bot")["key"].as_str().unwrap().to_owned()
}

/// `GET /workspaces/{ws}/resources` once `ready` holds of it (the servers list at their own
/// pace after the workspace starts).
fn resources_view(serve: &Serve, ws: &str, ready: impl Fn(&Value) -> bool) -> Value {
    retry(Duration::from_millis(50), || {
        let view = serve.admin("GET", &format!("/workspaces/{ws}/resources"), None);
        if view.status != 200 {
            return Err(format!("{}: {}", view.status, view.body));
        }
        let view = view.json();
        match ready(&view) {
            true => Ok(view),
            false => Err(format!("not every server listed yet: {view}")),
        }
    })
}

/// Whether a resources view has an entry for `uri` (a resource or a template).
fn has(view: &Value, uri: &str) -> bool {
    view["resources"]
        .as_array()
        .is_some_and(|l| l.iter().any(|r| r["uri"] == uri || r["uriTemplate"] == uri))
}

/// What has come on `stream` so far, without waiting for more.
fn read_available(stream: &mut TcpStream, seen: &mut String) {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}: {seen}"),
        }
    }
    stream.set_nonblocking(false).unwrap();
}

/// A `ping` in `client`'s session: the whole answer (notices since its last request first).
fn ping(client: &Client<'_>) -> Response {
    let pong = client.send(&json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    assert_eq!(pong.status, 200, "{}", pong.body);
    pong
}

/// Calls `tool` in `client`'s session; the whole answer (notices may come with it).
fn call_raw(client: &Client<'_>, tool: &str, args: Value) -> Response {
    let r = client.send(&call_request(7, tool, args));
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// What `client`'s session hears, from `answered` (an answer that may carry notices) on, until
/// it hears `needle`: a notice goes on the stream of the session's request in flight when it
/// comes (the call that caused it, say), else with the answer to its next request.
fn hear(serve: &Serve, client: &Client<'_>, answered: &Response, needle: &str) -> String {
    if answered.body.contains(needle) {
        return answered.body.clone();
    }
    // The notice comes through the merger, maybe after the call that caused it was answered:
    // polled, bounded by the deadline.
    retry(Duration::from_millis(20), || {
        let pong = ping(client);
        match pong.body.contains(needle) {
            true => Ok(pong.body),
            false => Err(format!("{needle:?} never came; log:\n{}", serve.log())),
        }
    })
}

#[test]
fn the_rest_view_names_who_serves_each_uri_and_the_collisions_and_reads_follow_it() {
    let serve = Serve::in_temp(&[]);
    let key = workspace_of(
        &serve,
        "ws-1",
        &[
            example_conn("a", &[]),
            example_conn("b", &["--big-resource", "10"]),
        ],
    );
    // Both have listed once b's own resource is in and three URIs collided.
    let view = resources_view(&serve, "ws-1", |v| {
        has(v, "example://big") && v["collisions"].as_array().is_some_and(|c| c.len() == 3)
    });
    let collisions = view["collisions"].as_array().unwrap();
    let collided: Vec<&str> = collisions
        .iter()
        .map(|c| c["uri"].as_str().unwrap())
        .collect();
    for uri in [
        "example://readme",
        "example://counter",
        "example://items/{id}",
    ] {
        assert!(collided.contains(&uri), "{uri} not a collision: {view}");
    }
    // One server serves every URI both list (the first in the workspace's order).
    let winner = collisions[0]["served_by"].as_str().unwrap().to_owned();
    let loser = if winner == "a" { "b" } else { "a" };
    for c in collisions {
        assert_eq!(c["served_by"], winner.as_str(), "{view}");
        assert_eq!(c["skipped"], loser, "{view}");
    }
    let entry = |uri: &str| {
        view["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["uri"] == uri || r["uriTemplate"] == uri)
            .cloned()
            .unwrap_or_else(|| panic!("{uri} not in {view}"))
    };
    let readme = entry("example://readme");
    assert_eq!(readme["server"], winner.as_str(), "{view}");
    assert_eq!(readme["name"], format!("{winner}.readme"), "{view}");
    assert_eq!(readme["blocked"], Value::Null, "{view}");
    assert_eq!(entry("example://big")["server"], "b", "{view}");
    assert_eq!(entry("example://big")["name"], "b.big", "{view}");
    assert_eq!(entry("example://items/{id}")["server"], winner.as_str());
    serve.assert_logged(&format!(
        "resource \"example://readme\" is listed by servers {winner} and {loser}; {winner} serves it"
    ));

    // Reads go where the view says: the counter read is the winner's.
    let client = serve.client("ws-1", &key);
    for tool in [
        format!("{winner}.bump"),
        format!("{winner}.bump"),
        format!("{loser}.bump"),
    ] {
        assert!(client.call(&tool, json!({}))["result"].is_object());
    }
    let counter = client.request("resources/read", json!({"uri": "example://counter"}));
    assert_eq!(counter["result"]["contents"][0]["text"], "2", "{counter}");
    let listed = client.request("resources/list", json!({}));
    let uris: Vec<&str> = listed["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris.iter().filter(|u| **u == "example://readme").count(),
        1,
        "{listed}"
    );
    assert!(uris.contains(&"example://big"), "{listed}");

    // A workspace that is not running has no resources to show.
    let stopped = serve.admin("POST", "/workspaces/ws-1/deactivate", None);
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(
        serve
            .admin("GET", "/workspaces/ws-1/resources", None)
            .status,
        409
    );
    assert_eq!(
        serve
            .admin("GET", "/workspaces/nope/resources", None)
            .status,
        404
    );
}

#[test]
fn a_resource_update_reaches_only_the_sessions_subscribed_to_it() {
    let serve = Serve::in_temp(&[]);
    let key = workspace_of(&serve, "ws-1", &[example_conn("a", &[])]);
    let watcher = serve.client("ws-1", &key);
    let other = serve.client("ws-1", &key);
    let counter = json!({"uri": "example://counter"});
    let subscribed = watcher.request("resources/subscribe", counter.clone());
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    let (mut stream, mut seen) = watcher.listen();

    // Another session bumps: the watcher hears, the other does not.
    let bumped = call_raw(&other, "a.bump", json!({}));
    assert_eq!(text(&bumped.json()), "1");
    read_until(&mut stream, &mut seen, "notifications/resources/updated");
    read_until(&mut stream, &mut seen, "example://counter");
    let pong = ping(&other);
    for body in [&bumped.body, &pong.body] {
        assert!(!body.contains("resources/updated"), "{body}");
    }

    // The other subscribes and the watcher leaves: the server still has a subscriber, and only
    // the other hears of the next bump.
    let both = other.request("resources/subscribe", counter.clone());
    assert_eq!(both["result"], json!({}), "{both}");
    let left = watcher.request("resources/unsubscribe", counter.clone());
    assert_eq!(left["result"], json!({}), "{left}");
    let bumped = call_raw(&other, "a.bump", json!({}));
    assert_eq!(text(&bumped.json()), "2");
    hear(&serve, &other, &bumped, "notifications/resources/updated");
    // A log message after the bump is the barrier: the watcher (no level set) hears it after
    // the update it would have heard.
    let logged = other.call("a.log", json!({"level": "error", "message": "barrier"}));
    assert_eq!(text(&logged), "logged");
    read_until(&mut stream, &mut seen, "barrier");
    read_available(&mut stream, &mut seen);
    assert_eq!(
        seen.matches("notifications/resources/updated").count(),
        1,
        "the watcher heard of an update after it left: {seen}"
    );
}

#[test]
fn log_messages_reach_each_http_session_by_the_level_it_set() {
    let serve = Serve::in_temp(&[]);
    let key = workspace_of(&serve, "ws-1", &[example_conn("a", &[])]);
    let quiet = serve.client("ws-1", &key);
    let loud = serve.client("ws-1", &key);
    for (client, level) in [(&quiet, "error"), (&loud, "debug")] {
        let set = client.request("logging/setLevel", json!({ "level": level }));
        assert_eq!(set["result"], json!({}), "{set}");
    }
    let (mut stream, mut seen) = quiet.listen();
    // The server logs at the most verbose level a session asked for; the gate filters per
    // session.
    let info = call_raw(
        &loud,
        "a.log",
        json!({"level": "info", "message": "info-line"}),
    );
    assert_eq!(text(&info.json()), "logged");
    let heard = hear(&serve, &loud, &info, "info-line");
    assert!(heard.contains("\"logger\":\"a/example\""), "{heard}");
    let error = loud.call("a.log", json!({"level": "error", "message": "error-line"}));
    assert_eq!(text(&error), "logged");
    read_until(&mut stream, &mut seen, "error-line");
    assert!(
        !seen.contains("info-line"),
        "an info message reached a session at error: {seen}"
    );
    let bad = loud.request("logging/setLevel", json!({"level": "verbose"}));
    assert_eq!(error_of(&bad).0, -32602, "{bad}");
}

#[test]
fn prompts_get_resources_read_and_server_requests_are_in_the_audit_trail() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = workspace_of(&serve, "ws-1", &[example_conn("a", &[])]);
    let policy = json!({"rules": [{"match": "a.summary", "verdict": "deny"}]});
    let set = serve.admin("PUT", "/workspaces/ws-1/policy", Some(policy));
    assert_eq!(set.status, 200, "{}", set.body);
    let client = serve.client("ws-1", &key);
    let greet = client.request(
        "prompts/get",
        json!({"name": "a.greet", "arguments": {"name": "Ada"}}),
    );
    assert!(greet["result"]["messages"].is_array(), "{greet}");
    let readme = client.request("resources/read", json!({"uri": "example://readme"}));
    assert!(readme["result"]["contents"].is_array(), "{readme}");
    let item = client.request("resources/read", json!({"uri": "example://items/42"}));
    assert!(item["result"]["contents"].is_array(), "{item}");
    let denied = client.request("prompts/get", json!({"name": "a.summary"}));
    assert_eq!(error_of(&denied).0, -32013, "{denied}");
    assert!(client.call("a.echo", json!({"message": "hi"}))["result"].is_object());
    // The session declared no sampling: the server's request is refused, and recorded.
    let asked = client.call("a.ask_sampling", json!({"prompt": "x"}));
    assert_eq!(asked["result"]["isError"], true, "{asked}");
    let data = serve.data.clone();
    assert!(serve.stop().success());

    let trail = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let events: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"]["event"].clone())
        .collect();
    let calls: Vec<Value> = events
        .iter()
        .filter(|e| e["type"] == "call")
        .cloned()
        .collect();
    let record = |name: &str| {
        calls
            .iter()
            .find(|e| e["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {name}: {calls:?}"))
    };
    for (name, method) in [
        ("a.greet", Some("prompts/get")),
        ("example://readme", Some("resources/read")),
        ("example://items/42", Some("resources/read")),
        ("a.echo", None),
    ] {
        let r = record(name);
        assert_eq!(r["outcome"], "ok", "{r}");
        assert_eq!(r["verdict"], "allow", "{r}");
        assert_eq!(r["workspace"], "ws-1", "{r}");
        assert_eq!(
            r["arguments_sha256"].as_str().map(str::len),
            Some(64),
            "{r}"
        );
        // A tool call's record keeps its shape; the others say their method.
        assert_eq!(r.get("method").and_then(Value::as_str), method, "{r}");
    }
    let refused = record("a.summary");
    assert_eq!(refused["verdict"], "deny", "{refused}");
    assert_eq!(refused["outcome"], "error_-32013", "{refused}");
    assert_eq!(refused["method"], "prompts/get", "{refused}");
    assert_eq!(calls.len(), 6, "{calls:?}");
    let asks: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "server_request")
        .collect();
    assert_eq!(asks.len(), 1, "{events:?}");
    assert_eq!(asks[0]["server"], "a", "{}", asks[0]);
    assert_eq!(asks[0]["method"], "sampling/createMessage", "{}", asks[0]);
    assert_eq!(asks[0]["agent"], record("a.echo")["agent"], "{}", asks[0]);
    let outcome = asks[0]["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.starts_with("refused: ") && outcome.contains("did not declare"),
        "{}",
        asks[0]
    );
    let verified = crate::support::gate(&["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    crate::support::assert_success(&verified);
}

/// Org A's signing side: a token for `tool` (a prompt's name, a resource's URI, or "") bound to
/// `body`.
fn org_a_token(tool: &str, body: &str) -> String {
    let key = SigningKey::from_bytes(&[4; 32]);
    let scope: Scope = serde_json::from_value(json!({"allow": ["a.*", "b.*"]})).unwrap();
    let grant = Grant {
        iss: "org-a",
        aud: "org-b",
        sub: "agent-7",
        scope: &scope,
    };
    let now = crate::support::unix_now();
    token::sign(&key, "a1", &grant, tool, body.as_bytes(), now, 120).unwrap()
}

#[test]
fn a_partner_granted_one_server_sees_and_uses_only_its_prompts_and_resources() {
    let serve = Serve::in_temp(&["--org-id", "org-b"]);
    // a has example://big of its own, b example://hidden; both list the rest.
    workspace_of(
        &serve,
        "ws-1",
        &[
            example_conn("a", &["--big-resource", "10"]),
            example_conn("b", &["--poison"]),
        ],
    );
    let partner = json!({
        "org_id": "org-a",
        "keys": [{"kid": "a1",
                  "public_key": paserk::encode(&SigningKey::from_bytes(&[4; 32]).verifying_key())}],
        "workspace_id": "ws-1",
        "allow": ["a.*"],
        "rate": {"per_minute": 600, "burst": 100}
    });
    let made = serve.admin("POST", "/partners", Some(partner));
    assert_eq!(made.status, 201, "{}", made.body);
    let view = resources_view(&serve, "ws-1", |v| {
        has(v, "example://big") && has(v, "example://hidden")
    });
    let a_serves = |key: &str| -> Vec<String> {
        let mut uris: Vec<String> = view["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["server"] == "a" && r[key].is_string())
            .map(|r| r[key].as_str().unwrap().to_owned())
            .collect();
        uris.sort();
        uris
    };

    let post = |session: Option<&str>, tool: &str, body: &Value| {
        let body = body.to_string();
        let token = org_a_token(tool, &body);
        let mut headers = vec![("Aegis-Delegation", token.as_str())];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        serve.post_mcp("ws-1", &headers, &body)
    };
    let opened = post(None, "", &initialize_request());
    assert_eq!(opened.status, 200, "{}\n{}", opened.body, serve.log());
    let session = opened.header("Mcp-Session-Id").unwrap();
    let s = Some(session.as_str());
    let list = |method: &str, key: &str, field: &str| -> Vec<String> {
        let answer = post(s, "", &json!({"jsonrpc": "2.0", "id": 2, "method": method}));
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mut names: Vec<String> = answer.json()["result"][key]
            .as_array()
            .unwrap_or_else(|| panic!("{method}: {}", answer.body))
            .iter()
            .map(|i| i[field].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        list("prompts/list", "prompts", "name"),
        ["a.greet", "a.summary"]
    );
    let resources = list("resources/list", "resources", "uri");
    assert_eq!(resources, a_serves("uri"), "{view}");
    assert!(
        resources.contains(&"example://big".to_owned()),
        "{resources:?}"
    );
    assert!(
        !resources.contains(&"example://hidden".to_owned()),
        "{resources:?}"
    );
    assert_eq!(
        list(
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate"
        ),
        a_serves("uriTemplate"),
        "{view}"
    );

    // What is granted is served; what is not is refused before any server sees it.
    let get = |id: u64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "prompts/get",
               "params": {"name": name, "arguments": {"name": "Ada"}}})
    };
    let greeted = post(s, "a.greet", &get(3, "a.greet"));
    assert_eq!(greeted.status, 200, "{}", greeted.body);
    assert!(
        greeted.json()["result"]["messages"].is_array(),
        "{}",
        greeted.body
    );
    let read = |id: u64, uri: &str| json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": {"uri": uri}});
    let big = post(s, "example://big", &read(4, "example://big"));
    assert_eq!(big.status, 200, "{}", big.body);
    assert_eq!(big.json()["result"]["contents"][0]["text"], "xxxxxxxxxx");
    for (tool, body) in [
        ("b.greet", get(5, "b.greet")),
        ("example://hidden", read(6, "example://hidden")),
    ] {
        let refused = post(s, tool, &body);
        assert_eq!(refused.status, 403, "{tool}: {}", refused.body);
        assert_eq!(refused.json()["error"]["code"], -32011, "{}", refused.body);
    }
}

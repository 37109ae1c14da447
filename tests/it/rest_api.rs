//! The REST admin API of `serve` (`/api/v1/aegis/…`): what it refuses and how, changes to
//! running connections, and changes that must not hold up other clients.

use crate::support::http::Response;
use crate::support::http::{connect, head};
use crate::support::{
    call_request, gate_bin, process_exists, retry, signal, text, Serve, ADMIN, WAIT,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn rest_routes_refuse_what_they_must_and_change_nothing_on_bad_input() {
    let serve = Serve::in_temp(&[]);
    let cases: Vec<(u16, Response)> = vec![
        (401, serve.request("GET", "/api/v1/aegis/connections", &[], None)),
        (401, serve.request("GET", "/api/v1/aegis/connections", &[("Authorization", "Bearer wrong")], None)),
        (400, serve.admin("POST", "/connections", None)),
        (400, serve.request("POST", "/api/v1/aegis/connections", &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "application/json")], Some("{not json"))),
        (415, serve.request("POST", "/api/v1/aegis/connections", &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "text/plain")], Some("{}"))),
        (400, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin()], "surprise": 1})))),
        (422, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "bad name", "command": [gate_bin()]})))),
        (403, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["/bin/true"]})))),
        (403, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["sh", "-c", "id"]})))),
        (403, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["/usr/bin/python3", "-c", "1"]})))),
        (403, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "stdio", "--config", "/tmp/x.json"]})))),
        (422, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "example-server\u{0}"]})))),
        (400, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "example-server"], "env": {"LD_PRELOAD": "/tmp/x.so"}})))),
        (422, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "example-server"], "env": {"TZ": "U\u{0}TC"}})))),
        (413, serve.admin("POST", "/connections", Some(json!({"pad": "x".repeat(5 * 1024 * 1024)})))),
        (404, serve.admin("GET", "/connections/conn_nope", None)),
        (404, serve.admin("DELETE", "/agents/agent_nope", None)),
        (404, serve.admin("GET", "/nothing-here", None)),
        (405, serve.admin("PUT", "/agents", None)),
    ];
    for (i, (expected, got)) in cases.iter().enumerate() {
        assert_eq!(got.status, *expected, "case {i}: {}", got.body);
        let error = serde_json::from_str::<Value>(&got.body).unwrap_or_default();
        assert!(
            error["error"]["code"].is_string() && error["error"]["message"].is_string(),
            "case {i}: {}",
            got.body
        );
    }
    assert_eq!(
        serve.admin("GET", "/connections", None).json()["connections"],
        json!([]),
        "nothing changed"
    );
    let create = || {
        serve.connect(
            "w",
            json!({"name": "a", "command": [gate_bin(), "example-server"]}),
        )
    };
    let ok = create();
    assert_eq!(ok.status, 201, "{}", ok.body);
    let dup = create();
    assert_eq!(dup.status, 409);
}

#[test]
fn patch_and_put_change_a_running_connection() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let id = serve
        .admin("GET", "/connections?workspace_id=ws-1", None)
        .json()["connections"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let change =
        |method: &str, body: Value| serve.admin(method, &format!("/connections/{id}"), Some(body));
    let patched = change("PATCH", json!({"env": {"MY_SECRET": "rotated-value"}}));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert!(!patched.body.contains("rotated-value"));
    let client = serve.client("ws-1", &key);
    // The child restarts with the new env; polling its readiness, bounded by the deadline.
    retry(Duration::from_millis(50), || {
        let r = client.send(&call_request(8, "ex.get_env", json!({"name": "MY_SECRET"})));
        match r.json()["result"]["content"][0]["text"] == "rotated-value" {
            true => Ok(()),
            false => Err(format!(
                "the change never reached the child: {}\n{}",
                r.body,
                serve.log()
            )),
        }
    });
    assert_eq!(change("PATCH", json!({"surprise": 1})).status, 400);
    assert_eq!(change("PUT", json!({"enabled": false})).status, 422);
    assert_eq!(
        change("PATCH", json!({"command": ["sh", "-c", "id"]})).status,
        403
    );
    assert_eq!(
        change(
            "PATCH",
            json!({"env": {"NODE_OPTIONS": "--require /tmp/x.js"}})
        )
        .status,
        400
    );
    let disabled = change("PATCH", json!({"enabled": false}));
    assert_eq!(disabled.json()["enabled"], false);
    assert_eq!(disabled.json()["health"]["status"], "stopped");
}

#[test]
fn a_slow_admin_upload_does_not_hold_up_other_changes() {
    let serve = Serve::in_temp(&["--io-timeout-ms", "120000"]);
    serve.setup("ws-1");
    // A POST whose body never finishes arriving. `Expect: 100-continue` makes the gate say when
    // its handler starts reading the body (tiny_http reads small bodies itself otherwise).
    let mut slow = connect(&serve.addr, WAIT).unwrap();
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Expect", "100-continue"),
        ("Content-Length", "1000"),
    ];
    let request = head(&serve.addr, "POST", "/api/v1/aegis/connections", &headers);
    slow.write_all(request.as_bytes()).unwrap();
    let mut continue_line = [0u8; 25];
    slow.read_exact(&mut continue_line).unwrap();
    assert!(
        String::from_utf8_lossy(&continue_line).starts_with("HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&continue_line)
    );
    slow.write_all(b"{\"workspace_id\":").unwrap();
    // Another change is answered meanwhile (it would wait two minutes for the lock otherwise,
    // and the request helper gives up long before).
    let created = serve.admin(
        "POST",
        "/agents",
        Some(json!({"workspace_id": "ws-1", "name": "second"})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    drop(slow);
}

#[test]
fn agents_are_answered_while_a_deleted_connection_tears_down() {
    let serve = std::sync::Arc::new(Serve::in_temp(&[]));
    let key = serve.setup("ws-1");
    let slow = serve.connect(
        "ws-1",
        json!({"name": "slow", "command": [gate_bin(), "example-server", "--ignore-eof"]}),
    );
    assert_eq!(slow.status, 201, "{}", slow.body);
    let id = slow.json()["id"].as_str().unwrap().to_owned();
    let pid = retry(Duration::from_millis(20), || {
        let health = serve
            .admin("GET", &format!("/connections/{id}"), None)
            .json();
        match health["health"]["status"] == "healthy" {
            true => Ok(u32::try_from(health["health"]["pid"].as_u64().unwrap()).unwrap()),
            false => Err(format!("slow never got ready: {health}")),
        }
    });
    // A stopped child neither sees stdin close nor handles SIGTERM: its teardown runs to the
    // SIGKILL, seconds away.
    assert!(signal(pid, "STOP"));
    let client = serve.client("ws-1", &key);
    let has_slow_tools = |present: bool, why: &str| {
        retry(Duration::ZERO, || {
            match client.list().body.contains("slow.") == present {
                true => Ok(()),
                false => Err(why.to_owned()),
            }
        })
    };
    has_slow_tools(true, "slow's tools never arrived");
    let deleting = {
        let serve = serve.clone();
        std::thread::spawn(move || serve.admin("DELETE", &format!("/connections/{id}"), None))
    };
    has_slow_tools(false, "slow's tools never left");
    assert_eq!(
        text(&client.call("ex.echo", json!({"message": "meanwhile"}))),
        "meanwhile"
    );
    assert!(
        !deleting.is_finished(),
        "the agent was answered only after the teardown"
    );
    assert_eq!(deleting.join().unwrap().status, 200);
    assert!(!process_exists(pid), "the child outlived its DELETE");
}

//! MCP 2026-07-28 through serve (issue #13): a POST whose `MCP-Protocol-Version` is the era's is
//! served without a session; the era's transport rules with their statuses and codes (POST
//! only, `Accept`, the envelope, the headers against the body, `=?base64?…?=` values, the
//! version, unknown methods, notifications); `subscriptions/listen` as an event stream that
//! stays open; a legacy session and modern requests side by side; the era in the audit trail; a
//! client that hangs up cancels its request.

use crate::support::http::Response;
use crate::support::modern::{
    self, events, read_event, read_events, subscription_of, SUBSCRIPTION_ID, VERSION,
};
use crate::support::{assert_error, gate_bin, listed_names, text, Serve, TempDir};
use serde_json::{json, Value};

/// `ws` with the example server as `a` and an agent; the agent's key.
fn workspace(serve: &Serve, ws: &str) -> String {
    serve.setup_with(
        ws,
        json!({"name": "a", "command": [gate_bin(), "example-server"]}),
    )
}

/// Asserts `response` is a JSON-RPC error `code` with HTTP `status`, its message containing
/// `needle`.
fn assert_refused(response: &Response, status: u16, code: i64, needle: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(
        response.header("Content-Type").as_deref(),
        Some("application/json"),
        "{}",
        response.headers
    );
    assert_error(&response.json(), code, needle);
}

/// An enveloped `tools/call` of `tool`.
fn call(id: i64, tool: &str, arguments: Value) -> Value {
    modern::request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
}

#[test]
fn a_modern_post_is_served_without_a_session() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-1");
    let discovered = serve.modern(
        "ws-1",
        &key,
        &modern::request(1, "server/discover", Value::Null),
    );
    assert_eq!(discovered.status, 200, "{}", discovered.body);
    let found = discovered.json();
    assert_eq!(found["result"]["supportedVersions"][0], VERSION, "{found}");
    assert_eq!(found["result"]["resultType"], "complete", "{found}");

    let listed = serve.modern("ws-1", &key, &modern::request(2, "tools/list", Value::Null));
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(
        listed.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert!(
        listed.header("Mcp-Session-Id").is_none(),
        "{}",
        listed.headers
    );
    let tools = listed.json();
    assert_eq!(tools["result"]["resultType"], "complete", "{tools}");
    assert!(tools["result"]["ttlMs"].is_u64(), "{tools}");
    assert!(tools["result"]["cacheScope"].is_string(), "{tools}");
    assert!(listed_names(&tools).contains(&"a.echo".to_owned()));

    let echoed = serve.modern("ws-1", &key, &call(3, "a.echo", json!({"message": "hi"})));
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    assert!(echoed.header("Mcp-Session-Id").is_none());
    assert_eq!(text(&echoed.json()), "hi");
    assert_eq!(echoed.json()["result"]["resultType"], "complete");

    let greet = serve.modern(
        "ws-1",
        &key,
        &modern::request(
            4,
            "prompts/get",
            json!({"name": "a.greet", "arguments": {"name": "Ada"}}),
        ),
    );
    assert_eq!(greet.status, 200, "{}", greet.body);
    assert_eq!(
        greet.json()["result"]["messages"][0]["content"]["text"],
        "Hello, Ada."
    );
    let read = serve.modern(
        "ws-1",
        &key,
        &modern::request(5, "resources/read", json!({"uri": "example://counter"})),
    );
    assert_eq!(read.status, 200, "{}", read.body);
    let read = read.json();
    assert_eq!(read["result"]["contents"][0]["text"], "0", "{read}");
    assert!(read["result"]["ttlMs"].is_u64(), "{read}");

    // A session id sent along is ignored: the era has none.
    let computed = modern::headers_for(&call(6, "a.echo", json!({"message": "again"})));
    let mut headers: Vec<(&str, &str)> = computed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("Mcp-Session-Id", "no-such-session"));
    let ignored = serve.modern_with(
        "ws-1",
        &key,
        &headers,
        &call(6, "a.echo", json!({"message": "again"})),
    );
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    assert_eq!(text(&ignored.json()), "again");
}

#[test]
fn the_transport_rules_of_the_era_with_their_statuses_and_codes() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-1");
    let auth = format!("Bearer {key}");
    let list = modern::request(1, "tools/list", Value::Null);
    let body = list.to_string();

    for method in ["GET", "DELETE"] {
        let refused = serve.request(
            method,
            "/mcp/ws-1",
            &[
                ("Authorization", &auth),
                ("Accept", "application/json, text/event-stream"),
                ("MCP-Protocol-Version", VERSION),
            ],
            None,
        );
        assert_eq!(refused.status, 405, "{method}: {}", refused.body);
        assert_eq!(
            refused.header("Allow").as_deref(),
            Some("POST"),
            "{}",
            refused.headers
        );
    }
    let json_only = serve.request(
        "POST",
        "/mcp/ws-1",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("MCP-Protocol-Version", VERSION),
            ("Mcp-Method", "tools/list"),
        ],
        Some(&body),
    );
    assert_eq!(json_only.status, 406, "{}", json_only.body);
    let stranger = serve.modern("ws-1", "agk_wrong", &list);
    assert_eq!(stranger.status, 401, "{}", stranger.body);

    let post = |headers: &[(&str, &str)], message: &Value| {
        serve.modern_with("ws-1", &key, headers, message)
    };
    // The version header against the envelope's.
    assert_refused(
        &post(
            &[
                ("MCP-Protocol-Version", "2026-07-29"),
                ("Mcp-Method", "tools/list"),
            ],
            &list,
        ),
        400,
        -32020,
        "MCP-Protocol-Version",
    );
    // Mcp-Method against the method, or missing.
    let version = ("MCP-Protocol-Version", VERSION);
    assert_refused(
        &post(&[version, ("Mcp-Method", "prompts/list")], &list),
        400,
        -32020,
        "Mcp-Method",
    );
    assert_refused(&post(&[version], &list), 400, -32020, "Mcp-Method");
    // Mcp-Name against the name, or missing.
    let echo = call(2, "a.echo", json!({"message": "named"}));
    let method = ("Mcp-Method", "tools/call");
    assert_refused(&post(&[version, method], &echo), 400, -32020, "Mcp-Name");
    assert_refused(
        &post(&[version, method, ("Mcp-Name", "a.add")], &echo),
        400,
        -32020,
        "Mcp-Name",
    );
    assert_refused(
        &post(&[version, method, ("Mcp-Name", "=?base64?!!!?=")], &echo),
        400,
        -32020,
        "Mcp-Name",
    );
    // A value sent as base64 is compared decoded.
    let encoded = post(
        &[version, method, ("Mcp-Name", "=?base64?YS5lY2hv?=")],
        &echo,
    );
    assert_eq!(encoded.status, 200, "{}", encoded.body);
    assert_eq!(text(&encoded.json()), "named");
    let readme = modern::request(3, "resources/read", json!({"uri": "example://readme"}));
    let encoded = post(
        &[
            version,
            ("Mcp-Method", "resources/read"),
            ("Mcp-Name", "=?base64?ZXhhbXBsZTovL3JlYWRtZQ==?="),
        ],
        &readme,
    );
    assert_eq!(encoded.status, 200, "{}", encoded.body);
    assert!(encoded.json()["result"]["contents"].is_array());

    // A version the gate does not speak, said alike by the header and the envelope.
    let mut old = list.clone();
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("1900-01-01");
    let refused = post(
        &[
            ("MCP-Protocol-Version", "1900-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
        &old,
    );
    assert_refused(&refused, 400, -32022, "Unsupported protocol version");
    let data = &refused.json()["error"]["data"];
    assert_eq!(data["requested"], "1900-01-01", "{}", refused.body);
    assert_eq!(data["supported"][0], VERSION, "{}", refused.body);

    // Methods the gate does not serve in the era: 404.
    for (name, message) in [
        ("foo/bar", modern::request(4, "foo/bar", Value::Null)),
        ("ping", modern::request(5, "ping", Value::Null)),
        (
            "resources/subscribe",
            modern::request(
                6,
                "resources/subscribe",
                json!({"uri": "example://counter"}),
            ),
        ),
    ] {
        let refused = serve.modern("ws-1", &key, &message);
        assert_refused(&refused, 404, -32601, name);
    }

    // No envelope: 400 -32602.
    let bare = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}});
    assert_refused(
        &post(&[version, ("Mcp-Method", "tools/list")], &bare),
        400,
        -32602,
        "_meta",
    );
    let mut no_caps = list.clone();
    no_caps["params"]["_meta"] = json!({ "io.modelcontextprotocol/protocolVersion": VERSION });
    assert_refused(
        &post(&[version, ("Mcp-Method", "tools/list")], &no_caps),
        400,
        -32602,
        "clientCapabilities",
    );

    // A notification is taken: 202, nothing more.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 1}});
    let taken = post(&[version, ("Mcp-Method", "notifications/cancelled")], &note);
    assert_eq!(taken.status, 202, "{}", taken.body);
    assert_eq!(taken.body, "");
    // The era has no requests to the client: an answer has nothing to answer.
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    assert_refused(&post(&[version], &answer), 400, -32600, "");
}

#[test]
fn a_listen_is_an_event_stream_acknowledged_first_then_told_of_changes() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-1");
    let listen = modern::request(
        "listen-1",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["example://counter"]}}),
    );
    let (mut stream, mut seen) = serve.modern_stream("ws-1", &key, &listen);
    assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
    let head = seen.clone();
    let header = |name: &str| crate::support::http::header(&head, name);
    assert_eq!(
        header("Content-Type").as_deref(),
        Some("text/event-stream"),
        "{head}"
    );
    assert_eq!(header("X-Accel-Buffering").as_deref(), Some("no"), "{head}");
    assert!(header("Mcp-Session-Id").is_none(), "{head}");

    read_event(&mut stream, &mut seen, |_| true);
    let ack = events(&seen)[0].clone();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{seen}"
    );
    assert_eq!(
        ack["params"],
        json!({ "_meta": { SUBSCRIPTION_ID: "listen-1" },
                "notifications": {"toolsListChanged": true, "promptsListChanged": true,
                                  "resourceSubscriptions": ["example://counter"]} }),
        "{seen}"
    );

    let toggled = serve.modern("ws-1", &key, &call(2, "a.toggle", json!({})));
    assert_eq!(text(&toggled.json()), "surprise is on");
    let changed = read_event(&mut stream, &mut seen, |v| {
        v["method"] == "notifications/tools/list_changed"
    });
    assert_eq!(subscription_of(&changed), "listen-1", "{changed}");
    let bumped = serve.modern("ws-1", &key, &call(3, "a.bump", json!({})));
    assert_eq!(text(&bumped.json()), "1");
    let updated = read_event(&mut stream, &mut seen, |v| {
        v["method"] == "notifications/resources/updated"
    });
    assert_eq!(updated["params"]["uri"], "example://counter", "{updated}");
    assert_eq!(subscription_of(&updated), "listen-1", "{updated}");

    // A log message never goes on a listen; a list change after it is the barrier.
    let logged = serve.modern(
        "ws-1",
        &key,
        &call(
            4,
            "a.log",
            json!({"level": "error", "message": "not for a listen"}),
        ),
    );
    assert_eq!(text(&logged.json()), "logged");
    serve.modern("ws-1", &key, &call(5, "a.toggle", json!({})));
    let changes = |all: &[Value]| {
        all.iter()
            .filter(|v| v["method"] == "notifications/tools/list_changed")
            .count()
    };
    let all = read_events(&mut stream, &mut seen, |all| changes(all) == 2);
    assert!(!seen.contains("notifications/message"), "{seen}");
    assert!(
        all.iter().all(|v| v.get("id").is_none()),
        "only notices on a listen: {seen}"
    );
    drop(stream);

    // The client went away: the gate serves on, and a new listen is acknowledged.
    serve.modern("ws-1", &key, &call(6, "a.toggle", json!({})));
    let again = modern::request(
        "listen-2",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let (mut stream, mut seen) = serve.modern_stream("ws-1", &key, &again);
    let ack = read_event(&mut stream, &mut seen, |_| true);
    assert_eq!(subscription_of(&ack), "listen-2", "{seen}");
}

#[test]
fn a_legacy_session_and_modern_requests_of_two_agents_see_the_same_tools() {
    let serve = Serve::in_temp(&[]);
    let legacy_key = workspace(&serve, "ws-1");
    let modern_key = serve.agent("ws-1", "modern")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let legacy = serve.client("ws-1", &legacy_key);
    let (legacy_seen, modern_seen) = std::thread::scope(|s| {
        let legacy = s.spawn(|| {
            (0..5)
                .map(|i| {
                    let message = format!("legacy {i}");
                    assert_eq!(
                        text(&legacy.call("a.echo", json!({ "message": message }))),
                        message
                    );
                    let answer = legacy.list().json();
                    assert!(answer["result"].get("resultType").is_none(), "{answer}");
                    listed_names(&answer)
                })
                .collect::<Vec<_>>()
        });
        let modern = s.spawn(|| {
            (0..5)
                .map(|i| {
                    let message = format!("modern {i}");
                    let echoed = serve.modern(
                        "ws-1",
                        &modern_key,
                        &call(i, "a.echo", json!({ "message": message })),
                    );
                    assert_eq!(text(&echoed.json()), message);
                    let listed = serve.modern(
                        "ws-1",
                        &modern_key,
                        &modern::request(i, "tools/list", Value::Null),
                    );
                    assert_eq!(listed.status, 200, "{}", listed.body);
                    listed_names(&listed.json())
                })
                .collect::<Vec<_>>()
        });
        (legacy.join().unwrap(), modern.join().unwrap())
    });
    let first = &legacy_seen[0];
    assert!(first.contains(&"a.echo".to_owned()), "{first:?}");
    for names in legacy_seen.iter().chain(&modern_seen) {
        assert_eq!(names, first);
    }
}

#[test]
fn the_audit_trail_records_a_modern_call_with_its_era() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = workspace(&serve, "ws-1");
    let echoed = serve.modern("ws-1", &key, &call(1, "a.echo", json!({"message": "x"})));
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    let read = serve.modern(
        "ws-1",
        &key,
        &modern::request(2, "resources/read", json!({"uri": "example://readme"})),
    );
    assert_eq!(read.status, 200, "{}", read.body);
    let legacy = serve.client("ws-1", &key);
    assert!(legacy.call("a.add", json!({"a": 1, "b": 2}))["result"].is_object());
    let data = serve.data.clone();
    assert!(serve.stop().success());

    let trail = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let calls: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["body"]["event"].clone())
        .filter(|e| e["type"] == "call")
        .collect();
    let record = |name: &str| {
        calls
            .iter()
            .find(|e| e["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {name}: {calls:?}"))
    };
    let modern_call = record("a.echo");
    assert_eq!(modern_call["era"], VERSION, "{modern_call}");
    assert_eq!(modern_call["outcome"], "ok", "{modern_call}");
    assert!(modern_call.get("method").is_none(), "{modern_call}");
    let modern_read = record("example://readme");
    assert_eq!(modern_read["era"], VERSION, "{modern_read}");
    assert_eq!(modern_read["method"], "resources/read", "{modern_read}");
    let legacy_call = record("a.add");
    assert!(legacy_call.get("era").is_none(), "{legacy_call}");
    assert_eq!(modern_call["agent"], legacy_call["agent"]);
    let verified = crate::support::gate(&["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    crate::support::assert_success(&verified);
}

#[test]
fn listens_whose_clients_went_away_leave_room_for_new_ones() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-1");
    let other = serve.agent("ws-1", "other")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // One agent opens a listen and goes away, again and again, on a quiet workspace (more
    // times than the gate keeps listens open: 1024).
    for i in 0..1100 {
        let listen = modern::request(
            format!("gone-{i}"),
            "subscriptions/listen",
            json!({"notifications": {"toolsListChanged": true}}),
        );
        let (mut stream, mut seen) = serve.modern_stream("ws-1", &key, &listen);
        read_event(&mut stream, &mut seen, |v| {
            v["method"] == "notifications/subscriptions/acknowledged"
        });
    }
    // Another agent's listen is still told of a change.
    let listen = modern::request(
        "stays",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let (mut stream, mut seen) = serve.modern_stream("ws-1", &other, &listen);
    read_event(&mut stream, &mut seen, |v| {
        v["method"] == "notifications/subscriptions/acknowledged"
    });
    let toggled = serve.modern("ws-1", &other, &call(1, "a.toggle", json!({})));
    assert_eq!(text(&toggled.json()), "surprise is on");
    let changed = read_event(&mut stream, &mut seen, |v| {
        v["method"] == "notifications/tools/list_changed"
    });
    assert_eq!(subscription_of(&changed), "stays", "{changed}");
}

#[test]
fn an_x_mcp_header_argument_must_come_with_its_mcp_param_header_saying_the_same() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-p");
    // The annotation survives the sanitizer: a client sees which header to send.
    let listed = serve.modern("ws-p", &key, &modern::request(1, "tools/list", Value::Null));
    let tools = listed.json();
    let get_env = tools["result"]["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "a.get_env"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        get_env["inputSchema"]["properties"]["name"]["x-mcp-header"], "Env-Name",
        "{tools}"
    );
    let message = call(2, "a.get_env", json!({"name": "HOME"}));
    let computed = modern::headers_for(&message);
    let mut headers: Vec<(&str, &str)> = computed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Without the header: refused.
    let refused = serve.modern_with("ws-p", &key, &headers, &message);
    assert_refused(&refused, 400, -32020, "Mcp-Param-Env-Name");
    // Saying another value: refused.
    headers.push(("Mcp-Param-Env-Name", "PATH"));
    let refused = serve.modern_with("ws-p", &key, &headers, &message);
    assert_refused(&refused, 400, -32020, "Mcp-Param-Env-Name");
    // The same value, in the =?base64?...?= form too: served.
    headers.pop();
    headers.push(("Mcp-Param-Env-Name", "=?base64?SE9NRQ==?="));
    let served = serve.modern_with("ws-p", &key, &headers, &message);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(
        served.json()["result"]["resultType"],
        "complete",
        "{}",
        served.body
    );
    // A tool without annotations needs none.
    let echo = serve.modern("ws-p", &key, &call(3, "a.echo", json!({"message": "x"})));
    assert_eq!(echo.status, 200, "{}", echo.body);
}

#[test]
fn a_rest_connection_says_its_era_and_takes_a_modern_one() {
    let serve = Serve::in_temp(&[]);
    let created = serve.admin(
        "POST",
        "/connections",
        Some(
            json!({"workspace_id": "ws-e", "name": "a", "command": [gate_bin(), "example-server"]}),
        ),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap_or_default().to_owned();
    let shown = serve.admin("GET", &format!("/connections/{id}"), None);
    assert_eq!(shown.json()["era"], "legacy", "{}", shown.body);
    let refused = serve.admin(
        "PATCH",
        &format!("/connections/{id}"),
        Some(json!({"era": "2030-01-01"})),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    let changed = serve.admin(
        "PATCH",
        &format!("/connections/{id}"),
        Some(json!({"era": "modern"})),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let shown = serve.admin("GET", &format!("/connections/{id}"), None);
    assert_eq!(shown.json()["era"], "modern", "{}", shown.body);
}

/// Polls the gate's log until it holds `needle`, at most `within`.
fn logged_within(serve: &Serve, needle: &str, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if serve.log().contains(needle) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_hangs_up_cancels_its_modern_request_at_once() {
    let serve = Serve::in_temp(&[]);
    let key = workspace(&serve, "ws-1");
    // Once the server is ready (a call held until then would be cancelled at the gate, before
    // the server saw it).
    let echoed = serve.modern(
        "ws-1",
        &key,
        &call(6, "a.echo", json!({"message": "ready"})),
    );
    assert_eq!(text(&echoed.json()), "ready");
    // A call that would take 60 s, on a connection the client then closes without reading.
    let stream = serve.modern_send("ws-1", &key, &call(7, "a.sleep", json!({"ms": 60_000})));
    drop(stream);
    // The server is told at once, not when a keepalive would have found the client gone (the
    // first write comes after 5 s).
    assert!(
        logged_within(
            &serve,
            "example-server: cancelled request",
            std::time::Duration::from_secs(3)
        ),
        "the server was not told the call was cancelled: {}",
        serve.log()
    );
    // The gate serves on, and answered nobody with an error.
    let echoed = serve.modern("ws-1", &key, &call(8, "a.echo", json!({"message": "on"})));
    assert_eq!(text(&echoed.json()), "on");
    assert!(
        !serve.log().contains("dropped unanswered"),
        "{}",
        serve.log()
    );
}

//! MCP over Streamable HTTP (`/mcp/{workspace}`, and `/mcp` for an agent key) with our own
//! requests: sessions and their quotas, the transport's checks (origin, host, accept, protocol
//! version), answers as JSON or event streams, progress, list changes on the next answer or on
//! the session's GET stream, and calls that wait (a slow tool, an approval) without a worker.

use crate::support::http::{connect, head, parse_response, read_until};
use crate::support::serve::Client;
use crate::support::{
    call_request, gate_bin, initialize_request, listed_names, retry, settings_file, text, Serve,
    TempDir, WAIT,
};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn mcp_over_http_sessions_and_transport_checks() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let other_key = serve.agent("ws-2", "x")["key"].as_str().unwrap().to_owned();
    let init = initialize_request();
    assert_eq!(serve.mcp("ws-1", "agk_wrong", None, &init).status, 401);
    assert_eq!(
        serve.mcp("ws-1", &other_key, None, &init).status,
        401,
        "an agent of another workspace"
    );
    let auth = format!("Bearer {key}");
    let post = |extra: &[(&str, &str)]| {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        serve.post_mcp("ws-1", &h, &init.to_string()).status
    };
    assert_eq!(post(&[("Origin", "http://evil.example")]), 403);
    assert_eq!(post(&[("Origin", "http://allowed.example")]), 200);
    assert_eq!(post(&[("Host", "evil.example:80")]), 421);
    assert_eq!(post(&[("MCP-Protocol-Version", "1999-01-01")]), 400);
    let html = serve.request(
        "POST",
        "/mcp/ws-1",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Accept", "text/html"),
        ],
        Some(&init.to_string()),
    );
    assert_eq!(html.status, 406);
    // GET opens a session's event stream: it needs Accept and a live session.
    let get = |headers: &[(&str, &str)]| {
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        serve.request("GET", "/mcp/ws-1", &all, None).status
    };
    assert_eq!(get(&[]), 406);
    assert_eq!(get(&[("Accept", "text/event-stream")]), 400);
    assert_eq!(
        get(&[("Accept", "text/event-stream"), ("Mcp-Session-Id", "nope")]),
        404
    );
    let put = serve.request("PUT", "/mcp/ws-1", &[("Authorization", &auth)], None);
    assert_eq!(put.status, 405);
    assert!(put.headers.contains("GET, POST, DELETE"), "{}", put.headers);

    let client = serve.client("ws-1", &key);
    let names = listed_names(&client.list().json());
    assert!(
        names.contains(&"ex.echo".to_owned()) && !names.contains(&"ex.poisoned_add".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        text(&client.call("ex.echo", json!({"message": "over http"}))),
        "over http"
    );
    let in_session = |session: Option<&str>, message: serde_json::Value| {
        serve.mcp("ws-1", &key, session, &message)
    };
    let s = Some(client.session.as_str());
    let discover = in_session(
        s,
        json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover"}),
    );
    assert_eq!(discover.json()["error"]["code"], -32601);
    let note = in_session(
        s,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(note.status, 202);
    let progress = in_session(
        s,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"}}}),
    );
    assert_eq!(
        progress.header("Content-Type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        progress.body.matches("notifications/progress").count(),
        2,
        "{}",
        progress.body
    );
    assert!(progress.body.contains("done after 2 steps"));
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    assert_eq!(in_session(None, list.clone()).status, 400);
    assert_eq!(in_session(Some("not-a-session"), list.clone()).status, 404);
    let delete = client.end();
    assert_eq!(delete.status, 204);
    assert_eq!(in_session(s, list).status, 404);
    // A revoked agent is refused at once.
    let agents = serve.admin("GET", "/agents?workspace_id=ws-1", None).json();
    let agent_id = agents["agents"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        serve
            .admin("DELETE", &format!("/agents/{agent_id}"), None)
            .status,
        200
    );
    assert_eq!(serve.mcp("ws-1", &key, None, &init).status, 401);
}

#[test]
fn a_list_change_reaches_an_http_agent_with_its_next_answer() {
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    assert_eq!(text(&client.call("ex.toggle", json!({}))), "surprise is on");
    // The child re-lists at most once a second; polling for that, bounded by the deadline.
    retry(Duration::from_millis(100), || {
        let next = client.send(&call_request(9, "ex.echo", json!({"message": "after"})));
        if !next.body.contains("notifications/tools/list_changed") {
            return Err("the list change never reached the agent".to_owned());
        }
        assert_eq!(
            next.header("Content-Type").as_deref(),
            Some("text/event-stream")
        );
        assert!(
            next.body.find("list_changed") < next.body.find("\"after\""),
            "{}",
            next.body
        );
        assert_eq!(text(&next.json()), "after");
        Ok(())
    });
    // It is delivered once.
    let again = client.send(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}));
    assert!(!again.body.contains("list_changed"), "{}", again.body);
    assert!(again.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "ex.surprise"));
    // The streamed call counts by its answer, like any other.
    let metrics = serve.request("GET", "/metrics", &[], None).body;
    assert!(!metrics.contains("outcome=\"streamed\""), "{metrics}");
}

#[test]
fn progress_reaches_the_client_before_the_answer() {
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    let mut stream = client.start(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": 3, "interval_ms": 1000},
        "_meta": {"progressToken": "tok"}}}));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("notifications/progress") {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "ended before any progress: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // The answer is two progress intervals away when the first progress is read.
    assert!(
        !String::from_utf8_lossy(&seen).contains("done after"),
        "progress was held back until the answer"
    );
    stream.read_to_end(&mut seen).unwrap();
    let all = String::from_utf8_lossy(&seen);
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
    assert_eq!(all.matches("notifications/progress").count(), 3, "{all}");
    assert!(all.contains("done after 3 steps"), "{all}");
    assert!(all.ends_with("0\r\n\r\n"), "{all}");
}

#[test]
fn an_idle_agent_hears_of_a_list_change_on_its_get_stream() {
    let serve = Serve::in_temp(&["--io-timeout-ms", "300"]);
    let listening = serve.setup_client("ws-1");
    let mut stream = connect(&serve.addr, WAIT).unwrap();
    let auth = format!("Bearer {}", listening.key);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
        ("Mcp-Session-Id", listening.session.as_str()),
    ];
    let request = head(&serve.addr, "GET", "/mcp/ws-1", &headers);
    stream.write_all(request.as_bytes()).unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n");
    assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
    assert!(seen.contains("Content-Type: text/event-stream"), "{seen}");
    // The stream outlives the connection's I/O timeout (the client sends nothing on it): this
    // wait is the point of the test, not a synchronisation.
    std::thread::sleep(Duration::from_millis(1500));
    // Another session changes the tool list; the listening one sends nothing and still hears.
    let other = serve.client("ws-1", &listening.key);
    assert_eq!(text(&other.call("ex.toggle", json!({}))), "surprise is on");
    read_until(
        &mut stream,
        &mut seen,
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"",
    );
    // Ending the session ends its stream.
    let ended = listening.end();
    assert_eq!(ended.status, 204);
    read_until(&mut stream, &mut seen, "\r\n0\r\n\r\n");
}

/// A `tools/call` of the example server's `progress` tool: `steps` progress notifications a
/// second apart, then the answer `done after {steps} steps`.
fn slow_call(id: usize, steps: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": steps, "interval_ms": 1000},
        "_meta": {"progressToken": format!("slow-{id}")}}})
}

/// What has come on `stream` so far, without waiting for more (the stream stays blocking).
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

fn ping(client: &Client<'_>) {
    let pong = client.send(&json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    assert_eq!(pong.status, 200, "{}", pong.body);
    assert_eq!(pong.json()["result"], json!({}), "{}", pong.body);
}

#[test]
fn a_hundred_slow_calls_hold_no_worker_and_another_agent_is_answered_meanwhile() {
    let dir = TempDir::new();
    let config = settings_file(dir.path(), json!({"max_in_flight": 256}));
    let serve = Serve::start_with(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--workers",
            "2",
            "--max-connections-per-peer",
            "256",
        ],
    );
    let busy = serve.setup_client("ws-1");
    let other_key = serve.agent("ws-1", "other")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = serve.client("ws-1", &other_key);
    let mut calls: Vec<(TcpStream, String)> = (0..100)
        .map(|id| (busy.start(&slow_call(id, 8)), String::new()))
        .collect();
    // Every call is under way: its first progress came (the answer is 7 s further).
    for (stream, seen) in &mut calls {
        read_until(stream, seen, "notifications/progress");
    }
    ping(&other);
    for (stream, seen) in &mut calls {
        read_available(stream, seen);
        assert!(
            !seen.contains("done after"),
            "a slow call finished before the ping was answered: {seen}"
        );
    }
    for (stream, seen) in &mut calls {
        read_until(stream, seen, "done after 8 steps");
    }
}

#[test]
fn calls_held_for_approval_hold_no_worker() {
    let serve = Serve::in_temp(&["--workers", "2"]);
    let client = serve.setup_client("ws-1");
    let policy = json!({"rules": [{"match": "ex.add", "verdict": "escalate"}]});
    let set = serve.admin("PUT", "/workspaces/ws-1/policy", Some(policy));
    assert_eq!(set.status, 200, "{}", set.body);
    let other_key = serve.agent("ws-1", "other")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = serve.client("ws-1", &other_key);
    // Twice as many held calls as workers.
    let mut held: Vec<(TcpStream, String)> = (0..4)
        .map(|n| {
            let call = call_request(n, "ex.add", json!({"a": n, "b": 100}));
            (client.start(&call), String::new())
        })
        .collect();
    let pending = || {
        let list = serve.admin("GET", "/approvals", None).json();
        let ids: Vec<String> = list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "pending")
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, list)
    };
    let ids = retry(Duration::from_millis(20), || match pending() {
        (ids, _) if ids.len() == 4 => Ok(ids),
        (_, list) => Err(format!("not all held: {list}")),
    });
    ping(&other);
    for (stream, seen) in &mut held {
        // A list change may go first on the call's stream; its answer (with its id) may not.
        read_available(stream, seen);
        assert!(!seen.contains("\"id\""), "a held call was answered: {seen}");
    }
    for id in ids {
        let approved = serve.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(approved.status, 200, "{}", approved.body);
    }
    let mut sums: Vec<String> = held
        .iter_mut()
        .map(|(stream, seen)| {
            stream.read_to_string(seen).unwrap();
            text(&parse_response(seen).json())
        })
        .collect();
    sums.sort();
    assert_eq!(sums, ["100", "101", "102", "103"]);
}

#[test]
fn session_quotas_stop_one_agent_and_not_another_workspace() {
    let dir = TempDir::new();
    let quotas = json!({"http": {"max_sessions_per_agent": 5, "max_sessions_per_workspace": 8}});
    let config = settings_file(dir.path(), quotas);
    let serve = Serve::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let key = serve.setup("ws-1");
    let elsewhere = serve.setup("ws-2");
    let init = initialize_request();
    // Opens sessions as `key` until one is refused: how many opened, and the refusal.
    let open_until_refused = |key: &str| {
        let mut opened = Vec::new();
        loop {
            let answer = serve.mcp("ws-1", key, None, &init);
            if answer.status != 200 {
                return (opened, answer);
            }
            opened.push(answer.header("Mcp-Session-Id").unwrap());
            assert!(opened.len() <= 100, "100 sessions and never refused");
        }
    };
    let assert_quota = |refusal: &crate::support::http::Response, quota: &str| {
        assert_eq!(refusal.status, 429, "{}", refusal.body);
        let error = &refusal.json()["error"];
        assert_eq!(error["code"], "session_quota", "{}", refusal.body);
        assert!(
            error["message"].as_str().unwrap().contains(quota),
            "{}",
            refusal.body
        );
    };
    let (first, refusal) = open_until_refused(&key);
    assert_eq!(first.len(), 5);
    assert_quota(&refusal, "http.max_sessions_per_agent");
    // Another workspace's agent is not touched; another agent of the same workspace neither,
    // until the workspace's own quota.
    assert_eq!(serve.mcp("ws-2", &elsewhere, None, &init).status, 200);
    let second_key = serve.agent("ws-1", "second")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (second, refusal) = open_until_refused(&second_key);
    assert_eq!(second.len(), 3);
    assert_quota(&refusal, "http.max_sessions_per_workspace");
    assert_eq!(serve.mcp("ws-2", &elsewhere, None, &init).status, 200);
    // Ending a session gives its place back.
    let auth = format!("Bearer {key}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Mcp-Session-Id", &first[0]),
    ];
    let ended = serve.request("DELETE", "/mcp/ws-1", &headers, None);
    assert_eq!(ended.status, 204);
    assert_eq!(serve.mcp("ws-1", &key, None, &init).status, 200);
}

#[test]
fn mcp_without_a_workspace_in_the_path_serves_the_agent_keys_workspace() {
    let serve = Serve::in_temp(&[]);
    let one = serve.setup("ws-1");
    let two = serve.setup_with(
        "ws-2",
        json!({"name": "two", "command": [gate_bin(), "example-server"]}),
    );
    for (key, prefix) in [(&one, "ex."), (&two, "two.")] {
        let init = serve.mcp_at("/mcp", key, None, &initialize_request());
        assert_eq!(init.status, 200, "{}", init.body);
        let session = init.header("Mcp-Session-Id").unwrap();
        let s = Some(session.as_str());
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let names = listed_names(&serve.mcp_at("/mcp", key, s, &list).json());
        assert!(!names.is_empty());
        assert!(names.iter().all(|n| n.starts_with(prefix)), "{names:?}");
        let echo = call_request(3, &format!("{prefix}echo"), json!({"message": "via /mcp"}));
        assert_eq!(
            text(&serve.mcp_at("/mcp", key, s, &echo).json()),
            "via /mcp"
        );
        // The session's event stream, and its end.
        let auth = format!("Bearer {key}");
        let mut stream = connect(&serve.addr, WAIT).unwrap();
        let get = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", session.as_str()),
        ];
        write!(stream, "{}", head(&serve.addr, "GET", "/mcp", &get)).unwrap();
        let mut seen = String::new();
        read_until(&mut stream, &mut seen, "\r\n\r\n");
        assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
        assert!(seen.contains("Content-Type: text/event-stream"), "{seen}");
        let delete = [
            ("Authorization", auth.as_str()),
            ("Mcp-Session-Id", &session),
        ];
        assert_eq!(serve.request("DELETE", "/mcp", &delete, None).status, 204);
        read_until(&mut stream, &mut seen, "\r\n0\r\n\r\n");
        assert_eq!(serve.mcp_at("/mcp", key, s, &list).status, 404);
    }
    // A key no agent has (and no identity provider to ask): 401, whatever the method.
    let unknown = "agk_not-a-key-of-anyone";
    let init = serve.mcp_at("/mcp", unknown, None, &initialize_request());
    assert_eq!(init.status, 401, "{}", init.body);
    let auth = format!("Bearer {unknown}");
    for method in ["GET", "DELETE"] {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", "whatever"),
        ];
        let refused = serve.request(method, "/mcp", &headers, None);
        assert_eq!(refused.status, 401, "{method}: {}", refused.body);
    }
    let anonymous = serve.post_mcp_at("/mcp", &[], &initialize_request().to_string());
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
}

#[test]
fn a_legacy_client_that_ends_its_side_early_still_gets_its_answer() {
    // In a session (2025-11-25 and before) a disconnection is no cancellation: a client that
    // shuts its sending side after its request still reads the answer.
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    let mut stream = client.start(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "ex.sleep", "arguments": {"ms": 1500}}}));
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut seen = Vec::new();
    stream.read_to_end(&mut seen).unwrap();
    let all = String::from_utf8_lossy(&seen);
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
    assert!(all.contains("slept 1500 ms"), "{all}");
    assert!(
        !serve.log().contains("cancelled request"),
        "{}",
        serve.log()
    );
}

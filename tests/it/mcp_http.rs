//! MCP over Streamable HTTP (`/mcp/{workspace}`) with our own requests: sessions, the transport's
//! checks (origin, host, accept, protocol version), answers as JSON or event streams, progress,
//! and list changes on the next answer or on the session's GET stream.

use crate::support::http::{connect, head, read_until};
use crate::support::{call_request, initialize_request, listed_names, retry, text, Serve, WAIT};
use serde_json::json;
use std::io::{Read, Write};
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
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": 3, "interval_ms": 1000},
        "_meta": {"progressToken": "tok"}}})
    .to_string();
    let mut stream = connect(&serve.addr, WAIT).unwrap();
    let (auth, length) = (format!("Bearer {}", client.key), body.len().to_string());
    let headers = [
        ("Connection", "close"),
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", client.session.as_str()),
        ("Content-Length", length.as_str()),
    ];
    let request = head(&serve.addr, "POST", "/mcp/ws-1", &headers) + &body;
    stream.write_all(request.as_bytes()).unwrap();
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

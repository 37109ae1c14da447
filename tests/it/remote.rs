//! Remote MCP servers over Streamable HTTP as downstreams (another gate serves as the remote):
//! `kind: http` connections registered over REST, and `url` servers in a stdio config; their
//! headers are credentials, encrypted at rest and never logged.

use crate::support::{
    call_request, gate, initialize_request, last_answer, pipe_through, retry, Serve, TempDir,
};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn an_http_connection_reaches_a_remote_server_with_an_encrypted_header() {
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let b = Serve::start(dir_b.path());
    let b_key = b.setup("ws-1");
    let a = Serve::start(dir_a.path());
    let conn = a.connect(
        "wa",
        json!({"name": "remote", "kind": "http", "url": format!("http://{}/mcp/ws-1", b.addr),
            "headers": {"Authorization": format!("Bearer {b_key}")}}),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    assert_eq!(conn.json()["headers"], json!(["Authorization"]));
    assert!(!conn.body.contains(&b_key));
    let state = std::fs::read_to_string(a.data.join("state.json")).unwrap();
    assert!(
        !state.contains(&b_key),
        "the header is stored in plain text"
    );
    // A URL of another scheme is refused with a reason; so are a command on a remote kind and a
    // missing url.
    let refused = |body: Value| a.admin("POST", "/connections", Some(body));
    let scheme =
        refused(json!({"workspace_id": "wa", "name": "t", "kind": "http", "url": "ftp://x/mcp"}));
    assert_eq!(scheme.status, 422);
    assert!(scheme.body.contains("https://"), "{}", scheme.body);
    assert_eq!(
        refused(json!({"workspace_id": "wa", "name": "t", "kind": "http"})).status,
        422
    );
    let smuggle = json!({"workspace_id": "wa", "name": "t", "kind": "http", "url": "http://x/",
        "headers": {"Content-Length": "0"}});
    assert_eq!(refused(smuggle).status, 422);
    assert_eq!(
        refused(json!({"workspace_id": "wa", "name": "t", "kind": "http", "url": "http://x/", "command": ["x"]})).status,
        422
    );
    a.activate("wa");
    let key = a.agent("wa", "bot")["key"].as_str().unwrap().to_owned();
    let client = a.client("wa", &key);
    retry(Duration::from_millis(100), || {
        let answer = client.call("remote.ex.echo", json!({"message": "far"}));
        match answer["result"]["content"][0]["text"] == "far" {
            true => Ok(()),
            false => Err(format!("{answer}\n{}", a.log())),
        }
    });
    assert!(!a.log().contains(&b_key), "the header reached the log");
}

#[test]
fn a_stdio_config_reaches_a_url_server_with_headers() {
    let (out, b_key) = through_a_far_gate("far.ex.echo", json!({"message": "over http"}));
    let last = last_answer(&out);
    assert_eq!(
        last["result"]["content"][0]["text"],
        "over http",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&b_key));
    // Another scheme is refused when the config loads, with the reason.
    let dir = TempDir::new();
    let config = dir.path().join("gate.json");
    std::fs::write(
        &config,
        r#"{"mcpServers": {"far": {"url": "ftp://x/mcp"}}}"#,
    )
    .unwrap();
    let refused = gate(&["stdio", "--config"]).arg(&config).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("http:// or https://"));
}

#[test]
fn a_gate_behind_a_gate_is_spoken_to_in_2026_07_28_with_its_mcp_param_headers() {
    // The far gate speaks 2026-07-28: the near gate's probe finds it, and a call of a tool with
    // an `x-mcp-header` property (the example server's get_env) carries its Mcp-Param header,
    // which the far gate checks (a call without it would be refused with -32020).
    let (out, _) = through_a_far_gate("far.ex.get_env", json!({"name": "Hé llo"}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = last_answer(&out);
    assert_eq!(
        last["result"]["content"][0]["text"],
        "(unset)",
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("connection far: discovered (protocol 2026-07-28)"),
        "{stderr}"
    );
}

/// A stdio gate whose one server `far` is a serve's workspace `ws-1` (a `url` entry with the
/// agent key's header), sent `initialize` and a call of `tool`: its output, and the key.
fn through_a_far_gate(tool: &str, arguments: Value) -> (std::process::Output, String) {
    let (dir, dir_b) = (TempDir::new(), TempDir::new());
    let b = Serve::start(dir_b.path());
    let b_key = b.setup("ws-1");
    let config = dir.path().join("gate.json");
    let servers = json!({"mcpServers": {"far": {
        "url": format!("http://{}/mcp/ws-1", b.addr),
        "headers": {"Authorization": format!("Bearer {b_key}")}}}});
    std::fs::write(&config, servers.to_string()).unwrap();
    let mut cmd = gate(&["stdio", "--config"]);
    cmd.arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let out = pipe_through(
        cmd,
        &[initialize_request(), call_request(2, tool, arguments)],
    );
    (out, b_key)
}

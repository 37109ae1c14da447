//! The gate between real peers: server-everything and mcp-server-time as its children over stdio,
//! the Python SDK client upstream over stdio and over Streamable HTTP, and the MCP Inspector's CLI
//! over `/mcp`. `main.rs` runs these only when every peer is there.

use crate::support::{
    assert_success, call_request, gate_bin, live_group_members, repo_file, retry,
    spawn_reading_stdout, text, wait_exit, Gate, Serve, TempDir, SECRET, WAIT,
};
use crate::Peers;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

fn servers(peers: &Peers) -> Value {
    json!({
        "everything": { "command": peers.everything },
        "time": { "command": peers.python, "args": ["-m", "mcp_server_time"], "env": { "TZ": "UTC" } },
    })
}

fn run_python_client(peers: &Peers, mode: &str) -> Value {
    let dir = TempDir::new();
    let config = dir.path().join("mcp.json");
    std::fs::write(&config, json!({ "mcpServers": servers(peers) }).to_string()).unwrap();
    let out = Command::new(&peers.python)
        .arg(repo_file("tests/peers/python_client.py"))
        .args(["--mode", mode, "--timeout", "60", "--command", gate_bin()])
        .args(["--arg", "stdio", "--arg=--config", "--arg"])
        .arg(&config)
        .arg("--arg=--data-dir")
        .arg("--arg")
        .arg(dir.path().join("data"))
        .args(["--call", "everything.echo", r#"{"message": "hi"}"#])
        .args(["--call", "time.get_current_time", r#"{"timezone": "UTC"}"#])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed in {mode} mode:\n{stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// What the SDK says it negotiated in `mode`: the protocol version and how it settled the era
/// (peer_common.py's "handshake"). Auto mode adopts 2026-07-28: the gate answers
/// `server/discover` with it.
fn negotiated(mode: &str) -> (&'static str, &'static str) {
    match mode {
        "auto" => ("2026-07-28", "discover"),
        "legacy" => ("2025-11-25", "initialize"),
        "2026-07-28" => ("2026-07-28", "pinned"),
        other => panic!("no such mode: {other}"),
    }
}

fn check_client_report(report: &Value, mode: &str) {
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "everything.echo",
        "everything.get-sum",
        "time.get_current_time",
    ] {
        assert!(
            tools.contains(&expected),
            "{mode}: {expected} missing from {tools:?}"
        );
    }
    let (version, handshake) = negotiated(mode);
    assert_eq!(report["protocol_version"], version, "{mode}: {report}");
    assert_eq!(report["handshake"], handshake, "{mode}: {report}");
    // Discover and initialize name the gate; a pinned client asked nobody.
    if handshake != "pinned" {
        assert_eq!(
            report["server_info"]["name"], "aegis-gate",
            "{mode}: {report}"
        );
    }
    assert_eq!(report["calls"]["everything.echo"]["text"], "Echo: hi");
    assert_eq!(report["calls"]["everything.echo"]["is_error"], false);
    let time = report["calls"]["time.get_current_time"]["text"]
        .as_str()
        .unwrap();
    assert!(time.contains("\"timezone\": \"UTC\""), "{time}");
}

pub(crate) fn python_sdk_client_in_auto_mode_adopts_2026_07_28_and_calls_through_the_gate(
    peers: &Peers,
) {
    check_client_report(&run_python_client(peers, "auto"), "auto");
}

pub(crate) fn python_sdk_client_in_legacy_mode_calls_through_the_gate(peers: &Peers) {
    check_client_report(&run_python_client(peers, "legacy"), "legacy");
}

pub(crate) fn server_everything_is_merged_called_and_torn_down_with_sigterm(peers: &Peers) {
    let mut gate = Gate::ready(servers(peers), json!({ "teardown_grace_ms": 500 }));
    let names = gate.tool_names();
    assert!(names.contains(&"everything.echo".to_owned()), "{names:?}");
    assert!(names.contains(&"time.convert_time".to_owned()), "{names:?}");
    assert_eq!(
        text(&gate.call("everything.echo", json!({"message": "through"}))),
        "Echo: through"
    );
    let sum = gate.call("everything.get-sum", json!({"a": 2, "b": 40}));
    assert!(text(&sum).contains("42"), "{sum}");
    let pids: Vec<u32> = gate
        .log()
        .lines()
        .filter_map(|l| l.split("child pid ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{}", gate.log());
    gate.close_stdin();
    // server-everything ignores stdin EOF once its timers run: only SIGTERM ends it.
    assert!(gate.wait_exit(Duration::from_secs(30)).success());
    for pid in pids {
        assert_eq!(
            live_group_members(pid),
            Vec::<u32>::new(),
            "group {pid} left behind"
        );
    }
}

pub(crate) fn python_sdk_client_over_streamable_http_in_auto_legacy_and_2026_07_28_mode(
    peers: &Peers,
) {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let url = format!("http://{}/mcp/ws-1", serve.addr);
    let auth = format!("Authorization:Bearer {key}");
    let client = |args: &[&str]| {
        let mut cmd = Command::new(&peers.python);
        cmd.arg(repo_file("tests/peers/python_http_client.py"))
            .args(["--url", &url, "--header", &auth])
            .args(args);
        cmd
    };
    for mode in ["auto", "legacy", "2026-07-28"] {
        let out = client(&["--mode", mode, "--timeout", "60"])
            .args(["--call", "ex.echo", r#"{"message": "hi"}"#])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}\n{}", serve.log());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["calls"]["ex.echo"]["text"], "hi", "{report}");
        let (version, handshake) = negotiated(mode);
        assert_eq!(report["protocol_version"], version, "{mode}: {report}");
        assert_eq!(report["handshake"], handshake, "{mode}: {report}");
        assert!(report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "ex.weather"));
    }
    // An idle SDK client hears of a list change made by another session: through its GET stream
    // at 2025-11-25, through a subscriptions/listen stream at 2026-07-28 (what auto mode adopts).
    for (mode, via) in [("auto", "listen"), ("legacy", "session")] {
        let mut cmd = client(&["--mode", mode, "--timeout", "60", "--await-list-change"]);
        let (waiting, mut stdout, line) = spawn_reading_stdout(cmd.stderr(Stdio::piped()));
        assert!(line.contains("awaiting_list_change"), "{mode}: {line:?}");
        let other = serve.client("ws-1", &key);
        other.call("ex.toggle", json!({}));
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let out = waiting.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.log()
        );
        let report: Value = serde_json::from_str(rest.trim()).unwrap();
        assert_eq!(report["list_changed"], true, "{report}");
        assert_eq!(report["list_changed_via"], via, "{mode}: {report}");
    }
    let bad_origin = client(&["--header", "Origin:http://evil.example"])
        .args(["--expect-http-error", "403"])
        .output()
        .unwrap();
    assert_success(&bad_origin);
}

pub(crate) fn server_everything_get_env_sees_the_decrypted_secret_and_no_gate_variable(
    peers: &Peers,
) {
    let everything = peers.everything.to_str().unwrap();
    let serve = Serve::in_temp(&["--allow-command", everything]);
    let key = serve.setup_with(
        "ws-e",
        json!({"name": "everything", "command": [everything], "env": {"MY_SECRET": SECRET}}),
    );
    let client = serve.client("ws-e", &key);
    // server-everything is still starting (npx-free, but node takes a moment).
    let env = retry(Duration::from_millis(100), || {
        let r = client.send(&call_request(5, "everything.get-env", json!({})));
        match r.json()["result"].is_object() {
            true => Ok(r.body),
            false => Err(format!("get-env never answered: {}", r.body)),
        }
    });
    assert!(
        env.contains(SECRET),
        "the child did not get the decrypted secret: {env}"
    );
    assert!(
        !env.contains("AEGIS_"),
        "a gate variable reached the child: {env}"
    );
}

pub(crate) fn python_sdk_client_over_http_is_answered_after_idle_gaps_in_one_session(
    peers: &Peers,
) {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let url = format!("http://{}/mcp/ws-1", serve.addr);
    // The SDK keeps its connections alive in a pool (here for 60 s, the gate's keep-alive; the
    // pool's default of 5 s would open new connections after each gap). After 20 s of silence,
    // then 10 s twice, each call goes out on a connection that sat idle: the old front answered
    // none after 15 s without a new connection (its accept loop was rebuilt and the kept-alive
    // connections were left with nothing reading their requests).
    let mut cmd = Command::new(&peers.python);
    cmd.arg(repo_file("tests/peers/python_http_client.py"))
        .args([
            "--url",
            &url,
            "--header",
            &format!("Authorization:Bearer {key}"),
        ])
        .args(["--timeout", "90", "--keepalive-expiry", "60"])
        .args(["--idle", "20", "--idle", "10", "--idle", "10"]);
    for word in ["one", "two", "three", "four"] {
        cmd.args(["--call", "ex.echo", &json!({ "message": word }).to_string()]);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", serve.log());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<(&str, bool)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap(),
                r["is_error"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("one", false),
            ("two", false),
            ("three", false),
            ("four", false)
        ],
        "{report}"
    );
}

pub(crate) fn mcp_inspector_cli_lists_and_calls_tools_over_mcp_with_a_bearer_header(peers: &Peers) {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let dir = TempDir::new();
    let url = format!("http://{}/mcp", serve.addr);
    // `inspector --cli URL --transport http --header ... ARGS`; its exit status and the result it
    // wrote (JSON), its stderr in the failure message.
    let run = |bearer: &str, args: &[&str]| {
        let (result, stderr) = (dir.path().join("result.json"), dir.path().join("stderr"));
        let _ = std::fs::remove_file(&result);
        let mut child = Command::new(&peers.node22)
            .arg(&peers.inspector)
            .args(["--cli", &url, "--transport", "http", "--header"])
            .arg(format!("Authorization: Bearer {bearer}"))
            .args(args)
            .arg("--output")
            .arg(&result)
            // Its catalog and OAuth state go under HOME: the temp dir, not the user's.
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
        let status = wait_exit(&mut child, WAIT * 3, log);
        let written = std::fs::read_to_string(&result).ok();
        (
            status,
            written.map(|r| serde_json::from_str::<Value>(&r).unwrap()),
            log(),
        )
    };
    let (status, listed, stderr) = run(&key, &["--method", "tools/list"]);
    assert!(status.success(), "{stderr}\n{}", serve.log());
    let listed = listed.unwrap();
    for tool in ["ex.echo", "ex.weather"] {
        assert!(
            listed["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == tool),
            "{tool} missing: {listed}"
        );
    }
    let call = [
        "--method",
        "tools/call",
        "--tool-name",
        "ex.echo",
        "--tool-arg",
        "message=from the inspector",
    ];
    let (status, called, stderr) = run(&key, &call);
    assert!(status.success(), "{stderr}\n{}", serve.log());
    let called = called.unwrap();
    assert_eq!(
        called["content"][0]["text"], "from the inspector",
        "{called}"
    );
    // A wrong key: refused, and the inspector says so instead of listing.
    let (status, listed, _) = run("agk_wrong", &["--method", "tools/list"]);
    assert!(!status.success());
    assert_eq!(listed, None);
}

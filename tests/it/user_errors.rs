//! What a person reads when something goes wrong (issue 17): errors that name their cause and
//! say what to do, nothing lost on a failed start, and no secret in any of it. Every test drives
//! the binary and asserts on the words a user sees: stdout, stderr, the log, REST answers.

use crate::support::http::Endpoint;
use crate::support::{
    gate, initialize_request, pipe_through, retry, spawn_reading_stdout, write_file, Gate, Serve,
    TempDir, WAIT,
};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A header value the tests hand the gate; it must never come back.
const HEADER_SECRET: &str = "Bearer wrong-secret-4711";
/// An env value the tests hand a child; it must never come back.
const ENV_SECRET: &str = "tok-secret-5150";
/// What a server that wants credentials answers (a REST error, not JSON-RPC).
const REFUSAL: &str =
    r#"{"error":{"code":"unauthorized","message":"missing or invalid bearer token"}}"#;

/// `aegis-gate serve` on `data` at `listen` as a person starts it: no `AEGIS_ADMIN_TOKEN`.
fn serve_by_hand(data: &Path, listen: &str) -> Command {
    let mut cmd = gate(&["serve", "--listen", listen, "--data-dir"]);
    cmd.arg(data).env_remove("AEGIS_ADMIN_TOKEN");
    cmd
}

/// The health of connection `id` as `GET /connections/{id}` answers it, once `last_error`
/// contains `needle` (fails after [`WAIT`] with the last answer and the log).
fn last_error_with(serve: &Serve, id: &str, needle: &str) -> Value {
    retry(Duration::from_millis(100), || {
        let got = serve.admin("GET", &format!("/connections/{id}"), None);
        let health = got.json()["health"].clone();
        match health["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(needle)
        {
            true => Ok(health),
            false => Err(format!("{}\n{}", got.body, serve.log())),
        }
    })
}

/// An executable script in `dir` that reads the gate's first line, writes to stderr (its secret
/// among it) and exits 1.
fn failing_script(dir: &Path) -> String {
    let script = "#!/bin/sh\n\
        read -r first\n\
        echo \"starting with token $MY_TOKEN\" >&2\n\
        echo 'fatal: cannot open /nonexistent/db.sqlite' >&2\n\
        exit 1\n";
    let path = write_file(dir, "fails.sh", script);
    let made = Command::new("chmod")
        .arg("755")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    path.to_str().unwrap().to_owned()
}

#[test]
fn issue_17_a_bridge_answers_a_401_with_a_json_rpc_error_that_says_what_to_do() {
    let refusing = Endpoint::refusing("/mcp", 401, REFUSAL);
    let mut cmd = gate(&["bridge", "--url", &refusing.url]);
    let headers = json!({ "Authorization": HEADER_SECRET }).to_string();
    cmd.env("AEGIS_BRIDGE_HEADERS", headers);
    let started = Instant::now();
    let out = pipe_through(cmd, &[initialize_request()]);
    assert!(started.elapsed() < Duration::from_secs(10), "not at once");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let answer = &lines[0];
    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    assert_eq!(answer["id"], 1, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP 401 Unauthorized"), "{message}");
    assert!(
        message.contains(
            "the server refused the credentials: set the connection's headers (e.g. Authorization)"
        ),
        "{message}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("wrong-secret-4711"),
            "a header value leaked: {text}"
        );
    }
}

#[test]
fn issue_17_a_remote_connection_refused_with_401_fails_initialize_with_the_reason() {
    let refusing = Endpoint::refusing("/mcp", 401, REFUSAL);
    let serve = Serve::in_temp(&[]);
    let conn = serve.connect(
        "ws-401",
        json!({"name": "far", "kind": "http", "url": refusing.url,
               "headers": {"Authorization": HEADER_SECRET}}),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    let id = conn.json()["id"].as_str().unwrap().to_owned();
    serve.activate("ws-401");
    // Well within the 30 s handshake deadline: the refusal is the reason, not a timeout.
    let health = last_error_with(&serve, &id, "refused initialize: remote answered HTTP 401");
    let last_error = health["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("set the connection's headers (e.g. Authorization)"),
        "{last_error}"
    );
    let log = serve.log();
    assert!(
        log.contains("connection far: refused initialize: remote answered HTTP 401 Unauthorized"),
        "{log}"
    );
    assert!(!log.contains("did not answer initialize in time"), "{log}");
    assert!(
        !log.contains("wrong-secret-4711"),
        "a header value leaked: {log}"
    );
}

#[test]
fn issue_17_a_serve_that_cannot_listen_names_the_address_and_loses_no_token() {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let failed = serve_by_hand(&data, &addr).output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "serve: cannot listen on {addr}: Address already in use"
        )),
        "{stderr}"
    );
    assert!(
        failed.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&failed.stdout)
    );
    drop(taken);
    // The retry shows the token the failed start never showed.
    let mut cmd = serve_by_hand(&data, "127.0.0.1:0");
    let (mut child, mut stdout, first) = spawn_reading_stdout(cmd.stderr(Stdio::null()));
    let mut second = String::new();
    let _ = stdout.read_line(&mut second);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    assert!(
        second.starts_with("admin token (shown once, only its hash is kept): adm_"),
        "no token on the retry: {second:?}"
    );
}

#[test]
fn issue_17_serve_listens_on_a_host_name_and_says_which_address() {
    let dir = TempDir::new();
    let log = dir.path().join("serve.log");
    let mut cmd = serve_by_hand(&dir.path().join("data"), "localhost:0");
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let (mut child, _stdout, first) = spawn_reading_stdout(&mut cmd);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        first.starts_with("listening on http://"),
        "{first:?}\n{log}"
    );
    assert!(log.contains("--listen localhost:0: resolves to "), "{log}");
    assert!(log.contains("; using "), "{log}");
}

#[test]
fn issue_17_a_demo_restart_revokes_the_earlier_demo_key() {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let key_of = |printed: &str| {
        let key = printed.split("Bearer agk_").nth(1).unwrap_or_default();
        format!("agk_{}", key.split('\'').next().unwrap_or_default())
    };
    let (first, printed) = Serve::demo(&data);
    let old_key = key_of(&printed);
    assert!(!printed.contains("revoked"), "{printed}");
    drop(first);
    let (later, printed) = Serve::demo(&data);
    let new_key = key_of(&printed);
    assert!(
        printed.contains("The demo key of an earlier start was revoked: only this one works."),
        "{printed}"
    );
    let refused = later.mcp("demo", &old_key, None, &initialize_request());
    assert_eq!(refused.status, 401, "{}", refused.body);
    let accepted = later.mcp("demo", &new_key, None, &initialize_request());
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("state.json")).unwrap()).unwrap();
    let live = state["agents"]
        .as_object()
        .unwrap()
        .values()
        .filter(|a| a["revoked"] == false)
        .count();
    assert_eq!(live, 1, "{state}");
}

#[test]
fn issue_17_a_failed_child_shows_its_last_stderr_lines_without_its_secrets() {
    let dir = TempDir::new();
    let script = failing_script(dir.path());
    let serve = Serve::in_temp(&["--allow-command", &script]);
    let conn = serve.connect(
        "ws-err",
        json!({"name": "broken", "command": [script], "env": {"MY_TOKEN": ENV_SECRET}}),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    let id = conn.json()["id"].as_str().unwrap().to_owned();
    serve.activate("ws-err");
    let health = last_error_with(&serve, &id, "exited (exit status: 1); stderr: ");
    let last_error = health["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("fatal: cannot open /nonexistent/db.sqlite"),
        "{last_error}"
    );
    assert!(
        last_error.contains("starting with token [redacted]"),
        "{last_error}"
    );
    let answered = serve.admin("GET", &format!("/connections/{id}"), None);
    assert!(!answered.body.contains(ENV_SECRET), "{}", answered.body);
    let log = serve.log();
    assert!(
        !log.contains(ENV_SECRET),
        "an env value reached the log: {log}"
    );
}

#[test]
fn issue_17_the_stdio_gate_logs_a_failed_childs_stderr_without_its_secrets() {
    let dir = TempDir::new();
    let script = failing_script(dir.path());
    let servers = json!({"broken": {"command": script, "env": {"MY_TOKEN": ENV_SECRET}}});
    let gate = Gate::start(servers, json!({}));
    gate.wait_for_log("connection broken: exited (exit status: 1); stderr: ");
    gate.wait_for_log("fatal: cannot open /nonexistent/db.sqlite");
    let log = gate.log();
    assert!(log.contains("starting with token [redacted]"), "{log}");
    assert!(
        !log.contains(ENV_SECRET),
        "an env value reached the log: {log}"
    );
}

#[test]
fn issue_17_a_child_that_echoes_its_input_is_not_an_mcp_server() {
    let gate = Gate::start(json!({"echo": {"command": "cat"}}), json!({}));
    gate.wait_for_log(
        "connection echo: is not an MCP server: it sent the gate's own initialize request back",
    );
    assert!(!gate.log().contains("refused initialize"), "{}", gate.log());
}

#[test]
fn issue_17_shutdown_names_the_signal() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let log = dir.path().to_owned();
    assert!(serve.stop().success());
    let serve_log = read_logs(&log);
    assert!(serve_log.contains("SIGTERM: stopping"), "{serve_log}");
    // Ready: its signal handlers are in place (before them, SIGINT just ends the process).
    let mut stdio = Gate::ready(json!({}), json!({}));
    stdio.signal("INT");
    stdio.wait_exit(WAIT);
    let stdio_log = stdio.log();
    assert!(stdio_log.contains("SIGINT; shutting down"), "{stdio_log}");
    assert!(!stdio_log.contains("signal 2"), "{stdio_log}");
}

/// Every `serve-*.log` the harness wrote in `dir`, together.
fn read_logs(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

#[test]
fn issue_17_json_answers_end_with_a_newline() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-nl");
    let health = serve.request("GET", "/healthz", &[], None);
    assert_eq!(health.body, "{\"status\":\"ok\"}\n");
    let workspaces = serve.admin("GET", "/workspaces", None);
    assert!(workspaces.body.ends_with("}\n"), "{:?}", workspaces.body);
    let refused = serve.request("GET", "/api/v1/aegis/workspaces", &[], None);
    assert_eq!(refused.status, 401);
    assert!(refused.body.ends_with("}\n"), "{:?}", refused.body);
    let init = serve.mcp("ws-nl", &key, None, &initialize_request());
    assert!(init.body.ends_with('\n'), "{:?}", init.body);
}

#[test]
fn issue_17_a_data_dir_that_is_a_file_is_named_as_such() {
    let dir = TempDir::new();
    let file = write_file(dir.path(), "not-a-dir", "");
    let out = serve_by_hand(&file, "127.0.0.1:0").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = format!("the data dir {} is a file, not a directory", file.display());
    assert!(stderr.contains(&said), "{stderr}");
    assert!(!stderr.contains("os error 17"), "{stderr}");
    let config = write_file(dir.path(), "gate.json", r#"{"mcpServers": {}}"#);
    let below = file.join("data");
    let mut cmd = gate(&["stdio", "--config"]);
    cmd.arg(&config).arg("--data-dir").arg(&below);
    let out = pipe_through(cmd, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = format!("{} is a file, not a directory", file.display());
    assert!(stderr.contains(&said), "{stderr}");
}

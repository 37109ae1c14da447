//! Serve mode end to end through the real binary: the REST admin API, secrets at rest, MCP over
//! Streamable HTTP (our own requests and the official Python SDK client), restarts.

use crate::support::{gate_bin, TempDir, WAIT};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const ADMIN: &str = "test-admin-token";
pub(crate) const SECRET: &str = "s3cret-value-7f3a";

pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) data: PathBuf,
    pub(crate) log: PathBuf,
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: String,
}

impl Response {
    /// The JSON body, or for server-sent events the answer among them (the last data line).
    pub(crate) fn json(&self) -> Value {
        if self.body.starts_with("event:") {
            let last = self
                .body
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_default();
            return serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", self.body));
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl Serve {
    pub(crate) fn start(dir: &Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// Starts `serve` with `extra` arguments after the usual ones.
    pub(crate) fn start_with(dir: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, extra, &[])
    }

    /// The same, with extra environment variables.
    pub(crate) fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let data = dir.join("data");
        let log = dir.join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(gate_bin())
            .args([
                "--log-level",
                "debug",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&data)
            .args([
                "--allow-command",
                gate_bin(),
                "--allow-origin",
                "http://allowed.example",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .env("AEGIS_ADMIN_TOKEN", ADMIN)
            .env("AEGIS_TEST_GATE_ONLY", "gate-only")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_owned();
        Serve {
            child,
            addr,
            data,
            log,
        }
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            text.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        // A server may answer (413, 401…) and close before it has read a whole body; the
        // answer is still there to read.
        let _ = stream.write_all(text.as_bytes());
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Response {
            status,
            headers: head.to_owned(),
            body: if chunked {
                dechunk(body)
            } else {
                body.to_owned()
            },
        }
    }

    pub(crate) fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {ADMIN}");
        let text = body.map(|b| b.to_string());
        self.request(
            method,
            &format!("/api/v1/aegis{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            text.as_deref(),
        )
    }

    pub(crate) fn mcp(
        &self,
        ws: &str,
        key: &str,
        session: Option<&str>,
        message: &Value,
    ) -> Response {
        let auth = format!("Bearer {key}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        self.request(
            "POST",
            &format!("/mcp/{ws}"),
            &headers,
            Some(&message.to_string()),
        )
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Registers the example server with a secret, activates the workspace, creates an agent.
    pub(crate) fn setup(&self, ws: &str) -> String {
        let conn = self.admin(
            "POST",
            "/connections",
            Some(json!({
            "workspace_id": ws, "name": "ex", "command": [gate_bin(), "example-server", "--poison"],
            "env": {"MY_SECRET": SECRET}})),
        );
        assert_eq!(conn.status, 201, "{}", conn.body);
        assert_eq!(
            self.admin("POST", &format!("/workspaces/{ws}/activate"), None)
                .status,
            200
        );
        let agent = self.admin(
            "POST",
            "/agents",
            Some(json!({"workspace_id": ws, "name": "bot"})),
        );
        assert_eq!(agent.status, 201, "{}", agent.body);
        agent.json()["key"].as_str().unwrap().to_owned()
    }

    /// Initializes an MCP session and returns its id.
    pub(crate) fn session(&self, ws: &str, key: &str) -> String {
        let init = self.mcp(
            ws,
            key,
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
        );
        assert_eq!(init.status, 200, "{}", init.body);
        init.header("Mcp-Session-Id").expect("session id")
    }

    pub(crate) fn call(
        &self,
        ws: &str,
        key: &str,
        session: &str,
        tool: &str,
        args: Value,
    ) -> Value {
        let r = self.mcp(
            ws,
            key,
            Some(session),
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `stdio --workspace WS` on `data` with one `tools/call`; returns the call's answer.
/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn stdio_call(data: &Path, ws: &str, extra: &[&str], tool: &str, args: Value) -> Value {
    let mut child = Command::new(gate_bin())
        .args(["stdio", "--workspace", ws, "--data-dir"])
        .arg(data)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let input = format!(
        "{}\n{}\n",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}})
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
}

fn text(v: &Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

#[test]
fn rest_routes_refuse_what_they_must_and_change_nothing_on_bad_input() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let cases: Vec<(u16, Response)> = vec![
        (401, serve.request("GET", "/api/v1/aegis/connections", &[], None)),
        (401, serve.request("GET", "/api/v1/aegis/connections", &[("Authorization", "Bearer wrong")], None)),
        (400, serve.admin("POST", "/connections", None)),
        (400, serve.request("POST", "/api/v1/aegis/connections", &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "application/json")], Some("{not json"))),
        (415, serve.request("POST", "/api/v1/aegis/connections", &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "text/plain")], Some("{}"))),
        (400, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin()], "surprise": 1})))),
        (422, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "bad name", "command": [gate_bin()]})))),
        (403, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["/bin/true"]})))),
        (400, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["sh", "-c", "id"]})))),
        (400, serve.admin("POST", "/connections", Some(json!({"workspace_id": "w", "name": "a", "command": ["/usr/bin/python3", "-c", "1"]})))),
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
    let ok = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "example-server"]})),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let dup = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "w", "name": "a", "command": [gate_bin(), "example-server"]})),
    );
    assert_eq!(dup.status, 409);
}

#[test]
fn secrets_are_encrypted_at_rest_reach_the_child_and_appear_nowhere_else() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let listed = serve.admin("GET", "/connections?workspace_id=ws-1", None);
    assert!(
        listed.body.contains("MY_SECRET") && !listed.body.contains(SECRET),
        "{}",
        listed.body
    );
    let session = serve.session("ws-1", &key);
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.get_env",
            json!({"name": "MY_SECRET"})
        )),
        SECRET
    );
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.get_env",
            json!({"name": "AEGIS_ADMIN_TOKEN"})
        )),
        "(unset)"
    );
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.get_env",
            json!({"name": "AEGIS_TEST_GATE_ONLY"})
        )),
        "(unset)"
    );
    let data_dir = serve.data.clone();
    let log = serve.log();
    assert!(serve.stop().success());
    assert!(
        !log.contains(SECRET) && !log.contains(ADMIN),
        "a secret reached the log"
    );
    for entry in walk(&data_dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
            || bytes.windows(ADMIN.len()).any(|w| w == ADMIN.as_bytes());
        assert!(!found, "a secret is in {}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn mcp_over_http_sessions_and_transport_checks() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let other_key = serve
        .admin(
            "POST",
            "/agents",
            Some(json!({"workspace_id": "ws-2", "name": "x"})),
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    assert_eq!(serve.mcp("ws-1", "agk_wrong", None, &init).status, 401);
    assert_eq!(
        serve.mcp("ws-1", &other_key, None, &init).status,
        401,
        "an agent of another workspace"
    );
    let auth = format!("Bearer {key}");
    let post = |extra: &[(&str, &str)]| {
        let mut h = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        h.extend_from_slice(extra);
        serve
            .request("POST", "/mcp/ws-1", &h, Some(&init.to_string()))
            .status
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

    let session = serve.session("ws-1", &key);
    let list = serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    let names = crate::support::listed_names(&list.json());
    assert!(
        names.contains(&"ex.echo".to_owned()) && !names.contains(&"ex.poisoned_add".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.echo",
            json!({"message": "over http"})
        )),
        "over http"
    );
    let discover = serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover"}),
    );
    assert_eq!(discover.json()["error"]["code"], -32601);
    let note = serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(note.status, 202);
    let progress = serve.mcp("ws-1", &key, Some(&session), &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"}}}));
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
    assert_eq!(
        serve
            .mcp(
                "ws-1",
                &key,
                None,
                &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
            )
            .status,
        400
    );
    assert_eq!(
        serve
            .mcp(
                "ws-1",
                &key,
                Some("not-a-session"),
                &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
            )
            .status,
        404
    );
    let delete = serve.request(
        "DELETE",
        "/mcp/ws-1",
        &[("Authorization", &auth), ("Mcp-Session-Id", &session)],
        None,
    );
    assert_eq!(delete.status, 204);
    assert_eq!(
        serve
            .mcp(
                "ws-1",
                &key,
                Some(&session),
                &json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"})
            )
            .status,
        404
    );
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
fn live_changes_and_a_restart_bring_everything_back() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let second = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-1", "name": "more",
        "command": [gate_bin(), "example-server", "--extra-tools", "1"]})),
    );
    assert_eq!(second.status, 201);
    let session = serve.session("ws-1", &key);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = serve.mcp(
            "ws-1",
            &key,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "more.tool_0", "arguments": {"message": "live"}}}),
        );
        if r.json()["result"].is_object() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the added connection never served: {}",
            r.body
        );
        // The new child is starting; polling its readiness, bounded by the deadline.
        std::thread::sleep(Duration::from_millis(50));
    }
    let tools = serve.admin("GET", "/workspaces/ws-1/tools", None).json();
    let held = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ex.poisoned_add")
        .unwrap()
        .clone();
    assert_eq!(held["verdict"], "held");
    assert!(serve.stop().success());

    let serve = Serve::start(dir.path());
    let deadline = Instant::now() + WAIT;
    loop {
        let ws = serve.admin("GET", "/workspaces/ws-1", None).json();
        let healthy = ws["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["health"]["status"] == "healthy")
            .count();
        if healthy == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not back after restart: {ws}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = serve.session("ws-1", &key);
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.get_env",
            json!({"name": "MY_SECRET"})
        )),
        SECRET
    );
}

fn peers_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/venv/bin/python");
    let python = std::env::var_os("AEGIS_PEERS_DIR")
        .map_or(python, |d| PathBuf::from(d).join("venv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI=true the Python SDK must be installed"
    );
    eprintln!("skipping: the Python SDK venv is missing; .ci/run installs it");
    None
}

#[test]
fn python_sdk_client_over_streamable_http_in_auto_and_legacy_mode() {
    let Some(python) = peers_python() else { return };
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/python_http_client.py");
    let url = format!("http://{}/mcp/ws-1", serve.addr);
    for mode in ["auto", "legacy"] {
        let out = Command::new(&python)
            .arg(&script)
            .args([
                "--mode",
                mode,
                "--timeout",
                "60",
                "--url",
                &url,
                "--header",
                &format!("Authorization:Bearer {key}"),
            ])
            .args(["--call", "ex.echo", r#"{"message": "hi"}"#])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}\n{}", serve.log());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["calls"]["ex.echo"]["text"], "hi", "{report}");
        assert_eq!(report["protocol_version"], "2025-11-25");
        assert!(report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "ex.weather"));
    }
    // An idle SDK client hears of a list change made by another session: through its GET stream.
    for mode in ["auto", "legacy"] {
        let mut waiting = Command::new(&python)
            .arg(&script)
            .args(["--mode", mode, "--timeout", "60", "--url", &url])
            .args(["--header", &format!("Authorization:Bearer {key}")])
            .arg("--await-list-change")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(waiting.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.contains("awaiting_list_change"), "{mode}: {line:?}");
        let other = serve.session("ws-1", &key);
        serve.call("ws-1", &key, &other, "ex.toggle", json!({}));
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
    }
    let bad_origin = Command::new(&python)
        .arg(&script)
        .args([
            "--url",
            &url,
            "--header",
            &format!("Authorization:Bearer {key}"),
            "--header",
            "Origin:http://evil.example",
        ])
        .args(["--expect-http-error", "403"])
        .output()
        .unwrap();
    assert!(
        bad_origin.status.success(),
        "{}",
        String::from_utf8_lossy(&bad_origin.stderr)
    );
}

#[test]
fn serve_demo_prints_commands_that_work() {
    let dir = TempDir::new();
    let (child, printed) = demo_output(&dir.path().join("data"), &[]);
    let addr = printed
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("listening on http://")
        .to_owned();
    assert!(printed.contains("admin token (shown once"), "{printed}");
    let key = printed
        .split("Bearer agk_")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let serve = Serve {
        child,
        addr,
        data: dir.path().join("data"),
        log: dir.path().join("none.log"),
    };
    let session = serve.session("demo", &format!("agk_{key}"));
    assert_eq!(
        text(&serve.call(
            "demo",
            &format!("agk_{key}"),
            &session,
            "hello.echo",
            json!({"message": "hi"})
        )),
        "hi"
    );
    // One state file: the workspace, its agent and the pins of its tools.
    let state: Value =
        serde_json::from_slice(&std::fs::read(serve.data.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["workspaces"]["demo"]["active"], true);
    assert_eq!(state["agents"].as_object().unwrap().len(), 1);
    assert_eq!(
        state["pins"]["demo"]["hello"]["echo"]["approved"]["by"],
        "first use"
    );
    assert!(!serve.data.join("pins.json").exists());
}

#[test]
fn a_stored_workspace_is_served_over_stdio() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let last = stdio_call(
        &data,
        "ws-1",
        &[],
        "ex.get_env",
        json!({"name": "MY_SECRET"}),
    );
    assert_eq!(text(&last), SECRET);
    let missing = Command::new(gate_bin())
        .args(["stdio", "--workspace", "nope", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no workspace \"nope\""));
    // A config file gives the settings; the connections stay the stored ones.
    let config = dir.path().join("gate.json");
    std::fs::write(
        &config,
        r#"{"mcpServers": {}, "aegis": {"separator": "__"}}"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let last = stdio_call(
        &data,
        "ws-1",
        &["--config", config],
        "ex__get_env",
        json!({"name": "MY_SECRET"}),
    );
    assert_eq!(text(&last), SECRET);
    std::fs::write(
        dir.path().join("servers.json"),
        r#"{"mcpServers": {"x": {"command": "true"}}}"#,
    )
    .unwrap();
    let refused = Command::new(gate_bin())
        .args(["stdio", "--workspace", "ws-1", "--config"])
        .arg(dir.path().join("servers.json"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("mcpServers must be empty"));
}

#[test]
fn rotate_key_reencrypts_every_secret_and_drops_the_old_key() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    let data = serve.data.clone();
    let data_arg = data.to_str().unwrap().to_owned();
    let refused = Command::new(gate_bin())
        .args(["rotate-key", "--data-dir", &data_arg])
        .output()
        .unwrap();
    assert_ne!(
        refused.status.code(),
        Some(0),
        "rotation under a running serve"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it first"));
    assert!(serve.stop().success());
    let old_key = std::fs::read_to_string(data.join("fernet.key")).unwrap();
    let old_state = std::fs::read_to_string(data.join("state.json")).unwrap();
    let out = Command::new(gate_bin())
        .args(["rotate-key", "--data-dir", &data_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 secrets re-encrypted"));
    let new_key = std::fs::read_to_string(data.join("fernet.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!new_key.contains(','), "the old key is dropped");
    assert_ne!(
        std::fs::read_to_string(data.join("state.json")).unwrap(),
        old_state
    );
    // The secret still reaches the child, decrypted with the new key alone.
    let last = stdio_call(
        &data,
        "ws-1",
        &[],
        "ex.get_env",
        json!({"name": "MY_SECRET"}),
    );
    assert_eq!(text(&last), SECRET);
}

#[test]
fn metrics_count_connections_and_requests() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let session = serve.session("ws-1", &key);
    serve.call("ws-1", &key, &session, "ex.echo", json!({"message": "m"}));
    serve.call("ws-1", &key, &session, "ex.fail", json!({}));
    let metrics = serve.request("GET", "/metrics", &[], None).body;
    assert!(
        metrics.contains("aegis_calls_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aegis_calls_total{outcome=\"tool_error\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aegis_call_duration_seconds_count 2"),
        "{metrics}"
    );
    serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    );
    let metrics = serve.request("GET", "/metrics", &[], None).body;
    assert!(
        metrics.contains("aegis_merger_cache_total{workspace=\"ws-1\",result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aegis_merger_cache_total{workspace=\"ws-1\",result=\"miss\"} 1"),
        "{metrics}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = serve.request("GET", "/metrics", &[], None);
        assert_eq!(metrics.status, 200);
        if metrics
            .body
            .contains("aegis_connections{status=\"healthy\"} 1")
        {
            assert!(
                metrics
                    .body
                    .contains("aegis_http_requests_total{route=\"rest\",status=\"201\"} 2"),
                "{}",
                metrics.body
            );
            assert!(
                metrics
                    .body
                    .contains("aegis_connection_tools{workspace=\"ws-1\",connection=\"ex\"} 10"),
                "{}",
                metrics.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "{}", metrics.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_change_answered_2xx_survives_kill_9() {
    let dir = TempDir::new();
    let mut answered: Vec<String> = Vec::new();
    for round in 0..4 {
        let mut serve = Serve::start(dir.path());
        // Changes as fast as the gate takes them; the gate is killed while they flow.
        let addr = serve.addr.clone();
        let writer = std::thread::spawn(move || {
            let mut done = Vec::new();
            for i in 0..1000 {
                let name = format!("r{round}-a{i}");
                let body = json!({"workspace_id": "ws-d", "name": name}).to_string();
                let Ok(mut stream) = TcpStream::connect(&addr) else {
                    break;
                };
                let request = format!(
                    "POST /api/v1/aegis/agents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(request.as_bytes()).is_err() {
                    break;
                }
                let mut raw = String::new();
                if stream.read_to_string(&mut raw).is_err() || !raw.starts_with("HTTP/1.1 201") {
                    break;
                }
                done.push(name);
            }
            done
        });
        // Let some changes through, then kill without warning.
        let deadline = Instant::now() + WAIT;
        while !std::fs::read_to_string(serve.data.join("state.json"))
            .unwrap_or_default()
            .contains(&format!("r{round}-a3\""))
        {
            assert!(Instant::now() < deadline, "no change reached the disk");
            std::thread::sleep(Duration::from_millis(5));
        }
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        answered.extend(writer.join().unwrap());
    }
    let serve = Serve::start(dir.path());
    let agents = serve.admin("GET", "/agents", None).json();
    let stored: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|n| !stored.contains(&n.as_str()))
        .collect();
    assert!(missing.is_empty(), "answered 2xx but lost: {missing:?}");
    // a3 on disk means the client had read a0..a2's answers (it sends one change at a time);
    // a3's own answer may have been cut off by the kill.
    assert!(
        answered.len() >= 12,
        "only {} changes went through",
        answered.len()
    );
}

#[test]
fn patch_and_put_change_a_running_connection() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let id = serve
        .admin("GET", "/connections?workspace_id=ws-1", None)
        .json()["connections"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = serve.admin(
        "PATCH",
        &format!("/connections/{id}"),
        Some(json!({"env": {"MY_SECRET": "rotated-value"}})),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert!(!patched.body.contains("rotated-value"));
    let session = serve.session("ws-1", &key);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = serve.mcp(
            "ws-1",
            &key,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "ex.get_env", "arguments": {"name": "MY_SECRET"}}}),
        );
        if r.json()["result"]["content"][0]["text"] == "rotated-value" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never reached the child: {}\n{}",
            r.body,
            serve.log()
        );
        // The child restarts with the new env; polling its readiness, bounded by the deadline.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        serve
            .admin(
                "PATCH",
                &format!("/connections/{id}"),
                Some(json!({"surprise": 1}))
            )
            .status,
        400
    );
    assert_eq!(
        serve
            .admin(
                "PUT",
                &format!("/connections/{id}"),
                Some(json!({"enabled": false}))
            )
            .status,
        422
    );
    assert_eq!(
        serve
            .admin(
                "PATCH",
                &format!("/connections/{id}"),
                Some(json!({"command": ["sh", "-c", "id"]}))
            )
            .status,
        400
    );
    let disabled = serve.admin(
        "PATCH",
        &format!("/connections/{id}"),
        Some(json!({"enabled": false})),
    );
    assert_eq!(disabled.json()["enabled"], false);
    assert_eq!(disabled.json()["health"]["status"], "stopped");
}

#[test]
fn server_everything_get_env_sees_the_decrypted_secret_and_no_gate_variable() {
    let everything = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/peers/npm/node_modules/.bin/mcp-server-everything");
    let everything = std::env::var_os("AEGIS_PEERS_DIR").map_or(everything, |d| {
        PathBuf::from(d).join("npm/node_modules/.bin/mcp-server-everything")
    });
    if !everything.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "under CI=true server-everything must be installed"
        );
        eprintln!("skipping: server-everything is missing; .ci/run installs it");
        return;
    }
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let mut child = Command::new(gate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--allow-command")
        .arg(&everything)
        .env("AEGIS_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("listening on http://")
        .to_owned();
    let serve = Serve {
        child,
        addr,
        data,
        log: dir.path().join("none.log"),
    };
    let conn = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-e", "name": "everything",
        "command": [everything.to_str().unwrap()], "env": {"MY_SECRET": SECRET}})),
    );
    assert_eq!(conn.status, 201, "{}", conn.body);
    assert_eq!(
        serve
            .admin("POST", "/workspaces/ws-e/activate", None)
            .status,
        200
    );
    let key = serve
        .admin(
            "POST",
            "/agents",
            Some(json!({"workspace_id": "ws-e", "name": "bot"})),
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = serve.session("ws-e", &key);
    let deadline = Instant::now() + WAIT;
    let env = loop {
        let r = serve.mcp(
            "ws-e",
            &key,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "everything.get-env", "arguments": {}}}),
        );
        if r.json()["result"].is_object() {
            break r.body;
        }
        assert!(
            Instant::now() < deadline,
            "get-env never answered: {}",
            r.body
        );
        // server-everything is still starting (npx-free, but node takes a moment).
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        env.contains(SECRET),
        "the child did not get the decrypted secret: {env}"
    );
    assert!(
        !env.contains("AEGIS_"),
        "a gate variable reached the child: {env}"
    );
}

#[test]
fn a_list_change_reaches_an_http_agent_with_its_next_answer() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let session = serve.session("ws-1", &key);
    assert_eq!(
        text(&serve.call("ws-1", &key, &session, "ex.toggle", json!({}))),
        "surprise is on"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let next = serve.mcp(
            "ws-1",
            &key,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": "after"}}}),
        );
        if next.body.contains("notifications/tools/list_changed") {
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
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the list change never reached the agent"
        );
        // The child re-lists at most once a second; polling for that, bounded by the deadline.
        std::thread::sleep(Duration::from_millis(100));
    }
    // It is delivered once.
    let again = serve.mcp(
        "ws-1",
        &key,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}),
    );
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
fn agents_are_answered_while_a_deleted_connection_tears_down() {
    let dir = TempDir::new();
    let serve = std::sync::Arc::new(Serve::start(dir.path()));
    let key = serve.setup("ws-1");
    let slow = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-1", "name": "slow",
            "command": [gate_bin(), "example-server", "--ignore-eof"]})),
    );
    assert_eq!(slow.status, 201, "{}", slow.body);
    let id = slow.json()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let pid = loop {
        let health = serve
            .admin("GET", &format!("/connections/{id}"), None)
            .json();
        if health["health"]["status"] == "healthy" {
            break health["health"]["pid"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "slow never got ready: {health}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // A stopped child neither sees stdin close nor handles SIGTERM: its teardown runs to the
    // SIGKILL, seconds away.
    let stopped = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let session = serve.session("ws-1", &key);
    let list = |serve: &Serve| {
        serve
            .mcp(
                "ws-1",
                &key,
                Some(&session),
                &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
            )
            .body
    };
    let deadline = Instant::now() + WAIT;
    while !list(&serve).contains("slow.") {
        assert!(Instant::now() < deadline, "slow's tools never arrived");
    }
    let deleting = {
        let serve = serve.clone();
        std::thread::spawn(move || serve.admin("DELETE", &format!("/connections/{id}"), None))
    };
    let deadline = Instant::now() + WAIT;
    while list(&serve).contains("slow.") {
        assert!(Instant::now() < deadline, "slow's tools never left");
    }
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex.echo",
            json!({"message": "meanwhile"})
        )),
        "meanwhile"
    );
    assert!(
        !deleting.is_finished(),
        "the agent was answered only after the teardown"
    );
    assert_eq!(deleting.join().unwrap().status, 200);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the child outlived its DELETE"
    );
}

/// The lines `serve --demo` prints up to its last command.
fn demo_output(data: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(gate_bin())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("tools/call") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "stdout ended: {printed}"
        );
        printed.push_str(&line);
    }
    (child, printed)
}

#[test]
fn the_demo_commands_work_pasted_into_a_shell_on_a_later_start() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have curl (.ci/run installs it)"
        );
        eprintln!("skipped: no curl");
        return;
    }
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let (mut first, printed) = demo_output(&data, &[]);
    let token = printed
        .split("admin token (shown once, only its hash is kept): ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("{printed}"))
        .to_owned();
    first.kill().unwrap();
    first.wait().unwrap();
    // A later start shows `$AEGIS_ADMIN_TOKEN` in place of the token it no longer knows.
    let (mut child, printed) = demo_output(&data, &[]);
    assert!(!printed.contains(&token), "{printed}");
    let commands: String = printed
        .split_once("Paste these in another terminal:")
        .unwrap_or_else(|| panic!("{printed}"))
        .1
        .to_owned();
    let shell = Command::new("sh")
        .args(["-c", &commands])
        .env("AEGIS_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = String::from_utf8_lossy(&shell.stdout);
    assert!(shell.status.success(), "{out}");
    assert!(
        out.contains(r#""id":"demo""#),
        "the admin call failed: {out}"
    );
    assert!(out.contains("hello.echo"), "no tool list: {out}");
    assert!(out.contains(r#""text":"hi""#), "no call result: {out}");
}

#[test]
fn serve_takes_its_settings_from_a_config_file() {
    let dir = TempDir::new();
    let config = dir.path().join("gate.json");
    std::fs::write(
        &config,
        r#"{"mcpServers": {}, "aegis": {"separator": "__"}}"#,
    )
    .unwrap();
    let serve = Serve::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let key = serve.setup("ws-1");
    let session = serve.session("ws-1", &key);
    assert_eq!(
        text(&serve.call(
            "ws-1",
            &key,
            &session,
            "ex__echo",
            json!({"message": "sep"})
        )),
        "sep"
    );
    // A connection name holding the separator would make merged names ambiguous.
    let ambiguous = serve.admin(
        "POST",
        "/connections",
        Some(json!({"workspace_id": "ws-1", "name": "a__b", "command": [gate_bin(), "example-server"]})),
    );
    assert_eq!(ambiguous.status, 422, "{}", ambiguous.body);
    std::fs::write(&config, r#"{"mcpServers": {"x": {"command": "true"}}}"#).unwrap();
    let refused = Command::new(gate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("mcpServers must be empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn progress_reaches_the_client_before_the_answer() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let session = serve.session("ws-1", &key);
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "ex.progress", "arguments": {"steps": 3, "interval_ms": 1000},
        "_meta": {"progressToken": "tok"}}})
    .to_string();
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST /mcp/ws-1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Mcp-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n{body}",
        serve.addr,
        body.len()
    )
    .unwrap();
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
fn a_slow_admin_upload_does_not_hold_up_other_changes() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--io-timeout-ms", "120000"]);
    serve.setup("ws-1");
    // A POST whose body never finishes arriving. `Expect: 100-continue` makes the gate say when
    // its handler starts reading the body (tiny_http reads small bodies itself otherwise).
    let mut slow = TcpStream::connect(&serve.addr).unwrap();
    write!(
        slow,
        "POST /api/v1/aegis/connections HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n",
        serve.addr
    )
    .unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();
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

/// Reads a raw event stream until `want` appears in what came so far; returns it all.
fn read_until(stream: &mut TcpStream, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        match stream.read(&mut buf) {
            Ok(0) => panic!("the stream ended before {want:?}: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("no {want:?} in time ({e}): {seen}"),
        }
    }
}

#[test]
fn an_idle_agent_hears_of_a_list_change_on_its_get_stream() {
    let dir = TempDir::new();
    let serve = Serve::start_with(dir.path(), &["--io-timeout-ms", "300"]);
    let key = serve.setup("ws-1");
    let listening = serve.session("ws-1", &key);
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /mcp/ws-1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Accept: text/event-stream\r\nMcp-Session-Id: {listening}\r\n\r\n",
        serve.addr
    )
    .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n");
    assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
    assert!(seen.contains("Content-Type: text/event-stream"), "{seen}");
    // The stream outlives the connection's I/O timeout (the client sends nothing on it): this
    // wait is the point of the test, not a synchronisation.
    std::thread::sleep(Duration::from_millis(1500));
    // Another session changes the tool list; the listening one sends nothing and still hears.
    let other = serve.session("ws-1", &key);
    assert_eq!(
        text(&serve.call("ws-1", &key, &other, "ex.toggle", json!({}))),
        "surprise is on"
    );
    read_until(
        &mut stream,
        &mut seen,
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"",
    );
    // Ending the session ends its stream.
    let auth = format!("Bearer {key}");
    let ended = serve.request(
        "DELETE",
        "/mcp/ws-1",
        &[("Authorization", &auth), ("Mcp-Session-Id", &listening)],
        None,
    );
    assert_eq!(ended.status, 204);
    read_until(&mut stream, &mut seen, "\r\n0\r\n\r\n");
}

//! The `Serve` harness: a running `aegis-gate serve` on 127.0.0.1:0 with its REST admin API and
//! MCP over HTTP one call away (every test file that needs serve uses this one).
//! Never: shares a data dir between tests; outlives its test (killed and reaped on drop).

use super::http::{self, Response};
use super::{gate, gate_bin, initialize_request, retry, spawn_reading_stdout, TempDir, WAIT};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The admin token every harness-started serve gets through `AEGIS_ADMIN_TOKEN`.
pub const ADMIN: &str = "test-admin-token";
/// The secret `setup` gives the example server as `MY_SECRET`.
pub const SECRET: &str = "s3cret-value-7f3a";

/// A running `aegis-gate serve`.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
    log: PathBuf,
    /// Kept open for the gate's later stdout lines.
    _stdout: BufReader<ChildStdout>,
    /// The temp dir, when the harness made its own.
    _dir: Option<TempDir>,
}

impl Serve {
    pub fn start(dir: &Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// Starts `serve` with `extra` arguments after the usual ones.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, extra, &[])
    }

    /// The same, with extra environment variables.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(gate_bin());
        Serve::launch(&mut cmd, dir, extra, env)
    }

    /// Starts `serve` with `extra` arguments in a temp dir of its own (removed with it).
    pub fn in_temp(extra: &[&str]) -> Serve {
        Serve::in_temp_limited(extra, None)
    }

    /// The same, run from working directory `cwd` (where `npx` finds a local package).
    // Only the `peers` target (tests/peers/) uses it.
    #[allow(dead_code)]
    pub fn in_temp_at(cwd: &Path, extra: &[&str]) -> Serve {
        let dir = TempDir::new();
        let mut cmd = Command::new(gate_bin());
        cmd.current_dir(cwd);
        let mut serve = Serve::launch(&mut cmd, dir.path(), extra, &[]);
        serve._dir = Some(dir);
        serve
    }

    /// The same under a descriptor limit (through the shell's ulimit).
    pub fn under_ulimit(extra: &[&str], nofile: u32) -> Serve {
        Serve::in_temp_limited(extra, Some(nofile))
    }

    fn in_temp_limited(extra: &[&str], nofile: Option<u32>) -> Serve {
        let dir = TempDir::new();
        let mut serve = match nofile {
            Some(n) => {
                let mut cmd = Command::new("sh");
                let script = format!("ulimit -n {n} && exec \"$@\"");
                cmd.arg("-c").arg(script).arg("sh").arg(gate_bin());
                Serve::launch(&mut cmd, dir.path(), extra, &[])
            }
            None => Serve::start_with(dir.path(), extra),
        };
        serve._dir = Some(dir);
        serve
    }

    /// `cmd` (the gate, or a shell that execs it) with serve's usual arguments and environment.
    fn launch(cmd: &mut Command, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let data = dir.join("data");
        let log = dir.join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        cmd.args([
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
        .stderr(std::fs::File::create(&log).unwrap());
        let (child, stdout, line) = spawn_reading_stdout(cmd);
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
            _stdout: stdout,
            _dir: None,
        }
    }

    /// Starts `serve --demo` on `data`; returns it with the lines it printed up to its last
    /// command.
    pub fn demo(data: &Path) -> (Serve, String) {
        let mut cmd = gate(&["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"]);
        cmd.arg(data).stderr(Stdio::null());
        let (child, mut stdout, mut printed) = spawn_reading_stdout(&mut cmd);
        while !printed.contains("tools/call") {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "stdout ended: {printed}"
            );
            printed.push_str(&line);
        }
        let addr = printed
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("listening on http://")
            .to_owned();
        let serve = Serve {
            child,
            addr,
            data: data.to_owned(),
            log: data.join("none.log"),
            _stdout: stdout,
            _dir: None,
        };
        (serve, printed)
    }

    /// One request with `headers` and `body`; the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        http::send(&self.addr, method, path, headers, body, WAIT).unwrap()
    }

    /// `GET path` with a 5 s patience; `Err` when the gate cannot be reached or does not answer.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http::send(&self.addr, "GET", path, &[], None, Duration::from_secs(5))
            .map(|r| (r.status, r.body))
    }

    /// A REST admin call (`/api/v1/aegis{path}`) with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
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

    /// A POST of `body` to `/mcp/{ws}` as an MCP client sends it, with `headers` besides.
    pub fn post_mcp(&self, ws: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.post_mcp_at(&format!("/mcp/{ws}"), headers, body)
    }

    /// The same to any `path` (`/mcp`, where the agent key names the workspace).
    pub fn post_mcp_at(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut all = headers.to_vec();
        all.extend([
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ]);
        self.request("POST", path, &all, Some(body))
    }

    /// An MCP message to workspace `ws` with agent key `key` (in `session`, once there is one).
    pub fn mcp(&self, ws: &str, key: &str, session: Option<&str>, message: &Value) -> Response {
        self.mcp_at(&format!("/mcp/{ws}"), key, session, message)
    }

    /// The same to any `path` (`/mcp`, where the agent key names the workspace).
    pub fn mcp_at(
        &self,
        path: &str,
        key: &str,
        session: Option<&str>,
        message: &Value,
    ) -> Response {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        self.post_mcp_at(path, &headers, &message.to_string())
    }

    /// The gate's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that the gate's stderr so far contains `needle`.
    pub fn assert_logged(&self, needle: &str) {
        let log = self.log();
        assert!(log.contains(needle), "{log}");
    }

    /// Registers the example server with a secret, activates the workspace, creates an agent.
    pub fn setup(&self, ws: &str) -> String {
        self.setup_with(
            ws,
            json!({"name": "ex", "command": [gate_bin(), "example-server", "--poison"],
                   "env": {"MY_SECRET": SECRET}}),
        )
    }

    /// [`Serve::setup`], then a session of its agent.
    pub fn setup_client(&self, ws: &str) -> Client<'_> {
        let key = self.setup(ws);
        self.client(ws, &key)
    }

    /// Registers `connection` in `ws`, activates the workspace, creates an agent; its key.
    pub fn setup_with(&self, ws: &str, connection: Value) -> String {
        let conn = self.connect(ws, connection);
        assert_eq!(conn.status, 201, "{}", conn.body);
        self.activate(ws);
        self.agent(ws, "bot")["key"].as_str().unwrap().to_owned()
    }

    /// `POST /connections` of `connection` in workspace `ws`.
    pub fn connect(&self, ws: &str, mut connection: Value) -> Response {
        connection["workspace_id"] = json!(ws);
        self.admin("POST", "/connections", Some(connection))
    }

    /// Activates workspace `ws`.
    pub fn activate(&self, ws: &str) {
        let activated = self.admin("POST", &format!("/workspaces/{ws}/activate"), None);
        assert_eq!(activated.status, 200, "{}", activated.body);
    }

    /// Creates agent `name` in `ws`; the answer (with its `id` and its `key`).
    pub fn agent(&self, ws: &str, name: &str) -> Value {
        let agent = self.admin(
            "POST",
            "/agents",
            Some(json!({"workspace_id": ws, "name": name})),
        );
        assert_eq!(agent.status, 201, "{}", agent.body);
        agent.json()
    }

    /// Initializes an MCP session and returns its id.
    pub fn session(&self, ws: &str, key: &str) -> String {
        let init = self.mcp(ws, key, None, &initialize_request());
        assert_eq!(init.status, 200, "{}", init.body);
        init.header("Mcp-Session-Id").expect("session id")
    }

    /// An MCP session of agent `key` with workspace `ws`, initialized.
    pub fn client(&self, ws: &str, key: &str) -> Client<'_> {
        Client {
            serve: self,
            ws: ws.to_owned(),
            key: key.to_owned(),
            session: self.session(ws, key),
        }
    }

    /// The same, the agent declaring `capabilities` at `initialize` (`{"sampling": {}}`…).
    pub fn client_declaring(&self, ws: &str, key: &str, capabilities: Value) -> Client<'_> {
        let mut init = initialize_request();
        init["params"]["capabilities"] = capabilities;
        let opened = self.mcp(ws, key, None, &init);
        assert_eq!(opened.status, 200, "{}", opened.body);
        Client {
            serve: self,
            ws: ws.to_owned(),
            key: key.to_owned(),
            session: opened.header("Mcp-Session-Id").expect("session id"),
        }
    }

    /// Waits until the gate holds a call for approval; returns the pending approval.
    pub fn pending_approval(&self) -> Value {
        retry(Duration::from_millis(20), || {
            let list = self.admin("GET", "/approvals", None).json();
            list["approvals"]
                .as_array()
                .and_then(|l| l.iter().find(|a| a["status"] == "pending"))
                .cloned()
                .ok_or(format!("nothing held: {list}"))
        })
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        assert!(super::signal(self.child.id(), "TERM"));
        let log = self.log.clone();
        super::wait_exit(&mut self.child, WAIT, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent in one MCP session with a workspace of a [`Serve`]: what most serve tests act as.
pub struct Client<'s> {
    serve: &'s Serve,
    pub ws: String,
    pub key: String,
    pub session: String,
}

impl Client<'_> {
    /// Sends `message` in the session.
    pub fn send(&self, message: &Value) -> Response {
        self.serve
            .mcp(&self.ws, &self.key, Some(&self.session), message)
    }

    /// Sends `message` in the session on a connection of its own (`Connection: close`) and
    /// returns that connection unread, its reads giving up after [`WAIT`]: for answers a test
    /// reads later or in parts.
    pub fn start(&self, message: &Value) -> TcpStream {
        let body = message.to_string();
        let (auth, length) = (format!("Bearer {}", self.key), body.len().to_string());
        let headers = [
            ("Connection", "close"),
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", self.session.as_str()),
            ("Content-Length", length.as_str()),
        ];
        let path = format!("/mcp/{}", self.ws);
        let request = http::head(&self.serve.addr, "POST", &path, &headers) + &body;
        let mut stream = http::connect(&self.serve.addr, WAIT).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream
    }

    /// Ends the session (`DELETE`).
    pub fn end(&self) -> Response {
        let auth = format!("Bearer {}", self.key);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Mcp-Session-Id", self.session.as_str()),
        ];
        let path = format!("/mcp/{}", self.ws);
        self.serve.request("DELETE", &path, &headers, None)
    }

    /// Sends request `method` with `params` in the session; the answer (which must come as a
    /// 200; from an event stream, the answer among its events).
    pub fn request(&self, method: &str, params: Value) -> Value {
        let r = self.send(&json!({"jsonrpc": "2.0", "id": 8, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        r.json()
    }

    /// Opens the session's GET event stream; the stream (its reads giving up after [`WAIT`])
    /// and what it read so far (the head).
    pub fn listen(&self) -> (TcpStream, String) {
        let auth = format!("Bearer {}", self.key);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", self.session.as_str()),
        ];
        let path = format!("/mcp/{}", self.ws);
        let mut stream = http::connect(&self.serve.addr, WAIT).unwrap();
        let request = http::head(&self.serve.addr, "GET", &path, &headers);
        stream.write_all(request.as_bytes()).unwrap();
        let mut seen = String::new();
        http::read_until(&mut stream, &mut seen, "\r\n\r\n");
        assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
        (stream, seen)
    }

    /// `tools/list`.
    pub fn list(&self) -> Response {
        self.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    }

    /// Calls `tool`; the answer (which must come as a 200).
    pub fn call(&self, tool: &str, args: Value) -> Value {
        let r = self.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

//! The stdio gate harness: `Gate`, a running `aegis-gate stdio` with a config of the test's making
//! (its stdout a pipe, or a Unix socket as Node gives it: `Gate::ready_over_socket`)
//! and a reader thread that buffers its answers (each as JSON and as the bytes the gate wrote),
//! and `pipe_through` for a one-shot run (requests written, stdin closed, every answer read).
//! Never: leaves a gate running after its test (killed and reaped on drop).

use super::{call_request, gate, initialize_request, listed_names, retry, TempDir, WAIT};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The gate running over stdio with a config of our making.
pub struct Gate {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Line>,
    buffered: Vec<Line>,
    next_id: i64,
    pub dir: TempDir,
}

impl Gate {
    /// Starts `aegis-gate stdio` with `{"mcpServers": servers, "aegis": settings}`.
    pub fn start(servers: Value, settings: Value) -> Gate {
        Gate::start_with_env(servers, settings, &[])
    }

    /// [`Gate::start`], then the `initialize` handshake.
    pub fn ready(servers: Value, settings: Value) -> Gate {
        let mut gate = Gate::start(servers, settings);
        gate.initialize();
        gate
    }

    pub fn start_with_env(servers: Value, settings: Value, env: &[(&str, &str)]) -> Gate {
        let (mut cmd, dir) = Gate::command(servers, settings);
        cmd.envs(env.iter().copied());
        Gate::spawn(cmd, dir)
    }

    /// `aegis-gate stdio` over a config of `{"mcpServers": servers, "aegis": settings}` written
    /// in a new temporary dir, which also holds the data dir.
    fn command(servers: Value, settings: Value) -> (Command, TempDir) {
        let dir = TempDir::new();
        let config = dir.path().join("mcp.json");
        let body = json!({ "mcpServers": servers, "aegis": settings });
        std::fs::write(&config, body.to_string()).unwrap();
        let mut cmd = gate(&["--log-level", "debug", "stdio", "--config"]);
        cmd.arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        (cmd, dir)
    }

    /// Runs `cmd` (the gate over stdio, with arguments of the caller's choosing) as a `Gate`
    /// whose stderr goes to `dir/gate.log`.
    pub fn spawn(mut cmd: Command, dir: TempDir) -> Gate {
        cmd.stdout(Stdio::piped());
        let mut child = Gate::spawn_child(cmd, &dir);
        let stdout = child.stdout.take().unwrap();
        Gate::reading(child, stdout, dir)
    }

    /// [`Gate::start`] with the gate's stdout a Unix stream socket, as Node's `child_process`
    /// (the TypeScript SDK, the Inspector) gives it, then the `initialize` handshake.
    pub fn ready_over_socket(servers: Value, settings: Value) -> Gate {
        let (mut cmd, dir) = Gate::command(servers, settings);
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        cmd.stdout(std::os::fd::OwnedFd::from(theirs));
        let child = Gate::spawn_child(cmd, &dir);
        let mut gate = Gate::reading(child, ours, dir);
        gate.initialize();
        gate
    }

    fn spawn_child(mut cmd: Command, dir: &TempDir) -> Child {
        let stderr = std::fs::File::create(dir.path().join("gate.log")).unwrap();
        cmd.stdin(Stdio::piped()).stderr(stderr);
        cmd.spawn().unwrap()
    }

    /// A `Gate` over `child`, its answers read from `stdout` by a thread of its own.
    fn reading(
        mut child: Child,
        stdout: impl std::io::Read + Send + 'static,
        dir: TempDir,
    ) -> Gate {
        let (tx, rx) = crossbeam_channel::bounded(100_000);
        std::thread::Builder::new()
            .name("it-gate-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(raw) = line else { return };
                    let line = Line {
                        value: read_line(&raw),
                        raw,
                    };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .unwrap();
        Gate {
            stdin: child.stdin.take(),
            child,
            rx,
            buffered: Vec::new(),
            next_id: 1000,
            dir,
        }
    }

    /// The data dir the gate was started with.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The gate's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gate.log")).unwrap_or_default()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// Waits for the first message matching `pred` (buffering the others).
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(what, WAIT, pred)
            .unwrap_or_else(|| panic!("no {what} within {WAIT:?}; log:\n{}", self.log()))
    }

    /// Waits for a `notifications/tools/list_changed`.
    pub fn expect_list_changed(&mut self, what: &str) -> Value {
        self.expect(what, |v| v["method"] == "notifications/tools/list_changed")
    }

    pub fn expect_within(
        &mut self,
        _what: &str,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        self.line_within(wait, pred).map(|l| l.value)
    }

    /// Waits for the first message matching `pred`; the line exactly as the gate wrote it.
    pub fn expect_raw(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> String {
        match self.line_within(WAIT, pred) {
            Some(line) => line.raw,
            None => panic!("no {what} within {WAIT:?}; log:\n{}", self.log()),
        }
    }

    fn line_within(&mut self, wait: Duration, pred: impl Fn(&Value) -> bool) -> Option<Line> {
        if let Some(pos) = self.buffered.iter().position(|l| pred(&l.value)) {
            return Some(self.buffered.remove(pos));
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if pred(&l.value) => return Some(l),
                Ok(l) => self.buffered.push(l),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The response to `id`.
    pub fn response(&mut self, id: &Value) -> Value {
        let id = id.clone();
        self.expect(&format!("response to {id}"), move |v| {
            v.get("id") == Some(&id) && v.get("method").is_none()
        })
    }

    /// The response to `id`, exactly as the gate wrote it.
    pub fn response_raw(&mut self, id: &Value) -> String {
        let id = id.clone();
        self.expect_raw(&format!("response to {id}"), move |v| {
            v.get("id") == Some(&id) && v.get("method").is_none()
        })
    }

    /// Sends a request with a fresh id and waits for its response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    pub fn initialize(&mut self) -> Value {
        self.initialize_declaring(json!({}))
    }

    /// The `initialize` handshake, the client declaring `capabilities` (`{"sampling": {}}`…).
    pub fn initialize_declaring(&mut self, capabilities: Value) -> Value {
        let res = self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": capabilities,
                   "clientInfo": {"name": "it", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        res
    }

    /// Every item of a paged list (`prompts/list` and `prompts`, `resources/list` and
    /// `resources`…), following cursors; fails on an error answer.
    pub fn list_all(&mut self, method: &str, key: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let res = self.request(method, params);
            let page = res["result"][key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in the answer to {method}: {res}"));
            items.extend(page.iter().cloned());
            match res["result"].get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
        panic!("{method}: a thousand pages and no end");
    }

    /// Every merged tool name, following cursors.
    pub fn tool_names(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let res = self.request("tools/list", params);
            let result = &res["result"];
            names.extend(listed_names(&res));
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return names,
            }
        }
    }

    /// Calls a tool and returns the whole response.
    pub fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
    }

    /// Asserts that `tool` (an echo) answers `message` with `message`.
    pub fn assert_echo(&mut self, tool: &str, message: &str) {
        let answer = self.call(tool, json!({ "message": message }));
        assert_eq!(super::text(&answer), message);
    }

    /// Calls until the tool answers with a result, or `WAIT` passes (a child restarting).
    pub fn call_until_ok(&mut self, name: &str, arguments: Value) -> Value {
        // Polling a restart that has no event of its own; bounded by `retry`'s deadline.
        retry(Duration::from_millis(50), || {
            let res = self.call(name, arguments.clone());
            match res.get("result") {
                Some(_) => Ok(res),
                None => Err(format!("{name} never recovered: {res}\n{}", self.log())),
            }
        })
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the gate to exit.
    pub fn wait_exit(&mut self, wait: Duration) -> ExitStatus {
        let log = self.dir.path().join("gate.log");
        super::wait_exit(&mut self.child, wait, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
    }

    pub fn signal(&self, signal: &str) {
        assert!(super::signal(self.child.id(), signal));
    }

    /// True when no answer to `id` has arrived so far.
    pub fn buffered_has_no_answer_to(&mut self, id: &str) -> bool {
        while let Ok(l) = self.rx.try_recv() {
            self.buffered.push(l);
        }
        !self.buffered.iter().any(|l| l.value["id"] == id)
    }

    /// Waits until the gate's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        // The log is a file: there is no event to wait on.
        retry(Duration::from_millis(20), || {
            let log = self.log();
            match log.contains(needle) {
                true => Ok(()),
                false => Err(format!("{needle:?} never logged:\n{log}")),
            }
        });
    }
}

/// One line the gate wrote: as JSON, and as its bytes.
struct Line {
    value: Value,
    raw: String,
}

/// What a test reads of a line as JSON. A line a tree parser refuses but which is JSON (a number
/// like `1e400`, nesting deeper than 128) is read member by member, each unreadable member as
/// [`UNREADABLE`]; a line that is not JSON at all fails the test (the gate writes JSON only).
fn read_line(line: &str) -> Value {
    if let Ok(value) = serde_json::from_str(line) {
        return value;
    }
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("gate wrote a non-JSON line ({e}): {line}"));
    let readable = members.into_iter().map(|(key, raw)| {
        let value = serde_json::from_str(raw.get()).unwrap_or_else(|_| json!(UNREADABLE));
        (key, value)
    });
    Value::Object(readable.collect())
}

/// What stands for a member of a line that only a tree parser could not read.
const UNREADABLE: &str = "(JSON that a tree parser refuses)";

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (the gate over stdio), writes `requests` to its stdin one a line, closes it and
/// waits for the exit; stdout and stderr are captured.
pub fn pipe_through(mut cmd: Command, requests: &[Value]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The last line a gate wrote to stdout, as JSON.
pub fn last_answer(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs `stdio --workspace WS` on `data` (with `extra` arguments) with one `tools/call`; returns
/// the call's answer.
pub fn stdio_call(data: &Path, ws: &str, extra: &[&str], tool: &str, args: Value) -> Value {
    let mut cmd = gate(&["stdio", "--workspace", ws, "--data-dir"]);
    cmd.arg(data).args(extra);
    let out = pipe_through(cmd, &[initialize_request(), call_request(2, tool, args)]);
    assert!(out.status.success());
    last_answer(&out)
}

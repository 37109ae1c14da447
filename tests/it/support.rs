//! Test support: a temp dir per test and a driver for the gate binary over stdio.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The gate binary under test.
pub fn gate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_aegis-gate")
}

/// A config entry that runs the built-in example server with `args`.
pub fn example(args: &[&str]) -> Value {
    let mut all = vec!["example-server"];
    all.extend_from_slice(args);
    json!({ "command": gate_bin(), "args": all })
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("aegis-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a test waits for any one thing before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The gate running over stdio with a config of our making.
pub struct Gate {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    buffered: Vec<Value>,
    next_id: i64,
    pub dir: TempDir,
}

impl Gate {
    /// Starts `aegis-gate stdio` with `{"mcpServers": servers, "aegis": settings}`.
    pub fn start(servers: Value, settings: Value) -> Gate {
        Gate::start_with_env(servers, settings, &[])
    }

    pub fn start_with_env(servers: Value, settings: Value, env: &[(&str, &str)]) -> Gate {
        let dir = TempDir::new();
        let config = dir.path().join("mcp.json");
        let body = json!({ "mcpServers": servers, "aegis": settings });
        std::fs::write(&config, body.to_string()).unwrap();
        let stderr = std::fs::File::create(dir.path().join("gate.log")).unwrap();
        let mut cmd = Command::new(gate_bin());
        cmd.args(["--log-level", "debug", "stdio", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(100_000);
        std::thread::Builder::new()
            .name("it-gate-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("gate wrote a non-JSON line ({e}): {line}"));
                    if tx.send(value).is_err() {
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

    pub fn expect_within(
        &mut self,
        _what: &str,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(pos) = self.buffered.iter().position(&pred) {
            return Some(self.buffered.remove(pos));
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if pred(&v) => return Some(v),
                Ok(v) => self.buffered.push(v),
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

    /// Sends a request with a fresh id and waits for its response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    pub fn initialize(&mut self) -> Value {
        let res = self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "it", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        res
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

    /// Calls until the tool answers with a result, or `WAIT` passes (a child restarting).
    pub fn call_until_ok(&mut self, name: &str, arguments: Value) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let res = self.call(name, arguments.clone());
            if res.get("result").is_some() {
                return res;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never recovered: {res}\n{}",
                self.log()
            );
            // Polling a restart that has no event of its own; bounded by the deadline above.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the gate to exit.
    pub fn wait_exit(&mut self, wait: Duration) -> ExitStatus {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gate did not exit in {wait:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a tool result's first content block.
/// The tool names of one `tools/list` answer, in the order listed.
pub fn listed_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array in {answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

pub fn text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
        .to_owned()
}

/// The error code of a response.
pub fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}

/// Pids of live (non-zombie) processes whose process group is `pgid`, read from /proc.
pub fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            pids.push(pid);
        }
    }
    pids
}

/// True while a process with `pid` exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Gate {
    /// True when no answer to `id` has arrived so far.
    pub fn buffered_has_no_answer_to(&mut self, id: &str) -> bool {
        while let Ok(v) = self.rx.try_recv() {
            self.buffered.push(v);
        }
        !self.buffered.iter().any(|v| v["id"] == id)
    }

    /// Waits until the gate's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never logged:\n{}",
                self.log()
            );
            // The log is a file: there is no event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `aegis-gate ARGS` to completion; (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(gate_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

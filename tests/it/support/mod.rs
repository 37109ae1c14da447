//! Test support: the gate binary, a temp dir per test, waiting with a deadline, processes in
//! /proc, JSON-RPC messages and answers, and the harnesses: [`stdio`] (a stdio gate), [`serve`]
//! (a running serve) and [`http`] (raw HTTP/1.1); [`modern`] speaks MCP 2026-07-28 through the
//! first two; [`redis`] and [`replicas`] run serve replicas over a shared store, and [`haproxy`]
//! a load balancer in front of them; [`partner`] signs delegated requests as a partner gate.
//! Never: reaches anything but 127.0.0.1 and the temp dir; sleeps without a deadline.

pub mod haproxy;
pub mod http;
pub mod modern;
pub mod partner;
pub mod redis;
pub mod replicas;
pub mod serve;
pub mod stdio;

pub use serve::{Serve, ADMIN, SECRET};
pub use stdio::{last_answer, pipe_through, stdio_call, Gate};

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The gate binary under test.
pub fn gate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_aegis-gate")
}

/// `aegis-gate ARGS`, ready for more arguments or to run.
pub fn gate(args: &[&str]) -> Command {
    let mut cmd = Command::new(gate_bin());
    cmd.args(args);
    cmd
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

/// Tries `attempt` every `every` until it gives `Ok`, for at most [`WAIT`]; then fails with the
/// last `Err`'s words. For what has no event to wait on (a child restarting, a file growing).
pub fn retry<T>(every: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match attempt() {
            Ok(done) => return done,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(every);
    }
}

/// Waits up to `wait` for `child` to exit; fails with `log()` when it does not.
pub fn wait_exit(child: &mut Child, wait: Duration, log: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {wait:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `cmd` with its stdout piped; the child, a reader of its stdout, and the first line it
/// wrote there.
pub fn spawn_reading_stdout(cmd: &mut Command) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (child, stdout, line)
}

/// Sends `SIG{signal}` to `pid` with kill(1); whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success()
}

/// Seconds since the Unix epoch, as tokens count time.
pub fn unix_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// The `initialize` request an MCP client opens with (id 1).
pub fn initialize_request() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": "2025-11-25", "capabilities": {}}})
}

/// A `tools/call` request of `tool` with `arguments`.
pub fn call_request(id: impl serde::Serialize, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// The tool names of one `tools/list` answer, in the order listed.
pub fn listed_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array in {answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of a tool result's first content block.
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

/// Asserts that `response` is an error with `code` whose message contains `needle`.
pub fn assert_error(response: &Value, code: i64, needle: &str) {
    assert_eq!(error_code(response), code, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{response}");
}

/// The error code (0 when none) and message ("" when none) of an answer.
pub fn error_of(answer: &Value) -> (i64, String) {
    (
        answer["error"]["code"].as_i64().unwrap_or(0),
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
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

/// The process group of `pid`, read from /proc; `None` once it is gone. A server's group is its
/// supervisor's on Linux, not its own pid.
pub fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// True while a process with `pid` exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes `contents` to `dir/name`; its path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Writes `dir/gate.json`: no servers, `settings` as its `aegis` part; its path.
pub fn settings_file(dir: &Path, settings: Value) -> PathBuf {
    let config = json!({ "mcpServers": {}, "aegis": settings });
    write_file(dir, "gate.json", &config.to_string())
}

/// Asserts that a finished command succeeded; shows its stderr when not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `aegis-gate ARGS` to completion; (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = gate(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file under the crate root (`tests/data/…`, `tests/peers/…`).
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `.rs` file under `dir`, recursively (for the house-rule and layering tests).
pub fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

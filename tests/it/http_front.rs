//! The HTTP front of `aegis-gate serve`: health routes, and survival of hostile clients (slow
//! clients that hold a connection open, and descriptor exhaustion that kills tiny_http's accept
//! loop).

use crate::support::{gate_bin, TempDir, WAIT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    addr: String,
    _dir: TempDir,
    log: std::path::PathBuf,
    /// Kept open for the gate's later stdout lines.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Serve {
    /// Starts `serve` on port 0, optionally under a descriptor limit (through the shell's ulimit).
    fn start(extra: &[&str], nofile: Option<u32>) -> Serve {
        let dir = TempDir::new();
        let log = dir.path().join("serve.log");
        let data = dir.path().join("data");
        let mut args = vec![
            gate_bin().to_owned(),
            "--log-level".into(),
            "debug".into(),
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let script = match nofile {
            Some(n) => format!("ulimit -n {n} && exec \"$@\""),
            None => "exec \"$@\"".to_owned(),
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_owned();
        Serve {
            child,
            addr,
            _dir: dir,
            log,
            _stdout: stdout,
        }
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        Ok((status, body))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn health_routes_answer_json_and_unknown_routes_404() {
    let serve = Serve::start(&[], None);
    assert_eq!(
        serve.get("/healthz").unwrap(),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    assert_eq!(serve.get("/readyz").unwrap().0, 200);
    let (status, body) = serve.get("/nope").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"not_found\""), "{body}");
}

#[test]
fn sigterm_stops_serving_and_exits_zero() {
    let mut serve = Serve::start(&[], None);
    assert_eq!(serve.get("/healthz").unwrap().0, 200);
    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "{}", serve.log());
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_client_is_cut_off_by_the_io_timeout_and_others_are_served() {
    let serve = Serve::start(&["--io-timeout-ms", "300"], None);
    let mut slow = TcpStream::connect(&serve.addr).unwrap();
    // Half a request, then nothing: a slowloris client.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(
        serve.get("/healthz").unwrap().0,
        200,
        "others are served meanwhile"
    );
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    // The server gives up on the connection: EOF or a reset, not our own 10 s timeout.
    let res = slow.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "the slow client held its connection for {waited:?}: {res:?}"
    );
}

#[test]
fn descriptor_exhaustion_does_not_stop_the_listener_for_good() {
    let serve = Serve::start(&["--io-timeout-ms", "2000"], Some(96));
    let first = serve.get("/healthz");
    assert!(matches!(first, Ok((200, _))), "{first:?}\n{}", serve.log());
    // Hold far more connections than the gate has descriptors, until an accept fails: the
    // admission's accept, its connect to tiny_http, or tiny_http's accept (whichever runs out
    // first).
    let mut held = Vec::new();
    let deadline = Instant::now() + WAIT;
    let failed = |log: &str| {
        [
            "cannot accept",
            "cannot reach the private listener",
            "accept loop stopped",
        ]
        .iter()
        .any(|m| log.contains(m))
    };
    while !failed(&serve.log()) {
        assert!(
            Instant::now() < deadline,
            "accept never failed:\n{}",
            serve.log()
        );
        for _ in 0..16 {
            if let Ok(s) = TcpStream::connect(&serve.addr) {
                held.push(s);
            }
        }
        // The gate accepts on its own threads; give them a moment before checking the log again.
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    // Descriptors come back as the gate notices the closed connections; then it serves again.
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok((200, _)) = serve.get("/healthz") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = serve.log();
    if log.contains("accept loop stopped") {
        assert!(log.contains("HTTP accept loop restarted"), "{log}");
    }
}

/// A connection that made one keep-alive request and stays open: admitted and counted.
fn held_connection(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    stream
}

/// Polls `/healthz` until it answers 200 (the gate notices closed connections on its own thread).
fn served_again(serve: &Serve) {
    let deadline = Instant::now() + WAIT;
    while !matches!(serve.get("/healthz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "never served again:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_over_the_limit_get_503_and_a_freed_slot_serves_again() {
    let serve = Serve::start(
        &["--io-timeout-ms", "60000", "--max-connections", "3"],
        None,
    );
    let mut held: Vec<TcpStream> = (0..3).map(|_| held_connection(&serve.addr)).collect();
    let (status, body) = serve.get("/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "too_many_connections");
    assert!(serve.log().contains("limits: 3 in all"), "{}", serve.log());
    held.pop();
    served_again(&serve);
}

#[test]
fn one_address_cannot_take_every_connection() {
    let serve = Serve::start(
        &[
            "--io-timeout-ms",
            "60000",
            "--max-connections",
            "50",
            "--max-connections-per-peer",
            "2",
        ],
        None,
    );
    let mut held: Vec<TcpStream> = (0..2).map(|_| held_connection(&serve.addr)).collect();
    let (status, body) = serve.get("/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("from your address"), "{body}");
    held.clear();
    served_again(&serve);
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_slowloris_flood_gets_503s_and_pins_no_more_threads_than_the_limit() {
    let serve = Serve::start(
        &["--io-timeout-ms", "60000", "--max-connections", "8"],
        None,
    );
    assert_eq!(serve.get("/healthz").unwrap().0, 200);
    let before = threads_of(serve.child.id());
    // Half a request each, never finished: every admitted one would hold a thread for a minute.
    let slow = |addr: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s
    };
    let _admitted: Vec<TcpStream> = (0..8).map(|_| slow(&serve.addr)).collect();
    for _ in 0..40 {
        let mut refused = slow(&serve.addr);
        refused
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = refused.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
        assert!(answer.contains("Retry-After: 1"), "{answer}");
    }
    let after = threads_of(serve.child.id());
    assert!(
        after <= before + 8,
        "{before} threads before, {after} after 48 slow connections"
    );
}

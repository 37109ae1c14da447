//! What the benches share: the gate binary, a keep-alive HTTP/1.1 client (Content-Length and
//! chunked bodies, server-sent events), `serve` started on a free port with its process figures
//! (VmRSS, threads), the REST set-up of a workspace, percentiles and a seeded random generator.
//! Each bench uses part of it; `cluster` runs redis-server and HAProxy for the balanced bench.
#![allow(dead_code)]

pub mod cluster;

use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_aegis-gate");

/// The admin token every bench's `serve` is started with.
pub const ADMIN: &str = "bench";

/// The `p`th percentile of sorted values (nearest rank below).
pub fn pct(sorted: &[Duration], p: usize) -> Duration {
    let idx = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(idx).copied().unwrap_or_default()
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// splitmix64: deterministic for a seed, good enough for idle gaps and burst sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One HTTP answer.
pub struct Response {
    pub status: u16,
    /// The head as received, status line excluded.
    pub head: String,
    pub body: Vec<u8>,
    /// The server said `Connection: close`.
    pub closing: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC answer with `id`: the whole JSON body, or the event carrying it in a
    /// `text/event-stream` body.
    pub fn rpc(&self, id: i64) -> Option<Value> {
        let sse = self
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if !sse {
            return serde_json::from_slice(&self.body).ok();
        }
        let text = self.text();
        for event in text.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) {
                if v["id"] == id {
                    return Some(v);
                }
            }
        }
        None
    }
}

/// A keep-alive HTTP/1.1 client, one connection, one request at a time.
pub struct HttpClient {
    stream: BufReader<TcpStream>,
    addr: String,
}

impl HttpClient {
    /// Connects to `addr` (`127.0.0.1:PORT`); panics when it cannot.
    pub fn connect(addr: &str) -> HttpClient {
        HttpClient::try_connect(addr, None, None).expect("connect")
    }

    /// Connects to `addr`, from `source` when given (another loopback address, so that many
    /// connections are not one peer to the gate), with a read timeout when given.
    pub fn try_connect(
        addr: &str,
        source: Option<Ipv4Addr>,
        timeout: Option<Duration>,
    ) -> io::Result<HttpClient> {
        let stream = match source {
            None => TcpStream::connect(addr)?,
            Some(source) => {
                let target: SocketAddrV4 = addr
                    .parse()
                    .map_err(|_| io::Error::other(format!("not an IPv4 address: {addr}")))?;
                connect_from(target, source)?
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(HttpClient {
            stream: BufReader::new(stream),
            addr: addr.to_owned(),
        })
    }

    /// Whether the server has closed the connection while it was idle (what a pooled client
    /// checks before it reuses a connection).
    pub fn peer_closed(&self) -> bool {
        if !self.stream.buffer().is_empty() {
            return false; // Bytes nobody asked for: not closed, but not clean either.
        }
        let sock = self.stream.get_ref();
        if sock.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match sock.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = sock.set_nonblocking(false);
        closed
    }

    /// Sends one request and reads its whole answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> io::Result<Response> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.get_mut().write_all(req.as_bytes())?;
        self.read_response()
    }

    /// `POST`, panicking on an I/O error: status, head and body.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        let r = self.request("POST", path, headers, body).expect("HTTP");
        let text = r.text();
        (r.status, r.head, text)
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(line)
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let status_line = self.line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut head = String::new();
        loop {
            let line = self.line()?;
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut response = Response {
            status,
            head,
            body: Vec::new(),
            closing: false,
        };
        response.closing = response
            .header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked = response
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let size_line = self.line()?;
                let size = usize::from_str_radix(
                    size_line.trim().split(';').next().unwrap_or_default(),
                    16,
                )
                .map_err(|_| io::Error::other(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    while self.line()? != "\r\n" {}
                    break;
                }
                let start = response.body.len();
                response.body.resize(start + size, 0);
                self.stream.read_exact(&mut response.body[start..])?;
                self.line()?;
            }
        } else if let Some(len) = response.header("Content-Length") {
            let len: usize = len.parse().map_err(io::Error::other)?;
            response.body.resize(len, 0);
            self.stream.read_exact(&mut response.body)?;
        }
        Ok(response)
    }
}

/// A TCP connection to `target` from `source` (bound before connecting; std cannot).
fn connect_from(target: SocketAddrV4, source: Ipv4Addr) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket, owned by the TcpStream from here on (closed on drop); the addresses
    // are valid sockaddr_in values of the length given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let from = sockaddr(source, 0);
        if libc::bind(fd, std::ptr::from_ref(&from).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let to = sockaddr(*target.ip(), target.port());
        if libc::connect(fd, std::ptr::from_ref(&to).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// The `Mcp-Session-Id` an answer's head carries (empty when none).
pub fn session_id(head: &str) -> String {
    // Any case: HAProxy, for one, writes header names in lower case.
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("Mcp-Session-Id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// `bin` with `args`, its stdin and stdout piped, stderr dropped, logging at `warn`: a gate or an
/// example server spoken to in JSON lines.
pub fn spawn_piped<S: AsRef<std::ffi::OsStr>>(
    bin: &str,
    args: impl IntoIterator<Item = S>,
) -> Child {
    Command::new(bin)
        .args(args)
        .env("AEGIS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// A running `aegis-gate serve` on a free loopback port, admin token [`ADMIN`]; killed on drop.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

impl Serve {
    /// Starts `serve` with a fresh data dir under `dir` and `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, extra, &[])
    }

    /// The same with `env` set for it (`AEGIS_FERNET_KEYS` for replicas over a store).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("bench dir");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-command", BIN])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("AEGIS_ADMIN_TOKEN", ADMIN)
            .env("AEGIS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("line");
        let addr = line
            .trim()
            .trim_start_matches("listening on http://")
            .to_owned();
        Serve {
            child,
            addr,
            dir: dir.to_owned(),
        }
    }

    /// A field of `/proc/PID/status` (its first number).
    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The serve process's resident memory (children excluded), KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// The serve process's threads.
    pub fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    /// CPU time the serve process has used (user and system, children excluded), seconds.
    pub fn cpu_secs(&self) -> f64 {
        cluster::process_secs(&self.child.id().to_string())
    }

    /// Adds connections `names` (each the example server, with `args`) to `workspace`,
    /// activates it and creates agents `agents`; returns each agent's `Bearer …` header value.
    pub fn workspace(
        &self,
        workspace: &str,
        names: &[String],
        args: &[&str],
        agents: usize,
    ) -> Vec<String> {
        let admin_header = format!("Bearer {ADMIN}");
        let admin = [("Authorization", admin_header.as_str())];
        let mut c = HttpClient::connect(&self.addr);
        for name in names {
            let mut command = vec![BIN, "example-server"];
            command.extend_from_slice(args);
            let conn = json!({"workspace_id": workspace, "name": name, "command": command});
            let (status, _, body) = c.post("/api/v1/aegis/connections", &admin, &conn.to_string());
            assert_eq!(status, 201, "{body}");
        }
        let (status, _, body) = c.post(
            &format!("/api/v1/aegis/workspaces/{workspace}/activate"),
            &admin,
            "",
        );
        assert_eq!(status, 200, "{body}");
        (0..agents)
            .map(|i| {
                let agent = json!({"workspace_id": workspace, "name": format!("agent-{i}")});
                let (status, _, body) = c.post("/api/v1/aegis/agents", &admin, &agent.to_string());
                assert_eq!(status, 201, "{body}");
                let agent: Value = serde_json::from_str(&body).expect("agent");
                format!("Bearer {}", agent["key"].as_str().unwrap_or_default())
            })
            .collect()
    }

    /// Stops the gate with SIGTERM (as an operator would) and removes its directory.
    pub fn stop(mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Stops the gate with SIGTERM and waits for it to exit (its audit trail flushed); the data
    /// dir stays.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine's own noise, as a baseline for latency spikes: a thread that sleeps 10 ms again
/// and again and records by how much each sleep overshot, and when.
pub struct Noise {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, Duration)>>,
}

impl Noise {
    /// Starts sampling; offsets are from `t0`.
    pub fn start(t0: std::time::Instant) -> Noise {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                std::thread::sleep(Duration::from_millis(10));
                let over = t.elapsed().saturating_sub(Duration::from_millis(10));
                samples.push((t.saturating_duration_since(t0), over));
            }
            samples
        });
        Noise { stop, thread }
    }

    /// Stops; every (offset, overshoot).
    pub fn stop(self) -> Vec<(Duration, Duration)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The largest overshoot among `samples` within `window` of `at`.
pub fn noise_near(samples: &[(Duration, Duration)], at: Duration, window: Duration) -> Duration {
    samples
        .iter()
        .filter(|(t, _)| t.abs_diff(at) <= window)
        .map(|(_, over)| *over)
        .max()
        .unwrap_or_default()
}

/// The one-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// The body of an `initialize` request.
pub fn initialize_body(id: i64, client: &str) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},
        "clientInfo":{"name":client,"version":"1"}}})
    .to_string()
}

/// Realistic tool definitions: the shapes real servers send (descriptions of a few sentences,
/// schemas with a handful of described properties).
pub fn realistic_tool(i: usize) -> Value {
    json!({
        "name": format!("tool_{i}"),
        "description": format!("Reads records of kind {i} from the store. Returns at most `limit` records, \
            newest first. Use `cursor` from a previous answer to continue. Only works within the \
            configured project; see https://example.com/docs/records for the query syntax."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Filter expression, e.g. `status = open`."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                "cursor": {"type": "string", "description": "Opaque cursor from a previous answer."},
                "fields": {"type": "array", "items": {"type": "string", "enum": ["id", "name", "status", "owner"]}}
            },
            "required": ["query"]
        },
        "annotations": {"readOnlyHint": true}
    })
}

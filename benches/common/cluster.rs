//! What the balanced bench runs besides `serve`: a `redis-server` of its own, HAProxy run from
//! the repo's `deploy/haproxy.cfg` (its addresses replaced, as `tests/it/support/haproxy.rs`
//! does), and the CPU figures of processes and of the machine read from `/proc`.
//! Never: reaches anything but 127.0.0.1; outlives its bench (each process killed on drop).

use super::HttpClient;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free port, no persistence (a call reads nothing from the store).
pub struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it: apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `STRLEN aegis:state`: the state document's bytes.
    pub fn document_bytes(&self) -> u64 {
        let reply = self.command(&["STRLEN", "aegis:state"]);
        reply.trim().trim_start_matches(':').parse().unwrap_or(0)
    }

    /// `used_memory` of `INFO memory`, bytes.
    pub fn used_memory(&self) -> u64 {
        let reply = self.command(&["INFO", "memory"]);
        reply
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// One command in RESP; the reply as read (one read is enough for these small replies).
    fn command(&self, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("redis write");
        let mut reply = vec![0u8; 64 * 1024];
        let n = stream.read(&mut reply).unwrap_or(0);
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy run from `deploy/haproxy.cfg` with its `bind`, `server` and `stats socket` lines
/// replaced (as `tests/it/support/haproxy.rs` does), its request log thrown away.
pub struct Haproxy {
    pub child: Child,
    pub addr: String,
}

impl Haproxy {
    pub fn start(dir: &Path, port: u16, replicas: &[&str]) -> Haproxy {
        std::fs::create_dir_all(dir).expect("haproxy dir");
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, config_for(&addr, replicas, &dir.join("sock"))).expect("cfg");
        let binary = ["/usr/sbin/haproxy", "haproxy"]
            .into_iter()
            .find(|b| Path::new(b).exists())
            .unwrap_or("haproxy");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (install it: apt-get install haproxy)");
        // Up once it answers /readyz through itself (a replica is assumed up at start).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = HttpClient::try_connect(&addr, None, Some(Duration::from_secs(2)))
                .and_then(|mut c| c.request("GET", "/readyz", &[], ""))
                .is_ok_and(|r| r.status == 200);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy does not serve on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy { child, addr }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_for(addr: &str, replicas: &[&str], socket: &Path) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let text = std::fs::read_to_string(path).expect("deploy/haproxy.cfg");
    let mut out = String::new();
    let mut servers_written = false;
    for line in text.lines() {
        match line.split_whitespace().next().unwrap_or_default() {
            "bind" => out.push_str(&format!("    bind {addr}\n")),
            "server" if !servers_written => {
                servers_written = true;
                for (i, replica) in replicas.iter().enumerate() {
                    out.push_str(&format!("    server r{} {replica}\n", i + 1));
                }
            }
            "server" => {}
            // The global one, lowered to start under a small descriptor limit.
            "maxconn" if !servers_written && !line.starts_with("        ") => {
                out.push_str("    maxconn 4000\n")
            }
            "stats" => out.push_str(&format!("    stats socket {}\n", socket.display())),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Every process below `pid` (children, theirs…), read from `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// CPU seconds (user and system) of `/proc/{pid}`, its threads included.
pub fn process_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / ticks_per_sec()
}

/// CPU seconds the whole machine spent busy (every state of `/proc/stat`'s `cpu` line but idle
/// and iowait), and of those in interrupts and softirqs.
pub fn machine_busy_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    let interrupts = ticks.get(5).unwrap_or(&0) + ticks.get(6).unwrap_or(&0);
    (
        busy as f64 / ticks_per_sec(),
        interrupts as f64 / ticks_per_sec(),
    )
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

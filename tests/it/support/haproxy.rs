//! `Haproxy`: an HAProxy of the test's own in front of serve replicas, run from the repo's
//! `deploy/haproxy.cfg` (the config the README shows) with only its addresses replaced: the
//! `bind` line by a loopback port, the `server` lines by the replicas given, the `stats socket`
//! by one in the test's temp dir (and the global `maxconn` lowered to 1 000, so that it starts
//! under a small descriptor limit). Waits until every replica is up; stopped and reaped on drop.
//! Never: runs a config other than the repo's (a change there is what these tests test); skips
//! when `haproxy` is missing (the test fails, naming the package: CI installs it).

use super::{repo_file, retry, TempDir};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian's package puts the binary (`/usr/sbin` is not on every user's `PATH`).
const DEBIAN_PATH: &str = "/usr/sbin/haproxy";

/// A running `haproxy -db` with a generated config.
pub struct Haproxy {
    child: Child,
    /// `127.0.0.1:PORT`, where clients reach the replicas through it.
    pub addr: String,
    socket: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts it on `port` (which the replicas were told to accept as `Host` with
    /// `--allow-host`) in front of `replicas` (their `IP:PORT`s, named r1, r2… in that order).
    pub fn start(port: u16, replicas: &[&str]) -> Haproxy {
        let dir = TempDir::new();
        let socket = dir.path().join("haproxy.sock");
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, config_for(&addr, replicas, &socket)).unwrap();
        let log = dir.path().join("haproxy.log");
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("haproxy.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("haproxy: {e} (install it: apt-get install haproxy)"));
        let mut haproxy = Haproxy {
            child,
            addr,
            socket,
            log,
            _dir: dir,
        };
        haproxy.wait_all_up(replicas.len());
        haproxy
    }

    /// The status HAProxy gives each replica (`UP`, `DOWN`, `UP 1/2`…), by name (r1, r2…).
    pub fn statuses(&self) -> Result<Vec<(String, String)>, String> {
        let csv = self.command("show stat")?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or("empty show stat")?
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, status) = match (column("pxname"), column("svname"), column("status")) {
            (Some(p), Some(s), Some(t)) => (p, s, t),
            _ => return Err(format!("unexpected show stat header: {header:?}")),
        };
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| {
                f.get(px) == Some(&"aegis") && f.get(sv).is_some_and(|s| s.starts_with('r'))
            })
            .map(|f| (f[sv].to_owned(), f[status].to_owned()))
            .collect())
    }

    /// Waits until replica `name` has the status `want` (exactly).
    pub fn wait_status(&self, name: &str, want: &str) {
        retry(Duration::from_millis(50), || {
            let all = self.statuses()?;
            match all.iter().find(|(n, _)| n == name) {
                Some((_, status)) if status == want => Ok(()),
                _ => Err(format!("{name} is not {want}: {all:?}\n{}", self.log())),
            }
        });
    }

    /// One command on the stats socket; its whole answer.
    fn command(&self, line: &str) -> Result<String, String> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        Ok(answer)
    }

    /// What it logged so far (a line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_all_up(&mut self, n: usize) {
        retry(Duration::from_millis(50), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                let err = std::fs::read_to_string(self._dir.path().join("haproxy.err"));
                return Err(format!(
                    "haproxy exited ({status}): {}",
                    err.unwrap_or_default()
                ));
            }
            let all = self.statuses()?;
            match all.len() == n && all.iter().all(|(_, s)| s == "UP") {
                true => Ok(()),
                false => Err(format!("not every replica is up: {all:?}")),
            }
        });
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments `deploy/haproxy.cfg` asks of each replica behind a balancer whose clients
/// write `host`: that `Host` allowed, and room for the balancer's many connections.
pub fn replica_args(host: &str) -> [&str; 6] {
    [
        "--allow-host",
        host,
        "--max-connections",
        "2048",
        "--max-connections-per-peer",
        "1024",
    ]
}

/// `haproxy` from `PATH`, else where Debian puts it.
fn binary() -> &'static str {
    let on_path = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if on_path {
        "haproxy"
    } else {
        DEBIAN_PATH
    }
}

/// `deploy/haproxy.cfg` with its addresses replaced; fails when a line it replaces is gone.
fn config_for(addr: &str, replicas: &[&str], socket: &std::path::Path) -> String {
    let text = std::fs::read_to_string(repo_file("deploy/haproxy.cfg")).unwrap();
    let (mut binds, mut servers, mut sockets) = (0, 0, 0);
    let mut out = String::new();
    for line in text.lines() {
        let word = line.split_whitespace().next().unwrap_or_default();
        let rest = line.trim_start();
        if word == "bind" {
            binds += 1;
            out.push_str(&format!("    bind {addr}\n"));
        } else if word == "server" {
            // All the example's servers become the given ones, at the place of the first.
            if servers == 0 {
                for (i, replica) in replicas.iter().enumerate() {
                    out.push_str(&format!("    server r{} {replica}\n", i + 1));
                }
            }
            servers += 1;
        } else if word == "maxconn" && !line.starts_with("        ") && binds == 0 {
            // The global one: two descriptors a connection, more than a test's limit may allow.
            out.push_str("    maxconn 1000\n");
        } else if rest.starts_with("stats socket ") {
            sockets += 1;
            out.push_str(&format!(
                "    stats socket {} mode 600 level user\n",
                socket.display()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        binds == 1 && servers > 0 && sockets == 1,
        "deploy/haproxy.cfg no longer has one bind, server lines and one stats socket \
         ({binds}, {servers}, {sockets}): update tests/it/support/haproxy.rs with it"
    );
    out
}

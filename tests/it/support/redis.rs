//! `Redis`: a `redis-server` of the test's own on a free loopback port, with its data in the
//! test's temp dir (append-only file on, so a stop and a start keep what was written), for the
//! replica tests of `serve --store`. Stopped and reaped on drop.
//! Never: reaches a store the machine runs for something else; skips when `redis-server` is
//! missing (the test fails, naming the package: CI installs it).

use super::{retry, WAIT};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or stopped) `redis-server`.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    /// TLS only (`rediss://`), with this certificate and key (PEM files).
    tls: Option<(PathBuf, PathBuf)>,
}

impl Redis {
    /// Starts one with its data under `dir`.
    pub fn start(dir: &Path) -> Redis {
        Redis::start_with_password(dir, None)
    }

    /// The same, requiring `password` (`requirepass`).
    pub fn start_with_password(dir: &Path, password: Option<&str>) -> Redis {
        Redis::launch(dir, password.map(str::to_owned), None)
    }

    /// One that speaks TLS only, with `cert` and `key` (PEM files): `rediss://`.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Redis {
        Redis::launch(dir, None, Some((cert.to_owned(), key.to_owned())))
    }

    fn launch(dir: &Path, password: Option<String>, tls: Option<(PathBuf, PathBuf)>) -> Redis {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir,
            password,
            tls,
        };
        redis.start_again();
        redis
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` when it speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Stops it (SIGTERM: it writes its append-only file and exits) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::signal(child.id(), "TERM");
            super::wait_exit(&mut child, WAIT, || "redis-server did not stop".into());
        }
    }

    /// Stops it, throws its data away and starts it empty on the same port: a store that lost
    /// what it held.
    pub fn lose_everything(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).unwrap();
        std::fs::create_dir_all(&self.dir).unwrap();
        self.start_again();
    }

    /// Starts it again on the same port and data, and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server runs already");
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            Some((cert, key)) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert);
            }
            None => {
                cmd.args(["--port", &port]);
            }
        }
        cmd.args(["--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("redis-server: {e} (install it: apt-get install redis-server)")
        });
        self.child = Some(child);
        match self.tls {
            // Listening is enough: the tests' TLS client is the gate.
            Some(_) => retry(Duration::from_millis(20), || {
                TcpStream::connect(("127.0.0.1", self.port))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
            None => retry(Duration::from_millis(20), || self.ping()),
        }
    }

    /// Sends one command (no password, no TLS) and returns the store's first reply line.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut bytes = format!("*{}\r\n", args.len());
        for arg in args {
            bytes.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(bytes.as_bytes()).unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the store closed after {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.lines().next().unwrap_or_default().to_owned()
    }

    /// A `PING` over RESP (with `AUTH` first when a password is set).
    fn ping(&self) -> Result<(), String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        let mut commands = String::new();
        if let Some(password) = &self.password {
            commands.push_str(&format!(
                "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n",
                password.len()
            ));
        }
        commands.push_str("*1\r\n$4\r\nPING\r\n");
        stream
            .write_all(commands.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while !seen.contains("PONG") {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("closed after {seen:?}"));
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.starts_with('-') {
                return Err(seen);
            }
        }
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port free now (bound, then released for the server to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

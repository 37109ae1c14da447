//! One child process of a connection: spawn into its own process group, pipes, teardown.
//!
//! On Linux a local server is started under a supervisor (`aegis-gate supervise`, see
//! `crate::supervisor`), which leads the group and takes the server's whole tree down with it,
//! whatever left the group; the child this module holds is then the supervisor. A bridge
//! (`aegis-gate bridge`) is started directly: it is our own code, never forks, and dies with the
//! gate by SIGKILL (`PR_SET_PDEATHSIG`), so a supervisor would only cost a process. Elsewhere
//! every child is started directly.
//!
//! Owns: the `std::process::Child`, its three pipes wrapped for `mio`, the bytes waiting to be
//! written to its stdin, and the teardown sequence (close stdin, grace, SIGTERM to the group,
//! grace, SIGKILL to the group, reap the leader and every orphaned group member). The
//! supervisor's grace is half the teardown grace, so its own SIGTERM, grace and SIGKILL of the
//! tree end before the gate's SIGKILL of the group could cut them short.
//! Never: parses protocol messages (it hands raw bytes to the connection) or blocks on a pipe:
//! all three pipes are non-blocking and driven by the connection's `Poll`.

use crate::config::ServerConfig;
#[cfg(target_os = "linux")]
use crate::supervisor;
use crate::sys::{self, Signal};
use mio::unix::pipe;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Token of the child's stdout.
pub(crate) const STDOUT: Token = Token(0);
/// Token of the child's stderr.
pub(crate) const STDERR: Token = Token(1);
/// Token of the child's stdin.
pub(crate) const STDIN: Token = Token(2);

/// Variables a child inherits from the gate; everything else it gets from its own `env`.
const INHERITED_VARS: [&str; 2] = ["PATH", "HOME"];

/// Bytes queued for a child's stdin beyond which new writes are refused.
const MAX_STDIN_BACKLOG: usize = 64 * 1024 * 1024;
/// The stdin queue's room kept once it is empty again.
const KEEP_BACKLOG: usize = 16 * 1024;
/// Bytes read from one pipe per tick while waiting for a child to exit.
const TEARDOWN_READ_BUDGET: usize = 256 * 1024;
/// How long to wait for the reaping after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A running child with registered pipes.
#[derive(Debug)]
pub(crate) struct ChildProc {
    child: Child,
    pgid: u32,
    stdin: Option<pipe::Sender>,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    backlog: Vec<u8>,
    /// Bytes of `backlog` already written; compacted when past half, so a slow reader does not
    /// cost a memmove of the whole backlog per write.
    written: usize,
    exit: Option<ExitStatus>,
    torn_down: bool,
    launch: Launch,
}

/// How a child is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Reason: there is no supervisor off Linux, so `Supervised` is never built there.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum Launch {
    /// Under a supervisor, which leads the group and contains the server's whole tree.
    Supervised,
    /// As itself: a bridge, or any child where there is no supervisor.
    Direct,
}

impl Launch {
    #[cfg(target_os = "linux")]
    fn of(cfg: &ServerConfig) -> Launch {
        // `remote::spawn` names the gate's own executable and `bridge`; a command that only
        // looks alike (another path to the binary) is supervised, which is merely a process more.
        let own_exe = std::env::current_exe().ok();
        let is_bridge = own_exe.is_some_and(|exe| exe.as_os_str() == cfg.command.as_str())
            && cfg.args.first().is_some_and(|a| a == "bridge");
        if is_bridge {
            Launch::Direct
        } else {
            Launch::Supervised
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn of(_cfg: &ServerConfig) -> Launch {
        Launch::Direct
    }
}

/// What a read from one of the child's output pipes produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// The pipe is drained for now.
    Drained,
    /// The read budget ran out before the pipe was drained: read again soon.
    More,
    /// The child closed the pipe.
    Closed,
}

impl ChildProc {
    /// Spawns `cfg` with a cleared environment (plus `PATH`, `HOME` and its own `env`) in a new
    /// process group, and registers its pipes with `poll`. `grace` is the teardown's grace; a
    /// supervisor gets half of it.
    pub(crate) fn spawn(cfg: &ServerConfig, grace: Duration, poll: &Poll) -> io::Result<ChildProc> {
        let launch = Launch::of(cfg);
        let mut cmd = match launch {
            #[cfg(target_os = "linux")]
            Launch::Supervised => {
                // What exec would fail on fails here, with exec's own error, as without a
                // supervisor (which would otherwise start and exit 127).
                let path = cfg
                    .env
                    .get("PATH")
                    .map(std::ffi::OsString::from)
                    .or_else(|| std::env::var_os("PATH"));
                supervisor::check_program(&cfg.command, path.as_deref(), cfg.cwd.as_deref())?;
                supervisor::command(&cfg.command, &cfg.args, grace / 2)
            }
            _ => {
                let mut cmd = Command::new(&cfg.command);
                cmd.args(&cfg.args);
                cmd
            }
        };
        #[cfg(not(target_os = "linux"))]
        let _ = grace;
        cmd.env_clear();
        for var in INHERITED_VARS {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd.envs(&cfg.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &cfg.cwd {
            cmd.current_dir(cwd);
        }
        // A supervisor catches its parent-death signal and tears its tree down; a direct child
        // has nothing to clean up and is killed outright.
        let parent_death = match launch {
            Launch::Supervised => Signal::Hup,
            Launch::Direct => Signal::Kill,
        };
        sys::die_with_parent(&mut cmd, parent_death);
        let mut child = cmd.spawn()?;
        let pgid = child.id();
        let mut proc = ChildProc {
            pgid,
            stdin: child.stdin.take().map(pipe::Sender::from),
            stdout: child.stdout.take().map(pipe::Receiver::from),
            stderr: child.stderr.take().map(pipe::Receiver::from),
            child,
            backlog: Vec::new(),
            written: 0,
            exit: None,
            torn_down: false,
            launch,
        };
        if let Err(e) = proc.register(poll) {
            proc.kill_now();
            return Err(e);
        }
        Ok(proc)
    }

    fn register(&mut self, poll: &Poll) -> io::Result<()> {
        let registry = poll.registry();
        if let Some(p) = self.stdout.as_mut() {
            p.set_nonblocking(true)?;
            registry.register(p, STDOUT, Interest::READABLE)?;
        }
        if let Some(p) = self.stderr.as_mut() {
            p.set_nonblocking(true)?;
            registry.register(p, STDERR, Interest::READABLE)?;
        }
        if let Some(p) = self.stdin.as_mut() {
            p.set_nonblocking(true)?;
            registry.register(p, STDIN, Interest::WRITABLE)?;
        }
        Ok(())
    }

    /// The child's pid (also its process group id): the supervisor's when there is one.
    pub(crate) fn pid(&self) -> u32 {
        self.pgid
    }

    /// Reads what is available on stdout or stderr (by token) into `on_bytes`, up to `budget`
    /// bytes so that a flooding child cannot starve the connection's other work.
    pub(crate) fn read_pipe(
        &mut self,
        token: Token,
        buf: &mut [u8],
        budget: usize,
        mut on_bytes: impl FnMut(&[u8]),
    ) -> io::Result<ReadOutcome> {
        let pipe = match token {
            STDOUT => self.stdout.as_mut(),
            STDERR => self.stderr.as_mut(),
            _ => None,
        };
        let Some(pipe) = pipe else {
            return Ok(ReadOutcome::Closed);
        };
        let mut n_read = 0;
        loop {
            if n_read >= budget {
                return Ok(ReadOutcome::More);
            }
            match pipe.read(buf) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => {
                    n_read += n;
                    on_bytes(buf.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one message line (a newline is added) and writes what the pipe takes now.
    pub(crate) fn send_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.stdin.is_none() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed"));
        }
        if self.backlog.len() - self.written + line.len() > MAX_STDIN_BACKLOG {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the child is not reading its stdin",
            ));
        }
        self.backlog.extend_from_slice(line);
        self.backlog.push(b'\n');
        self.flush_stdin()
    }

    /// Writes queued bytes until the pipe is full or the queue empty.
    pub(crate) fn flush_stdin(&mut self) -> io::Result<()> {
        let Some(pipe) = self.stdin.as_mut() else {
            return Ok(());
        };
        let res = loop {
            let Some(rest) = self.backlog.get(self.written..).filter(|r| !r.is_empty()) else {
                break Ok(());
            };
            match pipe.write(rest) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        if self.written == self.backlog.len() {
            self.backlog.clear();
            // A burst (a big call, a slow child) grew it: let that go once it is written.
            self.backlog.shrink_to(KEEP_BACKLOG);
            self.written = 0;
        } else if self.written > self.backlog.len() / 2 {
            self.backlog.drain(..self.written);
            self.written = 0;
        }
        res
    }

    /// The exit status, once the leader has exited (reaps it).
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Tears the child and its whole process group down within about `2 × grace` (+ the stdin
    /// grace when `polite`), draining its output meanwhile so it is never blocked on a full pipe.
    /// Always reaps. Returns the leader's exit status when it could be read.
    pub(crate) fn teardown(
        &mut self,
        poll: &mut Poll,
        grace: Duration,
        polite: bool,
    ) -> Option<ExitStatus> {
        if let Some(mut pipe) = self.stdin.take() {
            let _ = poll.registry().deregister(&mut pipe);
        }
        let mut gone = polite && self.wait_gone(poll, grace);
        if !gone {
            let _ = sys::kill_group(self.pgid, Signal::Term);
            gone = self.wait_gone(poll, grace);
        }
        if !gone {
            log::warn!("child group {} ignored SIGTERM; sending SIGKILL", self.pgid);
            self.kill_now();
        }
        self.deregister(poll);
        self.torn_down = true;
        self.exit
    }

    /// SIGKILL to the group, then reap the leader and any orphaned members. For a supervisor
    /// that did not finish its own teardown in time (stopped, or never asked: a panic), its
    /// descendants are killed first, by pid: those that left the group would outlive it.
    fn kill_now(&mut self) {
        let mut strays = self.descendants();
        // Only those the signal reached are waited for (one run as another user is not ours).
        strays.retain(|pid| sys::kill_process(*pid, Signal::Kill).is_ok());
        let _ = sys::kill_group(self.pgid, Signal::Kill);
        // By pid as well: a leader that moved itself to another group is not hit by the above.
        let _ = self.child.kill();
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            if self.try_exit().is_some() {
                // Orphans die from the same SIGKILL; they are ours to reap as the subreaper. A
                // stray may still be dying when its supervisor is reaped: it is waited for too,
                // or it would stay a zombie of the gate.
                sys::reap_group(self.pgid);
                reap_strays(&mut strays);
                if strays.is_empty() && !sys::group_exists(self.pgid) {
                    return;
                }
            }
            if Instant::now() >= deadline {
                match strays.is_empty() {
                    true => log::error!(
                        "process group {} still has members after SIGKILL",
                        self.pgid
                    ),
                    false => log::error!(
                        "processes {strays:?} of child {} not gone {} ms after SIGKILL",
                        self.pgid,
                        KILL_WAIT.as_millis()
                    ),
                }
                return;
            }
            // SIGKILL has been sent; exit is not a pollable event here. Bounded by KILL_WAIT.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The supervisor's descendants while it runs; none for a direct child (its group is all).
    fn descendants(&mut self) -> Vec<u32> {
        #[cfg(target_os = "linux")]
        if self.launch == Launch::Supervised && self.try_exit().is_none() {
            return supervisor::descendants(self.pgid);
        }
        Vec::new()
    }

    /// Waits until the leader has exited and no member of its group is left, or `grace` passes.
    fn wait_gone(&mut self, poll: &mut Poll, grace: Duration) -> bool {
        // Process exit is not a pollable event here; the pipes' hang-up usually wakes us at once,
        // and a short tick covers a grandchild that keeps the pipes open.
        const TICK: Duration = Duration::from_millis(20);
        let deadline = Instant::now() + grace;
        let mut events = Events::with_capacity(8);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // The leader first, through std (which keeps its status); only then the orphans,
            // so that waitpid on the group never takes the leader's status from under std.
            if self.try_exit().is_some() {
                sys::reap_group(self.pgid);
                if !sys::group_exists(self.pgid) {
                    return true;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = poll.poll(&mut events, Some((deadline - now).min(TICK)));
            for token in [STDOUT, STDERR] {
                // Bounded per tick: a child that writes without pause must not keep us from the
                // deadline (and so from SIGTERM and SIGKILL).
                let res = self.read_pipe(token, &mut buf, TEARDOWN_READ_BUDGET, |_| {});
                if matches!(res, Ok(ReadOutcome::Closed) | Err(_)) {
                    self.close_output(poll, token);
                }
            }
        }
    }

    /// Deregisters and closes one output pipe (after EOF).
    pub(crate) fn close_output(&mut self, poll: &Poll, token: Token) {
        let pipe = match token {
            STDOUT => self.stdout.take(),
            STDERR => self.stderr.take(),
            _ => None,
        };
        if let Some(mut pipe) = pipe {
            let _ = poll.registry().deregister(&mut pipe);
        }
    }

    fn deregister(&mut self, poll: &Poll) {
        self.close_output(poll, STDOUT);
        self.close_output(poll, STDERR);
        if let Some(mut pipe) = self.stdin.take() {
            let _ = poll.registry().deregister(&mut pipe);
        }
    }
}

/// Reaps the killed descendants of a dead supervisor that came to the gate, the next subreaper
/// (the supervisor's orphans are reparented before its own exit can be read); keeps in `strays`
/// those still to wait for: the gate's children that have not exited yet, and those whose parent
/// is itself a stray still dying (they come to the gate when it exits).
fn reap_strays(strays: &mut Vec<u32>) {
    #[cfg(target_os = "linux")]
    {
        let all = strays.clone();
        strays.retain(|pid| match sys::reap_process(*pid) {
            sys::Reap::Reaped => false,
            sys::Reap::Running => true,
            sys::Reap::NotOurs => supervisor::parent(*pid).is_some_and(|p| all.contains(&p)),
        });
    }
    #[cfg(not(target_os = "linux"))]
    strays.clear();
}

impl Drop for ChildProc {
    /// A child dropped without a teardown (a panic unwinding the connection) is killed, not leaked.
    fn drop(&mut self) {
        if !self.torn_down {
            self.kill_now();
        }
    }
}

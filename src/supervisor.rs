//! The per-connection supervisor (`aegis-gate supervise`, Linux): one small process between the
//! gate and a local server, so that everything the server starts dies with the connection.
//!
//! The gate starts it as the leader of the child's process group, with a catchable parent-death
//! signal (SIGHUP). It becomes a child subreaper, starts the server on the stdio it was given, and
//! moves its own stdio to `/dev/null` (so that only the server's tree holds the gate's pipes).
//! Every process the server starts, however it detaches (a new session, a double fork, a
//! wrapper such as `npx` or `docker run`), stays a descendant: an orphan reparents to the
//! supervisor, the nearest subreaper. It is found by walking the `/proc/*/stat` parent links
//! from the supervisor, never by process group. The supervisor runs in the server's environment
//! and directory (the gate prepares both for it; the server inherits them), so what that
//! environment tells the dynamic loader applies to the supervisor too (not to the static build).
//!
//! Owns: the server's tree: reaping every child as it exits (orphans included, at once), and the
//! teardown: at SIGTERM, SIGINT or SIGHUP (or when its parent changes), SIGTERM to every
//! descendant, the grace, then SIGKILL to whatever is left again and again (rescan, kill, reap)
//! until none is, or the kill window passes; a second stop signal skips the grace. When the
//! server exits by itself, the rest of the tree gets SIGTERM, a short grace, SIGKILL, and the
//! supervisor exits with the server's status (its code, or 128 + the signal).
//! Also [`command`], the one builder of the supervisor's command line, and [`descendants`], the
//! `/proc` walk the gate uses too when it must kill a supervisor that did not finish.
//! Never: starts a thread (signals are blocked and taken with `sigtimedwait`, one at a time);
//! writes to stdio once the server runs (logs nowhere: its outcome is its exit status); signals
//! a process that is not its descendant, or a process group; waits without a deadline; holds any
//! `unsafe` (that is `sys`).

use crate::sys::{self, Signal, SignalSet, WaitStatus};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The subcommand the gate runs its supervisors as.
pub(crate) const SUBCOMMAND: &str = "supervise";
/// What `ps` shows as a supervisor's name (`comm`, at most 15 bytes).
const PROCESS_NAME: &std::ffi::CStr = c"aegis-supervise";
/// The signals the supervisor takes with `sigtimedwait` (blocked for its whole life).
const SIGNALS: [Signal; 4] = [Signal::Child, Signal::Term, Signal::Int, Signal::Hup];
/// How long the supervisor sleeps while nothing happens; a wake only checks that its parent is
/// still the one it started with (the parent-death signal is the real notice).
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How often the tree is scanned again while it is being torn down (a grandchild's exit sends
/// the supervisor no signal).
const TICK: Duration = Duration::from_millis(10);
/// The grace of what the server left behind when it exited by itself: short, so that the gate
/// learns the server's status while it still looks for it (it waits 200 ms after stdout closes).
const LEFTOVER_GRACE: Duration = Duration::from_millis(100);
/// Bounds of the kill window (half the grace, within these): SIGKILL is not instant for a
/// process in uninterruptible sleep, but the supervisor does not wait for one forever.
const MIN_KILL_WINDOW: Duration = Duration::from_millis(20);
const MAX_KILL_WINDOW: Duration = Duration::from_secs(1);

/// What to supervise.
#[derive(Debug)]
pub(crate) struct Options {
    /// From the first SIGTERM to the descendants until SIGKILL.
    pub grace: Duration,
    /// The server's program, resolved as `exec` would (through `PATH` when it has no slash).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Why the supervisor could not do its work.
#[derive(Debug)]
pub(crate) enum Error {
    /// Setting itself up failed (the signal mask, the subreaper), before the server started.
    Setup(&'static str, io::Error),
    /// The server could not be started.
    Spawn(String, io::Error),
}

impl Error {
    /// The exit status the supervisor ends with: 127 for a program not found and 126 for one
    /// that cannot run (as a shell says it), 125 for the supervisor's own failure.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Error::Spawn(_, e) if e.kind() == io::ErrorKind::NotFound => 127,
            Error::Spawn(..) => 126,
            Error::Setup(..) => 125,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setup(what, e) => write!(f, "supervisor: cannot {what}: {e}"),
            Error::Spawn(program, e) => write!(f, "supervisor: cannot start {program:?}: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Setup(_, e) | Error::Spawn(_, e) => Some(e),
        }
    }
}

/// The command that runs `program` with `args` under a supervisor with `grace`: the gate's own
/// executable through `/proc/self/exe` (which names the running binary even after it was
/// upgraded or deleted on disk), shown as `aegis-gate supervise …`. The caller adds the
/// environment, the directory, the stdio, the process group and the parent-death signal.
pub(crate) fn command(program: &str, args: &[String], grace: Duration) -> Command {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("aegis-gate")
        .arg(SUBCOMMAND)
        .arg("--grace-ms")
        .arg(grace.as_millis().max(1).to_string())
        .arg("--")
        .arg(program)
        .args(args);
    cmd
}

/// Runs the supervisor until the server's tree is gone; the code to exit with.
pub(crate) fn run(options: &Options) -> Result<i32, Error> {
    // First, so that a stop request from here on waits for us instead of killing us before
    // the server runs (until now the default action was right: nothing to clean up yet).
    let signals = SignalSet::of(&SIGNALS);
    sys::block_signals(&signals).map_err(|e| Error::Setup("block signals", e))?;
    sys::set_child_subreaper().map_err(|e| Error::Setup("become a child subreaper", e))?;
    // Cosmetic: `ps` shows what this process is.
    let _ = sys::set_process_name(PROCESS_NAME);
    let parent = std::os::unix::process::parent_id();
    let mut cmd = Command::new(&options.program);
    cmd.args(&options.args);
    sys::unblock_signals_in_child(&mut cmd, signals);
    // Should the supervisor itself be killed outright, the server at least goes with it.
    sys::die_with_parent(&mut cmd, Signal::Kill);
    let server = cmd
        .spawn()
        .map_err(|e| Error::Spawn(options.program.to_string_lossy().into_owned(), e))?;
    let server_pid = server.id();
    // The server is reaped through `sys::reap_any`, never through std.
    drop(server);
    // Should this fail, the gate sees the server's EOF only when the supervisor exits, right
    // after the server: late, but supervising on beats leaving the server unsupervised.
    let _ = sys::stdio_to_dev_null();
    let mut tree = Tree {
        own_pid: std::process::id(),
        server_pid,
        server_exit: None,
        parent,
        parent_gone: false,
        grace: options.grace,
    };
    tree.supervise(&signals);
    Ok(tree.exit_code())
}

/// Where the teardown is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// The server runs; nothing to do but reap orphans.
    Running,
    /// Every descendant was sent SIGTERM; at `until` the rest get SIGKILL.
    Terminating { until: Instant },
    /// SIGKILL to every descendant, again and again, until none is left or `until` passes.
    Killing { until: Instant },
}

/// The supervisor's view of its tree.
struct Tree {
    own_pid: u32,
    server_pid: u32,
    server_exit: Option<WaitStatus>,
    /// The gate, as it was at the start.
    parent: u32,
    /// The gate's death has been seen (by SIGHUP or a new parent), and counted once.
    parent_gone: bool,
    grace: Duration,
}

impl Tree {
    /// The loop: one signal (or a tick) at a time, every exited child reaped at each wake, the
    /// tree walked only while it is being torn down (an idle supervisor reads no `/proc`).
    fn supervise(&mut self, signals: &SignalSet) {
        let mut phase = Phase::Running;
        loop {
            let wait = match phase {
                Phase::Running => IDLE_WAIT,
                Phase::Terminating { .. } | Phase::Killing { .. } => TICK,
            };
            // A failed wait (it cannot fail with a valid set) counts as a stop request: better
            // to tear the tree down than to spin or leave it.
            let signal = sys::wait_for_signal(signals, wait).unwrap_or(Some(Signal::Term));
            self.reap();
            let stop = self.is_stop(signal);
            let now = Instant::now();
            phase = match phase {
                Phase::Running if stop || self.server_exit.is_some() => {
                    // Asked to stop: the full grace. The server gone by itself: what it left
                    // behind gets a short one.
                    let grace = match stop {
                        true => self.grace,
                        false => LEFTOVER_GRACE.min(self.grace),
                    };
                    if self.signal_all(Signal::Term) == 0 {
                        return;
                    }
                    Phase::Terminating { until: now + grace }
                }
                Phase::Running => Phase::Running,
                Phase::Terminating { until } if stop || now >= until => {
                    if self.signal_all(Signal::Kill) == 0 {
                        return;
                    }
                    Phase::Killing {
                        until: now + kill_window(self.grace),
                    }
                }
                Phase::Terminating { until } => {
                    if descendants(self.own_pid).is_empty() {
                        return;
                    }
                    Phase::Terminating { until }
                }
                Phase::Killing { until } => {
                    if self.signal_all(Signal::Kill) == 0 || now >= until {
                        return;
                    }
                    Phase::Killing { until }
                }
            };
        }
    }

    /// Whether `signal` (or a change of parent) asks the tree to stop. The gate's death counts
    /// once, however it was noticed, so that it is not taken for a second request.
    fn is_stop(&mut self, signal: Option<Signal>) -> bool {
        let parent_died =
            signal == Some(Signal::Hup) || std::os::unix::process::parent_id() != self.parent;
        if parent_died && !self.parent_gone {
            self.parent_gone = true;
            return true;
        }
        matches!(signal, Some(Signal::Term | Signal::Int))
    }

    /// Reaps every child that has exited, and keeps the server's status.
    fn reap(&mut self) {
        while let Some((pid, status)) = sys::reap_any() {
            if pid == self.server_pid {
                self.server_exit = Some(status);
            }
        }
    }

    /// Sends `signal` to every descendant; how many there were (zombies included: they are
    /// not gone until reaped).
    fn signal_all(&self, signal: Signal) -> usize {
        let pids = descendants(self.own_pid);
        for pid in &pids {
            let _ = sys::kill_process(*pid, signal);
        }
        pids.len()
    }

    fn exit_code(&self) -> i32 {
        match self.server_exit {
            Some(WaitStatus::Exited(code)) => code,
            Some(WaitStatus::Signaled(signal)) => 128 + signal,
            // Not reaped within the kill window (stuck in the kernel): as if killed.
            None => 128 + 9,
        }
    }
}

/// Half the grace, within bounds: how long SIGKILL is repeated before the supervisor gives up.
fn kill_window(grace: Duration) -> Duration {
    (grace / 2).clamp(MIN_KILL_WINDOW, MAX_KILL_WINDOW)
}

/// Every descendant of `root` (not `root` itself), zombies included, found through the parent
/// links in `/proc/*/stat`; empty when `/proc` cannot be read. Parents come before their
/// children. A process that exits during the walk may be missed or listed; callers walk again.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut links: Vec<(u32, u32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(&entry.path()) {
            links.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&parent) = found.get(next) {
        next += 1;
        found.extend(links.iter().filter(|l| l.1 == parent).map(|l| l.0));
    }
    found.remove(0);
    found
}

/// The parent of process `pid`; `None` once it is gone (or reaped).
pub(crate) fn parent(pid: u32) -> Option<u32> {
    parent_of(Path::new(&format!("/proc/{pid}")))
}

/// The parent pid in `dir/stat` (`/proc/PID/stat`): the second field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn parent_of(dir: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Checks that `program` can be found and run the way the supervisor's `exec` will look for it
/// (`PATH` as the server's environment has it, relative paths against `cwd`), so that a missing
/// program fails at spawn with `exec`'s own error, as it does without a supervisor, instead of
/// as a supervisor exiting 127. Only a clear answer is an error: when unsure, `Ok`.
pub(crate) fn check_program(
    program: &str,
    path: Option<&OsStr>,
    cwd: Option<&Path>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let at = |candidate: &Path| -> Option<bool> {
        let full = match cwd {
            Some(dir) if candidate.is_relative() => dir.join(candidate),
            _ => candidate.to_owned(),
        };
        let meta = std::fs::metadata(full).ok()?;
        Some(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    let denied = || io::Error::from_raw_os_error(libc::EACCES);
    let not_found = || io::Error::from_raw_os_error(libc::ENOENT);
    if program.is_empty() {
        return Err(not_found());
    }
    if program.contains('/') {
        return match at(Path::new(program)) {
            Some(true) => Ok(()),
            Some(false) => Err(denied()),
            None => Err(not_found()),
        };
    }
    // execvp's default when the environment has no PATH.
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    let mut seen_unrunnable = false;
    for dir in std::env::split_paths(path) {
        // An empty entry is the working directory.
        match at(&dir.join(program)) {
            Some(true) => return Ok(()),
            Some(false) => seen_unrunnable = true,
            None => {}
        }
    }
    Err(if seen_unrunnable {
        denied()
    } else {
        not_found()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_not_found_and_a_plain_file_cannot_run() {
        let not_found = check_program("/nonexistent/aegis-test-binary", None, None).unwrap_err();
        assert_eq!(not_found.raw_os_error(), Some(libc::ENOENT));
        let plain = check_program(
            "./Cargo.toml",
            None,
            Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
        );
        assert_eq!(plain.unwrap_err().raw_os_error(), Some(libc::EACCES));
        assert!(check_program("", None, None).is_err());
    }

    #[test]
    fn a_program_is_looked_up_in_path_as_exec_would() {
        assert!(check_program("sh", Some(OsStr::new("/nonexistent:/bin")), None).is_ok());
        assert!(
            check_program("sh", None, None).is_ok(),
            "execvp's default PATH"
        );
        let missing = check_program("aegis-no-such-program", Some(OsStr::new("/bin")), None);
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert!(check_program("/bin/sh", Some(OsStr::new("")), None).is_ok());
    }

    #[test]
    fn descendants_are_found_through_parent_links() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert!(!found.contains(&std::process::id()));
        assert!(descendants(u32::MAX).is_empty());
    }

    #[test]
    fn the_kill_window_is_half_the_grace_within_bounds() {
        assert_eq!(
            kill_window(Duration::from_millis(600)),
            Duration::from_millis(300)
        );
        assert_eq!(kill_window(Duration::from_millis(1)), MIN_KILL_WINDOW);
        assert_eq!(kill_window(Duration::from_secs(60)), MAX_KILL_WINDOW);
    }
}

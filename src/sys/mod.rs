//! The few POSIX calls std does not offer: process-group and process signals, reaping,
//! subreaping, flock, the parent-death signal of a child (`PR_SET_PDEATHSIG`), and what the
//! supervisor needs: a signal mask, `sigtimedwait`, its stdio moved to `/dev/null`, its name;
//! glibc's malloc tuning (`malloc.rs`: the arena cap, the mmap threshold, `malloc_trim`); and
//! writing to stdout without waiting (`nowait.rs`: a pipe opened again non-blocking,
//! `MSG_DONTWAIT` on a socket, `poll` for room).
//!
//! Owns: every `unsafe` block of the crate, each a libc call (or two, read together) with plain
//! integer arguments or pointers to locals of the calling function.
//! Never: holds state or touches memory it did not allocate; callers own the policy (which group,
//! which signal, when).
#![allow(unsafe_code)] // Reason: libc calls std lacks (kill of a group, waitpid on a group, prctl).

mod malloc;
mod nowait;

pub(crate) use malloc::{release_free_memory, tune_malloc};
#[cfg(all(test, target_os = "linux"))]
pub(crate) use nowait::pipe;
pub(crate) use nowait::{nonblocking_stdout, wait_writable, NoWait};
#[cfg(test)]
pub(crate) use nowait::{reopen_pipe_nonblocking, unix_stream_whole};

use std::io;
#[cfg(target_os = "linux")]
use std::time::Duration;

/// The signals the gate and the supervisor send, wait for, or arm as a parent-death signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Reason: off Linux there is no supervisor, which is the one to use `Int` and `Child`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum Signal {
    /// Polite request to exit.
    Term,
    /// Cannot be caught or ignored.
    Kill,
    /// Interrupt (Ctrl-C); the supervisor treats it like `Term`.
    Int,
    /// Hang-up: the supervisor's parent-death signal (the gate is gone).
    Hup,
    /// A child stopped, continued or exited.
    Child,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
            Signal::Child => libc::SIGCHLD,
        }
    }

    #[cfg(target_os = "linux")]
    fn from_raw(raw: libc::c_int) -> Option<Signal> {
        [
            Signal::Term,
            Signal::Kill,
            Signal::Int,
            Signal::Hup,
            Signal::Child,
        ]
        .into_iter()
        .find(|s| s.raw() == raw)
    }
}

/// Sends `signal` to every process in group `pgid`. A group that no longer exists is not an error.
pub(crate) fn kill_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if pgid <= 1 {
        // kill(-1) or kill(0) would hit far more than one child's group.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill takes two integers and touches no memory of ours.
    let res = unsafe { libc::kill(-pgid, signal.raw()) };
    gone_is_fine(res)
}

/// Sends `signal` to the one process `pid`. A process that no longer exists is not an error.
pub(crate) fn kill_process(pid: u32, signal: Signal) -> io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if pid <= 1 {
        // kill(0), kill(1) or a negative pid would hit a group or init, never one child.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill takes two integers and touches no memory of ours.
    let res = unsafe { libc::kill(pid, signal.raw()) };
    gone_is_fine(res)
}

/// The result of a `kill`, where "no such process" means the work is already done.
fn gone_is_fine(res: libc::c_int) -> io::Result<()> {
    if res == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// True while any process (a zombie included) is left in group `pgid`.
pub(crate) fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence; no memory is touched.
    let res = unsafe { libc::kill(-pgid, 0) };
    res == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reaps every already-exited member of group `pgid` that is our child (grandchildren come to us
/// after their parent dies, because the gate is a child subreaper). Returns how many were reaped.
pub(crate) fn reap_group(pgid: u32) -> usize {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return 0;
    };
    if pgid <= 1 {
        return 0;
    }
    let mut n_reaped = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int into `status`, a local we own.
        let res = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if res <= 0 {
            return n_reaped;
        }
        n_reaped += 1;
    }
}

/// Has `cmd`'s process receive `signal` when the thread that spawns it ends: a gate killed with
/// SIGKILL cannot tear its children down, and servers that ignore stdin EOF would run on. Covers
/// the direct child only (the setting is cleared across its own forks, kept across its exec).
/// SIGKILL for a child that has nothing to clean up; a catchable signal for a supervisor, which
/// then tears its whole tree down. Spawn only from a thread that outlives the child (each
/// connection's own thread does; the supervisor has only one).
pub(crate) fn die_with_parent(cmd: &mut std::process::Command, signal: Signal) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        let raw = signal.raw();
        // SAFETY: the closure runs between fork and exec and makes async-signal-safe syscalls
        // with integer arguments; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, raw, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died before the signal was armed: do not start an orphan.
                if libc::getppid() != parent {
                    return Err(io::Error::other(
                        "the parent exited while starting the child",
                    ));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}

/// Makes orphaned descendants (a child's grandchildren whose parent died) our children, so that
/// teardown can reap them and none is left a zombie under an init that never waits.
pub(crate) fn become_child_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = set_child_subreaper() {
        log::warn!("could not become a child subreaper: {e}");
    }
}

/// Makes orphaned descendants our children (see [`become_child_subreaper`]), or says why not.
#[cfg(target_os = "linux")]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let res = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if res == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes an exclusive advisory lock on an open file, waiting for it. Released when the file closes.
pub(crate) fn lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock takes a descriptor we own (borrowed from `file`) and an integer.
        let res = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if res == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes an exclusive advisory lock without waiting; `Ok(false)` when another process holds it.
pub(crate) fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock takes a descriptor we own (borrowed from `file`) and integers.
    let res = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if res == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// How a reaped process ended.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) ended it.
    Signaled(i32),
}

/// Reaps one already-exited child of ours, any of them; `None` when none has exited (or there
/// are no children). Only for a process that keeps no `std::process::Child` it waits through
/// (the supervisor): it would take that child's status from under std.
#[cfg(target_os = "linux")]
pub(crate) fn reap_any() -> Option<(u32, WaitStatus)> {
    let mut status = 0;
    // SAFETY: waitpid writes one int into `status`, a local we own.
    let res = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    let pid = u32::try_from(res).ok().filter(|pid| *pid > 0)?;
    let how = if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    };
    Some((pid, how))
}

/// What [`reap_process`] found.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reap {
    /// It was an exited child of ours, and is reaped now.
    Reaped,
    /// It is a child of ours that has not exited yet.
    Running,
    /// It is not a child of ours (never was, or is already reaped).
    NotOurs,
}

/// Reaps `pid` if it is an exited child of ours; says which of [`Reap`] it was.
#[cfg(target_os = "linux")]
pub(crate) fn reap_process(pid: u32) -> Reap {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Reap::NotOurs;
    };
    if pid <= 1 {
        return Reap::NotOurs;
    }
    let mut status = 0;
    // SAFETY: waitpid writes one int into `status`, a local we own.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => Reap::Running,
        res if res == pid => Reap::Reaped,
        _ => Reap::NotOurs,
    }
}

/// A set of signals, as `sigprocmask` and `sigtimedwait` take it.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy)]
pub(crate) struct SignalSet(libc::sigset_t);

#[cfg(target_os = "linux")]
impl SignalSet {
    /// The set of `signals`.
    pub(crate) fn of(signals: &[Signal]) -> SignalSet {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initializes the set it is pointed at, a local we own; sigaddset
        // then only sets bits in it (it fails only for an invalid number, and ours are valid).
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for signal in signals {
                libc::sigaddset(set.as_mut_ptr(), signal.raw());
            }
            set.assume_init()
        };
        SignalSet(set)
    }
}

/// Blocks `set` for the calling thread (the whole process when it has one thread): the signals
/// wait, pending, for [`wait_for_signal`] instead of running their default action.
#[cfg(target_os = "linux")]
pub(crate) fn block_signals(set: &SignalSet) -> io::Result<()> {
    // SAFETY: pthread_sigmask reads the set we own and writes nothing (no old set asked for).
    let res = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if res == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(res))
    }
}

/// Unblocks `set` in `cmd`'s process before it runs its program: a signal mask survives exec,
/// and a server must not start with SIGTERM blocked.
#[cfg(target_os = "linux")]
pub(crate) fn unblock_signals_in_child(cmd: &mut std::process::Command, set: SignalSet) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; sigprocmask is async-signal-safe, reads a
    // copy of the set moved into the closure and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits up to `timeout` for one signal of `set` (which must be blocked) and takes it; `None`
/// when the time passed or another signal interrupted the wait.
#[cfg(target_os = "linux")]
pub(crate) fn wait_for_signal(set: &SignalSet, timeout: Duration) -> io::Result<Option<Signal>> {
    // Reason: `c_long` is 64 bits here but 32 on other Linux targets, where this can fail (it
    // does not: nanoseconds are below 10^9).
    #[allow(clippy::unnecessary_fallible_conversions)]
    let nanos = libc::c_long::try_from(timeout.subsec_nanos()).unwrap_or(0);
    // Capped at a day, which every `time_t` holds (callers wait seconds at most); the type is
    // left to the field, as musl's `time_t` alias is deprecated.
    let seconds = timeout.as_secs().min(86_400);
    let timeout = libc::timespec {
        tv_sec: seconds.try_into().unwrap_or(86_400),
        tv_nsec: nanos,
    };
    // SAFETY: sigtimedwait reads the set and the timeout, both ours; no siginfo is asked for.
    let res = unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), &timeout) };
    if res > 0 {
        return Ok(Signal::from_raw(res));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(err),
    }
}

/// Points stdin, stdout and stderr at `/dev/null`, closing what they were: the supervisor keeps
/// no end of its server's pipes open, so the gate sees EOF the moment the server's tree is gone.
#[cfg(target_os = "linux")]
pub(crate) fn stdio_to_dev_null() -> io::Result<()> {
    to_dev_null(0..=2)
}

/// Points stdin alone at `/dev/null`, closing what it was (the example server's `close_stdin`:
/// a server whose input side is gone while it lives on).
#[cfg(target_os = "linux")]
pub(crate) fn stdin_to_dev_null() -> io::Result<()> {
    to_dev_null(0..=0)
}

#[cfg(target_os = "linux")]
fn to_dev_null(fds: std::ops::RangeInclusive<i32>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in fds {
        // SAFETY: dup2 takes two descriptors: one we own (`null`, open for the whole loop) and
        // a standard one, which it closes and replaces atomically.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Names the calling thread (the process, when it is the main thread) in `ps`, `top` and
/// `/proc/PID/comm`; at most 15 bytes are kept.
#[cfg(target_os = "linux")]
pub(crate) fn set_process_name(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: prctl reads at most 16 bytes of a NUL-terminated string we borrow for the call.
    let res = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    if res == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

//! The few POSIX calls std does not offer: process-group signals, reaping, subreaping, flock,
//! the parent-death signal of a child (`PR_SET_PDEATHSIG`).
//!
//! Owns: every `unsafe` block of the crate, each a libc call (or two, read together) with plain
//! integer arguments.
//! Never: holds state or touches memory it did not allocate; callers own the policy (which group,
//! which signal, when).
#![allow(unsafe_code)] // Reason: libc calls std lacks (kill of a group, waitpid on a group, prctl).

use std::io;

/// Signals the gate sends to a child's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Polite request to exit.
    Term,
    /// Cannot be caught or ignored.
    Kill,
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
    let sig = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill takes two integers and touches no memory of ours.
    let res = unsafe { libc::kill(-pgid, sig) };
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

/// Has `cmd`'s process receive SIGKILL when the thread that spawns it ends: a gate killed with
/// SIGKILL cannot tear its children down, and servers that ignore stdin EOF would run on. Covers
/// the direct child only (the setting is cleared across its own forks). Spawn
/// only from a thread that outlives the child (each connection's own thread does).
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        // SAFETY: the closure runs between fork and exec and makes async-signal-safe syscalls
        // with integer arguments; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The gate died before the signal was armed: do not start an orphan.
                if libc::getppid() != parent {
                    return Err(io::Error::other("the gate exited while starting the child"));
                }
                Ok(())
            });
        }
    }
}

/// Makes orphaned descendants (a child's grandchildren whose parent died) our children, so that
/// teardown can reap them and none is left a zombie under an init that never waits.
pub(crate) fn become_child_subreaper() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        let res = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if res != 0 {
            log::warn!(
                "could not become a child subreaper: {}",
                io::Error::last_os_error()
            );
        }
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

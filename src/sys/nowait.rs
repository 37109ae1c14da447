//! Writing to stdout without waiting for its reader: a pipe opened again non-blocking,
//! `MSG_DONTWAIT` on a Unix stream socket, `poll` for room (the stdio `Shortcut`'s I/O).
//!
//! Owns: which descriptors can be written so, and how much each takes whole or not at all.
//! Never: changes the blocking mode of a descriptor others write to (a pipe is opened again; a
//! socket's flag is per call).
#![allow(unsafe_code)] // Reason: send, poll, getsockopt and fcntl, which std does not offer.

use std::io;

/// How to write to stdout without blocking, when it can be done: see [`NoWait`].
pub(crate) fn nonblocking_stdout() -> Option<NoWait> {
    reopen_pipe_nonblocking(1).map(NoWait::Pipe).or_else(|| {
        let whole = unix_stream_whole(1)?;
        Some(NoWait::UnixStream { fd: 1, whole })
    })
}

/// The most a pipe takes in one write whole or not at all (POSIX `PIPE_BUF`, 4096 on Linux).
const PIPE_BUF: usize = 4096;

/// A descriptor written to without ever waiting for its reader.
#[derive(Debug)]
pub(crate) enum NoWait {
    /// A pipe opened again with `O_NONBLOCK` (see [`reopen_pipe_nonblocking`]).
    Pipe(std::fs::File),
    /// A Unix stream socket (what Node's `child_process` gives a child), sent to with
    /// `MSG_DONTWAIT`: the flag is per call, so the descriptor's blocking writes elsewhere stay
    /// blocking. `whole` is the most it takes whole or not at all (see [`unix_stream_whole`]).
    UnixStream { fd: i32, whole: usize },
}

impl NoWait {
    /// Writes what the descriptor takes at once; `WouldBlock` when it takes nothing.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            NoWait::Pipe(file) => io::Write::write(file, bytes),
            NoWait::UnixStream { fd, .. } => send_nowait(*fd, bytes),
        }
    }

    /// The most bytes one write takes whole or not at all.
    pub(crate) fn whole(&self) -> usize {
        match self {
            NoWait::Pipe(_) => PIPE_BUF,
            NoWait::UnixStream { whole, .. } => *whole,
        }
    }

    /// The descriptor, to wait for room on.
    pub(crate) fn fd(&self) -> i32 {
        match self {
            NoWait::Pipe(file) => std::os::fd::AsRawFd::as_raw_fd(file),
            NoWait::UnixStream { fd, .. } => *fd,
        }
    }
}

/// When `fd` is a Unix-domain stream socket, the most bytes one send puts in a single buffer,
/// which the socket takes whole or not at all: Linux cuts a send into buffers of half the send
/// buffer less 64 bytes (`unix_stream_sendmsg`), and only a later buffer can find no room.
/// Capped at `PIPE_BUF`, with a margin for the kernel's own rounding.
pub(crate) fn unix_stream_whole(fd: i32) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let option = |name: libc::c_int| -> Option<libc::c_int> {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into the local integer.
            let res = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    name,
                    (&raw mut value).cast(),
                    &raw mut len,
                )
            };
            (res == 0).then_some(value)
        };
        let unix_stream = option(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
            && option(libc::SO_TYPE) == Some(libc::SOCK_STREAM);
        if !unix_stream {
            return None;
        }
        let send_buffer = usize::try_from(option(libc::SO_SNDBUF)?).ok()?;
        Some((send_buffer / 2).saturating_sub(256).min(PIPE_BUF))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

/// `send(2)` without waiting, and without SIGPIPE when the reader is gone (an error instead).
fn send_nowait(fd: i32, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: send reads at most `bytes.len()` bytes from the slice it is given.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, bytes);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Waits up to `timeout` for room to write on `fd`; false when none came.
pub(crate) fn wait_writable(fd: i32, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll reads and writes the one local pollfd it is given.
        let res = unsafe { libc::poll(&raw mut poll, 1, ms) };
        if res < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            // A signal (the first SIGTERM) is no answer: wait out the rest.
            continue;
        }
        return res > 0 && poll.revents & libc::POLLOUT != 0;
    }
}

/// The pipe on descriptor `fd` opened again without blocking. Opening `/proc/self/fd/N` makes a
/// new open file description, so the flag leaves alone the one shared with the other end's
/// owner (for stdout, the agent) and the blocking writes made through `fd`. `None` for anything
/// but a pipe (a socket, a file, a terminal) and off Linux.
pub(crate) fn reopen_pipe_nonblocking(fd: i32) -> Option<std::fs::File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = format!("/proc/self/fd/{fd}");
        let pipe = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_fifo());
        if !pipe {
            return None;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

/// A new pipe, as its reading and writing ends (for tests of what writes to a pipe).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn pipe() -> io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the local array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened by pipe2 and are owned by nothing else.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

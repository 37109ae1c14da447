//! The stdio transport's way out: the `stdout-writer` thread's loop, and the shortcut that lets
//! the thread holding a line (a connection thread with its child's answer, the stdin reader with
//! a refusal) write it to stdout itself.
//!
//! Why the shortcut: handing each answer to the writer thread costs a futex wake and a context
//! switch, and on a small host the writer competes for the cores with the threads of the next
//! calls. When nothing is waiting in the queue and stdout is a pipe with room, the line goes out
//! from the thread that has it.
//!
//! Owns: the order of lines on stdout (a line offered after another never overtakes it: while any
//! queued line is unwritten, every line queues behind it), the lock held while anything is
//! written, and recording each answer in the audit tap once it is written.
//! Never: blocks a caller of the shortcut: it writes only lines a single write takes whole or
//! not at all (under `PIPE_BUF` for a pipe opened anew without blocking; under one send buffer
//! of a Unix stream socket, sent to with `MSG_DONTWAIT`), and only when no one else is writing;
//! anything else goes to the queue as before. Should a socket take part of a line all the same,
//! the rest waits at most [`REPLY_WAIT`] for room, as a queued answer would; if none comes, the
//! line is lost as a dropped answer is, and the shortcut is off for good. A failed write of the
//! writer thread turns it off too: nothing is written after a line that may have been cut.

use super::tap::Tap;
use crate::jsonrpc::{Shortcut, REPLY_WAIT};
use crate::sys::{self, NoWait};
use crate::thread::lock;
use crossbeam_channel::{select, Receiver};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

/// The gate's stdout, shared by the writer thread and every shortcut.
pub(crate) struct Stdout {
    /// Held while anything is written to stdout. Inside, how to write to it without waiting;
    /// `None` where that cannot be done (a file, a terminal, a TCP socket) or once the writer
    /// has stopped.
    writing: Mutex<Option<NoWait>>,
    /// Lines given to the queue and not yet written.
    queued: AtomicUsize,
    tap: Option<Arc<Tap>>,
}

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdout")
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl Stdout {
    /// The gate's stdout; `tap` records answers once written.
    pub(crate) fn new(tap: Option<Arc<Tap>>) -> Stdout {
        Stdout::over(sys::nonblocking_stdout(), tap)
    }

    fn over(direct: Option<NoWait>, tap: Option<Arc<Tap>>) -> Stdout {
        Stdout {
            writing: Mutex::new(direct),
            queued: AtomicUsize::new(0),
            tap,
        }
    }

    /// Writes `line` now if it can without waiting for anyone; `Err` gives it back.
    fn try_direct(&self, mut line: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut writing = match self.writing.try_lock() {
            Ok(writing) => writing,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Someone is writing: they may be blocked on a full pipe.
            Err(TryLockError::WouldBlock) => return Err(line),
        };
        // Read under the lock: the writer counts lines off only once they are written.
        if self.queued.load(Ordering::Acquire) > 0 {
            return Err(line);
        }
        let Some(direct) = writing.as_mut() else {
            return Err(line);
        };
        if line.len() >= direct.whole() {
            return Err(line);
        }
        line.push(b'\n');
        match direct.write(&line) {
            Ok(n) if n == line.len() => {}
            // Taken in part, which a line this short should never be: the rest must follow
            // before anything else.
            Ok(n) if n > 0 => {
                if !finish(direct, line.get(n..).unwrap_or_default()) {
                    // Cut in the middle: no line written after it can be read any more. The
                    // answer is lost, as one the queue drops; nothing else goes this way.
                    log::error!("stdout: the agent stopped reading in the middle of a line");
                    *writing = None;
                    return Ok(());
                }
            }
            // Nothing taken (a full pipe or socket, a reader gone): the writer thread's to meet,
            // as it was without the shortcut.
            _ => {
                line.pop();
                return Err(line);
            }
        }
        drop(writing);
        line.pop();
        if let Some(tap) = &self.tap {
            tap.answer(&line);
        }
        Ok(())
    }

    /// The writer thread's loop: writes every queued line to `out` (stdout, blocking) until
    /// `close`, then what is left.
    pub(crate) fn write_loop(
        &self,
        out: &mut impl Write,
        lines: &Receiver<Vec<u8>>,
        close: &Receiver<()>,
    ) {
        loop {
            select! {
                recv(lines) -> line => match line {
                    Ok(line) => {
                        if self.write_batch(out, line, lines).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                recv(close) -> _ => {
                    // No shortcut writes after this: what is left goes out in one last batch.
                    *lock(&self.writing) = None;
                    if let Ok(first) = lines.try_recv() {
                        let _ = self.write_batch(out, first, lines);
                    }
                    return;
                }
            }
        }
    }

    /// Writes `first` and whatever else is queued, then flushes once.
    fn write_batch(
        &self,
        out: &mut impl Write,
        first: Vec<u8>,
        lines: &Receiver<Vec<u8>>,
    ) -> io::Result<()> {
        let mut writing = lock(&self.writing);
        let mut written = vec![first];
        while let Ok(line) = lines.try_recv() {
            written.push(line);
        }
        let result = written
            .iter()
            .try_for_each(|line| write_line(out, line))
            .and_then(|()| out.flush());
        // Counted off whether or not they made it: a failed stdout ends the loop, and no line
        // goes out after one that may have been cut.
        self.queued.fetch_sub(written.len(), Ordering::Release);
        if result.is_err() {
            *writing = None;
        }
        drop(writing);
        result.inspect_err(|e| log::warn!("stdout write failed: {e}"))?;
        // After the flush: the agent has its answers before anything is recorded.
        if let Some(tap) = &self.tap {
            for line in &written {
                tap.answer(line);
            }
        }
        Ok(())
    }
}

impl Shortcut for Stdout {
    fn write_now(&self, line: Vec<u8>) -> Option<Vec<u8>> {
        match self.try_direct(line) {
            Ok(()) => None,
            Err(line) => {
                self.queued.fetch_add(1, Ordering::AcqRel);
                Some(line)
            }
        }
    }

    fn unqueued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes the rest of a line a socket took only part of, waiting at most [`REPLY_WAIT`] in all;
/// false when it could not.
fn finish(direct: &mut NoWait, mut rest: &[u8]) -> bool {
    let deadline = std::time::Instant::now() + REPLY_WAIT;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match direct.write(rest) {
            Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && sys::wait_writable(direct.fd(), left) => {}
            _ => return false,
        }
    }
    true
}

fn write_line(out: &mut impl Write, line: &[u8]) -> io::Result<()> {
    out.write_all(line)?;
    out.write_all(b"\n")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// A pipe as the gate's stdout: its reader, the blocking writer the writer thread uses, and
    /// the shortcut over the same pipe opened again without blocking.
    fn pipe() -> (File, File, Stdout) {
        let (reader, writer) = crate::sys::pipe().expect("pipe");
        let direct = crate::sys::reopen_pipe_nonblocking(writer.as_raw_fd()).map(NoWait::Pipe);
        assert!(direct.is_some(), "a pipe opens again without blocking");
        (reader, writer, Stdout::over(direct, None))
    }

    /// Fills the pipe through the shortcut's descriptor until it would block.
    fn fill(stdout: &Stdout) -> usize {
        let mut guard = lock(&stdout.writing);
        let direct = guard.as_mut().expect("direct");
        let chunk = [b'x'; 1024];
        let mut filled = 0;
        while let Ok(n) = direct.write(&chunk) {
            filled += n;
        }
        filled
    }

    fn read_exact(reader: &mut impl Read, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        reader.read_exact(&mut buf).expect("read");
        buf
    }

    #[test]
    fn a_line_goes_out_at_once_when_nothing_waits() {
        let (mut reader, _writer, stdout) = pipe();
        assert_eq!(stdout.write_now(b"{\"id\":1}".to_vec()), None);
        assert_eq!(read_exact(&mut reader, 9), b"{\"id\":1}\n");
    }

    #[test]
    fn a_full_pipe_queues_and_later_lines_wait_behind() {
        let (mut reader, mut writer, stdout) = pipe();
        let filled = fill(&stdout);
        // The pipe is full: the first line is given back for the queue.
        let first = stdout.write_now(b"first".to_vec());
        assert_eq!(first.as_deref(), Some(&b"first"[..]));
        // The agent reads: the pipe has room, but "second" must not overtake "first".
        read_exact(&mut reader, filled);
        let second = stdout.write_now(b"second".to_vec());
        assert_eq!(second.as_deref(), Some(&b"second"[..]));
        // The writer thread writes both, in order; after it, lines go out at once again.
        let (tx, rx) = crossbeam_channel::bounded(4);
        tx.send(b"second".to_vec()).expect("send");
        stdout
            .write_batch(&mut writer, b"first".to_vec(), &rx)
            .expect("batch");
        assert_eq!(stdout.write_now(b"third".to_vec()), None);
        assert_eq!(read_exact(&mut reader, 19), b"first\nsecond\nthird\n");
    }

    #[test]
    fn a_line_not_queued_after_all_does_not_hold_the_others_back() {
        let (mut reader, _writer, stdout) = pipe();
        let filled = fill(&stdout);
        assert!(stdout.write_now(b"lost".to_vec()).is_some());
        stdout.unqueued();
        read_exact(&mut reader, filled);
        assert_eq!(stdout.write_now(b"next".to_vec()), None);
        assert_eq!(read_exact(&mut reader, 5), b"next\n");
    }

    #[test]
    fn long_lines_and_stdout_that_is_no_pipe_use_the_queue() {
        let (_reader, _writer, stdout) = pipe();
        let long = vec![b'a'; 4096];
        assert_eq!(stdout.write_now(long.clone()), Some(long));
        let no_pipe = Stdout::over(None, None);
        assert!(no_pipe.write_now(b"x".to_vec()).is_some());
        let device = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        assert!(crate::sys::reopen_pipe_nonblocking(device.as_raw_fd()).is_none());
        assert!(crate::sys::unix_stream_whole(device.as_raw_fd()).is_none());
    }

    #[test]
    fn a_unix_stream_socket_takes_lines_at_once_and_queues_when_full() {
        let (mut reader, writer) = UnixStream::pair().expect("socket pair");
        let fd = writer.as_raw_fd();
        let whole = crate::sys::unix_stream_whole(fd).expect("a Unix stream socket");
        assert!(whole > 1000, "{whole}");
        let stdout = Stdout::over(Some(NoWait::UnixStream { fd, whole }), None);
        assert_eq!(stdout.write_now(b"one".to_vec()), None);
        assert_eq!(read_exact(&mut reader, 4), b"one\n");
        // Filled until it takes nothing: the next line is given back whole, never cut.
        let filled = fill(&stdout);
        assert_eq!(
            stdout.write_now(b"two".to_vec()).as_deref(),
            Some(&b"two"[..])
        );
        read_exact(&mut reader, filled);
        drop(writer);
    }

    /// A stdout that refuses every write.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn after_the_writer_failed_nothing_more_is_written_at_once() {
        let (mut reader, _writer, stdout) = pipe();
        let (_tx, rx) = crossbeam_channel::bounded(1);
        let filled = fill(&stdout);
        assert!(stdout.write_now(b"queued".to_vec()).is_some());
        read_exact(&mut reader, filled);
        assert!(stdout
            .write_batch(&mut Broken, b"queued".to_vec(), &rx)
            .is_err());
        // The writer may have cut a line: what follows would be glued to it.
        assert_eq!(stdout.queued.load(Ordering::Acquire), 0);
        assert!(stdout.write_now(b"later".to_vec()).is_some());
    }
}

//! The current child of a connection and its three pipes, as the connection's loop sees them.
//!
//! Owns: the [`ChildProc`] (the bytes waiting for its stdin live there), the line readers of
//! stdout and stderr, whether a pipe still had bytes when its read budget ran out, the read
//! buffer, the stderr rate limit (kept across restarts, so a child that floods stderr and
//! crashes does not get a fresh budget with every start), and the current child's last stderr
//! lines ([`Tail`]: redacted, bounded; every stderr line is logged redacted too).
//! Never: parses JSON-RPC or decides what a failure means: it hands back lines and I/O outcomes,
//! and the connection fails the child. Never blocks on a pipe (all three are non-blocking); the
//! one wait is bounded, for an exit status in [`Pipes::exit_description`].

use super::tail::Tail;
use super::LOG_TARGET;
use crate::config::ServerConfig;
use crate::downstream::child::{ChildProc, ReadOutcome, STDERR, STDOUT};
use crate::downstream::health::LineBudget;
use crate::jsonrpc::{Frame, LineReader};
use mio::Poll;
use std::collections::BTreeMap;
use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// One read's bytes: small, since every connection keeps one (a big listing is read in a few more
/// reads, within [`READ_BUDGET`]).
const READ_BUF: usize = 16 * 1024;
/// Bytes read from one pipe before the loop looks at its other sources again.
const READ_BUDGET: usize = 1024 * 1024;
const STDERR_MAX_LINE: usize = 8 * 1024;

/// What became of a line written to the child's stdin.
pub(super) enum WriteResult {
    Written,
    /// The child is not reading its stdin; the backlog is at its cap.
    Backlogged,
    /// The pipe is broken: the child is gone.
    Broken(String),
}

/// One frame of the child's stdout.
pub(super) enum StdoutFrame {
    /// A complete line, without its newline.
    Line(Vec<u8>),
    /// A line over `max_line_bytes`, dropped by the reader.
    Overlong,
}

/// What one read of stdout produced: every complete frame, then how the read ended.
pub(super) struct StdoutRead {
    pub(super) frames: Vec<StdoutFrame>,
    pub(super) end: io::Result<ReadOutcome>,
}

/// The current child (when one runs) and the state of its pipes.
pub(super) struct Pipes {
    child: Option<ChildProc>,
    max_line_bytes: usize,
    stdout_reader: LineReader,
    stderr_reader: LineReader,
    stdout_more: bool,
    stderr_more: bool,
    stderr_budget: LineBudget,
    stderr_tail: Tail,
    buf: Vec<u8>,
}

impl Pipes {
    /// No child yet; stderr lines will be redacted of the values of `env` (the connection's).
    pub(super) fn new(
        max_line_bytes: usize,
        env: &BTreeMap<String, String>,
        now: Instant,
    ) -> Pipes {
        Pipes {
            child: None,
            max_line_bytes,
            stdout_reader: LineReader::new(max_line_bytes),
            stderr_reader: LineReader::new(STDERR_MAX_LINE),
            stdout_more: false,
            stderr_more: false,
            stderr_budget: LineBudget::new(20, 200, now),
            stderr_tail: Tail::new(env),
            buf: vec![0; READ_BUF],
        }
    }

    /// Forgets the partial lines and pending reads of the previous child, before a new start.
    pub(super) fn reset(&mut self) {
        self.stdout_reader = LineReader::new(self.max_line_bytes);
        self.stderr_reader = LineReader::new(STDERR_MAX_LINE);
        self.stdout_more = false;
        self.stderr_more = false;
        self.stderr_tail.clear();
    }

    /// Spawns the child of `cfg` with its pipes registered with `poll` (its teardown will take
    /// `grace` per step); returns its pid.
    pub(super) fn spawn(
        &mut self,
        cfg: &ServerConfig,
        grace: Duration,
        poll: &Poll,
    ) -> io::Result<u32> {
        let child = ChildProc::spawn(cfg, grace, poll)?;
        let pid = child.pid();
        self.child = Some(child);
        Ok(pid)
    }

    /// Whether a child is there (running, or exited and not yet torn down).
    pub(super) fn has_child(&self) -> bool {
        self.child.is_some()
    }

    /// Stdout had more bytes than one read's budget: read it again before sleeping.
    pub(super) fn stdout_more(&self) -> bool {
        self.stdout_more
    }

    /// Stderr had more bytes than one read's budget: read it again before sleeping.
    pub(super) fn stderr_more(&self) -> bool {
        self.stderr_more
    }

    /// Reads stdout up to the budget; `None` when no child is there.
    pub(super) fn read_stdout(&mut self) -> Option<StdoutRead> {
        let Some(child) = self.child.as_mut() else {
            self.stdout_more = false;
            return None;
        };
        let mut frames: Vec<StdoutFrame> = Vec::new();
        let reader = &mut self.stdout_reader;
        let end = child.read_pipe(STDOUT, &mut self.buf, READ_BUDGET, |bytes| {
            reader.push(bytes, |frame| {
                frames.push(match frame {
                    Frame::Line(line) => StdoutFrame::Line(line.to_vec()),
                    Frame::Overlong => StdoutFrame::Overlong,
                })
            })
        });
        self.stdout_more = matches!(end, Ok(ReadOutcome::More));
        Some(StdoutRead { frames, end })
    }

    /// Reads stderr up to the budget and logs its lines as `name`'s, within the rate limit;
    /// closes the pipe at its end (the child may live on without it).
    pub(super) fn read_stderr(&mut self, poll: &Poll, name: &str) {
        let Some(child) = self.child.as_mut() else {
            self.stderr_more = false;
            return;
        };
        let mut lines: Vec<String> = Vec::new();
        let reader = &mut self.stderr_reader;
        let res = child.read_pipe(STDERR, &mut self.buf, READ_BUDGET, |bytes| {
            reader.push(bytes, |frame| {
                lines.push(match frame {
                    Frame::Line(line) => String::from_utf8_lossy(line).into_owned(),
                    Frame::Overlong => format!("[a stderr line over {STDERR_MAX_LINE} bytes]"),
                })
            })
        });
        self.stderr_more = matches!(res, Ok(ReadOutcome::More));
        let now = Instant::now();
        for line in lines {
            let line = self.stderr_tail.redact(&line);
            self.stderr_tail.push(&line);
            if self.stderr_budget.take(now) {
                let dropped = self.stderr_budget.take_suppressed();
                if dropped > 0 {
                    log::warn!(
                        target: LOG_TARGET,
                        "connection {}: {dropped} stderr lines suppressed (rate limit)",
                        name
                    );
                }
                log::info!(target: "aegis_gate::downstream::stderr", "{}: {line}", name);
            }
        }
        if !matches!(res, Ok(ReadOutcome::Drained | ReadOutcome::More)) {
            if let Some(child) = self.child.as_mut() {
                child.close_output(poll, STDERR);
            }
        }
    }

    /// The current child's last stderr lines (`stderr: … | …`), redacted; `None` when it wrote
    /// none.
    pub(super) fn stderr_summary(&self) -> Option<String> {
        self.stderr_tail.summary()
    }

    /// Writes what the child's stdin takes now of the queued bytes; `Ok` when no child is there.
    pub(super) fn flush_stdin(&mut self) -> io::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        child.flush_stdin()
    }

    /// Queues one message line for the child's stdin and writes what the pipe takes now.
    pub(super) fn write_line(&mut self, line: &[u8]) -> WriteResult {
        let Some(child) = self.child.as_mut() else {
            return WriteResult::Broken("no child is running".into());
        };
        match child.send_line(line) {
            Ok(()) => WriteResult::Written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteResult::Backlogged,
            Err(e) => WriteResult::Broken(format!("stdin write failed: {e}")),
        }
    }

    /// The child's exit status once it has exited (reaps it); `None` while it runs or when no
    /// child is there.
    pub(super) fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_exit()
    }

    /// Why stdout closed: the exit status when the child exits within a moment (it usually
    /// closes stdout by exiting; the status is a little behind the hang-up).
    pub(super) fn exit_description(&mut self) -> String {
        const EXIT_WAIT: Duration = Duration::from_millis(200);
        let deadline = Instant::now() + EXIT_WAIT;
        while let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_exit() {
                return format!("exited ({status})");
            }
            if Instant::now() >= deadline {
                break;
            }
            // Process exit is not a pollable event here; this wait is bounded by EXIT_WAIT.
            std::thread::sleep(Duration::from_millis(2));
        }
        "closed its stdout".to_owned()
    }

    /// Tears the child down (see `ChildProc::teardown`) and forgets its pending reads. Returns
    /// its pid and exit status, or `None` when no child was there.
    pub(super) fn teardown(
        &mut self,
        poll: &mut Poll,
        grace: Duration,
        polite: bool,
    ) -> Option<(u32, Option<ExitStatus>)> {
        let torn_down = self.child.take().map(|mut child| {
            let exit = child.teardown(poll, grace, polite);
            (child.pid(), exit)
        });
        self.stdout_more = false;
        self.stderr_more = false;
        torn_down
    }
}

//! The stdio transport: one agent on stdin/stdout, newline-delimited JSON-RPC.
//!
//! Owns: wiring a whole gate for one process (connections, merger, gate), the stdin reader, the
//! stdout writer, signal handling, and the shutdown order: stop reading, let requests already
//! received finish (at stdin EOF, up to the drain timeout), tear every child down, stop the merger,
//! flush stdout.
//! Never: writes anything but protocol messages to stdout (logs go to stderr).
//!
//! Threads: `stdin-reader` (frames and parses stdin, once per line, and calls `Gate::handle_parsed`; at a signal it is left blocked
//! in `read`, since the process exits next), `stdout-writer` (drains the bounded outgoing queue,
//! [`OUT_QUEUE`] lines, see [`super::stdout`]: a line that can go out at once from the thread
//! holding it skips the queue; left behind only when the agent stops reading stdout, where its
//! `write` would never return), `signals` (the first SIGTERM/SIGINT starts the shutdown, a second has
//! every child's tree killed and exits at once, see [`LAST_SIGNAL`]), plus those of the
//! connections and the merger.
//! Channels: outgoing lines (bounded), stop reasons (bounded, 4), the writer's close and done
//! channels (dropped to signal).

use super::runtime::Runtime;
use super::stdout::Stdout;
use super::{modern, Gate, Session};
use crate::audit::Audit;
use crate::config::Config;
use crate::downstream;
use crate::gate::tap::Tap;
use crate::gate::ToolCall;
use crate::jsonrpc::{self, code, Frame, LineReader, Message, Sink};
use crate::store::pins::PinStore;
use crate::sys;
use crate::thread;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Lines waiting for stdout.
pub(crate) const OUT_QUEUE: usize = 4096;

/// What a second SIGTERM or SIGINT sends every child's group before the gate exits. On Linux a
/// local child's group is led by its supervisor: SIGTERM, then the parent-death signal our exit
/// sends it, make two stop requests, and it SIGKILLs its whole tree at once, what left the group
/// included; SIGKILL would kill the supervisor before it could. A bridge dies of either signal.
/// Elsewhere there is no supervisor, and SIGKILL to the group is all there is.
#[cfg(target_os = "linux")]
const LAST_SIGNAL: sys::Signal = sys::Signal::Term;
#[cfg(not(target_os = "linux"))]
const LAST_SIGNAL: sys::Signal = sys::Signal::Kill;

/// The session id of the one stdio peer.
const STDIO_SESSION: u64 = 1;

/// How long shutdown waits for stdout to take the last lines.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The workspace name a stdio gate keeps its pins under.
pub(crate) const WORKSPACE: &str = "default";

/// Why the stdio gate could not run.
#[derive(Debug)]
pub(crate) enum Error {
    /// A connection could not be started.
    Downstream(downstream::Error),
    /// A thread or the signal handler could not be set up.
    Io(io::Error),
    /// The data dir or the pins in it could not be used.
    Store(crate::store::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Downstream(e) => e.fmt(f),
            Error::Io(e) => write!(f, "stdio gate error: {e}"),
            Error::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Downstream(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Store(e) => Some(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

#[derive(Debug)]
enum Stop {
    StdinClosed,
    Signal(i32),
}

/// Runs the gate for `config` on stdin/stdout until stdin closes or SIGTERM/SIGINT arrives;
/// pins and findings are kept in `data_dir` under `workspace` ([`WORKSPACE`] for a config file).
pub(crate) fn run(config: Config, data_dir: &Path, workspace: &str) -> Result<(), Error> {
    sys::tune_malloc();
    sys::become_child_subreaper();
    let pins = PinStore::open(data_dir).map_err(Error::Store)?;
    log::info!("data dir {}", data_dir.display());
    let settings = Arc::new(config.settings);
    let audit = if settings.audit {
        open_audit(data_dir)
    } else {
        None
    };
    let started = Runtime::start(
        Arc::clone(&settings),
        workspace,
        config.servers,
        Some(pins),
        audit.clone(),
    );
    let runtime = started.map_err(Error::Downstream)?;
    let gate = Arc::clone(runtime.gate());
    if let Some(policy) = settings.policy.clone() {
        gate.set_policy(policy);
    }
    let tap = audit.as_ref().map(|a| {
        Arc::new(Tap::new(
            Arc::clone(a),
            Arc::clone(&gate),
            workspace,
            settings.agent.clone(),
        ))
    });
    let stdout = Arc::new(Stdout::new(tap.clone()));
    let writer_stdout = Arc::clone(&stdout);

    let (out_tx, out_rx) = crossbeam_channel::bounded(OUT_QUEUE);
    let (close_tx, close_rx) = crossbeam_channel::bounded::<()>(1);
    let (writer_done_tx, writer_done_rx) = crossbeam_channel::bounded::<()>(1);
    let writer = thread::spawn("stdout-writer", move || {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        writer_stdout.write_loop(&mut out, &out_rx, &close_rx);
        drop(writer_done_tx);
    })?;

    let (stop_tx, stop_rx) = crossbeam_channel::bounded(4);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let signals_handle = signals.handle();
    let signal_stop = stop_tx.clone();
    let signal_conns = runtime.handles();
    let signal_thread = thread::spawn("signals", move || {
        let mut seen = 0;
        for signal in signals.forever() {
            seen += 1;
            if seen > 1 {
                // The operator insists: no more grace. Stop every child's group and leave.
                let name = signal_name(signal);
                log::warn!("second signal ({name}): killing every child and exiting now");
                for conn in &signal_conns {
                    if let Some(pid) = conn.snapshot().pid {
                        let _ = sys::kill_group(pid, LAST_SIGNAL);
                    }
                }
                std::process::exit(1);
            }
            let _ = signal_stop.try_send(Stop::Signal(signal));
        }
    })?;

    let mut session = Session::new(Sink::new(STDIO_SESSION, out_tx).with_shortcut(stdout));
    // The local caller is whoever the config names: there is no channel to authenticate.
    if let Some(agent) = &settings.agent {
        session = session.with_agent(agent.as_str());
    }
    let session_sink = session.sink().clone();
    let max_line = settings.max_line_bytes;
    let reader_gate = Arc::clone(&gate);
    let reader = thread::spawn("stdin-reader", move || {
        read_loop(&reader_gate, &session, max_line, tap.as_deref());
        reader_gate.end_session(&session);
        let _ = stop_tx.try_send(Stop::StdinClosed);
    })?;

    let stop = stop_rx.recv().unwrap_or(Stop::StdinClosed);
    match &stop {
        Stop::StdinClosed => log::info!("stdin closed; shutting down"),
        Stop::Signal(n) => log::info!("{}; shutting down", signal_name(*n)),
    }
    if matches!(stop, Stop::StdinClosed) && !session_sink.wait_idle(settings.drain_timeout) {
        log::warn!("requests still unanswered after the drain timeout are dropped");
    }
    drop(session_sink);
    runtime.stop();
    signals_handle.close();
    signal_thread.join();
    match stop {
        Stop::StdinClosed => {
            reader.join();
        }
        // Reason: a thread blocked in read(2) on stdin cannot be interrupted portably, and the
        // process exits right after this function returns.
        Stop::Signal(_) => reader.detach(),
    }
    drop(gate);
    drop(close_tx);
    match writer_done_rx.recv_timeout(WRITER_WAIT) {
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            // Reason: an agent that reads nothing leaves write(2) on stdout blocked for good;
            // the process exits right after this.
            log::warn!("stdout is not being read; exiting without flushing it");
            writer.detach();
        }
        Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            writer.join();
        }
    }
    // Everything recorded is on disk before the process ends.
    if let Some(audit) = audit {
        audit.stop();
    }
    log::info!("stopped");
    Ok(())
}

/// The data dir's audit trail (one chain with `serve`'s), or `None` with a warning when it
/// cannot be opened: the gate still serves.
fn open_audit(data_dir: &Path) -> Option<Arc<Audit>> {
    let keys = match crate::crypto::signing::SigningKeys::load_or_create(data_dir) {
        Ok(keys) => keys,
        Err(e) => {
            log::warn!("no audit trail ({e}); calls are not recorded");
            return None;
        }
    };
    let current = keys.current();
    match Audit::start(
        data_dir,
        current.signing_key().clone(),
        current.kid.clone(),
        crate::audit::DEFAULT_ROTATE_BYTES,
    ) {
        Ok(audit) => Some(Arc::new(audit)),
        Err(e) => {
            log::warn!("no audit trail ({e}); calls are not recorded");
            None
        }
    }
}

fn read_loop(gate: &Arc<Gate>, session: &Session, max_line: usize, tap: Option<&Tap>) {
    let mut framer = LineReader::new(max_line);
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("stdin read failed: {e}");
                return;
            }
        };
        framer.push(buf.get(..n).unwrap_or_default(), |frame| match frame {
            Frame::Line(line) => {
                // Parsed once: the tap reads the same parse the gate routes.
                let parsed = jsonrpc::parse(line);
                let call = parsed.as_ref().ok().and_then(ToolCall::of);
                let envelope = parsed.as_ref().ok().and_then(modern::envelope_of);
                if let (Some(tap), Ok(Message::Request { id, .. }), Some(call)) =
                    (tap, &parsed, &call)
                {
                    tap.request(id, call, matches!(envelope, Some(Ok(_))));
                }
                // A 2026-07-28 request is a session of its own, on the same stdout.
                match envelope {
                    None => gate.handle_parsed(session, parsed, call),
                    Some(Ok(envelope)) => {
                        let request = session.for_modern_request(envelope.client);
                        gate.handle_parsed(&request, parsed, call);
                    }
                    Some(Err(refused)) => {
                        let id = match &parsed {
                            Ok(Message::Request { id, .. }) => Some(id.clone()),
                            _ => None,
                        };
                        session.sink().send_reply(refused.line(id.as_ref()));
                    }
                }
            }
            Frame::Overlong => {
                let message = format!("message over the {max_line} byte limit was dropped");
                session
                    .sink()
                    .send(jsonrpc::error_line(None, code::INVALID_REQUEST, &message));
            }
        });
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N` for another (serve's shutdown line says it the same way).
pub(crate) fn signal_name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal)
        .map_or_else(|| format!("signal {signal}"), str::to_owned)
}

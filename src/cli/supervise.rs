//! `aegis-gate supervise`: the per-connection supervisor the gate puts between itself and every
//! local server (Linux). Hidden: not in the top-level help, not an API boundary; the gate builds
//! the command line (`supervisor::command`) and this file parses it.
//!
//! Owns: the flags (`--grace-ms N`, then the server's program and arguments, after `--`), and
//! the exit: the server's status (its code, or 128 + the signal that ended it), 127 when the
//! program is not found, 126 when it cannot run, 125 when the supervisor could not set itself
//! up, 2 for a wrong command line.
//! Never: starts logging (the supervisor's stderr is the server's until it moves it to
//! `/dev/null`; its only message is a failure to start, on stderr, before that).

use super::{args, CliError};
use lexopt::prelude::*;

/// Runs the supervisor and exits with the server's status; returns only for `--help` or a
/// usage error.
pub(super) fn run(parser: &mut lexopt::Parser) -> Result<(), CliError> {
    let mut grace_ms: u64 = DEFAULT_GRACE_MS;
    let mut program = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("grace-ms") => {
                grace_ms = args::at_most_a_day(args::parse_number(parser, "--grace-ms")?)?;
            }
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            // Everything after the program is the server's, flags included.
            Value(value) => {
                program = Some(value);
                break;
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(program) = program else {
        return Err(CliError::Usage("supervise: no program given".into()));
    };
    let rest = parser.raw_args()?.collect();
    supervise(program, rest, grace_ms)
}

#[cfg(target_os = "linux")]
fn supervise(
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    grace_ms: u64,
) -> Result<(), CliError> {
    use crate::supervisor;
    let options = supervisor::Options {
        grace: std::time::Duration::from_millis(grace_ms),
        program,
        args,
    };
    let code = match supervisor::run(&options) {
        Ok(code) => code,
        Err(e) => {
            // Still the server's stderr: the gate logs it as the connection's.
            eprintln!("aegis-gate: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code)
}

#[cfg(not(target_os = "linux"))]
fn supervise(
    _program: std::ffi::OsString,
    _args: Vec<std::ffi::OsString>,
    _grace_ms: u64,
) -> Result<(), CliError> {
    Err(CliError::Usage(
        "supervise runs on Linux only (a child subreaper and /proc)".into(),
    ))
}

/// The grace when `--grace-ms` is not given: half the gate's default teardown grace (2 s).
const DEFAULT_GRACE_MS: u64 = 1000;

const HELP: &str = "\
aegis-gate supervise: run one MCP server so that every process it starts dies with it
(internal: the gate starts one per local server, on Linux)

USAGE:
    aegis-gate supervise [--grace-ms N] -- PROGRAM [ARGS...]

At SIGTERM, SIGINT or SIGHUP (the gate's death), every descendant gets SIGTERM, then
SIGKILL after the grace; a second signal skips the grace. Exits with the server's
status (128 + signal when a signal ended it).

OPTIONS:
    --grace-ms N   From SIGTERM to SIGKILL of the descendants (default 1000)
    -h, --help     Print help
";

//! The command line: the top-level help, the dispatch to a subcommand, exit codes.
//!
//! Owns: turning `argv` into a call of the library, and errors into a message on stderr and an
//! exit code (0 success, 1 runtime failure, 2 usage or configuration error). Each subcommand is
//! one file holding its help text, its flags and its `run`; `args.rs` holds the parsing they share.
//! Never: holds behaviour of its own beyond parsing; never prints to stdout except `--help`,
//! `--version` and what a subcommand defines as its output; never reaches into another part's
//! internals (what a subcommand may call of `api` is named in that subcommand's file).

mod approvals;
mod args;
mod audit;
mod bridge;
mod doctor;
mod example;
mod keys;
mod partners;
mod rotate_key;
mod serve;
mod stdio;
mod supervise;
mod tools;

use lexopt::prelude::*;
use std::ffi::OsString;

/// Runs the command line and returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    match parse_and_run(args) {
        Ok(()) => 0,
        Err(CliError::Usage(message)) => {
            eprintln!("aegis-gate: {message}\n\nRun `aegis-gate --help` for usage.");
            2
        }
        Err(CliError::Config(message)) => {
            eprintln!("aegis-gate: {message}");
            2
        }
        Err(CliError::Runtime(message)) => {
            log::error!("{message}");
            eprintln!("aegis-gate: {message}");
            1
        }
    }
}

/// Why a command failed; each kind has its exit code and its way of being reported.
enum CliError {
    /// The command line itself is wrong (unknown command or flag, bad value): exit 2, with a
    /// pointer to `--help`.
    Usage(String),
    /// A file or setting the command was given is wrong, or the data dir is unusable: exit 2.
    Config(String),
    /// The command ran and failed: logged, then exit 1.
    Runtime(String),
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> CliError {
        CliError::Usage(e.to_string())
    }
}

fn parse_and_run(args: Vec<OsString>) -> Result<(), CliError> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut log_level: Option<String> = None;
    loop {
        match parser.next()? {
            Some(Long("log-level")) => log_level = Some(parser.value()?.string()?),
            Some(Short('h') | Long("help")) => {
                print!("{HELP}");
                return Ok(());
            }
            Some(Short('V') | Long("version")) => {
                println!("aegis-gate {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            Some(Value(command)) => {
                let command = command.string()?;
                return run_command(&command, &mut parser, log_level.as_deref());
            }
            Some(other) => return Err(other.unexpected().into()),
            None => return Err(CliError::Usage("no command given".into())),
        }
    }
}

fn run_command(
    command: &str,
    parser: &mut lexopt::Parser,
    log_level: Option<&str>,
) -> Result<(), CliError> {
    match command {
        "stdio" => stdio::run(parser, log_level),
        "tools" => tools::run(parser, log_level),
        "serve" => serve::run(parser, log_level),
        "rotate-key" => rotate_key::run(parser, log_level),
        "keys" => keys::run(parser, log_level),
        "bridge" => bridge::run(parser, log_level),
        "partners" => partners::run(parser, log_level),
        "audit" => audit::run(parser, log_level),
        "approvals" => approvals::run(parser, log_level),
        "example-server" => example::run(parser, log_level),
        "supervise" => supervise::run(parser),
        "doctor" => doctor::run(parser, log_level),
        other => Err(CliError::Usage(format!("unknown command {other:?}"))),
    }
}

const HELP: &str = "\
aegis-gate: one MCP endpoint in front of many MCP servers

USAGE:
    aegis-gate [--log-level LEVEL] <COMMAND> [OPTIONS]

COMMANDS:
    stdio            Serve the merged tools of the configured servers over stdin/stdout
    serve            Run the HTTP service: REST admin API and MCP over Streamable HTTP
    tools            List, inspect and approve tools (verdicts, findings, pins)
    rotate-key       Re-encrypt every stored secret under a new Fernet key, then drop the old one
    keys             Show this gate's org id and public keys (for partners), or rotate them
    partners         List, show, add or remove partner organizations (serve stopped to change)
    audit            Verify the signed, chained audit trail (audit verify)
    approvals        List, approve or deny the calls a running serve holds for a person
    bridge           Speak stdio to one remote MCP server over Streamable HTTP (what
                     connections of kind http and partner run)
    example-server   Run the built-in example MCP server over stdin/stdout
    doctor           Check a config file, a data dir and serve's flags before starting anything

GLOBAL OPTIONS:
    --log-level LEVEL   Log filter, e.g. info or aegis_gate::downstream=debug
                        (default: $AEGIS_LOG, else info). Logs go to stderr.
    -h, --help          Print help
    -V, --version       Print version

Run `aegis-gate <COMMAND> --help` for a command's options.
";

//! The command line: the table of subcommands, the top-level help, the dispatch, exit codes.
//!
//! Owns: turning `argv` into a call of the library, and errors into one message on stderr and an
//! exit code (0 success, 1 runtime failure, 2 usage or configuration error). Each subcommand is
//! one file holding its help text, its flags and its `run`; `args.rs` holds the parsing they share;
//! [`COMMANDS`] lists them once, and the top-level help, `help`, `completions` and `man` are made
//! from that list and the help texts.
//! Never: holds behaviour of its own beyond parsing; never prints to stdout except help texts,
//! `--version` and what a subcommand defines as its output; never reaches into another part's
//! internals (what a subcommand may call of `api` is named in that subcommand's file); never
//! reports one failure twice (no log line besides the `aegis-gate:` line).

mod approvals;
mod args;
mod audit;
mod bridge;
mod completions;
mod doctor;
mod example;
mod keys;
mod man;
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
    let Err(failure) = parse_and_run(args) else {
        return 0;
    };
    let (message, code) = failure.report();
    eprintln!("{message}");
    code
}

/// Why a command failed; each kind has its exit code and its way of being reported.
enum CliError {
    /// The command line itself is wrong (unknown command or flag, bad value): exit 2, with a
    /// pointer to the help of the command it was given to.
    Usage(String),
    /// A file or setting the command was given is wrong, or the data dir is unusable: exit 2.
    Config(String),
    /// The command ran and failed: exit 1.
    Runtime(String),
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> CliError {
        CliError::Usage(e.to_string())
    }
}

/// A failed run: the error, and the subcommand it happened in (`None` before one was named).
struct Failure {
    command: Option<&'static str>,
    error: CliError,
}

impl Failure {
    /// The one message to print (without its final newline) and the exit code.
    fn report(&self) -> (String, i32) {
        match &self.error {
            CliError::Usage(message) => {
                let help = match self.command {
                    Some(command) => format!("aegis-gate {command} --help"),
                    None => "aegis-gate --help".to_owned(),
                };
                (
                    format!("aegis-gate: {message}\n\nRun `{help}` for usage."),
                    2,
                )
            }
            CliError::Config(message) => (format!("aegis-gate: {message}"), 2),
            CliError::Runtime(message) => (format!("aegis-gate: {message}"), 1),
        }
    }
}

/// One subcommand: its name, its line in the top-level help, its help page and its entry point.
struct Command {
    name: &'static str,
    /// One line (a second one may follow after `\n`) for the top-level help and the man page.
    summary: &'static str,
    help: &'static str,
    run: fn(&mut lexopt::Parser, Option<&str>) -> Result<(), CliError>,
}

/// Every subcommand, in the order the top-level help lists them.
const COMMANDS: &[Command] = &[
    Command {
        name: "stdio",
        summary: "Serve the merged tools of the configured servers over stdin/stdout",
        help: stdio::HELP,
        run: stdio::run,
    },
    Command {
        name: "serve",
        summary: "Run the HTTP service: REST admin API and MCP over Streamable HTTP",
        help: serve::HELP,
        run: serve::run,
    },
    Command {
        name: "tools",
        summary: "List, inspect and approve tools (verdicts, findings, pins, what changed)",
        help: tools::HELP,
        run: tools::run,
    },
    Command {
        name: "rotate-key",
        summary: "Re-encrypt every stored secret under a new Fernet key, then drop the old one",
        help: rotate_key::HELP,
        run: rotate_key::run,
    },
    Command {
        name: "keys",
        summary: "Show this gate's org id and public keys (for partners), or rotate them",
        help: keys::HELP,
        run: keys::run,
    },
    Command {
        name: "partners",
        summary: "List, show, add or remove partner organizations (serve stopped to change)",
        help: partners::HELP,
        run: partners::run,
    },
    Command {
        name: "audit",
        summary: "Verify the signed, chained audit trail (audit verify)",
        help: audit::HELP,
        run: audit::run,
    },
    Command {
        name: "approvals",
        summary: "List, approve or deny the calls a running serve holds for a person",
        help: approvals::HELP,
        run: approvals::run,
    },
    Command {
        name: "bridge",
        summary: "Speak stdio to one remote MCP server over Streamable HTTP (what\n\
                  connections of kind http and partner run)",
        help: bridge::HELP,
        run: bridge::run,
    },
    Command {
        name: "example-server",
        summary: "Run the built-in example MCP server over stdin/stdout",
        help: example::HELP,
        run: example::run,
    },
    Command {
        name: "doctor",
        summary: "Check a config file, a data dir and serve's flags before starting anything",
        help: doctor::HELP,
        run: doctor::run,
    },
    Command {
        name: "help",
        summary: "Print this help, or the help of a command",
        help: HELP_HELP,
        run: run_help,
    },
    Command {
        name: "completions",
        summary: "Print a shell completion script (bash, zsh or fish)",
        help: completions::HELP,
        run: completions::run,
    },
    Command {
        name: "man",
        summary: "Print the manual page (roff), made from these help texts",
        help: man::HELP,
        run: man::run,
    },
];

fn parse_and_run(args: Vec<OsString>) -> Result<(), Failure> {
    let top = |error: CliError| Failure {
        command: None,
        error,
    };
    let mut parser = lexopt::Parser::from_args(args);
    let mut log_level: Option<String> = None;
    loop {
        match parser.next().map_err(|e| top(e.into()))? {
            Some(Long("log-level")) => {
                let value = parser.value().and_then(|v| v.string());
                log_level = Some(value.map_err(|e| top(e.into()))?);
            }
            Some(Short('h') | Long("help")) => {
                print!("{}", top_help());
                return Ok(());
            }
            Some(Short('V') | Long("version")) => {
                println!("aegis-gate {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            Some(Value(word)) => {
                let word = word.string().map_err(|e| top(e.into()))?;
                // The per-connection supervisor the gate itself starts: not a user's command,
                // so not in the help, completions or man page.
                if word == "supervise" {
                    return supervise::run(&mut parser).map_err(top);
                }
                let command = find(&word).map_err(top)?;
                return (command.run)(&mut parser, log_level.as_deref()).map_err(|error| Failure {
                    command: Some(command.name),
                    error,
                });
            }
            Some(other) => return Err(top(other.unexpected().into())),
            None => return Err(top(CliError::Usage("no command given".into()))),
        }
    }
}

/// The subcommand named `word`; a usage error listing them otherwise.
fn find(word: &str) -> Result<&'static Command, CliError> {
    COMMANDS.iter().find(|c| c.name == word).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown command {word:?}; the commands are {}",
            names()
        ))
    })
}

/// The subcommands' names, comma-separated.
fn names() -> String {
    COMMANDS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `aegis-gate help [COMMAND]`: the top-level help, or a command's.
fn run_help(parser: &mut lexopt::Parser, _log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Short('h') | Long("help") => {
                print!("{HELP_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    match words.as_slice() {
        [] => print!("{}", top_help()),
        [word] => print!("{}", find(word)?.help),
        _ => return Err(args::takes("help", "at most one command name", &words)),
    }
    Ok(())
}

/// The top-level help: the head, one line per command, the global options and examples.
fn top_help() -> String {
    let mut out = String::from(HELP_HEAD);
    for command in COMMANDS {
        let mut lines = command.summary.lines();
        let first = lines.next().unwrap_or_default();
        out.push_str(&format!("    {:<16} {first}\n", command.name));
        for line in lines {
            out.push_str(&format!("    {:<16} {}\n", "", line.trim_start()));
        }
    }
    out.push_str(HELP_TAIL);
    out
}

const HELP_HEAD: &str = "\
aegis-gate: one MCP endpoint in front of many MCP servers

USAGE:
    aegis-gate [--log-level LEVEL] <COMMAND> [OPTIONS]
    aegis-gate help [COMMAND]

COMMANDS:
";

const HELP_TAIL: &str = "
GLOBAL OPTIONS:
    --log-level LEVEL   Log filter, e.g. info or aegis_gate::downstream=debug
                        (default: $AEGIS_LOG, else info). Logs go to stderr.
    -h, --help          Print help
    -V, --version       Print version

EXAMPLES:
    aegis-gate stdio --demo
    aegis-gate serve --demo
    aegis-gate --log-level debug stdio --config mcp.json
    aegis-gate help serve

Run `aegis-gate <COMMAND> --help` or `aegis-gate help <COMMAND>` for a command's options.
";

const HELP_HELP: &str = "\
aegis-gate help: print the top-level help, or the help of one command

USAGE:
    aegis-gate help [COMMAND]

EXAMPLES:
    aegis-gate help
    aegis-gate help tools
";

//! `aegis-gate example-server`: the built-in MCP server, for demos, tests and the bench.
//!
//! Owns: the help and flags of `example-server` (which tools it offers, how it misbehaves), and
//! the hand-over to `example_server::run`.
//! Never: writes to stdout itself (it is the server's protocol).

use super::{args, CliError};
use crate::{example_server, logging};
use lexopt::prelude::*;

/// Runs `aegis-gate example-server` until stdin ends (or, with `--ignore-eof`, a signal).
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut options = example_server::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("faults") => options.faults = true,
            Long("no-ping") => options.no_ping = true,
            Long("ignore-eof") => options.ignore_eof = true,
            Long("extra-tools") => {
                options.extra_tools = args::parse_number(parser, "--extra-tools")?
            }
            Long("page-size") => {
                options.page_size = Some(args::parse_number(parser, "--page-size")?)
            }
            Long("poison") => options.poison = true,
            Long("startup-delay-ms") => {
                options.startup_delay_ms =
                    args::at_most_a_day(args::parse_number(parser, "--startup-delay-ms")?)?
            }
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    example_server::run(options).map_err(|e| CliError::Runtime(format!("example server: {e}")))
}

pub(super) const HELP: &str = "\
aegis-gate example-server: a small MCP server over stdin/stdout, for demos and tests

USAGE:
    aegis-gate example-server [OPTIONS]

OPTIONS:
    --faults           Also offer pid, stats, list_flood and misbehaving tools: crash, hang,
                       big_line, garbage, stderr_flood, spawn_grandchild
    --no-ping          Answer ping with -32601 (method not found)
    --ignore-eof       Keep running after stdin closes; only a signal stops it
    --extra-tools N    Add N echo tools named tool_0 ... tool_{N-1}
    --page-size N      Page tools/list by N tools
    --startup-delay-ms N  Wait N ms before reading stdin, like a slow server
    --poison           Also offer tools that attack the agent: weather (clean until
                       rug_pull swaps its description), poisoned_add, rug_pull
    -h, --help         Print help

Tools always offered: echo, add, sleep, fail, progress, toggle, get_env.

EXAMPLES:
    aegis-gate example-server
    aegis-gate example-server --faults --poison --extra-tools 3
";

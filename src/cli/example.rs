//! `aegis-gate example-server`: the built-in MCP server, for demos, tests and the bench.
//!
//! Owns: the help and flags of `example-server` (which tools, prompts and resources it offers,
//! how it misbehaves), and the hand-over to `example_server::run`.
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
            Long("tools-only") => options.tools_only = true,
            Long("big-resource") => {
                let bytes: usize = args::parse_number(parser, "--big-resource")?;
                if bytes > MAX_BIG_RESOURCE {
                    return Err(CliError::Usage(format!(
                        "--big-resource takes at most {MAX_BIG_RESOURCE} bytes"
                    )));
                }
                options.big_resource = Some(bytes);
            }
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

/// The largest `example://big` (256 MiB), as the largest line of `big_line`.
const MAX_BIG_RESOURCE: usize = 256 * 1024 * 1024;

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
    --page-size N      Page tools/list (and prompts/list, resources/list and
                       resources/templates/list) by N entries
    --startup-delay-ms N  Wait N ms before reading stdin, like a slow server
    --poison           Also offer tools that attack the agent: weather (clean until
                       rug_pull swaps its description), poisoned_add, rug_pull; and
                       (unless --tools-only) the prompts poisoned_prompt, clean_prompt
                       (poisoned by rug_pull too) and hidden_messages, and the
                       resources example://poisoned and example://hidden
    --tools-only       Offer only tools, as a server without the rest of MCP: initialize
                       announces only tools, prompts/*, resources/*, completion/complete
                       and logging/setLevel answer -32601, and the tools below that
                       drive them are not offered
    --big-resource BYTES  Add the resource example://big: BYTES bytes of x
    -h, --help         Print help

Tools always offered: echo, add, sleep, fail, progress, toggle, get_env.
Unless --tools-only, also: bump, log, ask_sampling, ask_elicitation, ask_roots,
ask_sampling_later, last_request_outcome, toggle_surface; the prompts greet and
summary; the resources example://readme and example://counter and the template
example://items/{id}; completion/complete, logging/setLevel and
resources/subscribe.

EXAMPLES:
    aegis-gate example-server
    aegis-gate example-server --faults --poison --extra-tools 3
";

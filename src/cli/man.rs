//! `aegis-gate man`: the manual page, in roff, made from the help texts.
//!
//! Owns: the page's frame (name, synopsis, environment, exit status, files) and the roff quoting
//! of the help texts it embeds: the top-level help, then every subcommand's help, verbatim.
//! Never: says anything about a command that its help text does not (the page cannot drift from
//! `--help`); reads a file.

use super::{top_help, CliError, COMMANDS};
use lexopt::prelude::*;

/// Runs `aegis-gate man` and prints the page.
pub(super) fn run(parser: &mut lexopt::Parser, _log_level: Option<&str>) -> Result<(), CliError> {
    if let Some(arg) = parser.next()? {
        return match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                Ok(())
            }
            other => Err(other.unexpected().into()),
        };
    }
    print!("{}", page());
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate man: print the manual page (roff), made from the help texts

USAGE:
    aegis-gate man

EXAMPLES:
    aegis-gate man | man -l -
    aegis-gate man > /usr/local/share/man/man1/aegis-gate.1
";

/// The whole page.
fn page() -> String {
    let mut out = format!(
        ".TH AEGIS-GATE 1 \"\" \"aegis-gate {}\" \"User Commands\"\n\
         .SH NAME\naegis-gate \\- one MCP endpoint in front of many MCP servers\n\
         .SH SYNOPSIS\n.nf\n{}.fi\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION"),
        verbatim("aegis-gate [--log-level LEVEL] COMMAND [OPTIONS]\naegis-gate help [COMMAND]\n")
    );
    out.push_str(&block(&top_help()));
    out.push_str(".SH COMMANDS\n");
    for command in COMMANDS {
        out.push_str(&format!(".SS {}\n", verbatim(command.name)));
        out.push_str(&block(command.help));
    }
    out.push_str(TAIL);
    out
}

/// A help text as a no-fill block, so its columns stay as `--help` prints them.
fn block(text: &str) -> String {
    format!(".nf\n{}.fi\n", verbatim(text))
}

/// Text escaped for roff: backslashes, hyphens (kept as typed, so flags copy right) and lines
/// that would read as requests.
fn verbatim(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line.replace('\\', "\\e").replace('-', "\\-"));
        out.push('\n');
    }
    out
}

const TAIL: &str = "\
.SH ENVIRONMENT
.TP
.B AEGIS_LOG
Log filter in env_logger syntax when \\-\\-log\\-level is not given (default info).
.TP
.B AEGIS_ADMIN_TOKEN
serve's admin token, and the token approvals sends.
.TP
.B AEGIS_FERNET_KEYS
Comma\\-separated Fernet keys for secrets at rest (else fernet.key in the data dir).
.TP
.B AEGIS_CA_FILE
PEM certificates trusted besides Mozilla's roots for https:// remote servers.
.TP
.B AEGIS_BRIDGE_HEADERS
A JSON object of headers bridge sends with every request.
.SH FILES
The data dir (\\-\\-data\\-dir, else $XDG_STATE_HOME/aegis\\-gate, else
~/.local/state/aegis\\-gate) holds state.json (connections, workspaces, pins), the audit trail,
fernet.key and signing.key.
.SH EXIT STATUS
0 on success, 1 when a command ran and failed, 2 for a usage or configuration error.
";

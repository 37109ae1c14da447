//! `aegis-gate stdio`: one gate for this process, its agent on stdin/stdout.
//!
//! Owns: the help and flags of `stdio`, and building its `Config`: from `--config FILE`, from the
//! embedded demo (`--demo`), or from a workspace `serve` stored in the data dir (`--workspace`,
//! whose connections and policy come from `launch`, the file giving only settings); then the flags
//! that override settings, and the hand-over to `gate::stdio::run`.
//! Never: writes to stdout itself (stdout is the agent's protocol); reads the data dir beyond
//! `launch::stored_servers` and `launch::stored_policy`.

use super::{args, serve, CliError};
use crate::config::{Config, Separator, Settings};
use crate::{gate, logging};
use lexopt::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

/// Runs `aegis-gate stdio`: one gate for this process, until stdin ends or a signal.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut config_path: Option<PathBuf> = None;
    let mut demo = false;
    let mut data_dir: Option<PathBuf> = None;
    let mut workspace: Option<String> = None;
    let mut separator: Option<Separator> = None;
    let mut max_line: Option<usize> = None;
    let mut call_timeout: Option<u64> = None;
    let mut startup_timeout: Option<u64> = None;
    let mut own_level: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => config_path = Some(parser.value()?.into()),
            Long("demo") => demo = true,
            Long("workspace") => workspace = Some(parser.value()?.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("separator") => {
                let text = parser.value()?.string()?;
                separator = Some(Separator::parse(&text).ok_or_else(|| {
                    CliError::Usage(format!("--separator takes ., __, _ or -, not {text:?}"))
                })?);
            }
            Long("max-line-bytes") => {
                max_line = Some(args::positive(args::parse_number(
                    parser,
                    "--max-line-bytes",
                )?)?)
            }
            Long("call-timeout-ms") => {
                call_timeout = Some(args::positive(args::parse_number(
                    parser,
                    "--call-timeout-ms",
                )?)?)
            }
            Long("startup-timeout-ms") => {
                startup_timeout = Some(args::positive(args::parse_number(
                    parser,
                    "--startup-timeout-ms",
                )?)?)
            }
            Long("log-level") => own_level = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(own_level.as_deref().or(log_level));
    let data_dir = args::data_dir(data_dir.as_deref())?;
    let mut config = match (config_path, demo) {
        (path, false) if workspace.is_some() => {
            let ws = workspace.as_deref().unwrap_or_default();
            let servers = crate::launch::stored_servers(&data_dir, ws).map_err(CliError::Config)?;
            // Like serve: the connections are the stored ones, the file gives only settings.
            let mut settings = match path {
                Some(path) => serve::settings_file(&path)?,
                None => Settings::default(),
            };
            // The workspace's stored policy applies, unless the config file sets one.
            if settings.policy.is_none() {
                settings.policy = crate::launch::stored_policy(&data_dir, ws);
            }
            Config { servers, settings }
        }
        (Some(path), false) => Config::load(&path).map_err(|e| CliError::Config(e.to_string()))?,
        (None, true) => {
            let exe = std::env::current_exe().map_err(|e| {
                CliError::Runtime(format!("cannot find the gate's own executable: {e}"))
            })?;
            Config::demo(&exe)
        }
        (Some(_), true) => {
            return Err(CliError::Usage(
                "--config and --demo exclude each other".into(),
            ))
        }
        (None, false) => {
            return Err(args::takes(
                "stdio",
                "--config FILE, --demo or --workspace ID",
                &[],
            ))
        }
    };
    if let Some(separator) = separator {
        config.settings.separator = separator;
        for server in &config.servers {
            crate::config::validate_server_name(&server.name, separator).map_err(|reason| {
                CliError::Config(format!("server name {:?}: {reason}", server.name))
            })?;
        }
    }
    if let Some(n) = max_line {
        config.settings.max_line_bytes = n;
    }
    if let Some(ms) = call_timeout {
        config.settings.call_timeout = Duration::from_millis(args::at_most_a_day(ms)?);
    }
    if let Some(ms) = startup_timeout {
        config.settings.startup_timeout = Duration::from_millis(args::at_most_a_day(ms)?);
    }
    // The target is the one this line had before the subcommands got files of their own.
    log::info!(
        target: "aegis_gate::cli",
        "aegis-gate {} on stdio with {} servers",
        env!("CARGO_PKG_VERSION"),
        config.servers.len()
    );
    let workspace = workspace.unwrap_or_else(|| gate::stdio::WORKSPACE.to_owned());
    gate::stdio::run(config, &data_dir, &workspace).map_err(|e| CliError::Runtime(e.to_string()))
}

pub(super) const HELP: &str = "\
aegis-gate stdio: serve the merged tools of the configured servers over stdin/stdout

USAGE:
    aegis-gate stdio --config FILE [OPTIONS]
    aegis-gate stdio --demo [OPTIONS]
    aegis-gate stdio --workspace ID [--config FILE] [--data-dir DIR] [OPTIONS]

OPTIONS:
    --config FILE             {\"mcpServers\": {...}} file (command, args, env, cwd per server;
                              an optional \"aegis\" object holds the settings)
    --demo                    Use the embedded demo config instead: two built-in example
                              servers named hello and world
    --workspace ID            Serve a workspace stored by `serve` in the data dir instead
                              (its enabled connections, secrets decrypted); with --config
                              FILE, the file gives only the \"aegis\" settings (its
                              mcpServers must be empty)
    --separator SEP           Merged-name separator: . (default), __, _ or -
    --max-line-bytes N        Longest JSON-RPC line accepted (default 4194304)
    --call-timeout-ms N       tools/call deadline (default 60000)
    --startup-timeout-ms N    How long initialize waits for every server's first listing
                              (default 10000)
    --data-dir DIR            Where pins and findings are kept (default
                              $XDG_STATE_HOME/aegis-gate, else ~/.local/state/aegis-gate)
    --log-level LEVEL         Log filter, e.g. info or aegis_gate::downstream=debug (default:
                              $AEGIS_LOG, else info). Logs go to stderr; stdout is the protocol
    -h, --help                Print help

EXAMPLES:
    aegis-gate stdio --config mcp.json
    aegis-gate stdio --demo --log-level debug
    aegis-gate stdio --workspace ws-1 --data-dir /var/lib/aegis-gate
";

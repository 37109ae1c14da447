//! Configuration: the common `{"mcpServers": {...}}` file (or VS Code's `{"servers": {...}}`) and
//! the gate's own settings.
//!
//! Owns: reading and validating the config file once, at start ([`Config::load`]), what it
//! becomes ([`Config`], [`ServerConfig`]), and the embedded demo. The parts: `file.rs` has
//! `Document`, the file parsed (which format, the `"aegis"` object) with its entries not yet
//! checked, for `Config::load` and `aegis-gate doctor`; `keys.rs` has the keys a server entry
//! takes and the warning, with a suggestion, for any other; `entry.rs` checks one server entry
//! (`type` against `command` and `url`, variables, `envFile`, the environment rules, a `url`
//! entry turned into an `aegis-gate bridge` child); `expand.rs` is the `${env:NAME}`/`${NAME}`
//! grammar; `envfile.rs` the dotenv subset of `envFile`;
//! `settings.rs` has [`Settings`] with every limit, timeout and interval the other parts use
//! (each with a documented default), the `"aegis"` object that sets them, and the naming rules
//! ([`Separator`], [`validate_server_name`]); `http.rs` has serve mode's HTTP limits, deadlines
//! and session quotas ([`HttpSettings`], the `"http"` object); `spawn.rs` the `allow_commands`
//! and `allow_env` settings; `check.rs` the ranges every setting accepts; `error.rs` has
//! [`Error`], the lowest file, which the others use. Everything is re-exported here, so
//! `crate::config::X` is the one path for every item.
//! Never: starts anything or reads the file again later; a bad file is a [`config::Error`](Error)
//! at start, never a surprise at run time; logs a value of the file (warnings name servers and
//! keys).
//!
//! The file is the form MCP clients already use, plus an optional `"aegis"` object of settings:
//! ```json
//! {"mcpServers": {"time": {"command": "python3", "args": ["-m", "mcp_server_time"],
//!                          "env": {"TZ": "${env:TZ}"}}},
//!  "aegis": {"call_timeout_ms": 60000, "separator": "."}}
//! ```

mod check;
mod entry;
mod envfile;
mod error;
mod expand;
mod file;
mod guard;
mod http;
mod keys;
mod settings;
mod spawn;

pub(crate) use entry::Outcome;
pub use error::{Error, VariableProblem};
pub(crate) use file::Document;
pub use http::HttpSettings;
pub use settings::{validate_server_name, Naming, OnChange, Separator, Settings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One downstream server as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The config key; it becomes the tool prefix (`name.tool`), never the server's own name.
    pub name: String,
    /// The executable.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to the child's otherwise cleared environment (besides `PATH` and `HOME`).
    pub env: BTreeMap<String, String>,
    /// Working directory of the child; the gate's own when unset.
    pub cwd: Option<PathBuf>,
    /// Tell this server which agent calls (`_meta` [`crate::mcp::AGENT_META`]): set only for
    /// the bridge of a `partner` connection, which signs it as its tokens' `sub`.
    pub pass_agent: bool,
    /// Policies may use its tools' annotations (`destructiveHint`, …); never for others.
    pub trusted: bool,
    /// Speak MCP 2026-07-28 to it (`server/discover`, the `_meta` envelope on every request,
    /// `subscriptions/listen`) instead of starting with `initialize`.
    pub modern: bool,
    /// A remote server reached through a bridge: its era is probed as the spec tells clients
    /// (a 2026-07-28 request first, `initialize` when it is refused).
    pub remote: bool,
}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Enabled servers in name order.
    pub servers: Vec<ServerConfig>,
    /// The gate's settings.
    pub settings: Settings,
}

impl Config {
    /// The embedded demo: two instances of the built-in example server (`hello` and `world`,
    /// the latter with two extra tools), run from the gate's own executable `exe`.
    pub fn demo(exe: &Path) -> Config {
        let example = |name: &str, extra: &[&str]| {
            let mut args = vec!["example-server".to_owned()];
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            ServerConfig {
                name: name.to_owned(),
                command: exe.display().to_string(),
                args,
                env: BTreeMap::new(),
                cwd: None,
                pass_agent: false,
                trusted: false,
                modern: false,
                remote: false,
            }
        };
        Config {
            servers: vec![
                example("hello", &[]),
                example("world", &["--tools-only", "--extra-tools", "2"]),
            ],
            settings: Settings::default(),
        }
    }

    /// Reads and validates a config file; each entry's warnings are logged (WARN), never a
    /// value of the file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let document = Document::read(path)?;
        let mut servers = Vec::new();
        for checked in document.check_servers() {
            for warning in &checked.warnings {
                log::warn!("{}: {warning}", path.display());
            }
            match checked.outcome? {
                Outcome::Disabled => {}
                Outcome::Local { server, .. } | Outcome::Remote(server) => servers.push(server),
            }
        }
        Ok(Config {
            servers,
            settings: document.into_settings(),
        })
    }
}

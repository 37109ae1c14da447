//! Configuration: the common `{"mcpServers": {...}}` file and the gate's own settings.
//!
//! Owns: reading and validating the config file once, at start: its shape ([`Config`],
//! [`ServerConfig`]), the `url` entries turned into `aegis-gate bridge` children, and the embedded
//! demo. The parts: `settings.rs` has [`Settings`] with every limit, timeout and interval the
//! other parts use (each with a documented default), the `"aegis"` object that sets them, and
//! the naming rules ([`Separator`], [`validate_server_name`]); `http.rs` has serve mode's HTTP
//! limits, deadlines and session quotas ([`HttpSettings`], the `"http"` object); `check.rs` the
//! ranges every setting accepts; `error.rs` has [`Error`], the lowest file, which the others use. Everything is re-exported here, so `crate::config::X` is
//! the one path for every item.
//! Never: starts anything or reads the file again later; a bad file is a [`config::Error`](Error)
//! at start, never a surprise at run time.
//!
//! The file is the form MCP clients already use, plus an optional `"aegis"` object of settings:
//! ```json
//! {"mcpServers": {"time": {"command": "python3", "args": ["-m", "mcp_server_time"],
//!                          "env": {"TZ": "UTC"}}},
//!  "aegis": {"call_timeout_ms": 60000, "separator": "."}}
//! ```

mod check;
mod error;
mod http;
mod settings;
mod spawn;

pub use error::Error;
pub use http::HttpSettings;
pub use settings::{validate_server_name, Naming, OnChange, Separator, Settings};

use serde::Deserialize;
use settings::{settings_from, SettingsFile};
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
}

#[derive(Debug, Deserialize)]
struct ServerEntry {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    /// Policies may use its tools' annotations.
    #[serde(default)]
    trusted: bool,
    /// Headers for a `url` server (e.g. `Authorization`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    mcp_servers: BTreeMap<String, ServerEntry>,
    aegis: Option<SettingsFile>,
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
            }
        };
        Config {
            servers: vec![
                example("hello", &[]),
                example("world", &["--extra-tools", "2"]),
            ],
            settings: Settings::default(),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: ConfigFile = serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })?;
        let settings = settings_from(file.aegis.unwrap_or_default())?;
        let mut servers = Vec::new();
        for (name, entry) in file.mcp_servers {
            if entry.disabled {
                continue;
            }
            validate_server_name(&name, settings.separator).map_err(|reason| {
                Error::InvalidServerName {
                    name: name.clone(),
                    reason,
                }
            })?;
            if let Some(url) = entry.url {
                let mut server = remote_server(name, &url, &entry.headers)?;
                server.trusted = entry.trusted;
                servers.push(server);
                continue;
            }
            let Some(command) = entry.command.filter(|c| !c.is_empty()) else {
                return Err(Error::MissingCommand { name });
            };
            check_spawn(
                &name,
                &command,
                &entry.args,
                &entry.env,
                &settings.allow_env,
            )?;
            servers.push(ServerConfig {
                name,
                command,
                args: entry.args,
                env: entry.env,
                cwd: entry.cwd,
                pass_agent: false,
                trusted: entry.trusted,
            });
        }
        Ok(Config { servers, settings })
    }
}

/// The environment rules for what the operator's own file sets (the file may name any command:
/// the allowlist is for the REST API), and no NUL byte anywhere a program cannot receive one.
fn check_spawn(
    name: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    allowed: &std::collections::BTreeSet<String>,
) -> Result<(), Error> {
    let refuse = |reason: String| Error::Spawn {
        name: name.to_owned(),
        reason,
    };
    if command.contains('\0') || args.iter().any(|a| a.contains('\0')) {
        return Err(refuse(
            "the command or an argument holds a NUL byte".to_owned(),
        ));
    }
    if let Some(var) = env.iter().find(|(_, v)| v.contains('\0')).map(|(k, _)| k) {
        return Err(refuse(format!("the value of env {var} holds a NUL byte")));
    }
    crate::allowlist::check_env(env.keys().map(String::as_str), allowed).map_err(|(var, why)| {
        refuse(format!(
            "env {var} is refused: {why}; if you mean it, add it to \"aegis\": {{\"allow_env\": [\"{var}\"]}}"
        ))
    })
}

/// A `url` server runs `aegis-gate bridge` as its child (headers in its environment), so it is
/// supervised like a local one.
fn remote_server(
    name: String,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<ServerConfig, Error> {
    let refuse = |reason: String| Error::RemoteServer {
        name: name.clone(),
        reason,
    };
    crate::http_client::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
    let command = crate::remote::spawn::Invocation {
        url,
        headers,
        timeout: None,
        signing: None,
    }
    .command()
    .map_err(refuse)?;
    Ok(ServerConfig {
        name,
        command: command.program,
        args: command.args,
        env: command.env,
        cwd: None,
        pass_agent: false,
        trusted: false,
    })
}

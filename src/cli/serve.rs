//! `aegis-gate serve`: the gate as an HTTP service.
//!
//! Owns: the help and flags of `serve` with their defaults (listen address, workers, the io
//! timeout, connection limits, held calls), reading a `--config` file's settings (which may not
//! name servers), building the HTTP server's `crate::http::Config` from the flags and the
//! `aegis.http` settings, and the hand-over to `api::serve::run`.
//! Never: touches serve mode beyond its entry point, `api::serve::run`, and the options it takes
//! (`crate::http::Config`, `api::ApiOptions`); prints to stdout beyond its help
//! (`api::serve::run` announces the address).

use super::{args, CliError};
use crate::config::{Config, Settings};
use crate::{api, logging};
use lexopt::prelude::*;
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `aegis-gate serve` until SIGTERM or SIGINT.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut own_level: Option<String> = None;
    let mut front = Front {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
        workers: 16,
        io_timeout: Duration::from_secs(15),
        max_connections: 256,
        max_per_peer: 64,
    };
    let mut data_dir: Option<PathBuf> = None;
    let mut demo = false;
    let mut allowlist = crate::allowlist::Allowlist::default();
    let mut allowed_origins = BTreeSet::new();
    let mut allowed_hosts = BTreeSet::new();
    let mut settings = Settings::default();
    let mut org_id: Option<String> = None;
    let mut store: Option<String> = None;
    let mut audit_rotate_bytes = crate::audit::DEFAULT_ROTATE_BYTES;
    let mut max_held_calls: usize = 256;
    let mut listen: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => settings = settings_file(&PathBuf::from(parser.value()?))?,
            Long("log-level") => own_level = Some(parser.value()?.string()?),
            Long("org-id") => org_id = Some(parser.value()?.string()?),
            Long("store") => store = Some(parser.value()?.string()?),
            Long("audit-rotate-bytes") => {
                audit_rotate_bytes =
                    args::positive(args::parse_number(parser, "--audit-rotate-bytes")?)?;
            }
            Long("max-held-calls") => {
                max_held_calls = args::positive(args::parse_number(parser, "--max-held-calls")?)?;
            }
            Long("listen") => listen = Some(parser.value()?.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("workers") => {
                front.workers = args::positive(args::parse_number(parser, "--workers")?)?
            }
            Long("max-connections") => {
                front.max_connections =
                    args::positive(args::parse_number(parser, "--max-connections")?)?;
            }
            Long("max-connections-per-peer") => {
                front.max_per_peer =
                    args::positive(args::parse_number(parser, "--max-connections-per-peer")?)?;
            }
            Long("demo") => demo = true,
            Long("allow-command") => {
                let template = parser.value()?.string()?;
                allowlist
                    .allow(&template)
                    .map_err(|e| CliError::Usage(format!("--allow-command {template:?}: {e}")))?;
            }
            Long("allow-env") => {
                let name = parser.value()?.string()?;
                if !allowlist.allow_env_for_last(&name) && allowlist.is_empty() {
                    return Err(CliError::Usage(format!(
                        "--allow-env {name} applies to the --allow-command before it; there is none"
                    )));
                }
            }
            Long("allow-origin") => {
                allowed_origins.insert(parser.value()?.string()?);
            }
            Long("allow-host") => {
                allowed_hosts.insert(parser.value()?.string()?);
            }
            Long("io-timeout-ms") => {
                let ms = args::at_most_a_day(args::positive(args::parse_number(
                    parser,
                    "--io-timeout-ms",
                )?)?)?;
                front.io_timeout = Duration::from_millis(ms);
            }
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(own_level.as_deref().or(log_level));
    if let Some(text) = &listen {
        front.listen = listen_address(text)?;
    }
    let data_dir = args::data_dir(data_dir.as_deref())?;
    allowlist.extend(std::mem::take(&mut settings.allow_commands));
    let options = api::ApiOptions {
        data_dir,
        allowlist,
        allowed_origins,
        allowed_hosts,
        org_id,
        audit_rotate_bytes,
        max_held_calls,
        store,
    };
    let config = front.config(&settings.http);
    api::serve::run(&config, options, settings, demo)
        .map_err(|e| CliError::Runtime(format!("serve: {e}")))
}

/// `--listen`'s address: an IP address and port, or a host name and port, looked up once (the
/// system's resolver: `/etc/hosts`, then DNS) and logged: its first IPv4 address, else its first.
fn listen_address(text: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let usage = |why: String| {
        CliError::Usage(format!(
            "--listen takes HOST:PORT (an IP address or a host name), not {text:?}: {why}"
        ))
    };
    let all: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| usage(e.to_string()))?
        .collect();
    let chosen = all
        .iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| usage("the name has no address".into()))?;
    let listed: Vec<String> = all.iter().map(SocketAddr::to_string).collect();
    log::info!(
        "--listen {text}: resolves to {}; using {chosen}",
        listed.join(", ")
    );
    Ok(chosen)
}

/// The front's command-line options.
struct Front {
    listen: std::net::SocketAddr,
    workers: usize,
    io_timeout: Duration,
    max_connections: usize,
    max_per_peer: usize,
}

impl Front {
    /// The HTTP server's configuration: these options and the `http` settings.
    fn config(&self, http: &crate::config::HttpSettings) -> crate::http::Config {
        crate::http::Config {
            listen: self.listen,
            workers: self.workers,
            connections: crate::http::ConnLimits {
                max_connections: self.max_connections,
                max_per_peer: self.max_per_peer,
            },
            limits: crate::http::Limits {
                max_request_line: http.max_request_line,
                max_header_line: http.max_header_line,
                max_head: http.max_head,
                max_headers: http.max_headers,
                max_body: http.max_body,
                // Every request with a body needs one (an agent key, an identity provider's
                // token, an admin token, a partner's signed token): without, no body is read.
                credential_headers: &["Authorization", crate::delegation::token::HEADER],
            },
            timeouts: crate::http::Timeouts {
                head: http.head_timeout,
                body: http.body_timeout,
                keep_alive: http.keep_alive,
                io: self.io_timeout,
            },
        }
    }
}

/// The `aegis` settings of a `serve --config` file, which may not name servers (`stdio
/// --workspace --config FILE` reads its file the same way).
pub(super) fn settings_file(path: &Path) -> Result<Settings, CliError> {
    let config = Config::load(path).map_err(|e| CliError::Config(e.to_string()))?;
    if !config.servers.is_empty() {
        return Err(CliError::Config(format!(
            "{}: serve takes connections over REST (POST /api/v1/aegis/connections); \
             its config file's mcpServers must be empty",
            path.display()
        )));
    }
    Ok(config.settings)
}

pub(super) const HELP: &str = "\
aegis-gate serve: the gate as an HTTP service: REST admin API under /api/v1/aegis/,
MCP over Streamable HTTP at /mcp/{workspace}, GET /healthz, GET /readyz.
AEGIS_ADMIN_TOKEN sets the admin token (else one is generated on first start and printed
once); AEGIS_FERNET_KEYS sets the Fernet keys (else fernet.key in the data dir).

USAGE:
    aegis-gate serve [OPTIONS]

OPTIONS:
    --listen ADDR        HOST:PORT to listen on, HOST an IP address or a host name looked
                         up once (default 127.0.0.1:8787; port 0 picks one).
                         The first line on stdout is `listening on http://ADDR`.
    --data-dir DIR       The gate's data dir (default $XDG_STATE_HOME/aegis-gate,
                         else ~/.local/state/aegis-gate)
    --demo               Also create and activate workspace `demo` (two built-in example
                         servers), create an agent for it and print ready-to-paste
                         curl commands
    --workers N          Threads handling requests (default 16); a request that waits for
                         a slow tool or an approval holds none
    --allow-command TEMPLATE
                         A command connections may run (repeatable; nothing is allowed
                         by default): its leading words, globs per word, paths resolved,
                         e.g. 'python3 -m mcp_server_*' or 'node /opt/mcp/*/dist/index.js';
                         the rest of a command goes to the program. A bare runtime
                         (python3, node, sh...) takes only harmless flags and a script
                         path or -m MODULE; launchers (npx, uvx, env, docker...) only
                         what their template names. Config: \"allow_commands\"
    --allow-env NAME     Lets the --allow-command before it set NAME, a variable that
                         is otherwise refused (LD_*, NODE_OPTIONS, PYTHON*...)
    --allow-origin ORIG  An Origin accepted on /mcp/... (repeatable; requests without
                         Origin are accepted)
    --allow-host HOST    A Host accepted on /mcp/... besides the listening address
                         and localhost:PORT (repeatable)
    --io-timeout-ms N    A started request whose bytes stop coming, or an answer the
                         client does not read, for this long closes the connection
                         (default 15000). Whole-head and body deadlines, size limits and
                         session quotas are `aegis.http` settings (see --config)
    --max-connections N  HTTP connections open at once (default 256); more get an
                         immediate 503 with Retry-After
    --max-connections-per-peer N
                         HTTP connections open at once from one IP address (default 64)
    --org-id ORG         This gate's organization id for delegation (stored; later
                         starts keep it). GET /api/v1/aegis/identity shows it with the
                         gate's public keys
    --store URL          Share the state with other replicas of this gate through Valkey
                         or Redis: redis://HOST:PORT/DB or rediss://HOST:PORT/DB (TLS;
                         AEGIS_CA_FILE adds a CA). The password comes from
                         AEGIS_STORE_PASSWORD, never the URL. Every replica needs the
                         same AEGIS_FERNET_KEYS and AEGIS_ADMIN_TOKEN (or
                         AEGIS_ADMIN_TOKEN_FILE) and a data dir of its own (its audit
                         trail and signing key). Without it, the state is state.json in
                         the data dir
    --max-held-calls N   Calls waiting for a person's approval at once (default 256);
                         more are refused at once
    --audit-rotate-bytes N
                         Size at which audit.log is renamed audit-<seq>.log and a new
                         one starts (default 16777216)
    --config FILE        The gate's settings: {\"mcpServers\": {}, \"aegis\": {...}} (the
                         `aegis` keys of stdio's config; connections come over REST, so
                         mcpServers must be empty)
    --log-level LEVEL    Log filter, e.g. info or aegis_gate::api=debug (default:
                         $AEGIS_LOG, else info). Logs go to stderr
    -h, --help           Print help

EXAMPLES:
    aegis-gate serve --demo
    aegis-gate serve --listen 0.0.0.0:8787 --allow-command 'python3 -m mcp_server_*'
    AEGIS_ADMIN_TOKEN=... aegis-gate serve --data-dir /var/lib/aegis-gate --log-level debug
    AEGIS_ADMIN_TOKEN_FILE=/run/secrets/admin AEGIS_FERNET_KEYS=... AEGIS_STORE_PASSWORD=... \\
      aegis-gate serve --listen 0.0.0.0:8787 --store redis://10.0.0.5:6379/0
";

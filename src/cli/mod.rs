//! The command line: subcommands, flags, help text, exit codes.
//!
//! Owns: turning `argv` into a call of the library, and errors into a message on stderr and an
//! exit code (0 success, 1 runtime failure, 2 usage or configuration error).
//! Never: holds behaviour of its own beyond parsing; never prints to stdout except `--help`,
//! `--version` and what a subcommand defines as its output.

mod approvals;
mod audit;
mod keys;
mod partners;
mod tools;

use crate::config::{Config, Separator};
use crate::{example_server, gate, logging, store};
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

GLOBAL OPTIONS:
    --log-level LEVEL   Log filter, e.g. info or aegis_gate::downstream=debug
                        (default: $AEGIS_LOG, else info). Logs go to stderr.
    -h, --help          Print help
    -V, --version       Print version

Run `aegis-gate <COMMAND> --help` for a command's options.
";

const STDIO_HELP: &str = "\
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
    -h, --help                Print help
";

const TOOLS_HELP: &str = "\
aegis-gate tools: the operator's view of the tools a gate has seen

USAGE:
    aegis-gate tools list [--data-dir DIR]
    aegis-gate tools show NAME [--data-dir DIR]
    aegis-gate tools approve NAME [--data-dir DIR]

    list      Every tool with its verdict (pass, sanitized, held, rejected), its pin
              (approved, changed, unapproved) and the kinds of its findings
    show      One tool's findings, its text as the server sent it with invisible
              characters made visible, and what agents see
    approve   Approve the tool's current version; a running gate serves it within a second

OPTIONS:
    --data-dir DIR     The gate's data dir (default $XDG_STATE_HOME/aegis-gate,
                       else ~/.local/state/aegis-gate)
    --workspace ID     Workspace (default: default, the stdio gate's)
    -h, --help         Print help
";

const EXAMPLE_HELP: &str = "\
aegis-gate example-server: a small MCP server over stdin/stdout, for demos and tests

USAGE:
    aegis-gate example-server [OPTIONS]

OPTIONS:
    --faults           Also offer pid and misbehaving tools: crash, hang, big_line, garbage,
                       stderr_flood, spawn_grandchild
    --no-ping          Answer ping with -32601 (method not found)
    --ignore-eof       Keep running after stdin closes; only a signal stops it
    --extra-tools N    Add N echo tools named tool_0 ... tool_{N-1}
    --page-size N      Page tools/list by N tools
    --startup-delay-ms N  Wait N ms before reading stdin, like a slow server
    --poison           Also offer tools that attack the agent: weather (clean until
                       rug_pull swaps its description), poisoned_add, rug_pull
    -h, --help         Print help
";

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

enum CliError {
    Usage(String),
    Config(String),
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
        "stdio" => run_stdio(parser, log_level),
        "tools" => run_tools(parser, log_level),
        "serve" => run_serve(parser, log_level),
        "rotate-key" => run_rotate_key(parser, log_level),
        "keys" => run_keys(parser, log_level),
        "bridge" => run_bridge(parser, log_level),
        "partners" => run_partners(parser, log_level),
        "audit" => run_audit(parser, log_level),
        "approvals" => run_approvals(parser, log_level),
        "example-server" => run_example(parser, log_level),
        other => Err(CliError::Usage(format!("unknown command {other:?}"))),
    }
}

fn parse_number<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
) -> Result<T, CliError> {
    let text = parser.value()?.string()?;
    text.parse()
        .map_err(|_| CliError::Usage(format!("{flag} takes a number, not {text:?}")))
}

fn run_stdio(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
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
                max_line = Some(positive(parse_number(parser, "--max-line-bytes")?)?)
            }
            Long("call-timeout-ms") => {
                call_timeout = Some(positive(parse_number(parser, "--call-timeout-ms")?)?)
            }
            Long("startup-timeout-ms") => {
                startup_timeout = Some(positive(parse_number(parser, "--startup-timeout-ms")?)?)
            }
            Long("log-level") => own_level = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{STDIO_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(own_level.as_deref().or(log_level));
    let data_dir = store::resolve_data_dir(data_dir.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let mut config = match (config_path, demo) {
        (path, false) if workspace.is_some() => {
            let ws = workspace.as_deref().unwrap_or_default();
            let servers = crate::api::stored_servers(&data_dir, ws).map_err(CliError::Config)?;
            // Like serve: the connections are the stored ones, the file gives only settings.
            let mut settings = match path {
                Some(path) => serve_settings(&path)?,
                None => crate::config::Settings::default(),
            };
            // The workspace's stored policy applies, unless the config file sets one.
            if settings.policy.is_none() {
                settings.policy = crate::api::stored_policy(&data_dir, ws);
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
            return Err(CliError::Usage(
                "stdio needs --config FILE, --demo or --workspace ID".into(),
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
        config.settings.call_timeout = Duration::from_millis(at_most_a_day(ms)?);
    }
    if let Some(ms) = startup_timeout {
        config.settings.startup_timeout = Duration::from_millis(at_most_a_day(ms)?);
    }
    log::info!(
        "aegis-gate {} on stdio with {} servers",
        env!("CARGO_PKG_VERSION"),
        config.servers.len()
    );
    let workspace = workspace.unwrap_or_else(|| gate::stdio::WORKSPACE.to_owned());
    gate::stdio::run(config, &data_dir, &workspace).map_err(|e| CliError::Runtime(e.to_string()))
}

const SERVE_HELP: &str = "\
aegis-gate serve: the gate as an HTTP service: REST admin API under /api/v1/aegis/,
MCP over Streamable HTTP at /mcp/{workspace}, GET /healthz, GET /readyz.
AEGIS_ADMIN_TOKEN sets the admin token (else one is generated on first start and printed
once); AEGIS_FERNET_KEYS sets the Fernet keys (else fernet.key in the data dir).

USAGE:
    aegis-gate serve [OPTIONS]

OPTIONS:
    --listen ADDR        Address to listen on (default 127.0.0.1:8787; port 0 picks one).
                         The first line on stdout is `listening on http://ADDR`.
    --data-dir DIR       The gate's data dir (default $XDG_STATE_HOME/aegis-gate,
                         else ~/.local/state/aegis-gate)
    --demo               Also create and activate workspace `demo` (two built-in example
                         servers), create an agent for it and print ready-to-paste
                         curl commands
    --workers N          Threads taking requests (default 16)
    --allow-command CMD  An executable connections may run (repeatable; exactly as in
                         command[0]); nothing is allowed by default
    --allow-origin ORIG  An Origin accepted on /mcp/... (repeatable; requests without
                         Origin are accepted)
    --allow-host HOST    A Host accepted on /mcp/... besides the listening address
                         and localhost:PORT (repeatable)
    --io-timeout-ms N    Read and write timeout of every connection (default 15000)
    --max-connections N  HTTP connections open at once (default 256); more get an
                         immediate 503 with Retry-After
    --max-connections-per-peer N
                         HTTP connections open at once from one IP address (default 64)
    --org-id ORG         This gate's organization id for delegation (stored; later
                         starts keep it). GET /api/v1/aegis/identity shows it with the
                         gate's public keys
    --max-held-calls N   Calls waiting for a person's approval at once (default 256,
                         at most --workers minus 4: each waiting call holds a worker);
                         more are refused at once
    --audit-rotate-bytes N
                         Size at which audit.log is renamed audit-<seq>.log and a new
                         one starts (default 16777216)
    --config FILE        The gate's settings: {\"mcpServers\": {}, \"aegis\": {...}} (the
                         `aegis` keys of stdio's config; connections come over REST, so
                         mcpServers must be empty)
    -h, --help           Print help
";

/// The `aegis` settings of a `serve --config` file, which may not name servers.
fn serve_settings(path: &Path) -> Result<crate::config::Settings, CliError> {
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

fn run_serve(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut config = crate::api::front::FrontConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
        workers: 16,
        io_timeout: Duration::from_secs(15),
        max_connections: 256,
        max_per_peer: 64,
    };
    let mut data_dir: Option<PathBuf> = None;
    let mut demo = false;
    let mut allowed_commands = std::collections::BTreeSet::new();
    let mut allowed_origins = std::collections::BTreeSet::new();
    let mut allowed_hosts = std::collections::BTreeSet::new();
    let mut settings = crate::config::Settings::default();
    let mut org_id: Option<String> = None;
    let mut audit_rotate_bytes = crate::audit::DEFAULT_ROTATE_BYTES;
    let mut max_held_calls: usize = 256;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => settings = serve_settings(&PathBuf::from(parser.value()?))?,
            Long("org-id") => org_id = Some(parser.value()?.string()?),
            Long("audit-rotate-bytes") => {
                audit_rotate_bytes = positive(parse_number(parser, "--audit-rotate-bytes")?)?;
            }
            Long("max-held-calls") => {
                max_held_calls = positive(parse_number(parser, "--max-held-calls")?)?;
            }
            Long("listen") => {
                let text = parser.value()?.string()?;
                config.listen = text.parse().map_err(|_| {
                    CliError::Usage(format!("--listen takes HOST:PORT, not {text:?}"))
                })?;
            }
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("workers") => config.workers = positive(parse_number(parser, "--workers")?)?,
            Long("max-connections") => {
                config.max_connections = positive(parse_number(parser, "--max-connections")?)?;
            }
            Long("max-connections-per-peer") => {
                config.max_per_peer =
                    positive(parse_number(parser, "--max-connections-per-peer")?)?;
            }
            Long("demo") => demo = true,
            Long("allow-command") => {
                allowed_commands.insert(parser.value()?.string()?);
            }
            Long("allow-origin") => {
                allowed_origins.insert(parser.value()?.string()?);
            }
            Long("allow-host") => {
                allowed_hosts.insert(parser.value()?.string()?);
            }
            Long("io-timeout-ms") => {
                let ms = at_most_a_day(positive(parse_number(parser, "--io-timeout-ms")?)?)?;
                config.io_timeout = Duration::from_millis(ms);
            }
            Short('h') | Long("help") => {
                print!("{SERVE_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let data_dir = store::resolve_data_dir(data_dir.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let options = crate::api::ApiOptions {
        data_dir,
        allowed_commands,
        allowed_origins,
        allowed_hosts,
        max_body: 4 * 1024 * 1024,
        org_id,
        audit_rotate_bytes,
        // Each held call keeps an HTTP worker while its agent waits: keep 4 free for the rest
        // (the approval itself included).
        max_held_calls: max_held_calls.min(config.workers.saturating_sub(4).max(1)),
    };
    crate::api::serve::run(&config, options, settings, demo)
        .map_err(|e| CliError::Runtime(format!("serve: {e}")))
}

const ROTATE_HELP: &str = "\
aegis-gate rotate-key: re-encrypt every stored secret under a new Fernet key

USAGE:
    aegis-gate rotate-key [--data-dir DIR]

Stop `serve` first. With the key file (fernet.key in the data dir) a new key is generated, every
secret is re-encrypted under it and checked to decrypt with it alone, then the old key is dropped.
With AEGIS_FERNET_KEYS, the secrets are re-encrypted under the first key of the list; drop the
other keys from the variable afterwards.
";

const KEYS_HELP: &str = "\
aegis-gate keys: this gate's identity towards partner organizations

USAGE:
    aegis-gate keys show [--data-dir DIR]
    aegis-gate keys rotate [--data-dir DIR]

`show` prints {\"org_id\": ..., \"keys\": [{\"kid\": ..., \"public_key\": \"k4.public....\"}]},
what a partner registers (POST /api/v1/aegis/partners takes these key objects); the signing
key is created on first use. `rotate` (with serve stopped) makes a new signing key and keeps
the old ones listed, so partners verify both until they remove the old kid.
";

fn run_keys(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = words_and_data_dir(parser, KEYS_HELP, log_level)? else {
        return Ok(());
    };
    let [action] = words.as_slice() else {
        return Err(CliError::Usage("keys needs show or rotate".into()));
    };
    store::ensure_data_dir(&data_dir).map_err(|e| CliError::Config(e.to_string()))?;
    let out = keys::run(action, &data_dir).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

/// The arguments of the offline subcommands (keys, audit, partners): bare
/// words and the resolved data dir, with logging started. `None` when --help
/// was asked for and printed.
fn words_and_data_dir(
    parser: &mut lexopt::Parser,
    help: &str,
    log_level: Option<&str>,
) -> Result<Option<(Vec<String>, PathBuf)>, CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut data_dir: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                print!("{help}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let data_dir = store::resolve_data_dir(data_dir.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    Ok(Some((words, data_dir)))
}

const APPROVALS_HELP: &str = "\
aegis-gate approvals: the calls a running serve holds for a person's approval

USAGE:
    aegis-gate approvals list [--url URL]
    aegis-gate approvals approve ID [--url URL]
    aegis-gate approvals deny ID [--url URL]

Talks to the gate's REST API at --url (default http://127.0.0.1:8787) with the admin token
from AEGIS_ADMIN_TOKEN, and prints its JSON answer.
";

fn run_approvals(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut url = "http://127.0.0.1:8787".to_owned();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("url") => url = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{APPROVALS_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let (action, id) = match words.as_slice() {
        [action] => (action.as_str(), None),
        [action, id] => (action.as_str(), Some(id.as_str())),
        _ => {
            return Err(CliError::Usage(
                "approvals takes an action (see --help)".into(),
            ))
        }
    };
    let out = approvals::run(action, id, &url).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

const AUDIT_HELP: &str = "\
aegis-gate audit verify: check the audit trail's signatures and chain

USAGE:
    aegis-gate audit verify [--data-dir DIR] [FILE...]

Without FILE, every audit*.log of the data dir is checked in order, from the first record:
an edited, removed or reordered record fails. With FILEs, each chain is checked from its
first record on. Exit 0 when intact, 1 naming the first broken record (file, line, seq).
";

fn run_audit(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = words_and_data_dir(parser, AUDIT_HELP, log_level)? else {
        return Ok(());
    };
    let Some(("verify", files)) = words.split_first().map(|(a, r)| (a.as_str(), r)) else {
        return Err(CliError::Usage("audit takes verify (see --help)".into()));
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let out = audit::verify(&data_dir, &files).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

const PARTNERS_HELP: &str = "\
aegis-gate partners: the partner organizations whose gates may call this gate's tools

USAGE:
    aegis-gate partners list [--data-dir DIR]
    aegis-gate partners show ORG [--data-dir DIR]
    aegis-gate partners add FILE [--data-dir DIR]
    aegis-gate partners remove ORG [--data-dir DIR]

FILE holds the body of POST /api/v1/aegis/partners. add and remove need serve stopped (a
running serve owns the state: use its REST API).
";

fn run_partners(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = words_and_data_dir(parser, PARTNERS_HELP, log_level)? else {
        return Ok(());
    };
    let (action, arg) = match words.as_slice() {
        [action] => (action.as_str(), None),
        [action, arg] => (action.as_str(), Some(arg.as_str())),
        _ => {
            return Err(CliError::Usage(
                "partners takes an action (see --help)".into(),
            ))
        }
    };
    let out = partners::run(action, arg, &data_dir).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

const BRIDGE_HELP: &str = "\
aegis-gate bridge: one remote MCP server over Streamable HTTP, spoken to over stdin/stdout

USAGE:
    aegis-gate bridge --url http://HOST:PORT/PATH [OPTIONS]

Connections of kind http and partner run this as their child; it can also be used by hand
or as a server in a stdio config. Headers for every request come from the environment
variable AEGIS_BRIDGE_HEADERS, a JSON object (e.g. {\"Authorization\": \"Bearer ...\"}).
https:// is checked against Mozilla's roots, plus the PEM certificates of AEGIS_CA_FILE.

OPTIONS:
    --url URL            The server's MCP endpoint (http:// or https://)
    --timeout-ms N       Connect and read timeout of each request (default 70000)
    --max-line-bytes N   Longest message either way (default 4194304)
    --partner-org ORG    Sign every request for this partner org (its aud) with the gate's
                         key; needs --org-id and --data-dir
    --org-id ORG         This gate's org (the tokens' iss)
    --data-dir DIR       Where the gate's signing.key is
    --scope JSON         {\"allow\": [globs], \"deny\": [globs]} for the tokens (default
                         {\"allow\": [\"*.*\"]})
    --sub NAME           The tokens' sub (default: gate)
";

fn run_bridge(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    use crate::http_client::Url;
    use crate::remote::bridge;
    let mut url: Option<String> = None;
    let mut timeout = Duration::from_millis(70_000);
    let mut max_line: usize = 4 * 1024 * 1024;
    let (mut partner, mut org_id, mut data_dir) = (None::<String>, None::<String>, None::<PathBuf>);
    let mut scope = r#"{"allow": ["*.*"]}"#.to_owned();
    let mut sub = "gate".to_owned();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("url") => url = Some(parser.value()?.string()?),
            Long("timeout-ms") => {
                let ms = at_most_a_day(positive(parse_number(parser, "--timeout-ms")?)?)?;
                timeout = Duration::from_millis(ms);
            }
            Long("max-line-bytes") => {
                max_line = positive(parse_number(parser, "--max-line-bytes")?)?
            }
            Long("partner-org") => partner = Some(parser.value()?.string()?),
            Long("org-id") => org_id = Some(parser.value()?.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("scope") => scope = parser.value()?.string()?,
            Long("sub") => sub = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{BRIDGE_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let url = url.ok_or_else(|| CliError::Usage("bridge needs --url".into()))?;
    let url = Url::parse(&url).map_err(|e| CliError::Config(e.to_string()))?;
    let headers = bridge_headers()?;
    let signer = match partner {
        None => None,
        Some(audience) => {
            let org_id =
                org_id.ok_or_else(|| CliError::Usage("--partner-org needs --org-id".into()))?;
            let dir =
                data_dir.ok_or_else(|| CliError::Usage("--partner-org needs --data-dir".into()))?;
            let keys = crate::crypto::signing::SigningKeys::load_or_create(&dir)
                .map_err(|e| CliError::Config(e.to_string()))?;
            let scope = serde_json::from_str(&scope)
                .map_err(|e| CliError::Config(format!("--scope: {e}")))?;
            Some(bridge::Signer {
                org_id,
                audience,
                key: keys.current().signing_key().clone(),
                kid: keys.current().kid.clone(),
                scope,
                sub,
            })
        }
    };
    let options = bridge::Options {
        url,
        headers,
        signer,
        timeout,
        max_line,
    };
    bridge::run(options).map_err(CliError::Runtime)
}

/// The bridge's headers from `AEGIS_BRIDGE_HEADERS` (values never echoed in errors).
fn bridge_headers() -> Result<Vec<(String, String)>, CliError> {
    let Ok(text) = std::env::var(crate::remote::bridge::HEADERS_ENV) else {
        return Ok(Vec::new());
    };
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|_| {
            CliError::Config(format!(
                "{} is not a JSON object of header names to values",
                crate::remote::bridge::HEADERS_ENV
            ))
        })?;
    Ok(map.into_iter().collect())
}

fn run_rotate_key(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut data_dir: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                print!("{ROTATE_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let data_dir = store::resolve_data_dir(data_dir.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let done = crate::crypto::rotate(&data_dir)
        .map_err(|e| CliError::Runtime(format!("rotate-key: {e}")))?;
    if done.old_keys_dropped {
        println!(
            "rotated: {} secrets re-encrypted under a new key; the old key is gone",
            done.secrets
        );
    } else {
        println!(
            "rotated: {} secrets re-encrypted under the first key of AEGIS_FERNET_KEYS; drop the others from it",
            done.secrets
        );
    }
    Ok(())
}

fn run_tools(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut data_dir: Option<PathBuf> = None;
    let mut workspace = gate::stdio::WORKSPACE.to_owned();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("workspace") => workspace = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{TOOLS_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let action = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => tools::Action::List,
        ["show", name] => tools::Action::Show((*name).to_owned()),
        ["approve", name] => tools::Action::Approve((*name).to_owned()),
        _ => {
            return Err(CliError::Usage(
                "tools takes: list | show NAME | approve NAME".into(),
            ))
        }
    };
    let data_dir = store::resolve_data_dir(data_dir.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let out = tools::run(&action, &data_dir, &workspace).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

fn at_most_a_day(ms: u64) -> Result<u64, CliError> {
    if ms > 86_400_000 {
        Err(CliError::Usage(
            "a timeout must be at most 86400000 ms (one day)".into(),
        ))
    } else {
        Ok(ms)
    }
}

fn positive<T: PartialEq + Default>(n: T) -> Result<T, CliError> {
    if n == T::default() {
        Err(CliError::Usage("a value must be greater than 0".into()))
    } else {
        Ok(n)
    }
}

fn run_example(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut options = example_server::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("faults") => options.faults = true,
            Long("no-ping") => options.no_ping = true,
            Long("ignore-eof") => options.ignore_eof = true,
            Long("extra-tools") => options.extra_tools = parse_number(parser, "--extra-tools")?,
            Long("page-size") => options.page_size = Some(parse_number(parser, "--page-size")?),
            Long("poison") => options.poison = true,
            Long("startup-delay-ms") => {
                options.startup_delay_ms =
                    at_most_a_day(parse_number(parser, "--startup-delay-ms")?)?
            }
            Short('h') | Long("help") => {
                print!("{EXAMPLE_HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    example_server::run(options).map_err(|e| CliError::Runtime(format!("example server: {e}")))
}

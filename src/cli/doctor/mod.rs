//! `aegis-gate doctor`: what would fail, found before anything starts.
//!
//! Owns: the help and flags of `doctor`, and its checks, each one line on stdout (`ok`, `warn` or
//! `fail`, what was checked and, when not ok, what to do), then a summary line: the config file
//! (it parses, with `config`'s warnings; each server's executable found and executable, its
//! `cwd`, its `url`, its `${…}`), the data dir (usable, its mode; `fernet.key` or
//! `AEGIS_FERNET_KEYS` valid; `state.json` parses; the stored connections' secrets decrypt), and
//! for serve the `--listen` address free and every stored connection allowed by the allowlist
//! (`--allow-command`/`--allow-env` as serve takes them, plus the config's `allow_commands`);
//! for a replica (`--store`) the shared store answering, its state and key check, the admin
//! token given, and the shared connections instead of the data dir's.
//! Exit 0 when no check failed, 1 when one did.
//! Never: starts a server or a child; creates or writes a file (a missing data dir or key file is
//! reported, not made); holds the `--listen` address beyond a probe bind, closed at once; prints
//! a secret (an env or header value, a key, a decrypted value) or what a `${…}` expanded to.

mod store;

use super::CliError;
use crate::allowlist::Allowlist;
use crate::config::{Document, Outcome, ServerConfig, Settings};
use crate::crypto::Keyring;
use crate::store::state::{Connection, State, StateStore};
use lexopt::prelude::*;
use std::fmt::Display;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Runs `aegis-gate doctor`; a runtime error when a check failed.
pub(super) fn run(parser: &mut lexopt::Parser, _log_level: Option<&str>) -> Result<(), CliError> {
    // Logging stays off: every finding is a line on stdout, and nothing here runs long.
    let Some(options) = options(parser)? else {
        return Ok(());
    };
    let mut report = Report::default();
    let mut allowlist = options.allowlist;
    if let Some(path) = &options.config {
        let serve = options.listen.is_some();
        if let Some(settings) = check_config(path, serve, &mut report) {
            allowlist.extend(settings.allow_commands);
        }
    }
    let serve = options.listen.is_some() || !allowlist.is_empty() || options.store.is_some();
    let keys = match check_data_dir(options.data_dir.as_deref(), &mut report) {
        Some(dir) => {
            let keys = check_keys(Some(&dir), &mut report);
            // A replica's state is the store's, not its data dir's.
            let state = match &options.store {
                Some(_) => None,
                None => check_state(&dir, &mut report),
            };
            if let Some(state) = state {
                check_connections(&state, &keys, serve.then_some(&allowlist), &mut report);
            }
            keys
        }
        None => check_keys(None, &mut report),
    };
    if let Some(url) = &options.store {
        if let Some(state) = store::check_store(url, &keys, &mut report) {
            check_connections(&state, &keys, Some(&allowlist), &mut report);
        }
    }
    if let Some(listen) = &options.listen {
        check_listen(listen, &mut report);
    }
    report.finish()
}

/// The flags of `doctor`.
struct Options {
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    allowlist: Allowlist,
    store: Option<String>,
}

/// The flags; `None` when `--help` was printed.
fn options(parser: &mut lexopt::Parser) -> Result<Option<Options>, CliError> {
    let mut options = Options {
        config: None,
        data_dir: None,
        listen: None,
        allowlist: Allowlist::default(),
        store: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => options.config = Some(parser.value()?.into()),
            Long("data-dir") => options.data_dir = Some(parser.value()?.into()),
            Long("listen") => options.listen = Some(parser.value()?.string()?),
            Long("store") => options.store = Some(parser.value()?.string()?),
            Long("allow-command") => {
                let template = parser.value()?.string()?;
                options
                    .allowlist
                    .allow(&template)
                    .map_err(|e| CliError::Usage(format!("--allow-command {template:?}: {e}")))?;
            }
            Long("allow-env") => {
                let name = parser.value()?.string()?;
                if !options.allowlist.allow_env_for_last(&name) && options.allowlist.is_empty() {
                    return Err(CliError::Usage(format!(
                        "--allow-env {name} applies to the --allow-command before it; there is none"
                    )));
                }
            }
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Some(options))
}

/// The lines printed so far, counted by level.
#[derive(Default)]
struct Report {
    n_ok: usize,
    n_warn: usize,
    n_fail: usize,
}

impl Report {
    fn ok(&mut self, text: impl Display) {
        println!("ok   {text}");
        self.n_ok += 1;
    }

    fn warn(&mut self, text: impl Display) {
        println!("warn {text}");
        self.n_warn += 1;
    }

    fn fail(&mut self, text: impl Display) {
        println!("fail {text}");
        self.n_fail += 1;
    }

    /// The summary line; a runtime error (exit 1) when a check failed.
    fn finish(self) -> Result<(), CliError> {
        let summary = format!(
            "doctor: {} failed, {} warned, {} ok",
            self.n_fail, self.n_warn, self.n_ok
        );
        println!("{summary}");
        match self.n_fail {
            0 => Ok(()),
            _ => Err(CliError::Runtime(summary)),
        }
    }
}

/// The config file and each of its servers; its settings when it parses.
fn check_config(path: &Path, serve: bool, report: &mut Report) -> Option<Settings> {
    let document = match Document::read(path) {
        Ok(document) => document,
        Err(e) => {
            report.fail(e);
            return None;
        }
    };
    report.ok(format!(
        "config {}: {} format, {}",
        path.display(),
        document.format().describe(),
        count(document.n_entries(), "server entry", "server entries")
    ));
    let mut n_servers = 0;
    for checked in document.check_servers() {
        for warning in &checked.warnings {
            report.warn(format!("config: {warning}"));
        }
        let name = &checked.name;
        n_servers += usize::from(!matches!(checked.outcome, Ok(Outcome::Disabled)));
        match checked.outcome {
            Err(e) => report.fail(e),
            Ok(Outcome::Disabled) => report.ok(format!("server {name:?}: disabled, skipped")),
            Ok(Outcome::Local {
                server,
                written_command,
            }) => check_command(&server, &written_command, report),
            Ok(Outcome::Remote(_)) => report.ok(format!(
                "server {name:?}: its url parses (reached through aegis-gate bridge)"
            )),
        }
    }
    if serve && n_servers > 0 {
        report.fail(format!(
            "config {}: serve takes connections over REST, so its config's servers must be \
             empty (or disabled): keep the servers in a file for stdio",
            path.display()
        ));
    }
    Some(document.into_settings())
}

/// Where a program is, as the child's start would find it.
enum Program {
    /// An executable file.
    Found(PathBuf),
    /// A file that is not executable (or not a regular file).
    NotExecutable,
    /// Nothing there, or nothing of that name on PATH.
    Missing,
}

/// A local server's command found and executable, its `cwd` a directory.
fn check_command(server: &ServerConfig, written: &str, report: &mut Report) {
    let name = &server.name;
    let searched = !server.command.contains('/');
    match find_program(server) {
        // A path `${…}` expanded to is not shown: only what the file says.
        Program::Found(path) if !written.contains("${") && searched => report.ok(format!(
            "server {name:?}: command {written:?} is {}",
            path.display()
        )),
        Program::Found(_) => report.ok(format!(
            "server {name:?}: command {written:?} is an executable file"
        )),
        Program::NotExecutable => report.fail(format!(
            "server {name:?}: command {written:?} is not an executable file: chmod +x it, \
             or name the program that runs it"
        )),
        Program::Missing if searched => report.fail(format!(
            "server {name:?}: command {written:?} is not found on PATH: install it, or write \
             its full path in \"command\""
        )),
        Program::Missing => report.fail(format!(
            "server {name:?}: command {written:?} does not exist: write the path of an \
             installed program in \"command\""
        )),
    }
    if server.cwd.as_deref().is_some_and(|cwd| !cwd.is_dir()) {
        report.fail(format!(
            "server {name:?}: its \"cwd\" is not a directory: create it or fix the path"
        ));
    }
}

/// The server's program: a path (relative to its `cwd`, if it has one), or a name looked up on
/// the `PATH` the child gets (its own `env` may set one; else the gate's).
fn find_program(server: &ServerConfig) -> Program {
    if server.command.contains('/') {
        let path = match &server.cwd {
            Some(cwd) => cwd.join(&server.command),
            None => PathBuf::from(&server.command),
        };
        return judge(&path);
    }
    let path_var = match server.env.get("PATH") {
        Some(value) => Some(std::ffi::OsString::from(value)),
        None => std::env::var_os("PATH"),
    };
    let mut seen_one = false;
    for dir in path_var.iter().flat_map(std::env::split_paths) {
        match judge(&dir.join(&server.command)) {
            Program::Found(path) => return Program::Found(path),
            Program::NotExecutable => seen_one = true,
            Program::Missing => {}
        }
    }
    match seen_one {
        true => Program::NotExecutable,
        false => Program::Missing,
    }
}

fn judge(path: &Path) -> Program {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Program::Found(path.to_owned())
        }
        Ok(_) => Program::NotExecutable,
        Err(_) => Program::Missing,
    }
}

/// The data dir usable; the dir when it exists (so the files in it can be checked).
fn check_data_dir(flag: Option<&Path>, report: &mut Report) -> Option<PathBuf> {
    let dir = match crate::store::resolve_data_dir(flag) {
        Ok(dir) => dir,
        Err(e) => {
            report.fail(e);
            return None;
        }
    };
    use std::io::ErrorKind::{NotADirectory, NotFound};
    let shown = dir.display();
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {
            check_mode(&format!("data dir {shown}"), &meta, 0o700, 0o700, report);
            Some(dir)
        }
        Ok(_) => {
            report.fail(format!(
                "data dir {shown} is not a directory: pass --data-dir with a directory, or \
                 move the file away"
            ));
            None
        }
        Err(e) if matches!(e.kind(), NotFound | NotADirectory) => {
            check_creatable(&dir, report);
            None
        }
        Err(e) => {
            report.fail(format!("data dir {shown}: {e}"));
            None
        }
    }
}

/// A data dir that does not exist yet: its nearest existing ancestor must be a directory.
fn check_creatable(dir: &Path, report: &mut Report) {
    let ancestor = dir
        .ancestors()
        .skip(1)
        .find(|a| a.as_os_str().is_empty() || std::fs::symlink_metadata(a).is_ok());
    match ancestor {
        Some(a) if !a.as_os_str().is_empty() && !a.is_dir() => report.fail(format!(
            "data dir {} cannot be created: {} is not a directory: pass another --data-dir",
            dir.display(),
            a.display()
        )),
        _ => report.ok(format!(
            "data dir {}: does not exist yet; the first start creates it (mode 0700)",
            dir.display()
        )),
    }
}

/// The owner (the gate's user) has the `needed` bits on `what`, and no one else has any (its
/// mode should be `private`: 0700 for the dir, 0600 for a key).
fn check_mode(
    what: &str,
    meta: &std::fs::Metadata,
    needed: u32,
    private: u32,
    report: &mut Report,
) {
    let mode = meta.permissions().mode() & 0o777;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if me.is_some_and(|uid| uid != 0 && uid != meta.uid()) {
        report.warn(format!(
            "{what}: owned by uid {}, not by the gate's user (uid {}): the gate needs to \
             write it; chown it",
            meta.uid(),
            me.unwrap_or_default()
        ));
    } else if me != Some(0) && mode & needed != needed {
        report.fail(format!(
            "{what}: mode {mode:04o}: its owner cannot use it: chmod {private:o} it"
        ));
    } else if mode & 0o077 != 0 {
        report.warn(format!(
            "{what}: mode {mode:04o}: other users can read it: chmod {private:o} it"
        ));
    } else {
        report.ok(format!("{what}: mode {mode:04o}"));
    }
}

/// What the Fernet keys came to.
enum Keys {
    /// They load: stored secrets can be checked.
    Loaded(Keyring),
    /// None yet: the first start creates `fernet.key`.
    NoneYet,
    /// Reported as failing already.
    Broken,
}

/// `AEGIS_FERNET_KEYS` when set, else `fernet.key` in `dir` (never created here).
fn check_keys(dir: Option<&Path>, report: &mut Report) -> Keys {
    let env = crate::crypto::KEYS_ENV;
    if let Some(list) = std::env::var_os(env) {
        let loaded = list
            .to_str()
            .map(|list| Keyring::from_list(list, env).map_err(|e| e.to_string()))
            .unwrap_or_else(|| Err(format!("{env} is not UTF-8")));
        return match loaded {
            Ok(keyring) => {
                report.ok(format!("{env}: valid Fernet keys (fernet.key is not used)"));
                Keys::Loaded(keyring)
            }
            Err(e) => {
                report.fail(format!(
                    "{e}: set {env} to comma-separated Fernet keys, the first encrypting"
                ));
                Keys::Broken
            }
        };
    }
    let Some(dir) = dir else {
        return Keys::NoneYet;
    };
    let path = dir.join("fernet.key");
    let shown = path.display();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.ok(format!("{shown}: none yet; the first start creates it"));
            return Keys::NoneYet;
        }
        Err(e) => {
            report.fail(format!(
                "{shown}: cannot be read ({e}): give it to the gate's user, mode 0600"
            ));
            return Keys::Broken;
        }
    };
    match Keyring::from_list(&text, &shown.to_string()) {
        Ok(keyring) => {
            if let Ok(meta) = std::fs::metadata(&path) {
                let what = format!("{shown} (valid Fernet keys)");
                check_mode(&what, &meta, 0o400, 0o600, report);
            }
            Keys::Loaded(keyring)
        }
        Err(e) => {
            report.fail(format!(
                "{e}: restore the file from a backup (stored secrets need the key they were \
                 encrypted with)"
            ));
            Keys::Broken
        }
    }
}

/// `state.json` parses; the state when it does (none when there is no file yet).
fn check_state(dir: &Path, report: &mut Report) -> Option<State> {
    let path = dir.join("state.json");
    if !path.exists() {
        report.ok(format!("{}: none yet", path.display()));
        return None;
    }
    match StateStore::open(dir) {
        Ok(store) => {
            let state = store.state();
            report.ok(format!(
                "{}: parses: {}, {}",
                path.display(),
                count(state.workspaces.len(), "workspace", "workspaces"),
                count(state.connections.len(), "connection", "connections")
            ));
            Some(state.clone())
        }
        Err(e) => {
            report.fail(e);
            None
        }
    }
}

/// Every stored connection: its secrets decrypt, and (for serve) the allowlist allows it.
fn check_connections(
    state: &State,
    keys: &Keys,
    allowlist: Option<&Allowlist>,
    report: &mut Report,
) {
    for conn in state.connections.values() {
        let label = format!(
            "connection {:?} of workspace {:?}",
            conn.name, conn.workspace_id
        );
        let mut problems = secret_problems(conn, keys);
        if let (Some(allowlist), None) = (allowlist, &conn.remote) {
            let env = conn.env.keys().map(|k| (k.as_str(), ""));
            if let Err(refusal) = allowlist.check(&conn.command, env) {
                problems.push(format!("serve would refuse it: {refusal}"));
            }
        }
        if problems.is_empty() {
            let allowed = match allowlist {
                Some(_) => "; the allowlist allows it",
                None => "",
            };
            report.ok(format!("{label}: its secrets decrypt{allowed}"));
        }
        for problem in problems {
            report.fail(format!("{label}: {problem}"));
        }
    }
}

/// Which of a connection's stored secrets (env values, header values) do not decrypt. The
/// decrypted values are dropped at once.
fn secret_problems(conn: &Connection, keys: &Keys) -> Vec<String> {
    let headers = conn.remote.iter().flat_map(|r| r.headers.iter());
    let secrets: Vec<(String, &String)> = conn
        .env
        .iter()
        .map(|(var, token)| (var.clone(), token))
        .chain(headers.map(|(name, token)| (format!("header:{name}"), token)))
        .collect();
    let binding = crate::crypto::binding(&conn.workspace_id, &conn.name);
    let mut problems = Vec::new();
    for (secret, token) in secrets {
        let problem = match keys {
            Keys::Loaded(keyring) => keyring
                .decrypt_secret(&binding, &secret, token)
                .err()
                .map(|e| e.to_string()),
            Keys::NoneYet => Some("there is no Fernet key".to_owned()),
            Keys::Broken => None,
        };
        if let Some(why) = problem {
            problems.push(format!(
                "{secret} does not decrypt ({why}): restore the fernet.key (or \
                 AEGIS_FERNET_KEYS) it was stored under, or store the value again"
            ));
        }
    }
    problems
}

/// `n` and the noun it counts.
fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        _ => format!("{n} {many}"),
    }
}

/// The `--listen` address free: bound, then closed at once.
fn check_listen(listen: &str, report: &mut Report) {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => report.ok(format!("listen {listen}: free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => report.fail(format!(
            "listen {listen}: already in use: stop what holds it (another serve?) or pass \
             another --listen"
        )),
        Err(e) => report.fail(format!(
            "listen {listen}: {e}: pass --listen HOST:PORT of this machine"
        )),
    }
}

pub(super) const HELP: &str = "\
aegis-gate doctor: check a config file and a data dir before starting anything. One line per
check: ok, warn or fail, and what to do. Nothing is started, created or written.

USAGE:
    aegis-gate doctor [--config FILE] [--data-dir DIR] [--listen ADDR] [--store URL]
                      [--allow-command TEMPLATE [--allow-env NAME]]...

OPTIONS:
    --config FILE        A stdio or serve config file: it parses (unknown keys are
                         warned about), each server's command is found and executable,
                         its cwd exists, its url parses, its ${...} variables are set
    --data-dir DIR       The data dir (default $XDG_STATE_HOME/aegis-gate, else
                         ~/.local/state/aegis-gate): usable, mode 0700; fernet.key (or
                         AEGIS_FERNET_KEYS) valid; state.json parses; every stored
                         connection's secrets decrypt
    --listen ADDR        For serve: the address is free (with --config, its servers
                         must be empty)
    --store URL          For a serve replica: the shared store answers (with
                         AEGIS_STORE_PASSWORD), its state parses, these Fernet keys
                         open it, an admin token is given; its connections are checked
                         instead of the data dir's state.json
    --allow-command TEMPLATE
                         For serve, as serve takes it (repeatable): every stored
                         connection passes the allowlist (with the config's
                         \"allow_commands\")
    --allow-env NAME     For the --allow-command before it, as serve takes it
    -h, --help           Print help

EXIT STATUS:
    0 when no check failed, 1 when one did, 2 for a usage error.

EXAMPLES:
    aegis-gate doctor --config mcp.json
    aegis-gate doctor --data-dir /var/lib/aegis --listen 127.0.0.1:8787 \\
        --allow-command 'python3 -m mcp_server_*'
";

//! `aegis-gate serve`: the gate as an HTTP service.
//!
//! Owns: first start (the data dir 0700, the Fernet key, the Ed25519 signing key and the admin
//! token created when they are not given by `AEGIS_FERNET_KEYS` / `AEGIS_ADMIN_TOKEN`; a
//! generated token is printed once and only its hash is stored, after it was printed, so a start
//! that fails first, one that cannot listen included, leaves no token no one saw), binding
//! `--listen` before the keys and the state are touched, storing `--org-id`, resuming the
//! workspaces the state says are active, the demo (its agent replacing the earlier starts' demo
//! agents), starting the HTTP server, announcing the bound address on stdout, and the shutdown on
//! SIGTERM/SIGINT (logged by the signal's name): calls held for approval expire and MCP requests
//! still waiting for an answer are answered (an error, or their answer when it is already there),
//! the GET streams end, the server stops taking requests and lets the workers finish what they
//! took, every child is torn down, exit 0.
//! Never: stores or logs the admin token itself.
//!
//! Threads: the HTTP server's (`crate::http`); the calling thread waits for the first signal and
//! stops them.

use super::{rest, Api, ApiOptions};
use crate::config::Settings;
use crate::crypto::secret::{hash_secret, random_hex};
use crate::crypto::signing::SigningKeys;
use crate::crypto::Keyring;
use crate::store::shared::SharedStore;
use crate::store::state::{StateFile, StateStore};
use crate::thread::lock;
use crate::{store, sys};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// The environment variable that sets the admin token (nothing is stored then).
pub(crate) const ADMIN_TOKEN_ENV: &str = "AEGIS_ADMIN_TOKEN";
/// The environment variable that names a file holding the admin token (its first line).
pub(crate) const ADMIN_TOKEN_FILE_ENV: &str = "AEGIS_ADMIN_TOKEN_FILE";

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Serves until SIGTERM or SIGINT; with `demo`, first sets up the demo workspace and prints
/// ready-to-paste commands.
pub(crate) fn run(
    config: &crate::http::Config,
    mut options: ApiOptions,
    settings: Settings,
    demo: bool,
) -> io::Result<()> {
    sys::tune_malloc();
    let exe = std::env::current_exe()?.display().to_string();
    if demo {
        // Only the built-in example server: the gate's other subcommands start what they are
        // told to.
        let template = format!("'{exe}' example-server");
        options.allowlist.allow(&template).map_err(other)?;
    }
    if options.allowlist.is_empty() {
        log::info!("no command is allowed for connections (serve --allow-command)");
    } else {
        let templates: Vec<&str> = options.allowlist.templates().collect();
        log::info!("commands allowed for connections: {templates:?}");
    }
    sys::become_child_subreaper();
    store::ensure_data_dir(&options.data_dir).map_err(other)?;
    // One serve per data dir, and no `rotate-key` under a running one: both write `state.json`.
    let _state_lock = store::FileLock::try_acquire(&options.data_dir, "state.json")
        .map_err(other)?
        .ok_or_else(|| other("another gate is serving from this data dir"))?;
    // The address first: a start that cannot listen leaves nothing behind about a token.
    let bound = crate::http::Server::bind(config.listen)?;
    let keyring = Keyring::load_or_create(&options.data_dir).map_err(other)?;
    let shared = options
        .store
        .as_deref()
        .map(SharedStore::open)
        .transpose()
        .map_err(other)?;
    if let Some(store) = &shared {
        log::info!("state shared through {}", store.url());
    }
    let file = match &shared {
        Some(store) => StateFile::shared(&options.data_dir, store.clone()),
        None => StateFile::new(&options.data_dir),
    };
    let mut state = StateStore::open_at(file.map_err(other)?).map_err(other)?;
    let admin = admin_token(&state, shared.is_some())?;
    if shared.is_some() {
        check_keys(&mut state, &keyring)?;
    }
    if let Some(org) = options.org_id.clone().or_else(|| settings.org_id.clone()) {
        set_org_id(&mut state, org)?;
    }
    let signing = SigningKeys::load_or_create(&options.data_dir).map_err(other)?;
    if let Some(store) = &shared {
        one_replica_per_key(store, &signing.current().kid)?;
    }
    // Replicas record the heads of their chains in the store, under their key ids.
    let heads_to = shared.as_ref().map(|store| crate::audit::heads::HeadsTo {
        store: store.clone(),
        replica: signing.current().kid.clone(),
        data_dir: options.data_dir.clone(),
    });
    let audit = Arc::new(crate::audit::Audit::start_recording_heads(
        &options.data_dir,
        signing.current().signing_key().clone(),
        signing.current().kid.clone(),
        options.audit_rotate_bytes,
        heads_to,
    )?);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let data_dir = options.data_dir.clone();
    let api = Arc::new(Api::new(
        options,
        Arc::new(settings),
        keyring,
        state,
        admin.hash.clone(),
        signing,
        Some(Arc::clone(&audit)),
    )?);
    let handler = Arc::clone(&api) as Arc<dyn crate::http::Handler>;
    let front = crate::http::Server::start(bound, config, handler)?;
    api.resume(front.addr());
    let watch = api.watch_shared()?;
    let demo_agent = if demo {
        Some(api.demo(&exe).map_err(other)?)
    } else {
        None
    };
    log::info!(
        "serving on http://{} (data dir {})",
        front.addr(),
        data_dir.display()
    );
    let shown = announce(front.addr(), &admin, demo_agent.as_ref());
    keep_admin_token(&api, &admin, shown);
    let signal = signals.forever().next();
    match signal {
        Some(n) => log::info!("{}: stopping", crate::gate::stdio::signal_name(n)),
        None => log::info!("the signal handler ended: stopping"),
    }
    // Answered first, while the front still writes: held calls (they expire), requests
    // waiting for their answers, the GET streams.
    api.release_held();
    api.end_waiting();
    api.end_streams();
    front.stop();
    // No change of another replica's starts anything while this one stops.
    drop(watch);
    api.shutdown();
    // Everything recorded is on disk before the process ends.
    audit.stop();
    log::info!("stopped");
    Ok(())
}

/// Prints what serve says on stdout: the address (first line, so that scripts and tests can
/// read the port chosen for `--listen …:0`), a token generated now, and the demo's commands.
/// Whether it was all written (a reader that went away must not take the service down).
fn announce(addr: SocketAddr, admin: &AdminToken, demo: Option<&rest::DemoAgent>) -> bool {
    let mut text = format!("listening on http://{addr}\n");
    if let Some(token) = &admin.new {
        text.push_str(&format!(
            "admin token (shown once, only its hash is kept): {token}\n"
        ));
    }
    if let Some(demo) = demo {
        let shown = admin.new.clone();
        let admin = shown.unwrap_or_else(|| format!("${ADMIN_TOKEN_ENV}"));
        text.push_str(&demo_commands(addr, &admin, &demo.key, demo.revoked));
    }
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("stdout: {e}; serving on");
            false
        }
    }
}

/// Stores a generated admin token's hash, once the token was shown: one that no one saw is
/// generated again at the next start.
fn keep_admin_token(api: &Api, admin: &AdminToken, shown: bool) {
    if admin.new.is_none() {
        return;
    }
    if !shown {
        log::warn!(
            "the admin token could not be shown; it works until this serve stops, and the next \
             start generates another"
        );
        return;
    }
    let hash = admin.hash.clone();
    let stored = lock(&api.store).update(|s| {
        s.admin_token_hash = Some(hash);
        Ok::<_, store::Error>(())
    });
    if let Err(e) = stored {
        log::error!(
            "cannot keep the admin token's hash ({e}); the token works until this serve stops, \
             and the next start generates another"
        );
    }
}

/// Stores `--org-id` (an id like a workspace's), so later starts and `keys show` know it.
fn set_org_id(state: &mut StateStore, org: String) -> io::Result<()> {
    crate::config::validate_server_name(&org, crate::config::Separator::Dot)
        .map_err(|why| other(format!("--org-id {org:?}: {why}")))?;
    if state.state().partners.contains_key(&org) {
        return Err(other(format!(
            "--org-id {org:?} is the id of a registered partner"
        )));
    }
    state
        .update(|s| {
            s.org_id = Some(org);
            Ok::<_, store::Error>(())
        })
        .map_err(other)
}

/// The demo's commands with its agent's `key`, and a note when `revoked` earlier demo keys were.
fn demo_commands(addr: SocketAddr, admin: &str, key: &str, revoked: usize) -> String {
    let mcp = format!("http://{addr}/mcp/demo");
    let headers = format!(
        "-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n  -H 'Accept: application/json, text/event-stream'"
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hello.echo","arguments":{"message":"hi"}}}"#;
    let replaced = match revoked {
        0 => String::new(),
        1 => " The demo key of an earlier start was revoked: only this one works.".to_owned(),
        n => format!(" The demo keys of {n} earlier starts were revoked: only this one works."),
    };
    format!(
        "\nworkspace `demo` is active.{replaced} Paste these in another terminal:\n\n\
         curl -s -H \"Authorization: Bearer {admin}\" http://{addr}/api/v1/aegis/workspaces/demo\n\n\
         SESSION=$(curl -s -D - -o /dev/null {headers} \\\n  -d '{init}' {mcp} \\\n  \
         | sed -n 's/^Mcp-Session-Id: //ip' | tr -d '\\r')\n\n\
         curl -s {headers} -H \"Mcp-Session-Id: $SESSION\" -d '{list}' {mcp}\n\n\
         curl -s {headers} -H \"Mcp-Session-Id: $SESSION\" -d '{call}' {mcp}\n\n"
    )
}

/// The admin token serve checks.
struct AdminToken {
    /// Its hash.
    hash: String,
    /// The token itself when it was generated now (not stored until it is shown).
    new: Option<String>,
}

/// The admin token: `AEGIS_ADMIN_TOKEN`, else `AEGIS_ADMIN_TOKEN_FILE`'s, else (on one node)
/// the stored hash, else a new one (stored by [`keep_admin_token`] once it is shown). Replicas
/// sharing a store never generate one: each would have its own.
fn admin_token(state: &StateStore, shared: bool) -> io::Result<AdminToken> {
    if let Some(token) = given_admin_token()? {
        let hash = hash_secret(&token);
        return Ok(AdminToken { hash, new: None });
    }
    if shared {
        return Err(other(format!(
            "--store: set {ADMIN_TOKEN_ENV} or {ADMIN_TOKEN_FILE_ENV} to the same admin token \
             on every replica (none is generated for replicas)"
        )));
    }
    if let Some(hash) = state.state().admin_token_hash.clone() {
        return Ok(AdminToken { hash, new: None });
    }
    let token = format!("adm_{}", random_hex(32).map_err(other)?);
    let hash = hash_secret(&token);
    Ok(AdminToken {
        hash,
        new: Some(token),
    })
}

/// The admin token given by the operator: `AEGIS_ADMIN_TOKEN`, else the first line of the file
/// `AEGIS_ADMIN_TOKEN_FILE` names.
pub(crate) fn given_admin_token() -> io::Result<Option<String>> {
    if let Some(token) = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(token));
    }
    let Some(path) = std::env::var_os(ADMIN_TOKEN_FILE_ENV).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| other(format!("{ADMIN_TOKEN_FILE_ENV}={shown}: {e}")))?;
    match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Ok(Some(token.to_owned())),
        None => Err(other(format!(
            "{ADMIN_TOKEN_FILE_ENV}={shown}: the file is empty"
        ))),
    }
}

/// Checks that this replica's Fernet keys open what the shared store holds: the store keeps a
/// token of a known text (made by the first replica), and a replica that cannot decrypt it
/// does not start.
fn check_keys(state: &mut StateStore, keyring: &Keyring) -> io::Result<()> {
    let (conn, name) = crate::crypto::KEY_CHECK_BINDING;
    let text = crate::crypto::KEY_CHECK_TEXT;
    if state.state().key_check.is_none() {
        let token = keyring.encrypt_secret(conn, name, text);
        state
            .update(|s| {
                // Another replica may have made one meanwhile: that one stays.
                s.key_check.get_or_insert(token);
                Ok::<_, store::Error>(())
            })
            .map_err(other)?;
    }
    let token = state.state().key_check.clone().unwrap_or_default();
    match keyring.decrypt_secret(conn, name, &token) {
        Ok(plain) if plain == text => Ok(()),
        _ => Err(other(
            "--store: this replica's Fernet keys (AEGIS_FERNET_KEYS, else fernet.key in its data \
             dir) do not open the shared store's secrets: give every replica the same keys",
        )),
    }
}

/// Refuses to start a replica whose key id another running replica has: a data dir (and its
/// `signing.key`) copied to two replicas would make them one in the store (one audit chain
/// head, one approvals inbox). A replica that stopped a moment ago is waited for: its sign of
/// life lasts `ALIVE_TTL`.
fn one_replica_per_key(store: &SharedStore, kid: &str) -> io::Result<()> {
    use crate::store::shared::held::{HeldCalls, ALIVE_TTL};
    let held = HeldCalls::new(store.clone());
    let me = std::collections::BTreeSet::from([kid.to_owned()]);
    let deadline = std::time::Instant::now() + ALIVE_TTL + std::time::Duration::from_secs(1);
    loop {
        if held.living(&me).map_err(other)?.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(other(format!(
                "--store: a running replica has this replica's signing key id {kid}: give each \
                 replica a data dir of its own (a copied signing.key makes two replicas one)"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

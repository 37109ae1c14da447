//! Launch: a stored connection turned into the child the gate starts — argv split, env values
//! decrypted, and for a remote connection the `aegis-gate bridge` that carries it.
//!
//! Owns: [`server_config`] (one stored connection), [`stored_servers`] and [`stored_policy`] (a
//! stored workspace, for `stdio --workspace`), and the Fernet binding of a connection's secrets
//! ([`binding`]: `workspace/name`, so a token copied to another connection does not decrypt).
//! Never: logs or returns a decrypted value in an error; starts anything (the downstream part
//! does); puts a header value on a command line (the bridge takes them from its environment).

use crate::config::{ServerConfig, Settings};
use crate::crypto::Keyring;
use crate::remote::spawn::{Invocation, Signing};
use crate::store::state::{Connection, Kind, Remote, StateStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What starting a remote connection's bridge needs besides the connection.
pub(crate) struct Spawn {
    /// The data dir (a partner bridge reads this gate's signing key there).
    pub data_dir: PathBuf,
    /// This gate's org id (a partner bridge signs as it).
    pub org_id: Option<String>,
    /// The bridge's per-request timeout follows the gate's call deadline.
    pub call_timeout: Duration,
}

/// The Fernet binding of a connection's (or a workspace's identity settings') secrets.
pub(crate) fn binding(workspace: &str, name: &str) -> String {
    crate::crypto::binding(workspace, name)
}

/// A stored connection as a child to start: argv split, env decrypted (bound to
/// `workspace/name` and the variable).
pub(crate) fn server_config(
    keyring: &Keyring,
    conn: &Connection,
    spawn: &Spawn,
) -> Result<ServerConfig, String> {
    if let Some(remote) = &conn.remote {
        return bridge_config(keyring, conn, remote, spawn);
    }
    let (command, args) = conn.command.split_first().ok_or("the command is empty")?;
    // No program can receive a NUL: starting it would fail at every restart.
    if conn.command.iter().any(|a| a.contains('\0')) {
        return Err(format!("the command of {} holds a NUL byte", conn.name));
    }
    let binding = binding(&conn.workspace_id, &conn.name);
    let mut env = BTreeMap::new();
    for (var, token) in &conn.env {
        let value = keyring
            .decrypt_secret(&binding, var, token)
            .map_err(|e| format!("{var} of {}: {e}", conn.name))?;
        if value.contains('\0') {
            return Err(format!(
                "the value of {var} of {} holds a NUL byte",
                conn.name
            ));
        }
        env.insert(var.clone(), value);
    }
    Ok(ServerConfig {
        name: conn.name.clone(),
        command: command.clone(),
        args: args.to_vec(),
        env,
        cwd: None,
        pass_agent: false,
        trusted: conn.trusted,
        modern: conn.modern,
        remote: false,
    })
}

/// A stored workspace's policy (`stdio --workspace` applies it).
pub(crate) fn stored_policy(data_dir: &Path, workspace: &str) -> Option<crate::policy::Policy> {
    let store = StateStore::open(data_dir).ok()?;
    store.state().workspaces.get(workspace)?.policy.clone()
}

/// The enabled connections of a stored workspace, ready to start (`stdio --workspace`).
pub(crate) fn stored_servers(
    data_dir: &Path,
    workspace: &str,
) -> Result<Vec<ServerConfig>, String> {
    let keyring = Keyring::load_or_create(data_dir).map_err(|e| e.to_string())?;
    let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
    if !store.state().workspaces.contains_key(workspace) {
        return Err(format!(
            "no workspace {workspace:?} in {}",
            data_dir.display()
        ));
    }
    let spawn = Spawn {
        data_dir: data_dir.to_owned(),
        org_id: store.state().org_id.clone(),
        call_timeout: Settings::default().call_timeout,
    };
    store
        .state()
        .connections
        .values()
        .filter(|c| c.workspace_id == workspace && c.enabled)
        .map(|c| server_config(&keyring, c, &spawn))
        .collect()
}

/// A remote connection runs `aegis-gate bridge` as its child: the same supervision as a local
/// server. Header values travel in the child's environment, never on its command line.
fn bridge_config(
    keyring: &Keyring,
    conn: &Connection,
    remote: &Remote,
    spawn: &Spawn,
) -> Result<ServerConfig, String> {
    let bound = binding(&conn.workspace_id, &conn.name);
    let mut headers = BTreeMap::new();
    for (name, token) in &remote.headers {
        let value = keyring
            .decrypt_secret(&bound, &format!("header:{name}"), token)
            .map_err(|e| format!("header {name} of {}: {e}", conn.name))?;
        headers.insert(name.clone(), value);
    }
    let partner = conn.kind == Kind::Partner;
    let scope = serde_json::to_string(&remote.scope).map_err(|e| e.to_string())?;
    let signing = if partner {
        let audience = remote
            .org_id
            .as_deref()
            .ok_or("a partner connection has no org_id")?;
        let org_id = spawn
            .org_id
            .as_deref()
            .ok_or("a partner connection needs this gate's --org-id")?;
        Some(Signing {
            audience,
            org_id,
            data_dir: &spawn.data_dir,
            scope: &scope,
            sub: &conn.workspace_id,
        })
    } else {
        None
    };
    let invocation = Invocation {
        url: &remote.url,
        headers: &headers,
        // Past the gate's own deadline the call is answered already; the margin covers the
        // network.
        timeout: Some(spawn.call_timeout + Duration::from_secs(10)),
        signing,
    };
    let command = invocation.command()?;
    Ok(ServerConfig {
        name: conn.name.clone(),
        command: command.program,
        args: command.args,
        env: command.env,
        cwd: None,
        pass_agent: partner,
        trusted: conn.trusted,
        modern: false,
        remote: true,
    })
}

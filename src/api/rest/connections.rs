//! `/connections`: the downstream servers a workspace runs or reaches.
//!
//! Owns: registering a connection (`POST`, with the registration rules: `command` is an argv
//! array and `env` an environment the allowlist accepts, see `crate::allowlist`; a remote one
//! takes a URL and header values instead), listing, getting one with its
//! live health, deleting, changing (`PATCH` any field, `PUT` the whole), restarting, and the
//! encryption of env and header values, bound to the connection and the variable.
//! Never: answers an env or header value (only their names); never changes state on malformed
//! input (every change goes through `StateStore::update`, applied only when written); never holds
//! the runtimes lock while a child is torn down.

use super::common::{seal_secret, Answer};
use crate::api::http::{self, validate_id, ApiError};
use crate::api::Api;
use crate::config::validate_server_name;
use crate::crypto::secret::random_hex;
use crate::downstream::Snapshot;
use crate::glob::Scope;
use crate::store::state::{Connection, Kind, Remote, Workspace};
use crate::thread::lock;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

/// The body of `POST /connections`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConnection {
    pub(super) workspace_id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) command: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    /// `stdio` (default), `http` or `partner`.
    #[serde(default)]
    pub(super) kind: Kind,
    /// A remote server's MCP endpoint.
    #[serde(default)]
    pub(super) url: Option<String>,
    /// Headers for a remote server (encrypted like env).
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    /// A partner's org id.
    #[serde(default)]
    pub(super) org_id: Option<String>,
    /// What this gate's agents may use at a partner.
    #[serde(default)]
    pub(super) scope: Option<Scope>,
    /// Policies may use its tools' annotations.
    #[serde(default)]
    pub(super) trusted: bool,
    /// `"legacy"` (the default) or `"modern"`: a local server spoken to in MCP 2026-07-28.
    #[serde(default)]
    pub(super) era: Option<String>,
}

/// `POST /connections`.
pub(super) fn create(api: &Api, body: &[u8]) -> Answer {
    let new: NewConnection = http::parse(body)?;
    let conn = add(api, new)?;
    Ok((201, connection_json(api, &conn)))
}

/// Registers a connection (validated, env encrypted, on disk) and starts it when its workspace
/// is active.
pub(super) fn add(api: &Api, new: NewConnection) -> Result<Connection, ApiError> {
    validate_id("workspace_id", &new.workspace_id)?;
    // A name holding the merged-name separator would make its tools' names ambiguous.
    validate_server_name(&new.name, api.settings.separator)
        .map_err(|why| ApiError::invalid(format!("name {:?}: {why}", new.name)))?;
    let remote = check_remote(api, &new)?;
    if remote.is_none() {
        let env = new.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        check_command(api, &new.command, env)?;
    }
    let env = encrypt_env(api, &new.workspace_id, &new.name, &new.env)?;
    let id = format!(
        "conn_{}",
        random_hex(8).map_err(|e| ApiError::new(500, "random", e.to_string()))?
    );
    let conn = Connection {
        id: id.clone(),
        workspace_id: new.workspace_id.clone(),
        name: new.name.clone(),
        command: new.command,
        env,
        enabled: true,
        kind: new.kind,
        remote,
        trusted: new.trusted,
        modern: era(new.era.as_deref())?,
    };
    let active = api.update_state(|state| {
        if state
            .connections
            .values()
            .any(|c| c.workspace_id == conn.workspace_id && c.name == conn.name)
        {
            return Err(ApiError::new(
                409,
                "conflict",
                format!("{} exists in {}", conn.name, conn.workspace_id),
            ));
        }
        let active = state
            .workspaces
            .entry(conn.workspace_id.clone())
            .or_insert(Workspace {
                active: false,
                policy: None,
                identity: None,
            })
            .active;
        state.connections.insert(conn.id.clone(), conn.clone());
        Ok::<_, ApiError>(active)
    })?;
    log::info!(
        "connection {} added to {} (env names: {:?})",
        conn.name,
        conn.workspace_id,
        conn.env.keys()
    );
    if active {
        api.start_connection(&conn)?;
    }
    Ok(conn)
}

/// The remote part of a new `http` or `partner` connection, checked; `None` for `stdio`.
fn check_remote(api: &Api, new: &NewConnection) -> Result<Option<Remote>, ApiError> {
    let remote_fields =
        new.url.is_some() || !new.headers.is_empty() || new.org_id.is_some() || new.scope.is_some();
    if new.kind == Kind::Stdio {
        if remote_fields {
            return Err(ApiError::invalid(
                "url, headers, org_id and scope are for kind http or partner",
            ));
        }
        return Ok(None);
    }
    if !new.command.is_empty() || !new.env.is_empty() {
        return Err(ApiError::invalid(
            "a remote connection takes url and headers, not command and env",
        ));
    }
    let url = new
        .url
        .clone()
        .ok_or_else(|| ApiError::invalid("a remote connection needs url"))?;
    crate::http_client::Url::parse(&url).map_err(|e| ApiError::invalid(e.to_string()))?;
    let allowed = |n: &&String| crate::http_client::is_header_name(n);
    if let Some(name) = new.headers.keys().find(|n| !allowed(n)) {
        return Err(ApiError::invalid(format!(
            "{name:?} is not a header the gate may send (a token of letters, digits, - and _; \
             not Host, Content-Length, Transfer-Encoding, Connection, Accept, Content-Type, \
             Mcp-Session-Id, MCP-Protocol-Version or Aegis-Delegation)"
        )));
    }
    let bound = crate::crypto::binding(&new.workspace_id, &new.name);
    let mut headers = BTreeMap::new();
    for (header, value) in &new.headers {
        // Bound to `header:NAME`, so a header's value cannot pass for an env value.
        let var = format!("header:{header}");
        let token = seal_secret(&api.keyring, &bound, &var, value)
            .map_err(|e| ApiError::invalid(format!("env {var}: {e}")))?;
        headers.insert(header.clone(), token);
    }
    let (org_id, scope) = match new.kind {
        Kind::Partner => {
            let org = new
                .org_id
                .clone()
                .ok_or_else(|| ApiError::invalid("a partner connection needs org_id"))?;
            validate_id("org_id", &org)?;
            if lock(&api.store).state().org_id.is_none() {
                return Err(ApiError::invalid(
                    "a partner connection signs as this gate: start serve with --org-id first",
                ));
            }
            let scope = match new.scope.clone() {
                Some(scope) => scope,
                None => Scope {
                    allow: vec![crate::glob::Glob::new("*.*")
                        .map_err(|e| ApiError::invalid(e.to_string()))?],
                    deny: Vec::new(),
                },
            };
            (Some(org), Some(scope))
        }
        _ if new.org_id.is_some() || new.scope.is_some() => {
            return Err(ApiError::invalid("org_id and scope are for kind partner"));
        }
        _ => (None, None),
    };
    Ok(Some(Remote {
        url,
        headers,
        org_id,
        scope,
    }))
}

/// The registration rules: the allowlist judges the argv and the names (and, when given, the
/// values) of the environment. Stored values are encrypted: only their names are checked again.
fn check_command<'a>(
    api: &Api,
    command: &[String],
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    api.options.allowlist.check(command, env).map_err(refusal)
}

/// A refusal as answered: 403 for a command the allowlist forbids, 400 for a refused variable,
/// 422 for a malformed command or environment.
fn refusal(refusal: crate::allowlist::Refusal) -> ApiError {
    use crate::allowlist::Refusal;
    match &refusal {
        Refusal::NotAllowed { .. } | Refusal::Runtime { .. } => {
            ApiError::new(403, "command_not_allowed", refusal.to_string())
        }
        Refusal::Variable { .. } => ApiError::new(400, "env_not_allowed", refusal.to_string()),
        Refusal::Empty | Refusal::Nul { .. } | Refusal::BadVariable { .. } => {
            ApiError::invalid(refusal.to_string())
        }
    }
}

/// Env values encrypted (or, as `encrypted:<token>`, checked) for this connection and variable.
fn encrypt_env(
    api: &Api,
    workspace: &str,
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let bound = crate::crypto::binding(workspace, name);
    let mut out = BTreeMap::new();
    for (var, value) in env {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            return Err(ApiError::invalid(format!(
                "env name {var:?} is not a variable name"
            )));
        }
        let token = seal_secret(&api.keyring, &bound, var, value)
            .map_err(|e| ApiError::invalid(format!("env {var}: {e}")))?;
        out.insert(var.clone(), token);
    }
    Ok(out)
}

/// The live state of `conn`'s child; `None` when its workspace is not running.
fn snapshot_of(api: &Api, conn: &Connection) -> Option<Snapshot> {
    lock(&api.runtimes)
        .get(&conn.workspace_id)?
        .connection(&conn.name)
        .map(|h| h.snapshot())
}

/// A connection as answered: names of its env values and headers, never their values.
pub(super) fn connection_json(api: &Api, conn: &Connection) -> Value {
    let health = match snapshot_of(api, conn) {
        Some(s) => json!({
            "status": s.status.as_str(),
            "pid": s.pid,
            "last_heartbeat": s.last_heartbeat.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            "restarts": s.restarts,
            "tools": s.tools,
            "last_error": s.last_error,
        }),
        None => json!({ "status": "stopped" }),
    };
    let mut out = json!({
        "id": conn.id,
        "workspace_id": conn.workspace_id,
        "name": conn.name,
        "kind": conn.kind,
        "command": conn.command,
        "env": conn.env.keys().collect::<Vec<_>>(),
        "enabled": conn.enabled,
        "trusted": conn.trusted,
        "era": if conn.modern { "modern" } else { "legacy" },
        "health": health,
    });
    if let Some(remote) = &conn.remote {
        out["url"] = json!(remote.url);
        out["headers"] = json!(remote.headers.keys().collect::<Vec<_>>());
        if let Some(org) = &remote.org_id {
            out["org_id"] = json!(org);
        }
        if let Some(scope) = &remote.scope {
            out["scope"] = json!(scope);
        }
    }
    out
}

fn find_connection(api: &Api, id: &str) -> Result<Connection, ApiError> {
    lock(&api.store)
        .state()
        .connections
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no connection {id}")))
}

/// `GET /connections`, of one workspace with `?workspace_id=`.
pub(super) fn list(api: &Api, workspace: Option<&str>) -> Answer {
    let conns: Vec<Connection> = lock(&api.store)
        .state()
        .connections
        .values()
        .filter(|c| workspace.is_none_or(|w| c.workspace_id == w))
        .cloned()
        .collect();
    let list: Vec<Value> = conns.iter().map(|c| connection_json(api, c)).collect();
    Ok((200, json!({ "connections": list })))
}

/// `GET /connections/{id}`.
pub(super) fn get(api: &Api, id: &str) -> Answer {
    let conn = find_connection(api, id)?;
    Ok((200, connection_json(api, &conn)))
}

/// `DELETE /connections/{id}`.
pub(super) fn delete(api: &Api, id: &str) -> Answer {
    let conn = find_connection(api, id)?;
    api.update_state(|state| {
        state.connections.remove(id);
        Ok::<_, ApiError>(())
    })?;
    api.tear_down(&conn);
    log::info!(
        "connection {} removed from {}",
        conn.name,
        conn.workspace_id
    );
    Ok((200, json!({ "deleted": id })))
}

/// A connection's `era`: `"modern"` (or `"2026-07-28"`) or `"legacy"` (the default).
fn era(era: Option<&str>) -> Result<bool, ApiError> {
    match era {
        None | Some("legacy") => Ok(false),
        Some("modern" | "2026-07-28") => Ok(true),
        Some(_) => Err(ApiError::invalid(
            "era must be \"legacy\" or \"modern\" (2026-07-28)",
        )),
    }
}

/// The body of `PATCH` (any field) or `PUT` (`command` required) on a connection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionUpdate {
    command: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    trusted: Option<bool>,
    era: Option<String>,
}

/// `PATCH` (`replace` false) or `PUT` (`replace` true) on `/connections/{id}`: changes a
/// connection; a running one is restarted with the change at once.
pub(super) fn update(api: &Api, body: &[u8], id: &str, replace: bool) -> Answer {
    let update: ConnectionUpdate = http::parse(body)?;
    if replace && update.command.is_none() {
        return Err(ApiError::invalid(
            "PUT needs the whole connection: command is missing",
        ));
    }
    let old = find_connection(api, id)?;
    if old.remote.is_some() && (replace || update.command.is_some() || update.env.is_some()) {
        return Err(ApiError::invalid(
            "a remote connection changes only `enabled` and `trusted`; DELETE and POST it to \
             change the rest",
        ));
    }
    let new_env = update.env.or_else(|| replace.then(BTreeMap::new));
    if old.remote.is_none() {
        let command = update.command.as_ref().unwrap_or(&old.command);
        match &new_env {
            Some(env) => check_command(
                api,
                command,
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?,
            None => check_command(api, command, old.env.keys().map(|k| (k.as_str(), "")))?,
        }
    }
    let env = match new_env {
        Some(env) => Some(encrypt_env(api, &old.workspace_id, &old.name, &env)?),
        None => None,
    };
    let modern = match update.era.is_some() || replace {
        true => Some(era(update.era.as_deref())?),
        false => None,
    };
    let enabled = update.enabled.or(replace.then_some(true));
    let trusted = update.trusted.or(replace.then_some(false));
    // The fields asked for, set on the record as the store holds it: with replicas, the copy in
    // memory may be a moment old, and writing it whole would undo another replica's change.
    let conn = api.update_state(|state| {
        let conn = state
            .connections
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no connection {id}")))?;
        if let Some(command) = &update.command {
            conn.command.clone_from(command);
        }
        if let Some(env) = &env {
            conn.env.clone_from(env);
        }
        conn.enabled = enabled.unwrap_or(conn.enabled);
        conn.trusted = trusted.unwrap_or(conn.trusted);
        conn.modern = modern.unwrap_or(conn.modern);
        Ok::<_, ApiError>(conn.clone())
    })?;
    // Before the new child starts, so the two never hold the same resources at once.
    api.tear_down(&conn);
    if conn.enabled {
        api.start_connection(&conn)?;
    }
    log::info!("connection {} of {} changed", conn.name, conn.workspace_id);
    Ok((200, connection_json(api, &conn)))
}

/// `POST /connections/{id}/restart`: only while its workspace is running.
pub(super) fn restart(api: &Api, id: &str) -> Answer {
    let conn = find_connection(api, id)?;
    let handle = lock(&api.runtimes)
        .get(&conn.workspace_id)
        .and_then(|r| r.connection(&conn.name))
        .ok_or_else(|| {
            ApiError::new(
                409,
                "not_running",
                "the connection's workspace is not active",
            )
        })?;
    handle.restart();
    Ok((202, json!({ "restarting": id })))
}

//! The REST admin API under `/api/v1/aegis/` (admin bearer token checked by the caller).
//!
//! Owns: connections (create with encrypted env, list, get with live health, delete, restart),
//! workspaces (list, get, activate, deactivate, merged tools with verdicts, tool approval),
//! agents (create with a key shown once, list, revoke), and the registration rules: `command` is
//! an argv array whose executable is on the allowlist, and shells or interpreters with an eval
//! flag are refused.
//! Never: returns an env value or an agent key after its creation answer; never changes state on
//! malformed input (every change goes through `StateStore::update`, applied only when written).

use super::http::{self, ApiError};
use super::{binding, lock, Api};
use crate::config::{validate_server_name, Separator};
use crate::crypto::secret::{hash_secret, random_hex};
use crate::downstream::Snapshot;
use crate::glob::Scope;
use crate::policy::Policy;
use crate::store::pins::{PinStore, Standing};
use crate::store::state::{Agent, Connection, Kind, Remote, Workspace};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

/// Where the REST API lives.
pub(super) const PREFIX: &str = "/api/v1/aegis/";

type Answer = Result<(u16, Value), ApiError>;

/// Shells and interpreters that run code given on the command line, with their eval flags.
const EVAL_FLAGS: &[(&str, &[&str])] = &[
    ("sh", &["-c"]),
    ("bash", &["-c"]),
    ("zsh", &["-c"]),
    ("dash", &["-c"]),
    ("ksh", &["-c"]),
    ("fish", &["-c", "--command"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("nodejs", &["-e", "--eval", "-p", "--print"]),
    ("deno", &["eval"]),
    ("bun", &["-e", "--eval"]),
    ("python", &["-c"]),
    ("python3", &["-c"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("php", &["-r"]),
    ("npx", &["-c", "--call"]),
    ("pwsh", &["-c", "-command", "-encodedcommand"]),
    ("powershell", &["-c", "-command", "-encodedcommand"]),
    ("env", &["-s", "--split-string"]),
];

pub(super) fn handle(
    api: &Api,
    request: &mut tiny_http::Request,
    method: &tiny_http::Method,
    url: &str,
) -> Answer {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    use tiny_http::Method::{Delete, Get, Patch, Post, Put};
    // The body is read before the change lock: a slow upload must not hold up other changes.
    let body = match (method, segments.as_slice()) {
        (Post, ["connections"] | ["agents"]) | (Patch | Put, ["connections", _]) => {
            http::json_body(request, api.options.max_body)?
        }
        (Put, ["workspaces", _, "policy" | "identity"]) => {
            http::json_body(request, api.options.max_body)?
        }
        (m, s) if super::partners::takes_body(m, s) => {
            http::json_body(request, api.options.max_body)?
        }
        _ => Vec::new(),
    };
    let _change = (*method != Get).then(|| lock(&api.changes));
    if let Some(answer) = super::partners::route(api, method, &segments, &body) {
        return answer;
    }
    match (method, segments.as_slice()) {
        (Post, ["connections"]) => create_connection(api, &body),
        (Get, ["connections"]) => {
            list_connections(api, query_param(query, "workspace_id").as_deref())
        }
        (Get, ["connections", id]) => get_connection(api, id),
        (Delete, ["connections", id]) => delete_connection(api, id),
        (Patch, ["connections", id]) => update_connection(api, &body, id, false),
        (Put, ["connections", id]) => update_connection(api, &body, id, true),
        (Post, ["connections", id, "restart"]) => restart_connection(api, id),
        (Get, ["workspaces"]) => list_workspaces(api),
        (Get, ["workspaces", id]) => get_workspace(api, id),
        (Post, ["workspaces", id, "activate"]) => activate(api, id),
        (Post, ["workspaces", id, "deactivate"]) => deactivate(api, id),
        (Get, ["workspaces", id, "tools"]) => workspace_tools(api, id),
        (Get, ["workspaces", id, "policy"]) => get_policy(api, id),
        (Get, ["workspaces", id, "identity"]) => {
            let ws = find_workspace(api, id)?;
            Ok((200, identity_json(ws.identity.unwrap_or_default())))
        }
        (Put, ["workspaces", id, "identity"]) => put_identity(api, id, &body),
        (Get, ["approvals"]) => Ok((200, json!({ "approvals": api.approvals.list() }))),
        (Post, ["approvals", id, "approve"]) => decide(api, id, true),
        (Post, ["approvals", id, "deny"]) => decide(api, id, false),
        (Put, ["workspaces", id, "policy"]) => put_policy(api, id, &body),
        (Post, ["workspaces", id, "tools", name, "approve"]) => approve_tool(api, id, name),
        (Post, ["agents"]) => create_agent(api, &body),
        (Get, ["agents"]) => list_agents(api, query_param(query, "workspace_id").as_deref()),
        (Delete, ["agents", id]) => revoke_agent(api, id),
        (
            _,
            ["connections"]
            | ["connections", _]
            | ["connections", _, "restart"]
            | ["workspaces"]
            | ["workspaces", _]
            | ["workspaces", _, "activate" | "deactivate" | "tools" | "policy" | "identity"]
            | ["workspaces", _, "tools", _, "approve"]
            | ["agents"]
            | ["agents", _]
            | ["approvals"]
            | ["approvals", _, "approve" | "deny"],
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found("no such route")),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

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
    let prefixed = new
        .headers
        .iter()
        .map(|(n, v)| (format!("header:{n}"), v.clone()))
        .collect();
    let headers = encrypt_env(api, &new.workspace_id, &new.name, &prefixed)?
        .into_iter()
        .map(|(n, token)| (n.trim_start_matches("header:").to_owned(), token))
        .collect();
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

pub(super) fn validate_id(what: &str, id: &str) -> Result<(), ApiError> {
    validate_server_name(id, Separator::Dot)
        .map_err(|why| ApiError::invalid(format!("{what} {id:?}: {why}")))
}

/// The registration rules: argv, allowlisted executable, no eval flags.
fn check_command(api: &Api, command: &[String]) -> Result<(), ApiError> {
    let Some(program) = command.first().filter(|p| !p.is_empty()) else {
        return Err(ApiError::invalid("command must be a non-empty argv array"));
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    for (shell, flags) in EVAL_FLAGS {
        if base == *shell
            && command
                .iter()
                .skip(1)
                .any(|a| flags.contains(&a.to_ascii_lowercase().as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "{base} with an eval flag runs code from the command line; register a program instead"
            )));
        }
    }
    if !api.options.allowed_commands.contains(program.as_str()) {
        return Err(ApiError::new(
            403,
            "command_not_allowed",
            format!("{program:?} is not on the allowlist (serve --allow-command)"),
        ));
    }
    Ok(())
}

fn create_connection(api: &Api, body: &[u8]) -> Answer {
    let new: NewConnection = http::parse(body)?;
    let conn = add_connection(api, new)?;
    Ok((201, connection_json(api, &conn)))
}

/// Registers a connection (validated, env encrypted, on disk) and starts it when its workspace
/// is active.
pub(super) fn add_connection(api: &Api, new: NewConnection) -> Result<Connection, ApiError> {
    validate_id("workspace_id", &new.workspace_id)?;
    // A name holding the merged-name separator would make its tools' names ambiguous.
    validate_server_name(&new.name, api.settings.separator)
        .map_err(|why| ApiError::invalid(format!("name {:?}: {why}", new.name)))?;
    let remote = check_remote(api, &new)?;
    if remote.is_none() {
        check_command(api, &new.command)?;
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
    };
    let active = lock(&api.store).update(|state| {
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
        let server = api.server_config(&conn)?;
        if let Some(runtime) = lock(&api.runtimes).get_mut(&conn.workspace_id) {
            runtime
                .add(server)
                .map_err(|e| ApiError::new(500, "start_failed", e.to_string()))?;
        }
    }
    Ok(conn)
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        ApiError::new(500, "store", e.to_string())
    }
}

fn snapshot_of(api: &Api, conn: &Connection) -> Option<Snapshot> {
    lock(&api.runtimes)
        .get(&conn.workspace_id)?
        .connection(&conn.name)
        .map(|h| h.snapshot())
}

fn connection_json(api: &Api, conn: &Connection) -> Value {
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

fn list_connections(api: &Api, workspace: Option<&str>) -> Answer {
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

fn get_connection(api: &Api, id: &str) -> Answer {
    let conn = find_connection(api, id)?;
    Ok((200, connection_json(api, &conn)))
}

/// Stops `conn`'s running child, if its workspace is active, and waits for the teardown after
/// releasing the runtimes lock: a teardown takes seconds and every agent request takes that lock.
fn tear_down(api: &Api, conn: &Connection) {
    let retiring = lock(&api.runtimes)
        .get_mut(&conn.workspace_id)
        .and_then(|r| r.detach(&conn.name));
    if let Some(retiring) = retiring {
        retiring.join();
    }
}

fn delete_connection(api: &Api, id: &str) -> Answer {
    let conn = find_connection(api, id)?;
    lock(&api.store).update(|state| {
        state.connections.remove(id);
        Ok::<_, ApiError>(())
    })?;
    tear_down(api, &conn);
    log::info!(
        "connection {} removed from {}",
        conn.name,
        conn.workspace_id
    );
    Ok((200, json!({ "deleted": id })))
}

/// The body of `PATCH` (any field) or `PUT` (`command` required) on a connection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionUpdate {
    command: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    trusted: Option<bool>,
}

/// Changes a connection; a running one is restarted with the change at once.
fn update_connection(api: &Api, body: &[u8], id: &str, replace: bool) -> Answer {
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
    let mut conn = old.clone();
    if let Some(command) = update.command {
        check_command(api, &command)?;
        conn.command = command;
    }
    if let Some(env) = update.env.or_else(|| replace.then(BTreeMap::new)) {
        conn.env = encrypt_env(api, &conn.workspace_id, &conn.name, &env)?;
    }
    if let Some(enabled) = update.enabled.or(replace.then_some(true)) {
        conn.enabled = enabled;
    }
    if let Some(trusted) = update.trusted.or(replace.then_some(false)) {
        conn.trusted = trusted;
    }
    lock(&api.store).update(|state| {
        state.connections.insert(conn.id.clone(), conn.clone());
        Ok::<_, ApiError>(())
    })?;
    // Before the new child starts, so the two never hold the same resources at once.
    tear_down(api, &conn);
    if conn.enabled {
        let server = api.server_config(&conn)?;
        if let Some(runtime) = lock(&api.runtimes).get_mut(&conn.workspace_id) {
            runtime
                .add(server)
                .map_err(|e| ApiError::new(500, "start_failed", e.to_string()))?;
        }
    }
    log::info!("connection {} of {} changed", conn.name, conn.workspace_id);
    Ok((200, connection_json(api, &conn)))
}

/// Env values encrypted (or, as `encrypted:<token>`, checked) for this connection and variable.
fn encrypt_env(
    api: &Api,
    workspace: &str,
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let bound = binding(workspace, name);
    let mut out = BTreeMap::new();
    for (var, value) in env {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            return Err(ApiError::invalid(format!(
                "env name {var:?} is not a variable name"
            )));
        }
        let token = match value.strip_prefix("encrypted:") {
            Some(token) => {
                api.keyring
                    .decrypt_secret(&bound, var, token)
                    .map_err(|e| ApiError::invalid(format!("env {var}: {e}")))?;
                token.to_owned()
            }
            None => api.keyring.encrypt_secret(&bound, var, value),
        };
        out.insert(var.clone(), token);
    }
    Ok(out)
}

fn restart_connection(api: &Api, id: &str) -> Answer {
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

fn workspace_json(api: &Api, id: &str, ws: &Workspace) -> Value {
    let conns: Vec<Connection> = lock(&api.store)
        .state()
        .connections
        .values()
        .filter(|c| c.workspace_id == id)
        .cloned()
        .collect();
    let list: Vec<Value> = conns.iter().map(|c| connection_json(api, c)).collect();
    json!({ "id": id, "active": ws.active, "connections": list })
}

fn list_workspaces(api: &Api) -> Answer {
    let workspaces: Vec<(String, Workspace)> = lock(&api.store)
        .state()
        .workspaces
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let list: Vec<Value> = workspaces
        .iter()
        .map(|(id, ws)| workspace_json(api, id, ws))
        .collect();
    Ok((200, json!({ "workspaces": list })))
}

fn find_workspace(api: &Api, id: &str) -> Result<Workspace, ApiError> {
    lock(&api.store)
        .state()
        .workspaces
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no workspace {id}")))
}

fn get_workspace(api: &Api, id: &str) -> Answer {
    let ws = find_workspace(api, id)?;
    Ok((200, workspace_json(api, id, &ws)))
}

/// Approves (the held call goes on, exactly as sent) or denies a waiting call.
fn decide(api: &Api, id: &str, approve: bool) -> Answer {
    use crate::approvals::ApprovalError;
    match api.approvals.decide(id, approve) {
        Ok(approval) => Ok((200, json!(approval))),
        Err(ApprovalError::NotFound | ApprovalError::Full) => {
            Err(ApiError::not_found(format!("no approval {id}")))
        }
        Err(ApprovalError::NotPending(status)) => Err(ApiError::new(
            409,
            "conflict",
            format!("approval {id} is {status:?} already"),
        )),
    }
}

/// Identity settings as answered: the introspection credential's presence, never its value.
fn identity_json(mut config: crate::store::state::IdentityConfig) -> Value {
    if let Some(intro) = config.introspection.as_mut() {
        if intro.authorization.is_some() {
            intro.authorization = Some("(set)".into());
        }
    }
    json!(config)
}

/// Sets who may call a workspace besides agent keys; applies from the next request.
fn put_identity(api: &Api, id: &str, body: &[u8]) -> Answer {
    let mut config: crate::store::state::IdentityConfig = http::parse(body)?;
    if let Some(jwt) = &config.jwt {
        jwt.validate()
            .map_err(|why| ApiError::invalid(format!("jwt: {why}")))?;
    }
    if let Some(intro) = config.introspection.as_mut() {
        crate::http_client::Url::parse(&intro.url)
            .map_err(|e| ApiError::invalid(format!("introspection url: {e}")))?;
        // A credential: kept encrypted, bound to this workspace, and never answered.
        if let Some(value) = intro.authorization.take() {
            let bound = super::binding(id, "identity");
            let token = match value.strip_prefix("encrypted:") {
                Some(token) => {
                    api.keyring
                        .decrypt_secret(&bound, "authorization", token)
                        .map_err(|e| ApiError::invalid(format!("authorization: {e}")))?;
                    token.to_owned()
                }
                None => api.keyring.encrypt_secret(&bound, "authorization", &value),
            };
            intro.authorization = Some(format!("encrypted:{token}"));
        }
    }
    lock(&api.store).update(|state| match state.workspaces.get_mut(id) {
        Some(ws) => {
            ws.identity = Some(config.clone());
            Ok(())
        }
        None => Err(ApiError::not_found(format!("no workspace {id}"))),
    })?;
    api.identity.forget(id);
    log::info!("workspace {id}: identity settings replaced");
    Ok((200, identity_json(config)))
}

fn get_policy(api: &Api, id: &str) -> Answer {
    let ws = find_workspace(api, id)?;
    Ok((200, json!(ws.policy.unwrap_or_default())))
}

/// Replaces a workspace's policy; a running workspace applies it from its next call.
fn put_policy(api: &Api, id: &str, body: &[u8]) -> Answer {
    let policy: Policy = http::parse(body)?;
    for hook in &policy.webhooks {
        // The reason only: a URL may carry a secret.
        crate::http_client::Url::parse(hook)
            .map_err(|e| ApiError::invalid(format!("a webhook URL is refused: {e}")))?;
    }
    lock(&api.store).update(|state| match state.workspaces.get_mut(id) {
        Some(ws) => {
            ws.policy = Some(policy.clone());
            Ok(())
        }
        None => Err(ApiError::not_found(format!("no workspace {id}"))),
    })?;
    if let Some(runtime) = lock(&api.runtimes).get(id) {
        runtime.gate().set_policy(policy.clone());
    }
    log::info!("workspace {id}: policy set ({} rules)", policy.rules.len());
    Ok((200, json!(policy)))
}

fn set_active(api: &Api, id: &str, active: bool) -> Result<(), ApiError> {
    validate_id("workspace", id)?;
    lock(&api.store).update(|state| {
        state
            .workspaces
            .entry(id.to_owned())
            .or_insert(Workspace {
                active,
                policy: None,
                identity: None,
            })
            .active = active;
        Ok::<_, ApiError>(())
    })
}

/// `serve --demo`: workspace `demo` with two example servers (the gate's own executable) and an
/// agent; returns the agent's key.
pub(super) fn demo(api: &Api, exe: &str) -> Result<String, ApiError> {
    let exists = lock(&api.store)
        .state()
        .connections
        .values()
        .any(|c| c.workspace_id == "demo");
    if !exists {
        for (name, extra) in [("hello", None), ("world", Some("--extra-tools"))] {
            let mut command = vec![exe.to_owned(), "example-server".to_owned()];
            if let Some(flag) = extra {
                command.extend([flag.to_owned(), "2".to_owned()]);
            }
            add_connection(
                api,
                NewConnection {
                    workspace_id: "demo".into(),
                    name: name.into(),
                    command,
                    env: BTreeMap::new(),
                    kind: Kind::Stdio,
                    url: None,
                    headers: BTreeMap::new(),
                    org_id: None,
                    scope: None,
                    trusted: false,
                },
            )?;
        }
    }
    set_active(api, "demo", true)?;
    api.start_workspace("demo")?;
    let (_, key) = add_agent(api, "demo", "demo agent")?;
    Ok(key)
}

fn activate(api: &Api, id: &str) -> Answer {
    set_active(api, id, true)?;
    api.start_workspace(id)?;
    get_workspace(api, id)
}

fn deactivate(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    set_active(api, id, false)?;
    api.stop_workspace(id);
    get_workspace(api, id)
}

fn workspace_tools(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    let pins = PinStore::open(&api.options.data_dir)?;
    let tools: Vec<Value> = pins
        .entries(id)
        .into_iter()
        .map(|(server, tool, e)| {
            let standing = match e.standing() {
                Standing::Approved => "approved",
                Standing::Changed { .. } => "changed",
                Standing::Unapproved => "unapproved",
            };
            json!({
                "name": e.merged_name,
                "server": server,
                "tool": tool,
                "verdict": e.current.verdict,
                "pin": standing,
                "findings": e.current.findings.iter().map(|f| json!({
                    "location": f.location, "kind": f.kind, "detail": f.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok((200, json!({ "workspace_id": id, "tools": tools })))
}

fn approve_tool(api: &Api, id: &str, name: &str) -> Answer {
    find_workspace(api, id)?;
    let mut pins = PinStore::open(&api.options.data_dir)?;
    let entry = pins.approve(id, name).map_err(|e| match e {
        crate::store::Error::UnknownTool(_) => ApiError::not_found(e.to_string()),
        crate::store::Error::NotApprovable { .. } => {
            ApiError::new(409, "not_approvable", e.to_string())
        }
        other => ApiError::from(other),
    })?;
    Ok((
        200,
        json!({ "approved": name, "version": entry.current.hash }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    workspace_id: String,
    name: String,
}

fn create_agent(api: &Api, body: &[u8]) -> Answer {
    let new: NewAgent = http::parse(body)?;
    let (id, key) = add_agent(api, &new.workspace_id, &new.name)?;
    Ok((
        201,
        json!({ "id": id, "workspace_id": new.workspace_id, "name": new.name, "key": key }),
    ))
}

/// Creates an agent; returns its id and its key (shown this once, stored hashed).
pub(super) fn add_agent(
    api: &Api,
    workspace_id: &str,
    name: &str,
) -> Result<(String, String), ApiError> {
    let new = NewAgent {
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
    };
    validate_id("workspace_id", &new.workspace_id)?;
    if new.name.is_empty() || new.name.len() > 128 {
        return Err(ApiError::invalid("name must be 1 to 128 characters"));
    }
    let random = |n| random_hex(n).map_err(|e| ApiError::new(500, "random", e.to_string()));
    let id = format!("agent_{}", random(8)?);
    let key = format!("agk_{}", random(32)?);
    let agent = Agent {
        id: id.clone(),
        workspace_id: new.workspace_id.clone(),
        name: new.name.clone(),
        key_hash: hash_secret(&key),
        revoked: false,
    };
    lock(&api.store).update(|state| {
        state
            .workspaces
            .entry(agent.workspace_id.clone())
            .or_insert(Workspace {
                active: false,
                policy: None,
                identity: None,
            });
        state.agents.insert(agent.id.clone(), agent.clone());
        Ok::<_, ApiError>(())
    })?;
    log::info!("agent {id} ({}) created for {}", new.name, new.workspace_id);
    Ok((id, key))
}

fn list_agents(api: &Api, workspace: Option<&str>) -> Answer {
    let agents: Vec<Value> = lock(&api.store)
        .state()
        .agents
        .values()
        .filter(|a| workspace.is_none_or(|w| a.workspace_id == w))
        .map(|a| json!({ "id": a.id, "workspace_id": a.workspace_id, "name": a.name, "revoked": a.revoked }))
        .collect();
    Ok((200, json!({ "agents": agents })))
}

fn revoke_agent(api: &Api, id: &str) -> Answer {
    lock(&api.store).update(|state| match state.agents.get_mut(id) {
        Some(agent) => {
            agent.revoked = true;
            Ok(())
        }
        None => Err(ApiError::not_found(format!("no agent {id}"))),
    })?;
    super::sessions::end_sessions(api, |s| s.agent_id == id);
    Ok((200, json!({ "revoked": id })))
}

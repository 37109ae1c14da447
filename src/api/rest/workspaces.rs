//! `/workspaces`: the workspaces, their policy and identity settings, and their tools' pins.
//!
//! Owns: listing and getting workspaces (with their connections), activating (starts it) and
//! deactivating (stops it), the merged tools with their verdicts, pin standing and what changed
//! since their approval, approving a tool's current version, the policy (`GET`/`PUT`, applied by
//! a running workspace from its next call), the identity settings (`GET`/`PUT`; the
//! introspection credential kept encrypted, bound to the workspace), and `serve --demo`.
//! Never: answers the introspection credential (only that it is set); never changes state on
//! malformed input (a policy's webhook URLs and the identity URLs are checked first).

use super::agents;
use super::common::{seal_secret, Answer};
use super::connections::{self, NewConnection};
use crate::api::http::{self, validate_id, ApiError};
use crate::api::Api;
use crate::merger::PROMPT_PIN;
use crate::policy::Policy;
use crate::sanitize;
use crate::store::pins::Standing;
use crate::store::state::{Connection, IdentityConfig, Kind, Workspace};
use crate::thread::lock;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A workspace as answered, with its connections.
fn workspace_json(api: &Api, id: &str, ws: &Workspace) -> Value {
    let conns: Vec<Connection> = lock(&api.store)
        .state()
        .connections
        .values()
        .filter(|c| c.workspace_id == id)
        .cloned()
        .collect();
    let list: Vec<Value> = conns
        .iter()
        .map(|c| connections::connection_json(api, c))
        .collect();
    json!({ "id": id, "active": ws.active, "connections": list })
}

/// `GET /workspaces`.
pub(super) fn list(api: &Api) -> Answer {
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

/// `GET /workspaces/{id}`.
pub(super) fn get(api: &Api, id: &str) -> Answer {
    let ws = find_workspace(api, id)?;
    Ok((200, workspace_json(api, id, &ws)))
}

/// Identity settings as answered: the introspection credential's presence, never its value.
fn identity_json(mut config: IdentityConfig) -> Value {
    if let Some(intro) = config.introspection.as_mut() {
        if intro.authorization.is_some() {
            intro.authorization = Some("(set)".into());
        }
    }
    json!(config)
}

/// `GET /workspaces/{id}/identity`.
pub(super) fn get_identity(api: &Api, id: &str) -> Answer {
    let ws = find_workspace(api, id)?;
    Ok((200, identity_json(ws.identity.unwrap_or_default())))
}

/// `PUT /workspaces/{id}/identity`: sets who may call a workspace besides agent keys; applies
/// from the next request.
pub(super) fn put_identity(api: &Api, id: &str, body: &[u8]) -> Answer {
    let mut config: IdentityConfig = http::parse(body)?;
    if let Some(jwt) = &config.jwt {
        jwt.validate()
            .map_err(|why| ApiError::invalid(format!("jwt: {why}")))?;
    }
    if let Some(intro) = config.introspection.as_mut() {
        crate::http_client::Url::parse(&intro.url)
            .map_err(|e| ApiError::invalid(format!("introspection url: {e}")))?;
        // A credential: kept encrypted, bound to this workspace, and never answered.
        if let Some(value) = intro.authorization.take() {
            let bound = crate::crypto::binding(id, "identity");
            let token = seal_secret(&api.keyring, &bound, "authorization", &value)
                .map_err(|e| ApiError::invalid(format!("authorization: {e}")))?;
            intro.authorization = Some(format!("encrypted:{token}"));
        }
    }
    api.update_state(|state| match state.workspaces.get_mut(id) {
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

/// `GET /workspaces/{id}/policy` (the empty policy when none is set).
pub(super) fn get_policy(api: &Api, id: &str) -> Answer {
    let ws = find_workspace(api, id)?;
    Ok((200, json!(ws.policy.unwrap_or_default())))
}

/// `PUT /workspaces/{id}/policy`: replaces a workspace's policy; a running workspace applies it
/// from its next call.
pub(super) fn put_policy(api: &Api, id: &str, body: &[u8]) -> Answer {
    let policy: Policy = http::parse(body)?;
    for hook in &policy.webhooks {
        // The reason only: a URL may carry a secret.
        crate::http_client::Url::parse(hook)
            .map_err(|e| ApiError::invalid(format!("a webhook URL is refused: {e}")))?;
    }
    api.update_state(|state| match state.workspaces.get_mut(id) {
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

/// Marks a workspace active or not in the store (created when missing); starts or stops nothing.
fn set_active(api: &Api, id: &str, active: bool) -> Result<(), ApiError> {
    validate_id("workspace", id)?;
    api.update_state(|state| {
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

/// The name of the agent `serve --demo` creates.
const DEMO_AGENT: &str = "demo agent";

/// The demo's agent: its key, and how many earlier demo agents its creation revoked.
pub(in crate::api) struct DemoAgent {
    /// The new agent's key (shown once).
    pub(in crate::api) key: String,
    /// Earlier demo agents revoked, so that one demo key is live.
    pub(in crate::api) revoked: usize,
}

/// `serve --demo`: workspace `demo` with two example servers (the gate's own executable) and an
/// agent, which replaces (revokes) the demo agents of earlier starts.
pub(in crate::api) fn demo(api: &Api, exe: &str) -> Result<DemoAgent, ApiError> {
    let exists = lock(&api.store)
        .state()
        .connections
        .values()
        .any(|c| c.workspace_id == "demo");
    if !exists {
        for (name, extra) in [("hello", None), ("world", Some("--extra-tools"))] {
            let mut command = vec![exe.to_owned(), "example-server".to_owned()];
            if let Some(flag) = extra {
                // Tools only: the two servers would otherwise list the same resources.
                command.extend(["--tools-only".to_owned(), flag.to_owned(), "2".to_owned()]);
            }
            connections::add(
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
                    era: None,
                },
            )?;
        }
    }
    set_active(api, "demo", true)?;
    api.start_workspace("demo")?;
    let revoked = agents::revoke_named(api, "demo", DEMO_AGENT)?;
    let (_, key) = agents::add(api, "demo", DEMO_AGENT)?;
    Ok(DemoAgent { key, revoked })
}

/// `POST /workspaces/{id}/activate`: creates the workspace when missing and starts it.
pub(super) fn activate(api: &Api, id: &str) -> Answer {
    set_active(api, id, true)?;
    api.start_workspace(id)?;
    get(api, id)
}

/// `POST /workspaces/{id}/deactivate`: stops it.
pub(super) fn deactivate(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    set_active(api, id, false)?;
    api.stop_workspace(id);
    get(api, id)
}

/// `GET /workspaces/{id}/tools`: each pinned tool with its verdict, pin standing and findings,
/// and for a changed tool the `diff` lines from its approved to its current sanitized definition.
pub(super) fn tools(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    let tools = pinned(api, id, false)?;
    Ok((200, json!({ "workspace_id": id, "tools": tools })))
}

/// `GET /workspaces/{id}/prompts`: each pinned prompt, as `tools` shows a tool.
pub(super) fn prompts(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    let prompts = pinned(api, id, true)?;
    Ok((200, json!({ "workspace_id": id, "prompts": prompts })))
}

/// `GET /workspaces/{id}/resources`: the resources and templates of the running workspace,
/// each with the server that serves it, the name policies match and why it is hidden (if it
/// is), and the URIs two servers listed (the first in configuration order serves them).
pub(super) fn resources(api: &Api, id: &str) -> Answer {
    find_workspace(api, id)?;
    let routes = lock(&api.runtimes).get(id).map(|r| r.gate().routes());
    let Some(routes) = routes else {
        return Err(ApiError::new(
            409,
            "not_active",
            format!("workspace {id} is not active: its servers' resources are not known"),
        ));
    };
    let resources = routes.resources();
    let mut entries: Vec<Value> = resources
        .entries()
        .map(|(uri, template, route)| {
            json!({
                (if template { "uriTemplate" } else { "uri" }): uri,
                "server": route.conn.name(),
                "name": route.subject,
                "blocked": route.blocked.as_deref(),
            })
        })
        .collect();
    entries.sort_by_key(Value::to_string);
    let collisions: Vec<Value> = resources
        .collisions()
        .iter()
        .map(|c| json!({ "uri": c.uri, "served_by": c.kept, "skipped": c.skipped }))
        .collect();
    Ok((
        200,
        json!({ "workspace_id": id, "resources": entries, "collisions": collisions }),
    ))
}

/// The pinned tools (or prompts) of a workspace, for the REST views.
fn pinned(api: &Api, id: &str, prompts: bool) -> Result<Vec<Value>, ApiError> {
    let pins = api.pin_store()?;
    let entries = pins
        .entries(id)
        .into_iter()
        .filter(|(_, tool, _)| tool.starts_with(PROMPT_PIN) == prompts)
        .map(|(server, tool, e)| {
            let (standing, diff) = match e.standing() {
                Standing::Approved => ("approved", None),
                Standing::Changed { approved } => (
                    "changed",
                    Some(sanitize::diff::definitions(
                        &approved,
                        &e.current.clean.value(),
                    )),
                ),
                Standing::Unapproved => ("unapproved", None),
            };
            let mut tool = json!({
                "name": e.merged_name,
                "server": server,
                "tool": tool,
                "verdict": e.current.verdict,
                "pin": standing,
                "findings": e.current.findings.iter().map(|f| json!({
                    "location": f.location, "kind": f.kind, "detail": f.detail,
                    "stage": f.stage, "flag": f.severity == "flag",
                })).collect::<Vec<_>>(),
            });
            if let Some(diff) = diff {
                // What changed since the approval, as `tools show` prints it (- approved, + current).
                tool["diff"] = json!(diff);
            }
            if prompts {
                // Shown by its merged name; approved under its pin name.
                tool["pin_name"] = json!(e.merged_name);
                tool["name"] = json!(e.merged_name.trim_start_matches(PROMPT_PIN));
                tool["prompt"] = json!(tool_name_of(tool.get("tool")));
                if let Some(map) = tool.as_object_mut() {
                    map.remove("tool");
                }
            }
            tool
        })
        .collect();
    Ok(entries)
}

fn tool_name_of(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_start_matches(PROMPT_PIN)
        .to_owned()
}

/// `POST /workspaces/{id}/prompts/{name}/approve`: pins the prompt's current version.
pub(super) fn approve_prompt(api: &Api, id: &str, name: &str) -> Answer {
    let (status, mut body) = approve_tool(api, id, &format!("{PROMPT_PIN}{name}"))?;
    body["approved"] = json!(name);
    Ok((status, body))
}

/// `POST /workspaces/{id}/tools/{name}/approve`: pins the tool's current version.
pub(super) fn approve_tool(api: &Api, id: &str, name: &str) -> Answer {
    find_workspace(api, id)?;
    let mut pins = api.pin_store()?;
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

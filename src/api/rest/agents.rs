//! `/agents`: the agent keys that call a workspace's tools.
//!
//! Owns: creating an agent (its key answered this once, stored only as a hash), listing agents
//! (of one workspace with `?workspace_id=`), and revoking one (its MCP sessions end at once), or
//! every live one of a name (the demo's agent, replaced at each `serve --demo`).
//! Never: stores or answers a key after its creation answer; never deletes an agent (a revoked
//! one stays listed, `revoked: true`).

use super::common::Answer;
use crate::api::http::{self, validate_id, ApiError};
use crate::api::Api;
use crate::crypto::secret::{hash_secret, random_hex};
use crate::store::state::{Agent, Workspace};
use crate::thread::lock;
use serde::Deserialize;
use serde_json::{json, Value};

/// The body of `POST /agents`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    workspace_id: String,
    name: String,
}

/// `POST /agents`.
pub(super) fn create(api: &Api, body: &[u8]) -> Answer {
    let new: NewAgent = http::parse(body)?;
    let (id, key) = add(api, &new.workspace_id, &new.name)?;
    Ok((
        201,
        json!({ "id": id, "workspace_id": new.workspace_id, "name": new.name, "key": key }),
    ))
}

/// Creates an agent; returns its id and its key (shown this once, stored hashed).
pub(super) fn add(api: &Api, workspace_id: &str, name: &str) -> Result<(String, String), ApiError> {
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
    api.update_state(|state| {
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

/// Revokes every live agent of `workspace_id` called `name` and ends their MCP sessions; how
/// many there were.
pub(super) fn revoke_named(api: &Api, workspace_id: &str, name: &str) -> Result<usize, ApiError> {
    let is_it = |a: &Agent| !a.revoked && a.workspace_id == workspace_id && a.name == name;
    let ids = api.update_state(|state| {
        let mut ids = Vec::new();
        for agent in state.agents.values_mut().filter(|a| is_it(a)) {
            agent.revoked = true;
            ids.push(agent.id.clone());
        }
        Ok::<_, ApiError>(ids)
    })?;
    if !ids.is_empty() {
        crate::api::sessions::end_sessions(api, |s| ids.contains(&s.agent_id));
        log::info!(
            "revoked {} earlier agent(s) {name:?} of {workspace_id}",
            ids.len()
        );
    }
    Ok(ids.len())
}

/// `GET /agents`, of one workspace with `?workspace_id=`.
pub(super) fn list(api: &Api, workspace: Option<&str>) -> Answer {
    let agents: Vec<Value> = lock(&api.store)
        .state()
        .agents
        .values()
        .filter(|a| workspace.is_none_or(|w| a.workspace_id == w))
        .map(|a| json!({ "id": a.id, "workspace_id": a.workspace_id, "name": a.name, "revoked": a.revoked }))
        .collect();
    Ok((200, json!({ "agents": agents })))
}

/// `DELETE /agents/{id}`: revokes the agent and ends its MCP sessions.
pub(super) fn revoke(api: &Api, id: &str) -> Answer {
    api.update_state(|state| match state.agents.get_mut(id) {
        Some(agent) => {
            agent.revoked = true;
            Ok(())
        }
        None => Err(ApiError::not_found(format!("no agent {id}"))),
    })?;
    crate::api::sessions::end_sessions(api, |s| s.agent_id == id);
    Ok((200, json!({ "revoked": id })))
}

//! `/identity` and `/partners`: the REST routes of delegation, this gate's identity and its
//! partner organizations.
//!
//! Owns: `GET /identity` (`{"org_id", "keys": [{"kid", "public_key"}]}`, the form `POST
//! /partners` takes, so onboarding a partner is copy and paste), and partners: create, list, get,
//! replace, delete, add a key, remove a key; which of these routes take a body; the rules a
//! partner must pass (also used by the command line): a valid org id that is not this gate's,
//! keys in PASERK `k4.public` form that are safe to verify with (weak keys refused), each `kid`
//! belonging to one partner only, readable `not_after` times, valid globs, a rate of at least one
//! call per minute and a burst of at least one.
//! Never: stores a partner that failed a rule; a change is on disk before it is answered, and
//! inbound requests read the partners on every request, so a removed key or partner is refused
//! from the next request on.

use super::common::Answer;
use crate::api::callers::partner_caller;
use crate::api::http::{self, validate_id, ApiError};
use crate::api::Api;
use crate::delegation::paserk;
use crate::http::Method;
use crate::store::state::{Partner, PartnerKey, State};
use crate::thread::lock;
use crate::time;
use serde_json::{json, Value};

/// Routes under `identity` and `partners`; `None` when the path is not one of them.
pub(super) fn route(api: &Api, method: &Method, segments: &[&str], body: &[u8]) -> Option<Answer> {
    use Method::{Delete, Get, Post, Put};
    Some(match (method, segments) {
        (Get, ["identity"]) => Ok((200, identity(api))),
        (Post, ["partners"]) => create(api, body),
        (Get, ["partners"]) => Ok((200, list(api))),
        (Get, ["partners", org]) => get(api, org),
        (Put, ["partners", org]) => replace(api, org, body),
        (Delete, ["partners", org]) => delete(api, org),
        (Post, ["partners", org, "keys"]) => add_key(api, org, body),
        (Delete, ["partners", org, "keys", kid]) => remove_key(api, org, kid),
        (
            _,
            ["identity"]
            | ["partners"]
            | ["partners", _]
            | ["partners", _, "keys"]
            | ["partners", _, "keys", _],
        ) => Err(ApiError::method_not_allowed()),
        _ => return None,
    })
}

/// Whether this request needs its body read (before the change lock).
pub(super) fn takes_body(method: &Method, segments: &[&str]) -> bool {
    use Method::{Post, Put};
    matches!(
        (method, segments),
        (Post, ["partners"]) | (Put, ["partners", _]) | (Post, ["partners", _, "keys"])
    )
}

/// This gate's org id and public keys.
fn identity(api: &Api) -> Value {
    let org_id = lock(&api.store).state().org_id.clone();
    json!({ "org_id": org_id, "keys": api.signing.public() })
}

fn list(api: &Api) -> Value {
    let store = lock(&api.store);
    let partners: Vec<&Partner> = store.state().partners.values().collect();
    json!({ "partners": partners })
}

fn get(api: &Api, org: &str) -> Answer {
    let store = lock(&api.store);
    let partner = store
        .state()
        .partners
        .get(org)
        .ok_or_else(|| ApiError::not_found(format!("no partner {org}")))?;
    Ok((200, json!(partner)))
}

fn create(api: &Api, body: &[u8]) -> Answer {
    let partner: Partner = http::parse(body)?;
    api.update_state(|state| {
        if state.partners.contains_key(&partner.org_id) {
            return Err(ApiError::new(
                409,
                "conflict",
                format!("partner {} exists: PUT replaces it", partner.org_id),
            ));
        }
        check(state, &partner)?;
        state
            .partners
            .insert(partner.org_id.clone(), partner.clone());
        Ok(())
    })?;
    log::info!(
        "partner {} added for workspace {} with {} key(s)",
        partner.org_id,
        partner.workspace_id,
        partner.keys.len()
    );
    Ok((201, json!(partner)))
}

fn replace(api: &Api, org: &str, body: &[u8]) -> Answer {
    let partner: Partner = http::parse(body)?;
    if partner.org_id != org {
        return Err(ApiError::invalid(format!(
            "org_id {:?} does not match the path's {org:?}",
            partner.org_id
        )));
    }
    api.update_state(|state| {
        if !state.partners.contains_key(org) {
            return Err(ApiError::not_found(format!("no partner {org}")));
        }
        check(state, &partner)?;
        state.partners.insert(org.to_owned(), partner.clone());
        Ok(())
    })?;
    log::info!("partner {org} replaced");
    Ok((200, json!(partner)))
}

fn delete(api: &Api, org: &str) -> Answer {
    api.update_state(|state| {
        state
            .partners
            .remove(org)
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found(format!("no partner {org}")))
    })?;
    crate::api::sessions::end_sessions(api, |s| s.agent_id == partner_caller(org));
    log::info!("partner {org} removed");
    Ok((200, json!({ "deleted": org })))
}

fn add_key(api: &Api, org: &str, body: &[u8]) -> Answer {
    let key: PartnerKey = http::parse(body)?;
    let partner = api.update_state(|state| {
        let mut partner = state
            .partners
            .get(org)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no partner {org}")))?;
        partner.keys.push(key.clone());
        check(state, &partner)?;
        state.partners.insert(org.to_owned(), partner.clone());
        Ok::<_, ApiError>(partner)
    })?;
    log::info!("partner {org}: key {} added", key.kid);
    Ok((201, json!(partner)))
}

fn remove_key(api: &Api, org: &str, kid: &str) -> Answer {
    api.update_state(|state| {
        let partner = state
            .partners
            .get_mut(org)
            .ok_or_else(|| ApiError::not_found(format!("no partner {org}")))?;
        let before = partner.keys.len();
        partner.keys.retain(|k| k.kid != kid);
        if partner.keys.len() == before {
            return Err(ApiError::not_found(format!(
                "partner {org} has no key {kid}"
            )));
        }
        Ok(())
    })?;
    // Sessions opened under the removed key end too (a GET stream would outlive it otherwise).
    crate::api::sessions::end_sessions(api, |s| s.agent_id == partner_caller(org));
    log::info!("partner {org}: key {kid} removed");
    Ok((200, json!({ "deleted": kid })))
}

/// The rules a partner must pass against the rest of the state.
pub(in crate::api) fn check(state: &State, partner: &Partner) -> Result<(), ApiError> {
    validate_id("org_id", &partner.org_id)?;
    validate_id("workspace_id", &partner.workspace_id)?;
    if state.org_id.as_deref() == Some(partner.org_id.as_str()) {
        return Err(ApiError::invalid(
            "a partner cannot have this gate's own org id",
        ));
    }
    if !state.workspaces.contains_key(&partner.workspace_id) {
        return Err(ApiError::invalid(format!(
            "no workspace {}",
            partner.workspace_id
        )));
    }
    if partner.keys.is_empty() {
        return Err(ApiError::invalid("a partner needs at least one key"));
    }
    for rate in std::iter::once(&partner.rate).chain(partner.agent_rate.as_ref()) {
        let fast = rate.per_minute > crate::delegation::rate::MAX_PER_MINUTE;
        if rate.per_minute == 0 || rate.burst == 0 || fast || rate.burst > 1_000_000 {
            return Err(ApiError::invalid(format!(
                "a rate's per_minute is 1 to {} and its burst 1 to 1000000",
                crate::delegation::rate::MAX_PER_MINUTE
            )));
        }
    }
    for (i, key) in partner.keys.iter().enumerate() {
        check_key(state, partner, key)?;
        if partner.keys[..i].iter().any(|k| k.kid == key.kid) {
            return Err(ApiError::new(
                409,
                "conflict",
                format!("kid {} is listed twice", key.kid),
            ));
        }
    }
    Ok(())
}

fn check_key(state: &State, partner: &Partner, key: &PartnerKey) -> Result<(), ApiError> {
    if key.kid.is_empty() || key.kid.len() > 128 {
        return Err(ApiError::invalid("a kid is 1 to 128 characters"));
    }
    paserk::decode(&key.public_key)
        .map_err(|e| ApiError::bad_request(format!("key {}: {e}", key.kid)))?;
    if let Some(at) = &key.not_after {
        time::parse(at).ok_or_else(|| {
            ApiError::bad_request(format!(
                "key {}: not_after must be RFC 3339 UTC (2027-01-01T00:00:00Z)",
                key.kid
            ))
        })?;
    }
    let taken = state
        .partners
        .values()
        .filter(|p| p.org_id != partner.org_id)
        .any(|p| p.keys.iter().any(|k| k.kid == key.kid));
    if taken {
        return Err(ApiError::new(
            409,
            "conflict",
            format!("kid {} belongs to another partner", key.kid),
        ));
    }
    Ok(())
}

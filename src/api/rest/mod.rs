//! The REST admin API under `/api/v1/aegis/` (admin bearer token checked by the caller).
//!
//! Owns: the route table (which resource file answers a method and a path, 405 for a known path
//! with another method, 404 for an unknown one), the body checks (JSON, within the limit), and the change lock
//! around every request but a `GET`. The resources are one file each: `connections`,
//! `workspaces`, `agents`, `approvals` and `partners` (with `/identity`); what they share is in
//! `common`.
//! Never: answers a route itself beyond the 405/404 fallbacks; is imported by a resource file
//! (the arrows go from here down to the resource files, and from them to `common`; `workspaces`
//! uses `connections` and `agents` for the demo); returns an
//! env value or an agent key after its creation answer; changes state on malformed input (every
//! change goes through `StateStore::update`, applied only when written).

mod agents;
mod approvals;
mod common;
mod connections;
pub(super) mod partners;
mod workspaces;

#[cfg(test)]
mod tests;

use super::http::{self, ApiError};
use super::Api;
use crate::http::{Method, Request};
use crate::thread::lock;
use common::Answer;

pub(super) use workspaces::{demo, DemoAgent};

/// Where the REST API lives.
pub(super) const PREFIX: &str = "/api/v1/aegis/";

/// Answers one REST request; `url` is the request's URL, query included.
pub(super) fn handle(api: &Api, request: &Request, method: &Method, url: &str) -> Answer {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    // Each segment decoded on its own, so that an encoded `/` stays inside its segment.
    let decoded = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Result<Vec<String>, ApiError>>()?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    use Method::{Delete, Get, Patch, Post, Put};
    // The front has read the whole body before the handler runs, so a slow upload never holds
    // the change lock; what is checked here is its type and size.
    let body = match (method, segments.as_slice()) {
        (Post, ["connections"] | ["agents"]) | (Patch | Put, ["connections", _]) => {
            http::json_body(request, api.settings.http.max_body)?
        }
        (Put, ["workspaces", _, "policy" | "identity"]) => {
            http::json_body(request, api.settings.http.max_body)?
        }
        (m, s) if partners::takes_body(m, s) => {
            http::json_body(request, api.settings.http.max_body)?
        }
        _ => &[][..],
    };
    // A change needs the shared store (approving a held call does not: it may be this
    // replica's).
    if *method != Get && segments.first() != Some(&"approvals") {
        api.need_store()?;
    }
    let _change = (*method != Get).then(|| lock(&api.changes));
    if let Some(answer) = partners::route(api, method, &segments, body) {
        return answer;
    }
    match (method, segments.as_slice()) {
        (Post, ["connections"]) => connections::create(api, body),
        (Get, ["connections"]) => {
            connections::list(api, query_param(query, "workspace_id")?.as_deref())
        }
        (Get, ["connections", id]) => connections::get(api, id),
        (Delete, ["connections", id]) => connections::delete(api, id),
        (Patch, ["connections", id]) => connections::update(api, body, id, false),
        (Put, ["connections", id]) => connections::update(api, body, id, true),
        (Post, ["connections", id, "restart"]) => connections::restart(api, id),
        (Get, ["workspaces"]) => workspaces::list(api),
        (Get, ["workspaces", id]) => workspaces::get(api, id),
        (Post, ["workspaces", id, "activate"]) => workspaces::activate(api, id),
        (Post, ["workspaces", id, "deactivate"]) => workspaces::deactivate(api, id),
        (Get, ["workspaces", id, "tools"]) => workspaces::tools(api, id),
        (Get, ["workspaces", id, "prompts"]) => workspaces::prompts(api, id),
        (Get, ["workspaces", id, "resources"]) => workspaces::resources(api, id),
        (Get, ["workspaces", id, "policy"]) => workspaces::get_policy(api, id),
        (Get, ["workspaces", id, "identity"]) => workspaces::get_identity(api, id),
        (Put, ["workspaces", id, "identity"]) => workspaces::put_identity(api, id, body),
        (Get, ["approvals"]) => approvals::list(api),
        (Get, ["approvals", id]) => approvals::get(api, id),
        (Post, ["approvals", id, "approve"]) => approvals::decide(api, id, true),
        (Post, ["approvals", id, "deny"]) => approvals::decide(api, id, false),
        (Put, ["workspaces", id, "policy"]) => workspaces::put_policy(api, id, body),
        (Post, ["workspaces", id, "prompts", name, "approve"]) => {
            workspaces::approve_prompt(api, id, name)
        }
        (Post, ["workspaces", id, "tools", name, "approve"]) => {
            workspaces::approve_tool(api, id, name)
        }
        (Post, ["agents"]) => agents::create(api, body),
        (Get, ["agents"]) => agents::list(api, query_param(query, "workspace_id")?.as_deref()),
        (Delete, ["agents", id]) => agents::revoke(api, id),
        (
            _,
            ["connections"]
            | ["connections", _]
            | ["connections", _, "restart"]
            | ["workspaces"]
            | ["workspaces", _]
            | ["workspaces", _, "activate" | "deactivate" | "tools" | "policy" | "identity"]
            | ["workspaces", _, "prompts" | "resources"]
            | ["workspaces", _, "tools" | "prompts", _, "approve"]
            | ["agents"]
            | ["agents", _]
            | ["approvals"]
            | ["approvals", _]
            | ["approvals", _, "approve" | "deny"],
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found("no such route")),
    }
}

/// The value of `name` in a query string, percent-decoded (`+` is a space, as forms send it).
fn query_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(&k.replace('+', " "))? == name {
            return percent_decode(&v.replace('+', " ")).map(Some);
        }
    }
    Ok(None)
}

/// `%XX` escapes made bytes again; a malformed escape or bytes that are not UTF-8 are a 400.
fn percent_decode(text: &str) -> Result<String, ApiError> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let malformed = || ApiError::bad_request("malformed percent-encoding in the URL");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(malformed)?;
            let hex = std::str::from_utf8(hex).map_err(|_| malformed())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| malformed())
}

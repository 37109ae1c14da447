//! Claims: how a verified token's claims (a JWT's payload or an introspection answer) name the
//! caller, the same way for every adapter.
//!
//! Owns: what a verified token names ([`Identity`]) or why it was refused ([`Refused`]), the
//! audience check (`aud` a string or a list holding it), the agent from the mapped
//! claim, the tool scopes (globs) from the mapped claim, and the workspace claim.
//! Never: reads claims of a token that has not been verified (callers check first).

use crate::glob::{Glob, Scope};
use serde_json::Value;
use std::fmt;

/// Who a verified token names.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The agent (the mapped claim).
    pub agent: String,
    /// The tools it may see and call; `None`: all.
    pub scope: Option<Scope>,
    /// The workspace the token is for, when a workspace claim is configured (`Some("")` when
    /// configured and missing).
    pub workspace: Option<String>,
}

/// Why a token was refused (for the log; the caller sees 401).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which claims carry what.
pub struct ClaimMap<'a> {
    /// The claim that names the agent.
    pub agent: &'a str,
    /// The claim with the tool globs; all tools when `None`, none when set and missing.
    pub scopes: Option<&'a str>,
    /// The claim naming the workspace the token is for, when one is configured.
    pub workspace: Option<&'a str>,
}

/// Whether `aud` (a string or a list) holds `audience`.
pub fn audience_holds(claims: &Value, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// The identity `claims` carry under `map`.
pub fn identity_from(claims: &Value, map: &ClaimMap<'_>) -> Result<Identity, Refused> {
    let agent = claims
        .get(map.agent)
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty() && a.len() <= 200)
        .ok_or_else(|| Refused("no agent claim".into()))?
        .to_owned();
    let scope = match map.scopes {
        None => None,
        Some(name) => Some(scopes(claims.get(name))?),
    };
    // `""` when configured and missing: the workspace check then fails.
    let workspace = map.workspace.map(|name| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });
    Ok(Identity {
        agent,
        scope,
        workspace,
    })
}

/// The globs a scopes claim lists (a list of strings or one space-separated string); a missing
/// claim allows nothing.
fn scopes(claim: Option<&Value>) -> Result<Scope, Refused> {
    let texts: Vec<String> = match claim {
        None => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err(Refused("the scopes claim is not a list".into())),
    };
    let allow = texts
        .iter()
        .take(100)
        .map(|t| Glob::new(t).map_err(|e| Refused(format!("a scope is not a glob: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scope {
        allow,
        deny: Vec::new(),
    })
}

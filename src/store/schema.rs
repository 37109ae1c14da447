//! The on-disk format of `state.json`: the types the file holds, and nothing else. Some parts are
//! types of their own modules, serialized as they are: a workspace's `policy::Policy`, its
//! identity settings (`identity::jwt::JwtConfig`, `identity::introspect::IntrospectionConfig`),
//! a partner's `delegation::rate::Rate` and `glob::Glob`s.
//!
//! Owns: the serialized shape of workspaces (with their policy and identity settings),
//! connections (env values and header values as Fernet tokens), agents (key hashes), partners,
//! the org id, the admin token's hash and the tool pins. This is an API boundary: a field renamed
//! or retyped here changes the file every gate and operator tool reads, so changes go with a
//! schema version ([`super::state`] owns the number and the migration).
//! Never: does I/O; holds a plain secret (tokens and hashes only).

use crate::delegation::rate::Rate;
use crate::glob::{Glob, Scope};
use crate::json_text::JsonText;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A workspace: a set of connections served together at `/mcp/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workspace {
    /// Whether its connections run.
    pub active: bool,
    /// Which calls its agents may make (`PUT /workspaces/{id}/policy`); everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::Policy>,
    /// Who may call besides agent keys (`PUT /workspaces/{id}/identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfig>,
}

/// A workspace's identity adapters besides agent keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityConfig {
    /// JWT access tokens from an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<crate::identity::jwt::JwtConfig>,
    /// Opaque tokens checked with the provider (RFC 7662), after agent keys and JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection: Option<crate::identity::introspect::IntrospectionConfig>,
}

/// A registered downstream connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Connection {
    /// Random id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Its name, unique in the workspace: the tool prefix.
    pub name: String,
    /// argv: the executable and its arguments.
    pub command: Vec<String>,
    /// Variable name → Fernet token bound to this connection and variable.
    pub env: BTreeMap<String, String>,
    /// Whether it runs when its workspace is active.
    pub enabled: bool,
    /// A local command (`stdio`, the default) or a remote server (`http`, `partner`).
    #[serde(default, skip_serializing_if = "Kind::is_stdio")]
    pub kind: Kind,
    /// Where a remote server is, for `http` and `partner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
    /// Policies may use its tools' annotations (`destructiveHint`, …).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trusted: bool,
    /// A local server spoken to in MCP 2026-07-28 (`server/discover`, the envelope) instead of
    /// being started with `initialize`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub modern: bool,
}

/// What a connection reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A local command spoken to over its stdin and stdout.
    #[default]
    Stdio,
    /// A remote MCP server over Streamable HTTP.
    Http,
    /// A partner organization's gate: `http`, every request signed with this gate's key.
    Partner,
}

impl Kind {
    /// Whether this is the default kind (not written to the state file).
    pub(crate) fn is_stdio(&self) -> bool {
        *self == Kind::Stdio
    }
}

/// A remote server's address and credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Remote {
    /// Its MCP endpoint (`http://…`).
    pub url: String,
    /// Header name → Fernet token bound to this connection and `header:NAME`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// For a partner: its org id (the tokens' `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// For a partner: what this gate's agents may use there (the tokens' `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// An agent allowed to call a workspace's tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Agent {
    /// Random id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 (hex) of its key; the key itself is shown once and never stored.
    pub key_hash: String,
    /// Revoked agents are refused.
    pub revoked: bool,
}

/// A partner organization whose gate may call this gate's tools under signed delegation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Partner {
    /// Its organization id (the `iss` of its tokens).
    pub org_id: String,
    /// Its public keys; a token's `kid` selects one.
    pub keys: Vec<PartnerKey>,
    /// The workspace whose tools it may reach (at `/mcp/{workspace_id}`).
    pub workspace_id: String,
    /// Tools it may call (scope globs).
    #[serde(default)]
    pub allow: Vec<Glob>,
    /// Tools it may never call, whatever `allow` or its tokens say.
    #[serde(default)]
    pub deny: Vec<Glob>,
    /// Its rate, for the org as a whole.
    pub rate: Rate,
    /// The rate of each of its agents (`sub`); the org's rate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_rate: Option<Rate>,
}

/// A partner's public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerKey {
    /// The id its tokens name.
    pub kid: String,
    /// `k4.public.…`.
    pub public_key: String,
    /// RFC 3339 UTC; after it the key no longer verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Everything the gate persists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// Schema version of the file.
    pub version: u32,
    /// SHA-256 (hex) of the admin token, when the gate generated it (not with `AEGIS_ADMIN_TOKEN`).
    pub admin_token_hash: Option<String>,
    /// Workspaces by id.
    pub workspaces: BTreeMap<String, Workspace>,
    /// Connections by id.
    pub connections: BTreeMap<String, Connection>,
    /// Agents by id.
    pub agents: BTreeMap<String, Agent>,
    /// This gate's organization id (`serve --org-id`), for delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Partner organizations by org id.
    #[serde(default)]
    pub partners: BTreeMap<String, Partner>,
    /// Tool pins by workspace, server and tool; written by [`super::pins::PinStore`] only.
    #[serde(default)]
    pub pins: Pins,
    /// In a shared store: a Fernet token of a known text under the first replica's keys, so a
    /// replica started with other keys refuses to start instead of failing every secret later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
}

/// A stored finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Where.
    pub location: String,
    /// What (snake_case kind).
    pub kind: String,
    /// Evidence.
    pub detail: String,
    /// The stage that found it: `cleaner`, `detector`, `model` or `structure` (empty in pins
    /// written before guard v2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// `flag` for a finding that is shown but does not hold the tool; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
}

/// A tool's (or prompt's) definition as pinned: its compact text (see [`JsonText`]), so thousands
/// of pinned tools cost their text's length, and the copies of one (raw, cleaned, approved)
/// share one text. Written to the file as the value itself.
pub(crate) type Definition = JsonText;

/// The approved version of a tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    /// Its pin hash.
    pub hash: String,
    /// Its sanitized definition (what agents are served while a newer version waits).
    pub definition: Definition,
    /// `first use` or `operator`.
    pub by: String,
    /// Unix seconds.
    pub at: u64,
}

/// The version of a tool last seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Current {
    /// Its pin hash.
    pub hash: String,
    /// Its verdict.
    pub verdict: String,
    /// What the sanitizers found.
    pub findings: Vec<StoredFinding>,
    /// The definition as the server sent it.
    pub raw: Definition,
    /// The sanitized definition.
    pub clean: Definition,
}

/// One tool's pin record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinEntry {
    /// The name agents see.
    pub merged_name: String,
    /// The approved version, if any.
    pub approved: Option<Approved>,
    /// The last version seen.
    pub current: Current,
}

pub(crate) type Tools = BTreeMap<String, PinEntry>;
type Servers = BTreeMap<String, Tools>;
/// All pins: workspace → server → tool → entry.
pub(crate) type Pins = BTreeMap<String, Servers>;

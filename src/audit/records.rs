//! The events the gate records, built in one place: what each kind of audit record holds.
//!
//! Owns: the shapes of the `event` objects (a call over HTTP, a call over stdio, a delegated call
//! refused before it ran, an admin change, an approval). The shapes differ by transport today
//! (an HTTP call carries `delegation`, a stdio call `transport`, a refused delegated call
//! `body_sha256` instead of `arguments_sha256`); they are kept as they are so that trails stay
//! comparable, and any change to them is a format change.
//! Never: records argument values (only their SHA-256); keeps more than 200 characters of a name
//! a peer chose.

use crate::policy::Verdict;
use serde::Serialize;
use serde_json::{json, Value};

/// At most 200 characters of `text`: names and ids that a peer chose are clipped.
pub fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The SHA-256 (hex) of a call's argument bytes, as an audit record carries them.
pub fn argument_hash(arguments: &[u8]) -> String {
    crate::hex::sha256(arguments)
}

/// Which transport carried a call, and what only that transport knows.
#[derive(Clone, Debug)]
pub enum Via {
    /// MCP over HTTP; for a delegated call, the token's `iss` and `jti`.
    Http {
        /// `iss` and `jti` of the delegation token.
        delegation: Option<(String, String)>,
    },
    /// The stdio gate.
    Stdio,
}

/// What the trail keeps of a call (`tools/call`, `prompts/get`, `resources/read`) besides its
/// outcome and latency.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// The transport.
    pub via: Via,
    /// The method; a record says it only when it is not `tools/call` (records of tool calls
    /// keep the shape they always had).
    pub method: &'static str,
    /// The protocol era when it is not the legacy one (`2026-07-28`); the record says it then.
    pub era: Option<&'static str>,
    /// The workspace called.
    pub workspace: String,
    /// The authenticated caller (always named over HTTP; from the config over stdio).
    pub agent: Option<String>,
    /// The tool as the agent named it (clipped).
    pub tool: String,
    /// SHA-256 of the exact `arguments` bytes (never the arguments themselves).
    pub arguments_sha256: String,
    /// What the workspace's policy said.
    pub verdict: Verdict,
}

impl CallRecord {
    /// A record of a call to `tool` with `arguments` (their bytes exactly as the agent sent them).
    pub fn new(
        via: Via,
        method: &'static str,
        workspace: &str,
        agent: Option<&str>,
        tool: &str,
        arguments: &[u8],
        verdict: Verdict,
    ) -> CallRecord {
        CallRecord {
            via,
            method,
            era: None,
            workspace: workspace.to_owned(),
            agent: agent.map(str::to_owned),
            tool: clip(tool),
            arguments_sha256: argument_hash(arguments),
            verdict,
        }
    }

    /// The event, once the call was answered with `outcome` after `ms` milliseconds.
    pub fn event(self, outcome: impl Into<String>, ms: u128) -> Event {
        Event::Call(Box::new(CallEvent {
            record: self,
            outcome: outcome.into(),
            ms: u64::try_from(ms).unwrap_or(u64::MAX),
        }))
    }
}

/// An event on its way to the trail. A call, the most frequent, keeps its fields and is written
/// straight to the line by the writer, without a JSON tree in between.
#[derive(Debug)]
pub enum Event {
    /// A call and how it ended. Boxed: the audit queue allocates (and touches) all of its slots
    /// up front, each the size of the largest event.
    Call(Box<CallEvent>),
    /// Any other event, as a JSON object with a `type`.
    Other(Value),
}

impl From<Value> for Event {
    fn from(value: Value) -> Event {
        Event::Other(value)
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::Call(call) => call.serialize(serializer),
            Event::Other(value) => value.serialize(serializer),
        }
    }
}

/// A call record with its outcome and latency.
#[derive(Debug)]
pub struct CallEvent {
    record: CallRecord,
    outcome: String,
    ms: u64,
}

impl Serialize for CallEvent {
    /// The keys in sorted order, as a `serde_json` object writes them, so that records keep the
    /// bytes they had when they were built as JSON trees: `delegation` (even `null`) only over
    /// HTTP, `transport` only over stdio, `era` and `method` only when they are not the default.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let record = &self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("agent", &record.agent)?;
        map.serialize_entry("arguments_sha256", &record.arguments_sha256)?;
        if let Via::Http { delegation } = &record.via {
            let delegation = delegation
                .as_ref()
                .map(|(iss, jti)| json!({ "iss": iss, "jti": jti }));
            map.serialize_entry("delegation", &delegation)?;
        }
        if let Some(era) = record.era {
            map.serialize_entry("era", era)?;
        }
        if record.method != "tools/call" {
            map.serialize_entry("method", record.method)?;
        }
        map.serialize_entry("ms", &self.ms)?;
        map.serialize_entry("outcome", &self.outcome)?;
        map.serialize_entry("tool", &record.tool)?;
        if let Via::Stdio = record.via {
            map.serialize_entry("transport", "stdio")?;
        }
        map.serialize_entry("type", "call")?;
        map.serialize_entry("verdict", &record.verdict)?;
        map.serialize_entry("workspace", &record.workspace)?;
        map.end()
    }
}

/// A request a server sent an agent through the gate (`sampling/createMessage`,
/// `elicitation/create`, `roots/list`): which server, to which session's agent, and how it
/// ended (`sent`, or refused with the reason, never the params).
pub fn server_request(server: &str, method: &str, agent: Option<&str>, outcome: &str) -> Value {
    json!({
        "type": "server_request",
        "server": server,
        "method": method,
        "agent": agent,
        "outcome": outcome,
    })
}

/// A delegated `tools/call` refused before it ran: `agent` and `delegation` (`iss`, `jti`) when
/// the token verified, the hash of the whole body (the token binds it), and the reason.
pub fn refused_delegation(
    workspace: &str,
    agent: Option<&str>,
    delegation: Option<(&str, &str)>,
    tool: &str,
    body: &[u8],
    reason: &str,
) -> Value {
    json!({
        "type": "call",
        "workspace": workspace,
        "agent": agent.map(clip),
        "delegation": delegation.map(|(iss, jti)| json!({ "iss": iss, "jti": clip(jti) })),
        "tool": clip(tool),
        "body_sha256": argument_hash(body),
        "outcome": format!("refused: {}", clip(reason)),
    })
}

/// A change through the REST API (`path` clipped to 300 characters).
pub fn admin(method: &str, path: &str, status: u16) -> Value {
    json!({
        "type": "admin",
        "method": method,
        "path": path.chars().take(300).collect::<String>(),
        "status": status,
    })
}

/// A new or decided approval.
pub fn approval(approval: &impl Serialize) -> Value {
    json!({ "type": "approval", "approval": approval })
}

//! The stdio gate's audit tap: each `tools/call` an agent sends and the answer it gets, recorded
//! in the data dir's audit trail (the same chain `serve` writes, under the trail's lock).
//!
//! Owns: the table of calls waiting for their answer (by request id, bounded: beyond it a call is
//! recorded at once with outcome `untracked`) and the record of each: workspace, agent (from the
//! config), tool, the policy's verdict, SHA-256 of the exact argument bytes, outcome, latency.
//! Never: keeps argument values; slows the transport beyond a parse of the lines it looks at
//! (an answer line is parsed only while calls are waiting).

use super::Gate;
use crate::audit::{argument_hash, Audit};
use crate::jsonrpc::{self, Message};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Calls waiting for their answer at most.
const MAX_WAITING: usize = 4096;

/// A call waiting for its answer: kept raw, so the reader only parses the line; names, hash
/// and verdict are worked out when the answer has been written.
struct Waiting {
    params: Option<Box<RawValue>>,
    started: Instant,
}

/// What the stdio transport tells the audit trail.
pub struct Tap {
    audit: Arc<Audit>,
    gate: Arc<Gate>,
    workspace: String,
    agent: Option<String>,
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl Tap {
    /// A tap recording into `audit`.
    pub fn new(audit: Arc<Audit>, gate: Arc<Gate>, workspace: &str, agent: Option<String>) -> Tap {
        Tap {
            audit,
            gate,
            workspace: workspace.to_owned(),
            agent,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// An incoming line: a `tools/call` starts waiting for its answer.
    pub fn request(&self, line: &[u8]) {
        if !contains(line, b"tools/call") {
            return;
        }
        let Ok(Message::Request { id, method, params }) = jsonrpc::parse(line) else {
            return;
        };
        if method != "tools/call" {
            return;
        }
        let waiting = Waiting {
            params,
            started: Instant::now(),
        };
        let mut table = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_WAITING {
            drop(table);
            return self.record(&waiting, "untracked".to_owned());
        }
        table.insert(id.to_string(), waiting);
    }

    /// An outgoing line, once written: the answer to a waiting call is recorded with its
    /// outcome (after the write, so the agent never waits for the record).
    pub fn answer(&self, line: &[u8]) {
        if self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return;
        }
        let Ok(Message::Response { id, .. }) = jsonrpc::parse(line) else {
            return;
        };
        let done = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id.to_string());
        if let Some(waiting) = done {
            self.record(&waiting, jsonrpc::outcome_label(line));
        }
    }

    fn record(&self, call: &Waiting, outcome: String) {
        let ms = call.started.elapsed().as_millis();
        let params: BTreeMap<String, Box<RawValue>> = call
            .params
            .as_ref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let tool: String = params
            .get("name")
            .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let arguments = argument_hash(params.get("arguments").map_or("", |a| a.get()).as_bytes());
        self.audit.record(serde_json::json!({
            "type": "call",
            "transport": "stdio",
            "workspace": self.workspace,
            "agent": self.agent,
            "verdict": self.gate.verdict(&tool, self.agent.as_deref()),
            "tool": tool,
            "arguments_sha256": arguments,
            "outcome": outcome,
            "ms": ms,
        }));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

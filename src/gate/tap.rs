//! The stdio gate's audit tap: each `tools/call` an agent sends and the answer it gets, recorded
//! in the data dir's audit trail (the same chain `serve` writes, under the trail's lock).
//!
//! Owns: the table of calls waiting for their answer (by request id, bounded: beyond it a call is
//! recorded at once with outcome `untracked`) and the record of each: workspace, agent (from the
//! config), tool, the verdict the gate applied, SHA-256 of the exact argument bytes, outcome,
//! latency (the shape is in [`crate::audit::records`]).
//! Never: keeps argument values past the record; parses an incoming line (the transport parses
//! it once and hands the tap the gate's own [`ToolCall`]; only outgoing lines are parsed here,
//! while calls wait, to find their answers); slows the transport beyond a copy of the call's
//! arguments (the hash is taken when the answer has been written).

use super::{Gate, ToolCall, VerdictSlot};
use crate::audit::records::{CallRecord, Via};
use crate::audit::Audit;
use crate::jsonrpc::{self, Id, Message};
use crate::thread::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Calls waiting for their answer at most.
const MAX_WAITING: usize = 4096;

/// A call waiting for its answer: the hash and the record are made when the answer has been
/// written, so the reader only copies.
struct Waiting {
    method: &'static str,
    /// A 2026-07-28 request.
    modern: bool,
    tool: String,
    arguments: String,
    verdict: VerdictSlot,
    started: Instant,
}

/// What the stdio transport tells the audit trail.
pub(crate) struct Tap {
    audit: Arc<Audit>,
    gate: Arc<Gate>,
    workspace: String,
    agent: Option<String>,
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl Tap {
    /// A tap recording into `audit`.
    pub(crate) fn new(
        audit: Arc<Audit>,
        gate: Arc<Gate>,
        workspace: &str,
        agent: Option<String>,
    ) -> Tap {
        Tap {
            audit,
            gate,
            workspace: workspace.to_owned(),
            agent,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// An incoming call (`modern`: of the 2026-07-28 era): it starts waiting for its answer.
    pub(crate) fn request(&self, id: &Id, call: &ToolCall, modern: bool) {
        let waiting = Waiting {
            method: call.method(),
            modern,
            tool: call.tool().to_owned(),
            arguments: call.arguments().to_owned(),
            verdict: call.verdict_slot(),
            started: Instant::now(),
        };
        let mut table = lock(&self.waiting);
        if table.len() >= MAX_WAITING {
            drop(table);
            return self.record(&waiting, "untracked");
        }
        table.insert(id.to_string(), waiting);
    }

    /// An outgoing line, once written: the answer to a waiting call is recorded with its
    /// outcome (after the write, so the agent never waits for the record).
    pub(crate) fn answer(&self, line: &[u8]) {
        if lock(&self.waiting).is_empty() {
            return;
        }
        // One shallow read for the id and the outcome; the full parse only for what it cannot
        // tell (a response whose result is not an object, say).
        let (id, outcome) = match jsonrpc::answer_of(line) {
            Some(answer) => answer,
            None => match jsonrpc::parse(line) {
                Ok(Message::Response { id, .. }) => (id, jsonrpc::outcome_label(line)),
                _ => return,
            },
        };
        let done = lock(&self.waiting).remove(&id.to_string());
        if let Some(waiting) = done {
            self.record(&waiting, &outcome);
        }
    }

    fn record(&self, call: &Waiting, outcome: &str) {
        let ms = call.started.elapsed().as_millis();
        // The verdict the gate applied; one it never decided (the call was refused before
        // routing, or is recorded before the gate saw it) is the policy's as it stands now.
        let verdict = call.verdict.get().copied().unwrap_or_else(|| {
            let subject = self.gate.subject_of(call.method, &call.tool);
            self.gate.verdict(&subject, self.agent.as_deref())
        });
        let mut record = CallRecord::new(
            Via::Stdio,
            call.method,
            &self.workspace,
            self.agent.as_deref(),
            &call.tool,
            call.arguments.as_bytes(),
            verdict,
        );
        if call.modern {
            record.era = Some(crate::mcp::MODERN_VERSION);
        }
        self.audit.record(record.event(outcome, ms));
    }
}

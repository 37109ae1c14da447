//! A `tools/call` over HTTP from its parse to its record: what the audit trail and the call
//! metrics keep of it once it is answered.
//!
//! Owns: [`CallInFlight`] (the caller, the delegation, the tool, the hash of the argument bytes
//! taken before the call is handed to the gate, and the gate's verdict slot) and its ending:
//! one audit record (shape in [`crate::audit::records`]) and one count in the metrics.
//! Never: keeps argument values; decides a verdict (the gate does; a call the gate never decided,
//! refused before routing or still held at its deadline, is recorded with the policy's verdict
//! as it stands then).

use super::metrics::Metrics;
use crate::audit::records::{argument_hash, clip, CallRecord, Via};
use crate::audit::Audit;
use crate::gate::{Gate, ToolCall, VerdictSlot};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call on its way, to be recorded when answered.
pub(super) struct CallInFlight {
    workspace: String,
    agent: String,
    delegation: Option<(String, String)>,
    method: &'static str,
    /// `Some("2026-07-28")` for a request of that era.
    era: Option<&'static str>,
    tool: String,
    arguments_sha256: String,
    verdict: VerdictSlot,
    gate: Arc<Gate>,
    started: Instant,
}

impl CallInFlight {
    /// `call` of `agent` (delegated by `delegation`'s `iss` and `jti`), about to be handed to
    /// `gate`; its latency counts from now.
    pub(super) fn start(
        workspace: &str,
        agent: &str,
        delegation: Option<(String, String)>,
        call: &ToolCall,
        gate: &Arc<Gate>,
    ) -> CallInFlight {
        CallInFlight {
            workspace: workspace.to_owned(),
            agent: agent.to_owned(),
            delegation,
            method: call.method(),
            era: None,
            tool: clip(call.tool()),
            arguments_sha256: argument_hash(call.arguments().as_bytes()),
            verdict: call.verdict_slot(),
            gate: Arc::clone(gate),
            started: Instant::now(),
        }
    }

    /// The same call, of the 2026-07-28 era (its record says so).
    pub(super) fn modern(mut self) -> CallInFlight {
        self.era = Some(crate::gate::modern::MODERN_VERSION);
        self
    }

    /// When the call was handed on.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// The verdict the gate applied, once it has decided.
    pub(super) fn decided(&self) -> Option<crate::policy::Verdict> {
        self.verdict.get().copied()
    }

    /// Records the call, answered with `outcome`: one audit record and the call metrics.
    pub(super) fn finish(self, audit: Option<&Audit>, metrics: &Metrics, outcome: String) {
        let took: Duration = self.started.elapsed();
        if let Some(audit) = audit {
            let verdict = self.decided().unwrap_or_else(|| {
                let subject = self.gate.subject_of(self.method, &self.tool);
                self.gate.verdict(&subject, Some(&self.agent))
            });
            let record = CallRecord {
                via: Via::Http {
                    delegation: self.delegation,
                },
                method: self.method,
                era: self.era,
                workspace: self.workspace,
                agent: Some(self.agent),
                tool: self.tool,
                arguments_sha256: self.arguments_sha256,
                verdict,
            };
            audit.record(record.event(&outcome, took.as_millis()));
        }
        metrics.call(outcome, took);
    }
}

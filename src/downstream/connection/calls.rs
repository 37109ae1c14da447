//! Agent calls forwarded to the child, and their cancellation.
//!
//! Owns: refusing at once a call the child cannot take now (not ready, `max_in_flight` calls
//! already in flight, stdin backlogged, stdin broken), the `_meta` the child gets (the agent's
//! own, our progress token in place of the agent's, the agent's name for a connection that passes
//! it on), the request line under our own id, and `notifications/cancelled` to the child for a
//! call the agent cancelled or the gate timed out.
//! Never: changes an agent's params other than their `_meta`; waits for room in the child's
//! stdin (a backlogged child gets an error answered instead); answers a cancelled call (the agent
//! is owed nothing).

use super::inflight::{self, PendingKind};
use super::pipes::WriteResult;
use super::{Phase, Worker};
use crate::downstream::{parse_server_request_id, CallRequest};
use crate::jsonrpc::{self, code, Id, SessionId};
use std::time::Instant;

/// The calls a 2026-07-28 child may answer `input_required` (and so may be sent again).
const RESENT: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// What became of an agent's call handed to [`Worker::forward_call`].
pub(super) enum Forwarded {
    /// Written to the child and in flight until this deadline.
    InFlight(Instant),
    /// Answered at once (refused, resumed, or given to the child's questions).
    Answered,
    /// Answered -32002: the child's stdin is broken, for this reason. The child is still to be
    /// failed, which only the connection's thread does (a teardown waits).
    StdinBroken(String),
}

impl Worker {
    /// Forwards an agent's call on the connection's thread; a broken stdin fails the child at
    /// once.
    pub(super) fn on_call(&mut self, req: CallRequest) {
        if let Forwarded::StdinBroken(reason) = self.forward_call(req) {
            self.fail(reason);
        }
    }

    /// Forwards an agent's call, or answers it at once with why not (see [`Forwarded`]); fails
    /// nothing, so a caller's thread may run it (`direct.rs`).
    pub(super) fn forward_call(&mut self, mut req: CallRequest) -> Forwarded {
        if let Some(resume) = req.resume.take() {
            self.on_resume(req, resume);
            return Forwarded::Answered;
        }
        if !self.modern && req.params.contains_key("requestState") {
            // Only a 2026-07-28 child hands out states of its own; this one is no one's.
            req.responder.error(
                code::INVALID_PARAMS,
                "requestState is not one this gate or its server handed out",
            );
            return Forwarded::Answered;
        }
        if let Some(reason) = &self.stdin_broken {
            // Broken under a call written directly; the loop has not failed the child yet.
            let message = format!("server '{}' failed: {reason}", self.cfg.name);
            req.responder.error(code::SERVER_UNAVAILABLE, &message);
            return Forwarded::Answered;
        }
        if self.phase != Phase::Ready {
            let message = format!("server '{}' is {}", self.cfg.name, self.status);
            req.responder.error(code::SERVER_UNAVAILABLE, &message);
            return Forwarded::Answered;
        }
        if self.inflight.is_full(self.settings.max_in_flight) {
            let message = format!(
                "server '{}' already has {} requests in flight",
                self.cfg.name,
                self.inflight.n_agent_calls()
            );
            req.responder.error(code::OVERLOADED, &message);
            return Forwarded::Answered;
        }
        let id = self.inflight.next_id();
        let CallRequest {
            responder,
            method,
            mut params,
            meta,
            progress_token,
            timeout,
            agent,
            client,
            max_result_bytes,
            resume: _,
        } = req;
        let mut meta = meta.unwrap_or_default();
        if !self.cfg.remote {
            meta.remove(crate::mcp::PARAM_META);
        }
        let agent_name = agent.clone();
        let binding = (responder.shape() != crate::jsonrpc::Shape::Legacy
            && RESENT.contains(&method.as_str()))
        .then(|| super::input::binding(&method, &params));
        if let Some(agent) = agent.filter(|_| self.cfg.pass_agent) {
            if let Ok(raw) = serde_json::value::to_raw_value(&agent) {
                meta.insert(crate::mcp::AGENT_META.into(), raw);
            }
        }
        if progress_token.is_some() {
            if let Some(raw) = inflight::progress_token_for_child(id) {
                meta.insert("progressToken".into(), raw);
            }
        }
        if self.modern {
            for (key, value) in super::envelope() {
                if let Ok(raw) = serde_json::value::to_raw_value(&value) {
                    meta.insert(key, raw);
                }
            }
        }
        if !meta.is_empty() {
            if let Ok(raw) = serde_json::value::to_raw_value(&meta) {
                params.insert("_meta".into(), raw);
            }
        }
        let params_text = match serde_json::to_string(&params) {
            Ok(text) => text,
            Err(e) => {
                responder.error(code::INTERNAL_ERROR, &format!("cannot encode params: {e}"));
                return Forwarded::Answered;
            }
        };
        let line = jsonrpc::request_line(&Id::from_u64(id), &method, Some(&params_text));
        match self.pipes.write_line(&line) {
            WriteResult::Written => {
                let kind = PendingKind::Agent {
                    responder,
                    progress_token,
                    client,
                    max_result_bytes,
                    agent: agent_name,
                    binding,
                    resend: (self.modern && RESENT.contains(&method.as_str())).then(|| {
                        inflight::Resend {
                            method: method.clone(),
                            params: params_text.clone(),
                            rounds: 0,
                        }
                    }),
                };
                let deadline = Instant::now() + timeout;
                self.inflight.insert(id, kind, deadline);
                Forwarded::InFlight(deadline)
            }
            WriteResult::Backlogged => {
                let message = format!("server '{}' is not reading its input", self.cfg.name);
                responder.error(code::OVERLOADED, &message);
                Forwarded::Answered
            }
            WriteResult::Broken(reason) => {
                let message = format!("server '{}' failed: {reason}", self.cfg.name);
                responder.error(code::SERVER_UNAVAILABLE, &message);
                Forwarded::StdinBroken(reason)
            }
        }
    }

    /// The agent cancelled its call `id`, or (an id of the gate's) a request of the child's it
    /// was sent: the child is told either way.
    pub(super) fn on_cancel(&mut self, session: SessionId, id: &Id) {
        if let Some(n) = self.inflight.cancel(session, id) {
            self.cancel_downstream(n, "cancelled by the client");
            return;
        }
        // A call between rounds: the child finished its part; the agent's questions go.
        if let Some(asks) = self.rounds.cancel(session, id) {
            for n in asks {
                self.asks.take(n);
            }
            return;
        }
        let ours = parse_server_request_id(id.as_json()).filter(|(c, _)| *c == self.handle.id());
        let ask = ours.and_then(|(_, n)| self.asks.answer(n, session));
        if let Some(ask) = ask.filter(|a| a.round.is_none()) {
            let params = serde_json::json!({
                "requestId": serde_json::from_str::<serde_json::Value>(ask.child_id.as_json())
                    .unwrap_or_default(),
                "reason": "cancelled by the client",
            });
            self.send_notification("notifications/cancelled", &params);
        }
    }

    pub(super) fn cancel_downstream(&mut self, child_id: u64, reason: &str) {
        let params = serde_json::json!({ "requestId": child_id, "reason": reason });
        self.send_notification("notifications/cancelled", &params);
    }
}

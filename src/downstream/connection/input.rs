//! A child's request to a 2026-07-28 agent, which cannot be sent one: the agent's call is
//! answered `input_required` and parked; the agent's retry resumes it.
//!
//! Owns: parking (the call taken out of the calls in flight, the child's request recorded as an
//! ask, the agent answered `{"resultType":"input_required","inputRequests":{KEY:{method,params}},
//! "requestState":"aegis:TOKEN"}` with a random token), resuming (the retry's `inputResponses`
//! written to the child as the answers of its requests, the call put back in flight under the
//! retry's route back, or answered at once when the child answered while it was parked; a
//! request left unanswered is asked again in a new `input_required`), and refusing a retry whose
//! park is unknown, expired or another agent's.
//! Never: sends a request to a 2026-07-28 agent (its era has none); resumes a park for another
//! agent than the one whose call it is.

use super::asks::Ask;
use super::inflight::PendingKind;
use super::parked::Parked;
use super::Worker;
use crate::downstream::{parse_server_request_id, server_request_id, CallRequest, Resume};
use crate::jsonrpc::{self, code, Id, Responder};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Calls of one agent parked at one child at most (one agent cannot take every park).
const MAX_PARKED_PER_AGENT: usize = 16;

/// The prefix of the `requestState` the gate hands out.
pub(crate) const STATE_PREFIX: &str = "aegis:";

impl Worker {
    /// Parks agent call `call` for the child's request `child_id` (`method` with `params`,
    /// cleaned): its agent is answered `input_required`. `Err` with the child's error when the
    /// call cannot be parked.
    pub(super) fn park_for_input(
        &mut self,
        call: u64,
        child_id: &Id,
        method: &str,
        params: Option<&str>,
    ) -> Result<(), (i64, String)> {
        // What cannot be parked is refused before anything changes: the call stays in flight.
        let refusal = if self.parked.is_full() {
            Some("too many calls of this server wait for their agents' input")
        } else if self.parked.of_agent(self.inflight_agent(call)) >= MAX_PARKED_PER_AGENT {
            Some("too many calls of this agent wait for its input")
        } else if !self.inflight_binds(call) {
            Some("the agent's request cannot take input (only a tool call, a prompt or a read can)")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Err((code::OVERLOADED, refusal.into()));
        }
        let Some((kind, _)) = self.inflight.take(call) else {
            return Err((code::INTERNAL_ERROR, "the agent's call is gone".into()));
        };
        let PendingKind::Agent {
            responder,
            progress_token,
            max_result_bytes,
            agent,
            binding,
            ..
        } = kind
        else {
            return Err((code::INTERNAL_ERROR, "the agent's call is gone".into()));
        };
        let deadline = Instant::now() + self.settings.call_timeout;
        let ask = Ask {
            child_id: child_id.clone(),
            session: responder.session(),
            sink: responder.sink().clone(),
            method: method.to_owned(),
            deadline,
            round: None,
            silent: true,
        };
        let Some(n) = self.asks.insert(ask) else {
            responder.error(code::OVERLOADED, "too many requests of this server wait");
            return Err((code::OVERLOADED, "too many requests wait for agents".into()));
        };
        let parked = Parked {
            call,
            session: responder.session(),
            progress_token,
            max_result_bytes,
            agent,
            binding,
            requests: vec![(n, method.to_owned(), params.map(str::to_owned))],
            deadline,
            early: None,
        };
        self.park(parked, responder)
    }

    /// The agent of call `call` in flight.
    fn inflight_agent(&self, call: u64) -> Option<&str> {
        match self.inflight.get(call) {
            Some(PendingKind::Agent { agent, .. }) => agent.as_deref(),
            _ => None,
        }
    }

    /// Whether call `call` in flight has a binding (a modern tool call, prompt or read).
    fn inflight_binds(&self, call: u64) -> bool {
        matches!(
            self.inflight.get(call),
            Some(PendingKind::Agent {
                binding: Some(_),
                ..
            })
        )
    }

    /// Parks `parked` under a new token and answers `responder` with its requests.
    fn park(&mut self, parked: Parked, responder: Responder) -> Result<(), (i64, String)> {
        let Ok(token) = crate::crypto::secret::random_hex(16) else {
            responder.error(code::INTERNAL_ERROR, "no randomness for a request state");
            return Err((code::INTERNAL_ERROR, "no randomness".into()));
        };
        if self.parked.is_full() {
            self.cancel_downstream(parked.call, "too many calls wait for their agents");
            responder.error(
                code::OVERLOADED,
                "too many calls wait for their agents' input",
            );
            return Err((code::OVERLOADED, "too many calls wait for agents".into()));
        }
        let result = self.input_required(&parked, &token);
        self.parked.park(token, parked);
        responder.raw_result(&result);
        Ok(())
    }

    fn input_required(&self, parked: &Parked, token: &str) -> String {
        let mut requests = Map::new();
        for (n, method, params) in &parked.requests {
            let params: Value = params
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or_else(|| json!({}));
            requests.insert(
                server_request_id(self.handle.id(), *n),
                json!({ "method": method, "params": params }),
            );
        }
        json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": format!("{STATE_PREFIX}{token}"),
        })
        .to_string()
    }

    /// A retried call with `resume`: the child gets the agent's answers and the call goes on
    /// under the retry's route back.
    pub(super) fn on_resume(&mut self, req: CallRequest, resume: Resume) {
        let Some(mut parked) = self.parked.take(&resume.token) else {
            return req.responder.error(
                code::INVALID_PARAMS,
                "requestState is unknown or expired: send the request again without it",
            );
        };
        let same_request = parked.binding.as_deref() == Some(&binding(&req.method, &req.params));
        if parked.agent != req.agent || !same_request {
            let token = resume.token.clone();
            let responder = req.responder;
            // Not this agent's, or not this request's: the park stays for its own (its place
            // was just freed).
            self.parked.park(token, parked);
            return responder.error(
                code::INVALID_PARAMS,
                "requestState was handed out for another request or another agent",
            );
        }
        let me = self.handle.id();
        for (key, value) in &resume.responses {
            let Some((conn, n)) = parse_server_request_id(&format!("\"{key}\"")) else {
                continue;
            };
            let ours = conn == me && parked.requests.iter().any(|(m, _, _)| *m == n);
            if !ours {
                continue;
            }
            parked.requests.retain(|(m, _, _)| *m != n);
            if let Some(ask) = self.asks.take(n) {
                self.write_or_fail(&jsonrpc::result_line(&ask.child_id, value.get()));
            }
        }
        if !parked.requests.is_empty() {
            let _ = self.park(parked, req.responder);
            return;
        }
        match parked.early.take() {
            Some(outcome) => self.answer_agent(req.responder, parked.max_result_bytes, outcome),
            None => {
                let kind = PendingKind::Agent {
                    responder: req.responder,
                    progress_token: req.progress_token.or(parked.progress_token),
                    client: req.client,
                    max_result_bytes: parked.max_result_bytes,
                    agent: parked.agent,
                    resend: None,
                    binding: parked.binding,
                };
                self.inflight
                    .insert(parked.call, kind, Instant::now() + req.timeout);
            }
        }
    }
}

/// The resume a retried call's params carry, if its `requestState` is the gate's.
pub(crate) fn resume_of(state: &RawValue, responses: Option<&RawValue>) -> Option<Resume> {
    let state: String = serde_json::from_str(state.get()).ok()?;
    let token = state.strip_prefix(STATE_PREFIX)?.to_owned();
    let responses = responses
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    Some(Resume { token, responses })
}

/// What a call's method and params add up to (its `_meta` aside): SHA-256 over the method and
/// the params in canonical JSON, so a retry that formats them differently still matches.
pub(super) fn binding(
    method: &str,
    params: &std::collections::BTreeMap<String, Box<RawValue>>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut object = serde_json::Map::new();
    for (key, value) in params {
        if key == "_meta" {
            continue;
        }
        let value: Value = serde_json::from_str(value.get()).unwrap_or(Value::Null);
        object.insert(key.clone(), value);
    }
    let canonical = crate::sanitize::canonical_json(&Value::Object(object));
    let digest = Sha256::new()
        .chain_update(method.as_bytes())
        .chain_update(b"\n")
        .chain_update(canonical.as_bytes())
        .finalize();
    crate::hex::encode(&digest)
}

//! A 2026-07-28 child's `input_required` answer to a legacy agent's call: its input requests
//! become requests to that agent, and once it answered them all, the call goes to the child
//! again with `inputResponses` and the child's `requestState`.
//!
//! Owns: [`Rounds`], the calls waiting for their agent's answers (at most [`MAX_ROUNDS`], each
//! until its deadline, each call at most [`MAX_ROUNDS_PER_CALL`] times), what each round
//! collected, and the retry: the call's params with the answers, under a new id of the
//! gate's, the agent's route back kept.
//! Never: sends a request the agent's session did not declare the capability for (the call is
//! answered -32021 instead); lets another session's answer into a round (asks are answered
//! only from the session asked).

use super::asks::Ask;
use super::inflight::{PendingKind, Resend};
use super::Worker;
use crate::downstream::server_request_id;
use crate::jsonrpc::{self, code, Id, Outcome, Responder};
use crate::mcp::ClientCaps;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// Calls of one child waiting for their agents' answers at most.
pub(super) const MAX_ROUNDS: usize = 64;
/// Rounds of one call at most (as the SDK clients bound them).
pub(super) const MAX_ROUNDS_PER_CALL: u32 = 10;

/// A call waiting for its agent's answers.
#[derive(Debug)]
pub(super) struct Round {
    responder: Responder,
    progress_token: Option<Box<RawValue>>,
    client: ClientCaps,
    max_result_bytes: Option<usize>,
    agent: Option<String>,
    resend: Resend,
    state: Option<String>,
    /// The asks not answered yet, by number, with their key in `inputRequests`.
    waiting: HashMap<u64, String>,
    responses: Map<String, Value>,
    deadline: Instant,
}

/// The rounds of one child.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    by_id: HashMap<u64, Round>,
    next: u64,
}

impl Rounds {
    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.by_id.values().map(|r| r.deadline).min()
    }

    /// Ends the round of the agent's request `id` of `session` (the agent cancelled it): its
    /// asks are forgotten (returned); `None` when there was none.
    pub(super) fn cancel(
        &mut self,
        session: crate::jsonrpc::SessionId,
        id: &Id,
    ) -> Option<Vec<u64>> {
        let found = self
            .by_id
            .iter()
            .find(|(_, r)| r.responder.session() == session && r.responder.id() == id)
            .map(|(k, _)| *k)?;
        let round = self.by_id.remove(&found)?;
        Some(round.waiting.into_keys().collect())
    }

    /// The sessions whose calls wait in a round (a request of the child may be theirs).
    pub(super) fn sessions(&self) -> impl Iterator<Item = crate::jsonrpc::SessionId> + '_ {
        self.by_id.values().map(|r| r.responder.session())
    }
}

impl Worker {
    /// A legacy agent's call got `result`, an `input_required` of a 2026-07-28 child: its
    /// requests go to the agent (`Err` gives the kind back when the call cannot take rounds).
    #[allow(clippy::too_many_arguments)] // Reason: the fields of the agent call it continues.
    pub(super) fn start_round(
        &mut self,
        responder: Responder,
        progress_token: Option<Box<RawValue>>,
        client: ClientCaps,
        max_result_bytes: Option<usize>,
        agent: Option<String>,
        mut resend: Resend,
        result: &RawValue,
    ) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InputRequired {
            #[serde(default)]
            input_requests: Map<String, Value>,
            request_state: Option<String>,
        }
        let Ok(asked) = serde_json::from_str::<InputRequired>(result.get()) else {
            return responder.error(
                code::INTERNAL_ERROR,
                "the server sent an invalid input_required",
            );
        };
        resend.rounds += 1;
        if resend.rounds > MAX_ROUNDS_PER_CALL || self.rounds.by_id.len() >= MAX_ROUNDS {
            return responder.error(
                code::OVERLOADED,
                "the server asked for input too many times, or too many calls wait for input",
            );
        }
        let deadline = Instant::now() + self.settings.call_timeout;
        self.rounds.next += 1;
        let round_id = self.rounds.next;
        let mut waiting = HashMap::new();
        for (key, request) in &asked.input_requests {
            let method = request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Err(capability) = client.allows(method) {
                for n in waiting.keys() {
                    self.asks.take(*n);
                }
                let message = format!(
                    "the server needs {capability} from the agent, which did not declare it"
                );
                return responder.error(code::MISSING_CAPABILITY, &message);
            }
            let ask = Ask {
                child_id: Id::from_u64(0),
                session: responder.session(),
                sink: responder.sink().clone(),
                method: method.to_owned(),
                deadline,
                round: None,
                silent: false,
            };
            let Some(n) = self.asks.insert_for_round(ask, round_id) else {
                return responder.error(code::OVERLOADED, "too many requests wait for agents");
            };
            let params = request.get("params").map(Value::to_string);
            let cleaned = params.as_deref().and_then(crate::sanitize::clean_result);
            let params = cleaned.or(params);
            let id = Id::from_string(&server_request_id(self.handle.id(), n));
            responder.notify(jsonrpc::request_line(&id, method, params.as_deref()));
            waiting.insert(n, key.clone());
        }
        let round = Round {
            responder,
            progress_token,
            client,
            max_result_bytes,
            agent,
            resend,
            state: asked.request_state,
            waiting,
            responses: Map::new(),
            deadline,
        };
        if round.waiting.is_empty() {
            // Only a state (the child sheds load): send the call again at once.
            return self.send_again(round);
        }
        self.rounds.by_id.insert(round_id, round);
    }

    /// The agent answered ask `n` of round `round_id`.
    pub(super) fn on_round_answer(&mut self, round_id: u64, n: u64, outcome: Outcome) {
        let Some(round) = self.rounds.by_id.get_mut(&round_id) else {
            return;
        };
        let Some(key) = round.waiting.remove(&n) else {
            return;
        };
        match outcome {
            Outcome::Result(result) => {
                let value = serde_json::from_str(result.get()).unwrap_or(Value::Null);
                round.responses.insert(key, value);
            }
            Outcome::Error(error) => {
                if let Some(round) = self.rounds.by_id.remove(&round_id) {
                    for n in round.waiting.keys() {
                        self.asks.take(*n);
                    }
                    round.responder.raw_error(error.get());
                }
                return;
            }
        }
        if round.waiting.is_empty() {
            if let Some(round) = self.rounds.by_id.remove(&round_id) {
                self.send_again(round);
            }
        }
    }

    /// Sends a round's call to the child again, with the agent's answers and the child's state.
    fn send_again(&mut self, round: Round) {
        let mut params: Map<String, Value> =
            serde_json::from_str(&round.resend.params).unwrap_or_default();
        params.insert("inputResponses".into(), Value::Object(round.responses));
        if let Some(state) = round.state {
            params.insert("requestState".into(), Value::String(state));
        }
        let text = Value::Object(params).to_string();
        let id = self.inflight.next_id();
        let line = jsonrpc::request_line(&Id::from_u64(id), &round.resend.method, Some(&text));
        if let super::pipes::WriteResult::Broken(reason) = self.pipes.write_line(&line) {
            let message = format!("server '{}' failed: {reason}", self.cfg.name);
            round.responder.error(code::SERVER_UNAVAILABLE, &message);
            return self.fail(reason);
        }
        let resend = Resend {
            params: text,
            ..round.resend
        };
        let kind = PendingKind::Agent {
            responder: round.responder,
            progress_token: round.progress_token,
            client: round.client,
            max_result_bytes: round.max_result_bytes,
            agent: round.agent,
            resend: Some(resend),
            binding: None,
        };
        self.inflight
            .insert(id, kind, Instant::now() + self.settings.call_timeout);
    }

    /// Rounds whose agent did not answer in time: the call gets a timeout.
    pub(super) fn expire_rounds(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .rounds
            .by_id
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(round) = self.rounds.by_id.remove(&id) {
                round.responder.error(
                    code::REQUEST_TIMEOUT,
                    "the agent did not answer the server's requests in time",
                );
            }
        }
    }

    /// Every round ends: the child is gone.
    pub(super) fn fail_rounds(&mut self, reason: &str) {
        for (_, round) in self.rounds.by_id.drain() {
            let message = format!("server '{}' failed: {reason}", self.cfg.name);
            round.responder.error(code::SERVER_UNAVAILABLE, &message);
        }
    }
}

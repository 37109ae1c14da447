//! The child's own requests: `ping` answered; `sampling/createMessage`, `elicitation/create` and
//! `roots/list` sent to the agent whose call the child is serving (the call its `progressToken`
//! names, else the only session with calls in flight; refused at once when there is none, when
//! several sessions could be meant, or when that session did not declare the capability or the
//! policy denies it), each recorded in the audit trail; everything else refused at once; an
//! agent's answer taken back to the child under the child's own id, and an agent told when a
//! request it was sent ended without its answer.
//! Never: sends a child's request to a session other than the one whose call it serves, or
//! guesses between sessions; makes the child wait on the gate for a request it refuses.

use super::asks::Ask;
use super::inflight::Caller;
use super::messages::{is_error_object, meta_progress_token};
use super::{Worker, LOG_TARGET};
use crate::downstream::server_request_id;
use crate::jsonrpc::{self, code, Id, Outcome, Sent, Shape};
use crate::mcp::SERVER_REQUESTS;
use crate::sanitize;
use serde_json::value::RawValue;
use std::time::Instant;

/// Why a request of the child's was not sent to an agent: the code and message the child gets,
/// and the agent it was for, when one was found.
type Refused = (i64, String, Option<String>);

impl Worker {
    /// `ping` is answered; a request the gate routes to agents goes to the one whose call the
    /// child serves; everything else is refused at once, so the child never waits on us. An
    /// `initialize` from the child is the gate's own request sent back (no server sends one):
    /// the child is not an MCP server, and fails.
    pub(super) fn answer_child_request(
        &mut self,
        id: &Id,
        method: &str,
        params: Option<&RawValue>,
    ) {
        if method == "initialize" {
            self.fail(
                "is not an MCP server: it sent the gate's own initialize request back (does the \
                 command echo its input?)"
                    .into(),
            );
            return;
        }
        if SERVER_REQUESTS.contains(&method) {
            match self.ask_agent(id, method, params) {
                Ok(agent) => self.record_ask(method, agent.as_deref(), "sent"),
                Err((code, message, agent)) => {
                    log::info!(
                        target: LOG_TARGET,
                        "connection {}: refused the server's {method}: {message}",
                        self.cfg.name
                    );
                    self.record_ask(method, agent.as_deref(), &format!("refused: {message}"));
                    self.write_or_fail(&jsonrpc::error_line(Some(id), code, &message));
                }
            }
            return;
        }
        let line = if method == "ping" {
            jsonrpc::result_line(id, "{}")
        } else {
            let shown: String = method.chars().take(100).collect();
            let message = format!("the gate does not offer {shown:?} to servers");
            jsonrpc::error_line(Some(id), code::METHOD_NOT_FOUND, &message)
        };
        self.write_or_fail(&line);
    }

    /// One record in the audit trail of a request of the child's to an agent.
    fn record_ask(&self, method: &str, agent: Option<&str>, outcome: &str) {
        if let Some(audit) = &self.audit {
            let event =
                crate::audit::records::server_request(&self.cfg.name, method, agent, outcome);
            audit.record(event);
        }
    }

    /// Sends the child's request to the agent whose call it serves, under an id of the gate's;
    /// the agent it went to (or would have), when the transport named it.
    fn ask_agent(
        &mut self,
        child_id: &Id,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Option<String>, Refused> {
        let token = params.and_then(meta_progress_token);
        if token.is_some_and(|t| self.parked.has_call(t)) {
            return Err((
                code::INTERNAL_ERROR,
                "the call this request names waits for its agent's retry; ask again then".into(),
                None,
            ));
        }
        // Calls parked or in a round are in flight too, though not in the table: a request that
        // could be theirs is never given to another session.
        let busy: Vec<u64> = self
            .parked
            .sessions()
            .chain(self.rounds.sessions())
            .collect();
        let caller = match self.inflight.caller_of(token) {
            Caller::One { responder, .. }
                if token.is_none() && busy.iter().any(|s| *s != responder.session()) =>
            {
                Caller::Many
            }
            Caller::None if !busy.is_empty() => Caller::Many,
            other => other,
        };
        let (sink, session, agent) = match caller {
            Caller::None => {
                return Err((
                    code::INTERNAL_ERROR,
                    format!(
                        "no agent request is in flight at this server, so no agent can answer \
                         {method}; the gate sends a server's requests only to the agent whose \
                         request the server is serving"
                    ),
                    None,
                ))
            }
            Caller::Many => {
                return Err((
                    code::INTERNAL_ERROR,
                    format!(
                        "requests of several agents are in flight at this server and nothing \
                         says which one {method} is for; the gate does not guess (send the \
                         request's progressToken in _meta)"
                    ),
                    None,
                ))
            }
            Caller::One {
                call,
                responder,
                client,
                agent,
            } => {
                let agent = agent.map(str::to_owned);
                let modern = responder.shape() != Shape::Legacy;
                if let Err(capability) = client.allows(method) {
                    return Err((
                        code::METHOD_NOT_FOUND,
                        format!(
                            "the agent did not declare the {capability} capability, or the \
                             workspace's policy denies it to this server"
                        ),
                        agent,
                    ));
                }
                if modern {
                    // A 2026-07-28 agent is never sent a request: its call is answered
                    // `input_required` and waits for its retry.
                    let cleaned = params.and_then(|p| sanitize::clean_result(p.get()));
                    let text = cleaned.as_deref().or(params.map(RawValue::get));
                    return match self.park_for_input(call, child_id, method, text) {
                        Ok(()) => Ok(agent),
                        Err((code, message)) => Err((code, message, agent)),
                    };
                }
                (responder.sink().clone(), responder.session(), agent)
            }
        };
        let ask = Ask {
            child_id: child_id.clone(),
            session,
            sink: sink.clone(),
            method: method.to_owned(),
            deadline: Instant::now() + self.settings.call_timeout,
            round: None,
            silent: false,
        };
        let Some(n) = self.asks.insert(ask) else {
            return Err((
                code::OVERLOADED,
                "too many of this server's requests wait for agents".into(),
                agent,
            ));
        };
        let id = server_request_id(self.handle.id(), n);
        let cleaned = params.and_then(|p| sanitize::clean_result(p.get()));
        let params = cleaned.as_deref().or(params.map(RawValue::get));
        let line = jsonrpc::request_line(&Id::from_string(&id), method, params);
        if sink.send(line) != Sent::Queued {
            self.asks.answer(n, session);
            return Err((
                code::OVERLOADED,
                "the agent's session cannot take the request now".into(),
                agent,
            ));
        }
        log::info!(
            target: LOG_TARGET,
            "connection {}: the server's {method} went to session {session} as {id}",
            self.cfg.name
        );
        Ok(agent)
    }

    /// An agent answered the child's request `n`: the child gets it under its own id.
    pub(super) fn on_client_answer(&mut self, session: u64, n: u64, outcome: Outcome) {
        if let Some(round) = self.asks.round_of(n, session) {
            self.asks.answer(n, session);
            return self.on_round_answer(round, n, outcome);
        }
        let Some(ask) = self.asks.answer(n, session) else {
            log::debug!(
                target: LOG_TARGET,
                "connection {}: an answer to no request of this server's (late, or another \
                 session's)",
                self.cfg.name
            );
            return;
        };
        let line = match outcome {
            Outcome::Result(result) => jsonrpc::result_line(&ask.child_id, result.get()),
            Outcome::Error(error) if is_error_object(error.get()) => {
                jsonrpc::raw_error_line(Some(&ask.child_id), error.get())
            }
            Outcome::Error(_) => jsonrpc::error_line(
                Some(&ask.child_id),
                code::INTERNAL_ERROR,
                "the agent sent a malformed error",
            ),
        };
        self.write_or_fail(&line);
    }

    /// Tells the agent that the child's request `n` ended without its answer.
    pub(super) fn tell_agent_cancelled(&self, n: u64, ask: &Ask, reason: &str) {
        if ask.silent {
            return;
        }
        let params = serde_json::json!({
            "requestId": server_request_id(self.handle.id(), n),
            "reason": reason,
        });
        ask.sink.send(jsonrpc::notification_line(
            "notifications/cancelled",
            Some(&params.to_string()),
        ));
    }
}

//! Calls of 2026-07-28 agents that wait for their agent's input: plain data and its
//! bookkeeping.
//!
//! Owns: [`Parked`], a call whose child asked something of the agent (sampling, elicitation,
//! roots) while the agent's request was modern: the agent was answered `input_required` with the
//! child's requests and a `requestState` naming the park, and the child still works on the call;
//! [`ParkedCalls`], those calls by the random token of their `requestState` (at most
//! [`MAX_PARKED`], each until its deadline), and the child's answer to a parked call when it
//! comes before the agent does.
//! Never: does I/O or reads a clock (callers pass `now`); hands a park to another agent than
//! the one that made the call (the caller checks [`Parked::agent`]).

use crate::jsonrpc::Outcome;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Instant;

/// Parked calls of one child at most.
pub(super) const MAX_PARKED: usize = 64;

/// One call that waits for its agent's input.
#[derive(Debug)]
pub(super) struct Parked {
    /// The child's id for the call.
    pub(super) call: u64,
    /// The session of the request that made it.
    pub(super) session: crate::jsonrpc::SessionId,
    /// The agent's own progress token of the call.
    pub(super) progress_token: Option<Box<RawValue>>,
    /// The call's result cap.
    pub(super) max_result_bytes: Option<usize>,
    /// The agent that made the call; only it may resume it.
    pub(super) agent: Option<String>,
    /// What the call's method and params add up to: only a retry of the same request resumes
    /// it.
    pub(super) binding: Option<String>,
    /// The child's requests the agent was sent and has not answered: `(n, method, params)`.
    pub(super) requests: Vec<(u64, String, Option<String>)>,
    /// When the park is given up (the child's call is cancelled).
    pub(super) deadline: Instant,
    /// The child's answer to the call, when it came while the call was parked.
    pub(super) early: Option<Outcome>,
}

/// The parked calls of one child, by the token of their `requestState`.
#[derive(Debug, Default)]
pub(super) struct ParkedCalls {
    map: HashMap<String, Parked>,
}

impl ParkedCalls {
    /// Parked calls of `agent`.
    pub(super) fn of_agent(&self, agent: Option<&str>) -> usize {
        self.map
            .values()
            .filter(|p| p.agent.as_deref() == agent)
            .count()
    }

    /// The sessions whose calls are parked (a request of the child may be theirs).
    pub(super) fn sessions(&self) -> impl Iterator<Item = crate::jsonrpc::SessionId> + '_ {
        self.map.values().map(|p| p.session)
    }

    /// Whether call `call` is parked.
    pub(super) fn has_call(&self, call: u64) -> bool {
        self.map.values().any(|p| p.call == call)
    }

    /// Whether [`MAX_PARKED`] wait already (the caller refuses another).
    pub(super) fn is_full(&self) -> bool {
        self.map.len() >= MAX_PARKED
    }

    /// Parks `parked` under `token` (the caller checked [`ParkedCalls::is_full`]).
    pub(super) fn park(&mut self, token: String, parked: Parked) {
        self.map.insert(token, parked);
    }

    /// Takes out the park named `token`.
    pub(super) fn take(&mut self, token: &str) -> Option<Parked> {
        self.map.remove(token)
    }

    /// Keeps the child's answer to call `call` if that call is parked; false when it is not.
    pub(super) fn answered(&mut self, call: u64, outcome: Outcome) -> bool {
        match self.map.values_mut().find(|p| p.call == call) {
            Some(parked) => {
                parked.early = Some(outcome);
                true
            }
            None => false,
        }
    }

    /// Takes out every park past its deadline.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Parked> {
        let due: Vec<String> = self
            .map
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| t.clone())
            .collect();
        due.iter().filter_map(|t| self.map.remove(t)).collect()
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.map.values().map(|p| p.deadline).min()
    }

    /// Forgets every park (the child is gone; its calls with it).
    pub(super) fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parked(call: u64, deadline: Instant) -> Parked {
        Parked {
            call,
            session: 1,
            progress_token: None,
            max_result_bytes: None,
            agent: Some("agent".into()),
            binding: None,
            requests: vec![(1, "sampling/createMessage".into(), None)],
            deadline,
            early: None,
        }
    }

    #[test]
    fn a_park_is_taken_once_keeps_an_early_answer_and_expires() {
        let now = Instant::now();
        let mut calls = ParkedCalls::default();
        calls.park("t1".into(), parked(7, now));
        calls.park("t2".into(), parked(8, now + Duration::from_secs(5)));
        let raw = RawValue::from_string("{}".into()).unwrap();
        assert!(calls.answered(8, Outcome::Result(raw)));
        assert_eq!(calls.next_deadline(), Some(now));
        assert_eq!(calls.expired(now).len(), 1);
        let t2 = calls.take("t2").unwrap();
        assert!(t2.early.is_some());
        assert!(calls.take("t2").is_none());
        for i in 0..MAX_PARKED {
            assert!(!calls.is_full());
            calls.park(format!("x{i}"), parked(i as u64, now));
        }
        assert!(calls.is_full());
    }
}

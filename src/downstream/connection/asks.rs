//! The child's requests to the client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`) on their way to an agent and back: plain data and its bookkeeping.
//!
//! Owns: [`Asks`], the table of the child's requests an agent has been sent and not answered:
//! the number under which the agent sees each (`downstream::server_request_id`), the child's own
//! id to answer it under, the session it went to (only that session's answer is taken), and its
//! deadline; at most [`MAX_ASKS`] at once.
//! Never: does I/O, reads a clock (the caller passes `now`) or decides where a request goes
//! (`messages.rs` does, from the calls in flight).

use crate::jsonrpc::{Id, SessionId, Sink};
use std::collections::HashMap;
use std::time::Instant;

/// Requests of one child waiting for agents at most; more are refused at once.
pub(super) const MAX_ASKS: usize = 64;
/// Requests of one child waiting for one session at most (one agent cannot take them all).
pub(super) const MAX_ASKS_PER_SESSION: usize = 16;

/// One request of the child, sent to an agent.
#[derive(Debug)]
pub(super) struct Ask {
    /// The child's id for it.
    pub(super) child_id: Id,
    /// The session it went to.
    pub(super) session: SessionId,
    /// Where to tell that session it was cancelled.
    pub(super) sink: Sink,
    /// The method, for logs and the audit trail.
    pub(super) method: String,
    /// When the child gets an error instead of an answer.
    pub(super) deadline: Instant,
    /// The round it belongs to, for a 2026-07-28 child's input request (its answer goes to the
    /// round, not to the child as an answer).
    pub(super) round: Option<u64>,
    /// Sent to a 2026-07-28 agent inside an `input_required`: that era has no cancellation
    /// from server to client, so the agent is never told it ended.
    pub(super) silent: bool,
}

/// The child's requests that wait for an agent.
#[derive(Debug, Default)]
pub(super) struct Asks {
    pending: HashMap<u64, Ask>,
    next: u64,
}

impl Asks {
    /// Records `ask`; `None` when [`MAX_ASKS`] wait already, or [`MAX_ASKS_PER_SESSION`] for
    /// its session.
    pub(super) fn insert(&mut self, ask: Ask) -> Option<u64> {
        let of_session = self
            .pending
            .values()
            .filter(|a| a.session == ask.session)
            .count();
        if self.pending.len() >= MAX_ASKS || of_session >= MAX_ASKS_PER_SESSION {
            return None;
        }
        self.next += 1;
        self.pending.insert(self.next, ask);
        Some(self.next)
    }

    /// Takes out request `n` when `session` is the one it went to; another session's answer
    /// leaves it waiting.
    pub(super) fn answer(&mut self, n: u64, session: SessionId) -> Option<Ask> {
        if self.pending.get(&n)?.session != session {
            return None;
        }
        self.pending.remove(&n)
    }

    /// Records `ask` for round `round`; `None` when [`MAX_ASKS`] wait already.
    pub(super) fn insert_for_round(&mut self, mut ask: Ask, round: u64) -> Option<u64> {
        ask.round = Some(round);
        self.insert(ask)
    }

    /// Takes out request `n`, whichever session it went to (a 2026-07-28 agent answers in a
    /// request of its own; the park it resumes was checked already).
    pub(super) fn take(&mut self, n: u64) -> Option<Ask> {
        self.pending.remove(&n)
    }

    /// The round of request `n` when `session` is the one it went to.
    pub(super) fn round_of(&self, n: u64, session: SessionId) -> Option<u64> {
        self.pending
            .get(&n)
            .filter(|a| a.session == session)
            .and_then(|a| a.round)
    }

    /// Takes out the request the child cancelled (by its own id).
    pub(super) fn cancelled(&mut self, child_id: &Id) -> Option<(u64, Ask)> {
        let n = *self
            .pending
            .iter()
            .find(|(_, a)| a.round.is_none() && a.child_id == *child_id)?
            .0;
        self.pending.remove(&n).map(|a| (n, a))
    }

    /// Takes out every request past its deadline at `now`.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<(u64, Ask)> {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        due.into_iter()
            .filter_map(|n| self.pending.remove(&n).map(|a| (n, a)))
            .collect()
    }

    /// Takes out every request (the child is gone).
    pub(super) fn drain(&mut self) -> Vec<(u64, Ask)> {
        self.pending.drain().collect()
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|a| a.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ask(session: SessionId, child: u64, deadline: Instant) -> Ask {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        Ask {
            child_id: Id::from_u64(child),
            session,
            sink: Sink::new(session, tx),
            method: "sampling/createMessage".into(),
            deadline,
            round: None,
            silent: false,
        }
    }

    #[test]
    fn only_the_session_asked_can_answer_and_only_once() {
        let now = Instant::now();
        let mut asks = Asks::default();
        let n = asks.insert(ask(1, 7, now)).unwrap();
        assert!(asks.answer(n, 2).is_none(), "another session's answer");
        assert_eq!(asks.answer(n, 1).unwrap().child_id, Id::from_u64(7));
        assert!(asks.answer(n, 1).is_none(), "answered once");
    }

    #[test]
    fn the_table_is_bounded_and_expires_by_deadline() {
        let now = Instant::now();
        let mut asks = Asks::default();
        for i in 0..MAX_ASKS as u64 {
            let session = i / MAX_ASKS_PER_SESSION as u64;
            assert!(asks
                .insert(ask(session, i, now + Duration::from_secs(i)))
                .is_some());
        }
        assert!(
            asks.insert(ask(99, 999, now)).is_none(),
            "the table is full"
        );
        asks.drain();
        for i in 0..MAX_ASKS_PER_SESSION as u64 {
            assert!(asks
                .insert(ask(1, i, now + Duration::from_secs(i)))
                .is_some());
        }
        assert!(
            asks.insert(ask(1, 998, now)).is_none(),
            "its session is full"
        );
        assert!(
            asks.insert(ask(2, 998, now)).is_some(),
            "another session is not"
        );
        asks.drain();
        for i in 0..MAX_ASKS as u64 {
            let session = i / MAX_ASKS_PER_SESSION as u64;
            asks.insert(ask(session, i, now + Duration::from_secs(i)));
        }
        assert_eq!(asks.next_deadline(), Some(now));
        assert_eq!(asks.expired(now + Duration::from_secs(1)).len(), 2);
        let (_, cancelled) = asks.cancelled(&Id::from_u64(5)).unwrap();
        assert_eq!(cancelled.child_id, Id::from_u64(5));
        assert_eq!(asks.drain().len(), MAX_ASKS - 3);
    }
}

//! The table of requests in flight to one child: plain data and its bookkeeping.
//!
//! Owns: the ids the gate gives its requests to the child (counting up from 1 for the
//! connection's lifetime; a restart does not reset them), what each id stands for (an agent's
//! call with its route back, or one of the gate's own requests), each entry's deadline, the count
//! of agent calls that `max_in_flight` limits, and the two-way mapping of progress tokens: the
//! child sees our request id as the token, and the agent gets its own token back.
//! Never: does I/O. No pipes, channels, clocks or logs: the caller passes `now` where time
//! matters, and answering a [`Responder`] is the caller's job. The table never answers an agent
//! call itself; it drops one unanswered only in [`InFlight::cancel`], where the agent asked for
//! no answer.

use crate::jsonrpc::{Id, Responder, SessionId};
use crate::mcp::ClientCaps;
use crate::mcp::ListKind;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// What a call to a 2026-07-28 child keeps to be sent again.
#[derive(Debug, Clone)]
pub(super) struct Resend {
    pub(super) method: String,
    /// The params as they were sent (the envelope in their `_meta`).
    pub(super) params: String,
    /// Rounds this call has been through.
    pub(super) rounds: u32,
}

/// What a request in flight to the child stands for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Reason: agent calls are the common entry; a box would cost an allocation per call.
pub(super) enum PendingKind {
    /// An agent's request, forwarded under our own id.
    Agent {
        /// The route back, consumed by the one answer.
        responder: Responder,
        /// The agent's own progress token, restored on each of the child's progress notices.
        progress_token: Option<Box<RawValue>>,
        /// What the child may ask this agent while the call is in flight.
        client: ClientCaps,
        /// A longer result is refused (`resources/read`'s cap).
        max_result_bytes: Option<usize>,
        /// The agent, when the transport named it (for the audit trail).
        agent: Option<String>,
        /// A call to a 2026-07-28 child, kept to be sent again after an `input_required`.
        resend: Option<Resend>,
        /// A 2026-07-28 agent's call: what its method and params add up to, which a park's
        /// `requestState` is bound to (see `input::binding`).
        binding: Option<String>,
    },
    /// The gate's `initialize`.
    Initialize,
    /// The gate's `server/discover` (a 2026-07-28 child).
    Discover,
    /// The gate's `subscriptions/listen` (a 2026-07-28 child): open until the child ends it.
    Listen,
    /// One page of one of the gate's own listings.
    ListPage(ListKind),
    /// A request of the gate's own whose answer is not awaited.
    Quiet,
    /// A heartbeat `ping`.
    Ping,
    /// A heartbeat `tools/list`, for a child that does not implement `ping`.
    Probe,
}

#[derive(Debug)]
struct Pending {
    kind: PendingKind,
    deadline: Instant,
}

/// A progress notification of the child, rewritten for the agent whose call it belongs to.
#[derive(Debug)]
pub(super) struct ProgressRelay<'a> {
    /// The route back to the agent (the call stays in flight).
    pub(super) responder: &'a Responder,
    /// The notification's params, with the agent's own `progressToken` in place of ours.
    pub(super) params: String,
}

/// Whose call a request of the child belongs to.
#[derive(Debug)]
pub(super) enum Caller<'a> {
    /// This call (the child's id for it) of this session, with what it may be asked and the
    /// agent's name.
    One {
        call: u64,
        responder: &'a Responder,
        client: ClientCaps,
        agent: Option<&'a str>,
    },
    /// No agent call is in flight.
    None,
    /// Calls of several sessions are in flight, and nothing tells which one asks.
    Many,
}

/// The requests sent to one child and not yet answered, keyed by the id the child saw.
#[derive(Debug)]
pub(super) struct InFlight {
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// How many entries are agent calls; kept with every insert and removal, so the limit check
    /// does not scan the table.
    n_agent: usize,
}

impl InFlight {
    pub(super) fn new() -> InFlight {
        InFlight {
            pending: HashMap::new(),
            next_id: 1,
            n_agent: 0,
        }
    }

    /// Takes the id for the next request to the child. An id taken but never inserted (the
    /// write failed) is skipped, never handed out again.
    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Records request `id` as sent, due by `deadline`.
    pub(super) fn insert(&mut self, id: u64, kind: PendingKind, deadline: Instant) {
        if matches!(kind, PendingKind::Agent { .. }) {
            self.n_agent += 1;
        }
        self.pending.insert(id, Pending { kind, deadline });
    }

    /// Takes out the entry the child's answer `id` belongs to; `None` for an id the table does
    /// not hold (unknown, or already expired or cancelled: a late answer).
    pub(super) fn remove(&mut self, id: u64) -> Option<PendingKind> {
        let pending = self.pending.remove(&id)?;
        if matches!(pending.kind, PendingKind::Agent { .. }) {
            self.n_agent = self.n_agent.saturating_sub(1);
        }
        Some(pending.kind)
    }

    /// Takes out the agent call with id `id` from `session` and drops it unanswered (the agent
    /// cancelled it, so it is owed nothing). Returns the child's id for it, so the child can be
    /// told; `None` when no such call is in flight. Two sessions may use the same id: only the
    /// session's own call matches.
    pub(super) fn cancel(&mut self, session: SessionId, id: &Id) -> Option<u64> {
        let found = self.pending.iter().find_map(|(n, p)| match &p.kind {
            PendingKind::Agent { responder, .. }
                if responder.session() == session && responder.id() == id =>
            {
                Some(*n)
            }
            _ => None,
        })?;
        self.pending.remove(&found);
        self.n_agent = self.n_agent.saturating_sub(1);
        Some(found)
    }

    /// The ids whose deadline is `now` or earlier, in no particular order. They stay in the
    /// table: the caller takes them out one by one with [`InFlight::remove`], because handling
    /// one may fail the child, and then the rest are answered as failed, not as timed out.
    pub(super) fn expired(&self, now: Instant) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The earliest deadline in the table, for how long the loop may sleep.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Empties the table and hands back the agent calls that were in it: each is still owed an
    /// answer, which the caller gives. The gate's own requests are dropped.
    pub(super) fn take_agent_calls(&mut self) -> Vec<Responder> {
        self.n_agent = 0;
        self.pending
            .drain()
            .filter_map(|(_, pending)| match pending.kind {
                PendingKind::Agent { responder, .. } => Some(responder),
                PendingKind::Initialize
                | PendingKind::Discover
                | PendingKind::Listen
                | PendingKind::ListPage(_)
                | PendingKind::Quiet
                | PendingKind::Ping
                | PendingKind::Probe => None,
            })
            .collect()
    }

    /// Forgets every entry: a new child knows none of these ids. The ids themselves go on
    /// counting. Callers answer the agent calls first ([`InFlight::take_agent_calls`]).
    pub(super) fn clear(&mut self) {
        self.pending.clear();
        self.n_agent = 0;
    }

    /// How many agent calls are in flight (the gate's own requests do not count).
    pub(super) fn n_agent_calls(&self) -> usize {
        self.n_agent
    }

    /// Whether `max` agent calls are in flight already, so the next one must be refused.
    pub(super) fn is_full(&self, max: usize) -> bool {
        self.n_agent >= max
    }

    /// The one agent call in flight that a request of the child can belong to: the child's
    /// `progressToken` when it names one of our calls, else the only session with calls in
    /// flight. Two sessions with calls in flight and no token: nobody (the request is refused,
    /// never guessed).
    pub(super) fn caller_of(&self, progress_token: Option<u64>) -> Caller<'_> {
        if let Some(found) = progress_token
            .and_then(|t| self.pending.get(&t).map(|p| (t, p)))
            .and_then(|(t, p)| agent_call(t, p))
        {
            return found;
        }
        let mut found: Option<Caller<'_>> = None;
        for (n, pending) in &self.pending {
            let Some(candidate) = agent_call(*n, pending) else {
                continue;
            };
            match (&found, &candidate) {
                (Some(Caller::One { responder: a, .. }), Caller::One { responder: b, .. })
                    if a.session() != b.session() =>
                {
                    return Caller::Many
                }
                (Some(_), _) => {}
                (None, _) => found = Some(candidate),
            }
        }
        found.unwrap_or(Caller::None)
    }

    /// What request `id` stands for, left in the table.
    pub(super) fn get(&self, id: u64) -> Option<&PendingKind> {
        self.pending.get(&id).map(|p| &p.kind)
    }

    /// Takes out agent call `id` with its deadline, to be put back later (a call waiting for
    /// its agent's input: the child still works on it).
    pub(super) fn take(&mut self, id: u64) -> Option<(PendingKind, Instant)> {
        let pending = self.pending.remove(&id)?;
        if matches!(pending.kind, PendingKind::Agent { .. }) {
            self.n_agent = self.n_agent.saturating_sub(1);
        }
        Some((pending.kind, pending.deadline))
    }

    /// Rewrites a child's `notifications/progress` params for the agent: the child's token is
    /// our request id (see [`progress_token_for_child`]), which finds the call, and the agent's
    /// own token goes back in. `None` when the params are not an object, the token is not one
    /// of our ids, or that call is not an agent's with a progress token.
    pub(super) fn relay_progress(&self, params: &str) -> Option<ProgressRelay<'_>> {
        let mut params = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(params).ok()?;
        let id = params
            .get("progressToken")
            .and_then(|t| serde_json::from_str::<u64>(t.get()).ok())?;
        let Some(Pending {
            kind:
                PendingKind::Agent {
                    responder,
                    progress_token: Some(token),
                    ..
                },
            ..
        }) = self.pending.get(&id)
        else {
            return None;
        };
        params.insert("progressToken".into(), token.clone());
        let params = serde_json::to_string(&params).ok()?;
        Some(ProgressRelay { responder, params })
    }
}

/// The progress token the child gets for our request `id`: the id itself, a JSON number. It is
/// unique per child, and it finds the request when the child reports progress.
pub(super) fn progress_token_for_child(id: u64) -> Option<Box<RawValue>> {
    RawValue::from_string(id.to_string()).ok()
}

#[cfg(test)]
mod tests;

/// Call `n` as the caller of a child's request, when it is an agent's call.
fn agent_call(n: u64, pending: &Pending) -> Option<Caller<'_>> {
    match &pending.kind {
        PendingKind::Agent {
            responder,
            client,
            agent,
            ..
        } => Some(Caller::One {
            call: n,
            responder,
            client: *client,
            agent: agent.as_deref(),
        }),
        _ => None,
    }
}

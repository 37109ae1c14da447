//! The MCP-over-HTTP session table: one entry per `Mcp-Session-Id`, owned by the agent (and
//! workspace) that created it.
//!
//! Owns: creating a session on `initialize` (a cryptographically random id, the gate's number
//! for it, its queue of list changes subscribed at the workspace's gate), the owner check (one
//! place: a session is found only for the workspace and agent that created it), forgetting
//! sessions idle for [`SESSION_IDLE`], the quotas (in all: 503; per workspace and per agent:
//! 429 naming the quota, so one agent cannot lock every other out), and ending sessions (on `DELETE`, an
//! agent's revocation, a workspace's stop).
//! Never: holds the table's lock while it takes the runtimes lock (the gates are told of ended
//! sessions after the table lock is released); lets one agent find another's session.

use super::http::ApiError;
use super::Api;
use crate::crypto::secret::random_hex;
use crate::gate::Gate;
use crate::jsonrpc::Sink;
use crate::mcp::ClientCaps;
use crate::thread::lock;
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session unused this long is forgotten (clients that vanish without `DELETE` would otherwise
/// fill the table and lock every new agent out).
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Notices kept for a session's GET stream or its next request (list changes, resource
/// updates, log messages); more are dropped.
const NOTES_QUEUE: usize = 64;

/// One MCP session over HTTP.
pub(super) struct HttpSession {
    pub(super) workspace: String,
    pub(super) agent_id: String,
    /// The id the gate knows the session by (cancellations match on it).
    numeric: u64,
    /// `notifications/tools/list_changed` waiting for the session's next request.
    notes: Receiver<Vec<u8>>,
    /// When the session last carried a request.
    last_used: Instant,
    /// What the agent declared at `initialize` it can answer.
    client: ClientCaps,
    /// Whether a GET stream of the session is open (such a session is in use, never idle).
    streaming: Arc<AtomicBool>,
}

impl HttpSession {
    fn is_owned_by(&self, workspace: &str, agent_id: &str) -> bool {
        self.workspace == workspace && self.agent_id == agent_id
    }
}

/// What a message's session is: the gate's number for it, the new `Mcp-Session-Id` on
/// `initialize`, and the notifications waiting for it.
pub(super) struct SessionRef {
    pub(super) numeric: u64,
    pub(super) new_id: Option<String>,
    pub(super) notes: Receiver<Vec<u8>>,
    /// What the agent declared at `initialize` it can answer.
    pub(super) client: ClientCaps,
}

/// A session's GET stream, as the table hands it out.
pub(super) struct StreamRef {
    pub(super) notes: Receiver<Vec<u8>>,
    pub(super) streaming: Arc<AtomicBool>,
}

/// How many sessions may be open at once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Quotas {
    /// In all (`http.max_sessions`).
    pub(super) total: usize,
    /// Per workspace (`http.max_sessions_per_workspace`).
    pub(super) per_workspace: usize,
    /// Per agent of a workspace (`http.max_sessions_per_agent`).
    pub(super) per_agent: usize,
}

/// The table.
pub(super) struct Sessions {
    table: Mutex<HashMap<String, HttpSession>>,
    next_numeric: AtomicU64,
    quotas: Quotas,
}

impl Sessions {
    pub(super) fn new(quotas: Quotas) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            next_numeric: AtomicU64::new(1),
            quotas,
        }
    }

    /// A number for one 2026-07-28 request: the gate's session for that request alone (never
    /// in the table).
    pub(super) fn ephemeral(&self) -> u64 {
        self.next_numeric.fetch_add(1, Ordering::SeqCst)
    }

    /// Open sessions (for the metrics).
    pub(super) fn len(&self) -> usize {
        lock(&self.table).len()
    }

    /// A new session of `agent_id` at `gate` (on `initialize`); idle sessions are forgotten
    /// first, and their gates told.
    pub(super) fn open(
        &self,
        api: &Api,
        workspace: &str,
        agent_id: &str,
        gate: &Gate,
        client: ClientCaps,
        limited: bool,
    ) -> Result<SessionRef, ApiError> {
        let forgotten = forget_idle(&mut lock(&self.table), Instant::now(), SESSION_IDLE);
        if !forgotten.is_empty() {
            log::info!(
                "forgot {} MCP sessions idle for {SESSION_IDLE:?}",
                forgotten.len()
            );
            unsubscribe(api, forgotten);
        }
        let mut table = lock(&self.table);
        check_quotas(&table, &self.quotas, workspace, agent_id)?;
        let id = random_hex(16).map_err(|e| ApiError::new(500, "random", e.to_string()))?;
        let numeric = self.next_numeric.fetch_add(1, Ordering::SeqCst);
        // List changes wait here for the session's GET stream or its next request.
        let (tx, notes) = crossbeam_channel::bounded(NOTES_QUEUE);
        gate.subscribe(Sink::notices(numeric, tx), !limited);
        table.insert(
            id.clone(),
            HttpSession {
                workspace: workspace.to_owned(),
                agent_id: agent_id.to_owned(),
                numeric,
                notes: notes.clone(),
                last_used: Instant::now(),
                streaming: Arc::default(),
                client,
            },
        );
        Ok(SessionRef {
            numeric,
            new_id: Some(id),
            notes,
            client,
        })
    }

    /// The session `id` of this owner, marked used now.
    pub(super) fn resume(
        &self,
        id: &str,
        workspace: &str,
        agent_id: &str,
    ) -> Result<SessionRef, ApiError> {
        let mut table = lock(&self.table);
        match table.get_mut(id) {
            Some(s) if s.is_owned_by(workspace, agent_id) => {
                s.last_used = Instant::now();
                Ok(SessionRef {
                    numeric: s.numeric,
                    new_id: None,
                    notes: s.notes.clone(),
                    client: s.client,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The GET stream's ends of the session `id` of this owner.
    pub(super) fn stream(
        &self,
        id: &str,
        workspace: &str,
        agent_id: &str,
    ) -> Result<StreamRef, ApiError> {
        match lock(&self.table).get(id) {
            Some(s) if s.is_owned_by(workspace, agent_id) => Ok(StreamRef {
                notes: s.notes.clone(),
                streaming: Arc::clone(&s.streaming),
            }),
            _ => Err(unknown()),
        }
    }

    /// Ends the session `id` of this owner (`DELETE`); only its own caller ends a session.
    pub(super) fn end(
        &self,
        api: &Api,
        id: &str,
        workspace: &str,
        agent_id: &str,
    ) -> Result<(), ApiError> {
        let ended = {
            let mut table = lock(&self.table);
            match table.get(id) {
                Some(s) if s.is_owned_by(workspace, agent_id) => table.remove(id),
                _ => None,
            }
        };
        let ended = ended.ok_or_else(unknown)?;
        unsubscribe(api, vec![ended]);
        Ok(())
    }

    /// Takes out the sessions `pick` selects.
    pub(super) fn take(&self, pick: impl Fn(&HttpSession) -> bool) -> Vec<HttpSession> {
        take_sessions(&mut lock(&self.table), pick)
    }
}

/// Refuses a new session over a quota: the global one with 503 (the gate is full), the
/// workspace's and the agent's with 429 naming the quota (that caller should close sessions).
fn check_quotas(
    table: &HashMap<String, HttpSession>,
    quotas: &Quotas,
    workspace: &str,
    agent_id: &str,
) -> Result<(), ApiError> {
    if table.len() >= quotas.total {
        return Err(ApiError::new(
            503,
            "too_many_sessions",
            "too many open sessions",
        ));
    }
    let (mut in_workspace, mut of_agent) = (0, 0);
    for session in table.values().filter(|s| s.workspace == workspace) {
        in_workspace += 1;
        if session.agent_id == agent_id {
            of_agent += 1;
        }
    }
    if of_agent >= quotas.per_agent {
        return Err(ApiError::new(
            429,
            "session_quota",
            format!(
                "this agent has {of_agent} open sessions, its quota \
                 (http.max_sessions_per_agent); end one (DELETE) or wait for one to expire"
            ),
        ));
    }
    if in_workspace >= quotas.per_workspace {
        return Err(ApiError::new(
            429,
            "session_quota",
            format!(
                "workspace {workspace} has {in_workspace} open sessions, its quota \
                 (http.max_sessions_per_workspace)"
            ),
        ));
    }
    Ok(())
}

fn unknown() -> ApiError {
    ApiError::not_found("unknown or ended session")
}

/// Ends the sessions `pick` selects (an agent revoked): the merger stops queueing for them.
pub(super) fn end_sessions(api: &Api, pick: impl Fn(&HttpSession) -> bool) {
    let ended = api.sessions.take(pick);
    unsubscribe(api, ended);
}

/// Tells each ended session's gate to stop queueing list changes for it. Takes the runtimes
/// lock, so call it without the sessions lock held.
fn unsubscribe(api: &Api, ended: Vec<HttpSession>) {
    for session in ended {
        if let Some(runtime) = lock(&api.runtimes).get(&session.workspace) {
            runtime.gate().unsubscribe(session.numeric);
        }
    }
}

/// Takes out the sessions idle longer than `idle` at `now`.
fn forget_idle(
    sessions: &mut HashMap<String, HttpSession>,
    now: Instant,
    idle: Duration,
) -> Vec<HttpSession> {
    take_sessions(sessions, |s| {
        now.saturating_duration_since(s.last_used) >= idle && !s.streaming.load(Ordering::SeqCst)
    })
}

/// Takes out the sessions that `pick` selects.
fn take_sessions(
    sessions: &mut HashMap<String, HttpSession>,
    pick: impl Fn(&HttpSession) -> bool,
) -> Vec<HttpSession> {
    let ids: Vec<String> = sessions
        .iter()
        .filter(|(_, s)| pick(s))
        .map(|(id, _)| id.clone())
        .collect();
    ids.iter().filter_map(|id| sessions.remove(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(last_used: Instant) -> HttpSession {
        HttpSession {
            workspace: "ws".into(),
            agent_id: "agent".into(),
            numeric: 1,
            notes: crossbeam_channel::bounded(1).1,
            last_used,
            streaming: Arc::default(),
            client: ClientCaps::default(),
        }
    }

    #[test]
    fn idle_sessions_are_forgotten_and_recent_ones_kept() {
        let start = Instant::now();
        let idle = Duration::from_secs(60);
        let mut sessions = HashMap::new();
        sessions.insert("old".to_owned(), session(start));
        sessions.insert(
            "recent".to_owned(),
            session(start + Duration::from_secs(50)),
        );
        let now = start + Duration::from_secs(61);
        assert_eq!(forget_idle(&mut sessions, now, idle).len(), 1);
        assert!(sessions.contains_key("recent"));
        assert!(!sessions.contains_key("old"));
        assert!(forget_idle(&mut sessions, now, idle).is_empty());
    }

    const QUOTAS: Quotas = Quotas {
        total: 10,
        per_workspace: 3,
        per_agent: 2,
    };

    #[test]
    fn quotas_refuse_the_agent_over_its_own_and_the_workspace_over_its_own() {
        let mut table = HashMap::new();
        let mut add = |n: usize, ws: &str, agent: &str| {
            let mut s = session(Instant::now());
            s.workspace = ws.into();
            s.agent_id = agent.into();
            table.insert(format!("s{n}"), s);
        };
        add(1, "ws", "a");
        add(2, "ws", "a");
        add(3, "ws", "b");
        let e = check_quotas(&table, &QUOTAS, "ws", "a").unwrap_err();
        assert_eq!((e.status, e.code), (429, "session_quota"));
        assert!(
            e.message.contains("max_sessions_per_agent"),
            "{}",
            e.message
        );
        let e = check_quotas(&table, &QUOTAS, "ws", "c").unwrap_err();
        assert!(
            e.message.contains("max_sessions_per_workspace"),
            "{}",
            e.message
        );
        assert!(check_quotas(&table, &QUOTAS, "other", "a").is_ok());
        let full = Quotas { total: 3, ..QUOTAS };
        assert_eq!(
            check_quotas(&table, &full, "other", "a")
                .unwrap_err()
                .status,
            503
        );
    }

    #[test]
    fn a_session_is_found_only_by_its_own_workspace_and_agent() {
        let sessions = Sessions::new(QUOTAS);
        lock(&sessions.table).insert("s1".to_owned(), session(Instant::now()));
        assert!(sessions.resume("s1", "ws", "agent").is_ok());
        assert!(sessions.resume("s1", "ws", "other").is_err());
        assert!(sessions.resume("s1", "other", "agent").is_err());
        assert!(sessions.stream("s1", "ws", "other").is_err());
        assert!(sessions.stream("s1", "ws", "agent").is_ok());
    }
}

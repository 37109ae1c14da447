//! Approvals: calls that a policy escalated, held until a person approves or denies them, or
//! their time runs out.
//!
//! Owns: the table of held calls (bounded: a call beyond [`Approvals::new`]'s limit is refused at
//! once), each with its record (`id`, workspace, agent, tool, SHA-256 of the exact argument
//! bytes, a redacted preview, `expires_at`, `status`), the release of a held call (approve:
//! exactly the held call goes on; deny or expiry: the agent gets a clear error), a bounded history
//! of decided records, and the `approvals-expiry` thread that expires calls on time.
//! Never: releases a call twice; shows argument values (the preview keeps names, types and
//! lengths only); waits on the agent or the downstream server.
//!
//! Across replicas (`serve --store`), [`shared`] mirrors the table into the shared store and
//! applies the decisions other replicas send for calls held here.
//!
//! Threads: `approvals-expiry` (ticks every second; stopped and joined by [`Approvals::stop`]);
//! with a shared store, `approvals-mirror` and `approvals-handoff` (`shared.rs`).

pub(crate) mod shared;
pub(crate) mod webhooks;

use crate::thread::{self, lock, JoinOnDrop};
use crate::time::unix_now;
use crossbeam_channel::{RecvTimeoutError, Sender};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Decided records kept for `GET /approvals`.
const HISTORY: usize = 1000;
#[cfg(test)]
use crate::policy::DEFAULT_APPROVAL_TIMEOUT as DEFAULT_TIMEOUT;

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Waiting for a person.
    Pending,
    /// Approved: the held call went on.
    Approved,
    /// Denied: the agent was told.
    Denied,
    /// Nobody decided in time: the agent was told.
    Expired,
    /// The agent cancelled it, or its workspace stopped.
    Cancelled,
}

/// What people see of a held call.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Approval {
    /// Random id.
    pub id: String,
    /// The workspace.
    pub workspace: String,
    /// The calling agent (as the transport named it), if known.
    pub agent: Option<String>,
    /// The merged tool name.
    pub tool: String,
    /// SHA-256 (hex) of the exact argument bytes.
    pub arguments_sha256: String,
    /// Argument names with their types and sizes, never their values.
    pub preview: Value,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: after this the call is refused.
    pub expires_at: String,
    /// Where it stands.
    pub status: Status,
    /// Unix seconds of `expires_at`.
    #[serde(skip)]
    pub expires_unix: i64,
    /// Where the policy announces it.
    #[serde(skip)]
    pub webhooks: Vec<String>,
}

/// What a call to hold is.
pub(crate) struct Request<'a> {
    /// The workspace.
    pub workspace: &'a str,
    /// The calling agent, if the transport named one.
    pub agent: Option<&'a str>,
    /// The merged tool name.
    pub tool: &'a str,
    /// The exact argument bytes.
    pub arguments: &'a str,
    /// How long it may wait.
    pub timeout: Duration,
    /// Where to announce it.
    pub webhooks: Vec<String>,
    /// The agent's session and request id (its `notifications/cancelled` names them).
    pub caller: (u64, String),
}

/// How a held call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// Forward exactly the held call.
    Approve,
    /// Tell the agent a person refused.
    Deny,
    /// Tell the agent nobody decided in time.
    Expire,
    /// Tell the agent too many calls wait already, or the gate is stopping (never held).
    Full,
    /// The agent cancelled it: drop it, nothing is owed.
    Cancel,
    /// Its workspace stopped: tell the agent.
    Stopped,
}

/// What a held call does when released: forwards itself or answers the agent.
pub(crate) type ReleaseFn = Box<dyn FnOnce(Release) + Send>;

/// Tells a waiting agent the call is still waiting (a progress notification), if it asked for
/// progress; called every [`KEEPALIVE`].
pub(crate) type KeepaliveFn = Box<dyn Fn(u64) + Send>;

/// How often a waiting agent that sent a progress token hears that its call still waits.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(10);

/// Why a call could not be held, or a decision not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ApprovalError {
    /// As many calls are held as allowed.
    Full,
    /// No approval has this id.
    NotFound,
    /// It was decided already (or expired).
    NotPending(Status),
}

struct Held {
    approval: Approval,
    caller: (u64, String),
    release: ReleaseFn,
    keepalive: Option<KeepaliveFn>,
    /// Keepalives sent so far.
    beats: u64,
    created: std::time::Instant,
}

#[derive(Default)]
struct Table {
    pending: BTreeMap<String, Held>,
    decided: VecDeque<Approval>,
}

/// Notified of every new and every decided approval (webhooks, audit, log).
pub(crate) type Observer = Box<dyn Fn(&Approval) + Send + Sync>;

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Approvals({} held)", lock(&self.table).pending.len())
    }
}

/// The held calls of a gate.
pub(crate) struct Approvals {
    table: Mutex<Table>,
    max_held: usize,
    observer: Observer,
    stop: Mutex<Option<Sender<()>>>,
    expiry: Mutex<Option<JoinOnDrop<()>>>,
    /// Set by [`Approvals::stop`]: nothing more is held.
    closed: std::sync::atomic::AtomicBool,
    /// What this replica shares with the others (`serve --store`); `None` on one node.
    sharing: Mutex<Option<shared::Sharing>>,
}

impl Approvals {
    /// A registry holding at most `max_held` calls, telling `observer` of every change, with
    /// its expiry thread running.
    pub(crate) fn new(max_held: usize, observer: Observer) -> std::io::Result<Arc<Approvals>> {
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let approvals = Arc::new(Approvals {
            table: Mutex::new(Table::default()),
            max_held: max_held.max(1),
            observer,
            stop: Mutex::new(Some(tx)),
            expiry: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            sharing: Mutex::new(None),
        });
        let weak = Arc::downgrade(&approvals);
        let thread = thread::spawn("approvals-expiry", move || loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Err(RecvTimeoutError::Timeout) => match weak.upgrade() {
                    Some(approvals) => {
                        approvals.expire(unix_now());
                        approvals.keep_alive();
                    }
                    None => return,
                },
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
        *lock(&approvals.expiry) = Some(thread);
        Ok(approvals)
    }

    /// Holds a call; its record is returned (and observed).
    pub(crate) fn hold(
        &self,
        request: Request<'_>,
        release: ReleaseFn,
        keepalive: Option<KeepaliveFn>,
    ) -> Result<Approval, ApprovalError> {
        let now = unix_now();
        let timeout = i64::try_from(request.timeout.as_secs()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(timeout);
        let approval = Approval {
            id: format!("apr_{}", random_id()),
            workspace: request.workspace.to_owned(),
            agent: request.agent.map(str::to_owned),
            tool: request.tool.chars().take(200).collect(),
            arguments_sha256: crate::audit::argument_hash(request.arguments.as_bytes()),
            preview: preview(request.arguments),
            created_at: crate::time::format(now).unwrap_or_default(),
            expires_at: crate::time::format(expires).unwrap_or_default(),
            status: Status::Pending,
            expires_unix: expires,
            webhooks: request.webhooks,
        };
        {
            let mut table = lock(&self.table);
            let closed = self.closed.load(std::sync::atomic::Ordering::SeqCst);
            if closed || table.pending.len() >= self.max_held {
                drop(table);
                release(Release::Full);
                return Err(ApprovalError::Full);
            }
            table.pending.insert(
                approval.id.clone(),
                Held {
                    approval: approval.clone(),
                    caller: request.caller,
                    release,
                    keepalive,
                    beats: 0,
                    created: std::time::Instant::now(),
                },
            );
        }
        self.mirror_changed();
        (self.observer)(&approval);
        Ok(approval)
    }

    /// Approves or denies a pending call, and releases it.
    pub(crate) fn decide(&self, id: &str, approve: bool) -> Result<Approval, ApprovalError> {
        let status = if approve {
            Status::Approved
        } else {
            Status::Denied
        };
        let held = {
            let mut table = lock(&self.table);
            match table.pending.remove(id) {
                Some(held) => held,
                None => {
                    let decided = table.decided.iter().find(|a| a.id == id);
                    return Err(decided.map_or(ApprovalError::NotFound, |a| {
                        ApprovalError::NotPending(a.status)
                    }));
                }
            }
        };
        let release = if approve {
            Release::Approve
        } else {
            Release::Deny
        };
        Ok(self.finish(held, status, release))
    }

    /// The record of `id`, pending or decided.
    pub(crate) fn get(&self, id: &str) -> Option<Approval> {
        let table = lock(&self.table);
        match table.pending.get(id) {
            Some(held) => Some(held.approval.clone()),
            None => table.decided.iter().rev().find(|a| a.id == id).cloned(),
        }
    }

    /// The pending records.
    pub(crate) fn pending(&self) -> Vec<Approval> {
        let table = lock(&self.table);
        table.pending.values().map(|h| h.approval.clone()).collect()
    }

    /// Every pending record, then the decided ones, newest first.
    pub(crate) fn list(&self) -> Vec<Approval> {
        let table = lock(&self.table);
        let pending = table.pending.values().map(|h| h.approval.clone());
        pending.chain(table.decided.iter().rev().cloned()).collect()
    }

    /// Tells waiting agents that asked for progress that their calls still wait (the
    /// notifications are queued without waiting, so this may run under the table's lock).
    fn keep_alive(&self) {
        self.keep_alive_every(KEEPALIVE);
    }

    fn keep_alive_every(&self, every: Duration) {
        let mut table = lock(&self.table);
        for held in table.pending.values_mut() {
            let Some(keepalive) = &held.keepalive else {
                continue;
            };
            let due = every * u32::try_from(held.beats + 1).unwrap_or(u32::MAX);
            if held.created.elapsed() >= due {
                held.beats += 1;
                keepalive(held.beats);
            }
        }
    }

    /// Expires what is past its time (the expiry thread calls this every second).
    pub(crate) fn expire(&self, now: i64) {
        let due: Vec<Held> = {
            let mut table = lock(&self.table);
            let ids: Vec<String> = table
                .pending
                .values()
                .filter(|h| h.approval.expires_unix <= now)
                .map(|h| h.approval.id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| table.pending.remove(id))
                .collect()
        };
        for held in due {
            self.finish(held, Status::Expired, Release::Expire);
        }
    }

    fn finish(&self, held: Held, status: Status, release: Release) -> Approval {
        let mut approval = held.approval;
        approval.status = status;
        {
            let mut table = lock(&self.table);
            if table.decided.len() >= HISTORY {
                table.decided.pop_front();
            }
            table.decided.push_back(approval.clone());
        }
        (held.release)(release);
        self.mirror_changed();
        (self.observer)(&approval);
        approval
    }

    /// Drops the held call of `caller` (the agent cancelled it); true if there was one.
    pub(crate) fn cancel(&self, caller: &(u64, String)) -> bool {
        self.cancel_where(|h| &h.caller == caller, Release::Cancel) > 0
    }

    /// Drops every held call of `workspace` (it stopped); the agents are told. Returns how many.
    pub(crate) fn cancel_workspace(&self, workspace: &str) -> usize {
        self.cancel_where(|h| h.approval.workspace == workspace, Release::Stopped)
    }

    fn cancel_where(&self, pick: impl Fn(&Held) -> bool, release: Release) -> usize {
        let picked: Vec<Held> = {
            let mut table = lock(&self.table);
            let ids: Vec<String> = table
                .pending
                .values()
                .filter(|h| pick(h))
                .map(|h| h.approval.id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| table.pending.remove(id))
                .collect()
        };
        let n = picked.len();
        for held in picked {
            self.finish(held, Status::Cancelled, release);
        }
        n
    }

    /// Expires every pending call (the agents are told), holds nothing more, and stops the
    /// expiry thread and the sharing with other replicas (what was mirrored is removed).
    pub(crate) fn stop(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        lock(&self.stop).take();
        if let Some(thread) = lock(&self.expiry).take() {
            thread.join();
        }
        self.expire(i64::MAX);
        self.unshare();
    }
}

/// Argument names with their JSON types and sizes, never values: what a person sees first.
fn preview(arguments: &str) -> Value {
    let Ok(Value::Object(args)) = serde_json::from_str::<Value>(arguments) else {
        return Value::Null;
    };
    let shape = |v: &Value| match v {
        Value::String(s) => format!("string, {} chars", s.chars().count()),
        Value::Array(a) => format!("array, {} items", a.len()),
        Value::Object(o) => format!("object, {} keys", o.len()),
        Value::Number(_) => "number".to_owned(),
        Value::Bool(_) => "boolean".to_owned(),
        Value::Null => "null".to_owned(),
    };
    let mut out = Map::new();
    for (name, value) in args.iter().take(50) {
        let name: String = name.chars().take(100).collect();
        out.insert(name, Value::String(shape(value)));
    }
    Value::Object(out)
}

fn random_id() -> String {
    crate::crypto::secret::random_hex(8).unwrap_or_else(|_| format!("{:016x}", unix_now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn registry(max: usize) -> (Arc<Approvals>, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let observer: Observer = Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (Approvals::new(max, observer).unwrap(), seen)
    }

    fn request<'a>(agent: Option<&'a str>, arguments: &'a str, timeout: Duration) -> Request<'a> {
        Request {
            workspace: "ws",
            agent,
            tool: "crm.delete",
            arguments,
            timeout,
            webhooks: Vec::new(),
            caller: (1, agent.unwrap_or("x").to_owned()),
        }
    }

    fn recorder() -> (ReleaseFn, Arc<Mutex<Vec<Release>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        (Box::new(move |r| sink.lock().unwrap().push(r)), got)
    }

    #[test]
    fn a_held_call_is_released_once_by_a_decision_or_by_time() {
        let (approvals, seen) = registry(2);
        let (release, got) = recorder();
        let args = r#"{"account":"secret-number-123","force":true}"#;
        let held = approvals
            .hold(
                request(Some("agent_1"), args, DEFAULT_TIMEOUT),
                release,
                None,
            )
            .unwrap();
        assert_eq!(held.status, Status::Pending);
        assert!(
            !held.preview.to_string().contains("secret-number"),
            "{}",
            held.preview
        );
        assert_eq!(held.preview["account"], "string, 17 chars");
        let approved = approvals.decide(&held.id, true).unwrap();
        assert_eq!(approved.status, Status::Approved);
        assert_eq!(*got.lock().unwrap(), [Release::Approve]);
        assert_eq!(
            approvals.decide(&held.id, false).unwrap_err(),
            ApprovalError::NotPending(Status::Approved)
        );
        assert_eq!(
            approvals.decide("apr_none", true).unwrap_err(),
            ApprovalError::NotFound
        );
        // Time runs out for another.
        let (release, got) = recorder();
        let late = approvals
            .hold(request(None, "{}", Duration::from_secs(0)), release, None)
            .unwrap();
        approvals.expire(late.expires_unix);
        assert_eq!(*got.lock().unwrap(), [Release::Expire]);
        assert_eq!(approvals.list()[0].status, Status::Expired);
        assert_eq!(seen.load(Ordering::SeqCst), 4, "two holds, two endings");
        approvals.stop();
    }

    #[test]
    fn a_cancelled_call_is_dropped_and_never_runs() {
        let (approvals, _) = registry(4);
        let (release, got) = recorder();
        let held = approvals
            .hold(request(Some("a"), "{}", DEFAULT_TIMEOUT), release, None)
            .unwrap();
        assert!(approvals.cancel(&(1, "a".to_owned())));
        assert_eq!(*got.lock().unwrap(), [Release::Cancel]);
        assert_eq!(
            approvals.decide(&held.id, true).unwrap_err(),
            ApprovalError::NotPending(Status::Cancelled)
        );
        let (release, got) = recorder();
        approvals
            .hold(request(None, "{}", DEFAULT_TIMEOUT), release, None)
            .unwrap();
        assert_eq!(approvals.cancel_workspace("ws"), 1);
        assert_eq!(*got.lock().unwrap(), [Release::Stopped]);
        approvals.stop();
        let (release, got) = recorder();
        assert!(approvals
            .hold(request(None, "{}", DEFAULT_TIMEOUT), release, None)
            .is_err());
        assert_eq!(
            *got.lock().unwrap(),
            [Release::Full],
            "nothing is held after stop"
        );
    }

    #[test]
    fn a_waiting_agent_that_asked_for_progress_hears_that_its_call_still_waits() {
        let (approvals, _) = registry(4);
        let beats = Arc::new(Mutex::new(Vec::new()));
        let heard = Arc::clone(&beats);
        let keepalive: KeepaliveFn = Box::new(move |n| heard.lock().unwrap().push(n));
        let (release, _) = recorder();
        approvals
            .hold(
                request(None, "{}", DEFAULT_TIMEOUT),
                release,
                Some(keepalive),
            )
            .unwrap();
        approvals.keep_alive_every(Duration::ZERO);
        approvals.keep_alive_every(Duration::ZERO);
        // Not due yet at the real interval.
        approvals.keep_alive();
        assert_eq!(*beats.lock().unwrap(), [1, 2]);
        approvals.stop();
    }

    #[test]
    fn the_table_is_bounded_and_stop_expires_what_waits() {
        let (approvals, _) = registry(1);
        let (release, got) = recorder();
        approvals
            .hold(request(None, "{}", DEFAULT_TIMEOUT), release, None)
            .unwrap();
        let (second, refused) = recorder();
        assert_eq!(
            approvals
                .hold(request(None, "{}", DEFAULT_TIMEOUT), second, None)
                .unwrap_err(),
            ApprovalError::Full
        );
        assert_eq!(*refused.lock().unwrap(), [Release::Full]);
        approvals.stop();
        assert_eq!(*got.lock().unwrap(), [Release::Expire]);
    }
}

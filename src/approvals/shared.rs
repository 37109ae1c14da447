//! Approvals across replicas (`serve --store`): this replica's held calls mirrored into the
//! shared store, so every replica lists them, and decisions taken on other replicas for calls
//! held here.
//!
//! Owns: the `approvals-mirror` thread, which writes the pending calls of this replica's table
//! to the store when the table changes (and retries every [`TICK`] after a failure), removing
//! those released, and at its first success those an earlier run of this replica left behind;
//! the `approvals-handoff` thread, which takes the decisions other replicas send to this
//! replica's inbox and applies each through [`Approvals::decide`], as a local approve or deny is
//! (audit record, webhook, the agent answered); the replica id ([`Approvals::replica`]), which
//! is this replica's signing key id.
//! Never: holds or releases a call itself (the table does); waits on the store while holding
//! the table's lock; makes a hold or a release wait on the store (the mirror is written by its
//! own thread, woken without waiting).
//!
//! Threads: `approvals-mirror` (woken through a channel of 1; ends when its sender is dropped,
//! after removing what it mirrored) and `approvals-handoff` (waits at most
//! `held::MAX_WAIT` per look at the inbox, or [`TICK`] after a failure, on a stop channel of 1
//! that is never sent, only dropped); both stopped and joined by [`Approvals::stop`].

use super::{Approval, Approvals};
use crate::store::shared::held::HeldCalls;
use crate::store::shared::SharedStore;
use crate::thread::{lock, JoinOnDrop};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often a mirror that failed is written again, and how long the handoff waits after a
/// failure to reach the store.
const TICK: Duration = Duration::from_secs(1);

/// How often the mirror removes the records of calls past their expiry by this long, whoever
/// held them (a replica that died holding calls never removes them itself).
const SWEEP: Duration = Duration::from_secs(60);

/// What this replica shares of its approvals.
pub(super) struct Sharing {
    replica: String,
    held: HeldCalls,
    /// Wakes `approvals-mirror`; dropped to stop it.
    wake: Option<Sender<()>>,
    /// Dropped to stop `approvals-handoff`.
    stop: Option<Sender<()>>,
    threads: Vec<JoinOnDrop<()>>,
}

/// A decision sent to the replica that holds the call.
#[derive(Serialize, Deserialize)]
struct Decision {
    id: String,
    approve: bool,
    /// The replica it was taken on.
    from: String,
}

/// Where a decision for a call this replica does not hold went.
#[derive(Debug)]
pub(crate) enum Remote {
    /// Sent to the replica the record (shown) names, which holds the call.
    HandedOver(Value),
    /// No replica holds a call of that id.
    NotFound,
    /// The holder (named) released it, decided or expired, before the decision reached it.
    Released(String),
    /// The shared store did not answer; the text says why.
    Unreachable(String),
}

impl Approvals {
    /// Shares this table with the other replicas of `store`, as replica `replica` (its signing
    /// key id): starts `approvals-mirror` and `approvals-handoff`.
    pub(crate) fn share(
        self: &Arc<Self>,
        store: SharedStore,
        replica: String,
    ) -> std::io::Result<()> {
        let held = HeldCalls::new(store);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let mut mirror = Mirror {
            approvals: Arc::downgrade(self),
            held: held.clone(),
            replica: replica.clone(),
            mirrored: BTreeSet::new(),
            cleaned: false,
            swept: Instant::now(),
        };
        let mirror = crate::thread::spawn("approvals-mirror", move || mirror.run(&wake_rx))?;
        let weak = Arc::downgrade(self);
        let (inbox, me) = (held.clone(), replica.clone());
        let handoff = crate::thread::spawn("approvals-handoff", move || {
            hand_off(&weak, &inbox, &me, &stop_rx);
        });
        let handoff = match handoff {
            Ok(handoff) => handoff,
            Err(e) => {
                // The mirror ends once its wake sender is gone, and only then can it be joined.
                drop(wake_tx);
                drop(mirror);
                return Err(e);
            }
        };
        *lock(&self.sharing) = Some(Sharing {
            replica,
            held,
            wake: Some(wake_tx),
            stop: Some(stop_tx),
            threads: vec![mirror, handoff],
        });
        // Calls held before sharing began are mirrored too.
        self.mirror_changed();
        Ok(())
    }

    /// This replica's id, when it shares its approvals.
    pub(crate) fn replica(&self) -> Option<String> {
        lock(&self.sharing).as_ref().map(|s| s.replica.clone())
    }

    /// The held calls of the other replicas (records as JSON, each with its `replica`), those
    /// past their expiry or of a replica gone left out; `None` on one node.
    pub(crate) fn remote_held(&self) -> Option<Result<Vec<Value>, String>> {
        let (held, me) = self.shared()?;
        let records = held
            .all()
            .map(|all| all.values().filter_map(|t| parse(t)).collect());
        let still = records.and_then(|records| still_held(&held, &me, records));
        Some(
            still
                .map(|mut out| {
                    out.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
                    out
                })
                .map_err(|e| e.to_string()),
        )
    }

    /// The record of a call another replica holds; `None` on one node.
    pub(crate) fn remote_get(&self, id: &str) -> Option<Result<Option<Value>, String>> {
        let (held, me) = self.shared()?;
        let record = held.get(id).map(|text| text.as_deref().and_then(parse));
        let still = record.and_then(|r| still_held(&held, &me, r.into_iter().collect()));
        Some(still.map(|mut r| r.pop()).map_err(|e| e.to_string()))
    }

    /// Claims the decision of `id`, held here, against a decision another replica may be
    /// sending at the same moment: false when one claimed it first. A store that does not answer
    /// claims nothing and refuses nothing (calls held here are decided here without it).
    pub(crate) fn claim_local(&self, id: &str) -> bool {
        let Some((held, _)) = self.shared() else {
            return true;
        };
        held.claim(id).unwrap_or(true)
    }

    /// Sends a decision for `id`, held by another replica, to that replica; `None` on one node.
    pub(crate) fn decide_remote(&self, id: &str, approve: bool) -> Option<Remote> {
        let (held, me) = self.shared()?;
        let record = match self.remote_get(id)? {
            Ok(Some(record)) => record,
            Ok(None) => return Some(Remote::NotFound),
            Err(e) => return Some(Remote::Unreachable(e)),
        };
        let holder = record["replica"].as_str().unwrap_or_default().to_owned();
        let decision = Decision {
            id: id.to_owned(),
            approve,
            from: me,
        };
        let text = serde_json::to_string(&decision).unwrap_or_default();
        Some(match held.hand_over(id, &holder, &text) {
            Ok(true) => Remote::HandedOver(record),
            Ok(false) => Remote::Released(holder),
            Err(e) => Remote::Unreachable(e.to_string()),
        })
    }

    fn shared(&self) -> Option<(HeldCalls, String)> {
        lock(&self.sharing)
            .as_ref()
            .map(|s| (s.held.clone(), s.replica.clone()))
    }

    /// Tells `approvals-mirror` the table changed (never waits: a wake already queued will do).
    pub(super) fn mirror_changed(&self) {
        if let Some(wake) = lock(&self.sharing).as_ref().and_then(|s| s.wake.as_ref()) {
            let _ = wake.try_send(());
        }
    }

    /// Stops sharing: the mirror removes what it wrote, and both threads are joined.
    pub(super) fn unshare(&self) {
        let Some(mut sharing) = lock(&self.sharing).take() else {
            return;
        };
        sharing.wake.take();
        sharing.stop.take();
        for thread in sharing.threads.drain(..) {
            thread.join();
        }
    }
}

/// A record of the store, if it is one.
fn parse(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok()
}

/// Of `records`, those another replica than `me` holds, not past their expiry, whose replica
/// still looks at its inbox (a replica's held calls end with it).
fn still_held(
    held: &HeldCalls,
    me: &str,
    records: Vec<Value>,
) -> Result<Vec<Value>, crate::store::Error> {
    let now = crate::time::unix_now();
    let replica = |r: &Value| r["replica"].as_str().unwrap_or_default().to_owned();
    let records: Vec<Value> = records
        .into_iter()
        .filter(|r| replica(r) != me)
        .filter(|r| r["expires_unix"].as_i64().is_some_and(|t| t > now))
        .collect();
    let living = held.living(&records.iter().map(replica).collect())?;
    Ok(records
        .into_iter()
        .filter(|r| living.contains(&replica(r)))
        .collect())
}

/// A held call as the shared store keeps it: its record, the replica that holds it, and its
/// expiry in Unix seconds.
fn record(approval: &Approval, replica: &str) -> String {
    let mut value = serde_json::to_value(approval).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("replica".into(), Value::String(replica.to_owned()));
        map.insert("expires_unix".into(), Value::from(approval.expires_unix));
    }
    value.to_string()
}

/// `approvals-mirror`'s side.
struct Mirror {
    approvals: Weak<Approvals>,
    held: HeldCalls,
    replica: String,
    /// The ids written to the store and not yet removed.
    mirrored: BTreeSet<String>,
    /// Whether what an earlier run of this replica left in the store was removed.
    cleaned: bool,
    /// The last sweep of expired records.
    swept: Instant,
}

impl Mirror {
    fn run(&mut self, wake: &Receiver<()>) {
        let mut dirty = true;
        loop {
            match wake.recv_timeout(TICK) {
                Ok(()) => dirty = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if dirty {
                dirty = !self.sync();
            }
            if self.swept.elapsed() >= SWEEP {
                self.sweep();
            }
        }
        // Stopping: the table is empty by now, so this removes everything mirrored.
        self.sync();
    }

    /// Writes the table's pending calls and removes the released ones; true when it worked.
    fn sync(&mut self) -> bool {
        let pending: Vec<Approval> = match self.approvals.upgrade() {
            Some(approvals) => approvals.pending(),
            None => Vec::new(),
        };
        if !self.cleaned {
            match self.held.all() {
                Ok(all) => {
                    let mine = all.iter().filter(|(_, text)| {
                        serde_json::from_str::<Value>(text)
                            .is_ok_and(|r| r["replica"].as_str() == Some(self.replica.as_str()))
                    });
                    self.mirrored.extend(mine.map(|(id, _)| id.clone()));
                    self.cleaned = true;
                }
                Err(e) => return failed(&e),
            }
        }
        let now: BTreeSet<String> = pending.iter().map(|a| a.id.clone()).collect();
        let put: Vec<(String, String)> = pending
            .iter()
            .filter(|a| !self.mirrored.contains(&a.id))
            .map(|a| (a.id.clone(), record(a, &self.replica)))
            .collect();
        let remove: Vec<String> = self.mirrored.difference(&now).cloned().collect();
        match self.held.mirror(&put, &remove) {
            Ok(()) => {
                self.mirrored = now;
                true
            }
            Err(e) => failed(&e),
        }
    }

    /// Removes the records of calls past their expiry by [`SWEEP`] (their holder died).
    fn sweep(&mut self) {
        self.swept = Instant::now();
        let Ok(all) = self.held.all() else { return };
        let limit = crate::time::unix_now().saturating_sub(sweep_secs());
        let stale: Vec<String> = all
            .iter()
            .filter(|(_, text)| {
                parse(text).is_none_or(|r| r["expires_unix"].as_i64().is_none_or(|t| t < limit))
            })
            .map(|(id, _)| id.clone())
            .collect();
        if let Err(e) = self.held.mirror(&[], &stale) {
            failed(&e);
        }
    }
}

fn sweep_secs() -> i64 {
    i64::try_from(SWEEP.as_secs()).unwrap_or(i64::MAX)
}

/// A failed write of the mirror: logged at debug (the store logs when it becomes unreachable);
/// the next tick writes it again.
fn failed(e: &crate::store::Error) -> bool {
    log::debug!("approvals: the shared mirror waits for the store: {e}");
    false
}

/// `approvals-handoff`: applies the decisions sent to `replica` until `stop` is dropped.
fn hand_off(approvals: &Weak<Approvals>, inbox: &HeldCalls, replica: &str, stop: &Receiver<()>) {
    loop {
        match stop.try_recv() {
            Err(TryRecvError::Empty) => {}
            Ok(()) | Err(TryRecvError::Disconnected) => return,
        }
        match inbox.next_decision(replica) {
            Ok(Some(text)) => match approvals.upgrade() {
                Some(approvals) => apply(&approvals, &text),
                None => return,
            },
            Ok(None) => {}
            // The store logs when it becomes unreachable; look again after a while.
            Err(_) => match stop.recv_timeout(TICK) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            },
        }
    }
}

/// Applies one decision from another replica, as a local one is applied.
fn apply(approvals: &Approvals, text: &str) {
    let Ok(decision) = serde_json::from_str::<Decision>(text) else {
        return log::warn!("approvals: a decision in this replica's inbox is not one; dropped");
    };
    let verb = if decision.approve { "approve" } else { "deny" };
    match approvals.decide(&decision.id, decision.approve) {
        Ok(_) => log::info!(
            "approval {}: {verb} taken on replica {} applied here",
            decision.id,
            decision.from
        ),
        Err(e) => log::warn!(
            "approval {}: {verb} taken on replica {} not applied: {e:?}",
            decision.id,
            decision.from
        ),
    }
}

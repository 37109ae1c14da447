//! Replicas: a serve that shares its state with others through a shared store (`--store`)
//! follows their changes.
//!
//! Owns: the `state-watch` thread, which reads the shared document's version every
//! [`POLL`] and, when another replica changed it, takes the new state and makes this replica
//! run what it says ([`Api::reconcile`]): workspaces started and stopped, connections added,
//! restarted when their stored record changed, and removed; policies set; identity checkers
//! rebuilt. What a connection's children were started from is kept in `Api::applied`, so a
//! change is seen whoever made it.
//! Never: holds the store's lock while it waits on the shared store (a slow store must not
//! hold up the requests that read the state in memory); reconciles while a REST change is being
//! made (it takes `changes` first, as they do).

use super::Api;
use crate::store::state::{Connection, IdentityConfig, State};
use crate::thread::{lock, JoinOnDrop};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often a replica reads the shared version: a change made on one replica is applied on the
/// others within this, plus the time to start what it names.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// The running `state-watch` thread; stops and joins when dropped.
pub(crate) struct Watch {
    stop: Option<Sender<()>>,
    thread: Option<JoinOnDrop<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}

impl Api {
    /// Starts following the shared store's changes; `None` when the state is the data dir's.
    pub(crate) fn watch_shared(self: &Arc<Self>) -> std::io::Result<Option<Watch>> {
        if self.shared.is_none() {
            return Ok(None);
        }
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let api: Weak<Api> = Arc::downgrade(self);
        let mut identities = identities_of(lock(&self.store).state());
        let thread = crate::thread::spawn("state-watch", move || loop {
            match rx.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) => match api.upgrade() {
                    Some(api) => api.follow(&mut identities),
                    None => return,
                },
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
        Ok(Some(Watch {
            stop: Some(tx),
            thread: Some(thread),
        }))
    }

    /// One look at the shared version; a newer state is taken and run. So is the state in
    /// memory when a change made here took in other replicas' changes (`take_behind`): its
    /// stamp is the store's then, and only the state tells what is not run yet.
    fn follow(&self, identities: &mut HashMap<String, Option<IdentityConfig>>) {
        let (file, held, behind) = {
            let mut store = lock(&self.store);
            (store.file().clone(), store.stamp(), store.take_behind())
        };
        // Without the store's lock: this waits on the network.
        let read = file.stamp().and_then(|stamp| {
            if stamp == held {
                Ok(None)
            } else {
                file.read_stamped().map(Some)
            }
        });
        let newer = match read {
            Ok(Some((state, stamp))) => {
                let installed = lock(&self.store).install(state.unwrap_or_default(), stamp);
                if installed {
                    log::info!("the shared state changed ({stamp:?}): applying it");
                }
                installed
            }
            Ok(None) => false,
            // Logged by the store when it becomes unreachable; `/readyz` says so meanwhile.
            Err(_) => false,
        };
        if behind && !newer {
            log::info!("a change made here took in other replicas' changes: applying them");
        }
        if newer || behind {
            self.reconcile(identities);
        }
    }

    /// Makes this replica run what the state in memory says.
    pub(super) fn reconcile(&self, identities: &mut HashMap<String, Option<IdentityConfig>>) {
        let _change = lock(&self.changes);
        let state = lock(&self.store).state().clone();
        let running: Vec<String> = lock(&self.runtimes).keys().cloned().collect();
        for ws in &running {
            if !state.workspaces.get(ws).is_some_and(|w| w.active) {
                self.stop_workspace(ws);
                lock(&self.applied).retain(|_, c| &c.workspace_id != ws);
            }
        }
        for (ws, workspace) in state.workspaces.iter().filter(|(_, w)| w.active) {
            if running.contains(ws) {
                self.reconcile_connections(ws, &state);
                let policy = workspace.policy.clone().unwrap_or_default();
                if let Some(runtime) = lock(&self.runtimes).get(ws) {
                    if *runtime.gate().policy() != policy {
                        runtime.gate().set_policy(policy);
                    }
                }
            } else if let Err(e) = self.start_workspace(ws) {
                log::error!("workspace {ws}: cannot start: {}", e.message);
            }
        }
        let now = identities_of(&state);
        for (ws, identity) in &now {
            if identities.get(ws) != Some(identity) {
                self.identity.forget(ws);
            }
        }
        *identities = now;
    }

    /// Adds, restarts and removes the connections of running workspace `ws` to match `state`.
    fn reconcile_connections(&self, ws: &str, state: &State) {
        let wanted: HashMap<&String, &Connection> = state
            .connections
            .iter()
            .filter(|(_, c)| c.workspace_id == ws && c.enabled)
            .collect();
        let started: Vec<Connection> = lock(&self.applied)
            .values()
            .filter(|c| c.workspace_id == ws)
            .cloned()
            .collect();
        for old in &started {
            if wanted.get(&old.id) != Some(&old) {
                self.tear_down(old);
            }
        }
        for (id, conn) in wanted {
            let same = started.iter().any(|c| &c.id == id && c == conn);
            if !same {
                if let Err(e) = self.start_connection(conn) {
                    log::error!(
                        "connection {} of {ws}: cannot start: {}",
                        conn.name,
                        e.message
                    );
                }
            }
        }
    }
}

/// Each workspace's identity settings, to notice which changed.
fn identities_of(state: &State) -> HashMap<String, Option<IdentityConfig>> {
    state
        .workspaces
        .iter()
        .map(|(id, w)| (id.clone(), w.identity.clone()))
        .collect()
}

//! Replicas: a serve that shares its state with others through a shared store (`--store`)
//! follows their changes.
//!
//! Owns: the `state-watch` thread, which hears of every write from the store (a subscription to
//! its announcements) and reads the shared document's version at least every [`POLL`] (only that
//! while the subscription cannot be had), and, when another replica changed it, takes the new
//! state and makes this replica
//! run what it says ([`Api::reconcile`]): workspaces started and stopped, connections added,
//! restarted when their stored record changed, and removed; policies set; identity checkers
//! rebuilt. What a connection's children were started from is kept in `Api::applied`, so a
//! change is seen whoever made it.
//! Never: holds the store's lock while it waits on the shared store (a slow store must not
//! hold up the requests that read the state in memory); reconciles while a REST change is being
//! made (it takes `changes` first, as they do).

use super::Api;
use crate::store::shared::document::CHANGED;
use crate::store::shared::SharedStore;
use crate::store::state::{Connection, IdentityConfig, Stamp, State};
use crate::thread::{lock, JoinOnDrop};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
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
        let mut applied = {
            let store = lock(&self.store);
            Applied {
                stamp: store.stamp(),
                identities: identities_of(store.state()),
            }
        };
        let store = self.shared.clone();
        let thread = crate::thread::spawn("state-watch", move || {
            let Some(store) = store else { return };
            let follow = |applied: &mut Applied| match api.upgrade() {
                Some(api) => {
                    api.follow(applied);
                    true
                }
                None => false,
            };
            loop {
                // Told of every write by the store, looking at the version at least every POLL;
                // while that cannot be, only looking every POLL.
                let listened = store.reachable() && listen(&store, &rx, &mut applied, &follow);
                if listened {
                    return;
                }
                match rx.recv_timeout(POLL) {
                    Err(RecvTimeoutError::Timeout) if follow(&mut applied) => {}
                    _ => return,
                }
            }
        })?;
        Ok(Some(Watch {
            stop: Some(tx),
            thread: Some(thread),
        }))
    }

    /// One look at the shared version; a newer state is taken; a state not run yet is run.
    /// A state this replica wrote itself is run too: its write may have carried another
    /// replica's change that this one had not taken yet (running it again changes nothing).
    fn follow(&self, applied: &mut Applied) {
        let (file, held) = {
            let store = lock(&self.store);
            (store.file().clone(), store.stamp())
        };
        // Without the store's lock: this waits on the network.
        let read = file.stamp().and_then(|stamp| {
            if stamp == held {
                Ok(None)
            } else {
                file.read_stamped().map(Some)
            }
        });
        match read {
            Ok(Some((state, stamp))) => {
                if lock(&self.store).install(state.unwrap_or_default(), stamp, held) {
                    log::info!("another replica changed the shared state ({stamp:?})");
                }
            }
            Ok(None) => {
                lock(&self.store).confirm(held, held);
            }
            // Logged by the store when it becomes unreachable; `/readyz` says so meanwhile.
            Err(_) => return,
        }
        if lock(&self.store).stamp() != applied.stamp {
            self.reconcile(applied);
        }
    }

    /// Makes this replica run what the state in memory says.
    fn reconcile(&self, applied: &mut Applied) {
        let _change = lock(&self.changes);
        let (state, stamp) = {
            let store = lock(&self.store);
            (store.state().clone(), store.stamp())
        };
        log::debug!("applying the shared state ({stamp:?})");
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
            if applied.identities.get(ws) != Some(identity) {
                self.identity.forget(ws);
            }
        }
        *applied = Applied {
            stamp,
            identities: now,
        };
        log::debug!("the shared state ({stamp:?}) runs");
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
            let same = wanted
                .get(&old.id)
                .is_some_and(|now| self.same_launch(old, now));
            if !same {
                self.tear_down(old);
            }
        }
        for (id, conn) in wanted {
            let same = started
                .iter()
                .any(|c| &c.id == id && self.same_launch(c, conn));
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

impl Api {
    /// Whether two records of a connection start the same child: equal, or equal once their
    /// secrets are decrypted (`rotate-key --store` re-encrypts every secret: new ciphertext, the
    /// same values, and no child should restart for it).
    fn same_launch(&self, a: &Connection, b: &Connection) -> bool {
        if a == b {
            return true;
        }
        matches!((self.plain(a), self.plain(b)), (Some(a), Some(b)) if a == b)
    }

    /// `conn` with its env and header values decrypted; `None` when one does not decrypt.
    fn plain(&self, conn: &Connection) -> Option<Connection> {
        let mut conn = conn.clone();
        let binding = crate::crypto::binding(&conn.workspace_id, &conn.name);
        for (var, value) in conn.env.iter_mut() {
            *value = self.keyring.decrypt_secret(&binding, var, value).ok()?;
        }
        if let Some(remote) = conn.remote.as_mut() {
            for (name, value) in remote.headers.iter_mut() {
                let var = format!("header:{name}");
                *value = self.keyring.decrypt_secret(&binding, &var, value).ok()?;
            }
        }
        Some(conn)
    }
}

/// Follows the store's announcements of its writes ([`CHANGED`]) on a connection of its own,
/// and the version every [`POLL`] without one; true when told to stop, false when the
/// subscription failed (the store is away: the caller polls).
fn listen(
    store: &SharedStore,
    stop: &Receiver<()>,
    applied: &mut Applied,
    follow: &impl Fn(&mut Applied) -> bool,
) -> bool {
    let Ok(mut con) = store.dedicated() else {
        return false;
    };
    let mut subscriber = con.as_pubsub();
    let subscribed = subscriber
        .subscribe(CHANGED)
        .and_then(|()| subscriber.set_read_timeout(Some(POLL)));
    if let Err(e) = subscribed {
        log::warn!("cannot follow the shared store's changes as they are made ({e}): polling");
        return false;
    }
    loop {
        if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
            return true;
        }
        match subscriber.get_message() {
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => {
                log::warn!("the shared store's announcements stopped ({e}): polling");
                return false;
            }
        }
        if !follow(applied) {
            return true;
        }
    }
}

/// What `state-watch` ran last: the state's stamp, and each workspace's identity settings (to
/// notice which changed; the checkers themselves are built on first use).
struct Applied {
    stamp: Stamp,
    identities: HashMap<String, Option<IdentityConfig>>,
}

/// Each workspace's identity settings, to notice which changed.
fn identities_of(state: &State) -> HashMap<String, Option<IdentityConfig>> {
    state
        .workspaces
        .iter()
        .map(|(id, w)| (id.clone(), w.identity.clone()))
        .collect()
}

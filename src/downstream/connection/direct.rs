//! The connection's loop, and a call forwarded by the thread that holds it.
//!
//! Owns: [`run`], the `conn-<name>` thread's loop: it sleeps in `poll` holding no lock, and
//! handles what woke it holding the [`Worker`]'s; and [`Direct`], through which the thread that
//! holds an agent's call (the stdin reader, an HTTP worker) writes it to the child itself when
//! the worker's lock is free, instead of queueing it and waking the loop: one thread hop and one
//! wake fewer per call. The answer still comes back through the loop.
//! Never: waits for the worker's lock on a caller's thread (`try_lock`; a busy worker means the
//! queue), overtakes a queued command (the queue must be empty), or tears a child down there (a
//! broken stdin is left to the loop, woken for it).
//!
//! Lock order: the worker, then its `Poll` (the loop takes the `Poll` alone while it sleeps,
//! never the worker's lock with it).

use super::calls::Forwarded;
use super::Worker;
use crate::downstream::CallRequest;
use crate::thread::lock;
use mio::Events;
use std::sync::{Arc, Mutex, TryLockError, Weak};
use std::time::Instant;

/// Runs the connection until the manager asks it to stop, then stops its child.
pub(crate) fn run(worker: Arc<Mutex<Worker>>) {
    let poll = Arc::clone(&lock(&worker).poll);
    let mut events = Events::with_capacity(64);
    lock(&worker).start_child();
    loop {
        let timeout = {
            let mut w = lock(&worker);
            if w.handle.stop_requested() {
                break;
            }
            let now = Instant::now();
            w.asleep_until = w.next_wakeup(now);
            w.asleep_until.map(|t| t.saturating_duration_since(now))
        };
        // Bound first: the Poll's lock is let go before the worker's is taken (lock order).
        let polled = lock(&poll).poll(&mut events, timeout);
        if let Err(e) = polled {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("connection {}: poll failed: {e}", lock(&worker).cfg.name);
            break;
        }
        let mut w = lock(&worker);
        // Awake: a call forwarded from now on needs no wake for its deadline.
        w.asleep_until = Some(Instant::now());
        if !w.on_wake(&events) {
            break;
        }
    }
    lock(&worker).stop();
}

/// A way to the worker for the threads that hold agents' calls; it does not keep the worker
/// alive (its loop does).
#[derive(Clone)]
pub(crate) struct Direct(Weak<Mutex<Worker>>);

impl Direct {
    pub(crate) fn to(worker: &Arc<Mutex<Worker>>) -> Direct {
        Direct(Arc::downgrade(worker))
    }

    /// Forwards `req` to the child from this thread when the worker is free and nothing is
    /// queued before it; hands it back otherwise, to be queued.
    pub(crate) fn call(&self, req: Box<CallRequest>) -> Result<(), Box<CallRequest>> {
        let Some(worker) = self.0.upgrade() else {
            return Err(req);
        };
        let mut w = match worker.try_lock() {
            Ok(w) => w,
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return Err(req),
        };
        w.call_now(req)
    }
}

impl Worker {
    /// The call forwarded at once (or refused at once, as the loop would), when it is plain: no
    /// 2026-07-28 resumption, no command queued before it, no stdin broken and not yet failed.
    fn call_now(&mut self, req: Box<CallRequest>) -> Result<(), Box<CallRequest>> {
        if req.resume.is_some()
            || !self.rx.is_empty()
            || self.stdin_broken.is_some()
            || self.inflight.n_agent_calls() > 0
        {
            return Err(req);
        }
        let wake = match self.forward_call(*req) {
            Forwarded::InFlight(deadline) => self.asleep_until.is_none_or(|t| deadline < t),
            Forwarded::Answered => false,
            Forwarded::StdinBroken(reason) => {
                self.stdin_broken = Some(reason);
                true
            }
        };
        if wake {
            self.handle.wake();
        }
        Ok(())
    }
}

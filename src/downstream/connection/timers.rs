//! The connection's timers: what is due when the loop wakes (deadlines of requests, of the
//! child's questions to agents and of parked calls, a deferred listen or listing, the
//! heartbeat, the next start of a child that failed), and the heartbeat itself.
//!
//! Owns: what a missed deadline does (the agent gets a timeout error and the child a
//! cancellation; a missed handshake or listing fails the child; `heartbeat_misses` missed
//! heartbeats in a row fail it) and when the child counts as alive again.
//! Never: waits, or decides when to wake (the loop's `next_wakeup` does; it passes `now`).

use super::inflight::PendingKind;
use super::{Heartbeat, Phase, Worker};
use crate::jsonrpc::{self, code};
use std::time::{Instant, SystemTime};

impl Worker {
    pub(super) fn on_timers(&mut self, now: Instant) {
        self.expire_pending(now);
        self.expire_asks(now);
        self.expire_parked(now);
        if self.relisten_at.is_some_and(|at| at <= now) {
            self.relisten_at = None;
            if self.phase == Phase::Ready && self.listens {
                self.open_listen();
            }
        }
        self.expire_rounds(now);
        if self.phase == Phase::Ready {
            for kind in self.lists.due(now) {
                self.start_listing(kind);
            }
        }
        match self.phase {
            Phase::Ready if now >= self.next_heartbeat => self.beat(now),
            Phase::Waiting { until } if now >= until => self.start_child(),
            Phase::Ready | Phase::Waiting { .. } | Phase::Initializing | Phase::Stopped => {}
        }
    }

    fn expire_pending(&mut self, now: Instant) {
        for n in self.inflight.expired(now) {
            let Some(kind) = self.inflight.remove(n) else {
                continue;
            };
            match kind {
                PendingKind::Agent { responder, .. } => {
                    let message = format!(
                        "server '{}' did not answer within {} ms",
                        self.cfg.name,
                        self.settings.call_timeout.as_millis()
                    );
                    responder.error(code::REQUEST_TIMEOUT, &message);
                    self.cancel_downstream(n, "timed out in the gate");
                }
                PendingKind::Initialize => {
                    self.fail("did not answer initialize in time".into());
                    return;
                }
                PendingKind::Discover => {
                    self.fail("did not answer server/discover in time".into());
                    return;
                }
                PendingKind::Listen => {
                    if self.listens {
                        self.open_listen();
                    }
                }
                PendingKind::ListPage(kind) => {
                    self.fail(format!("did not answer {} in time", kind.method()));
                    return;
                }
                PendingKind::Quiet => {}
                PendingKind::Ping | PendingKind::Probe => {
                    self.misses += 1;
                    if self.misses >= self.settings.heartbeat_misses {
                        let reason = format!("missed {} heartbeats", self.misses);
                        self.fail(reason);
                        return;
                    }
                }
            }
        }
    }

    /// The child's requests no agent answered in time: the child gets an error, the agent a
    /// cancellation.
    fn expire_asks(&mut self, now: Instant) {
        for (n, ask) in self.asks.expired(now) {
            let message = format!(
                "the agent did not answer {} within {} ms",
                ask.method,
                self.settings.call_timeout.as_millis()
            );
            self.tell_agent_cancelled(n, &ask, "timed out in the gate");
            // A round's ask is the gate's own question: the child asked nothing to answer.
            if ask.round.is_none() {
                let line =
                    jsonrpc::error_line(Some(&ask.child_id), code::REQUEST_TIMEOUT, &message);
                self.write_or_fail(&line);
            }
        }
    }

    /// Parked calls whose agent did not come back in time: the child's call is cancelled.
    fn expire_parked(&mut self, now: Instant) {
        for parked in self.parked.expired(now) {
            self.cancel_downstream(parked.call, "the agent did not answer the server's request");
        }
    }

    fn beat(&mut self, now: Instant) {
        if let Some(status) = self.pipes.try_exit() {
            self.fail(format!("exited ({status})"));
            return;
        }
        match self.heartbeat {
            Heartbeat::Ping => {
                self.next_heartbeat = now + self.settings.heartbeat_interval;
                let timeout = self.settings.heartbeat_interval;
                self.send_internal("ping", None, PendingKind::Ping, timeout);
            }
            Heartbeat::Probe => {
                self.next_heartbeat = now + self.settings.probe_interval;
                let timeout = self.settings.list_timeout;
                self.send_internal("tools/list", None, PendingKind::Probe, timeout);
            }
        }
    }

    /// The child answered a heartbeat (or the handshake): it is alive.
    pub(super) fn on_heartbeat(&mut self) {
        self.misses = 0;
        self.handle
            .update(|s| s.last_heartbeat = Some(SystemTime::now()));
    }
}

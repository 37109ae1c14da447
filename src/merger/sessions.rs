//! The agent sessions the merger tells things: list changes, resource updates, log messages.
//!
//! Owns: [`Sessions`]: each session's sink, the resource URIs it subscribed to (at most
//! [`MAX_URIS_PER_SESSION`]), the log level it asked for, and which sessions each notice goes
//! to: a `list_changed` to all; `notifications/resources/updated` only to the sessions
//! subscribed to that URI; a log message to every session whose level it reaches (a session that
//! never set a level gets every message, as it would from the server directly). Also the most
//! verbose level any session asked for, which the gate forwards to its servers.
//! Never: talks to a connection (the merger's state does, with what these methods return); waits
//! on a sink (a full one loses the notice, a closed one loses the session).

use crate::jsonrpc::{Sent, SessionId, Sink};
use crate::mcp::LogLevel;
use std::collections::HashSet;

/// Resource subscriptions one session may hold.
pub(crate) const MAX_URIS_PER_SESSION: usize = 256;

struct Subscriber {
    sink: Sink,
    uris: HashSet<String>,
    level: Option<LogLevel>,
}

/// Every session the merger tells things.
#[derive(Default)]
pub(crate) struct Sessions {
    list: Vec<Subscriber>,
}

/// What a subscription change means for the server behind the URI.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Watch {
    /// The first session to subscribe, or the last to unsubscribe: tell the server.
    Forward,
    /// Other sessions still (or already) watch it: the server knows already.
    Answered,
    /// The session holds [`MAX_URIS_PER_SESSION`] already.
    Full,
}

impl Sessions {
    /// Tells `sink`'s session from now on, keeping what an earlier sink of the same session
    /// subscribed to (an HTTP session's notice queue replaces its first sink).
    pub(crate) fn subscribe(&mut self, sink: Sink) {
        match self.find(sink.session()) {
            Some(s) => s.sink = sink,
            None => self.list.push(Subscriber {
                sink,
                uris: HashSet::new(),
                level: None,
            }),
        }
    }

    /// Tells `sink`'s session from now on, unless it is told already.
    pub(crate) fn add(&mut self, sink: Sink) {
        if self.find(sink.session()).is_none() {
            self.subscribe(sink);
        }
    }

    /// Forgets a session; returns the URIs no session watches any more.
    pub(crate) fn remove(&mut self, session: SessionId) -> Vec<String> {
        let Some(idx) = self.list.iter().position(|s| s.sink.session() == session) else {
            return Vec::new();
        };
        let gone = self.list.swap_remove(idx);
        gone.uris
            .into_iter()
            .filter(|uri| !self.watched(uri))
            .collect()
    }

    /// Subscribes (`on`) or unsubscribes `session` to `uri`.
    pub(crate) fn watch(&mut self, session: SessionId, uri: &str, on: bool) -> Watch {
        let watched_before = self.watched(uri);
        let Some(s) = self.find(session) else {
            return Watch::Answered;
        };
        if on {
            if !s.uris.contains(uri) && s.uris.len() >= MAX_URIS_PER_SESSION {
                return Watch::Full;
            }
            s.uris.insert(uri.to_owned());
            if watched_before {
                Watch::Answered
            } else {
                Watch::Forward
            }
        } else {
            let had = s.uris.remove(uri);
            if had && !self.watched(uri) {
                Watch::Forward
            } else {
                Watch::Answered
            }
        }
    }

    /// Sets a session's log level; returns the most verbose level any session asked for.
    pub(crate) fn set_level(&mut self, session: SessionId, level: LogLevel) -> Option<LogLevel> {
        if let Some(s) = self.find(session) {
            s.level = Some(level);
        }
        self.most_verbose()
    }

    /// The most verbose level any session asked for.
    pub(crate) fn most_verbose(&self) -> Option<LogLevel> {
        self.list.iter().filter_map(|s| s.level).min()
    }

    /// Sends `line` to every session (a list change).
    pub(crate) fn tell_all(&mut self, line: &[u8]) {
        self.list
            .retain(|s| s.sink.send(line.to_vec()) != Sent::Closed);
    }

    /// Sends `line` (a resource update) to the sessions subscribed to `uri`.
    pub(crate) fn tell_watchers(&mut self, uri: &str, line: &[u8]) {
        self.list
            .retain(|s| !s.uris.contains(uri) || s.sink.send(line.to_vec()) != Sent::Closed);
    }

    /// Sends `line` (a log message at `level`) to the sessions whose level it reaches.
    pub(crate) fn tell_level(&mut self, level: LogLevel, line: &[u8]) {
        self.list.retain(|s| {
            s.level.is_some_and(|wanted| level < wanted)
                || s.sink.send(line.to_vec()) != Sent::Closed
        });
    }

    fn watched(&self, uri: &str) -> bool {
        self.list.iter().any(|s| s.uris.contains(uri))
    }

    fn find(&mut self, session: SessionId) -> Option<&mut Subscriber> {
        self.list.iter_mut().find(|s| s.sink.session() == session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;

    fn session(sessions: &mut Sessions, id: SessionId) -> Receiver<Vec<u8>> {
        let (tx, rx) = crossbeam_channel::bounded(8);
        sessions.subscribe(Sink::new(id, tx));
        rx
    }

    #[test]
    fn the_first_subscriber_and_the_last_to_leave_reach_the_server_and_updates_reach_watchers() {
        let mut sessions = Sessions::default();
        let a = session(&mut sessions, 1);
        let b = session(&mut sessions, 2);
        assert_eq!(sessions.watch(1, "r://x", true), Watch::Forward);
        assert_eq!(sessions.watch(2, "r://x", true), Watch::Answered);
        sessions.tell_watchers("r://x", b"u");
        sessions.tell_watchers("r://y", b"v");
        assert_eq!(a.try_iter().count(), 1);
        assert_eq!(b.try_iter().count(), 1);
        assert_eq!(sessions.watch(1, "r://x", false), Watch::Answered);
        assert_eq!(sessions.remove(2), ["r://x".to_owned()]);
        assert_eq!(sessions.watch(9, "r://x", true), Watch::Answered, "unknown");
    }

    #[test]
    fn log_messages_reach_the_sessions_whose_level_they_reach() {
        let mut sessions = Sessions::default();
        let quiet = session(&mut sessions, 1);
        let verbose = session(&mut sessions, 2);
        let unset = session(&mut sessions, 3);
        assert_eq!(
            sessions.set_level(1, LogLevel::Error),
            Some(LogLevel::Error)
        );
        assert_eq!(
            sessions.set_level(2, LogLevel::Debug),
            Some(LogLevel::Debug)
        );
        sessions.tell_level(LogLevel::Info, b"i");
        sessions.tell_level(LogLevel::Critical, b"c");
        assert_eq!(quiet.try_iter().count(), 1);
        assert_eq!(verbose.try_iter().count(), 2);
        assert_eq!(unset.try_iter().count(), 2);
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_subscriptions_and_a_new_sink_keeps_them() {
        let mut sessions = Sessions::default();
        let _a = session(&mut sessions, 1);
        for i in 0..MAX_URIS_PER_SESSION {
            assert_eq!(sessions.watch(1, &format!("r://{i}"), true), Watch::Forward);
        }
        assert_eq!(sessions.watch(1, "r://more", true), Watch::Full);
        let again = session(&mut sessions, 1);
        sessions.tell_watchers("r://3", b"u");
        assert_eq!(again.try_iter().count(), 1);
    }
}

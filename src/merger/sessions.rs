//! The agent sessions the merger tells things: list changes, resource updates, log messages.
//!
//! Owns: [`Sessions`]: each legacy session's sink, the resource URIs it subscribed to (at most
//! [`MAX_URIS_PER_SESSION`]), the log level it asked for, and which sessions each notice goes
//! to: a `list_changed` to all; `notifications/resources/updated` only to the sessions
//! subscribed to that URI; a log message to every session whose level it reaches (a session that
//! never set a level gets every message, as it would from the server directly). Also the most
//! verbose level any session asked for, which the gate forwards to its servers.
//! A 2026-07-28 `subscriptions/listen` is a subscriber of its own (keyed by its session and its
//! request id, at most [`MAX_LISTENS`]): it gets only the kinds its filter asked for and the
//! updates of its URIs, each notice carrying its `subscriptionId`, and never a log message.
//! Never: talks to a connection (the merger's state does, with what these methods return); waits
//! on a sink (a full one loses the notice, a closed one loses the session).

use crate::jsonrpc::{Id, Sent, SessionId, Sink};
use crate::mcp::{ListKind, LogLevel};
use std::collections::HashSet;

/// Resource subscriptions one session may hold.
pub(crate) const MAX_URIS_PER_SESSION: usize = 256;
/// Open `subscriptions/listen` streams of one gate at most.
pub(crate) const MAX_LISTENS: usize = 1024;

/// What a `subscriptions/listen` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// See the listen filter of the same name.
    pub tools: bool,
    /// See the listen filter of the same name.
    pub prompts: bool,
    /// See the listen filter of the same name.
    pub resources: bool,
    /// See the listen filter of the same name.
    pub uris: Vec<String>,
}

struct Subscriber {
    sink: Sink,
    uris: HashSet<String>,
    level: Option<LogLevel>,
    /// Servers' log messages go to it (not to a caller limited to some servers).
    logs: bool,
    /// A listen: its request id (the `subscriptionId`) and the lists it asked for.
    listen: Option<(Id, Filter)>,
}

impl Subscriber {
    fn is(&self, session: SessionId, listen: Option<&Id>) -> bool {
        self.sink.session() == session && self.listen.as_ref().map(|(id, _)| id) == listen
    }

    /// The notice `method` (with `extra` params) as this subscriber gets it; `None` when it did
    /// not ask for it.
    fn notice(&self, kind: Option<ListKind>, method: &str, extra: &str) -> Option<Vec<u8>> {
        let Some((id, filter)) = &self.listen else {
            let params = (!extra.is_empty()).then(|| format!("{{{extra}}}"));
            return Some(crate::jsonrpc::notification_line(method, params.as_deref()));
        };
        let wanted = match kind {
            Some(ListKind::Tools) => filter.tools,
            Some(ListKind::Prompts) => filter.prompts,
            Some(ListKind::Resources | ListKind::Templates) => filter.resources,
            None => true,
        };
        if !wanted {
            return None;
        }
        let sep = if extra.is_empty() { "" } else { "," };
        let params = format!(
            "{{\"_meta\":{{\"{}\":{}}}{sep}{extra}}}",
            crate::mcp::SUBSCRIPTION_KEY,
            id.as_json()
        );
        Some(crate::jsonrpc::notification_line(method, Some(&params)))
    }
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
    pub(crate) fn subscribe(&mut self, sink: Sink, logs: bool) {
        match self.find(sink.session()) {
            Some(s) => {
                s.sink = sink;
                s.logs = logs;
            }
            None => self.list.push(Subscriber {
                sink,
                uris: HashSet::new(),
                level: None,
                logs,
                listen: None,
            }),
        }
    }

    /// A `subscriptions/listen` opened with request id `id` on `sink`, asking for `filter`;
    /// returns the URIs no one watched before (to subscribe at their servers), or `None` when
    /// [`MAX_LISTENS`] are open.
    pub(crate) fn listen(&mut self, sink: Sink, id: Id, filter: Filter) -> Option<Vec<String>> {
        if self.listens_full() {
            return None;
        }
        let fresh: Vec<String> = filter
            .uris
            .iter()
            .filter(|uri| !self.watched(uri))
            .cloned()
            .collect();
        let session = sink.session();
        self.end_listen(session, &id);
        self.list.push(Subscriber {
            sink,
            uris: filter
                .uris
                .iter()
                .take(MAX_URIS_PER_SESSION)
                .cloned()
                .collect(),
            level: None,
            logs: false,
            listen: Some((id, filter)),
        });
        Some(fresh)
    }

    /// Whether [`MAX_LISTENS`] listens are open.
    pub(crate) fn listens_full(&self) -> bool {
        self.list.iter().filter(|s| s.listen.is_some()).count() >= MAX_LISTENS
    }

    /// Ends the listen `id` of `session`; returns the URIs no one watches any more.
    pub(crate) fn end_listen(&mut self, session: SessionId, id: &Id) -> Vec<String> {
        let Some(idx) = self.list.iter().position(|s| s.is(session, Some(id))) else {
            return Vec::new();
        };
        let gone = self.list.swap_remove(idx);
        gone.uris
            .into_iter()
            .filter(|uri| !self.watched(uri))
            .collect()
    }

    /// Tells `sink`'s session from now on, unless it is told already.
    pub(crate) fn add(&mut self, sink: Sink) {
        if self.find(sink.session()).is_none() {
            self.subscribe(sink, true);
        }
    }

    /// Forgets a session; returns the URIs no session watches any more.
    pub(crate) fn remove(&mut self, session: SessionId) -> Vec<String> {
        let mut gone_uris = Vec::new();
        while let Some(idx) = self.list.iter().position(|s| s.sink.session() == session) {
            gone_uris.extend(self.list.swap_remove(idx).uris);
        }
        gone_uris.sort();
        gone_uris.dedup();
        gone_uris.retain(|uri| !self.watched(uri));
        gone_uris
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

    /// Tells every session (and every listen that asked) that the list `kind` changed.
    /// Returns the URIs no one watches any more (of listens whose client went away).
    pub(crate) fn tell_changed(&mut self, kind: ListKind, method: &str) -> Vec<String> {
        self.retain_sent(|s| s.notice(Some(kind), method, ""))
    }

    /// Tells the sessions and listens subscribed to `uri` that it changed. Returns the URIs no
    /// one watches any more.
    pub(crate) fn tell_watchers(&mut self, uri: &str) -> Vec<String> {
        let extra = format!("\"uri\":{}", serde_json::Value::String(uri.to_owned()));
        let method = "notifications/resources/updated";
        self.retain_sent(|s| {
            s.uris
                .contains(uri)
                .then(|| s.notice(None, method, &extra))
                .flatten()
        })
    }

    /// Sends `line` (a log message at `level`) to the legacy sessions whose level it reaches.
    pub(crate) fn tell_level(&mut self, level: LogLevel, line: &[u8]) {
        self.list.retain(|s| {
            s.listen.is_some()
                || !s.logs
                || s.level.is_some_and(|wanted| level < wanted)
                || s.sink.send(line.to_vec()) != Sent::Closed
        });
    }

    /// Sends each subscriber what `line_for` gives it; a subscriber whose peer is gone is
    /// dropped, and the URIs no one watches any more are returned.
    fn retain_sent(&mut self, line_for: impl Fn(&Subscriber) -> Option<Vec<u8>>) -> Vec<String> {
        let mut dropped = Vec::new();
        self.list.retain_mut(|s| {
            let closed = line_for(s).is_some_and(|line| s.sink.send(line) == Sent::Closed);
            if closed {
                dropped.extend(std::mem::take(&mut s.uris));
            }
            !closed
        });
        dropped.sort();
        dropped.dedup();
        dropped.retain(|uri| !self.watched(uri));
        dropped
    }

    /// Every URI some session or listen watches, once.
    pub(crate) fn watched_uris(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .list
            .iter()
            .flat_map(|s| s.uris.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    fn watched(&self, uri: &str) -> bool {
        self.list.iter().any(|s| s.uris.contains(uri))
    }

    fn find(&mut self, session: SessionId) -> Option<&mut Subscriber> {
        self.list.iter_mut().find(|s| s.is(session, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;

    fn session(sessions: &mut Sessions, id: SessionId) -> Receiver<Vec<u8>> {
        let (tx, rx) = crossbeam_channel::bounded(8);
        sessions.subscribe(Sink::new(id, tx), true);
        rx
    }

    #[test]
    fn the_first_subscriber_and_the_last_to_leave_reach_the_server_and_updates_reach_watchers() {
        let mut sessions = Sessions::default();
        let a = session(&mut sessions, 1);
        let b = session(&mut sessions, 2);
        assert_eq!(sessions.watch(1, "r://x", true), Watch::Forward);
        assert_eq!(sessions.watch(2, "r://x", true), Watch::Answered);
        sessions.tell_watchers("r://x");
        sessions.tell_watchers("r://y");
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
        sessions.tell_watchers("r://3");
        assert_eq!(again.try_iter().count(), 1);
    }

    #[test]
    fn a_listen_gets_only_what_it_asked_for_with_its_subscription_id() {
        let mut sessions = Sessions::default();
        let legacy = session(&mut sessions, 1);
        let (tx, listen) = crossbeam_channel::bounded(8);
        let filter = Filter {
            tools: true,
            uris: vec!["r://x".into()],
            ..Filter::default()
        };
        let fresh = sessions.listen(Sink::new(1, tx), Id::from_string("listen-1"), filter);
        assert_eq!(fresh, Some(vec!["r://x".to_owned()]));
        sessions.tell_changed(ListKind::Tools, "notifications/tools/list_changed");
        sessions.tell_changed(ListKind::Prompts, "notifications/prompts/list_changed");
        sessions.tell_watchers("r://x");
        sessions.tell_level(LogLevel::Error, b"log");
        let got: Vec<String> = listen
            .try_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains(r#""io.modelcontextprotocol/subscriptionId":"listen-1""#));
        assert!(got[1].contains(r#""uri":"r://x""#));
        assert_eq!(
            legacy.try_iter().count(),
            3,
            "tools, prompts, the log message"
        );
        assert_eq!(
            sessions.end_listen(1, &Id::from_string("listen-1")),
            ["r://x"]
        );
    }
}

//! The merger's answers beyond tools: `initialize`'s capabilities, resource subscriptions
//! (`resources/subscribe` and `unsubscribe`, a 2026-07-28 `subscriptions/listen`), log levels,
//! and the notices children send (resource updates, log messages), each told to the sessions
//! that asked for it.
//!
//! Owns: which server a subscription or log level reaches (the first subscriber and the last to
//! leave reach the server; the most verbose level any session wants reaches every server that
//! logs) and the acknowledgement of a listen (what the gate can honour).
//! Never: blocks on a connection or a session (it sends non-blocking commands and bounded
//! notices); answers a request before startup settled (the loop holds those).

use super::State;
use crate::downstream::{CallRequest, ConnId, Notice};
use crate::jsonrpc::{self, code, Id, Responder, Sink};
use crate::mcp;
use crate::merger::sessions::{Filter, Watch};
use crate::thread::read;

impl State {
    /// Answers `initialize` with what the servers offer now, and tells the session about
    /// changes from then on.
    pub(super) fn release(&mut self, responder: Responder, version: &'static str) {
        let offered = read(&self.routes).offered();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("tools".into(), serde_json::json!({ "listChanged": true }));
        if offered.prompts {
            capabilities.insert("prompts".into(), serde_json::json!({ "listChanged": true }));
        }
        if offered.resources {
            capabilities.insert(
                "resources".into(),
                serde_json::json!({ "subscribe": offered.subscribe, "listChanged": true }),
            );
        }
        if offered.completions {
            capabilities.insert("completions".into(), serde_json::json!({}));
        }
        if offered.logging {
            capabilities.insert("logging".into(), serde_json::json!({}));
        }
        let result = serde_json::json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": {
                "name": mcp::IMPLEMENTATION_NAME,
                "version": mcp::IMPLEMENTATION_VERSION,
            },
        });
        let sink = responder.sink().clone();
        responder.result(&result.to_string());
        self.sessions.add(sink);
    }

    /// `resources/subscribe` or `unsubscribe`: routed by URI; the first subscriber and the last
    /// to leave reach the server (whose answer the agent gets), the others are answered here.
    pub(super) fn watch(
        &mut self,
        responder: Responder,
        uri: String,
        on: bool,
        agent: Option<String>,
    ) {
        let method = if on {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        let routes = read(&self.routes).clone();
        let shown: String = uri.chars().take(200).collect();
        let Some(route) = routes.resources().route(&uri) else {
            return responder.error(
                code::INVALID_PARAMS,
                &format!("unknown resource: {shown:?}"),
            );
        };
        if let Some(reason) = &route.blocked {
            return responder.error(
                code::TOOL_BLOCKED,
                &format!("resource {shown:?} is {reason}"),
            );
        }
        let subscribes = routes
            .offers()
            .iter()
            .any(|(c, o)| c.id() == route.conn.id() && o.subscribe);
        if !subscribes {
            let message = format!(
                "server '{}' does not take resource subscriptions",
                route.conn.name()
            );
            return responder.error(code::METHOD_NOT_FOUND, &message);
        }
        self.sessions.add(responder.sink().clone());
        match self.sessions.watch(responder.session(), &uri, on) {
            Watch::Answered => {
                if on {
                    // Other sessions watch it already; the server is asked again all the same
                    // (a subscription is idempotent), so one it refused the first time is not
                    // lost for every later subscriber.
                    let params = serde_json::json!({ "uri": uri }).to_string();
                    route.conn.tell("resources/subscribe", params);
                }
                responder.result("{}")
            }
            Watch::Full => responder.error(
                code::OVERLOADED,
                &format!(
                    "this session holds {} subscriptions already",
                    crate::merger::sessions::MAX_URIS_PER_SESSION
                ),
            ),
            Watch::Forward => {
                let Ok(raw) = serde_json::value::to_raw_value(&uri) else {
                    return responder.error(code::INVALID_PARAMS, "the URI cannot be encoded");
                };
                route.conn.call(CallRequest {
                    responder,
                    method: method.into(),
                    params: [("uri".to_owned(), raw)].into_iter().collect(),
                    meta: None,
                    progress_token: None,
                    timeout: self.settings.call_timeout,
                    agent,
                    client: mcp::ClientCaps::default(),
                    max_result_bytes: None,
                    resume: None,
                });
            }
        }
    }

    /// A 2026-07-28 `subscriptions/listen`: acknowledged at once with what the gate can tell it
    /// (the lists its servers offer, the URIs a server that takes subscriptions routes), then
    /// told of those; the servers of URIs no one watched before are subscribed.
    pub(super) fn listen(&mut self, sink: Sink, id: Id, mut filter: Filter) {
        if self.sessions.listens_full() {
            log::warn!(
                "{} subscriptions/listen streams are open; a new one is refused",
                crate::merger::sessions::MAX_LISTENS
            );
            let message = "too many subscriptions/listen streams are open; try again later";
            sink.send_reply(jsonrpc::error_line(Some(&id), code::OVERLOADED, message));
            return;
        }
        let routes = read(&self.routes).clone();
        let offered = routes.offered();
        filter.uris.sort();
        filter.uris.dedup();
        filter
            .uris
            .truncate(crate::merger::sessions::MAX_URIS_PER_SESSION);
        filter.prompts &= offered.prompts;
        filter.resources &= offered.resources;
        filter.uris.retain(|uri| {
            routes.resources().route(uri).is_some_and(|r| {
                r.blocked.is_none()
                    && routes
                        .offers()
                        .iter()
                        .any(|(c, o)| c.id() == r.conn.id() && o.subscribe)
            })
        });
        let mut honoured = serde_json::Map::new();
        for (on, key) in [
            (filter.tools, "toolsListChanged"),
            (filter.prompts, "promptsListChanged"),
            (filter.resources, "resourcesListChanged"),
        ] {
            if on {
                honoured.insert(key.into(), serde_json::Value::Bool(true));
            }
        }
        if !filter.uris.is_empty() {
            honoured.insert(
                "resourceSubscriptions".into(),
                serde_json::json!(filter.uris),
            );
        }
        let ack = format!(
            "{{\"_meta\":{{\"{}\":{}}},\"notifications\":{}}}",
            crate::mcp::SUBSCRIPTION_KEY,
            id.as_json(),
            serde_json::Value::Object(honoured)
        );
        let line =
            jsonrpc::notification_line("notifications/subscriptions/acknowledged", Some(&ack));
        if sink.send(line) == crate::jsonrpc::Sent::Closed {
            return;
        }
        if let Some(fresh) = self.sessions.listen(sink.clone(), id, filter) {
            self.tell_servers("resources/subscribe", fresh);
        }
    }

    /// Sends `method` (`resources/subscribe` or `unsubscribe`) for each URI to the server that
    /// routes it; their answers are not awaited.
    pub(super) fn tell_servers(&self, method: &'static str, uris: Vec<String>) {
        if uris.is_empty() {
            return;
        }
        let routes = read(&self.routes).clone();
        for uri in uris {
            if let Some(route) = routes.resources().route(&uri) {
                let params = serde_json::json!({ "uri": uri }).to_string();
                route.conn.tell(method, params);
            }
        }
    }

    /// Subscribes server `idx` again to every URI a session or listen watches that it routes
    /// (its child was restarted and knows none of them).
    pub(super) fn resubscribe(&self, idx: usize) {
        let Some(server) = self.servers.get(idx) else {
            return;
        };
        if !server.tools.offered.subscribe {
            return;
        }
        let routes = read(&self.routes).clone();
        let id = server.tools.conn.id();
        for uri in self.sessions.watched_uris() {
            if routes
                .resources()
                .route(&uri)
                .is_some_and(|r| r.conn.id() == id)
            {
                let params = serde_json::json!({ "uri": uri }).to_string();
                server.tools.conn.tell("resources/subscribe", params);
            }
        }
    }

    /// Sends server `idx` the log level sessions want, when it logs and one is set.
    pub(super) fn send_level(&self, idx: usize) {
        let (Some(level), Some(server)) = (self.log_level, self.servers.get(idx)) else {
            return;
        };
        if server.tools.offered.logging {
            let params = serde_json::json!({ "level": level.as_str() }).to_string();
            server.tools.conn.tell("logging/setLevel", params);
        }
    }

    /// A resource changed (its subscribers are told) or a server logged (sessions are told by
    /// their level).
    pub(super) fn on_notice(&mut self, conn: ConnId, notice: Notice) {
        match notice {
            Notice::Updated { uri } => {
                let routes = read(&self.routes).clone();
                let ours = routes
                    .resources()
                    .route(&uri)
                    .is_some_and(|r| r.conn.id() == conn);
                if !ours {
                    return;
                }
                let gone = self.sessions.tell_watchers(&uri);
                self.tell_servers("resources/unsubscribe", gone);
            }
            Notice::Log { level, params } => {
                let line = jsonrpc::notification_line("notifications/message", Some(&params));
                self.sessions.tell_level(level, &line);
            }
        }
    }
}

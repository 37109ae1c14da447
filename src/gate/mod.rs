//! Gate: the upstream MCP endpoint that agents talk to.
//!
//! Owns: the upstream protocol: `initialize` (version negotiation; the capabilities, which the
//! merger fills in from what the servers offer; what the agent declared it can answer),
//! `ping`, the lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`: answered by the merger), the calls (`tools/call`, `prompts/get`,
//! `resources/read`: routed to their connection, in `route.rs`), `completion/complete`,
//! `resources/subscribe` and `unsubscribe` and `logging/setLevel` (the merger keeps them per
//! session), the agent's answers to a server's requests (back to the connection that asked),
//! `notifications/cancelled` and `notifications/roots/list_changed`, and -32601 at once for
//! every other method (`server/discover` included) so dual-era clients fall back without
//! waiting.
//! Never: blocks. Every request is handed on (to the merger or a connection) with a `Responder`,
//! so a slow `tools/call` never delays a `ping` or another call. Never logs arguments or results.
//!
//! Transports (stdio in [`stdio`], HTTP in `api::mcp_http`) frame and parse each message once and
//! hand it, with its parsed `tools/call` params, to [`Gate::handle_parsed`]. A `tools/call` is parsed once ([`call::ToolCall`]) and its policy verdict
//! decided once, here, where it is routed.

pub(crate) mod call;
pub(crate) mod modern;
mod route;
pub(crate) mod runtime;
pub(crate) mod stdio;
mod stdout;
mod session;
pub(crate) mod tap;

pub(crate) use call::{ToolCall, VerdictSlot};
pub(crate) use session::Session;

use crate::approvals::Approvals;
use crate::config::Settings;
use crate::downstream::{parse_server_request_id, ListKind};
use crate::jsonrpc::{self, code, Id, Message, Outcome, Responder, SessionId, Sink};
use crate::mcp::{self, ClientCaps, LogLevel};
use crate::merger::{MergerHandle, Request, ViewKey};
use crate::policy::{Facts, Policy, Verdict};
use crate::thread::{lock, read, write};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

/// The upstream endpoint, shared by every transport thread.
#[derive(Debug)]
pub(crate) struct Gate {
    settings: Arc<Settings>,
    merger: MergerHandle,
    workspace: String,
    /// Calls cancelled while the merger still held them (before startup settled), so that they
    /// are not run when released. Bounded by [`crate::merger::MAX_HELD`].
    cancelled_early: Mutex<HashSet<(SessionId, Id)>>,
    /// The workspace's policy, checked on every `tools/call` (replaced live by the REST API).
    policy: RwLock<Arc<Policy>>,
    /// Where escalated calls wait for a person (serve mode); without it they are refused.
    approvals: RwLock<Option<Arc<Approvals>>>,
}

#[derive(Deserialize)]
struct InitializeParams {
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
    capabilities: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct UriParams {
    uri: String,
}

#[derive(Deserialize)]
struct LevelParams {
    level: String,
}

#[derive(Deserialize)]
struct ListParams {
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct CancelParams {
    #[serde(rename = "requestId")]
    request_id: Box<RawValue>,
}

impl Gate {
    /// A gate for `workspace`, routing through the merger's published routes.
    pub(crate) fn new(
        settings: Arc<Settings>,
        merger: MergerHandle,
        workspace: impl Into<String>,
    ) -> Gate {
        Gate {
            settings,
            merger,
            workspace: workspace.into(),
            cancelled_early: Mutex::new(HashSet::new()),
            policy: RwLock::new(Arc::new(Policy::default())),
            approvals: RwLock::new(None),
        }
    }

    /// Holds escalated calls in `approvals` from now on.
    pub(crate) fn set_approvals(&self, approvals: Arc<Approvals>) {
        *write(&self.approvals) = Some(approvals);
    }

    /// How long an escalated call may wait for a person; `None` when no approvals are kept
    /// here (the call is refused then). The HTTP transport waits that much longer for its answer.
    pub(crate) fn approval_timeout(&self) -> Option<std::time::Duration> {
        read(&self.approvals).as_ref()?;
        Some(self.current_policy().approval_timeout())
    }

    /// What the policy says of `tool` for `agent` now: for the audit record of a call the gate
    /// never decided (refused before routing, or still held at its deadline).
    pub(crate) fn verdict(&self, tool: &str, agent: Option<&str>) -> Verdict {
        let routes = self.merger.routes();
        let route = routes.get(tool).or_else(|| routes.prompt(tool));
        let facts = Facts {
            trusted: route.is_some_and(|r| r.conn.trusted()),
            annotations: route.and_then(|r| r.annotations.as_deref()),
        };
        self.current_policy()
            .decide_with(tool, agent, facts)
            .verdict
    }

    /// The name policies, scopes and grants match for a call of `method` naming `name`: a
    /// resource's `server.name` (found by its URI; the URI itself when no server lists it),
    /// else the name.
    pub(crate) fn subject_of(&self, method: &str, name: &str) -> String {
        if method != "resources/read" {
            return name.to_owned();
        }
        let routes = self.merger.routes();
        routes
            .resources()
            .route(name)
            .map_or_else(|| name.to_owned(), |r| r.subject.clone())
    }

    /// The name scopes and grants match for `message`: its call's (see [`Gate::subject_of`]),
    /// else what a completion or subscription reaches; `None` when it reaches no name.
    pub(crate) fn subject_of_message(
        &self,
        message: &Message,
        call: Option<&ToolCall>,
    ) -> Option<String> {
        match (call, message) {
            (Some(c), _) => Some(self.subject_of(c.method(), c.tool())),
            (None, Message::Request { method, params, .. }) => {
                self.subject_of_request(method, params.as_deref())
            }
            _ => None,
        }
    }

    /// The name scopes and grants match for a request that names no call but reaches a prompt
    /// or resource: a `completion/complete`'s `ref` (a prompt's name, a template's route), a
    /// `resources/subscribe`'s URI. `None` for any other method.
    fn subject_of_request(&self, method: &str, params: Option<&RawValue>) -> Option<String> {
        let params: serde_json::Value = serde_json::from_str(params?.get()).ok()?;
        match method {
            "completion/complete" => {
                let reference = params.get("ref")?;
                match reference.get("type")?.as_str()? {
                    "ref/prompt" => Some(reference.get("name")?.as_str()?.to_owned()),
                    "ref/resource" => {
                        let uri = reference.get("uri")?.as_str()?;
                        let routes = self.merger.routes();
                        Some(
                            routes
                                .resources()
                                .template(uri)
                                .map_or_else(|| uri.to_owned(), |r| r.subject.clone()),
                        )
                    }
                    _ => None,
                }
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                let uri = params.get("uri")?.as_str()?;
                Some(self.subject_of("resources/read", uri))
            }
            _ => None,
        }
    }

    /// The merger's current route table.
    pub(crate) fn routes(&self) -> Arc<crate::merger::Routes> {
        self.merger.routes()
    }

    fn current_policy(&self) -> Arc<Policy> {
        Arc::clone(&read(&self.policy))
    }

    /// Applies `policy` to every call from now on.
    pub(crate) fn set_policy(&self, policy: Policy) {
        *write(&self.policy) = Arc::new(policy);
    }

    /// The policy in force.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&crate::thread::read(&self.policy))
    }

    /// Handles one message a transport has parsed, with its `tools/call` params when the
    /// transport parsed those too (a transport that audits or authorizes the call reads them
    /// first; the gate then routes the same parse and fills its verdict slot).
    pub(crate) fn handle_parsed(
        self: &Arc<Self>,
        session: &Session,
        parsed: Result<Message, jsonrpc::ParseError>,
        call: Option<ToolCall>,
    ) {
        match parsed {
            Err(e) => {
                session.sink.send_reply(e.to_error_line());
            }
            Ok(Message::Request { id, method, params }) => {
                let responder =
                    Responder::new(id, session.sink.clone()).shaped(session.shape_for(&method));
                let call = call::CALL_METHODS.contains(&method.as_str()).then(|| {
                    call.unwrap_or_else(|| ToolCall::parse_as(&method, params.as_deref()))
                });
                self.on_request(session, responder, &method, params.as_deref(), call);
            }
            Ok(Message::Notification { method, params }) => {
                self.on_notification(session, &method, params.as_deref())
            }
            Ok(Message::Response { id, outcome }) => self.on_answer(session, &id, outcome),
        }
    }

    /// An agent answered a server's request: back to the connection that asked (which takes
    /// it only from the session it asked).
    fn on_answer(&self, session: &Session, id: &Id, outcome: Outcome) {
        let Some((conn, n)) = parse_server_request_id(id.as_json()) else {
            log::debug!(
                "session {}: an answer to no request of the gate's",
                session.id()
            );
            return;
        };
        let routes = self.merger.routes();
        let found = routes.connections().find(|c| c.id() == conn).cloned();
        match found {
            Some(conn) => conn.client_answer(session.id(), n, outcome),
            None => log::debug!(
                "session {}: an answer for a server that is gone",
                session.id()
            ),
        }
    }

    /// Merged-view cache hits and misses of this gate's merger.
    pub(crate) fn cache_stats(&self) -> (u64, u64) {
        self.merger.cache_stats()
    }

    /// From now on, tell `sink`'s session about list changes through `sink`.
    pub(crate) fn subscribe(&self, sink: Sink, logs: bool) {
        self.merger.send(Request::Subscribe { sink, logs });
    }

    /// A session ended: stop telling it about list changes.
    pub(crate) fn end_session(&self, session: &Session) {
        self.unsubscribe(session.id());
    }

    /// Stop telling session `session` about list changes (its transport forgot it).
    pub(crate) fn unsubscribe(&self, session: crate::jsonrpc::SessionId) {
        self.merger.send(Request::Unsubscribe { session });
    }

    fn on_request(
        self: &Arc<Self>,
        session: &Session,
        responder: Responder,
        method: &str,
        params: Option<&RawValue>,
        call: Option<ToolCall>,
    ) {
        if session.modern {
            match method {
                "server/discover" => {
                    return self.when_ready(responder, |gate, responder| {
                        responder.raw_result(&modern::discover_result(gate.routes().offered()))
                    })
                }
                "subscriptions/listen" => return self.listen(session, responder, params),
                m if modern::REMOVED.contains(&m) => {
                    let message = format!("{m} is not part of MCP {}", modern::MODERN_VERSION);
                    return responder.error(code::METHOD_NOT_FOUND, &message);
                }
                _ => {}
            }
        }
        let initialized = session.initialized.load(Ordering::SeqCst);
        match (method, call) {
            ("initialize", _) => self.initialize(session, responder, params),
            ("ping", _) => responder.result("{}"),
            (m, _) if !initialized && SESSION_METHODS.contains(&m) => responder.error(
                code::NOT_INITIALIZED,
                "the session is not initialized: send initialize first",
            ),
            ("tools/list", _) => self.list(responder, params, ListKind::Tools),
            ("prompts/list", _) => self.list(responder, params, ListKind::Prompts),
            ("resources/list", _) => self.list(responder, params, ListKind::Resources),
            ("resources/templates/list", _) => self.list(responder, params, ListKind::Templates),
            ("resources/subscribe" | "resources/unsubscribe", _) => {
                self.watch(session, responder, method == "resources/subscribe", params)
            }
            ("logging/setLevel", _) => self.set_level(responder, params),
            ("completion/complete", _) => {
                let (agent, client) = (session.agent.clone(), session.client());
                let params = params_owned(params);
                self.when_ready(responder, move |gate, responder| {
                    gate.complete(responder, params.as_deref(), agent, client)
                });
            }
            (_, Some(call)) => {
                let (agent, client) = (session.agent.clone(), session.client());
                self.when_ready(responder, move |gate, responder| {
                    gate.call(responder, call, agent, client)
                });
            }
            _ => {
                let shown: String = method.chars().take(100).collect();
                responder.error(
                    code::METHOD_NOT_FOUND,
                    &format!("method not found: {shown}"),
                )
            }
        }
    }

    /// Runs `work` now when startup has settled, else once it has (routes are incomplete until
    /// every child has listed); a request the agent cancelled while it waited is owed nothing.
    fn when_ready(
        self: &Arc<Self>,
        responder: Responder,
        work: impl FnOnce(&Gate, Responder) + Send + 'static,
    ) {
        if self.merger.is_ready() {
            return work(self, responder);
        }
        let gate = Arc::clone(self);
        let run = move |responder: Responder| {
            let key = (responder.session(), responder.id().clone());
            let cancelled = lock(&gate.cancelled_early).remove(&key);
            if !cancelled {
                work(&gate, responder);
            }
        };
        self.merger.send(Request::WhenReady {
            responder,
            run: Box::new(run),
        });
    }

    /// A 2026-07-28 `subscriptions/listen` on a transport that multiplexes (stdio): the merger
    /// acknowledges it and sends its notices through the session's sink until the client
    /// cancels it. The request itself is owed nothing more.
    fn listen(&self, session: &Session, responder: Responder, params: Option<&RawValue>) {
        match modern::listen_filter(params) {
            Ok(filter) => {
                let id = responder.id().clone();
                drop(responder);
                self.open_listen(session.sink.clone(), id, filter);
            }
            Err(message) => responder.error(code::INVALID_PARAMS, &message),
        }
    }

    /// Ends the listen `id` of `session` (its HTTP stream ended).
    pub(crate) fn end_listen(&self, session: SessionId, id: Id) {
        self.merger.send(Request::EndListen { session, id });
    }

    /// Opens a listen whose notices go to `sink` (the HTTP transport's event stream, or stdout).
    pub(crate) fn open_listen(&self, sink: Sink, id: Id, filter: crate::merger::Filter) {
        self.merger.send(Request::Listen { sink, id, filter });
    }

    /// `resources/subscribe` or `unsubscribe`, kept per session by the merger.
    fn watch(&self, session: &Session, responder: Responder, on: bool, params: Option<&RawValue>) {
        let Some(uri) = params.and_then(|p| serde_json::from_str::<UriParams>(p.get()).ok()) else {
            return responder.error(code::INVALID_PARAMS, "params.uri must be a string");
        };
        self.merger.send(Request::Watch {
            responder,
            uri: uri.uri,
            on,
            agent: session.agent.clone(),
        });
    }

    /// `logging/setLevel`, kept per session by the merger.
    fn set_level(&self, responder: Responder, params: Option<&RawValue>) {
        let level = params
            .and_then(|p| serde_json::from_str::<LevelParams>(p.get()).ok())
            .and_then(|p| LogLevel::parse(&p.level));
        match level {
            Some(level) => self.merger.send(Request::SetLevel { responder, level }),
            None => responder.error(
                code::INVALID_PARAMS,
                "params.level must be one of debug, info, notice, warning, error, critical, \
                 alert, emergency",
            ),
        }
    }

    /// The client of request `id` of session `session` went away (a 2026-07-28 request's
    /// event stream closed): the request is cancelled, as by `notifications/cancelled`.
    pub(crate) fn cancel_request(&self, session: SessionId, id: &Id) {
        log::debug!("session {session}: its client went away; request {id} is cancelled");
        self.cancel(session, id);
    }

    fn on_notification(&self, session: &Session, method: &str, params: Option<&RawValue>) {
        if method == "notifications/roots/list_changed" {
            // The servers ask for the roots again; their request goes to an agent with a call in
            // flight, as every server request does.
            for conn in self.merger.routes().connections() {
                conn.notify("notifications/roots/list_changed", None);
            }
            return;
        }
        if method != "notifications/cancelled" {
            return;
        }
        let Some(cancel) = params.and_then(|p| serde_json::from_str::<CancelParams>(p.get()).ok())
        else {
            return;
        };
        let Ok(id) = Id::from_raw(&cancel.request_id) else {
            return;
        };
        // A listen ends this way on stdio.
        self.merger.send(Request::EndListen {
            session: session.id(),
            id: id.clone(),
        });
        self.cancel(session.id(), &id);
    }

    /// Request `id` of `session` is owed nothing any more: dropped where it waits (startup, a
    /// person's approval) or cancelled at the connection that holds it.
    fn cancel(&self, session: SessionId, id: &Id) {
        if !self.merger.is_ready() {
            let mut early = lock(&self.cancelled_early);
            if early.len() < crate::merger::MAX_HELD {
                early.insert((session, id.clone()));
            }
        }
        // A call still waiting for a person is dropped, never forwarded.
        let held = read(&self.approvals).clone();
        if let Some(approvals) = held {
            if approvals.cancel(&(session, id.to_string())) {
                return;
            }
        }
        // The connection holding the request is not tracked here; each connection checks its own
        // table, which is cheaper than keeping a second table in step.
        for conn in self.merger.routes().connections() {
            conn.cancel(session, id.clone());
        }
    }

    fn initialize(&self, session: &Session, responder: Responder, params: Option<&RawValue>) {
        let (requested, declared) =
            match params.map(|p| serde_json::from_str::<InitializeParams>(p.get())) {
                Some(Ok(p)) => (p.protocol_version, p.capabilities),
                None => (None, None),
                Some(Err(_)) => {
                    responder.error(code::INVALID_PARAMS, "initialize: params must be an object");
                    return;
                }
            };
        *lock(&session.client) = ClientCaps::from_capabilities(declared.as_ref());
        session.initialized.store(true, Ordering::SeqCst);
        self.merger.send(Request::ReleaseWhenReady {
            responder,
            version: mcp::negotiate(requested.as_deref()),
        });
    }

    fn list(&self, responder: Responder, params: Option<&RawValue>, kind: ListKind) {
        let cursor = match params.map(|p| serde_json::from_str::<ListParams>(p.get())) {
            Some(Ok(p)) => p.cursor,
            None => None,
            Some(Err(_)) => {
                let message = format!("{}: params must be an object", kind.method());
                responder.error(code::INVALID_PARAMS, &message);
                return;
            }
        };
        let key = ViewKey {
            workspace: self.workspace.clone(),
            scope: None,
            kind,
        };
        self.merger.send(Request::List {
            key,
            cursor,
            responder,
        });
    }
}

/// The methods that need an initialized session.
const SESSION_METHODS: [&str; 12] = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "notifications/roots/list_changed",
];

/// Params kept past the message they came in (a completion run once startup settles).
fn params_owned(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    params.map(ToOwned::to_owned)
}

//! Gate: the upstream MCP endpoint that agents talk to.
//!
//! Owns: the upstream protocol: `initialize` (version negotiation, capabilities), `ping`,
//! `tools/list` (answered by the merger), `tools/call` (routed by prefix to its connection with
//! the name rewritten), `notifications/cancelled`, and -32601 at once for every other method
//! (`server/discover` included) so dual-era clients fall back without waiting.
//! Never: blocks. Every request is handed on (to the merger or a connection) with a `Responder`,
//! so a slow `tools/call` never delays a `ping` or another call. Never logs arguments or results.
//!
//! Transports (stdio in [`stdio`], HTTP in `api::mcp_http`) frame and parse each message once and
//! hand it, with its parsed `tools/call` params, to [`Gate::handle_parsed`]. A `tools/call` is parsed once ([`call::ToolCall`]) and its policy verdict
//! decided once, here, where it is routed.

pub(crate) mod call;
pub(crate) mod runtime;
pub(crate) mod stdio;
pub(crate) mod tap;

pub(crate) use call::{ToolCall, VerdictSlot};

use crate::approvals::{self, Approvals, Release, ReleaseFn};
use crate::config::Settings;
use crate::downstream::{CallRequest, ConnHandle};
use crate::jsonrpc::{self, code, Id, Message, Responder, SessionId, Sink};
use crate::mcp;
use crate::merger::{MergerHandle, Request, ViewKey};
use crate::policy::{Facts, Policy, Verdict};
use crate::thread::{lock, read, write};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One upstream peer's session.
#[derive(Debug)]
pub(crate) struct Session {
    sink: Sink,
    initialized: AtomicBool,
    /// The authenticated caller (an HTTP agent's id), passed to `partner` connections.
    agent: Option<String>,
}

impl Session {
    /// A session that answers through `sink`.
    pub(crate) fn new(sink: Sink) -> Session {
        Session {
            sink,
            initialized: AtomicBool::new(false),
            agent: None,
        }
    }

    /// A session that has already been through `initialize` (a later request of an HTTP session).
    pub(crate) fn initialized(sink: Sink) -> Session {
        Session {
            sink,
            initialized: AtomicBool::new(true),
            agent: None,
        }
    }

    /// The same session, known to be `agent` (authenticated by the transport, never by a
    /// message's content).
    pub(crate) fn with_agent(mut self, agent: impl Into<String>) -> Session {
        self.agent = Some(agent.into());
        self
    }

    /// The session's id.
    pub(crate) fn id(&self) -> SessionId {
        self.sink.session()
    }

    /// Where this session's messages go.
    pub(crate) fn sink(&self) -> &Sink {
        &self.sink
    }
}

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
        let route = routes.get(tool);
        let facts = Facts {
            trusted: route.is_some_and(|r| r.conn.trusted()),
            annotations: route.and_then(|r| r.annotations.as_deref()),
        };
        self.current_policy()
            .decide_with(tool, agent, facts)
            .verdict
    }

    fn current_policy(&self) -> Arc<Policy> {
        Arc::clone(&read(&self.policy))
    }

    /// Applies `policy` to every call from now on.
    pub(crate) fn set_policy(&self, policy: Policy) {
        *write(&self.policy) = Arc::new(policy);
    }

    /// Holds an escalated call for a person in `approvals`.
    fn hold(
        &self,
        approvals: &Approvals,
        conn: ConnHandle,
        req: CallRequest,
        tool: &str,
        policy: &Policy,
    ) {
        let arguments = req
            .params
            .get("arguments")
            .map_or("", |a| a.get())
            .to_owned();
        let agent = req.agent.clone();
        let caller = (req.responder.session(), req.responder.id().to_string());
        // An agent that asked for progress hears, every few seconds, that its call still waits
        // (which also keeps its HTTP answer stream alive).
        let keepalive: Option<approvals::KeepaliveFn> = req.progress_token.clone().map(|token| {
            let sink = req.responder.sink().clone();
            Box::new(move |beat: u64| {
                let line = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{},\"progress\":{beat},\"message\":\"waiting for a person's approval\"}}}}",
                    token.get()
                );
                sink.send(line.into_bytes());
            }) as approvals::KeepaliveFn
        });
        let shown: String = tool.chars().take(200).collect();
        let release: ReleaseFn = Box::new(move |release| match release {
            Release::Approve => conn.call(req),
            Release::Deny => req.responder.error(
                code::POLICY_DENIED,
                &format!("{shown:?} was denied by a person"),
            ),
            Release::Expire => req.responder.error(
                code::POLICY_DENIED,
                &format!("{shown:?} was not approved in time"),
            ),
            Release::Full => req.responder.error(
                code::OVERLOADED,
                "too many calls are waiting for approval, or the gate is stopping; try again later",
            ),
            // A call the agent cancelled is owed nothing.
            Release::Cancel => drop(req),
            Release::Stopped => req.responder.error(
                code::SERVER_UNAVAILABLE,
                &format!("{shown:?} was waiting for approval and its workspace stopped"),
            ),
        });
        let request = approvals::Request {
            workspace: &self.workspace,
            agent: agent.as_deref(),
            tool,
            arguments: &arguments,
            timeout: policy.approval_timeout(),
            webhooks: policy.webhooks.clone(),
            caller,
        };
        if let Err(e) = approvals.hold(request, release, keepalive) {
            log::warn!(
                "workspace {}: cannot hold a call for approval: {e:?}",
                self.workspace
            );
        }
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
                let responder = Responder::new(id, session.sink.clone());
                let call = (method == "tools/call")
                    .then(|| call.unwrap_or_else(|| ToolCall::parse(params.as_deref())));
                self.on_request(session, responder, &method, params.as_deref(), call);
            }
            Ok(Message::Notification { method, params }) => {
                self.on_notification(session, &method, params.as_deref())
            }
            // The gate sends agents no requests, so there is nothing to match an answer to.
            Ok(Message::Response { .. }) => {}
        }
    }

    /// Merged-view cache hits and misses of this gate's merger.
    pub(crate) fn cache_stats(&self) -> (u64, u64) {
        self.merger.cache_stats()
    }

    /// From now on, tell `sink`'s session about list changes through `sink`.
    pub(crate) fn subscribe(&self, sink: Sink) {
        self.merger.send(Request::Subscribe(sink));
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
        let initialized = session.initialized.load(Ordering::SeqCst);
        match (method, call) {
            ("initialize", _) => self.initialize(session, responder, params),
            ("ping", _) => responder.result("{}"),
            ("tools/list" | "tools/call", _) if !initialized => responder.error(
                code::NOT_INITIALIZED,
                "the session is not initialized: send initialize first",
            ),
            ("tools/list", _) => self.list(responder, params),
            ("tools/call", Some(call)) if !self.merger.is_ready() => {
                // Routes are incomplete until every child has listed: run the call after that.
                let gate = Arc::clone(self);
                let agent = session.agent.clone();
                let run = move |responder: Responder| {
                    let key = (responder.session(), responder.id().clone());
                    let cancelled = lock(&gate.cancelled_early).remove(&key);
                    // A call the agent cancelled while it waited is owed nothing.
                    if !cancelled {
                        gate.call(responder, call, agent);
                    }
                };
                self.merger.send(Request::WhenReady {
                    responder,
                    run: Box::new(run),
                });
            }
            ("tools/call", Some(call)) => self.call(responder, call, session.agent.clone()),
            _ => {
                let shown: String = method.chars().take(100).collect();
                responder.error(
                    code::METHOD_NOT_FOUND,
                    &format!("method not found: {shown}"),
                )
            }
        }
    }

    fn on_notification(&self, session: &Session, method: &str, params: Option<&RawValue>) {
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
        if !self.merger.is_ready() {
            let mut early = lock(&self.cancelled_early);
            if early.len() < crate::merger::MAX_HELD {
                early.insert((session.id(), id.clone()));
            }
        }
        // A call still waiting for a person is dropped, never forwarded.
        let held = read(&self.approvals).clone();
        if let Some(approvals) = held {
            if approvals.cancel(&(session.id(), id.to_string())) {
                return;
            }
        }
        // The connection holding the request is not tracked here; each connection checks its own
        // table, which is cheaper than keeping a second table in step.
        for conn in self.merger.routes().connections() {
            conn.cancel(session.id(), id.clone());
        }
    }

    fn initialize(&self, session: &Session, responder: Responder, params: Option<&RawValue>) {
        let requested = match params.map(|p| serde_json::from_str::<InitializeParams>(p.get())) {
            Some(Ok(p)) => p.protocol_version,
            None => None,
            Some(Err(_)) => {
                responder.error(code::INVALID_PARAMS, "initialize: params must be an object");
                return;
            }
        };
        let result = serde_json::json!({
            "protocolVersion": mcp::negotiate(requested.as_deref()),
            "capabilities": { "tools": { "listChanged": true } },
            "serverInfo": {
                "name": mcp::IMPLEMENTATION_NAME,
                "version": mcp::IMPLEMENTATION_VERSION,
            },
        });
        session.initialized.store(true, Ordering::SeqCst);
        self.merger.send(Request::ReleaseWhenReady {
            responder,
            result: result.to_string(),
        });
    }

    fn list(&self, responder: Responder, params: Option<&RawValue>) {
        let cursor = match params.map(|p| serde_json::from_str::<ListParams>(p.get())) {
            Some(Ok(p)) => p.cursor,
            None => None,
            Some(Err(_)) => {
                responder.error(code::INVALID_PARAMS, "tools/list: params must be an object");
                return;
            }
        };
        let key = ViewKey {
            workspace: self.workspace.clone(),
            scope: None,
        };
        self.merger.send(Request::List {
            key,
            cursor,
            responder,
        });
    }

    /// Decides the policy's verdict on `call` once (recorded in its slot for the transport's
    /// audit record), then routes, holds or refuses it.
    fn call(&self, responder: Responder, call: ToolCall, agent: Option<String>) {
        let routes = self.merger.routes();
        let route = routes.get(call.tool());
        let facts = Facts {
            trusted: route.is_some_and(|r| r.conn.trusted()),
            annotations: route.and_then(|r| r.annotations.as_deref()),
        };
        let policy = self.current_policy();
        let verdict = policy
            .decide_with(call.tool(), agent.as_deref(), facts)
            .verdict;
        call.decide(verdict);
        let (conn, prepared) = match prepare_call(call, route) {
            Ok(ready) => ready,
            Err(e) => {
                let (code, message) = e.code_and_message();
                return responder.error(code, &message);
            }
        };
        let req = CallRequest {
            responder,
            method: "tools/call".into(),
            params: prepared.params,
            meta: prepared.meta,
            progress_token: prepared.progress_token,
            timeout: self.settings.call_timeout,
            agent: agent.clone(),
        };
        let approvals = read(&self.approvals).clone();
        match (verdict, approvals) {
            (Verdict::Allow, _) => return conn.call(req),
            (Verdict::Escalate, Some(approvals)) => {
                return self.hold(&approvals, conn, req, &prepared.merged, &policy)
            }
            // Denied, or escalated where no approvals are kept (fail closed).
            (Verdict::Deny | Verdict::Escalate, _) => {}
        }
        let message = policy
            .refusal(&prepared.merged, agent.as_deref(), facts)
            .unwrap_or_default();
        log::info!(
            "workspace {}: policy refused {:?} for {:?}",
            self.workspace,
            prepared.merged.chars().take(200).collect::<String>(),
            agent
        );
        req.responder.error(code::POLICY_DENIED, &message);
    }
}

/// Rewrites a call for its connection: the downstream name, `_meta` without what only the gate
/// may say, the progress token taken out (the connection maps its own).
fn prepare_call(
    call: ToolCall,
    route: Option<&crate::merger::Route>,
) -> Result<(ConnHandle, PreparedCall), CallError> {
    let (name, mut params) = call.into_parts()?;
    let shown: String = name.chars().take(200).collect();
    let Some(route) = route else {
        return Err(CallError::Params(format!("unknown tool: {shown:?}")));
    };
    if let Some(reason) = &route.blocked {
        return Err(CallError::Blocked(format!("tool {shown:?} is {reason}")));
    }
    let downstream_name =
        serde_json::value::to_raw_value(&route.tool).map_err(|e| e.to_string())?;
    params.insert("name".into(), downstream_name);
    // Kept raw: values the agent sends on are never re-serialized by the gate.
    let mut meta = match params.remove("_meta") {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get())
                .map_err(|_| "tools/call: params._meta must be an object".to_owned())?,
        ),
    };
    // Only the gate says which agent calls.
    if let Some(m) = meta.as_mut() {
        m.remove(crate::mcp::AGENT_META);
    }
    let progress_token = match meta.as_mut().and_then(|m| m.remove("progressToken")) {
        Some(token) if is_string_or_integer(&token) => Some(token),
        Some(_) => {
            return Err(CallError::Params(
                "tools/call: progressToken must be a string or number".into(),
            ))
        }
        None => None,
    };
    let call = PreparedCall {
        merged: name,
        params,
        meta,
        progress_token,
    };
    Ok((route.conn.clone(), call))
}

enum CallError {
    Params(String),
    Blocked(String),
}

impl CallError {
    fn code_and_message(self) -> (i64, String) {
        match self {
            CallError::Params(message) => (code::INVALID_PARAMS, message),
            CallError::Blocked(message) => (code::TOOL_BLOCKED, message),
        }
    }
}

impl From<String> for CallError {
    fn from(message: String) -> CallError {
        CallError::Params(message)
    }
}

/// A progress token is a string or an integer (MCP `ProgressToken`).
fn is_string_or_integer(raw: &RawValue) -> bool {
    Id::from_raw(raw).is_ok()
}

struct PreparedCall {
    /// The name the agent called (before routing), which policies match.
    merged: String,
    params: BTreeMap<String, Box<RawValue>>,
    meta: Option<BTreeMap<String, Box<RawValue>>>,
    progress_token: Option<Box<RawValue>>,
}

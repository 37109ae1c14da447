//! MCP over Streamable HTTP at `/mcp/{workspace}` (the 2025-03-26 … 2025-11-25 shape).
//!
//! Owns: the transport rules: `Host` (421) and `Origin` (403) allowlists, the agent's bearer key
//! bound to the workspace (401), `POST` for messages, `GET` for the session's server-initiated
//! event stream (handed to [`super::streams`]), `DELETE` to end a session, the `Accept` check
//! (406), the `MCP-Protocol-Version` check (400), the body limit (413), `Mcp-Session-Id` issued on
//! `initialize` (cryptographically random; 404 for an unknown or ended one), 202 for
//! notifications, and the answer to a request as JSON, or as server-sent events when progress
//! notifications come before it. `notifications/tools/list_changed` goes to the session's GET
//! stream when it has one; otherwise it waits for the session's next request and goes first in
//! its event stream (whichever takes it first from the session's queue; never both).
//! Never: waits on a request longer than its deadline plus a margin; never lists or calls a tool
//! for an agent of another workspace.

use super::delegated::{self, Admitted};
use super::http::{self, ApiError};
use super::rest::partners::partner_caller;
use super::streams::NewStream;
use super::{lock, Api};
use crate::crypto::secret::{hash_secret, hashes_equal, random_hex};
use crate::delegation;
use crate::gate::Session;
use crate::jsonrpc::{self, Id, Message, Sink};
use crate::mcp;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions kept at once; a new `initialize` beyond is refused with 503.
const MAX_SESSIONS: usize = 10_000;
/// A session unused this long is forgotten (clients that vanish without `DELETE` would otherwise
/// fill the table and lock every new agent out).
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Lines an answer's queue holds (progress notifications and the answer).
const ANSWER_QUEUE: usize = 256;
/// List changes kept for a session's next request: one says it all.
const NOTES_QUEUE: usize = 1;
/// Added to a request's own deadline before the transport gives up on it.
const MARGIN: Duration = Duration::from_secs(10);

/// One MCP session over HTTP.
pub(super) struct HttpSession {
    pub(super) workspace: String,
    pub(super) agent_id: String,
    /// The id the gate knows the session by (cancellations match on it).
    numeric: u64,
    /// `notifications/tools/list_changed` waiting for the session's next request.
    notes: Receiver<Vec<u8>>,
    /// When the session last carried a request.
    last_used: Instant,
    /// Whether a GET stream of the session is open (such a session is in use, never idle).
    streaming: Arc<AtomicBool>,
}

/// Takes out the sessions idle longer than `idle` at `now`.
fn forget_idle(
    sessions: &mut std::collections::HashMap<String, HttpSession>,
    now: Instant,
    idle: Duration,
) -> Vec<HttpSession> {
    take_sessions(sessions, |s| {
        now.saturating_duration_since(s.last_used) >= idle && !s.streaming.load(Ordering::SeqCst)
    })
}

/// Takes out the sessions that `pick` selects.
fn take_sessions(
    sessions: &mut std::collections::HashMap<String, HttpSession>,
    pick: impl Fn(&HttpSession) -> bool,
) -> Vec<HttpSession> {
    let ids: Vec<String> = sessions
        .iter()
        .filter(|(_, s)| pick(s))
        .map(|(id, _)| id.clone())
        .collect();
    ids.iter().filter_map(|id| sessions.remove(id)).collect()
}

/// Ends the sessions `pick` selects (an agent revoked): the merger stops queueing for them.
pub(super) fn end_sessions(api: &Api, pick: impl Fn(&HttpSession) -> bool) {
    let ended = take_sessions(&mut lock(&api.sessions), pick);
    unsubscribe(api, ended);
}

/// Tells each ended session's gate to stop queueing list changes for it. Takes the runtimes
/// lock, so call it without the sessions lock held.
fn unsubscribe(api: &Api, ended: Vec<HttpSession>) {
    for session in ended {
        if let Some(runtime) = lock(&api.runtimes).get(&session.workspace) {
            runtime.gate().unsubscribe(session.numeric);
        }
    }
}

/// Serves one request; returns the status it answered with (for the metrics).
pub(super) fn handle(api: &Api, mut request: tiny_http::Request, path: &str) -> u16 {
    match serve(api, &mut request, path) {
        Ok(Reply::Json {
            status,
            body,
            session,
        }) => {
            respond(request, status, body, session);
            status
        }
        Ok(Reply::Accepted) => {
            respond(request, 202, String::new(), None);
            202
        }
        Ok(Reply::NoContent) => {
            respond(request, 204, String::new(), None);
            204
        }
        Ok(Reply::Refused {
            status,
            body,
            retry_after,
        }) => {
            let mut response = tiny_http::Response::from_string(body).with_status_code(status);
            response = with_header(response, "Content-Type", "application/json");
            if let Some(secs) = retry_after {
                response = with_header(response, "Retry-After", &secs.to_string());
            }
            let _ = request.respond(response);
            status
        }
        Ok(Reply::EventStream {
            session,
            notes,
            streaming,
        }) => {
            open_stream(api, request, session, notes, streaming);
            200
        }
        Ok(Reply::Stream(mut body)) => {
            let (call, last) = (body.call.take(), Arc::clone(&body.last));
            stream(request, *body);
            if let Some((started, record)) = call {
                let last = last.lock().unwrap_or_else(|p| p.into_inner()).take();
                let outcome = last.map_or_else(|| "no_answer".to_owned(), |l| answer_outcome(&l));
                api.record_call(&record, outcome, started.elapsed());
            }
            200
        }
        Err(e) => {
            let allow_post = e.status == 405;
            let mut response =
                tiny_http::Response::from_string(e.body()).with_status_code(e.status);
            response = with_header(response, "Content-Type", "application/json");
            if allow_post {
                response = with_header(response, "Allow", "GET, POST, DELETE");
            }
            let _ = request.respond(response);
            e.status
        }
    }
}

enum Reply {
    Json {
        status: u16,
        body: String,
        session: Option<String>,
    },
    Accepted,
    NoContent,
    Stream(Box<SseBody>),
    /// A delegated request refused: a JSON-RPC error with 401, 403 or 429.
    Refused {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A session's GET stream: the head goes out, then the stream is handed over.
    EventStream {
        session: String,
        notes: Receiver<Vec<u8>>,
        streaming: Arc<AtomicBool>,
    },
}

fn serve(api: &Api, request: &mut tiny_http::Request, path: &str) -> Result<Reply, ApiError> {
    let workspace = path
        .strip_prefix("/mcp/")
        .filter(|w| !w.is_empty() && !w.contains('/'))
        .ok_or_else(|| ApiError::not_found("MCP endpoints are /mcp/{workspace}"))?
        .to_owned();
    check_host(api, request)?;
    check_origin(api, request)?;
    let caller = authenticate(api, request, &workspace)?;
    if let Caller::Unbound = caller {
        let refused = delegated::Refused::unauthorized();
        return Ok(Reply::Refused {
            status: refused.status(),
            body: refused.body(None),
            retry_after: None,
        });
    }
    match request.method() {
        tiny_http::Method::Post => {}
        tiny_http::Method::Get => {
            return match identify(api, &caller, &workspace, &[], None, None) {
                Ok((agent_id, _)) => event_stream(api, request, &workspace, &agent_id),
                Err(refused) => Ok(refused),
            }
        }
        tiny_http::Method::Delete => {
            return match identify(api, &caller, &workspace, &[], None, None) {
                Ok((agent_id, _)) => end_session(api, request, &workspace, &agent_id),
                Err(refused) => Ok(refused),
            }
        }
        _ => return Err(ApiError::method_not_allowed()),
    }
    let gate = lock(&api.runtimes)
        .get(&workspace)
        .map(|r| std::sync::Arc::clone(r.gate()))
        .ok_or_else(|| ApiError::not_found(format!("workspace {workspace} is not active")))?;
    check_version(request)?;
    let accept = http::header(request, "Accept")
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    let accepts_json = accept.contains("application/json") || accept.contains("*/*");
    let accepts_sse = accept.contains("text/event-stream") || accept.contains("*/*");
    if !accepts_json && !accepts_sse {
        return Err(ApiError::new(
            406,
            "not_acceptable",
            "Accept must allow application/json or text/event-stream",
        ));
    }
    let body = http::json_body(request, api.options.max_body)?;
    let message = match jsonrpc::parse(&body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Reply::Json {
                status: 400,
                body: String::from_utf8_lossy(&e.to_error_line()).into_owned(),
                session: None,
            })
        }
    };
    let call_of = called(&message);
    let tool = call_of.as_ref().map(|c| c.tool.as_str());
    let (agent_id, admitted) = match identify(api, &caller, &workspace, &body, Some(&message), tool)
    {
        Ok(who) => who,
        Err(refused) => return Ok(refused),
    };
    let SessionRef {
        numeric,
        new_id: new_session,
        notes,
    } = session_for(api, request, &workspace, &agent_id, &message, &gate)?;
    let (tx, rx) = crossbeam_channel::bounded(ANSWER_QUEUE);
    let sink = Sink::new(numeric, tx);
    let session = if new_session.is_some() {
        Session::new(sink)
    } else {
        Session::initialized(sink)
    }
    .with_agent(agent_id.as_str());
    let Message::Request { id, method, .. } = &message else {
        gate.handle(&session, &body);
        return Ok(Reply::Accepted);
    };
    // The policy's verdict, once: the audit record keeps it, and an escalated call may wait for
    // a person before the server even sees it.
    let verdict = tool.map(|t| gate.verdict(t, Some(agent_id.as_str())));
    let approval = match verdict {
        Some(crate::policy::Verdict::Escalate) => gate.approval_timeout().unwrap_or_default(),
        _ => std::time::Duration::ZERO,
    };
    let wait = if method == "initialize" {
        api.settings.startup_timeout + api.settings.init_timeout
    } else {
        // A call a person must approve may wait that long first.
        api.settings.call_timeout + approval
    } + MARGIN;
    let id = id.clone();
    let call = match (&call_of, verdict) {
        (Some(c), Some(verdict)) => Some(CallRecord::new(
            &workspace,
            &agent_id,
            admitted.as_ref(),
            c,
            verdict,
        )),
        _ => None,
    };
    let started = Instant::now();
    gate.handle(&session, &body);
    drop(session);
    // List changes since the session's last request go first, when the client takes a stream.
    let mut waiting: Vec<Vec<u8>> = notes.try_iter().take(1).collect();
    while notes.try_recv().is_ok() {}
    if !accepts_sse || method == "initialize" {
        waiting.clear();
    }
    if let (Some(admitted), "tools/list") = (&admitted, method.as_str()) {
        // A partner's listing is filtered, so it comes as one JSON answer (no event stream).
        let reply = answer(rx, &id, started + wait, false, Vec::new(), new_session);
        return reply.map(|r| only_permitted(r, admitted));
    }
    let mut reply = answer(rx, &id, started + wait, accepts_sse, waiting, new_session);
    if let Some(call) = call {
        match &mut reply {
            // Recorded once the stream has carried its answer (see `handle`).
            Ok(Reply::Stream(body)) => body.call = Some((started, call)),
            _ => api.record_call(&call, outcome(&reply), started.elapsed()),
        }
    }
    reply
}

/// What the audit trail keeps of a `tools/call` besides its outcome and latency.
pub(super) struct CallRecord {
    pub(super) workspace: String,
    pub(super) agent: String,
    /// For a delegated call: `iss` and `jti`.
    pub(super) delegation: Option<(String, String)>,
    pub(super) tool: String,
    /// SHA-256 of the exact `arguments` bytes (never the arguments themselves).
    pub(super) arguments: String,
    /// What the workspace's policy said.
    pub(super) verdict: crate::policy::Verdict,
}

impl CallRecord {
    fn new(
        workspace: &str,
        agent: &str,
        admitted: Option<&Admitted>,
        called: &Called,
        verdict: crate::policy::Verdict,
    ) -> Self {
        let arguments = called.arguments.as_ref().map_or("", |a| a.get());
        CallRecord {
            workspace: workspace.to_owned(),
            agent: agent.to_owned(),
            delegation: admitted.and_then(|a| a.delegation.clone()),
            tool: called.tool.chars().take(200).collect(),
            arguments: crate::audit::argument_hash(arguments.as_bytes()),
            verdict,
        }
    }
}

/// The outcome label of a `tools/call` answer, for the metrics.
fn outcome(reply: &Result<Reply, ApiError>) -> String {
    match reply {
        Ok(Reply::Json { body, .. }) => answer_outcome(body.as_bytes()),
        Ok(Reply::Stream(_)) => "no_answer".to_owned(),
        Ok(Reply::Refused { .. }) => "refused".to_owned(),
        Ok(Reply::Accepted | Reply::NoContent | Reply::EventStream { .. }) => "invalid".to_owned(),
        Err(_) => "timeout".to_owned(),
    }
}

/// The outcome label of one JSON-RPC answer to a `tools/call`.
fn answer_outcome(line: &[u8]) -> String {
    jsonrpc::outcome_label(line)
}

fn check_host(api: &Api, request: &tiny_http::Request) -> Result<(), ApiError> {
    let host = http::header(request, "Host").unwrap_or_default();
    let allowed =
        api.options.allowed_hosts.contains(host) || lock(&api.listen_hosts).contains(host);
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            421,
            "misdirected_request",
            "the Host header is not one this gate serves",
        ))
    }
}

fn check_origin(api: &Api, request: &tiny_http::Request) -> Result<(), ApiError> {
    match http::header(request, "Origin") {
        None => Ok(()),
        Some(origin) if api.options.allowed_origins.contains(origin) => Ok(()),
        Some(_) => Err(ApiError::new(
            403,
            "forbidden_origin",
            "the Origin is not allowed (serve --allow-origin)",
        )),
    }
}

/// The agent whose key this is, when it is bound to `workspace` and not revoked.
/// Who is calling, as far as the headers tell.
enum Caller {
    /// An agent of the workspace, by its key (its id).
    Agent(String),
    /// A partner's gate: its delegation token, checked against each request's body.
    Partner(String),
    /// A delegation header on a workspace no partner is bound to: refused before anything else.
    Unbound,
    /// An agent named by a verified identity token (JWT), limited to its scopes when it has some.
    Token {
        agent: String,
        scope: Option<crate::glob::Scope>,
    },
}

/// The caller's identity for the session table, and for a partner what it may use. Agents are
/// known already; a partner's token is checked here, with the exact body and the tool called.
fn identify(
    api: &Api,
    caller: &Caller,
    workspace: &str,
    body: &[u8],
    message: Option<&Message>,
    called: Option<&str>,
) -> Result<(String, Option<Admitted>), Reply> {
    let token = match caller {
        Caller::Agent(id) => return Ok((id.clone(), None)),
        Caller::Token { agent, scope } => {
            let Some(scope) = scope else {
                return Ok((agent.clone(), None));
            };
            let admitted = Admitted::scoped(scope.clone());
            if let Some(tool) = called.filter(|t| !admitted.permits(t)) {
                log::info!(
                    "{agent} may not call {:?}: outside its token's scopes",
                    tool.chars().take(200).collect::<String>()
                );
                let refused = delegated::Refused::forbidden();
                let id = match message {
                    Some(Message::Request { id, .. }) => Some(id),
                    _ => None,
                };
                return Err(Reply::Refused {
                    status: refused.status(),
                    body: refused.body(id),
                    retry_after: None,
                });
            }
            return Ok((agent.clone(), Some(admitted)));
        }
        Caller::Partner(token) => token,
        Caller::Unbound => {
            let refused = delegated::Refused::unauthorized();
            return Err(Reply::Refused {
                status: refused.status(),
                body: refused.body(None),
                retry_after: None,
            });
        }
    };
    let request = delegated::Request {
        token,
        workspace,
        body,
        tool: called.unwrap_or_default(),
        is_call: called.is_some(),
    };
    match api.delegation.check(api, &request) {
        Ok(admitted) => {
            let org = admitted
                .delegation
                .as_ref()
                .map_or("", |(org, _)| org.as_str());
            Ok((partner_caller(org), Some(admitted)))
        }
        Err(refused) => {
            let id = match message {
                Some(Message::Request { id, .. }) => Some(id),
                _ => None,
            };
            Err(Reply::Refused {
                status: refused.status(),
                body: refused.body(id),
                retry_after: refused.retry_after,
            })
        }
    }
}

/// What a message calls: for a `tools/call`, the name exactly as the gate will route it (its
/// parser: the params as a map of raw values, where the last of duplicate keys wins; `""` when
/// the gate would find none); `None` for any other message.
fn called(message: &Message) -> Option<Called> {
    let (method, params) = match message {
        Message::Request { method, params, .. } | Message::Notification { method, params } => {
            (method, params)
        }
        Message::Response { .. } => return None,
    };
    if method != "tools/call" {
        return None;
    }
    let mut map = params
        .as_ref()
        .and_then(|p| {
            serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(p.get()).ok()
        })
        .unwrap_or_default();
    let tool = map
        .get("name")
        .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
        .unwrap_or_default();
    Some(Called {
        tool,
        arguments: map.remove("arguments"),
    })
}

/// What a `tools/call` calls, parsed once per request: the name exactly as the gate will route
/// it and the raw arguments (for the audit trail's hash).
struct Called {
    tool: String,
    arguments: Option<Box<RawValue>>,
}

/// A partner's `tools/list` answer with only the tools it may call.
fn only_permitted(reply: Reply, admitted: &Admitted) -> Reply {
    let Reply::Json {
        status,
        body,
        session,
    } = reply
    else {
        return reply;
    };
    let body = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(mut answer) => {
            if let Some(tools) = answer
                .pointer_mut("/result/tools")
                .and_then(serde_json::Value::as_array_mut)
            {
                tools.retain(|t| {
                    t.get("name")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|name| admitted.permits(name))
                });
            }
            answer.to_string()
        }
        // Never pass an answer on unfiltered.
        Err(_) => String::from_utf8_lossy(&jsonrpc::error_line(
            None,
            jsonrpc::code::INTERNAL_ERROR,
            "the tool list could not be filtered",
        ))
        .into_owned(),
    };
    Reply::Json {
        status,
        body,
        session,
    }
}

fn authenticate(
    api: &Api,
    request: &tiny_http::Request,
    workspace: &str,
) -> Result<Caller, ApiError> {
    // A partner's gate signs each request; its token is checked once the body is read. Before
    // that, a workspace no partner is bound to answers 401 at once, so an unverified header
    // cannot be used to learn which workspaces exist.
    if let Some(token) = http::header(request, delegation::token::HEADER) {
        let bound = lock(&api.store)
            .state()
            .partners
            .values()
            .any(|p| p.workspace_id == workspace);
        if !bound {
            log::info!(
                "delegation rejected (no partner for workspace {:?}): iss=- sub=- tool=- jti=-",
                workspace.chars().take(200).collect::<String>()
            );
        }
        return Ok(if bound {
            Caller::Partner(token.to_owned())
        } else {
            Caller::Unbound
        });
    }
    let key = http::bearer(request).ok_or_else(ApiError::unauthorized)?;
    let hash = hash_secret(key);
    let agent = lock(&api.store)
        .state()
        .agents
        .values()
        .find(|a| !a.revoked && a.workspace_id == workspace && hashes_equal(&a.key_hash, &hash))
        .map(|a| Caller::Agent(a.id.clone()));
    match agent {
        Some(caller) => Ok(caller),
        // Not an agent key: the workspace's identity provider may vouch for it.
        None => api
            .verify_identity_token(workspace, key)
            .map(|identity| Caller::Token {
                agent: format!("jwt:{}", identity.agent),
                scope: identity.scope,
            })
            .ok_or_else(ApiError::unauthorized),
    }
}

/// The gate's session number for this message, and the new `Mcp-Session-Id` on `initialize`.
/// What a message's session is: the gate's number for it, the new `Mcp-Session-Id` on
/// `initialize`, and the notifications waiting for it.
struct SessionRef {
    numeric: u64,
    new_id: Option<String>,
    notes: Receiver<Vec<u8>>,
}

fn session_for(
    api: &Api,
    request: &tiny_http::Request,
    workspace: &str,
    agent_id: &str,
    message: &Message,
    gate: &crate::gate::Gate,
) -> Result<SessionRef, ApiError> {
    if matches!(message, Message::Request { method, .. } if method == "initialize") {
        let forgotten = forget_idle(&mut lock(&api.sessions), Instant::now(), SESSION_IDLE);
        if !forgotten.is_empty() {
            log::info!(
                "forgot {} MCP sessions idle for {SESSION_IDLE:?}",
                forgotten.len()
            );
            unsubscribe(api, forgotten);
        }
        let mut sessions = lock(&api.sessions);
        if sessions.len() >= MAX_SESSIONS {
            return Err(ApiError::new(
                503,
                "too_many_sessions",
                "too many open sessions",
            ));
        }
        let id = random_hex(16).map_err(|e| ApiError::new(500, "random", e.to_string()))?;
        let numeric = api.next_session.fetch_add(1, Ordering::SeqCst);
        // List changes wait here for the session's GET stream or its next request.
        let (tx, notes) = crossbeam_channel::bounded(NOTES_QUEUE);
        gate.subscribe(Sink::notices(numeric, tx));
        sessions.insert(
            id.clone(),
            HttpSession {
                workspace: workspace.to_owned(),
                agent_id: agent_id.to_owned(),
                numeric,
                notes: notes.clone(),
                last_used: Instant::now(),
                streaming: Arc::default(),
            },
        );
        return Ok(SessionRef {
            numeric,
            new_id: Some(id),
            notes,
        });
    }
    let header = http::header(request, "Mcp-Session-Id")
        .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required after initialize"))?;
    let mut sessions = lock(&api.sessions);
    match sessions.get_mut(header) {
        Some(s) if s.workspace == workspace && s.agent_id == agent_id => {
            s.last_used = Instant::now();
            Ok(SessionRef {
                numeric: s.numeric,
                new_id: None,
                notes: s.notes.clone(),
            })
        }
        _ => Err(ApiError::not_found("unknown or ended session")),
    }
}

fn check_version(request: &tiny_http::Request) -> Result<(), ApiError> {
    match http::header(request, "MCP-Protocol-Version") {
        Some(version) if !mcp::is_supported(version) => Err(ApiError::bad_request(format!(
            "unsupported MCP-Protocol-Version {version:?}"
        ))),
        _ => Ok(()),
    }
}

/// `GET`: the session's server-initiated stream, checked here and opened by the caller.
fn event_stream(
    api: &Api,
    request: &tiny_http::Request,
    workspace: &str,
    agent_id: &str,
) -> Result<Reply, ApiError> {
    check_version(request)?;
    let accept = http::header(request, "Accept").unwrap_or_default();
    if !accept.to_ascii_lowercase().contains("text/event-stream") {
        return Err(ApiError::new(
            406,
            "not_acceptable",
            "a GET stream needs Accept: text/event-stream",
        ));
    }
    let header = http::header(request, "Mcp-Session-Id")
        .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required"))?;
    let sessions = lock(&api.sessions);
    match sessions.get(header) {
        Some(s) if s.workspace == workspace && s.agent_id == agent_id => Ok(Reply::EventStream {
            session: header.to_owned(),
            notes: s.notes.clone(),
            streaming: Arc::clone(&s.streaming),
        }),
        _ => Err(ApiError::not_found("unknown or ended session")),
    }
}

/// Writes the stream's head and hands the stream to the `http-streams` thread.
fn open_stream(
    api: &Api,
    request: tiny_http::Request,
    session: String,
    notes: Receiver<Vec<u8>>,
    streaming: Arc<AtomicBool>,
) {
    let chunked = *request.http_version() >= tiny_http::HTTPVersion(1, 1);
    let head: &[u8] = if chunked {
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    } else {
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Connection: close\r\n\r\n"
    };
    let mut writer = request.into_writer();
    if writer
        .write_all(head)
        .and_then(|()| writer.flush())
        .is_err()
    {
        return;
    }
    let stream = NewStream {
        session,
        notes,
        writer,
        chunked,
        streaming,
    };
    if api.streams.open(stream).is_err() {
        log::warn!("the event stream thread is busy or stopped; a GET stream ends at once");
    }
}

fn end_session(
    api: &Api,
    request: &tiny_http::Request,
    workspace: &str,
    agent_id: &str,
) -> Result<Reply, ApiError> {
    let header = http::header(request, "Mcp-Session-Id")
        .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required"))?;
    let ended = {
        let mut sessions = lock(&api.sessions);
        match sessions.get(header) {
            // Only its own caller ends a session.
            Some(s) if s.workspace == workspace && s.agent_id == agent_id => {
                sessions.remove(header)
            }
            _ => None,
        }
    };
    let ended = ended.ok_or_else(|| ApiError::not_found("unknown or ended session"))?;
    unsubscribe(api, vec![ended]);
    Ok(Reply::NoContent)
}

/// Waits for the answer to `id`: JSON when it comes first, server-sent events when progress
/// notifications come before it (and the client accepts them).
fn answer(
    rx: Receiver<Vec<u8>>,
    id: &Id,
    deadline: Instant,
    accepts_sse: bool,
    waiting: Vec<Vec<u8>>,
    session: Option<String>,
) -> Result<Reply, ApiError> {
    if !waiting.is_empty() {
        let pending = waiting.iter().flat_map(|line| event(line)).collect();
        return Ok(Reply::Stream(Box::new(SseBody::new(
            rx,
            id.clone(),
            deadline,
            pending,
        ))));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if is_answer_to(&line, id) => {
                return Ok(Reply::Json {
                    status: 200,
                    body: String::from_utf8_lossy(&line).into_owned(),
                    session,
                })
            }
            Ok(line) if accepts_sse => {
                let body = SseBody::new(rx, id.clone(), deadline, event(&line));
                return Ok(Reply::Stream(Box::new(body)));
            }
            // A notification the client cannot take as a stream: dropped.
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                return Err(ApiError::new(504, "timeout", "no answer in time"));
            }
        }
    }
}

fn is_answer_to(line: &[u8], id: &Id) -> bool {
    matches!(jsonrpc::parse(line), Ok(Message::Response { id: ref got, .. }) if got == id)
        || matches!(jsonrpc::parse(line), Err(ref e) if e.id() == Some(id))
}

fn event(line: &[u8]) -> VecDeque<u8> {
    let mut out = VecDeque::with_capacity(line.len() + 24);
    out.extend(b"event: message\ndata: ");
    out.extend(line);
    out.extend(b"\n\n");
    out
}

/// Server-sent events for one request: its notifications, then its answer, then the end.
struct SseBody {
    rx: Receiver<Vec<u8>>,
    id: Id,
    deadline: Instant,
    pending: VecDeque<u8>,
    done: bool,
    /// The stream's final line (the answer, or the timeout error), for the call metrics once
    /// tiny_http has consumed the body.
    last: Arc<Mutex<Option<Vec<u8>>>>,
    /// When the `tools/call` this stream answers started (None for other methods).
    call: Option<(Instant, CallRecord)>,
}

impl SseBody {
    fn new(rx: Receiver<Vec<u8>>, id: Id, deadline: Instant, pending: VecDeque<u8>) -> SseBody {
        SseBody {
            rx,
            id,
            deadline,
            pending,
            done: false,
            last: Arc::default(),
            call: None,
        }
    }

    fn finish(&mut self, line: &[u8]) {
        self.done = true;
        self.pending = event(line);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.to_vec());
    }
}

impl Read for SseBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            if self.done {
                return Ok(0);
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if is_answer_to(&line, &self.id) => self.finish(&line),
                Ok(line) => self.pending = event(&line),
                // The headers are gone already: the stream's last event answers with a timeout,
                // so the client is not left waiting for an answer that will never come.
                // Nothing is owed any more (the request was cancelled): the stream just ends.
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
                Err(RecvTimeoutError::Timeout) => {
                    let line = jsonrpc::error_line(
                        Some(&self.id),
                        jsonrpc::code::REQUEST_TIMEOUT,
                        "no answer in time",
                    );
                    self.finish(&line);
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        for (slot, byte) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

fn with_header<R: Read>(
    response: tiny_http::Response<R>,
    name: &str,
    value: &str,
) -> tiny_http::Response<R> {
    match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

fn respond(request: tiny_http::Request, status: u16, body: String, session: Option<String>) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if status == 200 || status == 400 {
        response = with_header(response, "Content-Type", "application/json");
    }
    if let Some(id) = session {
        response = with_header(response, "Mcp-Session-Id", &id);
    }
    let _ = request.respond(response);
}

fn stream(request: tiny_http::Request, mut body: SseBody) {
    if *request.http_version() < tiny_http::HTTPVersion(1, 1) {
        // No chunked encoding before HTTP/1.1: tiny_http sends the events at the end.
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ]
        .iter()
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect();
        let response =
            tiny_http::Response::new(tiny_http::StatusCode(200), headers, body, None, None);
        let _ = request.respond(response);
        return;
    }
    // Written here, not by `respond`: its chunk encoder holds 8 KiB before it sends anything,
    // which would keep progress notifications from the client until the answer.
    let mut writer = request.into_writer();
    let _ = write_events(&mut writer, &mut body);
}

/// A chunked `200 text/event-stream` response, one chunk (flushed) per read of `body`.
fn write_events(writer: &mut dyn std::io::Write, body: &mut SseBody) -> std::io::Result<()> {
    writer.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )?;
    writer.flush()?;
    let mut buf = [0u8; 8192];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        writer.write_all(format!("{n:x}\r\n").as_bytes())?;
        writer.write_all(buf.get(..n).unwrap_or_default())?;
        writer.write_all(b"\r\n")?;
        writer.flush()?;
    }
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn session(last_used: Instant) -> HttpSession {
        HttpSession {
            workspace: "ws".into(),
            agent_id: "agent".into(),
            numeric: 1,
            notes: crossbeam_channel::bounded(1).1,
            last_used,
            streaming: Arc::default(),
        }
    }

    fn id7() -> Id {
        let raw = serde_json::value::RawValue::from_string("7".to_owned()).expect("raw");
        Id::from_raw(&raw).expect("id")
    }

    fn read_all(mut body: SseBody) -> String {
        let mut out = String::new();
        body.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn a_stream_past_its_deadline_ends_with_a_timeout_answer() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let note = jsonrpc::notification_line("notifications/tools/list_changed", None);
        let body = SseBody::new(rx, id7(), Instant::now(), event(&note));
        let out = read_all(body);
        drop(tx);
        assert!(out.starts_with("event: message\ndata: "), "{out}");
        assert!(out.contains("list_changed"), "{out}");
        let last = out.lines().rev().find_map(|l| l.strip_prefix("data: "));
        let answer: serde_json::Value = serde_json::from_str(last.expect("data")).expect("json");
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], jsonrpc::code::REQUEST_TIMEOUT);
    }

    #[test]
    fn a_stream_whose_request_was_dropped_just_ends() {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
        drop(tx);
        let body = SseBody::new(
            rx,
            id7(),
            Instant::now() + Duration::from_secs(60),
            VecDeque::new(),
        );
        assert_eq!(read_all(body), "");
    }

    #[test]
    fn idle_sessions_are_forgotten_and_recent_ones_kept() {
        let start = Instant::now();
        let idle = Duration::from_secs(60);
        let mut sessions = HashMap::new();
        sessions.insert("old".to_owned(), session(start));
        sessions.insert(
            "recent".to_owned(),
            session(start + Duration::from_secs(50)),
        );
        let now = start + Duration::from_secs(61);
        assert_eq!(forget_idle(&mut sessions, now, idle).len(), 1);
        assert!(sessions.contains_key("recent"));
        assert!(!sessions.contains_key("old"));
        assert!(forget_idle(&mut sessions, now, idle).is_empty());
    }
}

//! MCP over Streamable HTTP at `/mcp/{workspace}`, and at `/mcp` for an agent key (its workspace
//! is the key's), in the 2025-03-26 … 2025-11-25 shape: the flow of one request, from its head to
//! its answer.
//!
//! Owns: the transport rules: `Host` (421) and `Origin` (403) allowlists, the caller (401, from
//! [`super::callers`]), `POST` for messages, `GET` for the session's server-initiated event
//! stream (handed to [`super::streams`]), `DELETE` to end a session, the `Accept` check (406),
//! the `MCP-Protocol-Version` check (400), the body limit (413), `Mcp-Session-Id` issued on
//! `initialize` (by [`super::sessions`]; 404 for an unknown or ended one), 202 for
//! notifications, and the answer (by [`super::mcp_reply`]). `notifications/tools/list_changed`
//! goes to the session's GET stream when it has one; otherwise it waits for the session's next
//! request and goes first in its event stream (whichever takes it first from the session's
//! queue; never both). A `tools/call` is parsed once here ([`ToolCall`]); the gate routes that
//! parse and decides its verdict once, and the audit record names that verdict.
//! Never: waits on a request longer than its deadline plus a margin; never lists or calls a tool
//! for an agent of another workspace.

use super::callers::{self, Asked, Caller, Refusal};
use super::calls::CallInFlight;
use super::http::{self, ApiError};
use super::mcp_modern;
use super::mcp_reply::{self, Awaited, Awaiting};
use super::sessions::SessionRef;
use super::Api;
use crate::gate::{Session, ToolCall};
use crate::http::{Method, Request};
use crate::jsonrpc::{self, Message, Sink};
use crate::mcp::{self, ClientCaps};
use crate::policy::Verdict;
use crate::thread::lock;
use crossbeam_channel::Receiver;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines an answer's queue holds (progress notifications and the answer).
const ANSWER_QUEUE: usize = 256;
/// Added to a request's own deadline before the transport gives up on it.
const MARGIN: Duration = Duration::from_secs(10);

/// Serves one request; returns the status it answered with, or 200 for an answer still
/// coming (for the metrics).
pub(super) fn handle(api: &Api, request: Request, path: &str) -> u16 {
    let reply = serve(api, &request, path);
    // Noted before the client can see its answer, so a log line names the request it follows.
    let refused_401 = match &reply {
        Ok(Reply::Refused { status, .. }) => *status == 401,
        Err(e) => e.status == 401,
        Ok(_) => false,
    };
    if refused_401 {
        api.unauthorized.note(request.peer(), path);
    }
    match reply {
        Ok(Reply::Json {
            status,
            body,
            session,
        }) => {
            mcp_reply::respond_json(request, status, body.as_bytes(), session.as_deref());
            status
        }
        Ok(Reply::Accepted) => {
            request.respond(202, &[], b"");
            202
        }
        Ok(Reply::NoContent) => {
            request.respond(204, &[], b"");
            204
        }
        Ok(Reply::Refused {
            status,
            body,
            retry_after,
        }) => {
            let secs = retry_after.map(|s| s.to_string());
            let mut headers = Vec::new();
            if let Some(secs) = &secs {
                headers.push(("Retry-After", secs.as_str()));
            }
            http::respond_json_with(request, status, &headers, body.as_bytes());
            status
        }
        Ok(Reply::EventStream {
            session,
            agent,
            notes,
            streaming,
        }) => {
            api.streams
                .open_request(request, session, agent, notes, streaming, None);
            200
        }
        Ok(Reply::Awaiting(awaiting)) => {
            let records = api.records();
            let awaited = Awaited {
                request,
                awaiting: *awaiting,
            };
            if let Some(awaited) = awaited.first_look(&records) {
                api.answers.wait(awaited, &records);
            }
            200
        }
        Ok(Reply::Modern(modern)) => mcp_modern::answer(api, request, modern),
        Err(e) => {
            let status = e.status;
            let mut headers = Vec::new();
            if status == 405 && mcp_modern::is_modern(&request) {
                headers.push(("Allow", "POST"));
            } else if status == 405 {
                headers.push(("Allow", "GET, POST, DELETE"));
            }
            http::respond_json_with(request, status, &headers, e.body().as_bytes());
            status
        }
    }
}

/// What a request is answered with.
enum Reply {
    Json {
        status: u16,
        body: String,
        session: Option<String>,
    },
    Accepted,
    NoContent,
    /// The answer is coming from the gate.
    Awaiting(Box<Awaiting>),
    /// A request refused on who sent it: a JSON-RPC error with 401, 403 or 429.
    Refused {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A 2026-07-28 request's answer.
    Modern(mcp_modern::Modern),
    /// A session's GET stream: the head goes out, then the stream is handed over.
    EventStream {
        session: String,
        agent: String,
        notes: Receiver<Vec<u8>>,
        streaming: Arc<AtomicBool>,
    },
}

fn refused(refusal: Refusal) -> Reply {
    Reply::Refused {
        status: refusal.status,
        body: refusal.body,
        retry_after: refusal.retry_after,
    }
}

fn serve(api: &Api, request: &Request, path: &str) -> Result<Reply, ApiError> {
    let workspace = if path == "/mcp" {
        // Clients that append `/mcp` to a base URL: an agent key names its one workspace.
        callers::workspace_of_key(api, request)?
    } else {
        path.strip_prefix("/mcp/")
            .filter(|w| !w.is_empty() && !w.contains('/'))
            .ok_or_else(|| ApiError::not_found("MCP endpoints are /mcp and /mcp/{workspace}"))?
            .to_owned()
    };
    check_host(api, request)?;
    check_origin(api, request)?;
    let caller = callers::authenticate(api, request, &workspace)?;
    if let Caller::Unbound = caller {
        return Ok(refused(Refusal::unbound()));
    }
    if mcp_modern::is_modern(request) {
        return mcp_modern::serve(api, request, &workspace, &caller).map(Reply::Modern);
    }
    let nothing = Asked {
        body: &[],
        id: None,
        tool: None,
        subject: None,
    };
    match request.method() {
        Method::Post => post(api, request, &workspace, &caller),
        Method::Get => match callers::identify(api, &caller, &workspace, &nothing) {
            Ok((agent_id, _)) => event_stream(api, request, &workspace, &agent_id),
            Err(refusal) => Ok(refused(refusal)),
        },
        Method::Delete => match callers::identify(api, &caller, &workspace, &nothing) {
            Ok((agent_id, _)) => {
                let id = request
                    .header("Mcp-Session-Id")
                    .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required"))?;
                api.sessions.end(api, id, &workspace, &agent_id)?;
                Ok(Reply::NoContent)
            }
            Err(refusal) => Ok(refused(refusal)),
        },
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `POST`: one JSON-RPC message, handed to the workspace's gate; a request waits for its answer.
fn post(api: &Api, request: &Request, workspace: &str, caller: &Caller) -> Result<Reply, ApiError> {
    let gate = lock(&api.runtimes)
        .get(workspace)
        .map(|r| Arc::clone(r.gate()))
        .ok_or_else(|| ApiError::not_found(format!("workspace {workspace} is not active")))?;
    check_version(request)?;
    let accept = request
        .header("Accept")
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
    let body = http::json_body(request, api.settings.http.max_body)?;
    let message = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Reply::Json {
                status: 400,
                body: String::from_utf8_lossy(&e.to_error_line()).into_owned(),
                session: None,
            })
        }
    };
    let call = ToolCall::of(&message);
    let (id, method) = match &message {
        Message::Request { id, method, .. } => (Some(id.clone()), method.clone()),
        _ => (None, String::new()),
    };
    let subject = gate.subject_of_message(&message, call.as_ref());
    let asked = Asked {
        body,
        id: id.as_ref(),
        tool: call.as_ref().map(ToolCall::tool),
        subject: subject.as_deref(),
    };
    let (agent_id, admitted) = match callers::identify(api, caller, workspace, &asked) {
        Ok(who) => who,
        Err(refusal) => return Ok(refused(refusal)),
    };
    let SessionRef {
        numeric,
        new_id: new_session,
        notes,
        client,
    } = if method == "initialize" {
        // A replica whose store is away takes no new session: another replica may.
        api.need_store()?;
        // A partner or a scoped token (limited to some servers) hears no server's log.
        let limited = admitted.is_some();
        api.sessions.open(
            api,
            workspace,
            &agent_id,
            &gate,
            declared_client(&message),
            limited,
        )?
    } else {
        let header = request
            .header("Mcp-Session-Id")
            .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required after initialize"))?;
        api.sessions.resume(header, workspace, &agent_id)?
    };
    let (tx, rx) = crossbeam_channel::bounded(ANSWER_QUEUE);
    let sink = Sink::new(numeric, tx);
    let session = if new_session.is_some() {
        Session::new(sink)
    } else {
        Session::initialized(sink).with_client(client)
    }
    .with_agent(agent_id.as_str());
    let Some(id) = id else {
        gate.handle_parsed(&session, Ok(message), call);
        return Ok(Reply::Accepted);
    };
    let delegation = admitted.as_ref().and_then(|a| a.delegation.clone());
    let in_flight = call
        .as_ref()
        .map(|c| CallInFlight::start(workspace, &agent_id, delegation, c, &gate));
    let started = in_flight
        .as_ref()
        .map_or_else(Instant::now, CallInFlight::started);
    gate.handle_parsed(&session, Ok(message), call);
    drop(session);
    let wait = if method == "initialize" {
        api.settings.startup_timeout + api.settings.init_timeout
    } else {
        // A call a person must approve may wait that long first. The gate has decided by now,
        // unless the call waits for the workspace's start: then it may still be escalated.
        let approval = match in_flight.as_ref().map(CallInFlight::decided) {
            Some(Some(Verdict::Escalate) | None) => gate.approval_timeout().unwrap_or_default(),
            Some(Some(Verdict::Allow | Verdict::Deny)) | None => Duration::ZERO,
        };
        api.settings.call_timeout + approval
    } + MARGIN;
    // Notices since the session's last request (list changes, resource updates, log messages)
    // go first, when the client takes a stream; a repeated one is said once.
    let mut first: Vec<Vec<u8>> = Vec::new();
    for note in notes.try_iter() {
        if !first.contains(&note) {
            first.push(note);
        }
    }
    // A partner's listing is filtered, so it comes as one JSON answer (no event stream).
    let only = mcp_reply::Only::of_list(admitted.as_ref(), &method, &gate);
    let accepts_sse = accepts_sse && only.is_none();
    if !accepts_sse || method == "initialize" {
        first.clear();
    }
    Ok(Reply::Awaiting(Box::new(Awaiting {
        rx,
        id,
        deadline: started + wait,
        accepts_sse,
        first,
        session: new_session,
        only,
        call: in_flight,
        modern: false,
        lost: None,
    })))
}

/// What an `initialize` request's agent declared it can answer.
fn declared_client(message: &Message) -> ClientCaps {
    let Message::Request {
        params: Some(params),
        ..
    } = message
    else {
        return ClientCaps::default();
    };
    let parsed = serde_json::from_str::<serde_json::Value>(params.get()).ok();
    ClientCaps::from_capabilities(parsed.as_ref().and_then(|p| p.get("capabilities")))
}

fn check_host(api: &Api, request: &Request) -> Result<(), ApiError> {
    let host = request.header("Host").unwrap_or_default();
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

fn check_origin(api: &Api, request: &Request) -> Result<(), ApiError> {
    match request.header("Origin") {
        None => Ok(()),
        Some(origin) if api.options.allowed_origins.contains(origin) => Ok(()),
        Some(_) => Err(ApiError::new(
            403,
            "forbidden_origin",
            "the Origin is not allowed (serve --allow-origin)",
        )),
    }
}

fn check_version(request: &Request) -> Result<(), ApiError> {
    match request.header("MCP-Protocol-Version") {
        Some(version) if !mcp::is_supported(version) => Err(ApiError::bad_request(format!(
            "unsupported MCP-Protocol-Version {version:?}"
        ))),
        _ => Ok(()),
    }
}

/// `GET`: the session's server-initiated stream, checked here and opened by the caller.
fn event_stream(
    api: &Api,
    request: &Request,
    workspace: &str,
    agent_id: &str,
) -> Result<Reply, ApiError> {
    check_version(request)?;
    let accept = request.header("Accept").unwrap_or_default();
    if !accept.to_ascii_lowercase().contains("text/event-stream") {
        return Err(ApiError::new(
            406,
            "not_acceptable",
            "a GET stream needs Accept: text/event-stream",
        ));
    }
    let header = request
        .header("Mcp-Session-Id")
        .ok_or_else(|| ApiError::bad_request("Mcp-Session-Id is required"))?;
    let stream = api.sessions.stream(header, workspace, agent_id)?;
    Ok(Reply::EventStream {
        session: header.to_owned(),
        agent: agent_id.to_owned(),
        notes: stream.notes,
        streaming: stream.streaming,
    })
}

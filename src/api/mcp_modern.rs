//! MCP 2026-07-28 over HTTP at `/mcp/{workspace}` and `/mcp`: one stateless `POST` per request,
//! told apart from the legacy era by its `MCP-Protocol-Version` header (a version that is not
//! one of the legacy ones).
//!
//! Owns: the modern transport rules: `POST` only (405 with `Allow: POST`), `Accept` listing
//! both `application/json` and `text/event-stream` (406), a notification answered 202, a
//! JSON-RPC answer refused (the era has no requests from server to client), the envelope
//! (-32602 when it is malformed), the headers against the body (`MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`: -32020), the version (-32022), each with status 400; no
//! `Mcp-Session-Id` (each request is a session of its own for the gate, numbered, never
//! stored); `subscriptions/listen` answered with an event stream that stays open (handed to
//! `http-streams`, which ends it when the client goes away); every other request handed to
//! the gate and answered as JSON (status by its error code: 400, 404 for an unknown method,
//! else 200) or as an event stream (`X-Accel-Buffering: no`).
//! Never: keeps state between two requests; accepts a request whose headers disagree with its
//! body.

use super::callers::{self, Asked, Caller};
use super::calls::CallInFlight;
use super::http::{self, ApiError};
use super::mcp_reply::{self, Awaited, Awaiting};
use super::Api;
use crate::gate::modern::{self, EnvelopeError, Headers};
use crate::gate::{Session, ToolCall};
use crate::http::{Method, Request};
use crate::jsonrpc::{self, code, Message, Sink};
use crate::mcp;
use crate::thread::lock;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines an answer's queue holds (progress notifications and the answer).
const ANSWER_QUEUE: usize = 256;
/// Notices a listen's queue holds before they are dropped.
const LISTEN_QUEUE: usize = 64;
/// Added to a request's own deadline before the transport gives up on it.
const MARGIN: Duration = Duration::from_secs(10);

/// Whether `request` is of the 2026-07-28 era: its `MCP-Protocol-Version` is not a legacy one.
pub(super) fn is_modern(request: &Request) -> bool {
    request
        .header("MCP-Protocol-Version")
        .is_some_and(|v| !mcp::is_supported(v))
}

/// What a modern request is answered with.
pub(super) enum Modern {
    /// A JSON body with this status.
    Json { status: u16, body: String },
    /// A request refused on who sent it (401, 403, 429, or 503 without the shared store), with
    /// `Retry-After` when waiting helps.
    Refused {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// 202, nothing more.
    Accepted,
    /// The answer is coming from the gate.
    Awaiting(Box<Awaiting>),
    /// A listen's event stream.
    Listen {
        key: String,
        agent: String,
        notes: crossbeam_channel::Receiver<Vec<u8>>,
        /// Ends the listen at the gate when its stream ends.
        on_end: super::streams::OnEnd,
    },
}

fn refuse(id: Option<&jsonrpc::Id>, code: i64, message: &str) -> Modern {
    let body = jsonrpc::error_line(id, code, message);
    Modern::Json {
        status: modern::http_status(Some(code)),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Serves one modern request of `caller` to `workspace`.
pub(super) fn serve(
    api: &Api,
    request: &Request,
    workspace: &str,
    caller: &Caller,
) -> Result<Modern, ApiError> {
    if *request.method() != Method::Post {
        return Err(ApiError::new(
            405,
            "method_not_allowed",
            "MCP 2026-07-28 takes POST only",
        ));
    }
    let accept = request
        .header("Accept")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return Err(ApiError::new(
            406,
            "not_acceptable",
            "Accept must list application/json and text/event-stream",
        ));
    }
    let gate = lock(&api.runtimes)
        .get(workspace)
        .map(|r| Arc::clone(r.gate()))
        .ok_or_else(|| ApiError::not_found(format!("workspace {workspace} is not active")))?;
    let body = http::json_body(request, api.settings.http.max_body)?;
    let message = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Modern::Json {
                status: 400,
                body: String::from_utf8_lossy(&e.to_error_line()).into_owned(),
            })
        }
    };
    let (id, method) = match &message {
        Message::Request { id, method, .. } => (id.clone(), method.clone()),
        Message::Notification { .. } => return Ok(Modern::Accepted),
        Message::Response { .. } => {
            return Ok(refuse(
                None,
                code::INVALID_REQUEST,
                "MCP 2026-07-28 has no requests from server to client to answer",
            ))
        }
    };
    let envelope = match modern::envelope_of(&message) {
        None => {
            return Ok(refuse(
                Some(&id),
                code::INVALID_PARAMS,
                "params._meta must carry the io.modelcontextprotocol/protocolVersion and \
                 io.modelcontextprotocol/clientCapabilities envelope keys",
            ))
        }
        Some(envelope) => envelope,
    };
    let call = ToolCall::of(&message);
    let version = match &envelope {
        Ok(e) => e.version.clone(),
        Err(EnvelopeError::Unsupported(v)) => v.clone(),
        Err(malformed @ EnvelopeError::Malformed(_)) => return Ok(error_object(&id, malformed)),
    };
    let headers = Headers {
        version: request.header("MCP-Protocol-Version"),
        method: request.header("Mcp-Method"),
        name: request.header("Mcp-Name"),
    };
    let name = call.as_ref().map(ToolCall::tool);
    if let Err(message) = modern::check_headers(&headers, &version, &method, name) {
        return Ok(refuse(Some(&id), code::HEADER_MISMATCH, &message));
    }
    if let Some(call) = call.as_ref().filter(|c| c.method() == "tools/call") {
        let routes = gate.routes();
        if let Some(params) = routes.get(call.tool()).and_then(|r| r.params.as_deref()) {
            let arguments: serde_json::Value =
                serde_json::from_str(call.arguments()).unwrap_or_default();
            if let Err(message) =
                modern::check_params(params, &arguments, |name| request.header(name))
            {
                return Ok(refuse(Some(&id), code::HEADER_MISMATCH, &message));
            }
        }
    }
    let envelope = match envelope {
        Ok(envelope) => envelope,
        Err(unsupported) => return Ok(error_object(&id, &unsupported)),
    };
    let subject = gate.subject_of_message(&message, call.as_ref());
    let asked = Asked {
        body,
        id: Some(&id),
        tool: call.as_ref().map(ToolCall::tool),
        subject: subject.as_deref(),
    };
    let (agent_id, admitted) = match callers::identify(api, caller, workspace, &asked) {
        Ok(who) => who,
        Err(refusal) => {
            return Ok(Modern::Refused {
                status: refusal.status,
                body: refusal.body,
                retry_after: refusal.retry_after,
            })
        }
    };
    let numeric = api.sessions.ephemeral();
    if method == "subscriptions/listen" {
        let params = match &message {
            Message::Request { params, .. } => params.as_deref(),
            _ => None,
        };
        let mut filter = match modern::listen_filter(params) {
            Ok(filter) => filter,
            Err(message) => return Ok(refuse(Some(&id), code::INVALID_PARAMS, &message)),
        };
        // A limited caller listens only to the resources it may read.
        if let Some(admitted) = &admitted {
            filter
                .uris
                .retain(|uri| admitted.permits(&gate.subject_of("resources/read", uri)));
        }
        let (tx, notes) = crossbeam_channel::bounded(LISTEN_QUEUE);
        gate.open_listen(Sink::notices(numeric, tx), id.clone(), filter);
        let ended = Arc::clone(&gate);
        return Ok(Modern::Listen {
            key: format!("listen-{numeric}"),
            agent: agent_id,
            notes,
            on_end: Box::new(move || ended.end_listen(numeric, id)),
        });
    }
    let (tx, rx) = crossbeam_channel::bounded(ANSWER_QUEUE);
    let session =
        Session::modern(Sink::new(numeric, tx), envelope.client).with_agent(agent_id.as_str());
    let delegation = admitted.as_ref().and_then(|a| a.delegation.clone());
    let in_flight = call
        .as_ref()
        .map(|c| CallInFlight::start(workspace, &agent_id, delegation, c, &gate).modern());
    let started = in_flight
        .as_ref()
        .map_or_else(Instant::now, CallInFlight::started);
    let (cancelled, cancel_id) = (Arc::clone(&gate), id.clone());
    gate.handle_parsed(&session, Ok(message), call);
    drop(session);
    let approval = gate.approval_timeout().unwrap_or_default();
    let wait = api.settings.call_timeout + approval + MARGIN;
    let only = mcp_reply::Only::of_list(admitted.as_ref(), &method, &gate);
    Ok(Modern::Awaiting(Box::new(Awaiting {
        rx,
        id,
        deadline: started + wait,
        accepts_sse: only.is_none(),
        first: Vec::new(),
        session: None,
        only,
        call: in_flight,
        modern: true,
        lost: Some(Box::new(move || {
            cancelled.cancel_request(numeric, &cancel_id)
        })),
    })))
}

fn error_object(id: &jsonrpc::Id, error: &EnvelopeError) -> Modern {
    let object = error.error_object();
    let code = object.get("code").and_then(serde_json::Value::as_i64);
    Modern::Json {
        status: modern::http_status(code),
        body: String::from_utf8_lossy(&error.line(Some(id))).into_owned(),
    }
}

/// Sends what [`serve`] decided.
pub(super) fn answer(api: &Api, request: Request, reply: Modern) -> u16 {
    match reply {
        Modern::Json { status, body } => {
            http::respond_json(request, status, body.as_bytes());
            status
        }
        Modern::Refused {
            status,
            body,
            retry_after,
        } => {
            let secs = retry_after.map(|s| s.to_string());
            let headers: Vec<(&str, &str)> =
                secs.iter().map(|s| ("Retry-After", s.as_str())).collect();
            http::respond_json_with(request, status, &headers, body.as_bytes());
            status
        }
        Modern::Accepted => {
            request.respond(202, &[], b"");
            202
        }
        Modern::Awaiting(awaiting) => {
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
        Modern::Listen {
            key,
            agent,
            notes,
            on_end,
        } => {
            api.streams.open_request(
                request,
                key,
                agent,
                notes,
                Arc::new(std::sync::atomic::AtomicBool::new(true)),
                Some(on_end),
            );
            200
        }
    }
}

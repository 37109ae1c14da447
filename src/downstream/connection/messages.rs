//! What the child sends on stdout: lines, parsed and dispatched.
//!
//! Owns: turning stdout frames into messages (an overlong line, too many invalid lines in a row,
//! the gate's own `initialize` sent back, or the end of stdout fail the child; a line that is not
//! JSON-RPC but reads as the answer to one of our requests answers that request with -32603 at
//! once, and is logged); handing the child's own requests to `child_requests.rs`; the
//! notifications the gate acts on (progress
//! goes to the agent whose call it belongs to, a `list_changed` lists that kind again, a
//! resource update and log messages go to the merger, log messages within a rate, the child's
//! cancellation of its own request goes to the agent it was sent to); and taking each response
//! to what it answers: an agent's call, the handshake, a listing, or a heartbeat.
//! Every text of the child's an agent reads passes `sanitize::clean_result` first: a result, an
//! error object (`message` and `data`), a progress notification's params, a log message's
//! params, the params of a request sent to an agent.
//! Never: re-serializes a child's `result` or error (its bytes go to the agent, only the id
//! changes; they are re-encoded only when `sanitize::clean_result` strips hidden text); forwards
//! a line it cannot read; forwards anything else the child sends to an agent; logs payloads.

use super::inflight::PendingKind;
use super::pipes::StdoutFrame;
use super::{Heartbeat, Phase, Worker, LOG_TARGET};
use crate::downstream::child::ReadOutcome;
use crate::downstream::{Event, Notice};
use crate::jsonrpc::{self, code, Id, Message, Outcome};
use crate::mcp::ListKind;
use crate::mcp::LogLevel;
use crate::sanitize;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

impl Worker {
    /// Reads what the child wrote on stdout and handles each complete line in order, until the
    /// child fails.
    pub(super) fn read_stdout(&mut self) {
        let Some(read) = self.pipes.read_stdout() else {
            return;
        };
        for frame in read.frames {
            if !self.pipes.has_child() {
                return;
            }
            match frame {
                StdoutFrame::Line(line) => self.on_line(&line),
                StdoutFrame::Overlong => {
                    let reason = format!(
                        "wrote a line over the {} byte limit",
                        self.settings.max_line_bytes
                    );
                    self.fail(reason);
                    return;
                }
            }
        }
        if !self.pipes.has_child() {
            // A frame already failed the child (and tore it down): one failure, one reason.
            return;
        }
        match read.end {
            Ok(ReadOutcome::Drained | ReadOutcome::More) => {}
            Ok(ReadOutcome::Closed) => {
                let how = self.pipes.exit_description();
                self.fail(how);
            }
            Err(e) => self.fail(format!("stdout read failed: {e}")),
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        match jsonrpc::parse(line) {
            Err(e) => {
                self.invalid_lines += 1;
                log::debug!(
                    target: LOG_TARGET,
                    "connection {}: invalid line from child: {e}",
                    self.cfg.name
                );
                if let Some(n) = jsonrpc::answered_id(line) {
                    self.on_unreadable_answer(n);
                }
                if !self.pipes.has_child() {
                    return;
                }
                if self.invalid_lines >= self.settings.invalid_line_limit {
                    let reason = format!(
                        "wrote {} invalid JSON-RPC lines in a row",
                        self.invalid_lines
                    );
                    self.fail(reason);
                }
            }
            Ok(message) => {
                self.invalid_lines = 0;
                match message {
                    Message::Response { id, outcome } => self.on_response(&id, outcome),
                    Message::Request { id, method, params } => {
                        self.answer_child_request(&id, &method, params.as_deref())
                    }
                    Message::Notification { method, params } => {
                        self.on_notification(&method, params.as_deref())
                    }
                }
            }
        }
    }

    /// A line that is not JSON-RPC but reads as the answer to our request `n`: that request
    /// gets an error of the gate's now, instead of waiting for its deadline. What the line says
    /// is never passed on: the cleaner cleans JSON, and what it cannot read, nobody may.
    fn on_unreadable_answer(&mut self, n: u64) {
        log::warn!(
            target: LOG_TARGET,
            "connection {}: the answer to request {n} could not be read (it is not JSON-RPC); \
             it is answered with an error",
            self.cfg.name
        );
        let error = serde_json::json!({
            "code": code::INTERNAL_ERROR,
            "message": format!(
                "the answer of server '{}' could not be read (it is not JSON); the gate forwards \
                 nothing it cannot clean",
                self.cfg.name
            ),
        });
        // JSON we just built always reads back as a raw value.
        if let Ok(error) = RawValue::from_string(error.to_string()) {
            self.on_response(&Id::from_u64(n), Outcome::Error(error));
        }
    }

    fn on_notification(&mut self, method: &str, params: Option<&RawValue>) {
        match method {
            "notifications/progress" => self.relay_progress(params),
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed"
                if self.phase == Phase::Ready =>
            {
                log::debug!(
                    target: LOG_TARGET,
                    "connection {}: {method}",
                    self.cfg.name
                );
                for kind in ListKind::changed_by(method) {
                    self.start_listing(*kind);
                }
            }
            "notifications/resources/updated" => {
                if let Some(uri) = params.and_then(updated_uri) {
                    self.emit(Event::Notice {
                        conn: self.handle.id(),
                        notice: Notice::Updated { uri },
                    });
                }
            }
            "notifications/message" => self.on_log_message(params),
            "notifications/cancelled" => {
                let Some(id) = params.and_then(cancelled_id) else {
                    return;
                };
                if let Some((n, ask)) = self.asks.cancelled(&id) {
                    self.tell_agent_cancelled(n, &ask, "cancelled by the server");
                }
            }
            _ => {}
        }
    }

    /// A log message: within the child's rate, stripped of hidden text, its `logger` naming
    /// the server, to the merger (which filters it per session).
    fn on_log_message(&mut self, params: Option<&RawValue>) {
        if !self.log_budget.take(Instant::now()) {
            return;
        }
        let Some(params) = params else {
            return;
        };
        let cleaned = sanitize::clean_result(params.get());
        let text = cleaned.as_deref().unwrap_or(params.get());
        // Only the top level is read; `data` stays raw (cleaned), so a payload a tree parser
        // refuses (`1e400`, deep nesting) is passed on like any other.
        let Ok(mut map) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text) else {
            return;
        };
        let member = |name: &str| {
            map.get(name)
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        };
        let Some(level) = member("level").as_deref().and_then(LogLevel::parse) else {
            return;
        };
        let logger = match member("logger") {
            Some(own) => format!(
                "{}/{}",
                self.cfg.name,
                own.chars().take(100).collect::<String>()
            ),
            None => self.cfg.name.clone(),
        };
        let Ok(logger) = serde_json::value::to_raw_value(&logger) else {
            return;
        };
        map.insert("logger".into(), logger);
        let Ok(params) = serde_json::to_string(&map) else {
            return;
        };
        self.emit(Event::Notice {
            conn: self.handle.id(),
            notice: Notice::Log { level, params },
        });
    }

    /// A progress notification goes to the agent whose call it belongs to, cleaned (its
    /// `message`, and any other string a server adds, is text the agent reads).
    fn relay_progress(&mut self, params: Option<&RawValue>) {
        let Some(params) = params else {
            return;
        };
        let text = clean_progress(params);
        let Some(relay) = self.inflight.relay_progress(&text) else {
            return;
        };
        relay.responder.notify(jsonrpc::notification_line(
            "notifications/progress",
            Some(&relay.params),
        ));
    }

    fn on_response(&mut self, id: &Id, outcome: Outcome) {
        let n = id.as_u64();
        let Some(kind) = n.and_then(|n| self.inflight.remove(n)) else {
            // A parked call's answer waits for its agent's retry.
            if let Some(n) = n {
                if self.parked.answered(n, outcome) {
                    return;
                }
            }
            log::debug!(
                target: LOG_TARGET,
                "connection {}: answer to an unknown or late request",
                self.cfg.name
            );
            return;
        };
        match kind {
            PendingKind::Agent {
                responder,
                progress_token,
                client,
                max_result_bytes,
                agent,
                resend: Some(resend),
                ..
            } if responder.shape() == crate::jsonrpc::Shape::Legacy
                && matches!(&outcome, Outcome::Result(r) if is_input_required(r)) =>
            {
                if let Outcome::Result(result) = outcome {
                    self.start_round(
                        responder,
                        progress_token,
                        client,
                        max_result_bytes,
                        agent,
                        resend,
                        &result,
                    );
                }
            }
            PendingKind::Agent {
                responder,
                max_result_bytes,
                ..
            } => self.answer_agent(responder, max_result_bytes, outcome),
            PendingKind::Initialize => self.on_initialize_answer(outcome),
            PendingKind::Discover => self.on_discover_answer(outcome),
            PendingKind::Listen => match outcome {
                // The child ended the listen: open it again while the child serves.
                Outcome::Result(_) if self.phase == Phase::Ready && self.listens => {
                    self.open_listen()
                }
                Outcome::Result(_) => {}
                Outcome::Error(error) if super::is_not_found(&error) => {
                    log::info!(
                        target: LOG_TARGET,
                        "connection {}: refused subscriptions/listen; its lists are fetched \
                         again when the view expires",
                        self.cfg.name
                    );
                    self.listens = false;
                }
                // Lost (a remote stream that ended, a timeout): opened again a little later.
                Outcome::Error(_) => {
                    self.relisten_at = Some(Instant::now() + RELISTEN_AFTER);
                }
            },
            PendingKind::ListPage(kind) => self.on_list_page(kind, outcome),
            PendingKind::Quiet => {}
            PendingKind::Ping => {
                if let Outcome::Error(error) = &outcome {
                    if super::is_not_found(error) && self.heartbeat == Heartbeat::Ping {
                        log::info!(
                            target: LOG_TARGET,
                            "connection {}: child does not implement ping; watching process \
                             liveness and probing tools/list instead",
                            self.cfg.name
                        );
                        self.heartbeat = Heartbeat::Probe;
                        self.next_heartbeat = Instant::now() + self.settings.probe_interval;
                    }
                }
                self.on_heartbeat();
            }
            PendingKind::Probe => self.on_heartbeat(),
        }
    }
}

impl Worker {
    /// Answers an agent's request with the child's outcome: a result over its cap refused, a
    /// result or an error object stripped of hidden text (else its bytes as the child wrote
    /// them), a malformed error replaced.
    pub(super) fn answer_agent(
        &self,
        responder: crate::jsonrpc::Responder,
        max_result_bytes: Option<usize>,
        outcome: Outcome,
    ) {
        match outcome {
            Outcome::Result(result)
                if max_result_bytes.is_some_and(|max| result.get().len() > max) =>
            {
                let message = format!(
                    "the result of server '{}' is {} bytes, over the gate's limit of {} \
                     (setting max_read_bytes)",
                    self.cfg.name,
                    result.get().len(),
                    max_result_bytes.unwrap_or_default()
                );
                responder.error(code::INVALID_REQUEST, &message)
            }
            Outcome::Result(result) => match sanitize::clean_result(result.get()) {
                Some(cleaned) => responder.result(&cleaned),
                None => responder.result(result.get()),
            },
            Outcome::Error(error) => self.answer_error(responder, &error),
        }
    }

    /// An error object of the child's, to an agent. Its `message` and `data` are text the agent
    /// (and its model) reads as much as a result, so they pass the same cleaner; an error with
    /// nothing to clean keeps its bytes.
    fn answer_error(&self, responder: crate::jsonrpc::Responder, error: &RawValue) {
        let cleaned = sanitize::clean_result(error.get());
        let error = cleaned.as_deref().unwrap_or(error.get());
        if is_error_object(error) {
            return responder.raw_error(error);
        }
        let message = format!("server '{}' sent a malformed error", self.cfg.name);
        responder.error(code::INTERNAL_ERROR, &message)
    }
}

/// A progress notification's params as an agent may read them: every string cleaned like a
/// result's, and `message` also cut at `Limits::message_chars` (`sanitize::clean_text`).
fn clean_progress(params: &RawValue) -> String {
    let cleaned = sanitize::clean_result(params.get()).unwrap_or_else(|| params.get().to_owned());
    let Ok(mut map) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(&cleaned) else {
        return cleaned;
    };
    let Some(message) = map
        .get("message")
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
    else {
        return cleaned;
    };
    let (capped, _) = sanitize::clean_text(&message, &sanitize::Limits::default());
    if capped == message {
        return cleaned;
    }
    let Ok(capped) = serde_json::value::to_raw_value(&capped) else {
        return cleaned;
    };
    map.insert("message".into(), capped);
    serde_json::to_string(&map).unwrap_or(cleaned)
}

/// A JSON-RPC error object: an integer `code` and a string `message` (and any `data`).
pub(super) fn is_error_object(error: &str) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[allow(dead_code)] // Reason: read only to check its type.
        code: i64,
        #[allow(dead_code)] // Reason: read only to check its type.
        message: String,
    }
    serde_json::from_str::<Shape>(error).is_ok()
}

/// How long a listen that ended with an error waits before it is opened again.
const RELISTEN_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a result is a 2026-07-28 `input_required`.
fn is_input_required(result: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
    }
    result.get().contains("input_required")
        && serde_json::from_str::<Shape>(result.get())
            .is_ok_and(|s| s.result_type.as_deref() == Some("input_required"))
}

/// The `progressToken` in a request's `_meta`, when it is one of the gate's (a number).
pub(super) fn meta_progress_token(params: &RawValue) -> Option<u64> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<Value>,
    }
    serde_json::from_str::<Params>(params.get())
        .ok()?
        .meta?
        .progress_token?
        .as_u64()
}

/// The `uri` of `notifications/resources/updated`.
fn updated_uri(params: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Updated {
        uri: String,
    }
    serde_json::from_str::<Updated>(params.get())
        .ok()
        .map(|u| u.uri)
}

/// The `requestId` of `notifications/cancelled`.
fn cancelled_id(params: &RawValue) -> Option<Id> {
    #[derive(Deserialize)]
    struct Cancelled {
        #[serde(rename = "requestId")]
        request_id: Box<RawValue>,
    }
    let cancelled = serde_json::from_str::<Cancelled>(params.get()).ok()?;
    Id::from_raw(&cancelled.request_id).ok()
}

//! What the child sends on stdout: lines, parsed and dispatched.
//!
//! Owns: turning stdout frames into messages (an overlong line, too many invalid lines in a row,
//! the gate's own `initialize` sent back, or the end of stdout fail the child), answering the child's own requests (`ping` is answered,
//! everything else refused at once: the gate offers no client capabilities, so the child never
//! waits on us), the notifications the gate acts on (progress goes to the agent whose call it
//! belongs to, `tools/list_changed` lists again), and taking each response to what it answers:
//! an agent's call, the handshake, or a heartbeat.
//! Never: re-serializes a child's `result` (its bytes go to the agent, only the id changes; a
//! `tools/call` result is re-encoded only when `sanitize::clean_result` strips hidden text);
//! forwards anything else the child sends to an agent; logs payloads.

use super::inflight::PendingKind;
use super::pipes::StdoutFrame;
use super::{Heartbeat, Phase, Worker, LOG_TARGET};
use crate::downstream::child::ReadOutcome;
use crate::jsonrpc::{self, code, Id, Message, Outcome};
use crate::sanitize;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
}

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
                    Message::Request { id, method, .. } => self.answer_child_request(&id, &method),
                    Message::Notification { method, params } => {
                        self.on_notification(&method, params.as_deref())
                    }
                }
            }
        }
    }

    /// The gate declares no client capabilities: `ping` is answered, everything else refused at
    /// once so the child never waits on us. An `initialize` from the child is the gate's own
    /// request sent back (no server sends one): the child is not an MCP server, and fails.
    fn answer_child_request(&mut self, id: &Id, method: &str) {
        if method == "initialize" {
            self.fail(
                "is not an MCP server: it sent the gate's own initialize request back (does the \
                 command echo its input?)"
                    .into(),
            );
            return;
        }
        let line = if method == "ping" {
            jsonrpc::result_line(id, "{}")
        } else {
            let message = format!("the gate does not offer {method:?} to servers");
            jsonrpc::error_line(Some(id), code::METHOD_NOT_FOUND, &message)
        };
        self.write_or_fail(&line);
    }

    fn on_notification(&mut self, method: &str, params: Option<&RawValue>) {
        match method {
            "notifications/progress" => self.relay_progress(params),
            "notifications/tools/list_changed" if self.phase == Phase::Ready => {
                log::debug!(
                    target: LOG_TARGET,
                    "connection {}: tool list changed",
                    self.cfg.name
                );
                self.start_listing();
            }
            "notifications/message" => {
                log::debug!(
                    target: LOG_TARGET,
                    "connection {}: log message from child",
                    self.cfg.name
                )
            }
            _ => {}
        }
    }

    fn relay_progress(&mut self, params: Option<&RawValue>) {
        let Some(relay) = params.and_then(|p| self.inflight.relay_progress(p)) else {
            return;
        };
        relay.responder.notify(jsonrpc::notification_line(
            "notifications/progress",
            Some(&relay.params),
        ));
    }

    fn on_response(&mut self, id: &Id, outcome: Outcome) {
        let Some(kind) = id.as_u64().and_then(|n| self.inflight.remove(n)) else {
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
                tool_call,
                ..
            } => match outcome {
                Outcome::Result(result) if tool_call => {
                    match sanitize::clean_result(result.get()) {
                        Some(cleaned) => responder.result(&cleaned),
                        None => responder.result(result.get()),
                    }
                }
                Outcome::Result(result) => responder.result(result.get()),
                Outcome::Error(error) if is_error_object(&error) => {
                    responder.raw_error(error.get())
                }
                Outcome::Error(_) => {
                    let message = format!("server '{}' sent a malformed error", self.cfg.name);
                    responder.error(code::INTERNAL_ERROR, &message)
                }
            },
            PendingKind::Initialize => self.on_initialize_answer(outcome),
            PendingKind::ListPage => self.on_list_page(outcome),
            PendingKind::Ping => {
                if let Outcome::Error(error) = &outcome {
                    let not_found = serde_json::from_str::<ErrorObject>(error.get())
                        .is_ok_and(|e| e.code == code::METHOD_NOT_FOUND);
                    if not_found && self.heartbeat == Heartbeat::Ping {
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

/// A JSON-RPC error object: an integer `code` and a string `message` (and any `data`).
fn is_error_object(error: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[allow(dead_code)] // Reason: read only to check its type.
        code: i64,
        #[allow(dead_code)] // Reason: read only to check its type.
        message: String,
    }
    serde_json::from_str::<Shape>(error.get()).is_ok()
}

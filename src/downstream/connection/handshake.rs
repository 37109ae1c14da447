//! The handshake with each new child.
//!
//! Owns: `initialize` (the latest protocol version, and the client capabilities the gate can
//! route: sampling, elicitation and roots, see [`crate::mcp::CLIENT_CAPABILITIES`]) and the
//! checks of its answer (shape, a protocol version the gate speaks), `notifications/initialized`,
//! and what the child said about itself (`serverInfo`, `instructions`: kept for the merger, sent
//! with every listing; its capabilities, which decide what `lists` lists).
//! Never: sends `server/discover` (Python SDK servers refuse the handshake after it); forwards
//! `instructions` anywhere but to the merger (which sanitizes and pins them).

use super::inflight::PendingKind;
use super::{error_message, Phase, Worker, LOG_TARGET};
use crate::downstream::Offered;
use crate::jsonrpc::Outcome;
use crate::mcp;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Instant;

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default)]
    capabilities: Map<String, Value>,
    #[serde(rename = "serverInfo", default)]
    server_info: Value,
    #[serde(default)]
    instructions: Option<String>,
}

/// What the handshake learned of the child.
#[derive(Debug)]
pub(super) struct Handshake {
    server_info: Value,
    instructions: Option<String>,
}

impl Handshake {
    pub(super) fn new() -> Handshake {
        Handshake {
            server_info: Value::Null,
            instructions: None,
        }
    }

    /// The child's `serverInfo` (the previous child's until the new one answers: nothing is
    /// listed before that).
    pub(super) fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// The child's `instructions`.
    pub(super) fn instructions(&self) -> Option<&str> {
        self.instructions.as_deref()
    }
}

impl Worker {
    /// Sends `initialize` to a child just spawned.
    pub(super) fn send_initialize(&mut self) {
        let capabilities: Value =
            serde_json::from_str(mcp::CLIENT_CAPABILITIES).unwrap_or_default();
        let params = serde_json::json!({
            "protocolVersion": mcp::LATEST_VERSION,
            "capabilities": capabilities,
            "clientInfo": {
                "name": mcp::IMPLEMENTATION_NAME,
                "version": mcp::IMPLEMENTATION_VERSION,
            },
        });
        self.send_internal(
            "initialize",
            Some(&params.to_string()),
            PendingKind::Initialize,
            self.settings.init_timeout,
        );
    }

    pub(super) fn on_initialize_answer(&mut self, outcome: Outcome) {
        let result = match outcome {
            Outcome::Error(error) => {
                self.fail(format!("refused initialize: {}", error_message(&error)));
                return;
            }
            Outcome::Result(result) => result,
        };
        let Ok(init) = serde_json::from_str::<InitializeResult>(result.get()) else {
            self.fail("sent an invalid initialize result".into());
            return;
        };
        if !mcp::is_supported(&init.protocol_version) {
            let reason = format!(
                "speaks protocol version {:?}, which the gate does not",
                init.protocol_version
            );
            self.fail(reason);
            return;
        }
        log::info!(
            target: LOG_TARGET,
            "connection {}: initialized (protocol {})",
            self.cfg.name,
            init.protocol_version
        );
        self.handshake.server_info = init.server_info;
        self.handshake.instructions = init.instructions;
        self.send_notification("notifications/initialized", &Value::Object(Map::new()));
        if !self.pipes.has_child() {
            return;
        }
        self.phase = Phase::Ready;
        self.on_heartbeat();
        self.next_heartbeat = Instant::now() + self.settings.heartbeat_interval;
        self.list_all(Offered::from_capabilities(&init.capabilities));
    }
}

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
    /// Sends `initialize` to a child just spawned (`server/discover` to a 2026-07-28 child).
    pub(super) fn send_initialize(&mut self) {
        if self.modern {
            return self.send_discover();
        }
        if self.cfg.remote && !self.probed_legacy {
            // A remote server is asked in 2026-07-28 first, as the spec tells clients; a refusal
            // of any kind means the legacy era (and `initialize` next).
            self.probing = true;
            self.modern = true;
            return self.send_discover();
        }
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

    /// `server/discover`, enveloped: a 2026-07-28 child's handshake.
    fn send_discover(&mut self) {
        self.send_internal(
            "server/discover",
            None,
            PendingKind::Discover,
            self.settings.init_timeout,
        );
    }

    pub(super) fn on_initialize_answer(&mut self, outcome: Outcome) {
        let result = match outcome {
            Outcome::Error(error) if speaks_modern(&error) => {
                log::info!(
                    target: LOG_TARGET,
                    "connection {}: refused initialize and speaks {}; going on statelessly",
                    self.cfg.name,
                    mcp::MODERN_VERSION
                );
                self.modern = true;
                self.send_discover();
                return;
            }
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

impl Worker {
    /// A 2026-07-28 child's answer to `server/discover`: what it offers, then its lists, and a
    /// `subscriptions/listen` for its list changes when it announces any.
    pub(super) fn on_discover_answer(&mut self, outcome: Outcome) {
        if self.probing {
            self.probing = false;
            let modern = match &outcome {
                Outcome::Result(result) => serde_json::from_str::<DiscoverResult>(result.get())
                    .is_ok_and(|d| d.supported.iter().any(|v| v == mcp::MODERN_VERSION)),
                Outcome::Error(_) => false,
            };
            if !modern {
                log::info!(
                    target: LOG_TARGET,
                    "connection {}: the server does not speak {}; starting with initialize",
                    self.cfg.name,
                    mcp::MODERN_VERSION
                );
                self.modern = false;
                self.probed_legacy = true;
                return self.send_initialize();
            }
        }
        let result = match outcome {
            Outcome::Error(error) => {
                self.fail(format!(
                    "refused server/discover: {} (is it a 2026-07-28 server? its entry says \"era\": \"modern\")",
                    error_message(&error)
                ));
                return;
            }
            Outcome::Result(result) => result,
        };
        let Ok(discovered) = serde_json::from_str::<DiscoverResult>(result.get()) else {
            self.fail("sent an invalid server/discover result".into());
            return;
        };
        if !discovered
            .supported
            .iter()
            .any(|v| v == mcp::MODERN_VERSION)
        {
            let reason = format!(
                "does not speak {} (it supports {:?})",
                mcp::MODERN_VERSION,
                discovered.supported
            );
            self.fail(reason);
            return;
        }
        log::info!(
            target: LOG_TARGET,
            "connection {}: discovered (protocol {})",
            self.cfg.name,
            mcp::MODERN_VERSION
        );
        let stamped = discovered
            .meta
            .as_ref()
            .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
            .cloned();
        self.handshake.server_info = stamped.or(discovered.server_info).unwrap_or_default();
        self.handshake.instructions = discovered.instructions;
        if !self.pipes.has_child() {
            return;
        }
        self.phase = Phase::Ready;
        self.on_heartbeat();
        // The era has no ping: liveness is the process and a listing now and then.
        self.heartbeat = super::Heartbeat::Probe;
        self.next_heartbeat = Instant::now() + self.settings.probe_interval;
        self.listens = announces_changes(&discovered.capabilities);
        let mut offered = Offered::from_capabilities(&discovered.capabilities);
        // Its era has no resources/subscribe, and the gate does not yet listen for a modern
        // child's resource updates: its resources are not offered as subscribable.
        offered.subscribe = false;
        self.list_all(offered);
        if self.listens {
            self.open_listen();
        }
    }

    /// A `subscriptions/listen` towards the child for every list change it announces.
    pub(super) fn open_listen(&mut self) {
        let offered = self.lists_offered();
        let params = serde_json::json!({ "notifications": {
            "toolsListChanged": offered.tools,
            "promptsListChanged": offered.prompts,
            "resourcesListChanged": offered.resources,
        }});
        // Open until the child ends it: the deadline only bounds how long a lost one stays lost.
        let open_for = std::time::Duration::from_secs(24 * 3600);
        self.send_internal(
            "subscriptions/listen",
            Some(&params.to_string()),
            PendingKind::Listen,
            open_for,
        );
    }
}

#[derive(Deserialize)]
struct DiscoverResult {
    #[serde(rename = "supportedVersions", default)]
    supported: Vec<String>,
    #[serde(default)]
    capabilities: Map<String, Value>,
    #[serde(rename = "serverInfo", default)]
    server_info: Option<Value>,
    #[serde(rename = "_meta", default)]
    meta: Option<Map<String, Value>>,
    #[serde(default)]
    instructions: Option<String>,
}

/// Whether a 2026-07-28 server's capabilities announce list changes (worth a listen).
fn announces_changes(capabilities: &Map<String, Value>) -> bool {
    ["tools", "prompts", "resources"].iter().any(|kind| {
        capabilities
            .get(*kind)
            .and_then(|c| c.get("listChanged"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    })
}

/// Whether an error answering `initialize` is a modern-only server's -32022 naming 2026-07-28.
fn speaks_modern(error: &serde_json::value::RawValue) -> bool {
    #[derive(Deserialize)]
    struct Refusal {
        code: i64,
        #[serde(default)]
        data: Option<Supported>,
    }
    #[derive(Deserialize)]
    struct Supported {
        #[serde(default)]
        supported: Vec<String>,
    }
    serde_json::from_str::<Refusal>(error.get()).is_ok_and(|r| {
        r.code == crate::jsonrpc::code::UNSUPPORTED_VERSION
            && r.data
                .is_some_and(|d| d.supported.iter().any(|v| v == mcp::MODERN_VERSION))
    })
}

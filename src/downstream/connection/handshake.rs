//! The handshake with each new child, and the listing of its tools.
//!
//! Owns: `initialize` (the latest protocol version, no client capabilities) and the checks of
//! its answer (shape, a protocol version the gate speaks), `notifications/initialized`, what the
//! child said about itself (`serverInfo`, `instructions`: kept for the merger, sent with every
//! listing), and `tools/list` over every page within the limits on tools and pages, at most once
//! per [`MIN_RELIST`]. The first complete listing makes the connection healthy.
//! Never: sends `server/discover` (Python SDK servers refuse the handshake after it); forwards
//! `instructions` anywhere but to the merger (which sanitizes and pins them); runs two listings
//! of one child at once (a change mid-listing marks the listing to run again when it ends).

use super::inflight::PendingKind;
use super::{Phase, Worker, LOG_TARGET};
use crate::downstream::{Event, Status};
use crate::jsonrpc::Outcome;
use crate::mcp;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Shortest time between two listings of one child.
const MIN_RELIST: Duration = Duration::from_secs(1);

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

#[derive(Deserialize)]
struct ToolsPage {
    tools: Vec<Value>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

/// A listing under way: the pages so far.
#[derive(Debug, Default)]
struct Listing {
    tools: Vec<Value>,
    pages: usize,
    /// A `list_changed` arrived mid-listing: list again when this one ends.
    again: bool,
}

/// What the handshake learned, and where the listing of the child's tools stands.
#[derive(Debug)]
pub(super) struct Handshake {
    server_info: Value,
    instructions: Option<String>,
    listing: Option<Listing>,
    listed_once: bool,
    /// When the last listing of this child ended.
    last_listed: Option<Instant>,
    /// A listing deferred by [`MIN_RELIST`].
    relist_at: Option<Instant>,
}

impl Handshake {
    pub(super) fn new() -> Handshake {
        Handshake {
            server_info: Value::Null,
            instructions: None,
            listing: None,
            listed_once: false,
            last_listed: None,
            relist_at: None,
        }
    }

    /// Forgets the listings of the previous child. Its `serverInfo` and `instructions` stay
    /// until the new child's `initialize` answer replaces them: nothing is listed before that.
    pub(super) fn restart(&mut self) {
        self.listing = None;
        self.listed_once = false;
        self.last_listed = None;
        self.relist_at = None;
    }

    /// Drops a listing under way: its child failed, and its pages mean nothing any more.
    pub(super) fn abort_listing(&mut self) {
        self.listing = None;
    }

    /// When a deferred listing is due, if one is.
    pub(super) fn relist_at(&self) -> Option<Instant> {
        self.relist_at
    }
}

impl Worker {
    /// Sends `initialize` to a child just spawned.
    pub(super) fn send_initialize(&mut self) {
        let params = serde_json::json!({
            "protocolVersion": mcp::LATEST_VERSION,
            "capabilities": {},
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
        if init.capabilities.contains_key("tools") {
            self.start_listing();
        } else {
            self.finish_listing(Vec::new());
        }
    }

    /// Lists the child's tools, at most once per [`MIN_RELIST`]: a child flooding
    /// `list_changed` gets its changes coalesced into one listing a second.
    pub(super) fn start_listing(&mut self) {
        if let Some(listing) = self.handshake.listing.as_mut() {
            listing.again = true;
            return;
        }
        let now = Instant::now();
        if let Some(allowed) = self
            .handshake
            .last_listed
            .map(|t| t + MIN_RELIST)
            .filter(|a| *a > now)
        {
            self.handshake.relist_at = Some(allowed);
            return;
        }
        self.handshake.relist_at = None;
        self.handshake.listing = Some(Listing::default());
        self.request_page(None);
    }

    fn request_page(&mut self, cursor: Option<&str>) {
        let params = cursor.map(|c| serde_json::json!({ "cursor": c }).to_string());
        self.send_internal(
            "tools/list",
            params.as_deref(),
            PendingKind::ListPage,
            self.settings.list_timeout,
        );
    }

    pub(super) fn on_list_page(&mut self, outcome: Outcome) {
        let page = match outcome {
            Outcome::Error(error) => {
                self.fail(format!("tools/list failed: {}", error_message(&error)));
                return;
            }
            Outcome::Result(result) => serde_json::from_str::<ToolsPage>(result.get()),
        };
        let Ok(page) = page else {
            self.fail("sent an invalid tools/list result".into());
            return;
        };
        let Some(listing) = self.handshake.listing.as_mut() else {
            return;
        };
        listing.pages += 1;
        let room = self
            .settings
            .max_tools_per_server
            .saturating_sub(listing.tools.len());
        if page.tools.len() > room {
            log::warn!(
                target: LOG_TARGET,
                "connection {}: more than {} tools; the rest are ignored",
                self.cfg.name,
                self.settings.max_tools_per_server
            );
        }
        listing.tools.extend(page.tools.into_iter().take(room));
        let more_pages = listing.pages < self.settings.max_list_pages && room > 0;
        match page.next_cursor {
            Some(cursor) if more_pages => self.request_page(Some(&cursor)),
            rest => {
                if rest.is_some() {
                    log::warn!(
                        target: LOG_TARGET,
                        "connection {}: stopped listing after {} pages",
                        self.cfg.name,
                        self.settings.max_list_pages
                    );
                }
                let listing = self.handshake.listing.take().unwrap_or_default();
                self.finish_listing(listing.tools);
                if listing.again {
                    self.start_listing();
                }
            }
        }
    }

    fn finish_listing(&mut self, tools: Vec<Value>) {
        self.handshake.last_listed = Some(Instant::now());
        let n_tools = tools.len();
        self.handle.update(|s| s.tools = n_tools);
        log::debug!(
            target: LOG_TARGET,
            "connection {}: {n_tools} tools listed",
            self.cfg.name
        );
        self.emit(Event::Tools {
            conn: self.handle.id(),
            tools,
            server_info: self.handshake.server_info.clone(),
            instructions: self.handshake.instructions.clone(),
        });
        if !self.handshake.listed_once {
            self.handshake.listed_once = true;
            self.policy.on_healthy();
            self.set_status(Status::Healthy, None);
        }
    }
}

/// The `message` of a child's error object, for logs (bounded, never the `data`).
fn error_message(error: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: Option<String>,
    }
    let message = serde_json::from_str::<Message>(error.get())
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| "no message".into());
    message.chars().take(200).collect()
}

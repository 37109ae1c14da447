//! The example server's MCP surface beyond tools, and the tools that drive it.
//!
//! Owns: the state behind prompts, resources and logging (the counter, the subscribed URIs, the
//! level the client set, `toggle_surface`'s switch), the dispatch of `prompts/*`,
//! `resources/*`, `completion/complete` and `logging/setLevel`, and the tools `bump`, `log`,
//! `ask_sampling`, `ask_elicitation`, `ask_roots`, `ask_sampling_later`,
//! `last_request_outcome` and `toggle_surface`.
//! Never: exists with `--tools-only` (the server then has no `Surface`); waits for the client
//! (the asking tools go through `requests.rs`).

use super::catalog::Catalog;
use super::logs::{self, Level};
use super::requests::{self, Ask, SharedLedger};
use super::{
    completion, failure, page, prompts, resources, text_result, tool, Out, Reply, TimerMsg,
};
use crate::jsonrpc::{self, code, Id};
use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashSet;

/// At most this many URIs are subscribed at once.
const MAX_SUBSCRIPTIONS: usize = 1024;

/// The longest `ask_sampling_later` waits before asking.
const MAX_DELAY_MS: u64 = 600_000;

/// The surface's state and its way to the client.
pub(super) struct Surface {
    out: Out,
    timer: Sender<TimerMsg>,
    ledger: SharedLedger,
    poison: bool,
    page_size: Option<usize>,
    big_resource: Option<usize>,
    counter: u64,
    subscribed: HashSet<String>,
    min_level: Option<Level>,
    surprise: bool,
}

/// The names of the surface's tools.
const TOOLS: [&str; 8] = [
    "bump",
    "log",
    "ask_sampling",
    "ask_elicitation",
    "ask_roots",
    "ask_sampling_later",
    "last_request_outcome",
    "toggle_surface",
];

/// Whether `name` is one of the surface's tools.
pub(super) fn is_tool(name: &str) -> bool {
    TOOLS.contains(&name)
}

/// The surface's tools, in `tools/list`'s order.
pub(super) fn tools() -> Vec<Value> {
    let string = json!({"type": "string"});
    vec![
        tool(
            "bump",
            "Increments the counter example://counter, tells subscribers, returns the new value.",
            json!({}),
            &[],
        ),
        tool(
            "log",
            "Sends `message` as a log message at `level` unless the level set is higher.",
            json!({"level": {"type": "string"}, "message": string}),
            &["level", "message"],
        ),
        tool(
            "ask_sampling",
            "Asks the client to sample a message for `prompt`; returns its answer.",
            json!({"prompt": string}),
            &["prompt"],
        ),
        tool(
            "ask_elicitation",
            "Asks the client to ask the user `message`; returns the answer.",
            json!({"message": string}),
            &["message"],
        ),
        tool(
            "ask_roots",
            "Asks the client for its roots; returns them.",
            json!({}),
            &[],
        ),
        tool(
            "ask_sampling_later",
            "Returns at once; asks the client to sample a message `delay_ms` later.",
            json!({"delay_ms": {"type": "integer"}}),
            &[],
        ),
        tool(
            "last_request_outcome",
            "Returns how the request of ask_sampling_later ended.",
            json!({}),
            &[],
        ),
        tool(
            "toggle_surface",
            "Adds or removes the prompt surprise and the resource example://surprise.",
            json!({}),
            &[],
        ),
    ]
}

impl Surface {
    pub(super) fn new(
        options: &super::Options,
        out: Out,
        timer: Sender<TimerMsg>,
        ledger: SharedLedger,
    ) -> Surface {
        Surface {
            out,
            timer,
            ledger,
            poison: options.poison,
            page_size: options.page_size,
            big_resource: options.big_resource,
            counter: 0,
            subscribed: HashSet::new(),
            min_level: None,
            surprise: false,
        }
    }

    fn catalog(&self, pulled: bool) -> Catalog {
        Catalog {
            poison: self.poison,
            pulled,
            surprise: self.surprise,
            counter: self.counter,
            big_resource: self.big_resource,
        }
    }

    /// Answers one of the surface's methods; `None` when `method` is not one of them.
    pub(super) fn request(
        &mut self,
        method: &str,
        raw: Option<&RawValue>,
        pulled: bool,
    ) -> Option<Reply> {
        let params: Value = raw
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let catalog = self.catalog(pulled);
        let reply = match method {
            "prompts/list" => page(prompts::list(&catalog), "prompts", self.page_size, raw),
            "prompts/get" => prompts::get(&catalog, &params),
            "resources/list" => page(resources::list(&catalog), "resources", self.page_size, raw),
            "resources/templates/list" => page(
                resources::templates(),
                "resourceTemplates",
                self.page_size,
                raw,
            ),
            "resources/read" => uri(&params).and_then(|uri| resources::read(&catalog, uri)),
            "resources/subscribe" => uri(&params).and_then(|uri| {
                if !resources::exists(&catalog, uri) {
                    return Err(resources::not_found(uri));
                }
                if self.subscribed.len() >= MAX_SUBSCRIPTIONS && !self.subscribed.contains(uri) {
                    return Err(failure(code::INVALID_PARAMS, "too many subscriptions"));
                }
                self.subscribed.insert(uri.to_owned());
                Ok(json!({}))
            }),
            "resources/unsubscribe" => uri(&params).map(|uri| {
                self.subscribed.remove(uri);
                json!({})
            }),
            "completion/complete" => completion::complete(&catalog, &params),
            "logging/setLevel" => {
                let name = params.get("level").and_then(Value::as_str);
                match name.map(|n| (n, Level::parse(n))) {
                    Some((_, Some(level))) => {
                        self.min_level = Some(level);
                        Ok(json!({}))
                    }
                    Some((n, None)) => Err(failure(code::INVALID_PARAMS, logs::unknown(n))),
                    None => Err(failure(code::INVALID_PARAMS, "level must be a string")),
                }
            }
            _ => return None,
        };
        Some(reply)
    }

    /// Runs one of the surface's tools; `None` when the answer comes later.
    pub(super) fn call(&mut self, id: &Id, name: &str, args: &Value) -> Option<Reply> {
        let result = match name {
            "bump" => {
                self.counter += 1;
                if self.subscribed.contains(resources::COUNTER) {
                    let params = json!({ "uri": resources::COUNTER });
                    self.out.line(&jsonrpc::notification_line(
                        "notifications/resources/updated",
                        Some(&params.to_string()),
                    ));
                }
                text_result(&self.counter.to_string())
            }
            "log" => return Some(self.log(args)),
            "ask_sampling" => {
                return match string_argument(args, "prompt") {
                    Ok(prompt) => self.ask(id, &Ask::Sampling(prompt)),
                    Err(e) => Some(Err(e)),
                }
            }
            "ask_elicitation" => {
                return match string_argument(args, "message") {
                    Ok(message) => self.ask(id, &Ask::Elicitation(message)),
                    Err(e) => Some(Err(e)),
                }
            }
            "ask_roots" => return self.ask(id, &Ask::Roots),
            "ask_sampling_later" => {
                let delay_ms = args
                    .get("delay_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(MAX_DELAY_MS);
                let srv = requests::schedule_later(&self.ledger, &self.timer, delay_ms);
                text_result(&format!("will ask as {srv} in {delay_ms} ms"))
            }
            "last_request_outcome" => text_result(&requests::last_outcome(&self.ledger)),
            "toggle_surface" => {
                self.surprise = !self.surprise;
                for method in [
                    "notifications/prompts/list_changed",
                    "notifications/resources/list_changed",
                ] {
                    self.out.line(&jsonrpc::notification_line(method, None));
                }
                text_result(if self.surprise {
                    "surface surprise is on"
                } else {
                    "surface surprise is off"
                })
            }
            other => {
                return Some(Err(failure(
                    code::INVALID_PARAMS,
                    format!("unknown tool: {other}"),
                )))
            }
        };
        Some(Ok(result))
    }

    fn ask(&self, id: &Id, ask: &Ask) -> Option<Reply> {
        requests::ask(&self.ledger, &self.out, &self.timer, id, ask)
    }

    fn log(&self, args: &Value) -> Reply {
        let name = args
            .get("level")
            .and_then(Value::as_str)
            .ok_or_else(|| failure(code::INVALID_PARAMS, "level must be a string"))?;
        let level =
            Level::parse(name).ok_or_else(|| failure(code::INVALID_PARAMS, logs::unknown(name)))?;
        let message = string_argument(args, "message")?;
        if !logs::passes(level, self.min_level) {
            return Ok(text_result("filtered"));
        }
        let params = json!({ "level": level.as_str(), "logger": "example", "data": message });
        self.out.line(&jsonrpc::notification_line(
            "notifications/message",
            Some(&params.to_string()),
        ));
        Ok(text_result("logged"))
    }

    /// `rug_pull` poisoned `clean_prompt`: tells the client the prompt list changed.
    pub(super) fn announce_pulled(&self) {
        if self.poison {
            self.out.line(&jsonrpc::notification_line(
                "notifications/prompts/list_changed",
                None,
            ));
        }
    }
}

/// The `uri` of a resource request, which must be a string.
fn uri(params: &Value) -> Result<&str, super::Failure> {
    params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| failure(code::INVALID_PARAMS, "uri must be a string"))
}

/// The tool argument `key`, which must be a string.
fn string_argument(args: &Value, key: &str) -> Result<String, super::Failure> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| failure(code::INVALID_PARAMS, format!("{key} must be a string")))
}

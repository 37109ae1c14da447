//! The one parser of a call: a `tools/call`, `prompts/get` or `resources/read`, its params read
//! once per request, and the policy's verdict on it decided once, where the gate routes it.
//!
//! Owns: [`ToolCall`]: the params as a map of raw values (the last of duplicate keys wins, as in
//! every JSON parser the gate uses), the name (a tool's or a prompt's) or the URI (a resource's)
//! exactly as the gate routes it, the raw `arguments`,
//! and a [`VerdictSlot`] the gate fills when it decides, which the transports read for their
//! audit records (so a record names the verdict that was applied, not one computed again).
//! Never: re-serializes an argument value (they stay raw); decides a verdict (the gate does).

use crate::jsonrpc::Message;
use crate::policy::Verdict;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Where the gate puts the verdict it applied to a call; shared with the transport.
pub(crate) type VerdictSlot = Arc<OnceLock<Verdict>>;

/// The methods the gate parses, routes, audits and decides a verdict on as calls.
pub(crate) const CALL_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// A call's params, parsed once.
#[derive(Debug)]
pub(crate) struct ToolCall {
    /// `tools/call`, `prompts/get` or `resources/read`.
    method: &'static str,
    /// `None` when params is present but not an object.
    params: Option<BTreeMap<String, Box<RawValue>>>,
    /// `params.name` when it is a string.
    name: Option<String>,
    verdict: VerdictSlot,
}

impl ToolCall {
    /// Parses a `tools/call`'s params (absent params are an empty object).
    #[cfg(test)]
    pub(crate) fn parse(params: Option<&RawValue>) -> ToolCall {
        ToolCall::parse_as("tools/call", params)
    }

    /// Parses the params of `method`, one of [`CALL_METHODS`] (another is parsed as a
    /// `tools/call`).
    pub(crate) fn parse_as(method: &str, params: Option<&RawValue>) -> ToolCall {
        let method = CALL_METHODS
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("tools/call");
        let params = match params {
            None => Some(BTreeMap::new()),
            Some(raw) => serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()).ok(),
        };
        let key = if method == "resources/read" {
            "uri"
        } else {
            "name"
        };
        let name = params
            .as_ref()
            .and_then(|map| map.get(key))
            .and_then(|n| serde_json::from_str::<String>(n.get()).ok());
        ToolCall {
            method,
            params,
            name,
            verdict: VerdictSlot::default(),
        }
    }

    /// The call a message makes: for a request or notification of one of [`CALL_METHODS`],
    /// its params parsed; `None` for anything else.
    pub(crate) fn of(message: &Message) -> Option<ToolCall> {
        match message {
            Message::Request { method, params, .. } | Message::Notification { method, params }
                if CALL_METHODS.contains(&method.as_str()) =>
            {
                Some(ToolCall::parse_as(method, params.as_deref()))
            }
            _ => None,
        }
    }

    /// `tools/call`, `prompts/get` or `resources/read`.
    pub(crate) fn method(&self) -> &'static str {
        self.method
    }

    /// The name the gate routes: a tool's or a prompt's name, a resource's URI (`""` when
    /// params has no such string).
    pub(crate) fn tool(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The exact bytes of `arguments` (`""` when there are none), for the audit trail's hash.
    pub(crate) fn arguments(&self) -> &str {
        self.params
            .as_ref()
            .and_then(|map| map.get("arguments"))
            .map_or("", |a| a.get())
    }

    /// The slot the gate fills with the verdict it applies.
    pub(crate) fn verdict_slot(&self) -> VerdictSlot {
        Arc::clone(&self.verdict)
    }

    /// Records the verdict applied (once; a second decision is ignored).
    pub(crate) fn decide(&self, verdict: Verdict) {
        let _ = self.verdict.set(verdict);
    }

    /// The params and the name, for routing; the message an agent gets when they are unusable.
    pub(crate) fn into_parts(self) -> Result<(String, BTreeMap<String, Box<RawValue>>), String> {
        let method = self.method;
        let params = self
            .params
            .ok_or_else(|| format!("{method}: params must be an object"))?;
        let key = if method == "resources/read" {
            "uri"
        } else {
            "name"
        };
        let name = self
            .name
            .ok_or_else(|| format!("{method}: params.{key} must be a string"))?;
        Ok((name, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(params: &str) -> ToolCall {
        let raw = RawValue::from_string(params.to_owned()).expect("raw");
        ToolCall::parse(Some(&raw))
    }

    #[test]
    fn the_last_of_duplicate_names_is_the_one_routed() {
        let c = call(r#"{"name":"a.first","name":"b.second","arguments":{"x":1}}"#);
        assert_eq!(c.tool(), "b.second");
        assert_eq!(c.arguments(), r#"{"x":1}"#);
    }

    #[test]
    fn params_that_are_not_an_object_or_lack_a_name_are_refused_with_the_reason() {
        assert_eq!(
            call("[1]").into_parts().unwrap_err(),
            "tools/call: params must be an object"
        );
        let nameless = call(r#"{"name":7}"#);
        assert_eq!(nameless.tool(), "");
        assert_eq!(
            nameless.into_parts().unwrap_err(),
            "tools/call: params.name must be a string"
        );
        let absent = ToolCall::parse(None);
        assert_eq!((absent.tool(), absent.arguments()), ("", ""));
    }

    #[test]
    fn the_verdict_is_decided_once_and_seen_through_the_slot() {
        let c = call(r#"{"name":"a.b"}"#);
        let slot = c.verdict_slot();
        assert_eq!(slot.get(), None);
        c.decide(Verdict::Escalate);
        c.decide(Verdict::Allow);
        assert_eq!(slot.get(), Some(&Verdict::Escalate));
    }
}

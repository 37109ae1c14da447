//! JSON-RPC 2.0 as MCP uses it: message classification, ids, and the bytes of replies.
//!
//! Owns: parsing one framed message into a [`Message`], validating ids (strings or integers only),
//! building response, error, request and notification lines without re-serializing payloads, and
//! reading the id of an answer that is not JSON-RPC ([`answered_id`], `salvage.rs`), so that its
//! request is answered with an error at once, and where a JSON string literal ends however it is
//! written ([`string_end`], which `sanitize::clean_result` walks a payload's literals with).
//! Never: touches pipes or sockets (only [`Sink::wait_idle`], used at shutdown, and a reply's
//! bounded wait for room read the clock); never interprets `params` or `result` beyond what
//! routing needs (cleaning a result is the sanitizer's, see `sanitize::clean_result`).
//! Errors: [`ParseError`] maps to the standard codes -32700 (not JSON) and -32600 (not a request).

mod framing;
mod reply;
mod salvage;
#[cfg(test)]
mod tests;

pub use framing::{Frame, LineReader};
pub use reply::{shape_result, Responder, Sent, SessionId, Shape, Shortcut, Sink, REPLY_WAIT};
pub use salvage::answered_id;
pub(crate) use salvage::string_end;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// Standard JSON-RPC and gate-specific error codes, as agents see them.
pub mod code {
    /// The bytes are not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a valid request object (batches included).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method is unknown; answered at once so dual-era clients fall back quickly.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad parameters, including an unknown tool name.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A fault inside the gate.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The request outlived its deadline; the child was sent `notifications/cancelled`.
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// The downstream server is not available (starting, restarting, failed or gone).
    pub const SERVER_UNAVAILABLE: i64 = -32002;
    /// Too many requests in flight to one downstream server or a full internal queue.
    pub const OVERLOADED: i64 = -32003;
    /// The session has not sent `initialize` yet.
    pub const NOT_INITIALIZED: i64 = -32004;
    /// The tool is held, rejected or quarantined by the gate; the message says why.
    pub const TOOL_BLOCKED: i64 = -32005;
    /// A delegated request whose token is not acceptable (which check failed is only logged).
    pub const UNAUTHORIZED: i64 = -32010;
    /// A delegated request for a tool outside the token's scope or the partner's grant.
    pub const FORBIDDEN: i64 = -32011;
    /// A delegated request over its partner's rate; `data.retry_after` says when to retry.
    pub const RATE_LIMITED: i64 = -32012;
    /// The workspace's policy refuses the call; the message names the rule.
    pub const POLICY_DENIED: i64 = -32013;
    /// 2026-07-28: an HTTP header disagrees with the request's body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request needs a client capability it did not declare.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// 2026-07-28: a protocol version the gate does not speak (`data.supported` says which).
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// A JSON-RPC id: the raw JSON text of a string or an integer, echoed back byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(Box<str>);

impl Id {
    /// Validates a raw id: a JSON string or an integer; `null`, floats, objects are refused.
    pub fn from_raw(raw: &RawValue) -> Result<Id, &'static str> {
        let text = raw.get().trim();
        if text.starts_with('"') {
            return Ok(Id(text.into()));
        }
        let is_integer = !text.is_empty()
            && text
                .strip_prefix('-')
                .unwrap_or(text)
                .bytes()
                .all(|b| b.is_ascii_digit());
        if is_integer && serde_json::from_str::<serde_json::Number>(text).is_ok() {
            Ok(Id(text.into()))
        } else {
            Err("id must be a string or an integer")
        }
    }

    /// An integer id, as the gate issues towards a child.
    pub fn from_u64(n: u64) -> Id {
        Id(n.to_string().into())
    }

    /// A string id with the text `text` (the gate's own ids towards agents).
    pub fn from_string(text: &str) -> Id {
        Id(serde_json::Value::String(text.to_owned())
            .to_string()
            .into())
    }

    /// The id's JSON text, ready to splice into a message.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The id as an unsigned integer, when it is one (ids the gate issued to a child).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One classified JSON-RPC message.
#[derive(Debug)]
pub enum Message {
    /// A call that expects an answer.
    Request {
        /// The caller's id.
        id: Id,
        /// The method name.
        method: String,
        /// The raw parameters, if any.
        params: Option<Box<RawValue>>,
    },
    /// A call that expects no answer.
    Notification {
        /// The method name.
        method: String,
        /// The raw parameters, if any.
        params: Option<Box<RawValue>>,
    },
    /// An answer to a request we sent.
    Response {
        /// The id we issued.
        id: Id,
        /// The result or the error object.
        outcome: Outcome,
    },
}

/// What a response carries.
#[derive(Debug)]
pub enum Outcome {
    /// The raw `result` value.
    Result(Box<RawValue>),
    /// The raw `error` object.
    Error(Box<RawValue>),
}

/// Why a frame is not a usable message.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (-32700).
    NotJson(String),
    /// A JSON array: batches were removed from MCP in 2025-06-18 and the gate refuses them (-32600).
    Batch,
    /// JSON, but not a JSON-RPC 2.0 message; the id is kept when it could be read (-32600).
    Invalid {
        /// The request's id, when it was readable.
        id: Option<Id>,
        /// What is wrong, for the error message.
        reason: String,
    },
}

impl ParseError {
    /// The JSON-RPC error code for this failure.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::NotJson(_) => code::PARSE_ERROR,
            ParseError::Batch => code::INVALID_REQUEST,
            ParseError::Invalid { .. } => code::INVALID_REQUEST,
        }
    }

    /// The id to answer with (`null` when unknown).
    pub fn id(&self) -> Option<&Id> {
        match self {
            ParseError::Invalid { id, .. } => id.as_ref(),
            ParseError::NotJson(_) | ParseError::Batch => None,
        }
    }

    /// The error line to send back.
    pub fn to_error_line(&self) -> Vec<u8> {
        error_line(self.id(), self.code(), &self.to_string())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "parse error: {e}"),
            ParseError::Batch => f.write_str("invalid request: batch arrays are not supported"),
            ParseError::Invalid { reason, .. } => write!(f, "invalid request: {reason}"),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    method: Option<String>,
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Box<RawValue>>,
}

/// Keeps a `null` as a present value: `"id": null` is refused instead of read as a notification,
/// and `"result": null` is a result.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Classifies one frame (a line without its newline).
pub fn parse(frame: &[u8]) -> Result<Message, ParseError> {
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        // Still reject non-JSON garbage that merely starts with '[' as a parse error.
        return match serde_json::from_slice::<serde::de::IgnoredAny>(frame) {
            Ok(_) => Err(ParseError::Batch),
            Err(e) => Err(ParseError::NotJson(e.to_string())),
        };
    }
    let env: Envelope = serde_json::from_slice(frame).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ParseError::Invalid {
            id: None,
            reason: e.to_string(),
        },
        _ => ParseError::NotJson(e.to_string()),
    })?;
    classify(env)
}

fn classify(env: Envelope) -> Result<Message, ParseError> {
    let id = match &env.id {
        Some(raw) => Some(Id::from_raw(raw).map_err(|reason| ParseError::Invalid {
            id: None,
            reason: reason.to_string(),
        })?),
        None => None,
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(ParseError::Invalid {
            id,
            reason: "\"jsonrpc\" must be \"2.0\"".into(),
        });
    }
    match (env.method, id, env.result, env.error) {
        (Some(method), Some(id), None, None) => Ok(Message::Request {
            id,
            method,
            params: env.params,
        }),
        (Some(method), None, None, None) => Ok(Message::Notification {
            method,
            params: env.params,
        }),
        (None, Some(id), Some(result), None) => Ok(Message::Response {
            id,
            outcome: Outcome::Result(result),
        }),
        (None, Some(id), None, Some(error)) => Ok(Message::Response {
            id,
            outcome: Outcome::Error(error),
        }),
        (_, id, _, _) => Err(ParseError::Invalid {
            id,
            reason: "not a request, notification or response".into(),
        }),
    }
}

/// `{"jsonrpc":"2.0","id":ID,"result":RESULT}` with the result spliced in untouched.
pub fn result_line(id: &Id, result: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + result.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_json().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.as_bytes());
    out.push(b'}');
    out
}

/// How a `tools/call` answer ended, for metrics and the audit trail: `ok`, `tool_error`,
/// `input_required` (a 2026-07-28 call that waits for its agent's retry), `timeout`,
/// `error_<code>`, or `invalid`.
pub fn outcome_label(line: &[u8]) -> String {
    match answer_of(line) {
        Some((_, label)) => label,
        None => full_outcome_label(line),
    }
}

/// The id of a response line and its [`outcome_label`], in one pass that reads only the
/// envelope, `result.isError`, `result.resultType` and `error.code` (everything else is skipped
/// unread); `None` for a line that is not plainly a response (a request, a notification, a
/// result that is not an object), which the full parse then decides.
pub fn answer_of(line: &[u8]) -> Option<(Id, String)> {
    #[derive(Deserialize)]
    struct Shallow<'a> {
        jsonrpc: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        id: Option<&'a RawValue>,
        method: Option<serde::de::IgnoredAny>,
        // Kept raw (a `null` as present, as `parse` keeps it) and read below only when they
        // are objects: a derived struct would also take an array of its fields.
        #[serde(default, borrow, deserialize_with = "present_raw")]
        result: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present_raw")]
        error: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct ResultFields {
        #[serde(rename = "isError")]
        is_error: Option<serde_json::Value>,
        #[serde(rename = "resultType")]
        result_type: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct ErrorFields {
        code: Option<serde_json::Value>,
    }
    let object = |raw: &RawValue| raw.get().trim_start().starts_with('{');
    if !line.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let shallow: Shallow = serde_json::from_slice(line).ok()?;
    if shallow.jsonrpc.as_deref() != Some("2.0") || shallow.method.is_some() {
        return None;
    }
    let id = Id::from_raw(shallow.id?).ok()?;
    let label = match (shallow.result, shallow.error) {
        (Some(result), None) if object(result) => {
            let result: ResultFields = serde_json::from_str(result.get()).ok()?;
            result_label(result.is_error.as_ref(), result.result_type.as_ref())
        }
        (None, Some(error)) if object(error) => {
            let error: ErrorFields = serde_json::from_str(error.get()).ok()?;
            error_label(error.code.as_ref().and_then(serde_json::Value::as_i64))
        }
        _ => return None,
    };
    Some((id, label))
}

/// A borrowed raw value that stays `Some` when it is `null`.
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// [`outcome_label`] with the whole answer read as JSON.
fn full_outcome_label(line: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Answer {
        result: Option<serde_json::Value>,
        error: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Answer>(line) {
        Ok(Answer { error: Some(e), .. }) => error_label(e["code"].as_i64()),
        Ok(Answer {
            result: Some(r), ..
        }) => result_label(r.get("isError"), r.get("resultType")),
        _ => "invalid".to_owned(),
    }
}

fn result_label(
    is_error: Option<&serde_json::Value>,
    result_type: Option<&serde_json::Value>,
) -> String {
    if is_error.is_some_and(|v| v == true) {
        "tool_error".to_owned()
    } else if result_type.is_some_and(|v| v == "input_required") {
        "input_required".to_owned()
    } else {
        "ok".to_owned()
    }
}

fn error_label(code: Option<i64>) -> String {
    match code {
        Some(code::REQUEST_TIMEOUT) => "timeout".to_owned(),
        code => format!("error_{}", code.unwrap_or(0)),
    }
}

/// An error response; `id` is `null` when the request's id could not be read.
pub fn error_line(id: Option<&Id>, code: i64, message: &str) -> Vec<u8> {
    let error = serde_json::json!({ "code": code, "message": message });
    raw_error_line(id, &error.to_string())
}

/// An error response carrying an error object verbatim (a child's own error).
pub fn raw_error_line(id: Option<&Id>, error: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + error.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", Id::as_json).as_bytes());
    out.extend_from_slice(b",\"error\":");
    out.extend_from_slice(error.as_bytes());
    out.push(b'}');
    out
}

/// A request line; `params` is spliced in untouched.
pub fn request_line(id: &Id, method: &str, params: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + params.map_or(0, str::len));
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_json().as_bytes());
    push_method_and_params(&mut out, method, params);
    out
}

/// A notification line; `params` is spliced in untouched.
pub fn notification_line(method: &str, params: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + params.map_or(0, str::len));
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\"");
    push_method_and_params(&mut out, method, params);
    out
}

fn push_method_and_params(out: &mut Vec<u8>, method: &str, params: Option<&str>) {
    out.extend_from_slice(b",\"method\":");
    // A method name is ours or was parsed from JSON: serializing a &str cannot fail.
    out.extend_from_slice(
        serde_json::to_string(method)
            .unwrap_or_else(|_| "\"\"".into())
            .as_bytes(),
    );
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params.as_bytes());
    }
    out.push(b'}');
}

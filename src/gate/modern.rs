//! The 2026-07-28 era at the gate's edge: what a stateless request's envelope says, and the
//! rules a transport applies before the request reaches the gate.
//!
//! Owns: [`MODERN_VERSION`]; [`envelope`], which reads `params._meta` of a request (a request
//! whose `_meta` has `io.modelcontextprotocol/protocolVersion` is modern; its
//! `clientCapabilities` are required, -32602 without them; a version the gate does not speak is
//! -32022 with the versions it does); the methods the modern era removed ([`REMOVED`]); the
//! `server/discover` result; the HTTP header checks of a modern request ([`check_headers`]:
//! `MCP-Protocol-Version` equal to the envelope's, `Mcp-Method` equal to the method, `Mcp-Name`
//! equal to a call's name or URI, `=?base64?…?=` values decoded; -32020 on a mismatch); and the
//! HTTP status of a modern answer ([`http_status`]).
//! Never: keeps state between requests (the era has no session); reads a clock or does I/O.

use crate::jsonrpc::{code, Id, Message};
use crate::mcp::{self, ClientCaps};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

pub(crate) use crate::mcp::MODERN_VERSION;

/// The prefix of the `_meta` keys the protocol reserves (the envelope, the server stamp).
pub(crate) const RESERVED_META_PREFIX: &str = "io.modelcontextprotocol/";
pub(crate) use crate::mcp::decode_header_value;
use crate::mcp::{
    ENVELOPE_CAPABILITIES_KEY as CAPABILITIES_KEY, ENVELOPE_VERSION_KEY as VERSION_KEY,
};
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// Methods of the legacy era that a modern request may not use (-32601).
pub(crate) const REMOVED: [&str; 6] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/initialized",
];

/// Results a modern client caches: they carry `ttlMs` and `cacheScope`.
pub(crate) const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// What a modern request's envelope says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub(crate) version: String,
    /// `io.modelcontextprotocol/clientCapabilities`: what the client can answer now.
    pub(crate) client: ClientCaps,
}

/// Why a modern request's envelope is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    /// A required key is missing or of the wrong type: -32602.
    Malformed(String),
    /// A version the gate does not speak: -32022.
    Unsupported(String),
}

impl EnvelopeError {
    /// The JSON-RPC error object.
    pub(crate) fn error_object(&self) -> Value {
        match self {
            EnvelopeError::Malformed(message) => {
                json!({ "code": code::INVALID_PARAMS, "message": message })
            }
            EnvelopeError::Unsupported(requested) => json!({
                "code": code::UNSUPPORTED_VERSION,
                "message": "Unsupported protocol version",
                "data": { "supported": supported_versions(), "requested": requested },
            }),
        }
    }

    /// The error line answering request `id`.
    pub(crate) fn line(&self, id: Option<&Id>) -> Vec<u8> {
        crate::jsonrpc::raw_error_line(id, &self.error_object().to_string())
    }
}

/// Every version the gate speaks, the modern one first.
pub(crate) fn supported_versions() -> Vec<&'static str> {
    let mut all = vec![MODERN_VERSION];
    all.extend(mcp::SUPPORTED_VERSIONS);
    all
}

/// The envelope of a message's `params`: `None` for a legacy message (no protocol version in
/// `_meta`), else the envelope or why it is refused. A message whose params never name the
/// version key is not parsed at all.
pub(crate) fn envelope(params: Option<&RawValue>) -> Option<Result<Envelope, EnvelopeError>> {
    let raw = params?;
    if !raw.get().contains(VERSION_KEY) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Map<String, Value>>,
    }
    let meta = serde_json::from_str::<Params>(raw.get()).ok()?.meta?;
    let version = meta.get(VERSION_KEY)?;
    Some(read_envelope(version, &meta))
}

fn read_envelope(version: &Value, meta: &Map<String, Value>) -> Result<Envelope, EnvelopeError> {
    let Some(version) = version.as_str() else {
        return Err(EnvelopeError::Malformed(format!(
            "params._meta[\"{VERSION_KEY}\"] must be a string"
        )));
    };
    let Some(capabilities) = meta.get(CAPABILITIES_KEY).filter(|c| c.is_object()) else {
        return Err(EnvelopeError::Malformed(format!(
            "params._meta is missing the required envelope key {CAPABILITIES_KEY} (an object)"
        )));
    };
    if version != MODERN_VERSION {
        return Err(EnvelopeError::Unsupported(version.to_owned()));
    }
    Ok(Envelope {
        version: version.to_owned(),
        client: ClientCaps::from_capabilities(Some(capabilities)),
    })
}

/// The envelope of a request (`None` for a legacy one, and for a notification or an answer,
/// which carry none).
pub(crate) fn envelope_of(message: &Message) -> Option<Result<Envelope, EnvelopeError>> {
    match message {
        Message::Request { params, .. } => envelope(params.as_deref()),
        Message::Notification { .. } | Message::Response { .. } => None,
    }
}

/// The answer to `server/discover`, with what the gate's servers offer.
pub(crate) fn discover_result(offered: crate::downstream::Offered) -> String {
    let mut capabilities = Map::new();
    capabilities.insert("tools".into(), json!({ "listChanged": true }));
    if offered.prompts {
        capabilities.insert("prompts".into(), json!({ "listChanged": true }));
    }
    if offered.resources {
        capabilities.insert(
            "resources".into(),
            json!({ "subscribe": offered.subscribe, "listChanged": true }),
        );
    }
    if offered.completions {
        capabilities.insert("completions".into(), json!({}));
    }
    json!({
        "resultType": "complete",
        "supportedVersions": supported_versions(),
        "capabilities": capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { SERVER_INFO_KEY: {
            "name": mcp::IMPLEMENTATION_NAME,
            "version": mcp::IMPLEMENTATION_VERSION,
        }},
    })
    .to_string()
}

/// What a `subscriptions/listen` asks for (`params.notifications`: `toolsListChanged`,
/// `promptsListChanged`, `resourcesListChanged`, `resourceSubscriptions`).
pub(crate) fn listen_filter(params: Option<&RawValue>) -> Result<crate::merger::Filter, String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Wanted {
        #[serde(default)]
        tools_list_changed: bool,
        #[serde(default)]
        prompts_list_changed: bool,
        #[serde(default)]
        resources_list_changed: bool,
        #[serde(default)]
        resource_subscriptions: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        notifications: Option<Wanted>,
    }
    let wanted = match params {
        None => Wanted::default(),
        Some(raw) => serde_json::from_str::<Params>(raw.get())
            .map_err(|e| format!("subscriptions/listen: invalid params: {e}"))?
            .notifications
            .unwrap_or_default(),
    };
    Ok(crate::merger::Filter {
        tools: wanted.tools_list_changed,
        prompts: wanted.prompts_list_changed,
        resources: wanted.resources_list_changed,
        uris: wanted.resource_subscriptions,
    })
}

/// The headers of a modern HTTP request, as the transport read them.
pub(crate) struct Headers<'a> {
    /// `MCP-Protocol-Version`.
    pub(crate) version: Option<&'a str>,
    /// `Mcp-Method`.
    pub(crate) method: Option<&'a str>,
    /// `Mcp-Name`.
    pub(crate) name: Option<&'a str>,
}

/// The checks of a modern request's headers against its body: the error (-32020) when they
/// disagree.
pub(crate) fn check_headers(
    headers: &Headers<'_>,
    envelope_version: &str,
    method: &str,
    name: Option<&str>,
) -> Result<(), String> {
    if headers.version != Some(envelope_version) {
        return Err(
            "the MCP-Protocol-Version header does not match the request's protocol version".into(),
        );
    }
    if headers.method != Some(method) {
        return Err("the Mcp-Method header does not match the request body's method".into());
    }
    let named = matches!(method, "tools/call" | "prompts/get" | "resources/read");
    if named {
        let header = headers.name.map(decode_header_value);
        match (header, name) {
            (Some(Some(header)), Some(name)) if header == name => {}
            _ => {
                return Err(
                    "the Mcp-Name header does not match the request body's name (or uri)".into(),
                )
            }
        }
    }
    Ok(())
}

/// The `Mcp-Param-{name}` headers of a `tools/call` against its arguments, for the tool's
/// `x-mcp-header` properties: a header goes with a present (non-null) argument and only then,
/// and says the same value (a string exactly, an integer as a number, a boolean as `true` or
/// `false`). `header` reads a request header by name.
pub(crate) fn check_params<'a>(
    params: &[crate::sanitize::ParamHeader],
    arguments: &Value,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<(), String> {
    use crate::sanitize::ParamType;
    for param in params {
        let name = format!("Mcp-Param-{}", param.header);
        let argument = arguments.get(&param.property).filter(|v| !v.is_null());
        let sent = header(&name).map(decode_header_value);
        let agrees = match (argument, sent) {
            (None, None) => true,
            (Some(value), Some(Some(text))) => match param.kind {
                ParamType::String => value.as_str() == Some(text.as_str()),
                ParamType::Integer => {
                    value.as_i64().is_some() && value.as_i64() == text.parse::<i64>().ok()
                }
                ParamType::Boolean => value.as_bool().map(|b| b.to_string()) == Some(text),
            },
            _ => false,
        };
        if !agrees {
            return Err(format!(
                "the {name} header does not match the request body's {:?} argument",
                param.property
            ));
        }
    }
    Ok(())
}

/// The HTTP status of a modern answer: 400 for a malformed request, a header mismatch, a
/// missing capability or an unsupported version, 404 for an unknown method, else 200.
pub(crate) fn http_status(error_code: Option<i64>) -> u16 {
    match error_code {
        Some(
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::HEADER_MISMATCH
            | code::MISSING_CAPABILITY
            | code::UNSUPPORTED_VERSION,
        ) => 400,
        Some(code::METHOD_NOT_FOUND) => 404,
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn a_request_is_modern_by_its_envelope_and_a_broken_one_says_why() {
        assert_eq!(envelope(Some(&raw(r#"{"name":"x"}"#))), None);
        assert_eq!(envelope(None), None);
        let ok = raw(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}"#,
        );
        let env = envelope(Some(&ok)).unwrap().unwrap();
        assert!(env.client.sampling && !env.client.roots);
        let no_caps = raw(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        assert!(matches!(
            envelope(Some(&no_caps)),
            Some(Err(EnvelopeError::Malformed(_)))
        ));
        let old = raw(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"1900-01-01",
                "io.modelcontextprotocol/clientCapabilities":{}}}"#,
        );
        let err = envelope(Some(&old)).unwrap().unwrap_err();
        let object = err.error_object();
        assert_eq!(object["code"], -32022);
        assert_eq!(object["data"]["requested"], "1900-01-01");
        assert_eq!(object["data"]["supported"][0], MODERN_VERSION);
    }

    #[test]
    fn headers_must_say_what_the_body_says_and_base64_values_are_decoded() {
        let headers = Headers {
            version: Some(MODERN_VERSION),
            method: Some("tools/call"),
            name: Some("=?base64?SGVsbG8sIOS4lueVjA==?="),
        };
        assert!(check_headers(&headers, MODERN_VERSION, "tools/call", Some("Hello, 世界")).is_ok());
        assert!(check_headers(&headers, MODERN_VERSION, "tools/call", Some("other")).is_err());
        assert!(check_headers(&headers, MODERN_VERSION, "tools/list", None).is_err());
        let plain = Headers {
            version: Some(MODERN_VERSION),
            method: Some("tools/list"),
            name: None,
        };
        assert!(check_headers(&plain, MODERN_VERSION, "tools/list", None).is_ok());
        assert!(check_headers(&plain, "2026-07-29", "tools/list", None).is_err());
        assert_eq!(
            decode_header_value("=?base64?IHBhZGRlZCA=?=").as_deref(),
            Some(" padded ")
        );
        assert_eq!(decode_header_value("=?base64?!!!?="), None);
        assert_eq!(http_status(Some(-32601)), 404);
        assert_eq!(http_status(Some(-32020)), 400);
        assert_eq!(http_status(None), 200);
    }

    #[test]
    fn an_annotated_argument_and_its_header_must_agree() {
        use crate::sanitize::{ParamHeader, ParamType};
        let params = [
            ParamHeader {
                header: "Region".into(),
                property: "region".into(),
                kind: ParamType::String,
            },
            ParamHeader {
                header: "Count".into(),
                property: "count".into(),
                kind: ParamType::Integer,
            },
            ParamHeader {
                header: "Dry".into(),
                property: "dry".into(),
                kind: ParamType::Boolean,
            },
        ];
        let args = serde_json::json!({"region": "eü-1", "count": 7, "dry": true});
        let headers = |name: &str| match name {
            "Mcp-Param-Region" => Some("=?base64?ZcO8LTE=?="),
            "Mcp-Param-Count" => Some("7"),
            "Mcp-Param-Dry" => Some("true"),
            _ => None,
        };
        assert!(check_params(&params, &args, headers).is_ok());
        let missing = |name: &str| (name != "Mcp-Param-Dry").then_some("7");
        assert!(check_params(&params[1..2], &args, missing).is_ok());
        assert!(check_params(&params[2..], &args, missing).is_err());
        let absent = serde_json::json!({});
        assert!(check_params(&params[1..2], &absent, |_| Some("7")).is_err());
        assert!(check_params(&params, &absent, |_| None).is_ok());
    }
}

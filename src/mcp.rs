//! MCP protocol facts shared by both sides of the gate: versions, the gate's name, and the
//! `_meta` key that names the calling agent to a partner bridge.
//!
//! Owns: the list of protocol versions the gate speaks and how a version is negotiated.
//! Never: does I/O or holds state.

/// The version the gate offers and prefers.
pub(crate) const LATEST_VERSION: &str = "2025-11-25";

/// The `_meta` key through which the gate tells a `partner` connection's bridge which agent
/// calls (its tokens' `sub`). The gate removes it from what agents send, so none can claim it.
pub(crate) const AGENT_META: &str = "io.aegis-gate/agent";

/// Every version the gate speaks, newest first. `2026-07-28` (stateless, `server/discover`) is not
/// among them: its discovery method is answered with -32601 so dual-era clients fall back.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// True when the gate speaks `version`.
pub(crate) fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The version to answer an agent's `initialize` with: its own when supported, else the latest
/// (the client then decides whether it can go on).
pub(crate) fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|v| SUPPORTED_VERSIONS.iter().copied().find(|s| *s == v))
        .unwrap_or(LATEST_VERSION)
}

/// The `_meta` key through which the gate hands a remote server's bridge the `Mcp-Param-*`
/// headers of a `tools/call` (`{"Region": "eu-1"}`); the bridge takes it out and sends the
/// headers. The gate removes it from what agents send, and from what a local server gets.
pub(crate) const PARAM_META: &str = "io.aegis-gate/mcp-param";

/// The `_meta` key of a 2026-07-28 request's protocol version (its envelope).
pub(crate) const ENVELOPE_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of a 2026-07-28 request's client capabilities (its envelope).
pub(crate) const ENVELOPE_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `_meta` key of a 2026-07-28 request's client name and version (its envelope).
pub(crate) const ENVELOPE_CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";

/// A value for a 2026-07-28 HTTP header (`Mcp-Name`, `Mcp-Param-*`): verbatim when it is
/// printable ASCII without leading or trailing spaces and not itself in the encoded form, else
/// `=?base64?…?=` around the base64 of its UTF-8.
pub(crate) fn encode_header_value(value: &str) -> String {
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    let spaced = value.starts_with(' ') || value.ends_with(' ');
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = printable && !spaced && !looks_encoded;
    if plain {
        return value.to_owned();
    }
    format!("=?base64?{}?=", base64(value.as_bytes()))
}

/// A header value as sent: verbatim, or `=?base64?…?=` around the base64 of UTF-8; `None` for
/// a value in that form that does not decode.
pub(crate) fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    String::from_utf8(base64_decode(inner)?).ok()
}

/// The standard base64 alphabet (padding with `=`).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, canonical only.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|a| *a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n: u32 = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { value(*c)? };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The stateless era's version (2026-07-28).
pub(crate) const MODERN_VERSION: &str = "2026-07-28";

/// The gate's name in `serverInfo` and `clientInfo`.
pub(crate) const IMPLEMENTATION_NAME: &str = "aegis-gate";

/// The gate's version.
pub(crate) const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// 2026-07-28: the `_meta` key that names the `subscriptions/listen` a notice belongs to.
pub(crate) const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// The client capabilities the gate declares to its children: requests it can route back to the
/// agent whose call a child serves.
pub(crate) const CLIENT_CAPABILITIES: &str =
    r#"{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true}}"#;

/// What an agent's session declared it can answer (its `initialize` capabilities): which
/// requests of a child may be routed to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// `sampling/createMessage`.
    pub(crate) sampling: bool,
    /// `elicitation/create`.
    pub(crate) elicitation: bool,
    /// `roots/list`.
    pub(crate) roots: bool,
}

impl ClientCaps {
    /// What an `initialize` request's `capabilities` declare.
    pub(crate) fn from_capabilities(caps: Option<&serde_json::Value>) -> ClientCaps {
        let has = |k: &str| caps.and_then(|c| c.get(k)).is_some_and(|v| v.is_object());
        ClientCaps {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }

    /// Whether a child's request `method` may go to this session, and the capability it needs.
    pub(crate) fn allows(self, method: &str) -> Result<(), &'static str> {
        let (declared, name) = match method {
            "sampling/createMessage" => (self.sampling, "sampling"),
            "elicitation/create" => (self.elicitation, "elicitation"),
            "roots/list" => (self.roots, "roots"),
            _ => (false, "none"),
        };
        if declared {
            Ok(())
        } else {
            Err(name)
        }
    }

    /// These capabilities without the ones in `denied`.
    pub(crate) fn without(self, denied: ClientCaps) -> ClientCaps {
        ClientCaps {
            sampling: self.sampling && !denied.sampling,
            elicitation: self.elicitation && !denied.elicitation,
            roots: self.roots && !denied.roots,
        }
    }
}

/// The requests a child may send the gate's agents (besides `ping`).
pub(crate) const SERVER_REQUESTS: [&str; 3] =
    ["sampling/createMessage", "elicitation/create", "roots/list"];

/// An RFC 5424 log level, as `logging/setLevel` and `notifications/message` name them; ordered
/// from the most verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    /// Every level with its name, least severe first.
    pub(crate) const ALL: [(LogLevel, &'static str); 8] = [
        (LogLevel::Debug, "debug"),
        (LogLevel::Info, "info"),
        (LogLevel::Notice, "notice"),
        (LogLevel::Warning, "warning"),
        (LogLevel::Error, "error"),
        (LogLevel::Critical, "critical"),
        (LogLevel::Alert, "alert"),
        (LogLevel::Emergency, "emergency"),
    ];

    /// The level named `name`.
    pub(crate) fn parse(name: &str) -> Option<LogLevel> {
        LogLevel::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(l, _)| *l)
    }

    /// Its name.
    pub(crate) fn as_str(self) -> &'static str {
        LogLevel::ALL
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("info", |(_, n)| n)
    }
}

/// One of the lists a server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub(crate) const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::Templates,
    ];

    /// The method that lists it.
    pub(crate) fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The kind a `notifications/…/list_changed` method names (`resources` covers templates).
    pub(crate) fn changed_by(method: &str) -> &'static [ListKind] {
        match method {
            "notifications/tools/list_changed" => &[ListKind::Tools],
            "notifications/prompts/list_changed" => &[ListKind::Prompts],
            "notifications/resources/list_changed" => &[ListKind::Resources, ListKind::Templates],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_are_verbatim_or_base64_as_the_era_says() {
        assert_eq!(super::encode_header_value("echo"), "echo");
        assert_eq!(
            super::encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(
            super::encode_header_value(" padded "),
            "=?base64?IHBhZGRlZCA=?="
        );
        assert_eq!(
            super::encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }
}

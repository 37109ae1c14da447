//! MCP 2026-07-28 as a client writes it: the per-request `_meta` envelope, enveloped requests
//! to a stdio [`Gate`], and stateless POSTs to a [`Serve`] with the era's headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) computed from the body.
//! Never: opens a session; hides a status or a header from the test.

use super::http::{self, Response};
use super::{Gate, Serve, WAIT};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

/// The stateless era's version.
pub const VERSION: &str = "2026-07-28";
/// The `_meta` key of a listen's notices.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The envelope of a request whose client can answer `capabilities`.
pub fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "it-modern", "version": "1"},
    })
}

/// `params` (an object, or null for none) with the envelope of a client that can answer
/// `capabilities`.
pub fn enveloped(params: Value, capabilities: Value) -> Value {
    let mut params = match params {
        Value::Null => json!({}),
        p => p,
    };
    params["_meta"] = meta(capabilities);
    params
}

/// An enveloped request `method` with `params`, the client declaring no capability.
pub fn request(id: impl serde::Serialize, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": enveloped(params, json!({}))})
}

/// The subscription id a listen's notice carries (`Value::Null` when none).
pub fn subscription_of(notice: &Value) -> Value {
    notice["params"]["_meta"][SUBSCRIPTION_ID].clone()
}

impl Gate {
    /// An enveloped request `method` with `params` (no capability declared); its answer.
    pub fn modern(&mut self, method: &str, params: Value) -> Value {
        self.modern_declaring(method, params, json!({}))
    }

    /// The same, the envelope declaring `capabilities`.
    pub fn modern_declaring(&mut self, method: &str, params: Value, capabilities: Value) -> Value {
        self.request(method, enveloped(params, capabilities))
    }
}

/// The headers a client of the era sends with `message`: `MCP-Protocol-Version`, `Mcp-Method`,
/// and `Mcp-Name` (the name of a tool or prompt, the URI of a read) when the method has one.
pub fn headers_for(message: &Value) -> Vec<(&'static str, String)> {
    let method = message["method"].as_str().unwrap_or_default().to_owned();
    let mut headers = vec![
        ("MCP-Protocol-Version", VERSION.to_owned()),
        ("Mcp-Method", method.clone()),
    ];
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => message["params"]["name"].as_str(),
        "resources/read" => message["params"]["uri"].as_str(),
        _ => None,
    };
    if let Some(name) = name {
        headers.push(("Mcp-Name", name.to_owned()));
    }
    headers
}

impl Serve {
    /// A stateless POST of `message` to workspace `ws` as agent `key`, with the headers a
    /// client of the era computes from it.
    pub fn modern(&self, ws: &str, key: &str, message: &Value) -> Response {
        let computed = headers_for(message);
        let auth = format!("Bearer {key}");
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(computed.iter().map(|(k, v)| (*k, v.as_str())));
        self.post_mcp(ws, &headers, &message.to_string())
    }

    /// A POST of `message` as agent `key` with exactly `headers` besides `Authorization`,
    /// `Content-Type` and `Accept` (both types): for requests whose headers are wrong.
    pub fn modern_with(
        &self,
        ws: &str,
        key: &str,
        headers: &[(&str, &str)],
        message: &Value,
    ) -> Response {
        let auth = format!("Bearer {key}");
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.post_mcp(ws, &all, &message.to_string())
    }

    /// Sends `message` (a `subscriptions/listen`) on a connection of its own and reads the
    /// answer's head; the stream (its reads giving up after [`WAIT`]) and what it read so far.
    pub fn modern_stream(&self, ws: &str, key: &str, message: &Value) -> (TcpStream, String) {
        let mut stream = self.modern_send(ws, key, message);
        let mut seen = String::new();
        http::read_until(&mut stream, &mut seen, "\r\n\r\n");
        (stream, seen)
    }

    /// Sends `message` as a `2026-07-28` POST on a connection of its own (`Connection: close`)
    /// and returns the connection unread.
    pub fn modern_send(&self, ws: &str, key: &str, message: &Value) -> TcpStream {
        let body = message.to_string();
        let computed = headers_for(message);
        let (auth, length) = (format!("Bearer {key}"), body.len().to_string());
        let mut headers = vec![
            ("Connection", "close"),
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Content-Length", length.as_str()),
        ];
        headers.extend(computed.iter().map(|(k, v)| (*k, v.as_str())));
        let request = http::head(&self.addr, "POST", &format!("/mcp/{ws}"), &headers) + &body;
        let mut stream = http::connect(&self.addr, WAIT).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream
    }
}

/// The JSON messages of the whole `data:` lines of an event stream read so far.
pub fn events(seen: &str) -> Vec<Value> {
    let whole = &seen[..seen.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// Reads `stream` into `seen` until the whole events so far satisfy `done`; those events.
pub fn read_events(
    stream: &mut TcpStream,
    seen: &mut String,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut buf = [0u8; 4096];
    loop {
        let so_far = events(seen);
        if done(&so_far) {
            return so_far;
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("the stream ended first: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("not in time ({e}): {seen}"),
        }
    }
}

/// Reads `stream` into `seen` until a whole event for which `pred` holds came; the first such.
pub fn read_event(
    stream: &mut TcpStream,
    seen: &mut String,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let all = read_events(stream, seen, |all| all.iter().any(&pred));
    all.into_iter().find(pred).unwrap()
}

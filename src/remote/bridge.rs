//! `aegis-gate bridge`: one remote MCP server over Streamable HTTP, spoken to as a stdio child.
//!
//! A connection of kind `http` or `partner` runs this as its child, so the connection's
//! supervision (handshake, listing, heartbeats, deadlines, restarts with backoff, teardown) is the
//! same code as for any local server. The bridge reads JSON-RPC lines on stdin and POSTs each to
//! the URL (`Accept: application/json, text/event-stream`, the session's `Mcp-Session-Id` and
//! `MCP-Protocol-Version`, the configured headers); a JSON answer becomes one line on stdout, an
//! event stream one line per event. A `partner` bridge also signs every request with the gate's
//! key (`Aegis-Delegation`, see [`crate::delegation::token`]). After `initialize` it opens the
//! session's GET stream, so the server's `notifications/tools/list_changed` arrive; a 405 there
//! means the server has none. An expired session (404) ends the bridge with status 3, and the
//! connection restarts it (a fresh `initialize`). At stdin EOF it ends the session (`DELETE`).
//!
//! Owns: the HTTP side of one remote connection, with [`POSTERS`] requests in flight at most.
//! An error status (401, 403, 404, 5xx…) without a JSON-RPC answer to the request becomes a
//! JSON-RPC error to that request that names the status and says what to do
//! ([`super::status`]), so a refused `initialize` fails the connection at once with its reason.
//!
//! Never: logs a header value or a token; writes anything but JSON-RPC messages on stdout (what
//! the server sends is checked with [`jsonrpc::parse`] first; anything else is dropped with a
//! note on stderr); writes half a line (stdout is written a line at a time under a lock); keeps a
//! request longer than its timeout (a deadline over the whole exchange).
//!
//! Threads: the main thread reads stdin; `bridge-post-N` send requests; `bridge-events` holds the
//! GET stream. The process ends at stdin EOF (or is signalled by the connection's teardown).

use super::{sse, status};
use crate::delegation::token::{self, Grant};
use crate::glob::Scope;
use crate::http_client::{self as client, Response, Url};
use crate::jsonrpc::{self, code, Message, Outcome};
use crate::mcp;
use crate::thread::lock;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests in flight to the server at once.
pub(crate) const POSTERS: usize = 8;
/// The environment variable with the connection's headers: a JSON object of names to values.
pub(crate) const HEADERS_ENV: &str = "AEGIS_BRIDGE_HEADERS";
/// Exit status when the server forgot the session (the connection restarts the bridge).
pub(crate) const SESSION_GONE: i32 = 3;
/// Requests waiting for a poster.
const QUEUE: usize = 64;
/// Lifetime of each signed token.
const TOKEN_LIFETIME: i64 = 120;

/// How a `partner` bridge signs.
pub(crate) struct Signer {
    /// This gate's org (`iss`).
    pub org_id: String,
    /// The partner's org (`aud`).
    pub audience: String,
    /// The key and its id.
    pub key: SigningKey,
    /// Its `kid`.
    pub kid: String,
    /// What agents may use at the partner (`scope`).
    pub scope: Scope,
    /// Who calls (`sub`).
    pub sub: String,
}

/// What the bridge needs.
pub(crate) struct Options {
    /// The server's MCP endpoint.
    pub url: Url,
    /// Headers sent with every request (credentials included; never logged).
    pub headers: Vec<(String, String)>,
    /// Signing, for a partner.
    pub signer: Option<Signer>,
    /// Bounds connect, every read and write, and so a silent answer.
    pub timeout: Duration,
    /// Longest message accepted either way.
    pub max_line: usize,
}

/// State shared by the threads.
struct Shared {
    options: Options,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    out: Mutex<io::Stdout>,
}

/// Runs until stdin closes.
pub(crate) fn run(options: Options) -> Result<(), String> {
    let shared = Arc::new(Shared {
        options,
        session: Mutex::new(None),
        version: Mutex::new(None),
        out: Mutex::new(io::stdout()),
    });
    let (tx, rx) = crossbeam_channel::bounded::<Outgoing>(QUEUE);
    let mut posters = Vec::new();
    for n in 0..POSTERS {
        let (shared, rx) = (Arc::clone(&shared), rx.clone());
        let thread = crate::thread::spawn(format!("bridge-post-{n}"), move || {
            for outgoing in rx.iter() {
                shared.exchange(&outgoing);
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
        posters.push(thread);
    }
    let mut events_started = false;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(shared.options.max_line)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let n = (&mut input)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("stdin: {e}"))?;
        if n == 0 {
            break;
        }
        let Some(outgoing) = Outgoing::parse(&line) else {
            continue; // Not a JSON-RPC message from our own gate: nothing to send.
        };
        if outgoing.method.as_deref() == Some("subscriptions/listen") {
            // A listen's stream lasts as long as the server keeps it: a thread of its own,
            // detached like the GET stream's (it blocks reading; the process ends at stdin EOF).
            let shared = Arc::clone(&shared);
            let started = crate::thread::spawn("bridge-listen", move || {
                shared.exchange_open(&outgoing);
            });
            match started {
                Ok(thread) => thread.detach(),
                Err(e) => eprintln!("bridge: cannot start a listen's thread: {e}"),
            }
        } else if outgoing.method.as_deref() == Some("initialize") {
            // In order: the session id must exist before the next message goes out.
            shared.exchange(&outgoing);
        } else if outgoing.id.is_none() {
            shared.exchange(&outgoing); // Notifications and answers, in order.
        } else if let Err(e) = tx.try_send(outgoing) {
            let outgoing = e.into_inner();
            shared.error(&outgoing, code::OVERLOADED, "too many requests in flight");
        }
        if !events_started && lock(&shared.session).is_some() {
            events_started = true;
            let shared = Arc::clone(&shared);
            // Detached on purpose: it blocks reading the GET stream, and the process ends at
            // stdin EOF right after; nothing of it needs joining.
            if let Ok(thread) = crate::thread::spawn("bridge-events", move || shared.events()) {
                thread.detach();
            }
        }
    }
    drop(tx);
    for poster in posters {
        poster.join();
    }
    shared.end_session();
    Ok(())
}

/// One message from the gate.
struct Outgoing {
    body: Vec<u8>,
    id: Option<Value>,
    method: Option<String>,
    tool: String,
    /// The calling agent, as the gate said (`_meta` [`mcp::AGENT_META`], taken out of the body).
    agent: Option<String>,
    /// A 2026-07-28 request's version (its envelope's): it goes with that era's headers and
    /// without the legacy session.
    modern: Option<String>,
    /// The `Mcp-Param-*` headers the gate computed for a `tools/call` (`_meta`
    /// [`mcp::PARAM_META`], taken out of the body).
    params: Vec<(String, String)>,
}

impl Outgoing {
    fn parse(line: &[u8]) -> Option<Outgoing> {
        let mut body = line.strip_suffix(b"\n").unwrap_or(line).to_vec();
        let mut value: Value = serde_json::from_slice(&body).ok()?;
        let agent = take_agent(&mut value);
        let params = take_params(&mut value);
        if agent.is_some() || !params.is_empty() {
            // The remote server never sees the gate's own note.
            body = serde_json::to_vec(&value).ok()?;
        }
        let method = value
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let id = value.get("id").filter(|_| method.is_some()).cloned();
        // What the token binds: the name a call routes by (a resource's URI).
        let pointer = match method.as_deref() {
            Some("tools/call" | "prompts/get") => Some("/params/name"),
            Some("resources/read") => Some("/params/uri"),
            _ => None,
        };
        let tool = pointer
            .and_then(|p| value.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let modern = value
            .pointer("/params/_meta")
            .and_then(|m| m.get(mcp::ENVELOPE_VERSION_KEY))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Outgoing {
            body,
            id,
            method,
            tool,
            agent,
            modern,
            params,
        })
    }
}

/// Removes `params._meta[PARAM_META]` (and an emptied `_meta`); returns the headers it held.
fn take_params(message: &mut Value) -> Vec<(String, String)> {
    let Some(meta) = message
        .get_mut("params")
        .and_then(Value::as_object_mut)
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    else {
        return Vec::new();
    };
    let Some(Value::Object(headers)) = meta.remove(mcp::PARAM_META) else {
        return Vec::new();
    };
    let emptied = meta.is_empty();
    if emptied {
        if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
            params.remove("_meta");
        }
    }
    headers
        .into_iter()
        .filter_map(|(name, value)| value.as_str().map(|v| (name, v.to_owned())))
        .collect()
}

/// Removes `params._meta[AGENT_META]` (and an emptied `_meta`); returns the agent.
fn take_agent(message: &mut Value) -> Option<String> {
    let params = message.get_mut("params")?.as_object_mut()?;
    let meta = params.get_mut("_meta")?.as_object_mut()?;
    let agent = meta.remove(mcp::AGENT_META)?;
    if meta.is_empty() {
        params.remove("_meta");
    }
    agent.as_str().map(str::to_owned)
}

impl Shared {
    fn headers(
        &self,
        tool: &str,
        body: &[u8],
        accept: &str,
        agent: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut headers = self.options.headers.clone();
        headers.push(("Accept".into(), accept.into()));
        headers.push(("Content-Type".into(), "application/json".into()));
        if let Some(session) = lock(&self.session).clone() {
            headers.push(("Mcp-Session-Id".into(), session));
        }
        if let Some(version) = lock(&self.version).clone() {
            headers.push(("MCP-Protocol-Version".into(), version));
        }
        if let Some(signer) = &self.options.signer {
            match sign(signer, tool, body, agent) {
                Ok(token) => headers.push((token::HEADER.into(), token)),
                Err(e) => eprintln!("bridge: cannot sign: {e}"),
            }
        }
        headers
    }

    /// The headers of a 2026-07-28 request: that era's (the version, `Mcp-Method`, `Mcp-Name`
    /// for a call, non-ASCII in `=?base64?…?=`), never the legacy session's.
    fn modern_headers(&self, outgoing: &Outgoing, version: &str) -> Vec<(String, String)> {
        let mut headers = self.options.headers.clone();
        headers.push((
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ));
        headers.push(("Content-Type".into(), "application/json".into()));
        headers.push(("MCP-Protocol-Version".into(), version.to_owned()));
        let method = outgoing.method.clone().unwrap_or_default();
        let named = matches!(
            method.as_str(),
            "tools/call" | "prompts/get" | "resources/read"
        );
        headers.push(("Mcp-Method".into(), method));
        if named {
            headers.push(("Mcp-Name".into(), mcp::encode_header_value(&outgoing.tool)));
        }
        for (name, value) in &outgoing.params {
            headers.push((format!("Mcp-Param-{name}"), mcp::encode_header_value(value)));
        }
        if let Some(signer) = &self.options.signer {
            match sign(
                signer,
                &outgoing.tool,
                &outgoing.body,
                outgoing.agent.as_deref(),
            ) {
                Ok(token) => headers.push((token::HEADER.into(), token)),
                Err(e) => eprintln!("bridge: cannot sign: {e}"),
            }
        }
        headers
    }

    /// A 2026-07-28 `subscriptions/listen`: its stream is relayed for as long as the server
    /// keeps it (no overall deadline; each read times out, and servers send keepalives); when it
    /// ends without an answer, the gate is told with an error, and opens another.
    fn exchange_open(&self, outgoing: &Outgoing) {
        let Some(version) = &outgoing.modern else {
            return self.exchange(outgoing);
        };
        let headers = self.modern_headers(outgoing, version);
        let response = client::send(
            &self.options.url,
            "POST",
            &headers,
            &outgoing.body,
            self.options.timeout,
            None,
        );
        let result = match response {
            Ok(mut response) => self.relay(outgoing, &mut response),
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        let why = match result {
            Ok(()) => "the server ended the listen".to_owned(),
            Err(e) => format!("remote: {e}"),
        };
        self.error(outgoing, code::SERVER_UNAVAILABLE, &why);
    }

    /// Sends one message and relays what comes back.
    fn exchange(&self, outgoing: &Outgoing) {
        let headers = match &outgoing.modern {
            Some(version) => self.modern_headers(outgoing, version),
            None => self.headers(
                &outgoing.tool,
                &outgoing.body,
                "application/json, text/event-stream",
                outgoing.agent.as_deref(),
            ),
        };
        let url = &self.options.url;
        let timeout = self.options.timeout;
        let deadline = std::time::Instant::now() + timeout;
        let response = client::send(
            url,
            "POST",
            &headers,
            &outgoing.body,
            timeout,
            Some(deadline),
        );
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                return self.error(outgoing, code::SERVER_UNAVAILABLE, &format!("remote: {e}"));
            }
        };
        if response.status == 404 && lock(&self.session).is_some() {
            eprintln!("bridge: the server forgot the session (404); restarting");
            self.error(outgoing, code::SERVER_UNAVAILABLE, "remote session expired");
            std::process::exit(SESSION_GONE);
        }
        if outgoing.method.as_deref() == Some("initialize") && response.status == 200 {
            if let Some(id) = response.header("Mcp-Session-Id") {
                *lock(&self.session) = Some(id.to_owned());
            }
        }
        if let Err(e) = self.relay(outgoing, &mut response) {
            self.error(outgoing, code::SERVER_UNAVAILABLE, &format!("remote: {e}"));
        }
    }

    /// The response's messages as lines; a failed request becomes an error answer.
    fn relay(&self, outgoing: &Outgoing, response: &mut Response) -> io::Result<()> {
        let status = response.status;
        let success = (200..300).contains(&status);
        let is_stream = response
            .header("Content-Type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/event-stream"));
        if status == 202 || (outgoing.id.is_none() && success) {
            return Ok(());
        }
        if is_stream && status == 200 {
            while let Some(data) = sse::next_data(response.body(), self.options.max_line)? {
                self.note_version(outgoing, data.as_bytes());
                let _ = self.emit(data.as_bytes()); // Dropped unless JSON-RPC.
            }
            return Ok(());
        }
        let body = response.read_all(self.options.max_line)?;
        let body = body.trim_ascii_end();
        if success {
            self.note_version(outgoing, body);
            if !self.emit(body) {
                self.error(
                    outgoing,
                    code::SERVER_UNAVAILABLE,
                    &status::not_json_rpc(status),
                );
            }
            return Ok(());
        }
        // A JSON-RPC error answering this very request (a partner's gate says 401, 403 or 429
        // so) is relayed as it is; any other body (a REST error, a proxy's page) becomes an
        // error that names the status and what to do, never echoing what the server sent.
        if !(answers(outgoing, body) && self.emit(body)) {
            let message = status::failure_message(status);
            if outgoing.id.is_none() {
                eprintln!("bridge: a notification was refused: {message}");
            }
            self.error(outgoing, code::SERVER_UNAVAILABLE, &message);
        }
        Ok(())
    }

    /// The protocol version the server chose, from its `initialize` answer: later requests
    /// carry it in `MCP-Protocol-Version`.
    fn note_version(&self, outgoing: &Outgoing, message: &[u8]) {
        if outgoing.method.as_deref() != Some("initialize") {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(message) else {
            return;
        };
        if let Some(version) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
            *lock(&self.version) = Some(version.to_owned());
        }
    }

    /// Holds the session's GET stream and relays its messages; ends when the server has none.
    fn events(&self) {
        let mut failures = 0u32;
        while failures < 5 {
            let headers = self.headers("", b"", "text/event-stream", None);
            // No overall deadline: the stream lives as long as the session; the per-read
            // timeout ends it when the server falls silent (it sends keepalives).
            let response = client::send(
                &self.options.url,
                "GET",
                &headers,
                b"",
                self.options.timeout,
                None,
            );
            match response {
                Ok(mut r) if r.status == 200 => {
                    failures = 0;
                    while let Ok(Some(data)) = sse::next_data(r.body(), self.options.max_line) {
                        let _ = self.emit(data.as_bytes()); // Dropped unless JSON-RPC.
                    }
                }
                Ok(r) if r.status == 405 => return, // The server offers no stream.
                Ok(r) if r.status == 404 => return, // The session is gone; a POST will say so.
                Ok(_) | Err(_) => failures += 1,
            }
            // Reconnect pace: a server that drops streams must not be hammered.
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn end_session(&self) {
        if lock(&self.session).is_none() {
            return;
        }
        let headers = self.headers("", b"", "application/json", None);
        let wait = Duration::from_secs(2);
        let deadline = std::time::Instant::now() + wait;
        let _ = client::send(
            &self.options.url,
            "DELETE",
            &headers,
            b"",
            wait,
            Some(deadline),
        );
    }

    /// One message on stdout, as one line; false (and nothing written) when it is not a
    /// JSON-RPC message, which the gate could not read: stdout carries JSON-RPC only.
    fn emit(&self, message: &[u8]) -> bool {
        if let Err(e) = jsonrpc::parse(message) {
            eprintln!("bridge: the server sent something that is not JSON-RPC ({e}); dropped");
            return false;
        }
        let compact;
        let line = if message.contains(&b'\n') {
            compact = one_line(message);
            compact.as_slice()
        } else {
            message
        };
        let mut out = lock(&self.out);
        let written = out
            .write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if written.is_err() {
            // The gate is gone; nothing more to do.
            std::process::exit(0);
        }
        true
    }

    fn error(&self, outgoing: &Outgoing, code: i64, message: &str) {
        let Some(id) = &outgoing.id else { return };
        let line = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message }
        });
        let _ = self.emit(line.to_string().as_bytes()); // JSON-RPC by construction.
    }
}

/// A JSON message (it parsed) on one line. A raw line break can stand in JSON only between
/// tokens, where it is whitespace: a space in its place changes nothing, and no tree is built
/// (a message a tree parser refuses, a `1e400` or deep nesting, was lost when one was).
fn one_line(message: &[u8]) -> Vec<u8> {
    message
        .iter()
        .map(|&b| if matches!(b, b'\n' | b'\r') { b' ' } else { b })
        .collect()
}

/// Whether `body` is a JSON-RPC error answering `outgoing` (same id).
fn answers(outgoing: &Outgoing, body: &[u8]) -> bool {
    let Some(want) = &outgoing.id else {
        return false;
    };
    match jsonrpc::parse(body) {
        Ok(Message::Response {
            id,
            outcome: Outcome::Error(_),
        }) => serde_json::from_str::<Value>(id.as_json()).is_ok_and(|got| got == *want),
        Ok(_) | Err(_) => false,
    }
}

fn sign(
    signer: &Signer,
    tool: &str,
    body: &[u8],
    agent: Option<&str>,
) -> Result<String, token::SignError> {
    let now = crate::time::unix_now();
    let grant = Grant {
        iss: &signer.org_id,
        aud: &signer.audience,
        // The calling agent when the gate named one; else the connection's default.
        sub: agent.unwrap_or(&signer.sub),
        scope: &signer.scope,
    };
    token::sign(
        &signer.key,
        &signer.kid,
        &grant,
        tool,
        body,
        now,
        TOKEN_LIFETIME,
    )
}

//! API: the HTTP side of the gate (serve mode).
//!
//! Owns: the HTTP front ([`front`]) and the routes served on it. Today: `GET /healthz` and
//! `GET /readyz`; the REST admin API and MCP over Streamable HTTP are still to come (see the
//! serve-mode issue).
//! Never: blocks a worker on a downstream; never puts a secret into a response.

pub mod front;
pub mod serve;

use std::sync::Arc;

/// The routes of serve mode as they stand.
pub struct Routes;

impl front::Handler for Routes {
    fn handle(&self, request: tiny_http::Request) {
        let (status, body) = match (request.method(), request.url()) {
            (tiny_http::Method::Get, "/healthz") => (200, r#"{"status":"ok"}"#),
            (tiny_http::Method::Get, "/readyz") => (200, r#"{"status":"ready"}"#),
            _ => (
                404,
                r#"{"error":{"code":"not_found","message":"no such route"}}"#,
            ),
        };
        respond_json(request, status, body);
    }
}

/// Answers with a JSON body.
pub fn respond_json(request: tiny_http::Request, status: u16, body: &str) {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]);
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = header {
        response = response.with_header(header);
    }
    if let Err(e) = request.respond(response) {
        log::debug!("client went away before its answer: {e}");
    }
}

/// The routes, shareable with the front.
pub fn routes() -> Arc<dyn front::Handler> {
    Arc::new(Routes)
}

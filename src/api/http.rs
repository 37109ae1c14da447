//! HTTP plumbing shared by the routes: JSON bodies, JSON answers, errors as JSON, the bearer.
//!
//! Owns: [`ApiError`] (status + code + message, rendered `{"error":{"code","message"}}`), JSON
//! answers (each body ends with a newline), the
//! checks of a body the server has read (its content type, 415; its size, 413), the bearer
//! token of a request, the check of an id taken from a path or a body, and a
//! store error as a 500.
//! Never: echoes a header or body value that could be a secret into an error.

use crate::http::Request;
use serde_json::Value;

/// An error answered to an HTTP client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A sentence for people; never carries a secret.
    pub message: String,
}

impl ApiError {
    /// An error with its status, code and message.
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 for an unknown route or id.
    pub(crate) fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", what)
    }

    /// 401: missing or wrong credentials.
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(401, "unauthorized", "missing or invalid bearer token")
    }

    /// 405 for a known path with another method.
    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError::new(405, "method_not_allowed", "method not allowed on this path")
    }

    /// 400 for malformed input.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// 422 for well-formed input that cannot be accepted.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "invalid", message)
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> String {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } }).to_string()
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        match e {
            crate::store::Error::Shared(_) => {
                ApiError::new(503, "store_unavailable", e.to_string())
            }
            _ => ApiError::new(500, "store", e.to_string()),
        }
    }
}

/// Checks an id (a workspace's, an org's) by the rules of a server name with `.` as separator;
/// `what` names it in the refusal.
pub(super) fn validate_id(what: &str, id: &str) -> Result<(), ApiError> {
    crate::config::validate_server_name(id, crate::config::Separator::Dot)
        .map_err(|why| ApiError::invalid(format!("{what} {id:?}: {why}")))
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("Authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The body, when it is JSON (`application/json`, parameters allowed: 415 otherwise) and within
/// `limit` bytes (413; the front refuses larger bodies before reading them already).
pub(crate) fn json_body(request: &Request, limit: usize) -> Result<&[u8], ApiError> {
    let content_type = request.header("Content-Type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    let body = request.body();
    if body.len() > limit {
        return Err(too_large(limit));
    }
    Ok(body)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("the body is over {limit} bytes"),
    )
}

/// Parses a JSON body into `T`, unknown fields refused by `T`'s own serde attributes.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Answers with a JSON value.
pub(crate) fn respond(request: Request, status: u16, body: &Value) {
    respond_json(request, status, body.to_string().as_bytes());
}

/// Answers with an error.
pub(crate) fn respond_error(request: Request, error: &ApiError) {
    respond_json(request, error.status, error.body().as_bytes());
}

/// Answers with a JSON body.
pub(crate) fn respond_json(request: Request, status: u16, body: &[u8]) {
    respond_json_with(request, status, &[], body);
}

/// Answers with a JSON body and `headers` besides its `Content-Type`. The body ends with a
/// newline, as every JSON answer of the gate does (one message a line, as over stdio; `curl`
/// leaves the shell's prompt on a line of its own).
pub(crate) fn respond_json_with(
    request: Request,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let mut line = Vec::with_capacity(body.len() + 1);
    line.extend_from_slice(body);
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    request.respond(status, &all, &line);
}

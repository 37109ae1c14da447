//! `aegis-gate approvals list|approve ID|deny ID`: the held calls of a running `serve`.
//!
//! Owns: talking to a running gate's REST API (`--url`, default `http://127.0.0.1:8787`, with the
//! admin token from `AEGIS_ADMIN_TOKEN`): held calls live in that process, not in the data dir.
//! Never: prints the token; follows redirects.

use crate::http_client::{self as client, Url};
use std::time::{Duration, Instant};

/// Runs `approvals ACTION [ID]` against `base`; returns what to print.
pub(super) fn run(action: &str, id: Option<&str>, base: &str) -> Result<String, String> {
    let (method, path) = match (action, id) {
        ("list", None) => ("GET", "/api/v1/aegis/approvals".to_owned()),
        ("approve" | "deny", Some(id))
            if id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            ("POST", format!("/api/v1/aegis/approvals/{id}/{action}"))
        }
        _ => return Err("approvals takes list, approve ID or deny ID".into()),
    };
    let token = std::env::var(crate::api::serve::ADMIN_TOKEN_ENV)
        .map_err(|_| "set AEGIS_ADMIN_TOKEN to the gate's admin token".to_owned())?;
    let url = Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| format!("--url: {e}"))?;
    let headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    let timeout = Duration::from_secs(10);
    let mut response = client::send(
        &url,
        method,
        &headers,
        b"",
        timeout,
        Some(Instant::now() + timeout),
    )
    .map_err(|e| format!("cannot reach the gate: {e}"))?;
    let body = response
        .read_all(16 * 1024 * 1024)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or(text);
    if (200..300).contains(&response.status) {
        Ok(format!("{pretty}\n"))
    } else {
        Err(format!(
            "the gate answered HTTP {}: {pretty}",
            response.status
        ))
    }
}

//! `aegis-gate approvals list|approve ID|deny ID`: the held calls of a running `serve`.
//!
//! Owns: the help and flags of `approvals`, and talking to a running gate's REST API (`--url`,
//! default `http://127.0.0.1:8787`, with the admin token from `AEGIS_ADMIN_TOKEN`): held calls
//! live in that process, not in the data dir.
//! Never: prints the token; follows redirects; touches `api` beyond the name of the token's
//! variable (`api::serve::ADMIN_TOKEN_ENV`).

use super::{args, CliError};
use crate::http_client::{self as client, Url};
use crate::{api, logging};
use lexopt::prelude::*;
use std::time::{Duration, Instant};

/// Runs `aegis-gate approvals ACTION [ID]` and prints the gate's answer.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut url = "http://127.0.0.1:8787".to_owned();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("url") => url = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let (method, path) = route(&words)?;
    let out = ask(method, &path, &url).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate approvals: the calls a running serve holds for a person's approval

USAGE:
    aegis-gate approvals list [--url URL]
    aegis-gate approvals approve ID [--url URL]
    aegis-gate approvals deny ID [--url URL]

Talks to the gate's REST API at --url (default http://127.0.0.1:8787) with the admin token
from AEGIS_ADMIN_TOKEN, and prints its JSON answer.

EXAMPLES:
    AEGIS_ADMIN_TOKEN=... aegis-gate approvals list
    aegis-gate approvals approve apr_0123456789abcdef --url http://127.0.0.1:8787
";

/// The method and path of `approvals ACTION [ID]`; a usage error for anything else.
fn route(words: &[String]) -> Result<(&'static str, String), CliError> {
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => Ok(("GET", "/api/v1/aegis/approvals".to_owned())),
        [action @ ("approve" | "deny"), id]
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(("POST", format!("/api/v1/aegis/approvals/{id}/{action}")))
        }
        _ => Err(args::takes(
            "approvals",
            "list, approve ID or deny ID",
            words,
        )),
    }
}

/// Asks the gate at `base` for `method path`; returns what to print.
fn ask(method: &str, path: &str, base: &str) -> Result<String, String> {
    let token = std::env::var(api::serve::ADMIN_TOKEN_ENV)
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

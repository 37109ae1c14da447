//! `aegis-gate bridge`: stdio on one side, one remote MCP server over Streamable HTTP on the other.
//!
//! Owns: the help and flags of `bridge`, the request headers from `AEGIS_BRIDGE_HEADERS`, and, for
//! `--partner-org`, the signer made from the gate's own signing key; then the hand-over to
//! `remote::bridge::run`.
//! Never: echoes a header value (in an error or a log line); writes to stdout itself (it is the
//! connection's protocol); creates a signing key unless `--partner-org` asks to sign.

use super::{args, CliError};
use crate::crypto::signing::SigningKeys;
use crate::http_client::Url;
use crate::logging;
use crate::remote::bridge;
use lexopt::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Runs `aegis-gate bridge` until its stdin ends.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut url: Option<String> = None;
    let mut timeout = Duration::from_millis(70_000);
    let mut max_line: usize = 4 * 1024 * 1024;
    let (mut partner, mut org_id, mut data_dir) = (None::<String>, None::<String>, None::<PathBuf>);
    let mut scope = r#"{"allow": ["*.*"]}"#.to_owned();
    let mut sub = "gate".to_owned();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("url") => url = Some(parser.value()?.string()?),
            Long("timeout-ms") => {
                let ms = args::at_most_a_day(args::positive(args::parse_number(
                    parser,
                    "--timeout-ms",
                )?)?)?;
                timeout = Duration::from_millis(ms);
            }
            Long("max-line-bytes") => {
                max_line = args::positive(args::parse_number(parser, "--max-line-bytes")?)?
            }
            Long("partner-org") => partner = Some(parser.value()?.string()?),
            Long("org-id") => org_id = Some(parser.value()?.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("scope") => scope = parser.value()?.string()?,
            Long("sub") => sub = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let url = url.ok_or_else(|| args::takes("bridge", "--url URL", &[]))?;
    let url = Url::parse(&url).map_err(|e| CliError::Config(e.to_string()))?;
    let headers = bridge_headers()?;
    let signer = match partner {
        None => None,
        Some(audience) => {
            let org_id =
                org_id.ok_or_else(|| CliError::Usage("--partner-org needs --org-id".into()))?;
            let dir =
                data_dir.ok_or_else(|| CliError::Usage("--partner-org needs --data-dir".into()))?;
            let keys =
                SigningKeys::load_or_create(&dir).map_err(|e| CliError::Config(e.to_string()))?;
            let scope = serde_json::from_str(&scope)
                .map_err(|e| CliError::Config(format!("--scope: {e}")))?;
            Some(bridge::Signer {
                org_id,
                audience,
                key: keys.current().signing_key().clone(),
                kid: keys.current().kid.clone(),
                scope,
                sub,
            })
        }
    };
    let options = bridge::Options {
        url,
        headers,
        signer,
        timeout,
        max_line,
    };
    bridge::run(options).map_err(CliError::Runtime)
}

/// The bridge's headers from `AEGIS_BRIDGE_HEADERS` (values never echoed in errors).
fn bridge_headers() -> Result<Vec<(String, String)>, CliError> {
    let Ok(text) = std::env::var(bridge::HEADERS_ENV) else {
        return Ok(Vec::new());
    };
    let map: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|_| {
        CliError::Config(format!(
            "{} is not a JSON object of header names to values",
            bridge::HEADERS_ENV
        ))
    })?;
    Ok(map.into_iter().collect())
}

pub(super) const HELP: &str = "\
aegis-gate bridge: one remote MCP server over Streamable HTTP, spoken to over stdin/stdout

USAGE:
    aegis-gate bridge --url http://HOST:PORT/PATH [OPTIONS]

Connections of kind http and partner run this as their child; it can also be used by hand
or as a server in a stdio config. Headers for every request come from the environment
variable AEGIS_BRIDGE_HEADERS, a JSON object (e.g. {\"Authorization\": \"Bearer ...\"}).
https:// is checked against Mozilla's roots, plus the PEM certificates of AEGIS_CA_FILE.

OPTIONS:
    --url URL            The server's MCP endpoint (http:// or https://)
    --timeout-ms N       Connect and read timeout of each request (default 70000)
    --max-line-bytes N   Longest message either way (default 4194304)
    --partner-org ORG    Sign every request for this partner org (its aud) with the gate's
                         key; needs --org-id and --data-dir
    --org-id ORG         This gate's org (the tokens' iss)
    --data-dir DIR       Where the gate's signing.key is
    --scope JSON         {\"allow\": [globs], \"deny\": [globs]} for the tokens (default
                         {\"allow\": [\"*.*\"]})
    --sub NAME           The tokens' sub (default: gate)
    -h, --help           Print help

EXAMPLES:
    aegis-gate bridge --url http://127.0.0.1:8000/mcp
    AEGIS_BRIDGE_HEADERS='{\"Authorization\": \"Bearer ...\"}' aegis-gate bridge --url https://mcp.example.com/mcp
";

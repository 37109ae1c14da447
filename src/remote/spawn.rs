//! How the gate starts a bridge: the one builder of `aegis-gate bridge`'s command line, the
//! mirror of the flags `cli` parses for it.
//!
//! Owns: the program (the gate's own executable), the argv (`bridge --url …`, the deadline, and
//! for a `partner` connection the signing flags) and the environment (header values as JSON in
//! [`super::bridge::HEADERS_ENV`], never on the command line, where `ps` would show them).
//! Never: puts a header value or any other secret into the argv; checks the URL (callers do, with
//! their own error type).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What a partner bridge signs its tokens with, besides its key in the data dir.
pub(crate) struct Signing<'a> {
    /// The partner's org id: the tokens' audience.
    pub audience: &'a str,
    /// This gate's org id: the tokens' issuer.
    pub org_id: &'a str,
    /// The data dir holding this gate's signing key.
    pub data_dir: &'a Path,
    /// The scope globs, as JSON.
    pub scope: &'a str,
    /// The default `sub` (the connection's workspace) when the gate names no agent.
    pub sub: &'a str,
}

/// One bridge to start.
pub(crate) struct Invocation<'a> {
    /// The remote server's MCP endpoint.
    pub url: &'a str,
    /// Header names and plain values, sent with every request.
    pub headers: &'a BTreeMap<String, String>,
    /// The bridge's per-exchange deadline; the bridge's default when `None`.
    pub timeout: Option<Duration>,
    /// Set for a `partner` connection.
    pub signing: Option<Signing<'a>>,
}

/// A bridge as a child to start: program, arguments, environment.
pub(crate) struct Command {
    /// The gate's own executable.
    pub program: String,
    /// The arguments after the program.
    pub args: Vec<String>,
    /// The environment the bridge needs (its headers).
    pub env: BTreeMap<String, String>,
}

impl Invocation<'_> {
    /// The command that starts this bridge; an error names what is missing (the gate's own
    /// executable, or headers that cannot be written).
    pub(crate) fn command(&self) -> Result<Command, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the gate's own executable: {e}"))?;
        let mut args = vec!["bridge".to_owned(), "--url".to_owned(), self.url.to_owned()];
        if let Some(timeout) = self.timeout {
            args.extend(["--timeout-ms".to_owned(), timeout.as_millis().to_string()]);
        }
        if let Some(signing) = &self.signing {
            args.extend([
                "--partner-org".to_owned(),
                signing.audience.to_owned(),
                "--org-id".to_owned(),
                signing.org_id.to_owned(),
                "--data-dir".to_owned(),
                signing.data_dir.display().to_string(),
                "--scope".to_owned(),
                signing.scope.to_owned(),
                "--sub".to_owned(),
                signing.sub.to_owned(),
            ]);
        }
        let headers = serde_json::to_string(self.headers).map_err(|e| e.to_string())?;
        let mut env = BTreeMap::new();
        env.insert(super::bridge::HEADERS_ENV.to_owned(), headers);
        Ok(Command {
            program: exe.display().to_string(),
            args,
            env,
        })
    }
}

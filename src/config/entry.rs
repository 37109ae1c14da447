//! One server entry of the config file, in either format: its keys, its transport, its variables,
//! and the [`ServerConfig`] it becomes.
//!
//! Owns: what an entry's keys mean (their names and shapes are [`super::keys`]'s);
//! `type`/`transportType` checked against `command` and `url`; `${…}` expanded (through [`super::expand`]) in `command`, `args`, `env` values, `cwd`,
//! `url`, `headers` values and `envFile`; `envFile` read (through [`super::envfile`]); the
//! environment rules and the bridge command of a `url` server. [`check`] does all of it for one
//! entry and returns a [`Checked`], so `doctor` sees every entry's outcome, not only the first
//! error.
//! Never: logs (warnings are data; `Config::load` logs them, `doctor` prints them); puts a value
//! of `env`, `headers` or an `envFile`, as written or expanded, into an error or a warning;
//! starts anything.

use super::envfile;
use super::error::Error;
use super::expand::expand;
use super::keys::{known_keys, shorten, Warning};
use super::settings::{validate_server_name, Separator};
use super::ServerConfig;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What one entry became.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `"disabled": true`: not started (and not checked further).
    Disabled,
    /// A local command.
    Local {
        /// The child to start.
        server: ServerConfig,
        /// `command` as the file writes it, before `${…}` expansion (what `doctor` may show).
        written_command: String,
    },
    /// A `url` server, reached through `aegis-gate bridge`.
    Remote(ServerConfig),
}

/// One entry checked: its warnings, and what it became or why it cannot be used.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The config key.
    pub name: String,
    /// What the gate goes past in it.
    pub warnings: Vec<Warning>,
    /// The server, or the first reason it cannot be used.
    pub outcome: Result<Outcome, Error>,
}

/// What checking an entry needs besides the entry.
pub(super) struct Context<'a> {
    /// The merged-name separator (a server name must not contain it).
    pub separator: Separator,
    /// Refused variables the file's servers may still set.
    pub allow_env: &'a BTreeSet<String>,
    /// The config file's folder: a relative `envFile` is found there.
    pub base_dir: &'a Path,
    /// The gate's environment, for `${…}`.
    pub lookup: &'a dyn Fn(&str) -> Option<OsString>,
}

/// Checks the entry `value` named `name`.
pub(super) fn check(name: String, value: Value, ctx: &Context<'_>) -> Checked {
    let mut warnings = Vec::new();
    let outcome = outcome(&name, value, ctx, &mut warnings);
    if matches!(outcome, Ok(Outcome::Disabled)) {
        warnings.clear();
    }
    Checked {
        name,
        warnings,
        outcome,
    }
}

/// The entry's known keys, as the gate reads them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EntryFile {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    env_file: Option<String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    transport_type: Option<String>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    trusted: bool,
    era: Option<String>,
}

/// How the gate reaches a server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Stdio,
    Http,
}

fn outcome(
    name: &str,
    value: Value,
    ctx: &Context<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Outcome, Error> {
    let map = known_keys(name, value, warnings)?;
    // Every key left is known and of its shape, so this reads them all.
    let fields: EntryFile =
        serde_json::from_value(Value::Object(map)).map_err(|_| Error::EntryShape {
            name: name.to_owned(),
            key: None,
            expected: "an object of the documented keys",
        })?;
    if fields.disabled {
        return Ok(Outcome::Disabled);
    }
    validate_server_name(name, ctx.separator).map_err(|reason| Error::InvalidServerName {
        name: name.to_owned(),
        reason,
    })?;
    match transport(name, &fields)? {
        Transport::Stdio => local(name, fields, ctx),
        Transport::Http => remote(name, fields, ctx),
    }
}

/// The transport `type` (or `transportType`) declares, checked against `command` and `url`; the
/// one they imply when neither is set.
fn transport(name: &str, fields: &EntryFile) -> Result<Transport, Error> {
    let refuse = |reason: String| Error::Transport {
        name: name.to_owned(),
        reason,
    };
    let declared = match (fields.kind.as_deref(), fields.transport_type.as_deref()) {
        (Some(kind), Some(other)) if kind != other => {
            return Err(refuse(
                "\"type\" and \"transportType\" disagree; keep one".to_owned(),
            ))
        }
        (kind, other) => kind.or(other),
    };
    let declared = match declared {
        None => None,
        Some("stdio") => Some(Transport::Stdio),
        Some("http" | "streamable-http" | "streamableHttp") => Some(Transport::Http),
        Some("sse") => return Err(refuse(SSE_REFUSAL.to_owned())),
        Some(other) => {
            return Err(refuse(format!(
                "\"type\": {:?} is not one of \"stdio\", \"http\", \"streamable-http\", \"sse\"",
                shorten(other)
            )))
        }
    };
    let has_command = fields.command.as_deref().is_some_and(|c| !c.is_empty());
    match (declared, has_command, fields.url.is_some()) {
        (_, true, true) => Err(refuse(
            "has both \"command\" and \"url\"; keep the one its transport needs".to_owned(),
        )),
        (None | Some(Transport::Stdio), true, false) => Ok(Transport::Stdio),
        (None | Some(Transport::Http), false, true) => Ok(Transport::Http),
        (Some(Transport::Stdio), false, true) => Err(refuse(
            "\"type\": \"stdio\" needs a \"command\"; for its \"url\" write \"type\": \"http\""
                .to_owned(),
        )),
        (Some(Transport::Http), _, false) => Err(refuse(
            "\"type\": \"http\" needs a \"url\" (a local server has \"type\": \"stdio\")"
                .to_owned(),
        )),
        (None | Some(Transport::Stdio), false, false) => Err(Error::MissingCommand {
            name: name.to_owned(),
        }),
    }
}

/// Why an entry of `"type": "sse"` is refused.
const SSE_REFUSAL: &str = "\"type\": \"sse\" is the older HTTP+SSE transport, which the gate's \
    bridge does not speak (it speaks Streamable HTTP); if the server also offers Streamable \
    HTTP (often at /mcp rather than /sse), write that \"url\" with \"type\": \"http\"";

/// A local command: its values expanded, its `envFile` read (the entry's `env` wins), the
/// environment rules applied.
fn local(name: &str, fields: EntryFile, ctx: &Context<'_>) -> Result<Outcome, Error> {
    let written_command = fields.command.unwrap_or_default();
    let command = expanded(name, "command", &written_command, ctx)?;
    if command.is_empty() {
        return Err(Error::MissingCommand {
            name: name.to_owned(),
        });
    }
    let mut args = Vec::with_capacity(fields.args.len());
    for (idx, arg) in fields.args.iter().enumerate() {
        args.push(expanded(name, &format!("args[{idx}]"), arg, ctx)?);
    }
    let mut env = match &fields.env_file {
        Some(file) => env_file(name, file, ctx)?,
        None => BTreeMap::new(),
    };
    for (var, value) in &fields.env {
        env.insert(
            var.clone(),
            expanded(name, &format!("env {var}"), value, ctx)?,
        );
    }
    let cwd = match &fields.cwd {
        Some(cwd) => Some(PathBuf::from(expanded(name, "cwd", cwd, ctx)?)),
        None => None,
    };
    check_spawn(name, &command, &args, &env, ctx.allow_env)?;
    let server = ServerConfig {
        name: name.to_owned(),
        command,
        args,
        env,
        cwd,
        pass_agent: false,
        trusted: fields.trusted,
        modern: era(name, fields.era.as_deref())?,
        remote: false,
    };
    Ok(Outcome::Local {
        server,
        written_command,
    })
}

/// The era an entry's `"era"` names: `"modern"` (or `"2026-07-28"`) for a server spoken to
/// statelessly, `"legacy"` (the default) for one started with `initialize`.
fn era(name: &str, era: Option<&str>) -> Result<bool, Error> {
    match era {
        None | Some("legacy") => Ok(false),
        Some("modern" | "2026-07-28") => Ok(true),
        Some(_) => Err(Error::EntryShape {
            name: name.to_owned(),
            key: Some("era"),
            expected: "\"legacy\" or \"modern\" (2026-07-28)",
        }),
    }
}

/// A `url` server: `url` and header values expanded, then the bridge that reaches it.
fn remote(name: &str, fields: EntryFile, ctx: &Context<'_>) -> Result<Outcome, Error> {
    let url = expanded(name, "url", fields.url.as_deref().unwrap_or_default(), ctx)?;
    let mut headers = BTreeMap::new();
    for (header, value) in &fields.headers {
        let field = format!("headers {header}");
        headers.insert(header.clone(), expanded(name, &field, value, ctx)?);
    }
    let mut server = remote_server(name.to_owned(), &url, &headers)?;
    server.trusted = fields.trusted;
    server.modern = era(name, fields.era.as_deref())?;
    Ok(Outcome::Remote(server))
}

fn expanded(name: &str, field: &str, text: &str, ctx: &Context<'_>) -> Result<String, Error> {
    expand(text, ctx.lookup).map_err(|problem| Error::Variable {
        name: name.to_owned(),
        field: field.to_owned(),
        problem,
    })
}

/// The variables of the entry's `envFile` (its path expanded, relative to the config file's
/// folder); values are taken as they are.
fn env_file(name: &str, file: &str, ctx: &Context<'_>) -> Result<BTreeMap<String, String>, Error> {
    let path = ctx.base_dir.join(expanded(name, "envFile", file, ctx)?);
    let refuse = |reason: String| Error::EnvFile {
        name: name.to_owned(),
        path: PathBuf::from(file),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| refuse(e.to_string()))?;
    envfile::parse(&text).map_err(refuse)
}

/// The environment rules for what the operator's own file sets (the file may name any command:
/// the allowlist is for the REST API), and no NUL byte anywhere a program cannot receive one.
fn check_spawn(
    name: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    allowed: &BTreeSet<String>,
) -> Result<(), Error> {
    let refuse = |reason: String| Error::Spawn {
        name: name.to_owned(),
        reason,
    };
    if command.contains('\0') || args.iter().any(|a| a.contains('\0')) {
        return Err(refuse(
            "the command or an argument holds a NUL byte".to_owned(),
        ));
    }
    if let Some(var) = env.iter().find(|(_, v)| v.contains('\0')).map(|(k, _)| k) {
        return Err(refuse(format!("the value of env {var} holds a NUL byte")));
    }
    crate::allowlist::check_env(env.keys().map(String::as_str), allowed).map_err(|(var, why)| {
        refuse(format!(
            "env {var} is refused: {why}; if you mean it, add it to \"aegis\": {{\"allow_env\": [\"{var}\"]}}"
        ))
    })
}

/// A `url` server runs `aegis-gate bridge` as its child (headers in its environment), so it is
/// supervised like a local one.
fn remote_server(
    name: String,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<ServerConfig, Error> {
    let refuse = |reason: String| Error::RemoteServer {
        name: name.clone(),
        reason,
    };
    crate::http_client::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
    let command = crate::remote::spawn::Invocation {
        url,
        headers,
        timeout: None,
        signing: None,
    }
    .command()
    .map_err(refuse)?;
    Ok(ServerConfig {
        name,
        command: command.program,
        args: command.args,
        env: command.env,
        cwd: None,
        pass_agent: false,
        trusted: false,
        modern: false,
        remote: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_checked_against_command_and_url() {
        let entry = |v: Value| -> EntryFile { serde_json::from_value(v).unwrap() };
        let ok = [
            (serde_json::json!({"command": "x"}), Transport::Stdio),
            (
                serde_json::json!({"type": "stdio", "command": "x"}),
                Transport::Stdio,
            ),
            (serde_json::json!({"url": "http://h/"}), Transport::Http),
            (
                serde_json::json!({"type": "streamable-http", "url": "http://h/"}),
                Transport::Http,
            ),
            (
                serde_json::json!({"transportType": "http", "url": "http://h/"}),
                Transport::Http,
            ),
        ];
        for (v, want) in ok {
            assert!(transport("s", &entry(v.clone())).ok() == Some(want), "{v}");
        }
        let refused = [
            (
                serde_json::json!({"type": "sse", "url": "http://h/sse"}),
                "HTTP+SSE",
            ),
            (
                serde_json::json!({"type": "stdio", "url": "http://h/"}),
                "needs a \"command\"",
            ),
            (
                serde_json::json!({"type": "http", "command": "x"}),
                "needs a \"url\"",
            ),
            (
                serde_json::json!({"command": "x", "url": "http://h/"}),
                "both",
            ),
            (
                serde_json::json!({"type": "ws", "command": "x"}),
                "not one of",
            ),
            (
                serde_json::json!({"type": "stdio", "transportType": "sse", "command": "x"}),
                "disagree",
            ),
            (serde_json::json!({"args": []}), "has no \"command\""),
        ];
        for (v, needle) in refused {
            let err = transport("s", &entry(v.clone())).err().unwrap().to_string();
            assert!(err.contains(needle), "{v}: {err}");
        }
    }
}

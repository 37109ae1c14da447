//! The spawn settings of the `"aegis"` object: `allow_commands` (serve's allowlist, next to
//! `--allow-command`) and `allow_env` (refused variables the file's own servers may still set).
//!
//! Owns: their file shape ([`AllowCommand`]: a template, or `{"command", "allow_env"}`) and
//! turning them into an [`Allowlist`] with a [`config::Error`](Error) naming the entry.
//! Never: judges a command (the allowlist does, at registration and at each start).

use super::Error;
use crate::allowlist::Allowlist;
use serde::Deserialize;
use std::collections::BTreeSet;

/// One entry of `allow_commands`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum AllowCommand {
    /// `"python3 -m mcp_server_*"`.
    Template(String),
    /// `{"command": "python3 -m mcp_server_*", "allow_env": ["PYTHONPATH"]}`.
    WithEnv {
        command: String,
        #[serde(default)]
        allow_env: Vec<String>,
    },
}

/// The allowlist `allow_commands` describes.
pub(super) fn allowlist(entries: Vec<AllowCommand>) -> Result<Allowlist, Error> {
    let mut list = Allowlist::default();
    for entry in entries {
        let (command, env) = match entry {
            AllowCommand::Template(command) => (command, Vec::new()),
            AllowCommand::WithEnv { command, allow_env } => (command, allow_env),
        };
        list.allow(&command).map_err(|e| Error::InvalidSetting {
            name: "allow_commands",
            reason: format!("{command:?}: {e}"),
        })?;
        for name in env {
            list.allow_env_for_last(&name);
        }
    }
    Ok(list)
}

/// `allow_env`, upper-cased (variables are matched without regard to case).
pub(super) fn allowed_env(names: Vec<String>) -> BTreeSet<String> {
    names.into_iter().map(|n| n.to_ascii_uppercase()).collect()
}

//! The gate's state: workspaces, connections (env values Fernet-encrypted), agents (keys hashed),
//! the admin token's hash and the tool pins, in one `state.json` with a schema version.
//!
//! Owns: the file's format, loading (a corrupt file stops the start with a message naming it and
//! the last good backup), and writing it: every write holds the write lock, re-reads the file and
//! replaces only its own part (serve's part here, the pins in [`super::pins`]), so a gate, a CLI
//! command and serve sharing the data dir never undo each other. A change is applied to a copy,
//! written atomically (temp file, fsync, rename, fsync of the dir), and only then becomes the
//! state in memory, so a success means the change is on disk and a failure changes nothing. The
//! previous good file is kept as `state.json.bak`.
//! Never: holds a plain secret: env values are Fernet tokens, keys and tokens are SHA-256 hashes.

use super::pins::Pins;
use super::{atomic_write, ensure_data_dir, io_error, Error, FileLock};
use crate::delegation::glob::{Glob, Scope};
use crate::delegation::rate::Rate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FILE: &str = "state.json";
const BACKUP: &str = "state.json.bak";
/// 2: pins moved in from `pins.json`.
const SCHEMA_VERSION: u32 = 2;
/// Held by every read-modify-write of the file (not the `state.json` lock, which a running
/// `serve` holds for its whole life).
const WRITE_LOCK: &str = "state.json.write";

/// A workspace: a set of connections served together at `/mcp/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Whether its connections run.
    pub active: bool,
    /// Which calls its agents may make (`PUT /workspaces/{id}/policy`); everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::Policy>,
    /// Who may call besides agent keys (`PUT /workspaces/{id}/identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfig>,
}

/// A workspace's identity adapters besides agent keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// JWT access tokens from an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<crate::identity::jwt::JwtConfig>,
    /// Opaque tokens checked with the provider (RFC 7662), after agent keys and JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection: Option<crate::identity::introspect::IntrospectionConfig>,
}

/// A registered downstream connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Random id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Its name, unique in the workspace: the tool prefix.
    pub name: String,
    /// argv: the executable and its arguments.
    pub command: Vec<String>,
    /// Variable name → Fernet token bound to this connection and variable.
    pub env: BTreeMap<String, String>,
    /// Whether it runs when its workspace is active.
    pub enabled: bool,
    /// A local command (`stdio`, the default) or a remote server (`http`, `partner`).
    #[serde(default, skip_serializing_if = "Kind::is_stdio")]
    pub kind: Kind,
    /// Where a remote server is, for `http` and `partner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
    /// Policies may use its tools' annotations (`destructiveHint`, …).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trusted: bool,
}

/// What a connection reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A local command spoken to over its stdin and stdout.
    #[default]
    Stdio,
    /// A remote MCP server over Streamable HTTP.
    Http,
    /// A partner organization's gate: `http`, every request signed with this gate's key.
    Partner,
}

impl Kind {
    /// Whether this is the default kind (not written to the state file).
    pub fn is_stdio(&self) -> bool {
        *self == Kind::Stdio
    }
}

/// A remote server's address and credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// Its MCP endpoint (`http://…`).
    pub url: String,
    /// Header name → Fernet token bound to this connection and `header:NAME`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// For a partner: its org id (the tokens' `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// For a partner: what this gate's agents may use there (the tokens' `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// An agent allowed to call a workspace's tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Random id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 (hex) of its key; the key itself is shown once and never stored.
    pub key_hash: String,
    /// Revoked agents are refused.
    pub revoked: bool,
}

/// A partner organization whose gate may call this gate's tools under signed delegation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// Its organization id (the `iss` of its tokens).
    pub org_id: String,
    /// Its public keys; a token's `kid` selects one.
    pub keys: Vec<PartnerKey>,
    /// The workspace whose tools it may reach (at `/mcp/{workspace_id}`).
    pub workspace_id: String,
    /// Tools it may call (scope globs).
    #[serde(default)]
    pub allow: Vec<Glob>,
    /// Tools it may never call, whatever `allow` or its tokens say.
    #[serde(default)]
    pub deny: Vec<Glob>,
    /// Its rate, for the org as a whole.
    pub rate: Rate,
    /// The rate of each of its agents (`sub`); the org's rate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_rate: Option<Rate>,
}

/// A partner's public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerKey {
    /// The id its tokens name.
    pub kid: String,
    /// `k4.public.…`.
    pub public_key: String,
    /// RFC 3339 UTC; after it the key no longer verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Everything the gate persists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Schema version of the file.
    pub version: u32,
    /// SHA-256 (hex) of the admin token, when the gate generated it (not with `AEGIS_ADMIN_TOKEN`).
    pub admin_token_hash: Option<String>,
    /// Workspaces by id.
    pub workspaces: BTreeMap<String, Workspace>,
    /// Connections by id.
    pub connections: BTreeMap<String, Connection>,
    /// Agents by id.
    pub agents: BTreeMap<String, Agent>,
    /// This gate's organization id (`serve --org-id`), for delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Partner organizations by org id.
    #[serde(default)]
    pub partners: BTreeMap<String, Partner>,
    /// Tool pins by workspace, server and tool; written by [`super::pins::PinStore`] only.
    #[serde(default)]
    pub pins: Pins,
}

/// `state.json` of a data dir, as serve mode changes it.
#[derive(Debug)]
pub struct StateStore {
    file: StateFile,
    state: State,
}

impl StateStore {
    /// Opens the state (an empty one when there is no file yet).
    pub fn open(dir: &Path) -> Result<StateStore, Error> {
        let file = StateFile::new(dir)?;
        let mut state = file.read()?.unwrap_or_default();
        state.pins = Pins::default();
        Ok(StateStore { file, state })
    }

    /// The state as it is on disk, without the pins: [`super::pins::PinStore`] reads those.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies `change` to a copy of the state and makes it durable; the state in memory changes
    /// only when the write succeeded. `change` may refuse with its own error. The pins on disk
    /// are kept as they are.
    pub fn update<T, E: From<Error>>(
        &mut self,
        change: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut next = self.state.clone();
        let out = change(&mut next)?;
        next.pins = Pins::default();
        if next == self.state {
            return Ok(out);
        }
        let _lock = self.file.lock()?;
        let pins = self.file.read()?.map(|s| s.pins).unwrap_or_default();
        self.file.write(&State {
            pins,
            ..next.clone()
        })?;
        self.state = next;
        Ok(out)
    }
}

/// The file itself: where it is, how it is read, locked and written.
#[derive(Debug)]
pub(crate) struct StateFile {
    dir: PathBuf,
    path: PathBuf,
    backup: PathBuf,
}

impl StateFile {
    /// The state file of `dir`, creating the dir if needed.
    pub(crate) fn new(dir: &Path) -> Result<StateFile, Error> {
        ensure_data_dir(dir)?;
        Ok(StateFile {
            dir: dir.to_owned(),
            path: dir.join(FILE),
            backup: dir.join(BACKUP),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The write lock: hold it from the read to the write of a read-modify-write.
    pub(crate) fn lock(&self) -> Result<FileLock, Error> {
        FileLock::acquire(&self.dir, WRITE_LOCK)
    }

    /// The state on disk; `None` when there is no file yet.
    pub(crate) fn read(&self) -> Result<Option<State>, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => parse(&bytes)
                .map(Some)
                .map_err(|reason| corrupt(&self.path, &self.backup, &reason)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&self.path)(e)),
        }
    }

    /// Replaces the file with `state` (under [`StateFile::lock`]), keeping the old one as backup.
    pub(crate) fn write(&self, state: &State) -> Result<(), Error> {
        let mut state = state.clone();
        state.version = SCHEMA_VERSION;
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if let Ok(current) = std::fs::read(&self.path) {
            if parse(&current).is_ok() {
                atomic_write(&self.backup, &current)?;
            }
        }
        atomic_write(&self.path, &bytes)
    }
}

fn parse(bytes: &[u8]) -> Result<State, String> {
    let state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version > SCHEMA_VERSION {
        return Err(format!(
            "schema version {} is newer than this gate's {SCHEMA_VERSION}",
            state.version
        ));
    }
    Ok(state)
}

fn corrupt(path: &Path, backup: &Path, reason: &str) -> Error {
    let last_good = if backup.exists() {
        format!("; the last good state is {}", backup.display())
    } else {
        "; there is no backup".to_owned()
    };
    Error::Corrupt {
        path: path.to_owned(),
        reason: format!("{reason}{last_good}"),
    }
}

/// Hex SHA-256 of a key or token, for storing and comparing.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two equal-length hashes in constant time.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `n` random bytes as lowercase hex, from the OS.
pub fn random_hex(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Io {
        path: PathBuf::from("(os random source)"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aegis-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_change_is_on_disk_when_update_returns_and_a_refused_change_changes_nothing() {
        let dir = temp_dir("update");
        let mut store = StateStore::open(&dir).unwrap();
        store
            .update(|s| {
                s.workspaces.insert(
                    "ws-1".into(),
                    Workspace {
                        active: true,
                        policy: None,
                        identity: None,
                    },
                );
                Ok::<_, Error>(())
            })
            .unwrap();
        assert!(StateStore::open(&dir).unwrap().state().workspaces["ws-1"].active);
        let refused: Result<(), Error> = store.update(|s| {
            s.workspaces.clear();
            Err(Error::UnknownTool("refused".into()))
        });
        assert!(refused.is_err());
        assert_eq!(store.state().workspaces.len(), 1);
        assert_eq!(StateStore::open(&dir).unwrap().state().workspaces.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_names_itself_and_the_last_good_backup() {
        let dir = temp_dir("corrupt");
        let mut store = StateStore::open(&dir).unwrap();
        for id in ["a", "b"] {
            store
                .update(|s| {
                    s.workspaces.insert(id.into(), Workspace::default());
                    Ok::<_, Error>(())
                })
                .unwrap();
        }
        std::fs::write(dir.join(FILE), b"{\"version\": 1, \"workspa").unwrap();
        let err = StateStore::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains("state.json is corrupt") && err.contains("state.json.bak"),
            "{err}"
        );
        let backup: State =
            serde_json::from_slice(&std::fs::read(dir.join(BACKUP)).unwrap()).unwrap();
        assert!(backup.workspaces.contains_key("a"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_hash_and_compare() {
        let h = hash_secret("key");
        assert_eq!(h.len(), 64);
        assert!(hashes_equal(&h, &hash_secret("key")));
        assert!(!hashes_equal(&h, &hash_secret("other")));
        assert_eq!(random_hex(16).unwrap().len(), 32);
        assert_ne!(random_hex(16).unwrap(), random_hex(16).unwrap());
    }
}

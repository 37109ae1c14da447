//! The gate's state: workspaces, connections (env values Fernet-encrypted), agents (keys hashed),
//! the admin token's hash and the tool pins, in one `state.json` with a schema version.
//!
//! Owns: loading the file (its format is [`super::schema`]) (a corrupt file stops the start with a message naming it and
//! the last good backup), and writing it: every write holds the write lock, re-reads the file and
//! replaces only its own part (serve's part here, the pins in [`super::pins`]), so a gate, a CLI
//! command and serve sharing the data dir never undo each other. A change is applied to a copy,
//! written atomically (temp file, fsync, rename, fsync of the dir), and only then becomes the
//! state in memory, so a success means the change is on disk and a failure changes nothing. The
//! previous good file is kept as `state.json.bak`.
//! Never: holds a plain secret: env values are Fernet tokens, keys and tokens are SHA-256 hashes.

use super::schema::Pins;
pub(crate) use super::schema::{
    Agent, Connection, IdentityConfig, Kind, Partner, PartnerKey, Remote, State, Workspace,
};
use super::{atomic_write, ensure_data_dir, io_error, Error, FileLock};
use std::path::{Path, PathBuf};

const FILE: &str = "state.json";
const BACKUP: &str = "state.json.bak";
/// 2: pins moved in from `pins.json`.
const SCHEMA_VERSION: u32 = 2;
/// Held by every read-modify-write of the file (not the `state.json` lock, which a running
/// `serve` holds for its whole life).
const WRITE_LOCK: &str = "state.json.write";

/// `state.json` of a data dir, as serve mode changes it.
#[derive(Debug)]
pub(crate) struct StateStore {
    file: StateFile,
    state: State,
}

impl StateStore {
    /// Opens the state (an empty one when there is no file yet).
    pub(crate) fn open(dir: &Path) -> Result<StateStore, Error> {
        let file = StateFile::new(dir)?;
        let mut state = file.read()?.unwrap_or_default();
        state.pins = Pins::default();
        Ok(StateStore { file, state })
    }

    /// The state as it is on disk, without the pins: [`super::pins::PinStore`] reads those.
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// Applies `change` to a copy of the state and makes it durable; the state in memory changes
    /// only when the write succeeded. `change` may refuse with its own error. The pins on disk
    /// are kept as they are.
    pub(crate) fn update<T, E: From<Error>>(
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
        // A copy only to stamp the version: every state read from a file has it already.
        let stamped;
        let state = if state.version == SCHEMA_VERSION {
            state
        } else {
            stamped = State {
                version: SCHEMA_VERSION,
                ..state.clone()
            };
            &stamped
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Corrupt {
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
}

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
//! With `serve --store`, the same state lives in a shared store instead of the file
//! ([`super::shared::document`]): serve's part and the pins apart, each with its version.
//! Never: holds a plain secret: env values are Fernet tokens, keys and tokens are SHA-256 hashes.

use super::schema::Pins;
pub(crate) use super::schema::{
    Agent, Connection, IdentityConfig, Kind, Partner, PartnerKey, Remote, State, Workspace,
};
use super::shared::document::{Document, DocumentLock, Part};
use super::shared::SharedStore;
use super::{atomic_write_with, ensure_data_dir, io_error, Error, FileLock};
use crate::thread::lock;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
    /// The file's stamp when `state` was read or written.
    stamp: Stamp,
    /// See [`StateStore::lost`].
    lost: Option<(u64, u64)>,
}

impl StateStore {
    /// Opens the state (an empty one when there is no file yet).
    pub(crate) fn open(dir: &Path) -> Result<StateStore, Error> {
        StateStore::open_at(StateFile::new(dir)?)
    }

    /// Opens the state kept in `file` (the data dir's, or a shared store's).
    pub(crate) fn open_at(file: StateFile) -> Result<StateStore, Error> {
        let (state, stamp) = file.read_stamped()?;
        let mut state = state.unwrap_or_default();
        state.pins = Pins::default();
        Ok(StateStore {
            file,
            state,
            stamp,
            lost: None,
        })
    }

    /// Where the state is kept.
    pub(crate) fn file(&self) -> &StateFile {
        &self.file
    }

    /// The stamp of the state in memory.
    pub(crate) fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Takes `state`, read with `stamp` by a reader that did not hold this store (so that a slow
    /// shared store never holds up those who read the state in memory) and that began when this
    /// store's stamp was `seen`. A read is ignored when the state in memory moved meanwhile (it
    /// may be older than what was written here since) or is not older than it; a read older than
    /// a version this replica has seen marks the store as having lost data ([`StateStore::lost`]).
    /// True when the state in memory changed.
    pub(crate) fn install(&mut self, mut state: State, stamp: Stamp, seen: Stamp) -> bool {
        if !self.confirm(stamp, seen) || stamp == self.stamp {
            return false;
        }
        let newer = match (stamp, self.stamp) {
            (Stamp::Version(read), Stamp::Version(held)) => read > held,
            (read, held) => read != held,
        };
        if !newer {
            return false;
        }
        state.pins = Pins::default();
        let changed = state != self.state;
        self.state = state;
        self.stamp = stamp;
        changed
    }

    /// What a reader that began at `seen` learned of the store's `stamp`, for [`StateStore::lost`]:
    /// false when the state in memory moved meanwhile (nothing can be told from the read).
    pub(crate) fn confirm(&mut self, stamp: Stamp, seen: Stamp) -> bool {
        if self.stamp != seen {
            return false;
        }
        self.lost = match (stamp, self.stamp) {
            (Stamp::Version(read), Stamp::Version(held)) if read < held => Some((read, held)),
            _ => None,
        };
        self.lost.is_none()
    }

    /// Takes a state this replica wrote (or read under the write lock) with `stamp`, unless a
    /// newer one is held already.
    pub(crate) fn take(&mut self, state: State, stamp: Stamp) {
        let newer = match (stamp, self.stamp) {
            (Stamp::Version(ours), Stamp::Version(held)) => ours >= held,
            _ => true,
        };
        if newer {
            self.state = state;
            self.stamp = stamp;
            self.lost = None;
        }
    }

    /// When the shared store holds an older version than this replica has seen (it lost data:
    /// restarted without persistence, flushed, failed over to a stale copy): (what it holds, what
    /// was seen). Writes are refused meanwhile: one would replace every replica's state with
    /// what little the store has left.
    pub(crate) fn lost(&self) -> Option<(u64, u64)> {
        self.lost
    }

    /// The state in memory, without the pins: [`super::pins::PinStore`] reads those.
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
        if self.file.is_shared() {
            return self.update_shared(change);
        }
        let mut next = self.state.clone();
        let out = change(&mut next)?;
        next.pins = Pins::default();
        if next == self.state {
            return Ok(out);
        }
        let lock = self.file.lock()?;
        let pins = self.file.read()?.map(|s| s.pins).unwrap_or_default();
        self.file.write(
            &lock,
            &State {
                pins,
                ..next.clone()
            },
        )?;
        self.stamp = self.file.stamp()?;
        self.state = next;
        Ok(out)
    }

    /// [`StateStore::update`] on a shared store, where other replicas write too: `change` is
    /// applied to the state as the store holds it under the lock, not to the copy in memory.
    fn update_shared<T, E: From<Error>>(
        &mut self,
        change: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let file = self.file.clone();
        let (next, out, stamp) = change_shared(&file, self.stamp, change)?;
        self.take(next, stamp);
        Ok(out)
    }
}

/// A change of a shared store's state made without holding its [`StateStore`] (so a change
/// waiting on the network never holds up those who read the state in memory; the caller takes
/// the outcome in with [`StateStore::take`]): under the store's write lock, `change` is applied to
/// the state as the store holds it. `seen` is the stamp held when the change began: a store
/// holding an older version lost data and is not written over. The new state, `change`'s answer,
/// and the new stamp.
pub(crate) fn change_shared<T, E: From<Error>>(
    file: &StateFile,
    seen: Stamp,
    change: impl FnOnce(&mut State) -> Result<T, E>,
) -> Result<(State, T, Stamp), E> {
    let lock = file.lock()?;
    let (current, stamp) = file.read_stamped()?;
    if let (Stamp::Version(read), Stamp::Version(held)) = (stamp, seen) {
        if read < held {
            return Err(lost_error(read, held).into());
        }
    }
    let mut current = current.unwrap_or_default();
    let pins = std::mem::take(&mut current.pins);
    let mut next = current.clone();
    let out = change(&mut next)?;
    if next == current {
        return Ok((next, out, stamp));
    }
    let written = State {
        pins,
        ..next.clone()
    };
    let version = file.write(&lock, &written)?;
    Ok((next, out, Stamp::Version(version)))
}

/// Where the state is kept, how it is read, locked and written: `state.json` in the data dir, or
/// the document of a shared store (`serve --store`), which replaces the file.
#[derive(Clone, Debug)]
pub(crate) struct StateFile {
    dir: PathBuf,
    path: PathBuf,
    backup: PathBuf,
    shared: Option<Document>,
    /// The file last read and parsed here, or last written here (shared by the clones for the
    /// same path): a write that finds it still in place keeps it as backup without reading and
    /// parsing it again, megabytes with 5,000 pins, which its caller has just done.
    last_good: Arc<Mutex<Option<FileId>>>,
}

/// Which file a path names: its inode, and its size and times, which any write to it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileId {
    fn of(file: &std::fs::File) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// How a reader notices that the state changed without reading it: the file's modification
/// time, or the shared document's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    Modified(Option<SystemTime>),
    Version(u64),
}

/// A read-modify-write's lock on the state, released when dropped.
pub(crate) enum StateLock {
    /// Held for its drop.
    File {
        _held: FileLock,
    },
    Shared(DocumentLock),
}

impl StateFile {
    /// The state file of `dir`, creating the dir if needed.
    pub(crate) fn new(dir: &Path) -> Result<StateFile, Error> {
        ensure_data_dir(dir)?;
        Ok(StateFile {
            dir: dir.to_owned(),
            path: dir.join(FILE),
            backup: dir.join(BACKUP),
            shared: None,
            last_good: Arc::default(),
        })
    }

    /// The state of a shared store instead of `dir`'s file (`dir` stays the data dir).
    pub(crate) fn shared(dir: &Path, store: SharedStore) -> Result<StateFile, Error> {
        Ok(StateFile {
            shared: Some(Document::new(store)),
            ..StateFile::new(dir)?
        })
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// False while a shared store is known not to answer (the next command would wait out its
    /// timeout); always true for a file.
    pub(crate) fn reachable(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|document| document.store().reachable())
    }

    /// The same place, for the tool pins: a shared store keeps them apart from serve's state
    /// (a file holds both).
    pub(crate) fn for_pins(&self) -> StateFile {
        StateFile {
            shared: self.shared.as_ref().map(|d| d.of(Part::Pins)),
            ..self.clone()
        }
    }

    /// The shared store the state is kept in, if it is.
    pub(crate) fn shared_store(&self) -> Option<SharedStore> {
        self.shared.as_ref().map(|d| d.store().clone())
    }

    /// The file's path, or the shared store's URL.
    pub(crate) fn path(&self) -> &Path {
        match &self.shared {
            Some(document) => Path::new(document.store().url()),
            None => &self.path,
        }
    }

    /// The write lock: hold it from the read to the write of a read-modify-write.
    pub(crate) fn lock(&self) -> Result<StateLock, Error> {
        match &self.shared {
            Some(document) => document.lock().map(StateLock::Shared),
            None => {
                FileLock::acquire(&self.dir, WRITE_LOCK).map(|held| StateLock::File { _held: held })
            }
        }
    }

    /// What changes when the state does.
    pub(crate) fn stamp(&self) -> Result<Stamp, Error> {
        match &self.shared {
            Some(document) => document.version().map(Stamp::Version),
            None => Ok(Stamp::Modified(
                std::fs::metadata(&self.path)
                    .and_then(|m| m.modified())
                    .ok(),
            )),
        }
    }

    /// The state on disk; `None` when there is no file yet.
    pub(crate) fn read(&self) -> Result<Option<State>, Error> {
        self.read_stamped().map(|(state, _)| state)
    }

    /// The state and a stamp no newer than it (so a reader that compares stamps reads again
    /// rather than missing a change).
    pub(crate) fn read_stamped(&self) -> Result<(Option<State>, Stamp), Error> {
        if let Some(document) = &self.shared {
            let (bytes, version) = document.read()?;
            let state = bytes
                .map(|bytes| match document.part() {
                    Part::Serve => parse(&bytes),
                    Part::Pins => parse_pins(&bytes),
                })
                .transpose()
                .map_err(|reason| {
                    Error::Shared(format!(
                        "the state in {} is corrupt ({reason}); it was left as it is",
                        document.store().url()
                    ))
                })?;
            return Ok((state, Stamp::Version(version)));
        }
        let stamp = self.stamp()?;
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, stamp)),
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        // Before reading: a change made while it is read then shows as another file.
        let id = FileId::of(&file);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&self.path))?;
        let state = parse(&bytes).map_err(|reason| corrupt(&self.path, &self.backup, &reason))?;
        *lock(&self.last_good) = id;
        Ok((Some(state), stamp))
    }

    /// Replaces the file with `state` under `lock`, keeping the old one as backup (a shared
    /// store keeps no backup); returns the shared document's new version (0 for a file).
    pub(crate) fn write(&self, lock: &StateLock, state: &State) -> Result<u64, Error> {
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
        let corrupt = |e: serde_json::Error| Error::Corrupt {
            path: self.path().to_owned(),
            reason: e.to_string(),
        };
        match (&self.shared, lock) {
            (Some(document), StateLock::Shared(lock)) => {
                // Compact: every replica reads it again at every change. Each part holds its
                // own: the other one's keys are never written from here.
                let bytes = match document.part() {
                    Part::Pins => serde_json::to_vec(&state.pins),
                    Part::Serve if state.pins.is_empty() => serde_json::to_vec(state),
                    Part::Serve => serde_json::to_vec(&State {
                        pins: Pins::default(),
                        ..state.clone()
                    }),
                }
                .map_err(corrupt)?;
                return document.write(lock, &bytes);
            }
            (None, StateLock::File { .. }) => {}
            _ => return Err(Error::Shared("a lock of the other store".into())),
        }
        // One file at a time in memory: the current one is read and checked (and let go)
        // before it is copied, file to file from the same handle, and the new one is serialized
        // straight into its file. With 5,000 pins each is megabytes. Should the new state then
        // fail to be written, the backup is the current file, which stays in place.
        if let Some(mut current) = self.good_current() {
            atomic_write_with(&self.backup, |backup| {
                std::io::copy(&mut current, backup).map(|_| ())
            })?;
        }
        let written = atomic_write_with(&self.path, |file| {
            let mut out = std::io::BufWriter::new(file);
            serde_json::to_writer_pretty(&mut out, state).map_err(std::io::Error::from)?;
            out.flush()
        });
        // Under the write lock no other gate writes it; an unknown file is checked next time.
        *crate::thread::lock(&self.last_good) = written
            .as_ref()
            .ok()
            .and_then(|()| std::fs::File::open(&self.path).ok())
            .and_then(|file| FileId::of(&file));
        written.map(|()| 0)
    }

    /// The current file, rewound, when it reads as a state this gate loads (a good one to keep
    /// as backup); `None` when there is none, it cannot be read, or it does not parse (then
    /// the backup stays the last good file).
    fn good_current(&self) -> Option<std::fs::File> {
        use std::io::Seek as _;
        let mut file = std::fs::File::open(&self.path).ok()?;
        let known = *lock(&self.last_good);
        if known.is_some() && FileId::of(&file) == known {
            return Some(file);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        parse(&bytes).ok()?;
        drop(bytes);
        file.rewind().ok()?;
        Some(file)
    }
}

/// The refusal of a write to a shared store that went back to an older version.
pub(crate) fn lost_error(holds: u64, seen: u64) -> Error {
    Error::Shared(format!(
        "the shared store holds state version {holds}, older than version {seen} this replica has \
         seen: it lost data (restarted without persistence?). Nothing is written until it is \
         restored; to start over from what it holds, restart the replicas"
    ))
}

/// The pins part of a shared store, as a state holding only them.
fn parse_pins(bytes: &[u8]) -> Result<State, String> {
    let pins: Pins = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(State {
        version: SCHEMA_VERSION,
        pins,
        ..State::default()
    })
}

/// `state.json`'s bytes (or a shared store's serve part) as a state, refused when written by a
/// newer gate.
pub(crate) fn parse(bytes: &[u8]) -> Result<State, String> {
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
#[path = "state_tests.rs"]
mod tests;

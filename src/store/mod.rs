//! Store: the gate's persisted state in its data dir.
//!
//! Owns: finding and creating the data dir (mode 0700), atomic writes (temp file, fsync, rename,
//! fsync of the directory) so a reader sees the old file or the new one, never half of one, and
//! the one state file kept there (`state.json`: serve mode's state and the tool pins).
//! Never: holds secrets in plain text; never overwrites a file it could not parse (a corrupt file
//! is an error naming it).

pub(crate) mod pins;
pub(crate) mod schema;
pub(crate) mod shared;
pub(crate) mod state;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the store could not do something.
#[derive(Debug)]
pub enum Error {
    /// No `--data-dir`, no `$XDG_STATE_HOME` and no `$HOME`.
    NoDataDir,
    /// The data dir, or a directory above it, is a file (or anything but a directory).
    NotADirectory {
        /// The data dir.
        dir: PathBuf,
        /// What is in the way: `dir` itself or a parent.
        file: PathBuf,
    },
    /// A file or directory operation failed.
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// No pinned tool has this merged name.
    UnknownTool(String),
    /// The tool's current version cannot be approved (it was rejected).
    NotApprovable {
        /// The merged name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The shared store (`serve --store`) is unreachable or refused; the text says which and why
    /// (never with a password).
    Shared(String),
    /// A file holds something that is not its expected JSON.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDataDir => f.write_str(
                "store error: no data dir: pass --data-dir, or set XDG_STATE_HOME or HOME",
            ),
            Error::NotADirectory { dir, file } if dir == file => write!(
                f,
                "store error: the data dir {} is a file, not a directory: pass another \
                 --data-dir, or move the file",
                dir.display()
            ),
            Error::NotADirectory { dir, file } => write!(
                f,
                "store error: the data dir {} cannot be created: {} is a file, not a directory",
                dir.display(),
                file.display()
            ),
            Error::Io { path, source } => write!(f, "store error: {}: {source}", path.display()),
            Error::UnknownTool(name) => {
                write!(f, "store error: no tool named {name:?} has been seen")
            }
            Error::NotApprovable { name, reason } => {
                write!(f, "store error: {name} cannot be approved: {reason}")
            }
            Error::Shared(reason) => write!(f, "store error: {reason}"),
            Error::Corrupt { path, reason } => write!(
                f,
                "store error: {} is corrupt ({reason}); it was left as it is: repair or move it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::NoDataDir
            | Error::NotADirectory { .. }
            | Error::UnknownTool(_)
            | Error::NotApprovable { .. }
            | Error::Shared(_)
            | Error::Corrupt { .. } => None,
        }
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The data dir: `flag`, else `$XDG_STATE_HOME/aegis-gate`, else `~/.local/state/aegis-gate`.
pub(crate) fn resolve_data_dir(flag: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let non_empty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(state).join("aegis-gate"));
    }
    let home = non_empty("HOME").ok_or(Error::NoDataDir)?;
    Ok(PathBuf::from(home).join(".local/state/aegis-gate"))
}

/// Creates the data dir (and its parents) with mode 0700 if it does not exist; a file in the
/// way is named as such.
pub(crate) fn ensure_data_dir(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| {
            let in_the_way = dir.ancestors().find(|p| p.exists() && !p.is_dir());
            match in_the_way {
                Some(file) => Error::NotADirectory {
                    dir: dir.to_owned(),
                    file: file.to_owned(),
                },
                None => io_error(dir)(source),
            }
        })
}

/// Replaces `path` with `bytes` atomically and durably (mode 0600).
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    atomic_write_with(path, |file| file.write_all(bytes))
}

/// Replaces `path` atomically and durably (mode 0600) with what `write` writes into a new file
/// beside it, without the whole content in memory at once: a serializer writes into it as it
/// goes, a copy goes from file to file in the kernel.
pub(crate) fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let replace = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    replace().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::Io {
            path: path.to_owned(),
            source,
        }
    })
}

/// An exclusive lock on `<dir>/<name>.lock`, held until dropped: serializes read-modify-write
/// of one file between gates and CLI commands sharing a data dir, and keeps a second `serve` (or
/// a `rotate-key`) off a data dir a `serve` is using.
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// The lock when no other process holds it; `Ok(None)` when one does.
    pub(crate) fn try_acquire(dir: &Path, name: &str) -> Result<Option<FileLock>, Error> {
        let (path, file) = lock_file(dir, name)?;
        if crate::sys::try_lock_exclusive(&file).map_err(io_error(&path))? {
            Ok(Some(FileLock { _file: file }))
        } else {
            Ok(None)
        }
    }

    /// The lock, waiting for another process to release it.
    pub(crate) fn acquire(dir: &Path, name: &str) -> Result<FileLock, Error> {
        let (path, file) = lock_file(dir, name)?;
        crate::sys::lock_exclusive(&file).map_err(io_error(&path))?;
        Ok(FileLock { _file: file })
    }
}

fn lock_file(dir: &Path, name: &str) -> Result<(PathBuf, File), Error> {
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    Ok((path, file))
}

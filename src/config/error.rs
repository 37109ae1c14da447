//! Why a configuration was refused: [`Error`], with a `config error: ` prefix on every message.
//!
//! Owns: the error enum of the config file and its settings, and its `Display` text (tests and
//! operators read these messages; they stay byte for byte).
//! Never: imports another file of `config` (both `mod.rs` and `settings.rs` use it, so it is the
//! lowest); never holds a secret from the file in a message (only names, paths and causes).

use std::fmt;
use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug)]
pub enum Error {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A server name cannot become a tool prefix.
    InvalidServerName {
        /// The name as written.
        name: String,
        /// Why.
        reason: String,
    },
    /// A server entry has no command.
    MissingCommand {
        /// The server.
        name: String,
    },
    /// A server entry's remote `url` cannot be used.
    RemoteServer {
        /// The server.
        name: String,
        /// Why.
        reason: String,
    },
    /// A server entry sets a variable that makes a runtime or the loader run other code, or
    /// holds a NUL byte.
    Spawn {
        /// The server.
        name: String,
        /// Why, naming the variable (never its value).
        reason: String,
    },
    /// A setting is out of range.
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => {
                write!(f, "config error: cannot read {}: {source}", path.display())
            }
            Error::Parse { path, source } => {
                write!(f, "config error: {}: {source}", path.display())
            }
            Error::InvalidServerName { name, reason } => {
                write!(f, "config error: server name {name:?}: {reason}")
            }
            Error::MissingCommand { name } => {
                write!(f, "config error: server {name:?} has no \"command\"")
            }
            Error::RemoteServer { name, reason } | Error::Spawn { name, reason } => {
                write!(f, "config error: server {name:?}: {reason}")
            }
            Error::InvalidSetting { name, reason } => {
                write!(f, "config error: setting {name:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::InvalidServerName { .. }
            | Error::MissingCommand { .. }
            | Error::RemoteServer { .. }
            | Error::Spawn { .. }
            | Error::InvalidSetting { .. } => None,
        }
    }
}

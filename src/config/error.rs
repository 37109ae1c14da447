//! Why a configuration was refused: [`Error`], with a `config error: ` prefix on every message,
//! and why a `${…}` could not be expanded ([`VariableProblem`]).
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
    /// The file has neither `"mcpServers"` nor VS Code's `"servers"`.
    NoServers {
        /// The file.
        path: PathBuf,
    },
    /// The file has both `"mcpServers"` and VS Code's `"servers"`.
    TwoFormats {
        /// The file.
        path: PathBuf,
    },
    /// A server entry is not an object, or one of its known keys holds the wrong kind of value.
    EntryShape {
        /// The server.
        name: String,
        /// The key; `None` for the entry itself.
        key: Option<&'static str>,
        /// What it must be (`an array of strings`, …); the value itself is never quoted.
        expected: &'static str,
    },
    /// A server entry's `type` (or `transportType`) does not fit its `command` or `url`, or
    /// names a transport the gate cannot speak.
    Transport {
        /// The server.
        name: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// A `${…}` in a server entry cannot be expanded.
    Variable {
        /// The server.
        name: String,
        /// Where in the entry: `command`, `args[1]`, `env API_KEY`, `headers Authorization`, ….
        field: String,
        /// Why (names the variable, never a value).
        problem: VariableProblem,
    },
    /// A server entry's `envFile` cannot be read or holds a line that is not `NAME=VALUE`.
    EnvFile {
        /// The server.
        name: String,
        /// The file, as resolved.
        path: PathBuf,
        /// Why (a line number or the I/O error, never a line's text).
        reason: String,
    },
}

/// Why a `${…}` in a server entry cannot be expanded. Names a variable, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariableProblem {
    /// `${NAME}` or `${env:NAME}` names a variable the gate's environment does not have.
    Unset(String),
    /// The variable is set, but its value is not UTF-8.
    NotUnicode(String),
    /// `${input:ID}`: a VS Code prompt, which the gate cannot show.
    Input(String),
    /// `${PREFIX:…}` with a prefix other than `env` (VS Code's `config:`, `command:`, …).
    Unsupported(String),
    /// `${` without a closing `}`.
    Unterminated,
    /// `${…}` whose inside is not a variable name.
    BadName(String),
}

impl fmt::Display for VariableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VariableProblem::Unset(var) => write!(
                f,
                "variable {var} is not set in the gate's environment (set it where the gate \
                 starts, or write $${{ for a literal ${{)"
            ),
            VariableProblem::NotUnicode(var) => write!(f, "variable {var} is not UTF-8"),
            VariableProblem::Input(id) => write!(
                f,
                "${{input:{id}}} asks VS Code to prompt for a value, which the gate cannot do: \
                 set a variable in the gate's environment and write ${{env:NAME}}"
            ),
            VariableProblem::Unsupported(inside) => write!(
                f,
                "${{{inside}}} is not supported: the gate expands ${{env:NAME}} and ${{NAME}} \
                 (write $${{ for a literal ${{)"
            ),
            VariableProblem::Unterminated => {
                f.write_str("\"${\" has no closing \"}\" (write $${ for a literal ${)")
            }
            VariableProblem::BadName(inside) => write!(
                f,
                "${{{inside}}} is not a variable name (letters, digits and _, not starting \
                 with a digit)"
            ),
        }
    }
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
            Error::NoServers { path } => write!(
                f,
                "config error: {}: no \"mcpServers\" object (VS Code's \"servers\" is read too)",
                path.display()
            ),
            Error::TwoFormats { path } => write!(
                f,
                "config error: {}: has both \"mcpServers\" and \"servers\"; keep one",
                path.display()
            ),
            Error::EntryShape {
                name,
                key: Some(key),
                expected,
            } => write!(
                f,
                "config error: server {name:?}: {key:?} must be {expected}"
            ),
            Error::EntryShape {
                name,
                key: None,
                expected,
            } => write!(
                f,
                "config error: server {name:?}: the entry must be {expected}"
            ),
            Error::Transport { name, reason } => {
                write!(f, "config error: server {name:?}: {reason}")
            }
            Error::Variable {
                name,
                field,
                problem,
            } => write!(f, "config error: server {name:?}: {field}: {problem}"),
            Error::EnvFile { name, path, reason } => write!(
                f,
                "config error: server {name:?}: envFile {}: {reason}",
                path.display()
            ),
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
            | Error::InvalidSetting { .. }
            | Error::NoServers { .. }
            | Error::TwoFormats { .. }
            | Error::EntryShape { .. }
            | Error::Transport { .. }
            | Error::Variable { .. }
            | Error::EnvFile { .. } => None,
        }
    }
}

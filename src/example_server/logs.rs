//! The example server's log levels (`logging/setLevel`, the `log` tool), sans-IO.
//!
//! Owns: the RFC 5424 level names MCP uses, their order, and whether a message passes the level
//! the client set.
//! Never: sends anything; `surface.rs` sends `notifications/message`.

/// A log level, from the least to the most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// Every level with its name, least severe first.
const LEVELS: [(Level, &str); 8] = [
    (Level::Debug, "debug"),
    (Level::Info, "info"),
    (Level::Notice, "notice"),
    (Level::Warning, "warning"),
    (Level::Error, "error"),
    (Level::Critical, "critical"),
    (Level::Alert, "alert"),
    (Level::Emergency, "emergency"),
];

impl Level {
    /// The level named `name` (lowercase, exactly as MCP spells it).
    pub(super) fn parse(name: &str) -> Option<Level> {
        LEVELS.iter().find(|(_, n)| *n == name).map(|(l, _)| *l)
    }

    /// The level's name.
    pub(super) fn name(self) -> &'static str {
        LEVELS
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("debug", |(_, n)| n)
    }
}

/// Whether a message at `level` is sent when the client set `min` (everything when it never
/// set one).
pub(super) fn passes(level: Level, min: Option<Level>) -> bool {
    min.is_none_or(|min| level >= min)
}

/// The error message for a level name that is none of them.
pub(super) fn unknown(name: &str) -> String {
    let names: Vec<&str> = LEVELS.iter().map(|(_, n)| *n).collect();
    format!("unknown log level {name:?}: one of {}", names.join(", "))
}

//! The example server's log levels (`logging/setLevel`, the `log` tool), sans-IO.
//!
//! Owns: whether a message passes the level the client set, and the error for an unknown level
//! (the levels themselves are `mcp::LogLevel`).
//! Never: sends anything; `surface.rs` sends `notifications/message`.

/// A log level, from the least to the most severe: the gate's own (`mcp::LogLevel`).
pub(super) use crate::mcp::LogLevel as Level;

/// Whether a message at `level` is sent when the client set `min` (everything when it never
/// set one).
pub(super) fn passes(level: Level, min: Option<Level>) -> bool {
    min.is_none_or(|min| level >= min)
}

/// The error message for a level name that is none of them.
pub(super) fn unknown(name: &str) -> String {
    let names: Vec<&str> = Level::ALL.iter().map(|(_, n)| *n).collect();
    format!("unknown log level {name:?}: one of {}", names.join(", "))
}

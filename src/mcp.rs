//! MCP protocol facts shared by both sides of the gate: versions, the gate's name, and the
//! `_meta` key that names the calling agent to a partner bridge.
//!
//! Owns: the list of protocol versions the gate speaks and how a version is negotiated.
//! Never: does I/O or holds state.

/// The version the gate offers and prefers.
pub(crate) const LATEST_VERSION: &str = "2025-11-25";

/// The `_meta` key through which the gate tells a `partner` connection's bridge which agent
/// calls (its tokens' `sub`). The gate removes it from what agents send, so none can claim it.
pub(crate) const AGENT_META: &str = "io.aegis-gate/agent";

/// Every version the gate speaks, newest first. `2026-07-28` (stateless, `server/discover`) is not
/// among them: its discovery method is answered with -32601 so dual-era clients fall back.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// True when the gate speaks `version`.
pub(crate) fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The version to answer an agent's `initialize` with: its own when supported, else the latest
/// (the client then decides whether it can go on).
pub(crate) fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|v| SUPPORTED_VERSIONS.iter().copied().find(|s| *s == v))
        .unwrap_or(LATEST_VERSION)
}

/// The gate's name in `serverInfo` and `clientInfo`.
pub(crate) const IMPLEMENTATION_NAME: &str = "aegis-gate";

/// The gate's version.
pub(crate) const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");

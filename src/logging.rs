//! Logging to stderr (stdout belongs to the protocol in stdio mode).
//!
//! Owns: the logger's setup: filter from `--log-level`, else `AEGIS_LOG`, else `info`, in
//! env_logger's syntax (`info,aegis_gate::downstream=debug`).
//! Never: writes to stdout. What is logged at each level is a contract kept in ARCHITECTURE.md.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that sets the log filter.
pub(crate) const ENV_VAR: &str = "AEGIS_LOG";

/// Installs the stderr logger once; later calls do nothing.
pub(crate) fn init(level: Option<&str>) {
    let spec = level
        .map(str::to_owned)
        .or_else(|| std::env::var(ENV_VAR).ok())
        .unwrap_or_else(|| "info".to_owned());
    let _already_set = env_logger::Builder::new()
        .parse_filters(&spec)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {:5} {}: {}",
                utc_timestamp(SystemTime::now()),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .try_init();
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, without a time-zone database.
fn utc_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    match crate::time::format(secs) {
        Some(stamp) => format!(
            "{}.{:03}Z",
            stamp.trim_end_matches('Z'),
            since.subsec_millis()
        ),
        None => format!("{secs}.{:03}", since.subsec_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_737_600_123); // 2026-11-27T00:00:00.123Z
        assert_eq!(utc_timestamp(t), "2026-11-27T00:00:00.123Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}

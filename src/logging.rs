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
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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

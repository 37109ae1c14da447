//! The ranges settings accept, checked one way for every setting: a count is at least 1, a
//! duration is at least 1 ms and at most one day (keeps every deadline far from overflow).
//!
//! Owns: [`count`] and [`millis`], which fill in a default and name the setting in a refusal.
//! Never: imports a file of `config` but the error's.

use super::error::Error;
use std::time::Duration;

/// The longest time any setting may be: one day.
pub(super) const MAX_MS: u64 = 86_400_000;

/// A count of at least 1, or `default` when the file does not set it.
pub(super) fn count(v: Option<usize>, default: usize, name: &'static str) -> Result<usize, Error> {
    match v {
        None => Ok(default),
        Some(0) => Err(Error::InvalidSetting {
            name,
            reason: "must be greater than 0".into(),
        }),
        Some(n) => Ok(n),
    }
}

/// A duration in milliseconds, 1 to one day, or `default` when the file does not set it.
pub(super) fn millis(
    v: Option<u64>,
    default: Duration,
    name: &'static str,
) -> Result<Duration, Error> {
    match v {
        None => Ok(default),
        Some(0) => Err(Error::InvalidSetting {
            name,
            reason: "must be greater than 0".into(),
        }),
        Some(n) if n > MAX_MS => Err(Error::InvalidSetting {
            name,
            reason: format!("must be at most {MAX_MS} (one day)"),
        }),
        Some(n) => Ok(Duration::from_millis(n)),
    }
}

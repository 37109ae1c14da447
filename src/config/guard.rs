//! The learned detection stage's thresholds as settings (`guard_hold`, `guard_flag`).
//!
//! Owns: their parsing (a number from 0 to 1) and their hand-over to the sanitizers' [`Limits`].
//! Never: holds a default of its own: without a setting the trained model's thresholds apply
//! (the trainer chose them on its validation split; `tools/guard/REPORT.md` shows them).

use super::error::Error;
use crate::sanitize::Limits;

/// The two thresholds, in thousandths (so that settings compare exactly); `None` for the model's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardThresholds {
    /// At or above: the learned stage holds a definition by itself.
    pub hold: Option<u16>,
    /// At or above: a weak detector phrase (a path, "before any other action", a `bcc`) holds;
    /// below, it is only a flag.
    pub flag: Option<u16>,
}

impl GuardThresholds {
    /// From the config file's numbers.
    pub(super) fn parse(hold: Option<f64>, flag: Option<f64>) -> Result<GuardThresholds, Error> {
        let thresholds = GuardThresholds {
            hold: score(hold, "guard_hold")?,
            flag: score(flag, "guard_flag")?,
        };
        if let (Some(h), Some(f)) = (thresholds.hold, thresholds.flag) {
            if f > h {
                return Err(Error::InvalidSetting {
                    name: "guard_flag",
                    reason: "must not be above guard_hold".into(),
                });
            }
        }
        Ok(thresholds)
    }

    /// The sanitizers' limits with these thresholds.
    pub fn limits(&self) -> Limits {
        let to_f32 = |t: Option<u16>| t.map(|t| f32::from(t) / 1000.0);
        Limits {
            guard_hold: to_f32(self.hold),
            guard_flag: to_f32(self.flag),
            ..Limits::default()
        }
    }
}

fn score(value: Option<f64>, name: &'static str) -> Result<Option<u16>, Error> {
    match value {
        None => Ok(None),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(Some((v * 1000.0).round() as u16)),
        Some(v) => Err(Error::InvalidSetting {
            name,
            reason: format!("{v} is not a score from 0 to 1"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_and_reach_the_limits() {
        let t = GuardThresholds::parse(Some(0.9), Some(0.4)).expect("valid");
        let limits = t.limits();
        assert_eq!(limits.guard_hold, Some(0.9));
        assert_eq!(limits.guard_flag, Some(0.4));
        assert!(GuardThresholds::parse(Some(1.5), None).is_err());
        assert!(GuardThresholds::parse(Some(0.3), Some(0.5)).is_err());
        assert_eq!(
            GuardThresholds::parse(None, None)
                .map(|t| t.limits().guard_hold)
                .ok(),
            Some(None)
        );
    }
}

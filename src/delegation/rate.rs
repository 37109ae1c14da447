//! Rate limits per delegator: GCRA (the generic cell rate algorithm) over a bounded set of keys.
//!
//! Owns: one "theoretical arrival time" per key (a delegator org, or an org and its agent). A call
//! is allowed when it arrives no earlier than that time minus the burst allowance; each allowed
//! call moves the time on by one emission interval (a minute divided by `per_minute`). Refused
//! calls learn how long to wait. The key count is bounded: a full table first drops keys whose
//! time has passed (they are as good as new); if none can go, the call is refused.
//! Never: allocates per call beyond the key; lets a full table admit an unknown key.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Keys tracked at most.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// A rate: calls per minute on average, and how many may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained calls per minute (at least 1).
    pub per_minute: u32,
    /// Calls allowed at once (at least 1).
    pub burst: u32,
}

impl Rate {
    fn interval_ms(self) -> u64 {
        60_000 / u64::from(self.per_minute.max(1))
    }
}

/// GCRA state for many keys; time is milliseconds on a monotonic clock the caller gives.
#[derive(Debug)]
pub struct Limiter {
    tat: HashMap<String, u64>,
    max_keys: usize,
}

impl Limiter {
    /// An empty limiter tracking at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Limiter {
        Limiter {
            tat: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    /// Allows one call for `key` at `now_ms`, or says how long to wait.
    pub fn check(&mut self, key: &str, rate: Rate, now_ms: u64) -> Result<(), Duration> {
        let interval = rate.interval_ms();
        let allowance = interval.saturating_mul(u64::from(rate.burst.max(1)));
        if !self.tat.contains_key(key) && self.tat.len() >= self.max_keys {
            self.tat.retain(|_, tat| *tat > now_ms);
            if self.tat.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let tat = self.tat.get(key).copied().unwrap_or(now_ms).max(now_ms);
        let next = tat.saturating_add(interval);
        let allowed_from = next.saturating_sub(allowance);
        if now_ms < allowed_from {
            return Err(Duration::from_millis(allowed_from - now_ms));
        }
        self.tat.insert(key.to_owned(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_calls_are_spaced_by_the_rate() {
        let rate = Rate {
            per_minute: 60,
            burst: 3,
        };
        let mut limiter = Limiter::new(10);
        for _ in 0..3 {
            assert_eq!(limiter.check("org-a", rate, 1_000), Ok(()));
        }
        assert_eq!(
            limiter.check("org-a", rate, 1_000),
            Err(Duration::from_millis(1_000))
        );
        // Another delegator is not affected.
        assert_eq!(limiter.check("org-c", rate, 1_000), Ok(()));
        // One interval later, one more call.
        assert_eq!(limiter.check("org-a", rate, 2_000), Ok(()));
        assert!(limiter.check("org-a", rate, 2_000).is_err());
    }

    #[test]
    fn a_full_table_drops_idle_keys_and_otherwise_refuses() {
        let rate = Rate {
            per_minute: 60,
            burst: 1,
        };
        let mut limiter = Limiter::new(2);
        assert!(limiter.check("a", rate, 0).is_ok());
        assert!(limiter.check("b", rate, 0).is_ok());
        assert_eq!(limiter.check("c", rate, 500), Err(Duration::from_secs(1)));
        assert!(limiter.check("c", rate, 1_001).is_ok(), "a and b went idle");
    }
}

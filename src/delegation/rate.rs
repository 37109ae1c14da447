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

/// The fastest rate expressible: one call per microsecond.
pub const MAX_PER_MINUTE: u32 = 60_000_000;

impl Rate {
    /// Microseconds between two calls at the sustained rate.
    pub fn interval_us(self) -> u64 {
        60_000_000 / u64::from(self.per_minute.clamp(1, MAX_PER_MINUTE))
    }

    /// Microseconds of the burst allowance: how far ahead of now a key's time may run.
    pub fn allowance_us(self) -> u64 {
        self.interval_us()
            .saturating_mul(u64::from(self.burst.max(1)))
    }
}

/// GCRA state for many keys; time is microseconds on a monotonic clock the caller gives.
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

    /// Allows one call for `key` at `now_us`, or says how long to wait.
    pub fn check(&mut self, key: &str, rate: Rate, now_us: u64) -> Result<(), Duration> {
        self.check_all(&[(key, rate)], now_us)
    }

    /// Allows one call only if every key allows it, and then charges every key; a refusal
    /// charges none and gives the longest wait.
    pub fn check_all(&mut self, keys: &[(&str, Rate)], now_us: u64) -> Result<(), Duration> {
        let new_keys = keys
            .iter()
            .filter(|(k, _)| !self.tat.contains_key(*k))
            .count();
        if new_keys > 0 && self.tat.len() + new_keys > self.max_keys {
            self.tat.retain(|_, tat| *tat > now_us);
            if self.tat.len() + new_keys > self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let mut next = Vec::with_capacity(keys.len());
        let mut wait = 0;
        for (key, rate) in keys {
            let interval = rate.interval_us();
            let allowance = rate.allowance_us();
            let tat = self.tat.get(*key).copied().unwrap_or(now_us).max(now_us);
            let after = tat.saturating_add(interval);
            let allowed_from = after.saturating_sub(allowance);
            wait = wait.max(allowed_from.saturating_sub(now_us));
            next.push((*key, after));
        }
        if wait > 0 {
            return Err(Duration::from_micros(wait));
        }
        for (key, after) in next {
            self.tat.insert(key.to_owned(), after);
        }
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
            assert_eq!(limiter.check("org-a", rate, 1_000_000), Ok(()));
        }
        assert_eq!(
            limiter.check("org-a", rate, 1_000_000),
            Err(Duration::from_secs(1))
        );
        // Another delegator is not affected.
        assert_eq!(limiter.check("org-c", rate, 1_000_000), Ok(()));
        // One interval later, one more call.
        assert_eq!(limiter.check("org-a", rate, 2_000_000), Ok(()));
        assert!(limiter.check("org-a", rate, 2_000_000).is_err());
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
        assert_eq!(
            limiter.check("c", rate, 500_000),
            Err(Duration::from_secs(1))
        );
        assert!(
            limiter.check("c", rate, 1_000_001).is_ok(),
            "a and b went idle"
        );
    }

    #[test]
    fn a_refused_agent_charges_neither_key_and_fast_rates_still_limit() {
        let org = Rate {
            per_minute: 60,
            burst: 10,
        };
        let agent = Rate {
            per_minute: 60,
            burst: 1,
        };
        let mut limiter = Limiter::new(100);
        let keys = [("org", org), ("org/agent", agent)];
        assert!(limiter.check_all(&keys, 0).is_ok());
        assert!(
            limiter.check_all(&keys, 0).is_err(),
            "the agent's burst is 1"
        );
        // The org was not charged for the refusal: 9 more from other agents pass.
        for n in 0..9 {
            let other = format!("org/other{n}");
            assert!(limiter
                .check_all(&[("org", org), (&other, agent)], 0)
                .is_ok());
        }
        assert!(limiter
            .check_all(&[("org", org), ("org/new", agent)], 0)
            .is_err());
        // A million a minute is still a limit (the interval is in microseconds).
        let fast = Rate {
            per_minute: 1_000_000,
            burst: 1,
        };
        assert!(limiter.check("fast", fast, 0).is_ok());
        assert!(limiter.check("fast", fast, 0).is_err());
    }
}

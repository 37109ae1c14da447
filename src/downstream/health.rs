//! Health bookkeeping of one connection, sans-IO: restart backoff, the breaker, stderr rate limit.
//!
//! Owns: the arithmetic of when to restart and when to stop trying for a while.
//! Never: reads a clock itself (callers pass `Instant`s) or touches a process.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// What to do after a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextTry {
    /// Restart after this delay (state `restarting`).
    Backoff(Duration),
    /// Too many failures in the window: wait the cooldown (state `failed`).
    BreakerOpen(Duration),
}

/// Exponential backoff with jitter, and a breaker over a sliding window of failures.
#[derive(Debug)]
pub(crate) struct RestartPolicy {
    min: Duration,
    max: Duration,
    window: Duration,
    max_failures: usize,
    cooldown: Duration,
    failures: VecDeque<Instant>,
    attempt: u32,
}

impl RestartPolicy {
    pub(crate) fn new(
        min: Duration,
        max: Duration,
        window: Duration,
        max_failures: u32,
        cooldown: Duration,
    ) -> RestartPolicy {
        RestartPolicy {
            min,
            max,
            window,
            max_failures: usize::try_from(max_failures).unwrap_or(usize::MAX),
            cooldown,
            failures: VecDeque::new(),
            attempt: 0,
        }
    }

    /// Records a failure at `now` and says when to try again.
    pub(crate) fn on_failure(&mut self, now: Instant) -> NextTry {
        self.failures.push_back(now);
        while let Some(&oldest) = self.failures.front() {
            if now.duration_since(oldest) > self.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        if self.failures.len() >= self.max_failures {
            self.failures.clear();
            self.attempt = 0;
            return NextTry::BreakerOpen(self.cooldown);
        }
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let base = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        NextTry::Backoff(jitter(base))
    }

    /// A child reached `healthy`: the next failure starts the backoff from the minimum again.
    pub(crate) fn on_healthy(&mut self) {
        self.attempt = 0;
    }
}

/// Spreads `base` over 80–120 % so that many children failing together do not restart in step.
fn jitter(base: Duration) -> Duration {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    let percent = 80 + hasher.finish() % 41;
    base.saturating_mul(u32::try_from(percent).unwrap_or(100)) / 100
}

/// A token bucket over log lines: `burst` at once, then `per_sec`.
#[derive(Debug)]
pub(crate) struct LineBudget {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LineBudget {
    pub(crate) fn new(per_sec: u32, burst: u32, now: Instant) -> LineBudget {
        LineBudget {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
            suppressed: 0,
        }
    }

    /// True when a line may be logged now; otherwise it is counted as suppressed.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Lines suppressed since the last call.
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            Duration::from_secs(60),
            5,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let mut p = policy();
        let t = Instant::now();
        let mut expected_base = 500u64;
        for i in 0..4 {
            let NextTry::Backoff(d) = p.on_failure(t + Duration::from_secs(100 * i)) else {
                panic!("breaker opened too early");
            };
            let ms = u64::try_from(d.as_millis()).unwrap();
            assert!(
                ms >= expected_base * 8 / 10 && ms <= expected_base * 12 / 10,
                "{ms}"
            );
            expected_base *= 2;
        }
    }

    #[test]
    fn breaker_opens_after_repeated_failures_in_the_window() {
        let mut p = policy();
        let t = Instant::now();
        for i in 0..4 {
            assert!(matches!(
                p.on_failure(t + Duration::from_secs(i)),
                NextTry::Backoff(_)
            ));
        }
        assert_eq!(
            p.on_failure(t + Duration::from_secs(5)),
            NextTry::BreakerOpen(Duration::from_secs(60))
        );
    }

    #[test]
    fn line_budget_limits_a_flood() {
        let t = Instant::now();
        let mut b = LineBudget::new(10, 20, t);
        let allowed = (0..1000).filter(|_| b.take(t)).count();
        assert_eq!(allowed, 20);
        assert_eq!(b.take_suppressed(), 980);
        assert!(b.take(t + Duration::from_secs(1)));
    }
}

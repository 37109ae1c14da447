//! The replay cache: every `jti` accepted, kept until its token could no longer verify.
//!
//! Owns: a bounded map of token ids to the Unix second after which they are forgotten (`exp` plus
//! the skew). A full cache first drops what has expired; if it is still full, the token is
//! refused: a gate that cannot remember must not accept.
//! Never: forgets an id before its token expires; grows beyond its bound.

use super::token::{Rejection, MAX_SKEW};
use std::collections::HashMap;

/// Token ids remembered at most. At the maximum lifetime of 300 s this allows over 300 delegated
/// calls a second, sustained.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Seen token ids.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<String, i64>,
    capacity: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` ids.
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `jti` (valid until `exp`); refuses one seen before, or any when full.
    pub fn check_and_record(&mut self, jti: &str, exp: i64, now: i64) -> Result<(), Rejection> {
        if let Some(&until) = self.seen.get(jti) {
            if until >= now {
                return Err(Rejection::Replayed);
            }
        }
        if self.seen.len() >= self.capacity && !self.seen.contains_key(jti) {
            self.seen.retain(|_, until| *until >= now);
            if self.seen.len() >= self.capacity {
                return Err(Rejection::ReplayCacheFull);
            }
        }
        self.seen
            .insert(jti.to_owned(), exp.saturating_add(MAX_SKEW));
        Ok(())
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_and_a_full_cache_fails_closed() {
        let mut cache = ReplayCache::new(2);
        assert_eq!(cache.check_and_record("a", 100, 0), Ok(()));
        assert_eq!(
            cache.check_and_record("a", 100, 1),
            Err(Rejection::Replayed)
        );
        assert_eq!(cache.check_and_record("b", 100, 1), Ok(()));
        assert_eq!(
            cache.check_and_record("c", 100, 2),
            Err(Rejection::ReplayCacheFull)
        );
        // Once "a" and "b" can no longer verify (exp + skew passed), there is room again.
        assert_eq!(cache.check_and_record("c", 300, 100 + MAX_SKEW + 1), Ok(()));
        assert_eq!(cache.len(), 1);
        // A still-valid id stays refused right up to its end.
        assert_eq!(
            cache.check_and_record("c", 300, 300 + MAX_SKEW),
            Err(Rejection::Replayed)
        );
    }
}

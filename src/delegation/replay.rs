//! The replay cache: every `jti` accepted, kept until its token could no longer verify.
//!
//! Owns: per issuer, a bounded map of token ids to the Unix second after which they are forgotten
//! (`exp` plus the skew). A full share first drops what has expired; if it is still full, the
//! token is refused: a gate that cannot remember must not accept. Shares are per issuer, so one
//! partner flooding the cache locks out only itself.
//! Never: forgets an id before its token expires; grows beyond its bound.

use super::token::{Rejection, MAX_SKEW};
use std::collections::HashMap;

/// Token ids remembered at most per issuer. At the maximum lifetime of 300 s this allows over
/// 100 delegated calls a second from one partner, sustained; a partner that sends more (even
/// refused ones) fills only its own share and is refused, never the others.
pub const DEFAULT_CAPACITY: usize = 50_000;
/// Issuers tracked at most (partners are registered by an admin; this only bounds the table).
const MAX_ISSUERS: usize = 1_000;

/// Seen token ids, per issuer.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<String, HashMap<String, i64>>,
    capacity: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` ids per issuer.
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `jti` of `iss` (valid until `exp`); refuses one seen before, or any when that
    /// issuer's share is full.
    pub fn check_and_record(
        &mut self,
        iss: &str,
        jti: &str,
        exp: i64,
        now: i64,
    ) -> Result<(), Rejection> {
        if !self.seen.contains_key(iss) && self.seen.len() >= MAX_ISSUERS {
            self.seen.retain(|_, ids| {
                ids.retain(|_, until| *until >= now);
                !ids.is_empty()
            });
            if self.seen.len() >= MAX_ISSUERS {
                return Err(Rejection::ReplayCacheFull);
            }
        }
        let ids = self.seen.entry(iss.to_owned()).or_default();
        if let Some(&until) = ids.get(jti) {
            if until >= now {
                return Err(Rejection::Replayed);
            }
        }
        if ids.len() >= self.capacity && !ids.contains_key(jti) {
            ids.retain(|_, until| *until >= now);
            if ids.len() >= self.capacity {
                return Err(Rejection::ReplayCacheFull);
            }
        }
        ids.insert(jti.to_owned(), exp.saturating_add(MAX_SKEW));
        Ok(())
    }

    /// Ids remembered now, all issuers.
    pub fn len(&self) -> usize {
        self.seen.values().map(HashMap::len).sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_and_a_full_share_fails_closed_for_its_issuer_only() {
        let mut cache = ReplayCache::new(2);
        assert_eq!(cache.check_and_record("a", "1", 100, 0), Ok(()));
        assert_eq!(
            cache.check_and_record("a", "1", 100, 1),
            Err(Rejection::Replayed)
        );
        assert_eq!(cache.check_and_record("a", "2", 100, 1), Ok(()));
        assert_eq!(
            cache.check_and_record("a", "3", 100, 2),
            Err(Rejection::ReplayCacheFull)
        );
        // Another issuer is not affected, and the same id is its own.
        assert_eq!(cache.check_and_record("b", "1", 100, 2), Ok(()));
        // Once a's ids can no longer verify (exp + skew passed), there is room again.
        assert_eq!(
            cache.check_and_record("a", "3", 300, 100 + MAX_SKEW + 1),
            Ok(())
        );
        assert_eq!(cache.len(), 2);
        // A still-valid id stays refused right up to its end.
        assert_eq!(
            cache.check_and_record("a", "3", 300, 300 + MAX_SKEW),
            Err(Rejection::Replayed)
        );
    }
}

//! The delegation limits in the shared store: the replay cache and the GCRA rate counters of
//! inbound delegation, shared by every replica so that a partner's burst and a replayed token
//! are refused across replicas exactly as on one node.
//!
//! Owns: the keys `aegis:jti:<iss>:<jti>` (one per accepted token id, set with `SET NX PX`: the
//! first replica to set it admits the token, every later one sees a replay; it lives until the
//! token can no longer verify on any replica, see [`replay_ttl`]) and `aegis:rate:<key>` (a
//! GCRA theoretical arrival time in microseconds of the store's clock; it expires when that time
//! has passed, so an idle key vanishes, and a missing key means what a passed one means). A rate
//! check is one Lua script (`gcra.lua`) over every key of the call, so it is atomic across
//! replicas, charges every key or none, and reads the time from the store (`TIME`): the
//! replicas' clocks do not enter the rates. The decisions are those of
//! [`crate::delegation::rate::Limiter::check_all`] (same interval, burst allowance and wait).
//! Never: admits anything when the store does not answer or did not answer last (the caller gets
//! [`Error`] and refuses; see [`Limits::first_use`]); keeps a key without an expiry.
//!
//! Differences from the in-memory versions, by design: the table of rate keys and the replay
//! cache have no count bound of their own; every key expires (a rate key when idle, a token id
//! with its token), so their size is bounded by the partners' rates and the tokens' lifetime,
//! and the store's memory is the operator's to size.

use super::SharedStore;
use crate::delegation::rate::Rate;
use crate::delegation::token::{MAX_LIFETIME, MAX_SKEW};
use crate::store::Error;
use std::time::Duration;

/// The prefix of a token id's key.
const JTI: &str = "aegis:jti:";
/// The prefix of a rate key's theoretical arrival time.
const RATE: &str = "aegis:rate:";

/// The GCRA check of one call (the script's own comment says how). The replica tests run this
/// same text against a real store next to [`crate::delegation::rate::Limiter`].
const GCRA: &str = include_str!("gcra.lua");

/// What a rate check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Allowed; every key was charged.
    Allowed,
    /// Refused; retry after this long (no key was charged).
    Wait(Duration),
}

/// Whether a token id was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Never seen: now recorded.
    First,
    /// Seen before, by this replica or another, and its token could still verify.
    Replayed,
}

/// The replay cache and the rate counters in a shared store.
pub(crate) struct Limits {
    store: SharedStore,
    gcra: redis::Script,
}

impl Limits {
    pub(crate) fn new(store: SharedStore) -> Limits {
        Limits {
            store,
            gcra: redis::Script::new(GCRA),
        }
    }

    /// Records token id `jti` of issuer `iss` (whose token expires at Unix second `exp`; `now`
    /// is this replica's Unix second), or says it was seen. While the store is marked
    /// unreachable this fails at once, without a command: a delegated call must not hold an
    /// HTTP worker for a connect timeout each; the state-watch thread's polls mark the store
    /// reachable again within its interval.
    pub(crate) fn first_use(&self, iss: &str, jti: &str, exp: i64, now: i64) -> Result<Use, Error> {
        self.need_reachable()?;
        let key = format!("{JTI}{iss}:{jti}");
        let ttl = replay_ttl(exp, now);
        let set: Option<String> = self.store.run(|con| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .query(con)
        })?;
        Ok(match set {
            Some(_) => Use::First,
            None => Use::Replayed,
        })
    }

    /// One call charged to every key of `keys` (names under `aegis:rate:`), or the longest
    /// wait and none charged: [`crate::delegation::rate::Limiter::check_all`] in the store.
    pub(crate) fn check_all(&self, keys: &[(&str, Rate)]) -> Result<Charge, Error> {
        self.need_reachable()?;
        let mut invocation = self.gcra.prepare_invoke();
        for (key, rate) in keys {
            invocation
                .key(format!("{RATE}{key}"))
                .arg(rate.interval_us())
                .arg(rate.allowance_us());
        }
        let wait_us: u64 = self.store.run(|con| invocation.invoke(con))?;
        Ok(match wait_us {
            0 => Charge::Allowed,
            us => Charge::Wait(Duration::from_micros(us)),
        })
    }

    fn need_reachable(&self) -> Result<(), Error> {
        if self.store.reachable() {
            return Ok(());
        }
        Err(Error::Shared(format!(
            "the shared store at {} does not answer",
            self.store.url()
        )))
    }
}

/// How long a token id is kept: until its token can no longer verify (`exp` plus the skew a
/// verifier allows, as the in-memory cache keeps it), plus the skew once more because that
/// moment is read on this replica's clock and another replica's may lag behind it (up to
/// [`MAX_SKEW`] is tolerated). At least a second; at most what a token that just verified can
/// need (its lifetime, starting up to the skew ahead, plus both skews).
fn replay_ttl(exp: i64, now: i64) -> Duration {
    let most = MAX_LIFETIME + 3 * MAX_SKEW;
    let secs = exp
        .saturating_add(2 * MAX_SKEW)
        .saturating_sub(now)
        .clamp(1, most);
    Duration::from_secs(secs.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_id_outlives_its_token_by_the_skew_and_stays_bounded() {
        // A token expiring in 120 s: kept 120 s plus the verifier's skew plus the replicas'.
        assert_eq!(
            replay_ttl(1_000 + 120, 1_000),
            Duration::from_secs(120 + 2 * 60)
        );
        // One that expired a while ago (still verifying within the skew) is kept at least 1 s.
        assert_eq!(replay_ttl(1_000, 1_000 + 200), Duration::from_secs(1));
        // A wrong exp far ahead is bounded.
        assert_eq!(
            replay_ttl(i64::MAX, 0),
            Duration::from_secs((MAX_LIFETIME + 3 * MAX_SKEW).unsigned_abs())
        );
    }
}

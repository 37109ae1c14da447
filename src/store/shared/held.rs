//! Held calls in the shared store: what every replica's approvals table holds, so that any
//! replica lists them, and the inbox of each replica, through which a decision taken on another
//! replica reaches the one that holds the call.
//!
//! Owns: the keys `aegis:approvals` (a hash: approval id → the record as JSON text, with the
//! holding replica's id and the expiry) and `aegis:approvals:to:<replica>` (a list of decisions
//! for that replica, pushed with `RPUSH`, taken with `BLPOP`; it expires [`INBOX_TTL`] after the
//! last push, so a replica that is gone leaves nothing behind for long), and
//! `aegis:approvals:alive:<replica>` (set for [`ALIVE_TTL`] by each look at the inbox: a
//! replica's held calls are shown only while it looks, since they end with it).
//! Never: decides anything (the holder applies what its inbox brings); waits on the store longer
//! than the pool's timeout, or [`MAX_WAIT`] for a decision.

use super::SharedStore;
use crate::store::Error;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const HELD: &str = "aegis:approvals";

/// How long a replica counts as alive after its last look at its inbox.
pub(crate) const ALIVE_TTL: Duration = Duration::from_secs(3);

/// How long a replica's inbox outlives its last push.
const INBOX_TTL: Duration = Duration::from_secs(60);

/// The longest [`HeldCalls::next_decision`] waits: below the pool's read timeout, and short
/// enough for the thread that waits to stop promptly.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(500);

/// How long a decision's claim is kept: past the longest an approval waits (a day), so a call
/// is decided once whichever replicas are asked.
const CLAIM_TTL: Duration = Duration::from_secs(86_400 + 60);

/// Pushes `ARGV[2]` to the inbox `KEYS[2]` only while the call `ARGV[1]` is still in the hash
/// `KEYS[1]` (a call released meanwhile gets no decision) and no decision claimed it yet
/// (`KEYS[3]`, set here for `ARGV[4]` seconds: two replicas deciding at once, one wins).
const HAND_OVER: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
";
static HAND_OVER_SCRIPT: super::Lua = super::Lua::new(HAND_OVER);

/// The held calls of every replica, as the shared store keeps them.
#[derive(Clone, Debug)]
pub(crate) struct HeldCalls {
    store: SharedStore,
}

impl HeldCalls {
    pub(crate) fn new(store: SharedStore) -> HeldCalls {
        HeldCalls { store }
    }

    /// Every record, by id.
    pub(crate) fn all(&self) -> Result<HashMap<String, String>, Error> {
        self.store
            .run(|con| redis::cmd("HGETALL").arg(HELD).query(con))
    }

    /// The record of `id`, if one is kept.
    pub(crate) fn get(&self, id: &str) -> Result<Option<String>, Error> {
        self.store
            .run(|con| redis::cmd("HGET").arg(HELD).arg(id).query(con))
    }

    /// Puts the records of `put` and removes the ids of `remove`, in one transaction.
    pub(crate) fn mirror(&self, put: &[(String, String)], remove: &[String]) -> Result<(), Error> {
        if put.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.store.run(|con| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            if !put.is_empty() {
                pipe.cmd("HSET").arg(HELD).arg(put).ignore();
            }
            if !remove.is_empty() {
                pipe.cmd("HDEL").arg(HELD).arg(remove).ignore();
            }
            pipe.query::<()>(con)
        })
    }

    /// Sends `decision` to `replica`'s inbox while the call `id` is still held; false when it
    /// is not (released meanwhile).
    pub(crate) fn hand_over(&self, id: &str, replica: &str, decision: &str) -> Result<bool, Error> {
        let ttl = INBOX_TTL.as_secs();
        let sent: i64 = self.store.run(|con| {
            HAND_OVER_SCRIPT
                .script()
                .key(HELD)
                .key(inbox(replica))
                .key(claim(id))
                .arg(id)
                .arg(decision)
                .arg(ttl)
                .arg(CLAIM_TTL.as_secs())
                .invoke(con)
        })?;
        Ok(sent == 1)
    }

    /// Claims the decision of call `id` for the replica that holds it and decides it itself;
    /// false when another replica's decision claimed it first.
    pub(crate) fn claim(&self, id: &str) -> Result<bool, Error> {
        let took: Option<String> = self.store.run(|con| {
            redis::cmd("SET")
                .arg(claim(id))
                .arg("1")
                .arg("NX")
                .arg("EX")
                .arg(CLAIM_TTL.as_secs())
                .query(con)
        })?;
        Ok(took.is_some())
    }

    /// The next decision sent to `replica`, waiting up to [`MAX_WAIT`] for one; `replica`
    /// counts as alive for [`ALIVE_TTL`] from now.
    pub(crate) fn next_decision(&self, replica: &str) -> Result<Option<String>, Error> {
        let wait = format!("{:.3}", MAX_WAIT.as_secs_f64());
        let ttl = u64::try_from(ALIVE_TTL.as_millis()).unwrap_or(u64::MAX);
        let (popped,): (Option<(String, String)>,) = self.store.run(|con| {
            redis::pipe()
                .cmd("SET")
                .arg(alive(replica))
                .arg(1)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .cmd("BLPOP")
                .arg(inbox(replica))
                .arg(&wait)
                .query(con)
        })?;
        Ok(popped.map(|(_, decision)| decision))
    }

    /// Which of `replicas` looked at their inboxes within [`ALIVE_TTL`].
    pub(crate) fn living(&self, replicas: &BTreeSet<String>) -> Result<BTreeSet<String>, Error> {
        if replicas.is_empty() {
            return Ok(BTreeSet::new());
        }
        let keys: Vec<String> = replicas.iter().map(|r| alive(r)).collect();
        let found: Vec<Option<String>> = self
            .store
            .run(|con| redis::cmd("MGET").arg(&keys).query(con))?;
        Ok(replicas
            .iter()
            .zip(found)
            .filter(|(_, seen)| seen.is_some())
            .map(|(replica, _)| replica.clone())
            .collect())
    }
}

fn alive(replica: &str) -> String {
    format!("{HELD}:alive:{replica}")
}

fn claim(id: &str) -> String {
    format!("{HELD}:decided:{id}")
}

fn inbox(replica: &str) -> String {
    format!("{HELD}:to:{replica}")
}

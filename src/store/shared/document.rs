//! The state documents in the shared store: what `state.json` holds on one node, in two parts,
//! each one JSON value with a version counter: serve's state (`aegis:state`,
//! `aegis:state:version`) and the tool pins (`aegis:pins`, `aegis:pins:version`), so that a
//! change of one never makes a replica read the other (the pins of a big workspace are
//! megabytes; an agent's creation is not).
//!
//! Owns: those keys and `aegis:state:lock`, the lock of every read-modify-write of either part (a
//! random token with an expiry, so a replica that dies holding it blocks the others for at most
//! [`LOCK_TTL`]); a write is fenced by the token (a script writes only while the token is still
//! the lock's), so a writer whose lock expired cannot overwrite a newer change.
//! Never: waits for the lock longer than [`LOCK_WAIT`]; writes without holding the lock.

use super::SharedStore;
use crate::store::Error;
use std::time::{Duration, Instant};

const LOCK: &str = "aegis:state:lock";

/// Which part of the state a document holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Serve's state: workspaces, connections, agents, partners, the key check.
    Serve,
    /// The tool pins.
    Pins,
}

impl Part {
    /// The document's key and its version's.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Part::Serve => ("aegis:state", "aegis:state:version"),
            Part::Pins => ("aegis:pins", "aegis:pins:version"),
        }
    }
}

/// How long a lock lives when its holder never releases it (a replica killed in a write): the
/// other replicas' writes wait that long, so it is short; a holder slower than this (a read and
/// a write of a document of megabytes over a slow network) finds its write refused by the fence
/// and answers 503, never overwriting a newer change.
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long a writer waits for another's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Between two tries for a held lock.
const LOCK_RETRY: Duration = Duration::from_millis(5);

/// Where every write of a part is announced (its key as the message), so replicas follow a
/// change at once instead of at their next look at the version.
pub(crate) const CHANGED: &str = "aegis:state:changed";

/// Writes the document and bumps the version, only while `ARGV[1]` still holds the lock, and
/// announces it on `ARGV[3]`.
const WRITE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], KEYS[2])
return version
";
static WRITE_SCRIPT: super::Lua = super::Lua::new(WRITE);

/// Releases the lock only when `ARGV[1]` still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
static RELEASE_SCRIPT: super::Lua = super::Lua::new(RELEASE);

/// One part of the state in a shared store.
#[derive(Clone, Debug)]
pub(crate) struct Document {
    store: SharedStore,
    part: Part,
}

/// A held lock on the document, released when dropped.
pub(crate) struct DocumentLock {
    store: SharedStore,
    token: String,
}

impl Document {
    /// Serve's state in `store`.
    pub(crate) fn new(store: SharedStore) -> Document {
        Document {
            store,
            part: Part::Serve,
        }
    }

    /// The document of `part` in the same store.
    pub(crate) fn of(&self, part: Part) -> Document {
        Document {
            store: self.store.clone(),
            part,
        }
    }

    pub(crate) fn part(&self) -> Part {
        self.part
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The part's version counter (0 before the first write).
    pub(crate) fn version(&self) -> Result<u64, Error> {
        let (_, version) = self.part.keys();
        self.store.run(|con| {
            redis::cmd("GET")
                .arg(version)
                .query::<Option<u64>>(con)
                .map(Option::unwrap_or_default)
        })
    }

    /// The part's bytes and their version; `None` before the first write.
    pub(crate) fn read(&self) -> Result<(Option<Vec<u8>>, u64), Error> {
        let (document, version) = self.part.keys();
        self.store.run(|con| {
            // In one transaction: a version read apart from the bytes could name a newer write.
            let (bytes, version): (Option<Vec<u8>>, Option<u64>) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(document)
                .cmd("GET")
                .arg(version)
                .query(con)?;
            Ok((bytes, version.unwrap_or_default()))
        })
    }

    /// The lock, waiting up to [`LOCK_WAIT`] for another writer's.
    pub(crate) fn lock(&self) -> Result<DocumentLock, Error> {
        let token = token()?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let took: Option<String> = self.store.run(|con| {
                redis::cmd("SET")
                    .arg(LOCK)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(LOCK_TTL.as_millis()).unwrap_or(u64::MAX))
                    .query(con)
            })?;
            if took.is_some() {
                return Ok(DocumentLock {
                    store: self.store.clone(),
                    token,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Shared(format!(
                    "the shared state's lock ({LOCK}) was held by another replica for over {}s",
                    LOCK_WAIT.as_secs()
                )));
            }
            std::thread::sleep(LOCK_RETRY);
        }
    }

    /// Replaces the document with `bytes` under `lock`; the new version.
    pub(crate) fn write(&self, lock: &DocumentLock, bytes: &[u8]) -> Result<u64, Error> {
        let (document, version) = self.part.keys();
        let written: i64 = self.store.run(|con| {
            WRITE_SCRIPT
                .script()
                .key(LOCK)
                .key(document)
                .key(version)
                .arg(&lock.token)
                .arg(bytes)
                .arg(CHANGED)
                .invoke(con)
        })?;
        u64::try_from(written).map_err(|_| {
            Error::Shared(format!(
                "the shared state's lock expired before the write (held over {}s): nothing was \
                 written",
                LOCK_TTL.as_secs()
            ))
        })
    }
}

/// A lock's token: random, so only its holder releases or writes under it.
fn token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Shared(format!("the OS random source: {e}")))?;
    Ok(crate::hex::encode(&bytes))
}

impl Drop for DocumentLock {
    fn drop(&mut self) {
        let released = self.store.run(|con| {
            RELEASE_SCRIPT
                .script()
                .key(LOCK)
                .arg(&self.token)
                .invoke::<i64>(con)
        });
        if let Err(e) = released {
            // It expires by itself within LOCK_TTL.
            log::warn!("cannot release the shared state's lock: {e}");
        }
    }
}

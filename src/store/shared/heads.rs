//! The heads of the replicas' audit chains in the shared store: each replica keeps its own
//! signed chain in its data dir, and records here how far it reached, so `audit verify --store`
//! can tell a missing or cut-short trail.
//!
//! Owns: the key `aegis:audit:heads` (a hash: signing key id → `{seq, hash, file, replica,
//! data_dir, at}` as JSON text). A head only moves forward: a record whose seq is not past the
//! one kept is not written, so a trail cut back (a data dir restored from an older copy) is still
//! measured against the furthest head it had reached.
//! Never: removes a head (a replica's trail is owed to `audit verify` for as long as the store
//! keeps its head).

use super::SharedStore;
use crate::store::Error;
use std::collections::BTreeMap;

const HEADS: &str = "aegis:audit:heads";

/// Writes `ARGV[3]` as the head of key id `ARGV[1]` when its seq `ARGV[2]` is past the kept one's.
const ADVANCE: &str = r"
local kept = redis.call('HGET', KEYS[1], ARGV[1])
if kept then
  local ok, head = pcall(cjson.decode, kept)
  if ok and type(head) == 'table' and tonumber(head.seq) and tonumber(head.seq) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";
static ADVANCE_SCRIPT: super::Lua = super::Lua::new(ADVANCE);

/// The audit heads of every replica.
#[derive(Clone, Debug)]
pub(crate) struct AuditHeads {
    store: SharedStore,
}

impl AuditHeads {
    pub(crate) fn new(store: SharedStore) -> AuditHeads {
        AuditHeads { store }
    }

    /// Records `head` (JSON text) at `seq` for key id `kid`; false when the store keeps a head
    /// at or past `seq` already.
    pub(crate) fn advance(&self, kid: &str, seq: u64, head: &str) -> Result<bool, Error> {
        let written: i64 = self.store.run(|con| {
            ADVANCE_SCRIPT
                .script()
                .key(HEADS)
                .arg(kid)
                .arg(seq)
                .arg(head)
                .invoke(con)
        })?;
        Ok(written == 1)
    }

    /// Every head, by key id.
    pub(crate) fn all(&self) -> Result<BTreeMap<String, String>, Error> {
        self.store
            .run(|con| redis::cmd("HGETALL").arg(HEADS).query(con))
    }
}

//! `Replicas`: several `aegis-gate serve` sharing one [`Redis`] through `--store`, each with a
//! data dir of its own and the same Fernet keys and admin token, as an operator runs them.
//! Never: shares a data dir between replicas; outlives its test (each serve and the store are
//! stopped on drop).

use super::redis::Redis;
use super::{Serve, TempDir};
use std::path::Path;

/// The Fernet key every replica of a test gets (`AEGIS_FERNET_KEYS`): replicas must share keys.
pub const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// N replicas over one store.
pub struct Replicas {
    pub redis: Redis,
    pub nodes: Vec<Serve>,
    /// Holds the store's and the replicas' data dirs.
    _dir: TempDir,
}

impl Replicas {
    /// `n` replicas of serve over a new store, started one after the other.
    pub fn start(n: usize) -> Replicas {
        Replicas::start_with(n, &[])
    }

    /// The same with `extra` serve arguments for each.
    pub fn start_with(n: usize, extra: &[&str]) -> Replicas {
        let dir = TempDir::new();
        let redis = Redis::start(dir.path());
        let nodes = (0..n)
            .map(|i| replica(&dir.path().join(format!("r{i}")), &redis.url(), extra))
            .collect();
        Replicas {
            redis,
            nodes,
            _dir: dir,
        }
    }
}

/// One serve over the store at `url`, in `dir`.
pub fn replica(dir: &Path, url: &str, extra: &[&str]) -> Serve {
    replica_with_keys(dir, url, extra, FERNET_KEY)
}

/// The same with `keys` as its `AEGIS_FERNET_KEYS`.
pub fn replica_with_keys(dir: &Path, url: &str, extra: &[&str], keys: &str) -> Serve {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["--store", url];
    args.extend_from_slice(extra);
    Serve::start_with_env(dir, &args, &[("AEGIS_FERNET_KEYS", keys)])
}

//! `aegis-gate rotate-key`: every stored secret re-encrypted under a new Fernet key.
//!
//! Owns: the help and flags of `rotate-key`, and the line that reports the rotation.
//! Never: prints a key or a secret; does the rotation itself (that is `crypto::rotate`, which
//! refuses to run under a `serve` holding the data dir).

use super::{args, CliError};
use crate::{crypto, logging};
use lexopt::prelude::*;
use std::path::PathBuf;

/// Runs `aegis-gate rotate-key` and prints how many secrets it re-encrypted.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut data_dir: Option<PathBuf> = None;
    let mut store: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("store") => store = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let data_dir = args::data_dir(data_dir.as_deref())?;
    let done = match store {
        Some(url) => crate::store::shared::SharedStore::open(&url)
            .map_err(|e| e.to_string())
            .and_then(|store| crypto::rotate_shared(&data_dir, store)),
        None => crypto::rotate(&data_dir),
    }
    .map_err(|e| CliError::Runtime(format!("rotate-key: {e}")))?;
    if done.old_keys_dropped {
        println!(
            "rotated: {} secrets re-encrypted under a new key; the old key is gone",
            done.secrets
        );
    } else {
        println!(
            "rotated: {} secrets re-encrypted under the first key of AEGIS_FERNET_KEYS; drop the others from it",
            done.secrets
        );
    }
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate rotate-key: re-encrypt every stored secret under a new Fernet key

USAGE:
    aegis-gate rotate-key [--data-dir DIR] [--store URL]

Stop `serve` first. With the key file (fernet.key in the data dir) a new key is generated, every
secret is re-encrypted under it and checked to decrypt with it alone, then the old key is dropped.
With AEGIS_FERNET_KEYS, the secrets are re-encrypted under the first key of the list; drop the
other keys from the variable afterwards.

With --store URL (replicas sharing Valkey/Redis; the password from AEGIS_STORE_PASSWORD), the
shared secrets are re-encrypted under the first key of AEGIS_FERNET_KEYS, which is required. The
replicas may keep running: give them NEW_KEY,OLD_KEY first, rotate, then give them NEW_KEY alone.

EXAMPLES:
    aegis-gate rotate-key
    AEGIS_FERNET_KEYS=NEW_KEY,OLD_KEY aegis-gate rotate-key --data-dir /var/lib/aegis-gate
    AEGIS_FERNET_KEYS=NEW_KEY,OLD_KEY aegis-gate rotate-key --store redis://10.0.0.5:6379/0
";

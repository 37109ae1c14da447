//! `aegis-gate rotate-key`: every stored secret re-encrypted under a new first key: connections'
//! env values, remote connections' header values, workspaces' introspection credentials.
//!
//! Owns: the rotation order that a crash cannot break: the key file first gets the new key in
//! front of the old ones (both decrypt), then every secret is re-encrypted under the new key and
//! checked to decrypt with it alone, the state is written, and only then the old keys are dropped.
//! With `AEGIS_FERNET_KEYS`, the keys are the operator's: the secrets are re-encrypted under the
//! first one, and dropping the others from the variable is left to the operator.
//! Never: runs while a `serve` uses the data dir (the state lock says so); never prints a key.

use super::{Keyring, KEYS_ENV, KEY_CHECK_BINDING, KEY_FILE};
use crate::store::shared::SharedStore;
use crate::store::state::{StateFile, StateStore};
use crate::store::{self, atomic_write, FileLock};
use std::path::Path;

/// A rotation step that failed; nothing was written for it.
struct Failure(String);

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Failure {
        Failure(e.to_string())
    }
}

/// What a rotation did.
#[derive(Debug)]
pub(crate) struct Rotated {
    /// Secrets re-encrypted.
    pub secrets: usize,
    /// Whether the old keys were dropped (false with `AEGIS_FERNET_KEYS`: the operator drops them).
    pub old_keys_dropped: bool,
}

/// Rotates the key of the data dir `dir`.
pub(crate) fn rotate(dir: &Path) -> Result<Rotated, String> {
    store::ensure_data_dir(dir).map_err(|e| e.to_string())?;
    let _lock = FileLock::try_acquire(dir, "state.json")
        .map_err(|e| e.to_string())?
        .ok_or("a gate is serving from this data dir: stop it first")?;
    let from_env = std::env::var(KEYS_ENV).ok();
    let key_file = dir.join(KEY_FILE);
    let (ring, new_only) = match &from_env {
        Some(list) => {
            let ring = Keyring::from_list(list, KEYS_ENV).map_err(|e| e.to_string())?;
            let first = list
                .split(',')
                .map(str::trim)
                .find(|k| !k.is_empty())
                .unwrap_or_default()
                .to_owned();
            (ring, first)
        }
        None => {
            let old = std::fs::read_to_string(&key_file)
                .map_err(|e| format!("{}: {e}", key_file.display()))?;
            let new = Keyring::generate_key();
            let both = format!("{new},{}", old.trim());
            atomic_write(&key_file, both.as_bytes()).map_err(|e| e.to_string())?;
            (
                Keyring::from_list(&both, &key_file.display().to_string())
                    .map_err(|e| e.to_string())?,
                new,
            )
        }
    };
    let only_new = Keyring::from_list(&new_only, "the new key").map_err(|e| e.to_string())?;
    let mut state = StateStore::open(dir).map_err(|e| e.to_string())?;
    let secrets = reencrypt_all(&mut state, &ring, &only_new)?;
    if from_env.is_none() {
        atomic_write(&key_file, new_only.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(Rotated {
        secrets,
        old_keys_dropped: from_env.is_none(),
    })
}

/// Rotates the secrets of a shared store (`rotate-key --store`) under the first key of
/// `AEGIS_FERNET_KEYS` (replicas have no key file of theirs to rewrite): the replicas may keep
/// running with the new key first and the old ones after it, then be given the new one alone.
pub(crate) fn rotate_shared(dir: &Path, store: SharedStore) -> Result<Rotated, String> {
    let list = std::env::var(KEYS_ENV).map_err(|_| {
        format!("--store: set {KEYS_ENV} to the new key, then the old ones (comma-separated)")
    })?;
    let ring = Keyring::from_list(&list, KEYS_ENV).map_err(|e| e.to_string())?;
    let first = list.split(',').map(str::trim).find(|k| !k.is_empty());
    let only_new =
        Keyring::from_list(first.unwrap_or_default(), "the new key").map_err(|e| e.to_string())?;
    let file = StateFile::shared(dir, store).map_err(|e| e.to_string())?;
    let mut state = StateStore::open_at(file).map_err(|e| e.to_string())?;
    let secrets = reencrypt_all(&mut state, &ring, &only_new)?;
    Ok(Rotated {
        secrets,
        old_keys_dropped: false,
    })
}

/// Re-encrypts every secret of `state` (and a shared store's key check) under `only_new`'s key,
/// each checked to decrypt with it alone, in one write; how many.
fn reencrypt_all(
    state: &mut StateStore,
    ring: &Keyring,
    only_new: &Keyring,
) -> Result<usize, String> {
    let secrets = state.update(|s| {
        let mut n = 0;
        // One secret: re-encrypted under the new key, and checked to decrypt with it alone.
        let mut rotate_one = |binding: &str, var: &str, token: &mut String| {
            let fresh = ring
                .reencrypt_secret(binding, var, token)
                .map_err(|e| Failure(format!("{var} of {binding}: {e}")))?;
            only_new
                .decrypt_secret(binding, var, &fresh)
                .map_err(|e| Failure(format!("check of {var} of {binding}: {e}")))?;
            *token = fresh;
            n += 1;
            Ok::<_, Failure>(())
        };
        for conn in s.connections.values_mut() {
            let binding = super::binding(&conn.workspace_id, &conn.name);
            for (var, token) in conn.env.iter_mut() {
                rotate_one(&binding, var, token)?;
            }
            // A remote connection's header values are bound as `header:NAME`.
            if let Some(remote) = conn.remote.as_mut() {
                for (name, token) in remote.headers.iter_mut() {
                    rotate_one(&binding, &format!("header:{name}"), token)?;
                }
            }
        }
        // A workspace's introspection credential, stored as `encrypted:TOKEN`.
        for (id, workspace) in s.workspaces.iter_mut() {
            let stored = workspace
                .identity
                .as_mut()
                .and_then(|i| i.introspection.as_mut())
                .and_then(|i| i.authorization.as_mut());
            if let Some(stored) = stored {
                let mut token = stored
                    .strip_prefix("encrypted:")
                    .unwrap_or(stored)
                    .to_owned();
                rotate_one(&super::binding(id, "identity"), "authorization", &mut token)?;
                *stored = format!("encrypted:{token}");
            }
        }
        // Not a secret, but under the old key a replica given only the new one would not start.
        if let Some(check) = s.key_check.as_mut() {
            let (binding, var) = KEY_CHECK_BINDING;
            let mut token = check.clone();
            rotate_one(binding, var, &mut token)?;
            n -= 1;
            *check = token;
        }
        Ok::<_, Failure>(n)
    });
    secrets.map_err(|Failure(e)| e)
}

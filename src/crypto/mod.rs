//! Crypto: credentials of downstream servers encrypted at rest with Fernet.
//!
//! Owns: the keyring (the first key encrypts, every key decrypts; from `AEGIS_FERNET_KEYS`,
//! comma-separated, or from `fernet.key` in the data dir, created 0600 on first start), and
//! secrets bound to their place: a token encrypts `{"c": connection, "n": variable, "v": value}`,
//! so a token copied to another connection or variable does not decrypt there.
//! Never: puts a secret value or a key into an error, a log line or a `Debug` output.

use fernet::Fernet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The environment variable with the gate's Fernet keys, comma-separated, the first encrypting.
pub(crate) const KEYS_ENV: &str = "AEGIS_FERNET_KEYS";
/// A shared store's key check (`serve --store`): the binding (connection, variable) and the text
/// it encrypts under the first replica's keys; a replica that cannot decrypt it has other keys.
pub(crate) const KEY_CHECK_BINDING: (&str, &str) = ("aegis", "key-check");
pub(crate) const KEY_CHECK_TEXT: &str = "replicas share their Fernet keys";
const KEY_FILE: &str = "fernet.key";

/// Why a crypto operation failed. Never carries a secret.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// A key is not 32 url-safe-base64 bytes; `index` counts from 0 in the list.
    BadKey {
        /// Where the keys came from (`AEGIS_FERNET_KEYS` or the key file's path).
        source: String,
        /// Which key.
        index: usize,
    },
    /// No key at all.
    NoKeys,
    /// The key file could not be read or created.
    KeyFile(String),
    /// The token does not decrypt with any key (wrong key, tampered, or not a token).
    Undecryptable,
    /// The token decrypts, but was made for another connection or variable.
    WrongBinding,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadKey { source, index } => {
                write!(
                    f,
                    "crypto error: key {index} of {source} is not a Fernet key"
                )
            }
            Error::NoKeys => write!(f, "crypto error: no Fernet key"),
            Error::KeyFile(why) => write!(f, "crypto error: key file: {why}"),
            Error::Undecryptable => write!(
                f,
                "crypto error: the value does not decrypt with this gate's keys"
            ),
            Error::WrongBinding => write!(
                f,
                "crypto error: the value was encrypted for another connection or variable"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The gate's Fernet keys.
pub(crate) struct Keyring {
    keys: Vec<Fernet>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

#[derive(Serialize, Deserialize)]
struct Bound<'a> {
    c: &'a str,
    n: &'a str,
    v: String,
}

impl Keyring {
    /// Keys from a comma-separated list (`AEGIS_FERNET_KEYS`'s form).
    pub(crate) fn from_list(list: &str, source: &str) -> Result<Keyring, Error> {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(index, k)| {
                Fernet::new(k).ok_or(Error::BadKey {
                    source: source.to_owned(),
                    index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(Error::NoKeys);
        }
        Ok(Keyring { keys })
    }

    /// `AEGIS_FERNET_KEYS` when set, else `fernet.key` in `data_dir`, created (0600) when missing.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<Keyring, Error> {
        if let Ok(list) = std::env::var(KEYS_ENV) {
            return Keyring::from_list(&list, KEYS_ENV);
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Keyring::from_list(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Fernet::generate_key();
                write_new_key(&path, &key)?;
                Keyring::from_list(&key, &path.display().to_string())
            }
            Err(e) => Err(Error::KeyFile(format!("{}: {e}", path.display()))),
        }
    }

    /// A fresh random key in the form `AEGIS_FERNET_KEYS` takes.
    pub(crate) fn generate_key() -> String {
        Fernet::generate_key()
    }

    /// Encrypts `value` for variable `name` of connection `conn`.
    pub(crate) fn encrypt_secret(&self, conn: &str, name: &str, value: &str) -> String {
        let bound = Bound {
            c: conn,
            n: name,
            v: value.to_owned(),
        };
        // Serializing three strings cannot fail.
        let plain = serde_json::to_vec(&bound).unwrap_or_default();
        match self.keys.first() {
            Some(key) => key.encrypt(&plain),
            None => String::new(),
        }
    }

    /// Decrypts a token made by [`Keyring::encrypt_secret`] for exactly `conn` and `name`.
    pub(crate) fn decrypt_secret(
        &self,
        conn: &str,
        name: &str,
        token: &str,
    ) -> Result<String, Error> {
        let plain = self.decrypt(token)?;
        let bound: Bound<'_> = serde_json::from_slice(&plain).map_err(|_| Error::WrongBinding)?;
        if bound.c != conn || bound.n != name {
            return Err(Error::WrongBinding);
        }
        Ok(bound.v)
    }

    /// Decrypts with any key of the ring.
    pub(crate) fn decrypt(&self, token: &str) -> Result<Vec<u8>, Error> {
        self.keys
            .iter()
            .find_map(|k| k.decrypt(token).ok())
            .ok_or(Error::Undecryptable)
    }

    /// Re-encrypts a bound secret under the first key (for key rotation).
    pub(crate) fn reencrypt_secret(
        &self,
        conn: &str,
        name: &str,
        token: &str,
    ) -> Result<String, Error> {
        let value = self.decrypt_secret(conn, name, token)?;
        Ok(self.encrypt_secret(conn, name, &value))
    }
}

/// What a connection's secrets are bound to: its workspace and name (so a client can encrypt a
/// value for a connection before it exists, and a value cannot move to another connection).
pub(crate) fn binding(workspace: &str, name: &str) -> String {
    format!("{workspace}/{name}")
}

fn write_new_key(path: &Path, key: &str) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::KeyFile(format!("{}: {e}", path.display())))?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::KeyFile(format!("{}: {e}", path.display())))
}

mod rotate;
pub(crate) mod secret;
pub(crate) mod signing;
#[cfg(test)]
mod tests;

pub(crate) use rotate::{rotate, rotate_shared};

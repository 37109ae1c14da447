//! The gate's own Ed25519 signing keys: its identity towards partner organizations.
//!
//! Owns: `signing.key` in the data dir (0600, created on first start): the gate's keys, the first
//! one signing, each known by its `kid`; their public form (PASERK `k4.public.…`) for partners;
//! and rotation, which puts a new key first and keeps the old ones listed, so partners verify
//! tokens of either until they drop the old `kid`.
//! Never: writes a private key anywhere but that file, or shows one in an error, a log or `Debug`.

use super::Error;
use crate::delegation::paserk;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

const FILE: &str = "signing.key";
const VERSION: u32 = 1;

/// One key of the gate.
pub(crate) struct OrgKey {
    /// Its id, as tokens name it in their footer.
    pub kid: String,
    key: SigningKey,
}

impl OrgKey {
    /// The private key, for signing.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl fmt::Debug for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgKey({})", self.kid)
    }
}

/// A public key as partners register it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublicKey {
    /// Its id.
    pub kid: String,
    /// `k4.public.…`.
    pub public_key: String,
}

/// The gate's keys, the first signing.
#[derive(Debug)]
pub(crate) struct SigningKeys {
    keys: Vec<OrgKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    /// The 32-byte seed, unpadded base64url.
    seed: String,
}

impl SigningKeys {
    /// The keys in `signing.key`, created with one fresh key when missing.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<SigningKeys, Error> {
        match Self::load(data_dir)? {
            Some(keys) => Ok(keys),
            None => {
                let keys = SigningKeys {
                    keys: vec![fresh_key()?],
                };
                keys.save(data_dir)?;
                Ok(keys)
            }
        }
    }

    /// Puts a new key first (it signs from now on) and keeps the others; written to disk.
    pub(crate) fn rotate(data_dir: &Path) -> Result<SigningKeys, Error> {
        let mut keys = Self::load_or_create(data_dir)?;
        keys.keys.insert(0, fresh_key()?);
        keys.save(data_dir)?;
        Ok(keys)
    }

    /// The signing key.
    pub(crate) fn current(&self) -> &OrgKey {
        // `load` refuses an empty file and every constructor adds a key.
        &self.keys[0]
    }

    /// Every key's public form, the signing one first.
    pub(crate) fn public(&self) -> Vec<PublicKey> {
        self.keys
            .iter()
            .map(|k| PublicKey {
                kid: k.kid.clone(),
                public_key: paserk::encode(&k.key.verifying_key()),
            })
            .collect()
    }

    /// The public key of `kid`, if it is one of this gate's keys.
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<ed25519_dalek::VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.key.verifying_key())
    }

    /// The keys in `signing.key`; `None` when there is no such file.
    pub(crate) fn load(data_dir: &Path) -> Result<Option<SigningKeys>, Error> {
        let path = data_dir.join(FILE);
        let bad = |why: String| Error::KeyFile(format!("{}: {why}", path.display()));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        // The file's text may hold a seed: report only where parsing failed.
        let file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a signing key file (line {})", e.line())))?;
        if file.version != VERSION || file.keys.is_empty() {
            return Err(bad("unknown version or no key".into()));
        }
        let keys = file
            .keys
            .iter()
            .map(|k| {
                let seed: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(&k.seed)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| bad(format!("key {} is not a 32-byte seed", k.kid)))?;
                Ok(OrgKey {
                    kid: k.kid.clone(),
                    key: SigningKey::from_bytes(&seed),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Some(SigningKeys { keys }))
    }

    fn save(&self, data_dir: &Path) -> Result<(), Error> {
        let file = KeyFile {
            version: VERSION,
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    kid: k.kid.clone(),
                    seed: URL_SAFE_NO_PAD.encode(k.key.to_bytes()),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        crate::store::atomic_write(&data_dir.join(FILE), &bytes)
            .map_err(|e| Error::KeyFile(e.to_string()))
    }
}

fn fresh_key() -> Result<OrgKey, Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Error::KeyFile(format!("no random bytes for a signing key: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    Ok(OrgKey {
        kid: paserk::kid_of(&key.verifying_key()),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_created_once_and_rotation_keeps_the_old_one() {
        let dir = std::env::temp_dir().join(format!("aegis-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = SigningKeys::load_or_create(&dir).unwrap();
        let again = SigningKeys::load_or_create(&dir).unwrap();
        assert_eq!(first.public(), again.public());
        let mode = std::fs::metadata(dir.join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let rotated = SigningKeys::rotate(&dir).unwrap();
        let public = rotated.public();
        assert_eq!(public.len(), 2);
        assert_eq!(public[1], first.public()[0]);
        assert_ne!(rotated.current().kid, first.current().kid);
        assert!(!format!("{rotated:?}")
            .contains(&URL_SAFE_NO_PAD.encode(rotated.current().key.to_bytes())));
        std::fs::write(dir.join(FILE), b"{\"version\":1,\"keys\":[]}").unwrap();
        assert!(SigningKeys::load_or_create(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! What the REST resource files share: the answer type and the sealing of a write-only value.
//!
//! Owns: [`Answer`] (a status and a JSON body, or an [`ApiError`]) and [`seal_secret`], the one
//! place where a value the API never gives back (a connection's env value or header, a
//! workspace's introspection credential) is encrypted, or, sent as `encrypted:<token>`, checked
//! to open for its binding.
//! Never: imports `rest/mod.rs` or a resource file (every file under `rest/` may import this one,
//! so the arrows only go down); never puts a secret into an error.

use crate::api::http::ApiError;
use crate::crypto::Keyring;
use serde_json::Value;

/// What a REST route answers: a status and a JSON body, or an error.
pub(super) type Answer = Result<(u16, Value), ApiError>;

/// A write-only value as stored: `value` encrypted for `bound` and `name`, or, when the client
/// sent it already encrypted (`encrypted:<token>`), that token once it opens for `bound` and
/// `name`. The caller adds the context of the error (which variable or credential).
pub(super) fn seal_secret(
    keyring: &Keyring,
    bound: &str,
    name: &str,
    value: &str,
) -> Result<String, crate::crypto::Error> {
    match value.strip_prefix("encrypted:") {
        Some(token) => {
            keyring.decrypt_secret(bound, name, token)?;
            Ok(token.to_owned())
        }
        None => Ok(keyring.encrypt_secret(bound, name, value)),
    }
}

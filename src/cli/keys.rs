//! `aegis-gate keys show|rotate`: the gate's identity towards partner organizations.
//!
//! Owns: printing `{"org_id", "keys": [{"kid", "public_key"}]}` (what `GET /api/v1/aegis/identity`
//! answers and what a partner's `POST /partners` takes), and rotation: a new signing key first,
//! the old ones still listed so partners verify either until they drop the old `kid`.
//! Never: prints a private key; rotates under a running `serve` (it would keep signing with the
//! key it loaded).

use crate::crypto::signing::SigningKeys;
use crate::store::{self, state::StateStore};
use std::path::Path;

/// Runs `keys ACTION`; returns what to print.
pub(super) fn run(action: &str, data_dir: &Path) -> Result<String, String> {
    let keys = match action {
        "show" => SigningKeys::load_or_create(data_dir).map_err(|e| e.to_string())?,
        "rotate" => {
            let _serving = store::FileLock::try_acquire(data_dir, "state.json")
                .map_err(|e| e.to_string())?
                .ok_or("a serve is running from this data dir: stop it first")?;
            SigningKeys::rotate(data_dir).map_err(|e| e.to_string())?
        }
        other => return Err(format!("keys takes show or rotate, not {other:?}")),
    };
    let org_id = StateStore::open(data_dir)
        .map_err(|e| e.to_string())?
        .state()
        .org_id
        .clone();
    let identity = serde_json::json!({ "org_id": org_id, "keys": keys.public() });
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&identity).unwrap_or_default()
    ))
}

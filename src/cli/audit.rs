//! `aegis-gate audit verify`: checks the signed, chained audit trail of a data dir.
//!
//! Owns: choosing what to check (every `audit*.log` of the data dir in order, from seq 1, or the
//! files given, each chain from its first record), the keys to check with (the gate's own, old
//! ones included, from `signing.key`), and the verdict: exit 0 with a count, or the first broken
//! record named.
//! Never: creates keys or changes a file.

use crate::audit;
use crate::crypto::signing::SigningKeys;
use std::path::{Path, PathBuf};

/// Verifies; `Ok` with the line to print, `Err` naming the first broken record.
pub(super) fn verify(data_dir: &Path, files: &[PathBuf]) -> Result<String, String> {
    let keys = SigningKeys::load(data_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no signing.key in {}", data_dir.display()))?;
    let (paths, from_start) = if files.is_empty() {
        let paths = audit::files(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        if paths.is_empty() {
            return Err(format!("no audit log in {}", data_dir.display()));
        }
        (paths, true)
    } else {
        (files.to_vec(), false)
    };
    let lookup = |kid: &str| keys.verifying_key(kid);
    let ok = audit::verify(&paths, &lookup, from_start)
        .map_err(|broken| format!("audit trail broken: {broken}"))?;
    Ok(format!(
        "ok: {} records in {} file(s), signatures and chain intact\n",
        ok.records, ok.files
    ))
}

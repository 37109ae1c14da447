//! `aegis-gate audit verify`: checks the signed, chained audit trail of a data dir.
//!
//! Owns: the help and flags of `audit`; choosing what to check (every `audit*.log` of the data
//! dir in order, from seq 1, or the files given, each chain from its first record), the keys to
//! check with (the gate's own, old ones included, from `signing.key`), and the verdict: exit 0
//! with a count, or the first broken record named.
//! Never: creates keys or changes a file.

use super::{args, CliError};
use crate::audit;
use crate::crypto::signing::SigningKeys;
use std::path::{Path, PathBuf};

/// Runs `aegis-gate audit verify [FILE...]` and prints its verdict.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = args::words_and_data_dir(parser, HELP, log_level)? else {
        return Ok(());
    };
    let Some(("verify", files)) = words.split_first().map(|(a, r)| (a.as_str(), r)) else {
        return Err(args::takes("audit", "verify [FILE...]", &words));
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let out = verify(&data_dir, &files).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate audit verify: check the audit trail's signatures and chain

USAGE:
    aegis-gate audit verify [--data-dir DIR] [FILE...]

Without FILE, every audit*.log of the data dir is checked in order, from the first record:
an edited, removed or reordered record fails. With FILEs, each chain is checked from its
first record on. Exit 0 when intact, 1 naming the first broken record (file, line, seq).

EXAMPLES:
    aegis-gate audit verify
    aegis-gate audit verify --data-dir /var/lib/aegis-gate audit-00000000000000000001.log
";

/// Verifies; `Ok` with the line to print, `Err` naming the first broken record.
fn verify(data_dir: &Path, files: &[PathBuf]) -> Result<String, String> {
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
    // Big trails take a while: a line on stderr every million records.
    let mut progress = |n: u64| eprintln!("audit verify: {n} records checked…");
    let ok = audit::verify(&paths, &lookup, from_start, &mut progress)
        .map_err(|broken| format!("audit trail broken: {broken}"))?;
    Ok(format!(
        "ok: {} records in {} file(s), signatures and chain intact\n",
        ok.records, ok.files
    ))
}

//! `aegis-gate keys show|rotate`: the gate's identity towards partner organizations.
//!
//! Owns: the help and flags of `keys`; printing `{"org_id", "keys": [{"kid", "public_key"}]}`
//! (what `GET /api/v1/aegis/identity` answers and what a partner's `POST /partners` takes), and
//! rotation: a new signing key first, the old ones still listed so partners verify either until
//! they drop the old `kid`.
//! Never: prints a private key; rotates under a running `serve` (it would keep signing with the
//! key it loaded).

use super::{args, CliError};
use crate::crypto::signing::SigningKeys;
use crate::store::{self, state::StateStore};
use std::path::Path;

/// Runs `aegis-gate keys ACTION` and prints the gate's identity.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = args::words_and_data_dir(parser, HELP, log_level)? else {
        return Ok(());
    };
    let action = match words.as_slice() {
        [word] if word == "show" => Action::Show,
        [word] if word == "rotate" => Action::Rotate,
        _ => return Err(args::takes("keys", "show or rotate", &words)),
    };
    store::ensure_data_dir(&data_dir).map_err(|e| CliError::Config(e.to_string()))?;
    let out = act(action, &data_dir).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate keys: this gate's identity towards partner organizations

USAGE:
    aegis-gate keys show [--data-dir DIR]
    aegis-gate keys rotate [--data-dir DIR]

`show` prints {\"org_id\": ..., \"keys\": [{\"kid\": ..., \"public_key\": \"k4.public....\"}]},
what a partner registers (POST /api/v1/aegis/partners takes these key objects); the signing
key is created on first use. `rotate` (with serve stopped) makes a new signing key and keeps
the old ones listed, so partners verify both until they remove the old kid.

EXAMPLES:
    aegis-gate keys show > identity.json
    aegis-gate keys rotate --data-dir /var/lib/aegis-gate
";

/// What `keys` does.
enum Action {
    Show,
    Rotate,
}

/// Does `keys ACTION`; returns what to print.
fn act(action: Action, data_dir: &Path) -> Result<String, String> {
    let keys = match action {
        Action::Show => SigningKeys::load_or_create(data_dir).map_err(|e| e.to_string())?,
        Action::Rotate => {
            let _serving = store::FileLock::try_acquire(data_dir, "state.json")
                .map_err(|e| e.to_string())?
                .ok_or("a serve is running from this data dir: stop it first")?;
            SigningKeys::rotate(data_dir).map_err(|e| e.to_string())?
        }
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

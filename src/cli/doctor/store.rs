//! `doctor --store`: a replica's checks against its shared store.
//!
//! Owns: whether the store answers (with `AEGIS_STORE_PASSWORD`), its state parses as serve
//! would parse it, this replica's Fernet keys open its key check, and an admin token is given
//! (replicas never generate one); the shared connections are then checked by `doctor` itself.
//! Never: writes to the store; prints the token, a key or the store's password.

use super::{Keys, Report};
use crate::store::state::State;

/// A replica's shared store (`serve --store`): it answers (with `AEGIS_STORE_PASSWORD`), its
/// state parses, this replica's keys open its key check, and an admin token is given (replicas
/// never generate one). The state, when it could be read.
pub(super) fn check_store(url: &str, keys: &Keys, report: &mut Report) -> Option<State> {
    use crate::store::shared::{document::Document, SharedStore};
    match crate::api::serve::given_admin_token() {
        Ok(Some(_)) => {
            report.ok("the admin token is given (AEGIS_ADMIN_TOKEN or AEGIS_ADMIN_TOKEN_FILE)")
        }
        Ok(None) => report.fail(
            "--store: set AEGIS_ADMIN_TOKEN or AEGIS_ADMIN_TOKEN_FILE to the same token on \
             every replica (none is generated for replicas)",
        ),
        Err(e) => report.fail(e),
    }
    let store = match SharedStore::open(url) {
        Ok(store) => store,
        Err(e) => {
            report.fail(format!(
                "{e}: check the address, AEGIS_STORE_PASSWORD, the CA"
            ));
            return None;
        }
    };
    let read = Document::new(store).read();
    let state: State = match read {
        Ok((None, _)) => {
            report.ok(format!(
                "{url}: answers; no state yet (the first replica makes it)"
            ));
            return None;
        }
        Ok((Some(bytes), version)) => match crate::store::state::parse(&bytes) {
            Ok(state) => {
                report.ok(format!(
                    "{url}: answers; its state (version {version}) parses"
                ));
                state
            }
            Err(e) => {
                report.fail(format!("{url}: its state does not parse: {e}"));
                return None;
            }
        },
        Err(e) => {
            report.fail(e);
            return None;
        }
    };
    check_key_check(&state, keys, report);
    Some(state)
}

/// Whether this replica's keys open the shared store's key check.
fn check_key_check(state: &State, keys: &Keys, report: &mut Report) {
    let (Some(token), Keys::Loaded(ring)) = (&state.key_check, keys) else {
        return;
    };
    let (conn, name) = crate::crypto::KEY_CHECK_BINDING;
    match ring.decrypt_secret(conn, name, token) {
        Ok(text) if text == crate::crypto::KEY_CHECK_TEXT => {
            report.ok("the Fernet keys open the shared store's key check");
        }
        _ => report.fail(
            "the Fernet keys do not open the shared store's secrets: give every replica the same \
             AEGIS_FERNET_KEYS",
        ),
    }
}

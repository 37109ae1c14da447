//! `aegis-gate partners list|show|add|remove`: the partner registry from the command line.
//!
//! Owns: reading the registry from the data dir's state, and changing it with the same rules as
//! `POST /api/v1/aegis/partners` when no `serve` runs from that data dir (a running one owns the
//! state: use its REST API then).
//! Never: changes the state under a running `serve`.

use crate::store::state::{Partner, StateStore};
use crate::store::{self};
use std::path::Path;

/// Runs `partners ACTION [ARG]`; returns what to print.
pub(super) fn run(action: &str, arg: Option<&str>, data_dir: &Path) -> Result<String, String> {
    match (action, arg) {
        ("list", None) => {
            let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
            let partners: Vec<&Partner> = store.state().partners.values().collect();
            Ok(pretty(&serde_json::json!({ "partners": partners })))
        }
        ("show", Some(org)) => {
            let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
            let partner = store
                .state()
                .partners
                .get(org)
                .ok_or_else(|| format!("no partner {org}"))?;
            Ok(pretty(&serde_json::json!(partner)))
        }
        ("add", Some(file)) => {
            let text = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let partner: Partner =
                serde_json::from_slice(&text).map_err(|e| format!("{file}: {e}"))?;
            change(data_dir, |state| {
                if state.partners.contains_key(&partner.org_id) {
                    return Err(format!("partner {} exists", partner.org_id));
                }
                crate::api::check_partner(state, &partner)?;
                state
                    .partners
                    .insert(partner.org_id.clone(), partner.clone());
                Ok(format!("partner {} added\n", partner.org_id))
            })
        }
        ("remove", Some(org)) => change(data_dir, |state| {
            state
                .partners
                .remove(org)
                .map(|_| format!("partner {org} removed\n"))
                .ok_or_else(|| format!("no partner {org}"))
        }),
        _ => Err("partners takes list, show ORG, add FILE or remove ORG".into()),
    }
}

fn change(
    data_dir: &Path,
    f: impl FnOnce(&mut crate::store::state::State) -> Result<String, String>,
) -> Result<String, String> {
    let _serving = store::FileLock::try_acquire(data_dir, "state.json")
        .map_err(|e| e.to_string())?
        .ok_or(
            "a serve is running from this data dir: use its REST API (/api/v1/aegis/partners)",
        )?;
    let mut store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
    store
        .update(|state| f(state).map_err(Refusal::Rule))
        .map_err(|e| match e {
            Refusal::Rule(why) => why,
            Refusal::Store(e) => e.to_string(),
        })
}

/// Why a change did not happen: a rule, or the store.
enum Refusal {
    Rule(String),
    Store(store::Error),
}

impl From<store::Error> for Refusal {
    fn from(e: store::Error) -> Refusal {
        Refusal::Store(e)
    }
}

fn pretty(value: &serde_json::Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

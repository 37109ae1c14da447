//! `aegis-gate partners list|show|add|remove`: the partner registry from the command line.
//!
//! Owns: the help and flags of `partners`; reading the registry from the data dir's state, and
//! changing it with the same rules as `POST /api/v1/aegis/partners` when no `serve` runs from that
//! data dir (a running one owns the state: use its REST API then).
//! Never: changes the state under a running `serve`; touches `api` beyond the rules of
//! `POST /partners` (`api::check_partner`).

use super::{args, CliError};
use crate::api;
use crate::store::state::{Partner, StateStore};
use crate::store::{self};
use std::path::Path;

/// Runs `aegis-gate partners ACTION [ARG]` and prints its answer.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let Some((words, data_dir)) = args::words_and_data_dir(parser, HELP, log_level)? else {
        return Ok(());
    };
    let action = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => Action::List,
        ["show", org] => Action::Show(org),
        ["add", file] => Action::Add(file),
        ["remove", org] => Action::Remove(org),
        _ => {
            return Err(args::takes(
                "partners",
                "list, show ORG, add FILE or remove ORG",
                &words,
            ))
        }
    };
    let out = act(action, &data_dir).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate partners: the partner organizations whose gates may call this gate's tools

USAGE:
    aegis-gate partners list [--data-dir DIR]
    aegis-gate partners show ORG [--data-dir DIR]
    aegis-gate partners add FILE [--data-dir DIR]
    aegis-gate partners remove ORG [--data-dir DIR]

FILE holds the body of POST /api/v1/aegis/partners. add and remove need serve stopped (a
running serve owns the state: use its REST API).

EXAMPLES:
    aegis-gate partners list
    aegis-gate partners add partner-b.json
    aegis-gate partners remove org-b --data-dir /var/lib/aegis-gate
";

/// What `partners` does, with its argument.
enum Action<'a> {
    List,
    Show(&'a str),
    Add(&'a str),
    Remove(&'a str),
}

/// Does `partners ACTION [ARG]`; returns what to print.
fn act(action: Action<'_>, data_dir: &Path) -> Result<String, String> {
    match action {
        Action::List => {
            let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
            let partners: Vec<&Partner> = store.state().partners.values().collect();
            Ok(pretty(&serde_json::json!({ "partners": partners })))
        }
        Action::Show(org) => {
            let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
            let partner = store
                .state()
                .partners
                .get(org)
                .ok_or_else(|| format!("no partner {org}"))?;
            Ok(pretty(&serde_json::json!(partner)))
        }
        Action::Add(file) => {
            let text = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let partner: Partner =
                serde_json::from_slice(&text).map_err(|e| format!("{file}: {e}"))?;
            change(data_dir, |state| {
                if state.partners.contains_key(&partner.org_id) {
                    return Err(format!("partner {} exists", partner.org_id));
                }
                api::check_partner(state, &partner)?;
                state
                    .partners
                    .insert(partner.org_id.clone(), partner.clone());
                Ok(format!("partner {} added\n", partner.org_id))
            })
        }
        Action::Remove(org) => change(data_dir, |state| {
            state
                .partners
                .remove(org)
                .map(|_| format!("partner {org} removed\n"))
                .ok_or_else(|| format!("no partner {org}"))
        }),
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

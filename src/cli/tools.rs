//! `aegis-gate tools list|show|approve`: the operator's view of merged tools, their verdicts and pins.
//!
//! Owns: the help and flags of `tools`; reading the pins in `state.json` of a data dir (what the
//! gate saw last, held and rejected tools included), printing them for a person, and approving a
//! tool's current version.
//! Never: starts servers or talks to a running gate: a running gate notices an approval on disk
//! within a second.

use super::{args, CliError};
use crate::sanitize;
use crate::store::pins::{PinEntry, PinStore, Standing};
use crate::{gate, logging};
use lexopt::prelude::*;
use std::path::{Path, PathBuf};

/// Runs `aegis-gate tools ACTION` and prints its answer.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut data_dir: Option<PathBuf> = None;
    let mut workspace = gate::stdio::WORKSPACE.to_owned();
    let mut store: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("store") => store = Some(parser.value()?.string()?),
            Long("workspace") => workspace = parser.value()?.string()?,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let action = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => Action::List,
        ["show", name] => Action::Show((*name).to_owned()),
        ["approve", name] => Action::Approve((*name).to_owned()),
        _ => {
            return Err(args::takes(
                "tools",
                "list, show NAME or approve NAME",
                &words,
            ))
        }
    };
    let data_dir = args::data_dir(data_dir.as_deref())?;
    let pins = open(&data_dir, store.as_deref()).map_err(CliError::Runtime)?;
    let out = act(&action, pins, &workspace).map_err(CliError::Runtime)?;
    print!("{out}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate tools: the operator's view of the tools (and prompts) a gate has seen

USAGE:
    aegis-gate tools list [--data-dir DIR] [--workspace ID]
    aegis-gate tools show NAME [--data-dir DIR] [--workspace ID]
    aegis-gate tools approve NAME [--data-dir DIR] [--workspace ID]
    (each also takes --store URL instead of the data dir: the pins replicas share)

    list      Every tool with its verdict (pass, sanitized, held, rejected), its pin
              (approved, changed, unapproved) and the kinds of its findings
    show      One tool's findings, its text as the server sent it with invisible
              characters made visible, what agents see, and for a changed tool what
              changed since its approval (- approved, + current, sanitized)
    approve   Approve the tool's current version; a running gate serves it within a second

    Prompts are pinned like tools and listed as prompt:NAME (prompt:everything.simple-prompt);
    show and approve take that name.

OPTIONS:
    --data-dir DIR     The gate's data dir (default $XDG_STATE_HOME/aegis-gate,
                       else ~/.local/state/aegis-gate)
    --workspace ID     Workspace (default: default, the stdio gate's)
    --store URL        The pins of serve replicas sharing Valkey/Redis (redis://HOST:PORT/DB;
                       the password from AEGIS_STORE_PASSWORD); every replica serves an
                       approval within a second
    -h, --help         Print help

EXAMPLES:
    aegis-gate tools list
    aegis-gate tools show wx.weather
    aegis-gate tools approve wx.weather --workspace ws-1
    aegis-gate tools approve prompt:wx.forecast
";

/// What to do.
enum Action {
    List,
    Show(String),
    Approve(String),
}

/// The pins of `data_dir`, or of the shared store at `store` (replicas).
fn open(data_dir: &Path, store: Option<&str>) -> Result<PinStore, String> {
    let Some(url) = store else {
        return PinStore::open(data_dir).map_err(|e| e.to_string());
    };
    let shared = crate::store::shared::SharedStore::open(url).map_err(|e| e.to_string())?;
    crate::store::state::StateFile::shared(data_dir, shared)
        .and_then(PinStore::open_at)
        .map_err(|e| e.to_string())
}

/// Runs `action` on the pins of `workspace`; returns what to print.
fn act(action: &Action, mut store: PinStore, workspace: &str) -> Result<String, String> {
    match action {
        Action::List => Ok(list(&store, workspace)),
        Action::Show(name) => show(&store, workspace, name),
        Action::Approve(name) => {
            let entry = store.approve(workspace, name).map_err(|e| e.to_string())?;
            Ok(format!(
                "approved {name} (version {}); a running gate serves it within a second\n",
                short(&entry.current.hash)
            ))
        }
    }
}

fn standing_word(entry: &PinEntry) -> &'static str {
    match entry.standing() {
        Standing::Approved => "approved",
        Standing::Changed { .. } => "changed",
        Standing::Unapproved => "unapproved",
    }
}

fn list(store: &PinStore, workspace: &str) -> String {
    let entries = store.entries(workspace);
    if entries.is_empty() {
        return format!(
            "no tools seen yet in workspace {workspace:?} (data dir {}); run the gate first\n",
            store
                .path()
                .parent()
                .map_or_else(String::new, |p| p.display().to_string())
        );
    }
    let width = entries
        .iter()
        .map(|(_, _, e)| e.merged_name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<9}  {:<10}  FINDINGS\n",
        "TOOL", "VERDICT", "PIN"
    );
    for (_, _, entry) in entries {
        let mut kinds: Vec<&str> = entry
            .current
            .findings
            .iter()
            .map(|f| f.kind.as_str())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:<10}  {}\n",
            entry.merged_name,
            entry.current.verdict,
            standing_word(entry),
            if kinds.is_empty() {
                "-".to_owned()
            } else {
                kinds.join(", ")
            }
        ));
    }
    out
}

fn show(store: &PinStore, workspace: &str, name: &str) -> Result<String, String> {
    let (server, tool, entry) = store
        .entries(workspace)
        .into_iter()
        .find(|(_, _, e)| e.merged_name == name)
        .ok_or_else(|| {
            format!("no tool named {name:?} has been seen in workspace {workspace:?}")
        })?;
    let mut out = format!(
        "{name}\n  server: {server}\n  tool: {tool}\n  verdict: {}\n  pin: {} (current version {})\n",
        entry.current.verdict,
        standing_word(entry),
        short(&entry.current.hash)
    );
    if let Some(approved) = &entry.approved {
        out.push_str(&format!(
            "  approved: version {} by {} at unix time {}\n",
            short(&approved.hash),
            approved.by,
            approved.at
        ));
    }
    out.push_str("findings:\n");
    if entry.current.findings.is_empty() {
        out.push_str("  none\n");
    }
    for f in &entry.current.findings {
        let stage = if f.stage.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.stage)
        };
        let flag = if f.severity == "flag" {
            " [flag, not held]"
        } else {
            ""
        };
        out.push_str(&format!(
            "  - {}{stage}{flag} at {}: {}\n",
            f.kind,
            f.location,
            visible(&f.detail)
        ));
    }
    out.push_str("as the server sent it (invisible characters shown as <U+XXXX>):\n");
    for (path, text) in strings(&entry.current.raw.value(), String::new()) {
        out.push_str(&format!("  {path}: {}\n", visible(&text)));
    }
    out.push_str("as agents see it:\n  ");
    let served = match entry.standing() {
        Standing::Approved => Some(entry.current.clean.value()),
        Standing::Changed { approved } => Some(approved),
        Standing::Unapproved => None,
    };
    match served {
        Some(v) => out.push_str(&format!("{v}\n")),
        None => out.push_str("(hidden)\n"),
    }
    if let Standing::Changed { approved } = entry.standing() {
        out.push_str(&changes(&approved, &entry.current.clean.value()));
    }
    Ok(out)
}

/// What changed from the approved definition to the current one, both sanitized.
fn changes(approved: &serde_json::Value, current: &serde_json::Value) -> String {
    let lines = sanitize::diff::definitions(approved, current);
    if lines.is_empty() {
        return "changed since approval: nothing in the definition agents see; the change is in \
                what the server sent (its raw definition, serverInfo or instructions)\n"
            .to_owned();
    }
    let mut out = "changed since approval (- approved, + current, both sanitized):\n".to_owned();
    for line in lines {
        out.push_str(&format!("  {}\n", visible(&line)));
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Escapes every character a reader could not see.
fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let u = u32::from(c);
        let hidden = sanitize::is_forbidden(c)
            || (0xe0000..=0xe007f).contains(&u)
            || (0xfe00..=0xfe0f).contains(&u)
            || (0xe0100..=0xe01ef).contains(&u)
            || c == '\u{200d}'
            || c == '\u{200c}';
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ if hidden => out.push_str(&format!("<U+{u:04X}>")),
            _ => out.push(c),
        }
    }
    out
}

/// Every string of a value with its JSON path (`description`, `inputSchema.properties.x.title`).
fn strings(value: &serde_json::Value, path: String) -> Vec<(String, String)> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) => vec![(path, s.clone())],
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, v)| strings(v, format!("{path}[{i}]")))
            .collect(),
        serde_json::Value::Object(m) => m.iter().flat_map(|(k, v)| strings(v, join(k))).collect(),
        _ => Vec::new(),
    }
}

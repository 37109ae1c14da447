//! Tool pins: which version of each tool was approved, and what each tool looked like last.
//!
//! Owns: the `pins` part of `state.json` in the data dir (see [`super::state`]): per workspace,
//! server and tool, the approved version (hash, sanitized definition, by whom) and the current one
//! (hash, verdict, findings, raw and cleaned definition). Trust on first use pins a clean tool the
//! first time it is seen; a later change keeps the old approval and marks the tool changed until
//! an operator approves the new version. Also moves a `pins.json` of older gates into the state.
//! Never: approves a held or rejected version by itself; writes without the state's write lock
//! (a gate, serve and an operator's `tools approve` may share the data dir); writes anything but
//! the pins.

pub(crate) use super::schema::{Approved, Current, Definition, PinEntry, Pins, StoredFinding};
use super::schema::{State, Tools};
use super::state::{Stamp, StateFile};
use super::{io_error, Error};
use crate::sanitize::{Finding, Verdict};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// Where gates before schema version 2 kept the pins.
const LEGACY_FILE: &str = "pins.json";

/// How first sight of a clean tool is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Trust on first use: a clean tool is approved when first seen (the default).
    TrustOnFirstUse,
    /// Every tool waits for an operator's approval.
    RequireApproval,
}

/// Where a tool stands against its pin.
#[derive(Clone, Debug, PartialEq)]
pub enum Standing {
    /// The current version is the approved one.
    Approved,
    /// The tool changed since it was approved; the approved sanitized definition is kept here.
    Changed {
        /// What was approved.
        approved: Value,
    },
    /// No version of the tool was ever approved.
    Unapproved,
}

impl PinEntry {
    /// Where the current version stands.
    pub fn standing(&self) -> Standing {
        match &self.approved {
            None => Standing::Unapproved,
            Some(a) if a.hash == self.current.hash => Standing::Approved,
            Some(a) => Standing::Changed {
                approved: a.definition.value(),
            },
        }
    }
}

/// `pins.json` as gates before schema version 2 wrote it.
#[derive(Deserialize)]
struct LegacyPinFile {
    workspaces: Pins,
}

/// One tool as the merger saw it, ready to be pinned.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The tool's name on its server.
    pub tool: String,
    /// The name agents see.
    pub merged_name: String,
    /// Its pin hash.
    pub hash: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// As sent.
    pub raw: Definition,
    /// As cleaned.
    pub clean: Definition,
    /// Findings.
    pub findings: Vec<Finding>,
}

/// The pins of one data dir.
#[derive(Debug)]
pub struct PinStore {
    file: StateFile,
    pins: Pins,
    stamp: Stamp,
    /// The pins in memory were let go for an update that failed: read them again at the next
    /// look, whatever the stamp.
    stale: bool,
}

impl PinStore {
    /// Opens (creating the data dir if needed) and loads the pins.
    pub fn open(dir: &Path) -> Result<PinStore, Error> {
        let file = StateFile::new(dir)?;
        migrate_legacy(dir, &file)?;
        PinStore::open_at(file)
    }

    /// The pins kept in `file` (the data dir's, or a shared store's).
    pub(crate) fn open_at(file: StateFile) -> Result<PinStore, Error> {
        let file = file.for_pins();
        let (pins, stamp) = load(&file)?;
        Ok(PinStore {
            file,
            pins,
            stamp,
            stale: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Records what a server lists now and returns each tool's standing, in order.
    pub fn observe_server(
        &mut self,
        workspace: &str,
        server: &str,
        observations: &[Observation],
        pinning: Pinning,
    ) -> Result<Vec<Standing>, Error> {
        let mut all = self.observe_servers(workspace, &[(server, observations)], pinning)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Records what several servers list now, in one read and at most one write of the file;
    /// each server's tools' standings, in order.
    pub fn observe_servers(
        &mut self,
        workspace: &str,
        servers: &[(&str, &[Observation])],
        pinning: Pinning,
    ) -> Result<Vec<Vec<Standing>>, Error> {
        self.update(|pins| {
            let mut changed = !pins.contains_key(workspace);
            let workspace = pins.entry(workspace.to_owned()).or_default();
            let standings = servers
                .iter()
                .map(|(server, observations)| {
                    changed |= !workspace.contains_key(*server);
                    let tools = workspace.entry((*server).to_owned()).or_default();
                    observations
                        .iter()
                        .map(|obs| observe(tools, obs, pinning, &mut changed))
                        .collect()
                })
                .collect();
            (standings, changed)
        })
    }

    /// Approves the current version of the tool agents know as `merged_name`.
    pub fn approve(&mut self, workspace: &str, merged_name: &str) -> Result<PinEntry, Error> {
        self.update(|pins| {
            let approved = approve(pins, workspace, merged_name);
            let changed = approved.is_ok();
            (approved, changed)
        })?
    }

    /// Every entry of a workspace: (server, tool, entry).
    pub fn entries(&self, workspace: &str) -> Vec<(&str, &str, &PinEntry)> {
        let Some(servers) = self.pins.get(workspace) else {
            return Vec::new();
        };
        servers
            .iter()
            .flat_map(|(server, tools)| {
                tools
                    .iter()
                    .map(move |(tool, e)| (server.as_str(), tool.as_str(), e))
            })
            .collect()
    }

    /// The entry of one tool.
    pub fn entry(&self, workspace: &str, server: &str, tool: &str) -> Option<&PinEntry> {
        self.pins.get(workspace)?.get(server)?.get(tool)
    }

    /// Re-reads the file when another process changed it; true when the pins changed. A shared
    /// store that does not answer is not asked (the replica's `state-watch` finds out when it
    /// answers again); one holding an older version than was seen here lost data, and its pins
    /// are not taken (empty pins would approve every tool again at first sight).
    pub fn reload_if_changed(&mut self) -> Result<bool, Error> {
        if !self.file.reachable() || (self.file.stamp()? == self.stamp && !self.stale) {
            return Ok(false);
        }
        let (pins, stamp) = load(&self.file)?;
        if let (Stamp::Version(read), Stamp::Version(held)) = (stamp, self.stamp) {
            if read < held {
                return Err(super::state::lost_error(read, held));
            }
        }
        let changed = pins != self.pins || self.stale;
        self.pins = pins;
        self.stamp = stamp;
        self.stale = false;
        Ok(changed)
    }

    /// Read-modify-write under the lock; `f` says whether it changed anything, and the file is
    /// written only then (no copy of the pins to compare with: they can be megabytes).
    fn update<T>(&mut self, f: impl FnOnce(&mut Pins) -> (T, bool)) -> Result<T, Error> {
        let lock = self.file.lock()?;
        // The copy in memory goes before the file is read again: two copies of megabytes of
        // pins alive at once leave the heap fragmented for good (8 MiB more RSS with the pins of
        // 5,000 tools). Should the update fail, the next look at the file reads them again.
        drop(std::mem::take(&mut self.pins));
        self.stale = true;
        let (state, stamp) = self.file.read_stamped()?;
        if let (Stamp::Version(read), Stamp::Version(held)) = (stamp, self.stamp) {
            if read < held {
                return Err(super::state::lost_error(read, held));
            }
        }
        let mut state = state.unwrap_or_default();
        let (out, changed) = f(&mut state.pins);
        if changed {
            self.file.write(&lock, &state)?;
        }
        // Under the lock, so no other write is between.
        self.stamp = self.file.stamp()?;
        self.pins = state.pins;
        self.stale = false;
        Ok(out)
    }
}

/// Approves the current version of the tool agents know as `merged_name` in `pins`.
fn approve(pins: &mut Pins, workspace: &str, merged_name: &str) -> Result<PinEntry, Error> {
    let entry = pins
        .get_mut(workspace)
        .and_then(|servers| {
            servers
                .values_mut()
                .find_map(|tools| tools.values_mut().find(|e| e.merged_name == merged_name))
        })
        .ok_or_else(|| Error::UnknownTool(merged_name.to_owned()))?;
    if entry.current.verdict == Verdict::Rejected.as_str() {
        return Err(Error::NotApprovable {
            name: merged_name.to_owned(),
            reason: "its current version was rejected (a structural violation)".into(),
        });
    }
    entry.approved = Some(Approved {
        hash: entry.current.hash.clone(),
        definition: entry.current.clean.clone(),
        by: "operator".into(),
        at: now(),
    });
    Ok(entry.clone())
}

/// Records `obs` in `tools` and returns its standing; sets `changed` when the record changed.
fn observe(tools: &mut Tools, obs: &Observation, pinning: Pinning, changed: &mut bool) -> Standing {
    // One text of the cleaned definition, shared by the current and the approved version (and
    // by the raw one when cleaning changed nothing).
    let clean = if obs.clean == obs.raw {
        obs.raw.clone()
    } else {
        obs.clean.clone()
    };
    let current = Current {
        hash: obs.hash.clone(),
        verdict: obs.verdict.as_str().to_owned(),
        findings: obs
            .findings
            .iter()
            .map(|f| StoredFinding {
                location: f.location.clone(),
                kind: f.kind.as_str().to_owned(),
                detail: f.detail.clone(),
                stage: f.stage().to_owned(),
                severity: if f.flagged {
                    "flag".into()
                } else {
                    String::new()
                },
            })
            .collect(),
        raw: obs.raw.clone(),
        clean: clean.clone(),
    };
    let old = tools.remove(&obs.tool);
    let mut approved = old.as_ref().and_then(|e| e.approved.clone());
    let first_use =
        approved.is_none() && pinning == Pinning::TrustOnFirstUse && obs.verdict.is_usable();
    if first_use {
        approved = Some(Approved {
            hash: obs.hash.clone(),
            definition: clean.clone(),
            by: "first use".into(),
            at: now(),
        });
    }
    if let Some(approved) = approved.as_mut().filter(|a| a.hash == obs.hash) {
        // Same version; the sanitizer may have improved since: serve today's cleaning of it.
        approved.definition = clean;
    }
    let entry = PinEntry {
        merged_name: obs.merged_name.clone(),
        approved,
        current,
    };
    *changed |= old.as_ref() != Some(&entry);
    let standing = entry.standing();
    tools.insert(obs.tool.clone(), entry);
    standing
}

fn load(file: &StateFile) -> Result<(Pins, Stamp), Error> {
    let (state, stamp) = file.read_stamped()?;
    Ok((state.map(|s| s.pins).unwrap_or_default(), stamp))
}

/// Moves the pins of a `pins.json` into the state file (unless the state has pins already) and
/// renames it `pins.json.migrated`, so no approval is lost on upgrade and none is read twice.
fn migrate_legacy(dir: &Path, file: &StateFile) -> Result<(), Error> {
    let legacy = dir.join(LEGACY_FILE);
    if !legacy.exists() {
        return Ok(());
    }
    let lock = file.lock()?;
    let bytes = match std::fs::read(&legacy) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // Moved meanwhile.
        Err(e) => return Err(io_error(&legacy)(e)),
    };
    let old: LegacyPinFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: legacy.clone(),
        reason: e.to_string(),
    })?;
    let mut state: State = file.read()?.unwrap_or_default();
    if state.pins.is_empty() {
        state.pins = old.workspaces;
        file.write(&lock, &state)?;
    }
    let moved = dir.join(format!("{LEGACY_FILE}.migrated"));
    std::fs::rename(&legacy, &moved).map_err(io_error(&legacy))?;
    log::info!(
        "moved the pins of {} into {}",
        legacy.display(),
        file.path().display()
    );
    Ok(())
}

fn now() -> u64 {
    u64::try_from(crate::time::unix_now()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn obs(hash: &str, verdict: Verdict) -> Observation {
        Observation {
            tool: "t".into(),
            merged_name: "s.t".into(),
            hash: hash.into(),
            verdict,
            raw: Definition::new(&json!({"name": "t", "v": hash})),
            clean: Definition::new(&json!({"name": "t", "v": hash})),
            findings: Vec::new(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aegis-pins-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn first_use_pins_a_change_waits_and_approval_survives_reopening() {
        let dir = temp_dir("tofu");
        let mut store = PinStore::open(&dir).unwrap();
        let tofu = Pinning::TrustOnFirstUse;
        assert_eq!(
            store
                .observe_server("w", "s", &[obs("h1", Verdict::Pass)], tofu)
                .unwrap(),
            [Standing::Approved]
        );
        let changed = store
            .observe_server("w", "s", &[obs("h2", Verdict::Pass)], tofu)
            .unwrap();
        assert!(matches!(&changed[0], Standing::Changed { approved } if approved["v"] == "h1"));
        let mut reopened = PinStore::open(&dir).unwrap();
        assert!(matches!(
            reopened.entry("w", "s", "t").unwrap().standing(),
            Standing::Changed { .. }
        ));
        reopened.approve("w", "s.t").unwrap();
        assert!(store.reload_if_changed().unwrap());
        assert_eq!(
            store.entry("w", "s", "t").unwrap().standing(),
            Standing::Approved
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dir).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_tools_are_never_pinned_by_themselves_and_rejected_ones_not_at_all() {
        let dir = temp_dir("held");
        let mut store = PinStore::open(&dir).unwrap();
        let standing = store
            .observe_server(
                "w",
                "s",
                &[obs("h1", Verdict::Held)],
                Pinning::TrustOnFirstUse,
            )
            .unwrap();
        assert_eq!(standing, [Standing::Unapproved]);
        store.approve("w", "s.t").unwrap();
        assert_eq!(
            store.entry("w", "s", "t").unwrap().standing(),
            Standing::Approved
        );
        store
            .observe_server(
                "w",
                "s",
                &[obs("h2", Verdict::Rejected)],
                Pinning::TrustOnFirstUse,
            )
            .unwrap();
        assert!(matches!(
            store.approve("w", "s.t"),
            Err(Error::NotApprovable { .. })
        ));
        assert!(matches!(
            store.approve("w", "nope"),
            Err(Error::UnknownTool(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let dir = temp_dir("corrupt");
        super::super::ensure_data_dir(&dir).unwrap();
        std::fs::write(dir.join("state.json"), b"{not json").unwrap();
        let err = PinStore::open(&dir).unwrap_err().to_string();
        assert!(err.contains("state.json is corrupt"), "{err}");
        assert_eq!(std::fs::read(dir.join("state.json")).unwrap(), b"{not json");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pins_let_go_for_an_update_that_failed_are_read_again_even_from_the_same_file() {
        let dir = temp_dir("stale");
        let mut pins = PinStore::open(&dir).unwrap();
        let pass = [obs("h1", Verdict::Pass)];
        pins.observe_server("w", "s", &pass, Pinning::TrustOnFirstUse)
            .unwrap();
        let path = dir.join("state.json");
        let good = std::fs::read(&path).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        let err = pins
            .observe_server("w", "s", &pass, Pinning::TrustOnFirstUse)
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        // The same bytes and the same time as before the failed update: the stamp is the one
        // held, and the pins are read all the same.
        std::fs::write(&path, &good).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert!(pins.reload_if_changed().unwrap());
        assert_eq!(
            pins.entry("w", "s", "t").map(PinEntry::standing),
            Some(Standing::Approved)
        );
        assert!(!pins.reload_if_changed().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pins_and_serve_state_share_the_file_without_undoing_each_other() {
        let dir = temp_dir("shared");
        let mut serve = super::super::state::StateStore::open(&dir).unwrap();
        let mut pins = PinStore::open(&dir).unwrap();
        pins.observe_server(
            "w",
            "s",
            &[obs("h1", Verdict::Pass)],
            Pinning::TrustOnFirstUse,
        )
        .unwrap();
        serve
            .update(|s| {
                s.workspaces.insert("w".into(), Default::default());
                Ok::<_, Error>(())
            })
            .unwrap();
        pins.approve("w", "s.t").unwrap();
        let state: State =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
        assert!(state.workspaces.contains_key("w"));
        assert_eq!(state.pins["w"]["s"]["t"].standing(), Standing::Approved);
        assert!(!dir.join(LEGACY_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_legacy_pins_file_moves_into_the_state_once() {
        let dir = temp_dir("legacy");
        let mut old = PinStore::open(&dir).unwrap();
        old.observe_server(
            "w",
            "s",
            &[obs("h1", Verdict::Pass)],
            Pinning::TrustOnFirstUse,
        )
        .unwrap();
        let legacy = serde_json::json!({"version": 1, "workspaces": old.pins});
        std::fs::remove_file(dir.join("state.json")).unwrap();
        std::fs::write(dir.join(LEGACY_FILE), legacy.to_string()).unwrap();
        let reopened = PinStore::open(&dir).unwrap();
        assert_eq!(
            reopened.entry("w", "s", "t").unwrap().standing(),
            Standing::Approved
        );
        assert!(!dir.join(LEGACY_FILE).exists());
        assert!(dir.join("pins.json.migrated").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

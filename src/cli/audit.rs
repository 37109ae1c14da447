//! `aegis-gate audit verify`: checks the signed, chained audit trail of a data dir, or, with
//! `--store`, the trails of every replica of a shared store.
//!
//! Owns: the help and flags of `audit`; choosing what to check (every `audit*.log` of the data
//! dir in order, from seq 1, or the files given, each chain from its first record), the keys to
//! check with (the gate's own, old ones included, from `signing.key`), and the verdict: exit 0
//! with a count, or the first broken record named. With `--store URL` (password from
//! `AEGIS_STORE_PASSWORD`), each argument is one replica's trail (its data dir, checked from seq
//! 1 with that dir's keys, or one file), and every head the replicas recorded in the store must
//! be reached by a trail given: a replica's trail missing, cut short or rewritten fails, naming
//! its key id.
//! Never: creates keys or changes a file, or anything in the store.

use super::{args, CliError};
use crate::audit;
use crate::crypto::signing::SigningKeys;
use crate::store::shared::heads::AuditHeads;
use crate::store::shared::SharedStore;
use lexopt::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs `aegis-gate audit verify [--store URL] [FILE...]` and prints its verdict.
pub(super) fn run(parser: &mut lexopt::Parser, log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut data_dir: Option<PathBuf> = None;
    let mut store: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Long("store") => store = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    crate::logging::init(log_level);
    let Some(("verify", files)) = words.split_first().map(|(a, r)| (a.as_str(), r)) else {
        return Err(args::takes("audit", "verify [FILE...]", &words));
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let out = match store {
        None => verify(&args::data_dir(data_dir.as_deref())?, &files),
        Some(_) if files.is_empty() => {
            return Err(CliError::Usage(
                "audit verify --store URL takes every replica's trail: its data dir (or its \
                 audit files), one argument each"
                    .into(),
            ))
        }
        Some(url) => verify_replicas(&url, data_dir.as_deref(), &files),
    };
    print!("{}", out.map_err(CliError::Runtime)?);
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate audit verify: check the audit trail's signatures and chain

USAGE:
    aegis-gate audit verify [--data-dir DIR] [FILE...]
    aegis-gate audit verify --store URL [--data-dir DIR] TRAIL...

Without FILE, every audit*.log of the data dir is checked in order, from the first record:
an edited, removed or reordered record fails. With FILEs, each chain is checked from its
first record on. Exit 0 when intact, 1 naming the first broken record (file, line, seq).

With --store (replicas of serve --store; the password from AEGIS_STORE_PASSWORD), each
TRAIL is one replica's: its data dir (checked from the first record with the keys in its
signing.key) or an audit file. Then every chain head the replicas recorded in the store must
be reached by a trail given: a replica whose trail is missing, stops short of its head or
was rewritten fails, named by its key id.

EXAMPLES:
    aegis-gate audit verify
    aegis-gate audit verify --data-dir /var/lib/aegis-gate audit-00000000000000000001.log
    aegis-gate audit verify --store redis://store:6379/0 /backup/replica-a /backup/replica-b
";

/// Verifies; `Ok` with the line to print, `Err` naming the first broken record.
fn verify(data_dir: &Path, files: &[PathBuf]) -> Result<String, String> {
    let keys = SigningKeys::load(data_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no signing.key in {}", data_dir.display()))?;
    let (paths, from_start) = if files.is_empty() {
        (trail_files(data_dir)?, true)
    } else {
        (files.to_vec(), false)
    };
    let lookup = |kid: &str| keys.verifying_key(kid);
    let ok = audit::verify(&paths, &lookup, from_start, &mut progress)
        .map_err(|broken| format!("audit trail broken: {broken}"))?;
    Ok(format!(
        "ok: {} records in {} file(s), signatures and chain intact\n",
        ok.records, ok.files
    ))
}

/// Big trails take a while: a line on stderr every million records.
fn progress(n: u64) {
    eprintln!("audit verify: {n} records checked…");
}

/// A data dir's audit files in order; an error when it has none.
fn trail_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let paths = audit::files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if paths.is_empty() {
        return Err(format!("no audit log in {}", dir.display()));
    }
    Ok(paths)
}

/// A replica's head as the store keeps it.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

/// One recorded head, and what the trails given showed of its key.
struct HeadCheck {
    kid: String,
    head: Head,
    /// A trail holds the head's line.
    reached: bool,
    /// A trail holds the head's seq, but another line.
    differs: bool,
    /// The furthest seq of this key in the trails given.
    furthest: Option<u64>,
}

impl HeadCheck {
    fn see(&mut self, seen: &audit::Seen<'_>) {
        self.furthest = Some(self.furthest.map_or(seen.seq, |f| f.max(seen.seq)));
        if seen.seq == self.head.seq {
            if seen.hash == self.head.hash {
                self.reached = true;
            } else {
                self.differs = true;
            }
        }
    }

    /// What is wrong, when the head was not reached.
    fn problem(&self) -> Option<String> {
        if self.reached {
            return None;
        }
        let (seq, at) = (self.head.seq, self.head.at.as_deref().unwrap_or("?"));
        let dir = self.head.data_dir.as_deref().unwrap_or("?");
        let which = format!("key id {} (data dir {dir})", self.kid);
        Some(match self.furthest {
            _ if self.differs => format!(
                "{which}: seq {seq} of the trail given is not the line recorded as its head at \
                 {at} (the trail was rewritten)"
            ),
            None => format!(
                "{which}: no trail given holds its records; its head is seq {seq}, recorded at \
                 {at} (this replica's trail is missing)"
            ),
            Some(furthest) if furthest < seq => format!(
                "{which}: the trail given stops at seq {furthest}, short of its head seq {seq} \
                 recorded at {at} (records are missing)"
            ),
            Some(_) => format!(
                "{which}: the trail given starts after its head seq {seq}: give the whole trail"
            ),
        })
    }
}

/// Verifies each replica's trail, then that every head recorded in the store at `url` is
/// reached by one of them.
fn verify_replicas(
    url: &str,
    data_dir: Option<&Path>,
    trails: &[PathBuf],
) -> Result<String, String> {
    let store = SharedStore::open(url).map_err(|e| e.to_string())?;
    let recorded = AuditHeads::new(store).all().map_err(|e| e.to_string())?;
    let mut checks: BTreeMap<String, HeadCheck> = BTreeMap::new();
    for (kid, text) in recorded {
        let head: Head = serde_json::from_str(&text)
            .map_err(|e| format!("the store's head of key id {kid} is not a head ({e})"))?;
        let check = HeadCheck {
            kid: kid.clone(),
            head,
            reached: false,
            differs: false,
            furthest: None,
        };
        checks.insert(kid, check);
    }
    let keys = known_keys(data_dir, trails)?;
    let lookup = |kid: &str| keys.iter().find_map(|k| k.verifying_key(kid));
    let (mut records, mut files) = (0, 0);
    for trail in trails {
        let (paths, from_start) = if trail.is_dir() {
            (trail_files(trail)?, true)
        } else {
            (vec![trail.clone()], false)
        };
        let mut see = |seen: &audit::Seen<'_>| {
            if let Some(check) = checks.get_mut(seen.kid) {
                check.see(seen);
            }
        };
        let ok = audit::verify_each(&paths, &lookup, from_start, &mut progress, &mut see)
            .map_err(|broken| format!("audit trail broken: {broken}"))?;
        records += ok.records;
        files += ok.files;
    }
    let problems: Vec<String> = checks.values().filter_map(HeadCheck::problem).collect();
    if !problems.is_empty() {
        return Err(format!(
            "the trails given do not reach every replica's head recorded in the store:\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok(format!(
        "ok: {records} records in {files} file(s) of {} trail(s), signatures and chains intact; \
         the trails reach the heads of all {} replica key(s) recorded in the store\n",
        trails.len(),
        checks.len()
    ))
}

/// The keys to check with: `--data-dir`'s (when given), each data dir given as a trail's, and
/// those of the dir each audit file given lies in (when it has a `signing.key`).
fn known_keys(data_dir: Option<&Path>, trails: &[PathBuf]) -> Result<Vec<SigningKeys>, String> {
    let mut keys = Vec::new();
    if let Some(dir) = data_dir {
        let found = SigningKeys::load(dir).map_err(|e| e.to_string())?;
        keys.push(found.ok_or_else(|| format!("no signing.key in {}", dir.display()))?);
    }
    for trail in trails {
        let found = if trail.is_dir() {
            let found = SigningKeys::load(trail).map_err(|e| e.to_string())?;
            Some(found.ok_or_else(|| format!("no signing.key in {}", trail.display()))?)
        } else {
            match trail.parent() {
                Some(dir) => SigningKeys::load(dir).map_err(|e| e.to_string())?,
                None => None,
            }
        };
        keys.extend(found);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(seq: u64, hash: &str) -> HeadCheck {
        HeadCheck {
            kid: "k4.pid.b".into(),
            head: Head {
                seq,
                hash: hash.into(),
                data_dir: Some("/srv/b".into()),
                at: Some("2026-12-06T00:00:00Z".into()),
            },
            reached: false,
            differs: false,
            furthest: None,
        }
    }

    fn see(check: &mut HeadCheck, lines: &[(u64, &str)]) {
        for (seq, hash) in lines {
            check.see(&audit::Seen {
                seq: *seq,
                kid: "k4.pid.b",
                hash,
            });
        }
    }

    #[test]
    fn a_head_is_reached_only_by_its_own_line() {
        let mut reached = check(2, "h2");
        see(&mut reached, &[(1, "h1"), (2, "h2"), (3, "h3")]);
        assert_eq!(reached.problem(), None);

        let missing = check(2, "h2");
        let why = missing.problem().unwrap();
        assert!(why.contains("k4.pid.b") && why.contains("missing"), "{why}");
        assert!(why.contains("/srv/b"), "{why}");

        let mut short = check(5, "h5");
        see(&mut short, &[(1, "h1"), (2, "h2")]);
        let why = short.problem().unwrap();
        assert!(
            why.contains("stops at seq 2, short of its head seq 5"),
            "{why}"
        );

        let mut rewritten = check(2, "h2");
        see(&mut rewritten, &[(1, "h1"), (2, "other"), (3, "h3")]);
        assert!(rewritten.problem().unwrap().contains("rewritten"));

        let mut later = check(2, "h2");
        see(&mut later, &[(7, "h7")]);
        assert!(later.problem().unwrap().contains("give the whole trail"));
    }
}

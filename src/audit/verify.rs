//! Checking an audit trail: every signature, and the chain from the first record to the last.
//!
//! Owns: the order of the trail's files (rotated `audit-<seq>.log` by their first seq, then
//! `audit.log`), and the checks of each line: exactly `{"body"}` or `{"body", "sig"}`, a known
//! `kid`, a signature (where there is one) that verifies with the gate's key of that `kid`, the
//! next `seq`, `prev` equal to the SHA-256 of the line before (64 zeros before the first), and no
//! line left after the last signature (each signature covers the lines before it through
//! `prev`). The first failure is reported with its file, line and seq. One streaming pass: a
//! line at a time, whatever the trail's size.
//! Never: accepts a trail that does not start at seq 1 when checking a whole data dir (a removed
//! first line would go unnoticed otherwise), or lines no signature covers.

use super::{FILE, GENESIS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A trail that verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Files checked.
    pub files: usize,
}

/// The first broken record.
#[derive(Debug)]
pub struct Broken {
    /// Its file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: usize,
    /// Its seq, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq.map_or_else(String::new, |s| format!(" (seq {s})"));
        write!(
            f,
            "{} line {}{seq}: {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    body: &'a RawValue,
    /// On the last line of each batch (on every line of trails written before batch signing).
    #[serde(default)]
    sig: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    seq: u64,
    prev: String,
    kid: String,
}

/// The trail's files in order (rotated ones by first seq, the live one last).
pub fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".log"))
        })
        .collect();
    rotated.sort();
    let live = dir.join(FILE);
    if live.exists() {
        rotated.push(live);
    }
    Ok(rotated)
}

/// The seq of a record line, if it is one.
pub(super) fn seq_of(line: &[u8]) -> Option<u64> {
    let line: Line<'_> = serde_json::from_slice(line).ok()?;
    serde_json::from_str::<Body>(line.body.get())
        .ok()
        .map(|b| b.seq)
}

/// How often a progress report is made, in records.
pub const PROGRESS_EVERY: u64 = 1_000_000;

/// A record that passed its checks, as [`verify_each`] shows it.
#[derive(Debug)]
pub struct Seen<'a> {
    /// Its seq.
    pub seq: u64,
    /// The id of the key it names.
    pub kid: &'a str,
    /// The SHA-256 (hex) of its line: what the next line's `prev` is, and what a replica records
    /// as its head in a shared store.
    pub hash: &'a str,
}

/// Checks `paths` in order as one chain. `from_start`: the first record must be seq 1 (a whole
/// trail); otherwise the chain is checked from the first record on (one file of a trail).
/// `progress` hears the records checked so far every [`PROGRESS_EVERY`].
pub fn verify(
    paths: &[PathBuf],
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    from_start: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, Broken> {
    verify_each(paths, keys, from_start, progress, &mut |_| {})
}

/// [`verify`], showing `each` every record that passed its checks.
pub fn verify_each(
    paths: &[PathBuf],
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    from_start: bool,
    progress: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(&Seen<'_>),
) -> Result<Verified, Broken> {
    let mut state = Pass {
        expected: from_start.then(|| (1, GENESIS.to_owned())),
        records: 0,
    };
    // The first line since the last signature.
    let mut unsigned_from: Option<Unsigned> = None;
    for path in paths {
        let file = std::fs::File::open(path).map_err(|e| Broken {
            file: path.clone(),
            line: 0,
            seq: None,
            reason: e.to_string(),
        })?;
        let mut reader = BufReader::new(file);
        let mut raw = Vec::new();
        let mut line_no = 0;
        loop {
            raw.clear();
            let n = reader.read_until(b'\n', &mut raw).map_err(|e| Broken {
                file: path.clone(),
                line: line_no + 1,
                seq: None,
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
            if line.is_empty() {
                continue;
            }
            let (seq, signed) = state
                .line(line, keys, each)
                .map_err(|(seq, reason)| Broken {
                    file: path.clone(),
                    line: line_no,
                    seq,
                    reason,
                })?;
            if signed {
                unsigned_from = None;
            } else if unsigned_from.is_none() {
                unsigned_from = Some(Unsigned {
                    file: path.clone(),
                    line: line_no,
                    seq,
                });
            }
            if state.records % PROGRESS_EVERY == 0 {
                progress(state.records);
            }
        }
    }
    if let Some(u) = unsigned_from {
        return Err(Broken {
            file: u.file,
            line: u.line,
            seq: Some(u.seq),
            reason: "no signature covers this record or those after it (the trail ends before \
                     its batch was signed: a crash mid-batch, or lines were removed)"
                .to_owned(),
        });
    }
    Ok(Verified {
        records: state.records,
        files: paths.len(),
    })
}

/// Where a pass through the trail stands.
struct Pass {
    /// The next seq and `prev`, once known.
    expected: Option<(u64, String)>,
    records: u64,
}

/// Where the lines after the last signature begin.
struct Unsigned {
    file: PathBuf,
    line: usize,
    seq: u64,
}

impl Pass {
    /// Checks one line against the chain so far; its seq and whether it is signed.
    fn line(
        &mut self,
        raw: &[u8],
        keys: &dyn Fn(&str) -> Option<VerifyingKey>,
        each: &mut dyn FnMut(&Seen<'_>),
    ) -> Result<(u64, bool), (Option<u64>, String)> {
        let (body, signed) = check_line(raw, keys, self.expected.as_ref())?;
        let hash = crate::hex::sha256(raw);
        each(&Seen {
            seq: body.seq,
            kid: &body.kid,
            hash: &hash,
        });
        self.expected = Some((body.seq + 1, hash));
        self.records += 1;
        Ok((body.seq, signed))
    }
}

/// One line's checks; its body and whether it is signed, or (seq if known, reason).
fn check_line(
    raw: &[u8],
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    expected: Option<&(u64, String)>,
) -> Result<(Body, bool), (Option<u64>, String)> {
    let line: Line<'_> =
        serde_json::from_slice(raw).map_err(|e| (None, format!("not a record: {e}")))?;
    let body: Body = serde_json::from_str(line.body.get())
        .map_err(|e| (None, format!("not a record body: {e}")))?;
    let seq = Some(body.seq);
    let key = keys(&body.kid).ok_or_else(|| (seq, format!("unknown key {:?}", body.kid)))?;
    if let Some(sig) = &line.sig {
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(sig)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| (seq, "the signature is not 64 bytes of base64url".to_owned()))?;
        key.verify_strict(line.body.get().as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| {
                (
                    seq,
                    "the signature does not verify (the record was edited)".to_owned(),
                )
            })?;
    }
    if let Some((want_seq, want_prev)) = expected {
        if body.seq != *want_seq {
            return Err((
                seq,
                format!(
                    "seq {} where {want_seq} was expected (a record was removed or moved)",
                    body.seq
                ),
            ));
        }
        if &body.prev != want_prev {
            return Err((
                seq,
                "prev is not the hash of the record before (the chain is broken)".to_owned(),
            ));
        }
    }
    let signed = line.sig.is_some();
    Ok((body, signed))
}

//! The audit trail: every call decision and admin change, appended to `audit.log` in the data dir
//! as JSON lines, chained each to the one before and signed with the gate's Ed25519 key.
//!
//! A line is `{"body":{"seq","at","prev","kid","event"}}`, and the last line of each batch the
//! writer appends is `{"body":{…},"sig"}`: `prev` is the SHA-256 (hex) of the previous line's
//! bytes (64 zeros for the first), `sig` the Ed25519 signature (unpadded base64url) of the exact
//! bytes of `body`. A signature covers its line and, through `prev`, every line before it, so
//! editing, removing or reordering any line breaks a signature or the chain, and [`verify`] names
//! the first broken line; lines after the last signature are reported as unsigned. Trails written
//! before batch signing (a `sig` on every line) verify the same way. When `audit.log` passes the
//! rotation size it is renamed `audit-<first seq, 20 digits>.log` (its last line signed) and a new
//! one starts; the chain runs on across files.
//!
//! Owns: the `audit-writer` thread (`writer.rs`), which takes events from a bounded queue, writes
//! them in batches and fsyncs at least every [`FLUSH_EVERY`]; each batch holds the trail's lock
//! and picks the chain up again if another gate appended meanwhile, so every gate of a data dir
//! (serve and stdio) writes one chain; the file format; verification.
//! Never: drops a record while the writer lives: a full queue makes the caller wait (at most
//! [`MAX_WAIT`], counted in [`Audit::waits`]); only a writer stuck that long (a disk that does
//! not answer) loses the record, with an error log, counted in [`Audit::dropped`]. Never records a
//! secret (arguments are hashed, never written).
//!
//! Across replicas (`serve --store`), the head of the chain is recorded in the shared store after
//! each batch (`heads.rs`), so `audit verify --store` can check that every replica's trail was
//! given whole.
//!
//! Threads: `audit-writer`, ended by dropping the [`Audit`] (its queue closes; it flushes, fsyncs
//! and is joined); with a shared store, `audit-heads`, joined after it.

pub(crate) mod heads;
pub mod records;
mod verify;
mod writer;

pub use records::{argument_hash, Event};
pub use verify::{files, verify, verify_each, Broken, Seen, Verified, PROGRESS_EVERY};

use crate::store::FileLock;
use crate::thread::{self, lock, JoinOnDrop};
use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use ed25519_dalek::SigningKey;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use writer::{Chain, Writer};

/// The live file.
pub const FILE: &str = "audit.log";
/// Held by every batch a gate appends (serve and stdio gates may share a data dir).
const LOCK: &str = "audit.log";
/// Events written in one batch at most.
const MAX_BATCH: usize = 1024;
/// Events waiting for the writer: enough for several seconds of a busy gate, so an fsync that
/// stalls the writer does not make callers wait.
const QUEUE: usize = 16_384;
/// The longest a caller waits for room in a full queue before the record is lost: only a writer
/// stuck on a disk that does not answer takes that long.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// The longest an event waits before it is on disk.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Default rotation size.
pub const DEFAULT_ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// The `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The running audit trail; cheap to share behind an `Arc`.
pub struct Audit {
    tx: Mutex<Option<Sender<Event>>>,
    dropped: AtomicU64,
    /// Records that found the queue full and waited, and the microseconds they waited in all.
    waits: AtomicU64,
    waited_us: AtomicU64,
    thread: Mutex<Option<JoinOnDrop<()>>>,
    /// `audit-heads`, with a shared store: joined after the writer, whose last head it writes.
    heads: Mutex<Option<JoinOnDrop<()>>>,
}

impl Audit {
    /// Opens the trail in `dir` (continuing its chain) and starts the writer.
    pub fn start(dir: &Path, key: SigningKey, kid: String, rotate_bytes: u64) -> io::Result<Audit> {
        Audit::start_recording_heads(dir, key, kid, rotate_bytes, None)
    }

    /// The same, recording the chain's head in a shared store after each batch when `heads_to`
    /// names one.
    pub(crate) fn start_recording_heads(
        dir: &Path,
        key: SigningKey,
        kid: String,
        rotate_bytes: u64,
        heads_to: Option<heads::HeadsTo>,
    ) -> io::Result<Audit> {
        // Fails early (a trail that cannot be read) rather than at the first record.
        let (chain, live_len) = {
            let _lock =
                FileLock::acquire(dir, LOCK).map_err(|e| io::Error::other(e.to_string()))?;
            let chain = Chain::resume(dir)?;
            (
                chain,
                std::fs::metadata(dir.join(FILE)).map_or(0, |m| m.len()),
            )
        };
        let (heads, heads_thread) = match heads_to {
            Some(to) => {
                let (heads, thread) = heads::Heads::start(to, kid.clone())?;
                (Some(heads), Some(thread))
            }
            None => (None, None),
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let writer = Writer {
            dir: dir.to_owned(),
            key,
            kid,
            rotate_bytes: rotate_bytes.max(1024),
            chain,
            written_len: Some(live_len),
            heads,
        };
        let thread = thread::spawn("audit-writer", move || writer.run(&rx))?;
        Ok(Audit {
            tx: Mutex::new(Some(tx)),
            dropped: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            waited_us: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
            heads: Mutex::new(heads_thread),
        })
    }

    /// Queues `event` (a call record, or a JSON object with a `type`). Waits only when the
    /// queue is full (the writer behind), at most [`MAX_WAIT`].
    pub fn record(&self, event: impl Into<Event>) {
        let event = event.into();
        let (tx, event) = {
            let guard = lock(&self.tx);
            let Some(tx) = guard.as_ref() else { return };
            match tx.try_send(event) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                // A clone to wait with: a caller that waits must not hold the lock `stop` takes.
                Err(TrySendError::Full(event)) => (tx.clone(), event),
            }
        };
        let started = Instant::now();
        let res = tx.send_timeout(event, MAX_WAIT);
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waited_us.fetch_add(waited, Ordering::Relaxed);
        if let Err(SendTimeoutError::Timeout(_)) = res {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            log::error!(
                "audit: the writer took no record for {} s (a disk that does not answer?): \
                 a record was lost ({n} so far)",
                MAX_WAIT.as_secs()
            );
        }
    }

    /// Records lost because the writer took none for [`MAX_WAIT`].
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records that waited for room in the queue, and their total wait in microseconds.
    pub fn waits(&self) -> (u64, u64) {
        (
            self.waits.load(Ordering::Relaxed),
            self.waited_us.load(Ordering::Relaxed),
        )
    }

    /// Writes what is queued, fsyncs, and stops the writer.
    pub fn stop(&self) {
        lock(&self.tx).take();
        if let Some(thread) = lock(&self.thread).take() {
            thread.join();
        }
        // The writer is gone, and with it the sender that woke `audit-heads`.
        if let Some(thread) = lock(&self.heads).take() {
            thread.join();
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now() -> String {
    crate::time::format(crate::time::unix_now()).unwrap_or_default()
}

/// Shared handle type.
pub type Shared = Arc<Audit>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::PathBuf;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aegis-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(dir: &Path, events: usize, rotate: u64) {
        let audit =
            Audit::start(dir, SigningKey::from_bytes(&[2; 32]), "k".into(), rotate).unwrap();
        for n in 0..events {
            audit.record(serde_json::json!({ "type": "test", "n": n }));
        }
        audit.stop();
    }

    fn check(dir: &Path) -> Result<Verified, Broken> {
        let key = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let lookup = move |kid: &str| (kid == "k").then_some(key);
        verify(&files(dir).unwrap(), &lookup, true, &mut |_| {})
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_the_chain_goes_on() {
        let dir = temp("torn");
        run(&dir, 3, DEFAULT_ROTATE_BYTES);
        let mut live = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        live.write_all(b"{\"body\":{\"seq\":4,").unwrap();
        drop(live);
        run(&dir, 2, DEFAULT_ROTATE_BYTES);
        assert_eq!(check(&dir).unwrap().records, 5);
        assert!(dir.join("audit.log.torn").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_gates_sharing_a_data_dir_write_one_chain() {
        let dir = temp("shared");
        let key = || SigningKey::from_bytes(&[2; 32]);
        let a = Audit::start(&dir, key(), "k".into(), DEFAULT_ROTATE_BYTES).unwrap();
        let b = Audit::start(&dir, key(), "k".into(), DEFAULT_ROTATE_BYTES).unwrap();
        for n in 0..5 {
            a.record(serde_json::json!({ "type": "test", "from": "a", "n": n }));
            b.record(serde_json::json!({ "type": "test", "from": "b", "n": n }));
        }
        a.stop();
        b.stop();
        let more = Audit::start(&dir, key(), "k".into(), DEFAULT_ROTATE_BYTES).unwrap();
        more.record(serde_json::json!({ "type": "test", "from": "c" }));
        more.stop();
        assert_eq!(check(&dir).unwrap().records, 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_restart_after_a_rotation_continues_the_chain() {
        let dir = temp("rotate");
        run(&dir, 40, 1024);
        // The live file may be empty right after a rotation: the next start must go on from
        // the newest rotated file, not from seq 1.
        std::fs::write(dir.join(FILE), b"").unwrap();
        run(&dir, 3, 1024);
        let ok = check(&dir).unwrap();
        assert!(ok.files >= 3, "{ok:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join(FILE))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_batch_carries_one_signature_and_every_record_is_covered() {
        let dir = temp("batch");
        run(&dir, 50, DEFAULT_ROTATE_BYTES);
        let lines = lines(&dir);
        let signed = lines.iter().filter(|l| l.contains("\"sig\"")).count();
        assert!((1..50).contains(&signed), "{signed} of 50 lines signed");
        assert!(
            lines.last().unwrap().contains("\"sig\""),
            "the batch ends signed"
        );
        assert_eq!(check(&dir).unwrap().records, 50);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_after_the_last_signature_are_reported_and_an_unsigned_line_cannot_be_edited() {
        let dir = temp("unsigned");
        run(&dir, 5, DEFAULT_ROTATE_BYTES);
        let mut lines = lines(&dir);
        // Edit an unsigned line: the next line's prev no longer matches.
        let edited: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 1 {
                    l.replace("\"n\":1", "\"n\":7")
                } else {
                    l.clone()
                }
            })
            .collect();
        std::fs::write(dir.join(FILE), edited.join("\n") + "\n").unwrap();
        let broken = check(&dir).unwrap_err();
        assert!(broken.reason.contains("prev"), "{broken}");
        // Drop the signed last line: what is left is covered by no signature.
        lines.pop();
        std::fs::write(dir.join(FILE), lines.join("\n") + "\n").unwrap();
        let broken = check(&dir).unwrap_err();
        assert!(broken.reason.contains("no signature covers"), "{broken}");
        assert_eq!(broken.seq, Some(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_trail_signed_on_every_line_still_verifies() {
        let dir = temp("legacy");
        let key = SigningKey::from_bytes(&[2; 32]);
        let mut prev = GENESIS.to_owned();
        let mut text = String::new();
        for seq in 1..=3 {
            let body = serde_json::json!({"seq": seq, "at": "2026-01-01T00:00:00Z", "prev": prev,
                                          "kid": "k", "event": {"type": "test"}})
            .to_string();
            let sig = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ed25519_dalek::Signer::sign(&key, body.as_bytes()).to_bytes(),
            );
            let line = format!("{{\"body\":{body},\"sig\":\"{sig}\"}}");
            prev = crate::hex::sha256(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.join(FILE), text).unwrap();
        assert_eq!(check(&dir).unwrap().records, 3);
        // And a gate goes on from it with batches.
        run(&dir, 4, DEFAULT_ROTATE_BYTES);
        assert_eq!(check(&dir).unwrap().records, 7);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_burst_far_past_the_queue_loses_no_record() {
        let dir = temp("burst");
        let audit = Audit::start(
            &dir,
            SigningKey::from_bytes(&[2; 32]),
            "k".into(),
            DEFAULT_ROTATE_BYTES,
        )
        .unwrap();
        let n = QUEUE * 4;
        for i in 0..n {
            audit.record(serde_json::json!({ "type": "test", "n": i }));
        }
        audit.stop();
        assert_eq!(audit.dropped(), 0);
        assert_eq!(check(&dir).unwrap().records, n as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

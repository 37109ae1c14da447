//! The audit trail: every call decision and admin change, appended to `audit.log` in the data dir
//! as JSON lines, each signed with the gate's Ed25519 key and chained to the one before.
//!
//! A line is `{"body":{"seq","at","prev","kid","event"},"sig"}`: `prev` is the SHA-256 (hex) of
//! the previous line's bytes (64 zeros for the first), `sig` the Ed25519 signature (unpadded
//! base64url) of the exact bytes of `body`. Editing, removing or reordering any line breaks a
//! signature or the chain, and [`verify`] names the first broken line. When `audit.log` passes
//! the rotation size it is renamed `audit-<first seq, 20 digits>.log` and a new one starts; the
//! chain runs on across files.
//!
//! Owns: the `audit-writer` thread, which takes events from a bounded queue, writes them in
//! batches and fsyncs at least every [`FLUSH_EVERY`]; each batch holds the trail's lock and picks
//! the chain up again if another gate appended meanwhile, so every gate of a data dir (serve and
//! stdio) writes one chain; the file format; verification.
//! Never: makes a caller wait on disk (recording is a non-blocking send; a full queue drops the
//! event with an error log, counted); records a secret (arguments are hashed, never written).
//!
//! Threads: `audit-writer`, ended by dropping the [`Audit`] (its queue closes; it flushes, fsyncs
//! and is joined).

pub mod records;
mod verify;

pub use records::argument_hash;
pub use verify::{files, verify, Broken, Verified};

use crate::store::FileLock;
use crate::thread::{self, lock, JoinOnDrop};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The live file.
pub const FILE: &str = "audit.log";
/// Held by every batch a gate appends (serve and stdio gates may share a data dir).
const LOCK: &str = "audit.log";
/// Events written in one batch at most.
const MAX_BATCH: usize = 1024;
/// Events waiting for the writer: enough for several seconds of a busy gate, so an fsync that
/// stalls the writer does not drop events.
const QUEUE: usize = 16_384;
/// The longest an event waits before it is on disk.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Default rotation size.
pub const DEFAULT_ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// The `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The running audit trail; cheap to share behind an `Arc`.
pub struct Audit {
    tx: Mutex<Option<Sender<Value>>>,
    dropped: AtomicU64,
    thread: Mutex<Option<JoinOnDrop<()>>>,
}

impl Audit {
    /// Opens the trail in `dir` (continuing its chain) and starts the writer.
    pub fn start(dir: &Path, key: SigningKey, kid: String, rotate_bytes: u64) -> io::Result<Audit> {
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
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let writer = Writer {
            dir: dir.to_owned(),
            key,
            kid,
            rotate_bytes: rotate_bytes.max(1024),
            chain,
            written_len: Some(live_len),
        };
        let thread = thread::spawn("audit-writer", move || writer.run(&rx))?;
        Ok(Audit {
            tx: Mutex::new(Some(tx)),
            dropped: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `event` (a JSON object with a `type`); never waits.
    pub fn record(&self, event: Value) {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                log::error!("audit queue full: an event was dropped ({n} so far)");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, fsyncs, and stops the writer.
    pub fn stop(&self) {
        lock(&self.tx).take();
        if let Some(thread) = lock(&self.thread).take() {
            thread.join();
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the chain stands: the next sequence number and the hash of the last line.
struct Chain {
    seq: u64,
    prev: String,
    /// Bytes in `audit.log` now, and the seq of its first line.
    size: u64,
    first_seq: Option<u64>,
}

impl Chain {
    /// Reads the last line of the trail (the live file, else the newest rotated one). A torn
    /// last line (a crash mid-write) is cut off and kept aside in `audit.log.torn`.
    fn resume(dir: &Path) -> io::Result<Chain> {
        let live = dir.join(FILE);
        let live_text = cut_torn_tail(&live)?;
        let mut chain = Chain {
            seq: 1,
            prev: GENESIS.to_owned(),
            size: live_text.len() as u64,
            first_seq: first_seq_of(&live_text),
        };
        let last_text = if live_text.is_empty() {
            // An empty live file right after a rotation: the chain goes on from the newest
            // rotated file.
            verify::files(dir)?
                .into_iter()
                .rfind(|p| p != &live)
                .map(std::fs::read)
                .transpose()?
                .unwrap_or_default()
        } else {
            live_text
        };
        if let Some(line) = last_text.split(|b| *b == b'\n').rfind(|l| !l.is_empty()) {
            let seq = verify::seq_of(line).ok_or_else(|| {
                io::Error::other("the audit log's last line is not a record: run audit verify")
            })?;
            chain.seq = seq + 1;
            chain.prev = hex(&Sha256::digest(line));
        }
        Ok(chain)
    }
}

/// The live file's bytes up to its last newline; anything after it (a line a crash cut short)
/// is appended to `audit.log.torn` and removed from the live file.
fn cut_torn_tail(live: &Path) -> io::Result<Vec<u8>> {
    let mut text = match std::fs::read(live) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if keep < text.len() {
        let torn = text.split_off(keep);
        log::warn!(
            "audit: the last {} bytes of {} were a torn line (a crash); kept in {FILE}.torn",
            torn.len(),
            live.display()
        );
        let mut aside = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(live.with_extension("log.torn"))?;
        aside.write_all(&torn)?;
        aside.write_all(b"\n")?;
        let file = OpenOptions::new().write(true).open(live)?;
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    Ok(text)
}

fn first_seq_of(text: &[u8]) -> Option<u64> {
    text.split(|b| *b == b'\n')
        .find(|l| !l.is_empty())
        .and_then(verify::seq_of)
}

struct Writer {
    dir: PathBuf,
    key: SigningKey,
    kid: String,
    rotate_bytes: u64,
    chain: Chain,
    /// The live file's length after our last batch: if it is still that, nobody else wrote.
    written_len: Option<u64>,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Value>) {
        let mut batch: Vec<Value> = Vec::new();
        let mut since: Option<Instant> = None;
        loop {
            let wait = since.map_or(Duration::from_secs(1), |t| {
                FLUSH_EVERY.saturating_sub(t.elapsed())
            });
            match rx.recv_timeout(wait) {
                Ok(event) => {
                    batch.push(event);
                    since.get_or_insert_with(Instant::now);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY) || batch.len() >= MAX_BATCH {
                self.write_batch(&mut batch);
                since = None;
            }
        }
        self.write_batch(&mut batch);
    }

    /// Appends a batch under the trail's lock, so gates sharing a data dir (serve, stdio) keep
    /// one chain: when another process wrote since our last batch, the chain is read again.
    fn write_batch(&mut self, batch: &mut Vec<Value>) {
        if batch.is_empty() {
            return;
        }
        let events = std::mem::take(batch);
        let lost = events.len();
        let _lock = match FileLock::acquire(&self.dir, LOCK) {
            Ok(lock) => lock,
            Err(e) => {
                return log::error!("audit: cannot lock the trail ({e}); {lost} records lost")
            }
        };
        let live_len = std::fs::metadata(self.dir.join(FILE)).map_or(0, |m| m.len());
        if self.written_len != Some(live_len) {
            match Chain::resume(&self.dir) {
                Ok(chain) => self.chain = chain,
                Err(e) => {
                    return log::error!("audit: cannot read the trail ({e}); {lost} records lost")
                }
            }
        }
        let mut file = match self.open() {
            Ok(f) => f,
            Err(e) => return log::error!("audit: cannot open {FILE}: {e}; {lost} records lost"),
        };
        for event in events {
            if let Err(e) = self.append(&mut file, event) {
                log::error!("audit: cannot write: {e}");
            }
        }
        sync(&mut file);
        self.written_len = std::fs::metadata(self.dir.join(FILE)).ok().map(|m| m.len());
    }

    fn open(&self) -> io::Result<BufWriter<File>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join(FILE))?;
        Ok(BufWriter::new(file))
    }

    fn append(&mut self, file: &mut BufWriter<File>, event: Value) -> io::Result<()> {
        if self.chain.size >= self.rotate_bytes {
            self.rotate(file)?;
        }
        let body = serde_json::json!({
            "seq": self.chain.seq,
            "at": now(),
            "prev": self.chain.prev,
            "kid": self.kid,
            "event": event,
        })
        .to_string();
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(body.as_bytes()).to_bytes());
        let line = format!("{{\"body\":{body},\"sig\":\"{sig}\"}}");
        // Line and newline in one write: a crash leaves a whole line or a torn one, never a
        // whole line without its end.
        file.write_all(format!("{line}\n").as_bytes())?;
        self.chain.prev = hex(&Sha256::digest(line.as_bytes()));
        self.chain.first_seq.get_or_insert(self.chain.seq);
        self.chain.seq += 1;
        self.chain.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Renames the live file after its first seq and starts a new one; the chain runs on.
    fn rotate(&mut self, file: &mut BufWriter<File>) -> io::Result<()> {
        sync(file);
        let first = self.chain.first_seq.unwrap_or(self.chain.seq);
        let rotated = self.dir.join(format!("audit-{first:020}.log"));
        if rotated.exists() {
            // Never over an older part of the trail.
            return Err(io::Error::other(format!(
                "{} exists already; not rotating over it",
                rotated.display()
            )));
        }
        std::fs::rename(self.dir.join(FILE), &rotated)?;
        *file = self.open()?;
        File::open(&self.dir)?.sync_all()?;
        self.chain.size = 0;
        self.chain.first_seq = None;
        Ok(())
    }
}

fn sync(file: &mut BufWriter<File>) {
    if let Err(e) = file.flush().and_then(|()| file.get_ref().sync_data()) {
        log::error!("audit: cannot flush: {e}");
    }
}

fn now() -> String {
    crate::time::format(crate::time::unix_now()).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Shared handle type.
pub type Shared = Arc<Audit>;

#[cfg(test)]
mod tests {
    use super::*;

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
        verify(&files(dir).unwrap(), &lookup, true)
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
}

//! The `audit-writer` thread's side of the trail: where the chain stands ([`Chain`], read again
//! from disk when another gate appended), and [`Writer`], which appends batches under the trail's
//! lock, rotates the live file, and fsyncs each batch.
//!
//! Owns: the line format as written. Every line carries the SHA-256 of the line before (`prev`),
//! and the last line of each batch (and the last line of a file before it rotates) carries the
//! Ed25519 signature of its body; that one signature covers every line back to the previous
//! signed one through the chain of hashes, so signing costs one signature per batch instead of
//! one per record, and the writer keeps up with any call rate the gate reaches.
//! Never: leaves a batch's last line unsigned; rewrites a line already written (a torn tail is
//! moved aside, never repaired).

use super::heads::{Head, Heads};
use super::{now, verify, Event, FILE, GENESIS, LOCK};
use crate::store::FileLock;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use ed25519_dalek::{Signer, SigningKey};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{FLUSH_EVERY, MAX_BATCH};

/// Where the chain stands: the next sequence number and the hash of the last line.
pub(super) struct Chain {
    seq: u64,
    prev: String,
    /// Bytes in `audit.log` now, and the seq of its first line.
    size: u64,
    first_seq: Option<u64>,
}

impl Chain {
    /// Reads the last line of the trail (the live file, else the newest rotated one). A torn
    /// last line (a crash mid-write) is cut off and kept aside in `audit.log.torn`.
    pub(super) fn resume(dir: &Path) -> io::Result<Chain> {
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
            chain.prev = crate::hex::sha256(line);
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

/// How long the writer sleeps between two drains of the queue while a batch is open.
const GATHER: Duration = Duration::from_millis(5);
/// How long the writer blocks for the first event of a batch before it looks again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Moves queued events into `batch` (at most [`MAX_BATCH`] in it); true once the queue is closed
/// and empty.
fn drain(rx: &Receiver<Event>, batch: &mut Vec<Event>) -> bool {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(event) => batch.push(event),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
    false
}

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) key: SigningKey,
    pub(super) kid: String,
    pub(super) rotate_bytes: u64,
    pub(super) chain: Chain,
    /// The live file's length after our last batch: if it is still that, nobody else wrote.
    pub(super) written_len: Option<u64>,
    /// Where the head of each batch goes (a shared store), if anywhere.
    pub(super) heads: Option<Heads>,
}

impl Writer {
    /// Takes events into batches until the queue closes, then writes what is left. The first
    /// event of a batch wakes the writer; the rest are taken every [`GATHER`] without blocking on
    /// the queue, so that a busy gate's callers find no waiting receiver to wake (a wake-up per
    /// record cost each call a futex call and, on 2 cores, a context switch).
    pub(super) fn run(mut self, rx: &Receiver<Event>) {
        let mut batch: Vec<Event> = Vec::new();
        let mut since: Option<Instant> = None;
        loop {
            if batch.is_empty() {
                match rx.recv_timeout(IDLE_WAIT) {
                    Ok(event) => {
                        batch.push(event);
                        since = Some(Instant::now());
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            // A group-commit interval, not a wait for an event: what arrives meanwhile is taken
            // below in one drain (a full queue makes callers wait at most this long).
            std::thread::sleep(GATHER);
            let closed = drain(rx, &mut batch);
            if closed
                || since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY)
                || batch.len() >= MAX_BATCH
            {
                self.write_batch(&mut batch);
                since = None;
            }
            if closed {
                return;
            }
        }
        self.write_batch(&mut batch);
    }

    /// Appends a batch under the trail's lock, so gates sharing a data dir (serve, stdio) keep
    /// one chain: when another process wrote since our last batch, the chain is read again.
    fn write_batch(&mut self, batch: &mut Vec<Event>) {
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
        let first_seq = self.chain.seq;
        let last = events.len().saturating_sub(1);
        for (idx, event) in events.into_iter().enumerate() {
            if let Err(e) = self.append(&mut file, event, idx == last) {
                log::error!("audit: cannot write: {e}");
            }
        }
        sync(&mut file);
        self.written_len = std::fs::metadata(self.dir.join(FILE)).ok().map(|m| m.len());
        if let (Some(heads), true) = (&self.heads, self.chain.seq > first_seq) {
            // On disk now: the store may say the chain reached this line.
            heads.note(Head {
                seq: self.chain.seq.saturating_sub(1),
                hash: self.chain.prev.clone(),
                file: self.dir.join(FILE),
            });
        }
    }

    fn open(&self) -> io::Result<BufWriter<File>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join(FILE))?;
        Ok(BufWriter::new(file))
    }

    /// Appends one record; `sign` for the last of a batch. The last line before a rotation is
    /// signed too, so that each file ends on a signature.
    fn append(&mut self, file: &mut BufWriter<File>, event: Event, sign: bool) -> io::Result<()> {
        if self.chain.size >= self.rotate_bytes {
            self.rotate(file)?;
        }
        let body = self.body(&event)?;
        // `{"body":…}` plus the newline, or with the signature (86 base64url chars + framing).
        let unsigned_len = body.len() as u64 + 11;
        let ends_file = self.chain.size + unsigned_len >= self.rotate_bytes;
        let line = if sign || ends_file {
            let sig = URL_SAFE_NO_PAD.encode(self.key.sign(body.as_bytes()).to_bytes());
            format!("{{\"body\":{body},\"sig\":\"{sig}\"}}\n")
        } else {
            format!("{{\"body\":{body}}}\n")
        };
        // Line and newline in one write: a crash leaves a whole line or a torn one, never a
        // whole line without its end.
        file.write_all(line.as_bytes())?;
        let line = line.trim_end_matches('\n');
        self.chain.prev = crate::hex::sha256(line.as_bytes());
        self.chain.first_seq.get_or_insert(self.chain.seq);
        self.chain.seq += 1;
        self.chain.size += line.len() as u64 + 1;
        Ok(())
    }

    /// The `body` of the next line: `{"at","event","kid","prev","seq"}`, keys in the sorted order
    /// a JSON object of them would have, written straight from the event (no tree built).
    fn body(&self, event: &Event) -> io::Result<String> {
        let mut body = Vec::with_capacity(384);
        body.extend_from_slice(b"{\"at\":");
        serde_json::to_writer(&mut body, &now())?;
        body.extend_from_slice(b",\"event\":");
        serde_json::to_writer(&mut body, event)?;
        body.extend_from_slice(b",\"kid\":");
        serde_json::to_writer(&mut body, &self.kid)?;
        body.extend_from_slice(b",\"prev\":");
        serde_json::to_writer(&mut body, &self.chain.prev)?;
        body.extend_from_slice(b",\"seq\":");
        serde_json::to_writer(&mut body, &self.chain.seq)?;
        body.push(b'}');
        // serde_json writes UTF-8 only.
        String::from_utf8(body).map_err(io::Error::other)
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

//! The head of this gate's chain, recorded in the shared store (`serve --store`) after each
//! batch, so that `audit verify --store` can tell whether every replica's trail was given and
//! reaches as far as it had.
//!
//! Owns: the `audit-heads` thread and what it writes (`{seq, hash, file, replica, data_dir,
//! at}` under the signing key id, through `store::shared::heads`); the writer hands it the
//! newest head without waiting ([`Heads::note`]: a slot it overwrites, and a wake-up), so a store
//! that is slow or gone never holds up the trail. A head not written (the store unreachable) is
//! logged once and written again at the next batch, or within [`RETRY`].
//! Never: writes a head before its batch is on disk (the writer notes it after the fsync);
//! writes anything but the newest head noted.
//!
//! Threads: `audit-heads`, woken through a channel of 1 whose sender the writer holds; when the
//! writer ends (its sender dropped), it writes the last head noted and ends; joined by
//! `Audit::stop` after the writer.

use crate::store::shared::heads::AuditHeads;
use crate::store::shared::SharedStore;
use crate::thread::{lock, JoinOnDrop};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How soon a head that was not written is tried again when no batch comes.
const RETRY: Duration = Duration::from_secs(1);

/// Where the heads go: the store, and this replica's name in it.
pub(crate) struct HeadsTo {
    /// The shared store.
    pub store: SharedStore,
    /// This replica's id (its signing key id).
    pub replica: String,
    /// The data dir, recorded with each head so a person can find the trail.
    pub data_dir: PathBuf,
}

/// The last line of a batch: what the store records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: String,
    pub(super) file: PathBuf,
}

/// The writer's end: the newest head, and the wake-up of `audit-heads`.
pub(super) struct Heads {
    latest: Arc<Mutex<Option<Head>>>,
    wake: Sender<()>,
}

impl Heads {
    /// Starts `audit-heads` writing under key id `kid`.
    pub(super) fn start(to: HeadsTo, kid: String) -> std::io::Result<(Heads, JoinOnDrop<()>)> {
        let latest = Arc::new(Mutex::new(None));
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let recorder = Recorder {
            heads: AuditHeads::new(to.store),
            replica: to.replica,
            data_dir: to.data_dir,
            kid,
            latest: Arc::clone(&latest),
            failing: false,
            behind: false,
        };
        let thread = crate::thread::spawn("audit-heads", move || recorder.run(&woken))?;
        Ok((Heads { latest, wake }, thread))
    }

    /// Hands over the head of a batch just written (never waits).
    pub(super) fn note(&self, head: Head) {
        *lock(&self.latest) = Some(head);
        let _ = self.wake.try_send(());
    }
}

/// `audit-heads`' side.
struct Recorder {
    heads: AuditHeads,
    replica: String,
    data_dir: PathBuf,
    kid: String,
    latest: Arc<Mutex<Option<Head>>>,
    /// A write failed and was logged; the next success is logged too.
    failing: bool,
    /// The store keeps a head past this trail's, and that was logged.
    behind: bool,
}

impl Recorder {
    fn run(mut self, woken: &Receiver<()>) {
        // A wake-up (a new head) or a tick (a retry); the writer gone ends it.
        while let Ok(()) | Err(RecvTimeoutError::Timeout) = woken.recv_timeout(RETRY) {
            self.write();
        }
        // The writer's last batch.
        self.write();
    }

    /// Writes the head noted, if any; kept for the next try when the store does not answer.
    fn write(&mut self) {
        let Some(head) = lock(&self.latest).take() else {
            return;
        };
        let record = json!({
            "seq": head.seq,
            "hash": head.hash,
            "file": head.file,
            "replica": self.replica,
            "data_dir": self.data_dir,
            "at": super::now(),
        })
        .to_string();
        match self.heads.advance(&self.kid, head.seq, &record) {
            Ok(advanced) => {
                if self.failing {
                    log::info!("audit: the chain's head is recorded in the shared store again");
                    self.failing = false;
                }
                if !advanced && !self.behind {
                    self.behind = true;
                    log::error!(
                        "audit: the shared store records a head of key {} at or past seq {}: \
                         this trail is behind a head it had reached (restored from an older \
                         copy?); audit verify --store will say so",
                        self.kid,
                        head.seq
                    );
                }
            }
            Err(e) => {
                if !self.failing {
                    log::warn!(
                        "audit: cannot record the chain's head in the shared store ({e}); \
                         retrying"
                    );
                    self.failing = true;
                }
                // Unless the writer noted a newer one meanwhile.
                lock(&self.latest).get_or_insert(head);
            }
        }
    }
}

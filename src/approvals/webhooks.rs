//! Webhooks: approval notices as JSON POSTs, signed with the gate's Ed25519 key.
//!
//! Owns: the `webhooks` thread and its bounded queue. Each delivery is a POST of the exact body
//! with `Aegis-Signature` (the Ed25519 signature of those bytes, unpadded base64url) and
//! `Aegis-Key-Id` (the key's `kid`, as `GET /api/v1/aegis/identity` lists it). A delivery that
//! fails is tried again with backoff (0.5 s, 1 s, 2 s, 4 s), then given up with an error log.
//! Never: makes the caller wait (a full queue drops the notice with an error log); lets a slow or
//! dead receiver hold up the others (each try has a 5 s deadline; retries wait in a list, not in
//! a sleep).
//!
//! Threads: `webhooks`, stopped and joined by [`Webhooks::stop`].

use crate::http_client::{self as client, Url};
use crate::thread::{self, lock, JoinOnDrop};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ed25519_dalek::{Signer, SigningKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Notices waiting for the thread.
const QUEUE: usize = 256;
/// Deliveries waiting for a retry at most.
const MAX_RETRYING: usize = 1024;
/// Tries per delivery.
const TRIES: u32 = 5;
/// Bounds one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The header with the signature.
pub(crate) const SIGNATURE_HEADER: &str = "Aegis-Signature";
/// The header naming the signing key.
pub(crate) const KEY_ID_HEADER: &str = "Aegis-Key-Id";

struct Delivery {
    url: String,
    body: Vec<u8>,
    tries: u32,
    due: Instant,
}

/// The running `webhooks` thread.
pub(crate) struct Webhooks {
    tx: Mutex<Option<Sender<Delivery>>>,
    thread: Mutex<Option<JoinOnDrop<()>>>,
    /// Checked between deliveries, so a stop does not wait for a dead receiver's queue.
    stopping: Arc<AtomicBool>,
}

impl Webhooks {
    /// Starts the thread; notices are signed with `key`, named `kid`.
    pub(crate) fn start(key: SigningKey, kid: String) -> std::io::Result<Webhooks> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let thread = thread::spawn("webhooks", move || run(&rx, &key, &kid, &flag))?;
        Ok(Webhooks {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stopping,
        })
    }

    /// Queues `body` for each of `urls`; never waits.
    pub(crate) fn send(&self, urls: &[String], body: &[u8]) {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else { return };
        for url in urls {
            let delivery = Delivery {
                url: url.clone(),
                body: body.to_vec(),
                tries: 0,
                due: Instant::now(),
            };
            if let Err(TrySendError::Full(_)) = tx.try_send(delivery) {
                log::error!("webhook queue full: a notice was dropped");
            }
        }
    }

    /// Stops taking notices and joins the thread (deliveries still waiting are given up).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            t.join();
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(rx: &Receiver<Delivery>, key: &SigningKey, kid: &str, stopping: &AtomicBool) {
    let mut waiting: Vec<Delivery> = Vec::new();
    loop {
        let next = waiting.iter().map(|d| d.due).min();
        let wait = next.map_or(Duration::from_secs(1), |t| {
            t.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(delivery) if waiting.len() < MAX_RETRYING => waiting.push(delivery),
            Ok(_) => log::error!("webhooks: too many deliveries waiting; a notice was dropped"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let (due, later): (Vec<Delivery>, Vec<Delivery>) =
            waiting.drain(..).partition(|d| d.due <= now);
        waiting = later;
        for mut delivery in due {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            match deliver(&delivery, key, kid) {
                Ok(()) => {}
                Err(why) if delivery.tries + 1 < TRIES => {
                    delivery.tries += 1;
                    let backoff = Duration::from_millis(500) * 2u32.pow(delivery.tries - 1);
                    log::warn!(
                        "webhook {}: {why}; retry {} in {} ms",
                        shown(&delivery.url),
                        delivery.tries,
                        backoff.as_millis()
                    );
                    delivery.due = Instant::now() + backoff;
                    waiting.push(delivery);
                }
                Err(why) => log::error!(
                    "webhook {}: {why}; given up after {TRIES} tries",
                    shown(&delivery.url)
                ),
            }
        }
    }
}

fn deliver(delivery: &Delivery, key: &SigningKey, kid: &str) -> Result<(), String> {
    let url = Url::parse(&delivery.url).map_err(|e| e.to_string())?;
    let signature = URL_SAFE_NO_PAD.encode(key.sign(&delivery.body).to_bytes());
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        (SIGNATURE_HEADER.to_owned(), signature),
        (KEY_ID_HEADER.to_owned(), kid.to_owned()),
    ];
    let deadline = Instant::now() + TRY_TIMEOUT;
    let mut response = client::send(
        &url,
        "POST",
        &headers,
        &delivery.body,
        TRY_TIMEOUT,
        Some(deadline),
    )
    .map_err(|e| e.to_string())?;
    let _ = response.read_all(64 * 1024);
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(format!("answered HTTP {}", response.status))
    }
}

/// A URL for the log: scheme, host and path, never a query or a user:password (either may
/// carry a secret).
fn shown(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = no_query.split_once("://").unwrap_or(("", no_query));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}{path}")
        .chars()
        .take(200)
        .collect()
}

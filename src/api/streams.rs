//! Server-initiated event streams: the answer to `GET /mcp/{workspace}` with a session.
//!
//! Owns: the `http-streams` thread and every open GET stream. A worker writes a stream's head
//! and hands the stream over; this thread waits on the list-change queues of all the sessions
//! with a stream (crossbeam `Select`), writes each change as an event, keeps idle streams alive
//! with a comment every [`KEEPALIVE`] (which also finds clients that went away), and ends a
//! stream when its session ends (the merger drops the queue's sender), when the session opens a
//! newer stream, when its agent opens more than [`MAX_STREAMS_PER_AGENT`] (the oldest ends), when
//! a write fails, or at shutdown.
//! Never: holds a worker for a stream's life; keeps more than one stream per session or more than
//! [`MAX_STREAMS`] in all; waits on a write longer than the HTTP front's answer queue allows (a
//! stream's part waits at most 5 s for room; the front closes a connection whose client does not
//! read).
//!
//! Threads: `http-streams`, ended by [`Streams::stop`] (which closes every stream) and joined.

use super::sse;
use crate::http::{After, Request, Stream};
use crate::thread::{self, lock, JoinOnDrop};
use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An idle stream gets a comment this often.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Open streams at most (each also holds one of the front's connections).
const MAX_STREAMS: usize = 1024;
/// Open streams of one agent at most: a newer one ends its oldest, so one agent's streams
/// cannot fill the connections of its address.
const MAX_STREAMS_PER_AGENT: usize = 8;
/// Streams handed over but not yet taken by the thread.
const HANDOVER_QUEUE: usize = 64;

/// Why a stream could not be opened.
#[derive(Debug)]
pub(super) enum OpenError {
    /// The handover queue is full or the thread has stopped.
    Busy,
}

/// A stream whose head is written, handed to the thread.
pub(super) struct NewStream {
    /// The session's id: a newer stream of the same session replaces this one.
    pub(super) session: String,
    /// The session's agent (its streams are capped).
    pub(super) agent: String,
    /// The session's list-change queue.
    pub(super) notes: Receiver<Vec<u8>>,
    /// The answer's body (the head is out).
    pub(super) writer: Stream,
    /// Set while the stream is open (the session counts as in use).
    pub(super) streaming: Arc<AtomicBool>,
    /// Run once the stream ends, whatever ends it (a 2026-07-28 listen is ended at the gate).
    pub(super) on_end: Option<OnEnd>,
}

/// What a stream's end tells.
pub(super) type OnEnd = Box<dyn FnOnce() + Send>;

/// The running `http-streams` thread.
pub(super) struct Streams {
    handover: Mutex<Option<Sender<NewStream>>>,
    thread: Mutex<Option<JoinOnDrop<()>>>,
}

impl Streams {
    pub(super) fn start() -> io::Result<Streams> {
        let (tx, rx) = crossbeam_channel::bounded(HANDOVER_QUEUE);
        let thread = thread::spawn("http-streams", move || run(&rx))?;
        Ok(Streams {
            handover: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Starts `request`'s answer, a session's event stream (the connection closes with it), and
    /// hands the stream to the thread.
    pub(super) fn open_request(
        &self,
        request: Request,
        session: String,
        agent: String,
        notes: Receiver<Vec<u8>>,
        streaming: Arc<AtomicBool>,
        on_end: Option<OnEnd>,
    ) {
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ];
        let writer = request.stream(200, &headers, After::Close);
        let stream = NewStream {
            session,
            agent,
            notes,
            writer,
            streaming,
            on_end,
        };
        if let Err((OpenError::Busy, on_end)) = self.open_or_give_back(stream) {
            log::warn!("the event stream thread is busy or stopped; a GET stream ends at once");
            if let Some(on_end) = on_end {
                on_end();
            }
        }
    }

    /// Hands a stream over; on error its end is given back, to be told.
    fn open_or_give_back(&self, mut stream: NewStream) -> Result<(), (OpenError, Option<OnEnd>)> {
        let on_end = stream.on_end.take();
        let handover = lock(&self.handover);
        let Some(tx) = handover.as_ref() else {
            return Err((OpenError::Busy, on_end));
        };
        stream.on_end = on_end;
        tx.try_send(stream).map_err(|e| match e {
            TrySendError::Full(mut s) | TrySendError::Disconnected(mut s) => {
                (OpenError::Busy, s.on_end.take())
            }
        })
    }

    /// Hands a stream over; on error the caller still owns nothing (the writer is dropped).
    #[cfg(test)]
    pub(super) fn open(&self, stream: NewStream) -> Result<(), OpenError> {
        let handover = lock(&self.handover);
        let tx = handover.as_ref().ok_or(OpenError::Busy)?;
        tx.try_send(stream).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => OpenError::Busy,
        })
    }

    /// Ends every stream (each gets its end of stream) and joins the thread.
    pub(super) fn stop(&self) {
        lock(&self.handover).take();
        if let Some(thread) = lock(&self.thread).take() {
            thread.join();
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Open {
    session: String,
    agent: String,
    opened: Instant,
    notes: Receiver<Vec<u8>>,
    writer: Stream,
    last_write: Instant,
    streaming: Arc<AtomicBool>,
    on_end: Option<OnEnd>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.streaming.store(false, Ordering::SeqCst);
        if let Some(on_end) = self.on_end.take() {
            on_end();
        }
    }
}

impl Open {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.send(data)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// The end of the stream; the connection closes with it.
    fn end(mut self) {
        self.writer.end();
    }
}

/// What the wait returned.
enum Woke {
    Handover(Option<NewStream>),
    Note(usize, Option<Vec<u8>>),
    Timeout,
}

fn run(handover: &Receiver<NewStream>) {
    let mut open: Vec<Open> = Vec::new();
    loop {
        match wait(handover, &open) {
            Woke::Handover(Some(new)) => add(&mut open, new),
            Woke::Handover(None) => break, // Stopping.
            Woke::Note(i, Some(line)) => {
                if let Err(e) = open[i].write(&sse::event(&line)) {
                    log::debug!("event stream of a session ended: {e}");
                    open.swap_remove(i);
                }
            }
            // The session ended: the merger dropped its queue.
            Woke::Note(i, None) => open.swap_remove(i).end(),
            Woke::Timeout => {}
        }
        keep_alive(&mut open);
    }
    for stream in open {
        stream.end();
    }
}

fn wait(handover: &Receiver<NewStream>, open: &[Open]) -> Woke {
    let mut select = Select::new();
    select.recv(handover);
    for stream in open {
        select.recv(&stream.notes);
    }
    let oldest = open.iter().map(|s| s.last_write).min();
    let timeout = oldest.map_or(KEEPALIVE, |at| {
        (at + KEEPALIVE).saturating_duration_since(Instant::now())
    });
    let Ok(op) = select.select_timeout(timeout) else {
        return Woke::Timeout;
    };
    match op.index() {
        0 => Woke::Handover(op.recv(handover).ok()),
        i => Woke::Note(i - 1, op.recv(&open[i - 1].notes).ok()),
    }
}

fn add(open: &mut Vec<Open>, new: NewStream) {
    if let Some(i) = open.iter().position(|s| s.session == new.session) {
        open.swap_remove(i).end();
    }
    new.streaming.store(true, Ordering::SeqCst);
    let of_agent: Vec<(Instant, usize)> = open
        .iter()
        .enumerate()
        .filter(|(_, s)| s.agent == new.agent)
        .map(|(i, s)| (s.opened, i))
        .collect();
    if of_agent.len() >= MAX_STREAMS_PER_AGENT {
        if let Some(&(_, oldest)) = of_agent.iter().min() {
            log::info!(
                "an agent opened more than {MAX_STREAMS_PER_AGENT} event streams; its oldest ended"
            );
            open.swap_remove(oldest).end();
        }
    }
    let stream = Open {
        agent: new.agent,
        opened: Instant::now(),
        session: new.session,
        notes: new.notes,
        writer: new.writer,
        last_write: Instant::now(),
        streaming: new.streaming,
        on_end: new.on_end,
    };
    if open.len() >= MAX_STREAMS {
        log::warn!("{MAX_STREAMS} event streams are open; ending a new one at once");
        stream.end();
        return;
    }
    open.push(stream);
}

/// A comment on every stream idle for [`KEEPALIVE`]; a stream whose write fails is dropped.
fn keep_alive(open: &mut Vec<Open>) {
    let now = Instant::now();
    open.retain_mut(|s| {
        now.saturating_duration_since(s.last_write) < KEEPALIVE
            || s.write(sse::KEEPALIVE_COMMENT).is_ok()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::{self, Received};

    fn open(streams: &Streams, session: &str) -> (Sender<Vec<u8>>, Received) {
        let (tx, notes) = crossbeam_channel::bounded(1);
        let (writer, out) = testing::stream();
        let new = NewStream {
            session: session.into(),
            agent: "agent".into(),
            notes,
            writer,
            streaming: Arc::default(),
            on_end: None,
        };
        assert!(streams.open(new).is_ok());
        (tx, out)
    }

    #[test]
    fn a_note_becomes_a_chunked_event_and_a_dropped_queue_ends_the_stream() {
        let streams = Streams::start().unwrap();
        let (tx, out) = open(&streams, "s1");
        tx.send(b"{\"n\":1}".to_vec()).unwrap();
        drop(tx);
        // The end of stream is the thread's answer to the dropped queue; stop() joins after it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.text().ends_with("0\r\n\r\n") {
            assert!(Instant::now() < deadline, "{:?}", out.text());
            std::thread::yield_now();
        }
        let text = out.text();
        assert!(
            text.starts_with("1e\r\nevent: message\ndata: {\"n\":1}\n\n\r\n"),
            "{text:?}"
        );
        streams.stop();
    }

    #[test]
    fn a_newer_stream_of_a_session_replaces_the_older_and_stop_ends_all() {
        let streams = Streams::start().unwrap();
        let (_tx1, first) = open(&streams, "s1");
        let (_tx2, second) = open(&streams, "s1");
        let (_tx3, other) = open(&streams, "s2");
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.text() != "0\r\n\r\n" {
            assert!(Instant::now() < deadline, "{:?}", first.text());
            std::thread::yield_now();
        }
        assert_eq!(second.text(), "");
        streams.stop();
        assert_eq!(second.text(), "0\r\n\r\n");
        assert_eq!(other.text(), "0\r\n\r\n");
        assert!(matches!(
            streams.open(NewStream {
                session: "s3".into(),
                agent: "agent".into(),
                notes: crossbeam_channel::bounded(1).1,
                writer: testing::stream().0,
                streaming: Arc::default(),
                on_end: None,
            }),
            Err(OpenError::Busy)
        ));
    }
}

//! A connection that stops answers every call it was handed: the calls still queued when its
//! loop ends, and those handed to it while it stops.

use super::connection::{run, Worker};
use super::handle::HandleInner;
use super::{CallRequest, Command, ConnHandle, ConnId, QueuedCall, Snapshot, Status};
use crate::config::{ServerConfig, Settings};
use crate::jsonrpc::{Id, Responder, Sink};
use crossbeam_channel::Receiver;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn call(id: u64, sink: &Sink) -> CallRequest {
    CallRequest {
        responder: Responder::new(Id::from_u64(id), sink.clone()),
        method: "tools/call".into(),
        params: BTreeMap::new(),
        meta: None,
        progress_token: None,
        timeout: Duration::from_secs(5),
        agent: None,
        client: crate::mcp::ClientCaps::default(),
        max_result_bytes: None,
        resume: None,
    }
}

/// The error lines that arrived, each as (id, code, message).
fn answers(rx: &Receiver<Vec<u8>>) -> Vec<(u64, i64, String)> {
    rx.try_iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            (
                v["id"].as_u64().unwrap(),
                v["error"]["code"].as_i64().unwrap(),
                v["error"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn calls_queued_or_handed_over_while_a_connection_stops_are_answered() {
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let (tx, rx) = crossbeam_channel::bounded(8);
    let (events_tx, _events) = crossbeam_channel::bounded(64);
    let handle = ConnHandle {
        inner: Arc::new(HandleInner {
            id: ConnId(1),
            name: "gone".into(),
            tx: tx.clone(),
            waker,
            snapshot: Mutex::new(Snapshot {
                name: "gone".into(),
                command: Vec::new(),
                pid: None,
                status: Status::Starting,
                last_heartbeat: None,
                restarts: 0,
                tools: 0,
                last_error: None,
            }),
            stop: AtomicBool::new(false),
            trusted: false,
            direct: std::sync::OnceLock::new(),
        }),
    };
    let cfg = ServerConfig {
        name: "gone".into(),
        // Never starts: the test is about the calls, not the child.
        command: "/nonexistent/aegis-gate-test-server".into(),
        args: Vec::new(),
        env: BTreeMap::new(),
        cwd: None,
        pass_agent: false,
        trusted: false,
        modern: false,
        remote: false,
    };
    let worker = Worker::new(
        cfg,
        Arc::new(Settings::default()),
        poll,
        rx,
        events_tx,
        handle.clone(),
        None,
    );
    let (out_tx, out) = crossbeam_channel::bounded(16);
    let sink = Sink::new(1, out_tx);
    // Handed over just before the stop flag was set: it sits in the queue.
    let queued = QueuedCall::new(Box::new(call(1, &sink)), "gone".into());
    assert!(tx.try_send(Command::Call(queued)).is_ok());
    handle.inner.stop.store(true, Ordering::SeqCst);
    // Handed over once the flag is set: answered at once, without the queue.
    handle.call(call(2, &sink));
    let stopped = (2, -32002, "server 'gone' is stopped".to_owned());
    assert_eq!(answers(&out), vec![stopped.clone()]);
    // The loop sees the flag, stops, and answers what was queued.
    run(Arc::new(Mutex::new(worker)));
    assert_eq!(answers(&out), vec![(1, stopped.1, stopped.2)]);
}

#[test]
fn a_call_dropped_in_the_queue_unhandled_is_answered_and_a_handled_one_is_not() {
    let (out_tx, out) = crossbeam_channel::bounded(16);
    let sink = Sink::new(1, out_tx);
    let (tx, rx) = crossbeam_channel::bounded(4);
    assert!(tx
        .try_send(Command::Call(QueuedCall::new(
            Box::new(call(1, &sink)),
            "gone".into()
        )))
        .is_ok());
    assert!(tx
        .try_send(Command::Call(QueuedCall::new(
            Box::new(call(2, &sink)),
            "gone".into()
        )))
        .is_ok());
    // The first is taken to be handled: nothing is answered for it here.
    let Ok(Command::Call(first)) = rx.try_recv() else {
        panic!("no call queued");
    };
    let taken = first.take();
    assert!(taken.is_some());
    assert_eq!(answers(&out), vec![]);
    // The second dies with the queue, unhandled.
    drop(rx);
    drop(tx);
    assert_eq!(
        answers(&out),
        vec![(2, -32002, "server 'gone' is stopped".to_owned())]
    );
}

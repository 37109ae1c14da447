//! A connection that stops answers every call it was handed: the calls still queued when its
//! loop ends, and those handed to it while it stops.

use super::connection::run;
use super::{CallRequest, Command, ConnectionManager, QueuedCall};
use crate::config::{Config, Settings};
use crate::jsonrpc::{Id, Responder, Sink};
use crossbeam_channel::Receiver;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
    let (events_tx, _events) = crossbeam_channel::bounded(64);
    let mut manager = ConnectionManager::new(Arc::new(Settings::default()), events_tx, None);
    // Never starts (no such program): the test is about the calls, not the child.
    let cfg = Config::demo(Path::new("/nonexistent/aegis-gate-test-server"))
        .servers
        .remove(0);
    // The worker is run on this thread below, once the calls are in place.
    let (handle, worker) = manager.prepare(&cfg).unwrap();
    let (out_tx, out) = crossbeam_channel::bounded(16);
    let sink = Sink::new(1, out_tx);
    // Handed over just before the stop flag was set: it sits in the queue.
    let queued = QueuedCall::new(Box::new(call(1, &sink)), "hello".into());
    assert!(handle.inner.tx.try_send(Command::Call(queued)).is_ok());
    handle.inner.stop.store(true, Ordering::SeqCst);
    // Handed over once the flag is set: answered at once, without the queue.
    handle.call(call(2, &sink));
    let stopped = (2, -32002, "server 'hello' is stopped".to_owned());
    assert_eq!(answers(&out), vec![stopped.clone()]);
    // The loop sees the flag, stops, and answers what was queued.
    run(worker);
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

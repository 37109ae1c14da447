use super::{progress_token_for_child, InFlight, PendingKind};
use crate::jsonrpc::{code, Id, Responder, SessionId, Sink};
use crate::mcp::ListKind;
use crossbeam_channel::Receiver;
use serde_json::value::RawValue;
use std::time::{Duration, Instant};

/// An agent's call from `session` with the agent's id `agent_id`, and the queue its answer
/// would arrive on.
fn agent_call(
    session: SessionId,
    agent_id: u64,
    progress_token: Option<&str>,
) -> (PendingKind, Receiver<Vec<u8>>, Sink) {
    let (tx, rx) = crossbeam_channel::bounded(16);
    let sink = Sink::new(session, tx);
    let kind = PendingKind::Agent {
        responder: Responder::new(Id::from_u64(agent_id), sink.clone()),
        progress_token: progress_token.map(|t| RawValue::from_string(t.to_owned()).unwrap()),
        client: crate::mcp::ClientCaps::default(),
        max_result_bytes: None,
        agent: None,
        resend: None,
        binding: None,
    };
    (kind, rx, sink)
}

fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}

#[test]
fn an_agent_call_is_found_by_the_id_the_child_saw() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let (call, rx, _sink) = agent_call(7, 42, None);
    let id = table.next_id();
    table.insert(id, call, t0 + Duration::from_secs(5));

    let Some(PendingKind::Agent { responder, .. }) = table.remove(id) else {
        panic!("the call is not under the id the child saw");
    };
    assert_eq!(responder.session(), 7);
    assert_eq!(responder.id(), &Id::from_u64(42));
    assert_eq!(table.n_agent_calls(), 0);

    // The answer goes out under the agent's own id.
    responder.result("{}");
    let line = String::from_utf8(rx.try_recv().unwrap()).unwrap();
    assert!(line.contains(r#""id":42"#), "{line}");

    // A second answer with the same id is late: nothing holds it any more.
    assert!(table.remove(id).is_none());
}

#[test]
fn ids_count_up_and_are_never_reused() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let first = table.next_id();
    assert_eq!(first, 1);
    table.insert(first, PendingKind::Initialize, t0);
    assert!(table.remove(first).is_some());
    // An id taken for a write that failed is skipped too.
    let skipped = table.next_id();
    table.clear();
    let after_restart = table.next_id();
    assert_eq!((skipped, after_restart), (2, 3));
    assert!(table.remove(first).is_none());
}

#[test]
fn the_gate_own_requests_do_not_count_toward_the_limit() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    for kind in [
        PendingKind::Initialize,
        PendingKind::ListPage(ListKind::Tools),
        PendingKind::Ping,
        PendingKind::Probe,
    ] {
        let id = table.next_id();
        table.insert(id, kind, t0);
    }
    assert_eq!(table.n_agent_calls(), 0);
    assert!(!table.is_full(1));

    let (call, _rx, _sink) = agent_call(1, 1, None);
    let agent = table.next_id();
    table.insert(agent, call, t0);
    assert_eq!(table.n_agent_calls(), 1);
    assert!(table.is_full(1));
    assert!(!table.is_full(2));

    // Answers to the gate's requests leave the agent call counted; its own answer frees the slot.
    assert!(matches!(table.remove(1), Some(PendingKind::Initialize)));
    assert!(table.is_full(1));
    assert!(table.remove(agent).is_some());
    assert!(!table.is_full(1));
}

#[test]
fn progress_tokens_map_to_the_child_and_back() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let _skipped = table.next_id();
    let (call, rx, _sink) = agent_call(3, 9, Some(r#""agent-token""#));
    let id = table.next_id();
    table.insert(id, call, t0 + Duration::from_secs(5));

    // Toward the child: the token is our request id, as a JSON number.
    let child_token = progress_token_for_child(id).unwrap();
    assert_eq!(child_token.get(), "2");

    // Back from the child: the agent's own token, the other fields kept.
    let params = format!(
        r#"{{"progressToken":{},"progress":1,"total":4}}"#,
        child_token.get()
    );
    let relay = table.relay_progress(&params).unwrap();
    assert_eq!(relay.responder.session(), 3);
    assert_eq!(relay.responder.id(), &Id::from_u64(9));
    assert_eq!(
        relay.params,
        r#"{"progress":1,"progressToken":"agent-token","total":4}"#
    );
    // Relaying answers nothing: the call stays in flight.
    assert!(rx.try_recv().is_err());
    assert_eq!(table.n_agent_calls(), 1);
}

#[test]
fn progress_that_belongs_to_no_agent_token_is_not_relayed() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let (without_token, _rx, _sink) = agent_call(1, 1, None);
    table.insert(1, without_token, t0);
    table.insert(2, PendingKind::Ping, t0);
    let (with_token, _rx2, _sink2) = agent_call(1, 2, Some("5"));
    table.insert(3, with_token, t0);

    for params in [
        r#"{"progressToken":1,"progress":1}"#, // the agent gave no token
        r#"{"progressToken":2,"progress":1}"#, // the gate's own request
        r#"{"progressToken":99,"progress":1}"#, // no such request
        r#"{"progressToken":"3","progress":1}"#, // not one of our ids: ours are numbers
        r#"{"progress":1}"#,
        r#"[3]"#,
    ] {
        assert!(table.relay_progress(params).is_none(), "{params}");
    }
    assert!(table.relay_progress(r#"{"progressToken":3}"#).is_some());
}

#[test]
fn expiry_returns_exactly_the_entries_due() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let (call, _rx, _sink) = agent_call(1, 1, None);
    table.insert(1, call, t0 + Duration::from_secs(1));
    table.insert(2, PendingKind::Ping, t0 + Duration::from_secs(2));
    table.insert(
        3,
        PendingKind::ListPage(ListKind::Tools),
        t0 + Duration::from_secs(3),
    );
    assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(1)));

    assert!(table.expired(t0).is_empty());
    // A deadline equal to now is due.
    assert_eq!(sorted(table.expired(t0 + Duration::from_secs(2))), [1, 2]);
    // Listing them does not take them out; the caller does, one by one.
    assert_eq!(sorted(table.expired(t0 + Duration::from_secs(2))), [1, 2]);
    assert!(table.remove(1).is_some());
    assert_eq!(table.expired(t0 + Duration::from_secs(2)), [2]);
    assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(2)));
    assert_eq!(sorted(table.expired(t0 + Duration::from_secs(60))), [2, 3]);
}

#[test]
fn cancelling_drops_the_session_own_call_unanswered() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    // Two sessions happen to use the same id for their calls.
    let (call_a, rx_a, _sink_a) = agent_call(1, 7, None);
    let (call_b, rx_b, sink_b) = agent_call(2, 7, None);
    table.insert(10, call_a, t0);
    table.insert(11, call_b, t0);

    assert_eq!(table.cancel(2, &Id::from_u64(7)), Some(11));
    assert_eq!(table.n_agent_calls(), 1);
    assert!(table.remove(11).is_none());
    // Cancelled: owed nothing, sent nothing, and settled for a transport waiting to close.
    assert!(rx_b.try_recv().is_err());
    assert!(sink_b.wait_idle(Duration::ZERO));

    assert_eq!(table.cancel(2, &Id::from_u64(7)), None);
    assert_eq!(table.cancel(1, &Id::from_u64(8)), None);
    assert!(rx_a.try_recv().is_err());
    assert!(matches!(table.remove(10), Some(PendingKind::Agent { .. })));
}

#[test]
fn a_failed_child_hands_back_every_agent_call_still_owed() {
    let t0 = Instant::now();
    let mut table = InFlight::new();
    let (call_a, rx_a, _sink_a) = agent_call(1, 1, None);
    let (call_b, rx_b, _sink_b) = agent_call(2, 2, None);
    table.insert(1, call_a, t0);
    table.insert(2, PendingKind::ListPage(ListKind::Tools), t0);
    table.insert(3, call_b, t0);

    let owed = table.take_agent_calls();
    let mut sessions: Vec<SessionId> = owed.iter().map(Responder::session).collect();
    sessions.sort_unstable();
    assert_eq!(sessions, [1, 2]);
    assert_eq!(table.n_agent_calls(), 0);
    assert_eq!(table.next_deadline(), None);
    assert!(table.remove(2).is_none());

    for responder in owed {
        responder.error(code::SERVER_UNAVAILABLE, "failed");
    }
    assert!(rx_a.try_recv().is_ok());
    assert!(rx_b.try_recv().is_ok());
}

#[test]
fn a_request_of_the_child_belongs_to_the_only_session_in_flight_or_to_the_token_it_names() {
    use super::Caller;
    let t0 = Instant::now();
    let mut table = InFlight::new();
    assert!(matches!(table.caller_of(None), Caller::None));
    let (a1, _rx1, _s1) = agent_call(1, 10, None);
    let (a2, _rx2, _s2) = agent_call(1, 11, None);
    table.insert(1, a1, t0 + Duration::from_secs(5));
    table.insert(2, a2, t0 + Duration::from_secs(5));
    assert!(matches!(table.caller_of(None), Caller::One { responder: r, .. } if r.session() == 1));
    let (b, _rx3, _s3) = agent_call(2, 10, None);
    table.insert(3, b, t0 + Duration::from_secs(5));
    assert!(matches!(table.caller_of(None), Caller::Many));
    assert!(
        matches!(table.caller_of(Some(3)), Caller::One { responder: r, call: 3, .. } if r.session() == 2)
    );
    assert!(matches!(table.caller_of(Some(99)), Caller::Many));
}

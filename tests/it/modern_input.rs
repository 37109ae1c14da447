//! A server's request (sampling, elicitation, roots) during a 2026-07-28 agent's call (issue
//! #13): the agent is never sent a request; its call is answered `input_required` with the
//! server's request under a key of the gate's and a `requestState`, and the retry that carries
//! the answer and that state (with a new id) gets the tool's result. A state the gate did not
//! hand out, or handed out already, is -32602; a capability the request did not declare is
//! refused to the server; over HTTP only the agent whose call it is may resume it.

use crate::support::modern::enveloped;
use crate::support::{assert_error, example, gate_bin, text, Gate, Serve};
use serde_json::{json, Value};
use std::time::Duration;

/// What a client answers to `sampling/createMessage`.
fn sampled(words: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": words},
           "model": "it-model", "stopReason": "endTurn"})
}

/// The one input request of an `input_required` answer: its key and the request.
fn only_input_request(answer: &Value) -> (String, Value) {
    let result = &answer["result"];
    assert_eq!(result["resultType"], "input_required", "{answer}");
    let requests = result["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("no inputRequests: {answer}"));
    assert_eq!(requests.len(), 1, "{answer}");
    let (key, request) = requests.iter().next().unwrap();
    assert!(
        request.get("id").is_none() && request.get("jsonrpc").is_none(),
        "an input request is a method and params only: {answer}"
    );
    (key.clone(), request.clone())
}

/// The `requestState` of an `input_required` answer, which is the gate's.
fn request_state(answer: &Value) -> String {
    let state = answer["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("no requestState: {answer}"));
    assert!(state.starts_with("aegis:"), "{answer}");
    state.to_owned()
}

/// `params` retried with `responses` and `state`.
fn retried(params: &Value, responses: Value, state: &str) -> Value {
    let mut params = params.clone();
    params["inputResponses"] = responses;
    params["requestState"] = json!(state);
    params
}

/// Whether `v` is a request from the gate to the client (which the era has none of).
fn is_request_to_client(v: &Value) -> bool {
    v.get("id").is_some() && v.get("method").is_some()
}

#[test]
fn a_modern_call_whose_server_asks_is_answered_input_required_and_its_retry_gets_the_result() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let sampling = json!({"sampling": {}});
    let params = enveloped(
        json!({"name": "a.ask_sampling", "arguments": {"prompt": "write a haiku"}}),
        sampling.clone(),
    );
    let asked = gate.request("tools/call", params.clone());
    let (key, request) = only_input_request(&asked);
    assert_eq!(request["method"], "sampling/createMessage", "{asked}");
    assert_eq!(
        request["params"]["messages"][0]["content"]["text"], "write a haiku",
        "{asked}"
    );
    let state = request_state(&asked);
    assert!(
        gate.expect_within("", Duration::ZERO, is_request_to_client)
            .is_none(),
        "the gate sent a modern client a request"
    );

    // The retry: the same params, a new id, the answer under the key, the state echoed.
    let answered = retried(
        &params,
        json!({ key.clone(): sampled("an old silent pond") }),
        &state,
    );
    let done = gate.request("tools/call", answered.clone());
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(done["result"].get("isError").is_none(), "{done}");
    assert!(text(&done).contains("an old silent pond"), "{done}");

    // A state is good for one retry; one the gate never handed out is refused alike.
    assert_error(
        &gate.request("tools/call", answered),
        -32602,
        "requestState",
    );
    for bogus in [
        "aegis:00000000000000000000000000000000",
        "someone-elses-state",
    ] {
        let refused = gate.request(
            "tools/call",
            retried(&params, json!({ key.clone(): sampled("x") }), bogus),
        );
        assert_error(&refused, -32602, "requestState");
    }

    // Elicitation and roots take the same way.
    for (tool, arguments, capability, method, answer, expected) in [
        (
            "a.ask_elicitation",
            json!({"message": "your name?"}),
            json!({"elicitation": {}}),
            "elicitation/create",
            json!({"action": "accept", "content": {"answer": "Ada"}}),
            "Ada",
        ),
        (
            "a.ask_roots",
            json!({}),
            json!({"roots": {}}),
            "roots/list",
            json!({"roots": [{"uri": "file:///work/project", "name": "project"}]}),
            "file:///work/project",
        ),
    ] {
        let params = enveloped(json!({"name": tool, "arguments": arguments}), capability);
        let asked = gate.request("tools/call", params.clone());
        let (key, request) = only_input_request(&asked);
        assert_eq!(request["method"], method, "{asked}");
        let state = request_state(&asked);
        let done = gate.request(
            "tools/call",
            retried(&params, json!({ key: answer }), &state),
        );
        assert_eq!(done["result"]["resultType"], "complete", "{done}");
        assert!(text(&done).contains(expected), "{done}");
    }
}

#[test]
fn a_capability_the_request_did_not_declare_is_refused_to_the_server() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let call = json!({"name": "a.ask_sampling", "arguments": {"prompt": "x"}});
    // Declared on one request: asked.
    let declared = gate.request(
        "tools/call",
        enveloped(call.clone(), json!({"sampling": {}})),
    );
    assert_eq!(
        declared["result"]["resultType"], "input_required",
        "{declared}"
    );
    // Capabilities are per request: the next one declares none, and its server is refused.
    let refused = gate.request("tools/call", enveloped(call, json!({})));
    assert_eq!(refused["result"]["resultType"], "complete", "{refused}");
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let said = text(&refused);
    assert!(
        said.contains("did not declare the sampling capability"),
        "{said}"
    );
    assert!(gate
        .expect_within("", Duration::ZERO, is_request_to_client)
        .is_none());
}

#[test]
fn over_http_only_the_agent_whose_call_waits_may_resume_it() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup_with(
        "ws-1",
        json!({"name": "a", "command": [gate_bin(), "example-server"]}),
    );
    let other = serve.agent("ws-1", "other")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let params = enveloped(
        json!({"name": "a.ask_sampling", "arguments": {"prompt": "over http"}}),
        json!({"sampling": {}}),
    );
    let call = |id: i64, params: &Value| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let asked = serve.modern("ws-1", &key, &call(1, &params));
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(
        asked.header("Content-Type").as_deref(),
        Some("application/json")
    );
    let asked = asked.json();
    let (input_key, request) = only_input_request(&asked);
    assert_eq!(request["method"], "sampling/createMessage", "{asked}");
    let state = request_state(&asked);
    let answered = retried(&params, json!({ input_key: sampled("mine") }), &state);

    let hijack = serve.modern("ws-1", &other, &call(2, &answered));
    assert_eq!(hijack.status, 400, "{}", hijack.body);
    assert_error(&hijack.json(), -32602, "requestState");
    assert!(!hijack.body.contains("mine"), "{}", hijack.body);

    // The park stays for its own agent.
    let own = serve.modern("ws-1", &key, &call(3, &answered));
    assert_eq!(own.status, 200, "{}", own.body);
    let done = own.json();
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(text(&done).contains("mine"), "{done}");
    assert!(own.header("Mcp-Session-Id").is_none(), "{}", own.headers);
}

#[test]
fn a_retry_without_the_answer_is_asked_again_and_a_wrong_key_is_not_an_answer() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let params = enveloped(
        json!({"name": "a.ask_sampling", "arguments": {"prompt": "patience"}}),
        json!({"sampling": {}}),
    );
    let asked = gate.request("tools/call", params.clone());
    let (key, _) = only_input_request(&asked);
    let state = request_state(&asked);
    // The state alone: the same request again, under the same key, with a new state.
    let again = gate.request("tools/call", retried(&params, json!({}), &state));
    let (same_key, request) = only_input_request(&again);
    assert_eq!(same_key, key, "{again}");
    assert_eq!(request["method"], "sampling/createMessage", "{again}");
    let newer = request_state(&again);
    assert_ne!(newer, state, "{again}");
    // An answer under a key the gate did not hand out answers nothing.
    let stray = gate.request(
        "tools/call",
        retried(&params, json!({"aegis-999-999": sampled("stray")}), &newer),
    );
    let (still, _) = only_input_request(&stray);
    assert_eq!(still, key, "{stray}");
    let latest = request_state(&stray);
    let done = gate.request(
        "tools/call",
        retried(&params, json!({ key: sampled("at last") }), &latest),
    );
    assert!(text(&done).contains("at last"), "{done}");
    assert!(!text(&done).contains("stray"), "{done}");
}

#[test]
fn a_request_state_resumes_only_the_request_it_was_handed_out_for() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let params = enveloped(
        json!({"name": "a.ask_sampling", "arguments": {"prompt": "the original"}}),
        json!({"sampling": {}}),
    );
    // The retry "reuses the original params": another method, tool or arguments with the state
    // is not that retry (the answer of the parked call would reach a request it is not for).
    let others = [
        (
            "tools/call",
            json!({"name": "a.echo", "arguments": {"message": "not the parked call"}}),
        ),
        (
            "tools/call",
            json!({"name": "a.ask_sampling", "arguments": {"prompt": "another prompt"}}),
        ),
        (
            "prompts/get",
            json!({"name": "a.greet", "arguments": {"name": "Ada"}}),
        ),
    ];
    for (method, other) in others {
        let asked = gate.request("tools/call", params.clone());
        let (key, _) = only_input_request(&asked);
        let state = request_state(&asked);
        let other = enveloped(other, json!({"sampling": {}}));
        let mismatched = gate.request(
            method,
            retried(&other, json!({ key: sampled("the parked answer") }), &state),
        );
        assert!(
            !mismatched.to_string().contains("the parked answer"),
            "{method} {other} with the state of the parked call got that call's result: \
             {mismatched}"
        );
        assert_error(&mismatched, -32602, "requestState");
    }
}

#[test]
fn an_expired_park_is_refused_and_its_modern_agent_is_sent_no_cancellation() {
    let mut gate = Gate::start(
        json!({ "a": example(&[]) }),
        json!({ "call_timeout_ms": 300 }),
    );
    let params = enveloped(
        json!({"name": "a.ask_sampling", "arguments": {"prompt": "too slow"}}),
        json!({"sampling": {}}),
    );
    let asked = gate.request("tools/call", params.clone());
    let (key, _) = only_input_request(&asked);
    let state = request_state(&asked);
    // The park's deadline passes: the server's call is cancelled (it says so on its stderr).
    gate.wait_for_log("example-server: cancelled request");
    // A later answer of the same server is the barrier for what the gate wrote before it.
    let echoed = gate.request(
        "tools/call",
        enveloped(
            json!({"name": "a.echo", "arguments": {"message": "barrier"}}),
            json!({}),
        ),
    );
    assert_eq!(text(&echoed), "barrier");
    // The era has no cancellation from server to client but a listen's end, and the key of an
    // input request is no request id of the client's.
    let cancelled = gate.expect_within("", Duration::ZERO, |v| {
        v["method"] == "notifications/cancelled"
    });
    assert!(
        cancelled.is_none(),
        "a modern client was sent a cancellation: {cancelled:?}"
    );
    let late = gate.request(
        "tools/call",
        retried(&params, json!({ key: sampled("late") }), &state),
    );
    assert_error(&late, -32602, "requestState");
}

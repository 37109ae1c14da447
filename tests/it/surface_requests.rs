//! A server's requests to the client (sampling, elicitation, roots) through the gate: sent to
//! the agent whose call the server serves, under an id of the gate's, answered back to the
//! server; refused when the agent did not declare the capability, when the policy denies it, or
//! when no call is in flight; over HTTP, only the session asked may answer.

use crate::support::http::{parse_response, read_until};
use crate::support::{call_request, example, gate_bin, text, Gate, Serve};
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

/// What a client answers to `sampling/createMessage`.
fn sampled(words: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": words},
           "model": "it-model", "stopReason": "endTurn"})
}

/// The response to the gate's request `id`.
fn answer(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn is_request(v: &Value, method: &str) -> bool {
    v["method"] == method && v.get("id").is_some()
}

/// Two example servers, `a` and `b`.
fn a_and_b() -> Value {
    json!({ "a": example(&[]), "b": example(&[]) })
}

#[test]
fn a_servers_requests_reach_the_agent_whose_call_it_serves_and_the_answers_go_back() {
    let mut gate = Gate::start(a_and_b(), json!({}));
    gate.initialize_declaring(json!({"sampling": {}, "elicitation": {}, "roots": {}}));

    gate.send(&call_request(
        "s1",
        "a.ask_sampling",
        json!({"prompt": "write a haiku"}),
    ));
    let ask = gate.expect("sampling/createMessage", |v| {
        is_request(v, "sampling/createMessage")
    });
    let id = ask["id"].clone();
    assert!(
        id.as_str().is_some_and(|s| s.starts_with("aegis-")),
        "the gate's own id, not the server's: {ask}"
    );
    assert_eq!(
        ask["params"]["messages"][0]["content"]["text"], "write a haiku",
        "{ask}"
    );
    assert!(
        gate.buffered_has_no_answer_to("s1"),
        "answered before asked"
    );
    gate.send(&answer(&id, sampled("an old silent pond")));
    let done = gate.response(&json!("s1"));
    assert!(text(&done).contains("an old silent pond"), "{done}");

    gate.send(&call_request(
        "e1",
        "b.ask_elicitation",
        json!({"message": "your name?"}),
    ));
    let ask = gate.expect("elicitation/create", |v| {
        is_request(v, "elicitation/create")
    });
    assert_ne!(ask["id"], id, "a fresh id per request");
    assert_eq!(ask["params"]["message"], "your name?", "{ask}");
    let accepted = json!({"action": "accept", "content": {"answer": "Ada"}});
    gate.send(&answer(&ask["id"], accepted));
    assert!(text(&gate.response(&json!("e1"))).contains("Ada"));

    gate.send(&call_request("r1", "a.ask_roots", json!({})));
    let ask = gate.expect("roots/list", |v| is_request(v, "roots/list"));
    let roots = json!({"roots": [{"uri": "file:///work/project", "name": "project"}]});
    gate.send(&answer(&ask["id"], roots));
    assert!(text(&gate.response(&json!("r1"))).contains("file:///work/project"));

    // An error the agent answers reaches the server as an error.
    gate.send(&call_request(
        "s2",
        "a.ask_sampling",
        json!({"prompt": "again"}),
    ));
    let ask = gate.expect("sampling/createMessage", |v| {
        is_request(v, "sampling/createMessage")
    });
    gate.send(&json!({"jsonrpc": "2.0", "id": ask["id"],
        "error": {"code": -1, "message": "the user declined"}}));
    let declined = gate.response(&json!("s2"));
    assert_eq!(declined["result"]["isError"], true, "{declined}");
    assert!(text(&declined).contains("the user declined"), "{declined}");
}

#[test]
fn an_agent_that_did_not_declare_sampling_is_never_asked_and_the_server_is_told_why() {
    let mut gate = Gate::ready(a_and_b(), json!({}));
    let answer = gate.call("a.ask_sampling", json!({"prompt": "x"}));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let said = text(&answer);
    assert!(
        said.contains("did not declare the sampling capability"),
        "{said}"
    );
    assert!(gate
        .expect_within("", Duration::ZERO, |v| v["method"]
            == "sampling/createMessage")
        .is_none());
    gate.wait_for_log("refused the server's sampling/createMessage");
}

#[test]
fn a_request_while_no_call_is_in_flight_is_refused_by_the_gate_and_reaches_no_agent() {
    let mut gate = Gate::start(a_and_b(), json!({}));
    gate.initialize_declaring(json!({"sampling": {}}));
    let later = text(&gate.call("a.ask_sampling_later", json!({"delay_ms": 0})));
    assert!(later.starts_with("will ask as srv-"), "{later}");
    gate.wait_for_log("refused the server's sampling/createMessage: no agent request is in flight");
    let outcome = text(&gate.call("a.last_request_outcome", json!({})));
    assert!(outcome.starts_with("error: -32603 "), "{outcome}");
    assert!(
        outcome.contains("no agent request is in flight at this server"),
        "{outcome}"
    );
    assert!(gate
        .expect_within("", Duration::ZERO, |v| v["method"]
            == "sampling/createMessage")
        .is_none());
}

#[test]
fn a_policy_rule_on_server_at_sampling_refuses_that_servers_requests_only() {
    let policy = json!({"rules": [{"match": "a.@sampling", "verdict": "deny"}]});
    let mut gate = Gate::start(a_and_b(), json!({ "policy": policy }));
    gate.initialize_declaring(json!({"sampling": {}}));
    let refused = gate.call("a.ask_sampling", json!({"prompt": "x"}));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(text(&refused).contains("policy denies"), "{refused}");
    assert!(gate
        .expect_within("", Duration::ZERO, |v| v["method"]
            == "sampling/createMessage")
        .is_none());
    // Another server is asked as usual.
    gate.send(&call_request(
        "b1",
        "b.ask_sampling",
        json!({"prompt": "y"}),
    ));
    let ask = gate.expect("sampling/createMessage", |v| {
        is_request(v, "sampling/createMessage")
    });
    gate.send(&answer(&ask["id"], sampled("from b")));
    assert!(text(&gate.response(&json!("b1"))).contains("from b"));
}

/// The value of the JSON string that follows `key` in `text` (`"id":"…"`).
fn string_after(text: &str, key: &str) -> String {
    let start = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        + key.len();
    let rest = &text[start..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[test]
fn over_http_each_session_is_asked_only_its_own_servers_requests_and_only_it_may_answer() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup_with(
        "ws-1",
        json!({"name": "a", "command": [gate_bin(), "example-server"]}),
    );
    let other_key = serve.agent("ws-1", "other")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let sampling = json!({"sampling": {}});
    let one = serve.client_declaring("ws-1", &key, sampling.clone());
    let two = serve.client_declaring("ws-1", &other_key, sampling);
    let mut ids = Vec::new();
    for (asker, bystander, word) in [(&one, &two, "first"), (&two, &one, "second")] {
        let mut stream = asker.start(&call_request(5, "a.ask_sampling", json!({"prompt": word})));
        let mut seen = String::new();
        read_until(&mut stream, &mut seen, "sampling/createMessage");
        read_until(&mut stream, &mut seen, word);
        let id = string_after(&seen, "\"id\":\"");
        assert!(id.starts_with("aegis-"), "{seen}");
        // The other session answers it: not taken (the server would return it at once).
        let hijack = bystander.send(&answer(&json!(id), sampled("hijacked")));
        assert_eq!(hijack.status, 202, "{}", hijack.body);
        let own = asker.send(&answer(&json!(id), sampled(&format!("from {word}"))));
        assert_eq!(own.status, 202, "{}", own.body);
        stream.read_to_string(&mut seen).unwrap();
        let result = parse_response(&seen).json();
        let said = text(&result);
        assert!(said.contains(&format!("from {word}")), "{seen}");
        assert!(!said.contains("hijacked"), "{seen}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

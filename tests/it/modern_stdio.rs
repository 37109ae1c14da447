//! MCP 2026-07-28 over stdio (issue #13): a request whose `_meta` carries the envelope is served
//! statelessly, without `initialize`: `server/discover`, every list, call, read and get with
//! the `resultType` (and on lists and reads `ttlMs` and `cacheScope`) the era requires; a broken
//! envelope and the methods the era removed are refused with its codes; a legacy session shares
//! the same stdio; `subscriptions/listen` is acknowledged first, then told its changes with its
//! `subscriptionId`, never a log message, until `notifications/cancelled` ends it.

use crate::support::modern::{self, subscription_of, SUBSCRIPTION_ID, VERSION};
use crate::support::{assert_error, example, listed_names, text, Gate};
use serde_json::{json, Value};
use std::time::Duration;

/// Two example servers, `a` and `b`.
fn a_and_b() -> Value {
    json!({ "a": example(&[]), "b": example(&[]) })
}

/// Asserts that `answer` is a result of the era, and a cacheable one when `cacheable`.
fn assert_complete(answer: &Value, cacheable: bool) -> &Value {
    let result = &answer["result"];
    assert_eq!(result["resultType"], "complete", "{answer}");
    if cacheable {
        assert!(result["ttlMs"].as_u64().is_some(), "no ttlMs: {answer}");
        let scope = result["cacheScope"].as_str().unwrap_or_default();
        assert!(
            scope == "private" || scope == "public",
            "no cacheScope: {answer}"
        );
    }
    result
}

#[test]
fn discover_answers_the_versions_the_childrens_capabilities_and_the_gate_without_initialize() {
    let mut gate = Gate::start(a_and_b(), json!({}));
    let found = gate.modern("server/discover", Value::Null);
    let result = assert_complete(&found, true);
    let versions = result["supportedVersions"].as_array().unwrap();
    assert_eq!(versions[0], VERSION, "{found}");
    assert!(versions.contains(&json!("2025-11-25")), "{found}");
    let caps = &result["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], true, "{found}");
    assert_eq!(caps["prompts"]["listChanged"], true, "{found}");
    assert_eq!(caps["resources"]["subscribe"], true, "{found}");
    assert_eq!(caps["resources"]["listChanged"], true, "{found}");
    assert!(caps["completions"].is_object(), "{found}");
    assert!(caps.get("tasks").is_none(), "{found}");
    let info = &result["_meta"]["io.modelcontextprotocol/serverInfo"];
    assert_eq!(info["name"], "aegis-gate", "{found}");
    assert!(info["version"].is_string(), "{found}");
    assert!(
        result.get("serverInfo").is_none(),
        "serverInfo goes in _meta: {found}"
    );

    // Servers with tools only: the gate offers tools only.
    let tools_only = json!({
        "a": example(&["--tools-only"]),
        "b": example(&["--tools-only"]),
    });
    let mut gate = Gate::start(tools_only, json!({}));
    let found = gate.modern("server/discover", Value::Null);
    let caps = assert_complete(&found, true)["capabilities"].clone();
    let offered: Vec<&String> = caps.as_object().unwrap().keys().collect();
    assert_eq!(offered, ["tools"], "{found}");
}

#[test]
fn every_request_of_the_era_is_served_without_initialize_and_says_complete() {
    let mut gate = Gate::start(a_and_b(), json!({}));
    let tools = gate.modern("tools/list", Value::Null);
    assert_complete(&tools, true);
    let names = listed_names(&tools);
    assert!(
        names.contains(&"a.echo".to_owned()) && names.contains(&"b.echo".to_owned()),
        "{names:?}"
    );

    let echoed = gate.modern(
        "tools/call",
        json!({"name": "a.echo", "arguments": {"message": "stateless"}}),
    );
    assert_complete(&echoed, false);
    assert_eq!(text(&echoed), "stateless");

    let prompts = gate.modern("prompts/list", Value::Null);
    let names: Vec<&str> = assert_complete(&prompts, true)["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["a.greet", "a.summary", "b.greet", "b.summary"],
        "{prompts}"
    );
    let greet = gate.modern(
        "prompts/get",
        json!({"name": "a.greet", "arguments": {"name": "Ada"}}),
    );
    assert_eq!(
        assert_complete(&greet, false)["messages"][0]["content"]["text"],
        "Hello, Ada.",
        "{greet}"
    );

    let resources = gate.modern("resources/list", Value::Null);
    let uris: Vec<&str> = assert_complete(&resources, true)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert_eq!(
        uris,
        ["example://readme", "example://counter"],
        "{resources}"
    );
    let readme = gate.modern("resources/read", json!({"uri": "example://readme"}));
    let contents = &assert_complete(&readme, true)["contents"][0];
    assert!(
        contents["text"]
            .as_str()
            .is_some_and(|t| t.contains("example server")),
        "{readme}"
    );
    let templates = gate.modern("resources/templates/list", Value::Null);
    assert_eq!(
        assert_complete(&templates, true)["resourceTemplates"][0]["uriTemplate"],
        "example://items/{id}",
        "{templates}"
    );
    let item = gate.modern("resources/read", json!({"uri": "example://items/7"}));
    assert_eq!(
        assert_complete(&item, true)["contents"][0]["text"],
        "item 7"
    );

    let completion = gate.modern(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "a.greet"},
               "argument": {"name": "style", "value": "c"}}),
    );
    assert_eq!(
        assert_complete(&completion, false)["completion"]["values"],
        json!(["casual", "cheerful"]),
        "{completion}"
    );

    // The era has no "resource not found" code of its own: a server's -32002 is -32602.
    let missing = gate.modern("resources/read", json!({"uri": "example://items/"}));
    assert_error(&missing, -32602, "Resource not found");
    // The gate's own refusals keep their codes.
    assert_error(
        &gate.modern("tools/call", json!({"name": "c.nope", "arguments": {}})),
        -32602,
        "c.nope",
    );
}

#[test]
fn a_broken_envelope_and_the_methods_the_era_removed_are_refused_with_its_codes() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let no_caps = gate.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": VERSION}}),
    );
    assert_error(
        &no_caps,
        -32602,
        "io.modelcontextprotocol/clientCapabilities",
    );

    let old = gate.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "1900-01-01",
                         "io.modelcontextprotocol/clientCapabilities": {}}}),
    );
    assert_error(&old, -32022, "Unsupported protocol version");
    let data = &old["error"]["data"];
    assert_eq!(data["requested"], "1900-01-01", "{old}");
    let supported = data["supported"].as_array().unwrap();
    assert_eq!(supported[0], VERSION, "{old}");
    assert!(supported.contains(&json!("2025-11-25")), "{old}");

    let numeric = gate.request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": 20260728,
                         "io.modelcontextprotocol/clientCapabilities": {}}}),
    );
    assert_error(&numeric, -32602, "protocolVersion");

    for (method, params) in [
        ("ping", Value::Null),
        (
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        ),
        ("logging/setLevel", json!({"level": "debug"})),
        ("resources/subscribe", json!({"uri": "example://counter"})),
        ("resources/unsubscribe", json!({"uri": "example://counter"})),
    ] {
        let refused = gate.modern(method, params);
        assert_error(&refused, -32601, method);
    }
    // None of it opened a session: an enveloped request still works, a bare one needs initialize.
    assert_complete(&gate.modern("tools/list", Value::Null), true);
    assert_error(
        &gate.request("tools/list", json!({})),
        -32004,
        "not initialized",
    );
}

#[test]
fn a_legacy_session_and_modern_requests_share_one_stdio() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    assert_complete(&gate.modern("tools/list", Value::Null), true);
    let init = gate.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");

    let legacy = gate.request("tools/list", json!({}));
    assert!(
        legacy["result"].get("resultType").is_none(),
        "a legacy answer is as it was: {legacy}"
    );
    let modern = gate.modern("tools/list", Value::Null);
    assert_complete(&modern, true);
    assert_eq!(listed_names(&legacy), listed_names(&modern));
    assert_eq!(gate.request("ping", json!({}))["result"], json!({}));
    assert_error(&gate.modern("ping", Value::Null), -32601, "ping");

    // Both at once: each answer to its own id, in its own era.
    gate.send(&modern::request(
        "m1",
        "tools/call",
        json!({"name": "a.echo", "arguments": {"message": "modern"}}),
    ));
    gate.send(&crate::support::call_request(
        "l1",
        "a.echo",
        json!({"message": "legacy"}),
    ));
    let m = gate.response(&json!("m1"));
    let l = gate.response(&json!("l1"));
    assert_eq!(text(&m), "modern");
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(text(&l), "legacy");
    assert!(l["result"].get("resultType").is_none(), "{l}");

    // A modern toggle changes the tools: the legacy session hears of it as it always did.
    let toggled = gate.modern("tools/call", json!({"name": "a.toggle", "arguments": {}}));
    assert_eq!(text(&toggled), "surprise is on");
    let changed = gate.expect_list_changed("the legacy session's list change");
    assert!(
        changed.get("params").is_none() || subscription_of(&changed).is_null(),
        "a legacy notice carries no subscription: {changed}"
    );
    assert!(gate.tool_names().contains(&"a.surprise".to_owned()));
}

/// Whether `v` is notice `method` of the listen `id`.
fn notice_of(v: &Value, method: &str, id: &Value) -> bool {
    v["method"] == method && subscription_of(v) == *id
}

#[test]
fn a_listen_is_acknowledged_first_then_told_what_it_asked_for_until_cancelled() {
    let mut gate = Gate::start(json!({ "a": example(&[]) }), json!({}));
    let listen = json!("listen-1");
    gate.send(&modern::request(
        &listen,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true,
            "resourceSubscriptions": ["example://counter", "other://nowhere"]}}),
    ));
    // The first message carrying the subscription is its acknowledgment.
    let first = gate.expect("the listen's first message", |v| {
        subscription_of(v) == json!("listen-1")
    });
    assert_eq!(
        first["method"], "notifications/subscriptions/acknowledged",
        "{first}"
    );
    assert!(first.get("id").is_none(), "{first}");
    assert_eq!(
        first["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["example://counter"]}),
        "what the gate honours: a URI no server routes is left out"
    );

    let toggled = gate.modern("tools/call", json!({"name": "a.toggle", "arguments": {}}));
    assert_eq!(text(&toggled), "surprise is on");
    let changed = gate.expect("tools/list_changed on the listen", |v| {
        notice_of(v, "notifications/tools/list_changed", &listen)
    });
    assert_eq!(
        changed["params"],
        json!({ "_meta": { SUBSCRIPTION_ID: "listen-1" } })
    );
    assert_eq!(
        text(&gate.modern("tools/call", json!({"name": "a.bump", "arguments": {}}))),
        "1"
    );
    let updated = gate.expect("resources/updated on the listen", |v| {
        notice_of(v, "notifications/resources/updated", &listen)
    });
    assert_eq!(updated["params"]["uri"], "example://counter", "{updated}");

    // A log message never goes on a listen (nor to a modern request that did not ask). A list
    // change after it is the barrier: the server writes both in order and the gate keeps it.
    let logged = gate.modern(
        "tools/call",
        json!({"name": "a.log", "arguments": {"level": "error", "message": "not for a listen"}}),
    );
    assert_eq!(text(&logged), "logged");
    gate.modern("tools/call", json!({"name": "a.toggle", "arguments": {}}));
    gate.expect("the second tools/list_changed", |v| {
        notice_of(v, "notifications/tools/list_changed", &listen)
    });
    assert!(
        gate.expect_within("", Duration::ZERO, |v| v["method"]
            == "notifications/message")
            .is_none(),
        "a log message reached the stdout of a modern client"
    );

    // Cancelled: the listen ends. A new listen (a numeric id, kept as a number) with the same
    // wishes is the barrier: what it is told, the ended one would have been told first.
    gate.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "listen-1", "reason": "done"}}),
    );
    let second = json!(77);
    gate.send(&modern::request(
        &second,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true,
            "resourceSubscriptions": ["example://counter"]}}),
    ));
    let ack = gate.expect("the second listen's acknowledgment", |v| {
        subscription_of(v) == second
    });
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    gate.modern("tools/call", json!({"name": "a.toggle", "arguments": {}}));
    gate.expect("tools/list_changed on the second listen", |v| {
        notice_of(v, "notifications/tools/list_changed", &second)
    });
    gate.modern("tools/call", json!({"name": "a.bump", "arguments": {}}));
    gate.expect("resources/updated on the second listen", |v| {
        notice_of(v, "notifications/resources/updated", &second)
    });
    let late = gate.expect_within("", Duration::ZERO, |v| subscription_of(v) == listen);
    assert!(late.is_none(), "a cancelled listen was told: {late:?}");
    assert!(
        gate.buffered_has_no_answer_to("listen-1"),
        "a cancelled listen is owed no answer"
    );
}

#[test]
fn a_listen_the_gate_cannot_keep_is_refused_not_acknowledged() {
    let mut gate = Gate::start(json!({ "a": example(&["--tools-only"]) }), json!({}));
    // The gate keeps 1024 listens; each of these is open (never cancelled).
    for i in 0..1024 {
        gate.send(&modern::request(
            i,
            "subscriptions/listen",
            json!({"notifications": {"toolsListChanged": true}}),
        ));
    }
    for i in 0..1024 {
        gate.expect("an acknowledgment", |v| subscription_of(v) == json!(i));
    }
    let over = json!("one-too-many");
    gate.send(&modern::request(
        &over,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    ));
    let first = gate.expect("the answer to the listen over the cap", |v| {
        v["id"] == over || subscription_of(v) == over
    });
    assert!(
        first.get("error").is_some(),
        "a listen the gate does not keep was acknowledged as if it were kept: {first}"
    );
    // The listens it keeps are told.
    gate.modern("tools/call", json!({"name": "a.toggle", "arguments": {}}));
    gate.expect("tools/list_changed on the last listen kept", |v| {
        notice_of(v, "notifications/tools/list_changed", &json!(1023))
    });
}

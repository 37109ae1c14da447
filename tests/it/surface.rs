//! The MCP surface beyond tools through a stdio gate (issue #12): the capabilities `initialize`
//! offers, prompts (merged names, paging across servers, routing), resources and templates
//! (merged by URI, the first server in configuration order serving a URI two list, the read
//! cap), subscriptions, completion, logging levels, and policies on prompts and resources.

use crate::support::{
    assert_error, error_of, example, gate, gate_bin, text, write_file, Gate, TempDir,
};
use serde_json::{json, Value};
use std::time::Duration;

/// Two example servers, `a` and `b` (`b` with `b_args`).
fn a_and_b(b_args: &[&str]) -> Value {
    json!({ "a": example(&[]), "b": example(b_args) })
}

/// The values of `key` in each of `items`.
fn field(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            i[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {i}"))
                .to_owned()
        })
        .collect()
}

/// The text of the first content of a `resources/read` answer.
fn read_text(answer: &Value) -> String {
    answer["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text contents in {answer}"))
        .to_owned()
}

/// The text of the first message of a `prompts/get` answer.
fn message_text(answer: &Value) -> String {
    answer["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no message text in {answer}"))
        .to_owned()
}

fn read(gate: &mut Gate, uri: &str) -> Value {
    gate.request("resources/read", json!({ "uri": uri }))
}

/// Whether a message is a log message whose data is `data`.
fn log_message(v: &Value, data: &str) -> bool {
    v["method"] == "notifications/message" && v["params"]["data"] == data
}

#[test]
fn initialize_offers_the_surface_the_children_offer_and_only_tools_when_none_does() {
    let mut gate = Gate::start(a_and_b(&["--tools-only"]), json!({}));
    let caps = gate.initialize()["result"]["capabilities"].clone();
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");
    assert_eq!(caps["prompts"]["listChanged"], true, "{caps}");
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
    assert_eq!(caps["resources"]["listChanged"], true, "{caps}");
    assert!(caps["completions"].is_object(), "{caps}");
    assert!(caps["logging"].is_object(), "{caps}");

    let tools_only = json!({
        "a": example(&["--tools-only"]),
        "b": example(&["--tools-only"]),
    });
    let mut gate = Gate::start(tools_only, json!({}));
    let caps = gate.initialize()["result"]["capabilities"].clone();
    let offered: Vec<&String> = caps.as_object().unwrap().keys().collect();
    assert_eq!(offered, ["tools"], "{caps}");
    let names = gate.tool_names();
    assert!(names.contains(&"a.echo".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with(".bump")),
        "the surface's tools are not offered: {names:?}"
    );
}

#[test]
fn prompts_of_two_servers_are_listed_by_merged_name_and_paged_across_servers() {
    // The gate pages by one; `b` pages its own list by one too, which the gate follows.
    let mut gate = Gate::ready(a_and_b(&["--page-size", "1"]), json!({ "page_size": 1 }));
    let first = gate.request("prompts/list", json!({}));
    assert_eq!(
        first["result"]["prompts"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    assert!(first["result"]["nextCursor"].is_string(), "{first}");
    let prompts = gate.list_all("prompts/list", "prompts");
    assert_eq!(
        field(&prompts, "name"),
        ["a.greet", "a.summary", "b.greet", "b.summary"]
    );
    // The definition is the server's, only the name changed.
    let greet = &prompts[0];
    assert_eq!(greet["title"], "Greeting", "{greet}");
    assert_eq!(greet["arguments"][0]["name"], "name", "{greet}");
    assert_eq!(greet["arguments"][0]["required"], true, "{greet}");
    assert_eq!(greet["arguments"][1]["name"], "style", "{greet}");
    assert_error(
        &gate.request("prompts/list", json!({ "cursor": "not-a-cursor" })),
        -32602,
        "cursor",
    );
}

#[test]
fn prompts_get_goes_to_its_server_under_the_servers_name_with_its_arguments() {
    let mut gate = Gate::ready(a_and_b(&["--poison"]), json!({}));
    let got = gate.request(
        "prompts/get",
        json!({"name": "a.greet", "arguments": {"name": "Ada", "style": "formal"}}),
    );
    assert_eq!(message_text(&got), "Hello, Ada, in a formal way.");
    assert_eq!(got["result"]["messages"][0]["role"], "user", "{got}");
    let plain = gate.request(
        "prompts/get",
        json!({"name": "b.greet", "arguments": {"name": "Bo"}}),
    );
    assert_eq!(message_text(&plain), "Hello, Bo.");
    // Only `b` (with --poison) has clean_prompt: routed there, refused for `a`.
    let clean = gate.request("prompts/get", json!({"name": "b.clean_prompt"}));
    assert_eq!(message_text(&clean), "Suggest a name for a pet.");
    // The server's own refusal reaches the agent as the server wrote it.
    let missing = gate.request(
        "prompts/get",
        json!({"name": "a.greet", "arguments": {"style": "casual"}}),
    );
    assert_error(&missing, -32602, "missing required argument: name");
    for unknown in ["a.nope", "greet", "c.greet", "a.clean_prompt"] {
        let refused = gate.request("prompts/get", json!({ "name": unknown }));
        assert_error(&refused, -32602, "unknown prompt");
        assert_error(&refused, -32602, unknown);
    }
    assert_error(
        &gate.request("prompts/get", json!({"arguments": {}})),
        -32602,
        "",
    );
}

#[test]
fn resources_are_merged_by_uri_and_a_uri_two_servers_list_is_read_from_the_first() {
    let mut gate = Gate::ready(a_and_b(&["--big-resource", "10"]), json!({}));
    let resources = gate.list_all("resources/list", "resources");
    assert_eq!(
        field(&resources, "uri"),
        ["example://readme", "example://counter", "example://big"],
        "each URI once, as the server wrote it"
    );
    assert_eq!(resources[0]["name"], "readme", "{}", resources[0]);
    let templates = gate.list_all("resources/templates/list", "resourceTemplates");
    assert_eq!(field(&templates, "uriTemplate"), ["example://items/{id}"]);
    gate.wait_for_log("resource \"example://readme\" is listed by servers a and b; a serves it");

    // Both count their own bumps: the counter read is a's, the first in configuration order.
    for expected in ["1", "2"] {
        assert_eq!(text(&gate.call("a.bump", json!({}))), expected);
    }
    assert_eq!(text(&gate.call("b.bump", json!({}))), "1");
    assert_eq!(read_text(&read(&mut gate, "example://counter")), "2");
    // A URI only b lists goes to b.
    assert_eq!(read_text(&read(&mut gate, "example://big")), "xxxxxxxxxx");
    // A URI of a template goes to the server of the template, unrewritten.
    let item = read(&mut gate, "example://items/7");
    assert_eq!(read_text(&item), "item 7");
    assert_eq!(item["result"]["contents"][0]["uri"], "example://items/7");
    // The server's "not found" reaches the agent as it wrote it.
    let missing = read(&mut gate, "example://items/");
    assert_error(&missing, -32002, "Resource not found");
    assert_eq!(
        missing["error"]["data"]["uri"], "example://items/",
        "{missing}"
    );
    // A URI no server lists nor templates: refused by the gate, naming it.
    assert_error(
        &read(&mut gate, "other://nowhere"),
        -32602,
        "other://nowhere",
    );
    assert_error(&gate.request("resources/read", json!({})), -32602, "");
}

#[test]
fn a_uri_two_servers_list_is_served_by_the_first_in_the_config_file() {
    // Written by hand: the order of the file is the point (a JSON value would sort the names).
    let dir = TempDir::new();
    let entry = format!(
        r#"{{"command": {:?}, "args": ["example-server"]}}"#,
        gate_bin()
    );
    let config = write_file(
        dir.path(),
        "mcp.json",
        &format!(r#"{{"mcpServers": {{"zeta": {entry}, "alpha": {entry}}}}}"#),
    );
    let mut cmd = gate(&["--log-level", "debug", "stdio", "--config"]);
    cmd.arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let mut gate = Gate::spawn(cmd, dir);
    gate.initialize();
    assert_eq!(text(&gate.call("zeta.bump", json!({}))), "1");
    let counter = read(&mut gate, "example://counter");
    let collisions: Vec<String> = gate
        .log()
        .lines()
        .filter(|l| l.contains("is listed by servers"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        read_text(&counter),
        "1",
        "example://counter is not read from zeta, the first server of the file: {collisions:?}"
    );
}

#[test]
fn a_resource_over_max_read_bytes_is_refused_naming_the_setting() {
    // 3 MB: under the line limit (4 MiB), over the default read cap (2 MiB).
    let servers = json!({ "a": example(&["--big-resource", "3000000"]) });
    let mut gate = Gate::ready(servers, json!({}));
    let (code, message) = error_of(&read(&mut gate, "example://big"));
    assert_ne!(code, 0, "{message}");
    for needle in ["max_read_bytes", "2097152", "'a'"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // The server is unharmed: a small resource still reads.
    assert!(read_text(&read(&mut gate, "example://readme")).contains("example server"));
}

#[test]
fn a_big_resource_passes_once_max_read_bytes_is_raised() {
    const MIB: u64 = 1024 * 1024;
    // 5 MB: over the default line limit (4 MiB) as well, so both are raised.
    let servers = json!({ "a": example(&["--big-resource", "5000000"]) });
    let mut capped = Gate::ready(servers.clone(), json!({ "max_line_bytes": 8 * MIB }));
    let (code, message) = error_of(&read(&mut capped, "example://big"));
    assert_ne!(code, 0, "{message}");
    assert!(message.contains("max_read_bytes"), "{message}");

    let raised = json!({ "max_line_bytes": 8 * MIB, "max_read_bytes": 8 * MIB });
    let mut gate = Gate::ready(servers, raised);
    let big = read_text(&read(&mut gate, "example://big"));
    assert_eq!(big.len(), 5_000_000);
    assert!(big.bytes().all(|b| b == b'x'));
}

#[test]
fn a_subscribed_resource_tells_of_its_updates_until_unsubscribed() {
    let mut gate = Gate::ready(json!({ "a": example(&[]) }), json!({}));
    let counter = json!({ "uri": "example://counter" });
    let updated = |v: &Value| {
        v["method"] == "notifications/resources/updated"
            && v["params"]["uri"] == "example://counter"
    };
    // Not subscribed: a bump tells nobody (a log message after it is the barrier: the server
    // writes both in order and the gate keeps it).
    assert_eq!(text(&gate.call("a.bump", json!({}))), "1");
    gate.call("a.log", json!({"level": "error", "message": "barrier 1"}));
    gate.expect("barrier 1", |v| log_message(v, "barrier 1"));
    assert!(gate.expect_within("", Duration::ZERO, updated).is_none());

    assert_eq!(
        gate.request("resources/subscribe", counter.clone())["result"],
        json!({})
    );
    assert_eq!(text(&gate.call("a.bump", json!({}))), "2");
    gate.expect("resources/updated", updated);
    assert_eq!(read_text(&read(&mut gate, "example://counter")), "2");

    assert_eq!(
        gate.request("resources/unsubscribe", counter)["result"],
        json!({})
    );
    assert_eq!(text(&gate.call("a.bump", json!({}))), "3");
    gate.call("a.log", json!({"level": "error", "message": "barrier 2"}));
    gate.expect("barrier 2", |v| log_message(v, "barrier 2"));
    assert!(
        gate.expect_within("", Duration::ZERO, updated).is_none(),
        "an update after unsubscribe"
    );

    assert_error(
        &gate.request("resources/subscribe", json!({"uri": "other://nowhere"})),
        -32602,
        "other://nowhere",
    );
    assert_error(
        &gate.request("resources/subscribe", json!({})),
        -32602,
        "uri",
    );
}

#[test]
fn completion_is_routed_by_its_ref_to_the_server_of_the_prompt_or_template() {
    let mut gate = Gate::ready(a_and_b(&[]), json!({}));
    let complete = |gate: &mut Gate, reference: Value, name: &str, value: &str| {
        gate.request(
            "completion/complete",
            json!({"ref": reference, "argument": {"name": name, "value": value}}),
        )
    };
    let styles = complete(
        &mut gate,
        json!({"type": "ref/prompt", "name": "a.greet"}),
        "style",
        "c",
    );
    assert_eq!(
        styles["result"]["completion"]["values"],
        json!(["casual", "cheerful"]),
        "{styles}"
    );
    let ids = complete(
        &mut gate,
        json!({"type": "ref/resource", "uri": "example://items/{id}"}),
        "id",
        "1",
    );
    assert_eq!(
        ids["result"]["completion"]["values"],
        json!(["1", "10"]),
        "{ids}"
    );
    let b = complete(
        &mut gate,
        json!({"type": "ref/prompt", "name": "b.greet"}),
        "style",
        "f",
    );
    assert_eq!(
        b["result"]["completion"]["values"],
        json!(["formal"]),
        "{b}"
    );
    for (reference, needle) in [
        (json!({"type": "ref/prompt", "name": "a.nope"}), "a.nope"),
        (json!({"type": "ref/prompt", "name": "greet"}), "greet"),
        (
            json!({"type": "ref/resource", "uri": "other://{x}"}),
            "other://{x}",
        ),
        (json!({"type": "ref/tool", "name": "a.echo"}), "ref.type"),
    ] {
        let refused = complete(&mut gate, reference, "style", "");
        assert_error(&refused, -32602, needle);
    }
}

#[test]
fn log_messages_reach_the_session_by_the_level_it_set_naming_their_server() {
    let mut gate = Gate::ready(json!({ "a": example(&[]) }), json!({}));
    // No level set: every message comes.
    gate.call("a.log", json!({"level": "debug", "message": "chatter"}));
    let chatter = gate.expect("a debug message", |v| log_message(v, "chatter"));
    assert_eq!(chatter["params"]["level"], "debug", "{chatter}");

    assert_eq!(
        gate.request("logging/setLevel", json!({"level": "warning"}))["result"],
        json!({})
    );
    gate.call("a.log", json!({"level": "info", "message": "quiet"}));
    gate.call("a.log", json!({"level": "error", "message": "loud"}));
    let loud = gate.expect("an error message", |v| log_message(v, "loud"));
    assert_eq!(loud["params"]["level"], "error", "{loud}");
    assert_eq!(loud["params"]["logger"], "a/example", "{loud}");
    // Messages keep their order: had "quiet" come, it would be here before "loud".
    assert!(gate
        .expect_within("", Duration::ZERO, |v| log_message(v, "quiet"))
        .is_none());

    for bad in [
        json!({"level": "loud"}),
        json!({"level": "WARNING"}),
        json!({"level": 3}),
        json!({}),
    ] {
        assert_error(
            &gate.request("logging/setLevel", bad),
            -32602,
            "params.level",
        );
    }
}

#[test]
fn a_policy_refuses_a_prompt_by_its_merged_name_and_a_resource_by_its_server_and_name() {
    let policy = json!({"rules": [
        {"match": "a.greet", "verdict": "deny"},
        {"match": "a.readme", "verdict": "deny"}]});
    let mut gate = Gate::ready(
        json!({ "a": example(&[]), "b": example(&["--tools-only"]) }),
        json!({ "policy": policy }),
    );
    let greet = json!({"name": "a.greet", "arguments": {"name": "Ada"}});
    let (code, message) = error_of(&gate.request("prompts/get", greet));
    assert_eq!(code, -32013, "{message}");
    assert!(message.contains("policy rule 1 (a.greet)"), "{message}");
    let completion = gate.request(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "a.greet"},
               "argument": {"name": "style", "value": ""}}),
    );
    assert_eq!(error_of(&completion).0, -32013, "{completion}");
    let (code, message) = error_of(&read(&mut gate, "example://readme"));
    assert_eq!(code, -32013, "{message}");
    assert!(message.contains("policy rule 2 (a.readme)"), "{message}");
    // What no rule names is served.
    let summary = gate.request("prompts/get", json!({"name": "a.summary"}));
    assert!(summary["result"]["messages"].is_array(), "{summary}");
    assert_eq!(read_text(&read(&mut gate, "example://counter")), "0");
}

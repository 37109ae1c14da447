//! The upstream MCP protocol over stdio: naming, routing, multiplexing, errors.

use crate::support::{
    assert_error, call_request, error_code, example, gate, initialize_request, pipe_through, text,
    Gate, TempDir,
};
use serde_json::{json, Value};
use std::time::Duration;

fn two_servers() -> Value {
    json!({
        "alpha": example(&[]),
        "beta": example(&["--page-size", "2", "--faults"]),
    })
}

#[test]
fn merged_names_route_to_the_right_child() {
    let mut gate = Gate::start(two_servers(), json!({ "page_size": 5 }));
    let init = gate.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "aegis-gate");
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);

    let names = gate.tool_names();
    for expected in [
        "alpha.echo",
        "alpha.add",
        "beta.echo",
        "beta.crash",
        "beta.pid",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "alpha.crash"),
        "alpha has no fault tools"
    );
    let mut sorted = names.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "no duplicates across pages");

    gate.assert_echo("alpha.echo", "hello");
    assert_eq!(text(&gate.call("beta.add", json!({"a": 2, "b": 3}))), "5");
    let alpha_pid = gate.call("beta.pid", json!({}));
    assert!(text(&alpha_pid).parse::<u32>().is_ok());
}

#[test]
fn protocol_versions_are_negotiated() {
    let mut gate = Gate::start(json!({ "alpha": example(&[]) }), json!({}));
    for (asked, answered) in [
        ("2025-06-18", "2025-06-18"),
        ("2024-11-05", "2024-11-05"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let res = gate.request(
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}}),
        );
        assert_eq!(res["result"]["protocolVersion"], answered, "asked {asked}");
    }
}

#[test]
fn fifty_concurrent_calls_with_colliding_ids_each_get_their_own_answer() {
    let mut gate = Gate::ready(two_servers(), json!({}));
    let mut expected = Vec::new();
    for i in 0..25u64 {
        // The same number as an integer id and as a string id, to the same and to different
        // children, with delays that make the answers come back out of order.
        for (id, server) in [(json!(i), "alpha"), (json!(i.to_string()), "beta")] {
            let ms = 5 + (i * 7919 + u64::from(server == "beta") * 31) % 200;
            gate.send(&call_request(
                &id,
                &format!("{server}.sleep"),
                json!({"ms": ms}),
            ));
            expected.push((id, ms));
        }
    }
    for (id, ms) in expected {
        let res = gate.response(&id);
        assert_eq!(text(&res), format!("slept {ms} ms"), "answer to id {id}");
    }
}

#[test]
fn a_slow_call_does_not_block_ping_or_other_calls() {
    let mut gate = Gate::ready(two_servers(), json!({}));
    gate.send(&call_request("slow", "alpha.sleep", json!({"ms": 3000})));
    assert_eq!(gate.request("ping", json!({}))["result"], json!({}));
    gate.assert_echo("alpha.echo", "fast");
    assert!(gate.buffered_has_no_answer_to("slow"));
    assert_eq!(text(&gate.response(&json!("slow"))), "slept 3000 ms");
}

#[test]
fn progress_is_relayed_with_the_agents_own_tokens() {
    let mut gate = Gate::ready(two_servers(), json!({}));
    for (id, token) in [(json!(1), json!("tok-a")), (json!(2), json!(7))] {
        gate.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "alpha.progress", "arguments": {"steps": 3, "interval_ms": 5},
                       "_meta": {"progressToken": token}}}));
    }
    for token in [json!("tok-a"), json!(7)] {
        for step in 1..=3 {
            let t = token.clone();
            let note = gate.expect("progress", move |v| {
                v["method"] == "notifications/progress"
                    && v["params"]["progressToken"] == t
                    && v["params"]["progress"] == step
            });
            assert_eq!(note["params"]["total"], 3);
        }
    }
    assert_eq!(text(&gate.response(&json!(1))), "done after 3 steps");
    assert_eq!(text(&gate.response(&json!(2))), "done after 3 steps");
}

#[test]
fn cancellation_reaches_the_child_with_its_own_id() {
    let mut gate = Gate::ready(two_servers(), json!({}));
    gate.send(&call_request("c1", "alpha.sleep", json!({"ms": 60000})));
    // The call has reached the child once a later call on the same child is answered.
    gate.assert_echo("alpha.echo", "x");
    gate.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": "c1", "reason": "user"}}),
    );
    gate.wait_for_log("example-server: cancelled request");
    // The child's id is the gate's own integer, not the agent's string.
    assert!(!gate.log().contains("cancelled request \"c1\""));
    assert!(gate
        .expect_within("answer to c1", Duration::from_millis(300), |v| v["id"]
            == "c1")
        .is_none());
}

#[test]
fn a_call_past_its_deadline_gets_an_error_and_the_child_a_cancel() {
    let mut gate = Gate::ready(
        json!({ "alpha": example(&[]) }),
        json!({ "call_timeout_ms": 300 }),
    );
    assert_error(
        &gate.call("alpha.sleep", json!({"ms": 30000})),
        -32001,
        "did not answer within 300 ms",
    );
    gate.wait_for_log("example-server: cancelled request");
    gate.assert_echo("alpha.echo", "still here");
}

#[test]
fn a_call_written_while_its_connection_sleeps_still_meets_its_deadline() {
    // With nothing in flight the call is written to the child by the thread that read it, while
    // the connection's own thread sleeps until its next heartbeat, a minute away: the call's
    // deadline must wake it.
    let mut gate = Gate::ready(
        json!({ "alpha": example(&[]) }),
        json!({ "call_timeout_ms": 300, "heartbeat_interval_ms": 60000 }),
    );
    gate.assert_echo("alpha.echo", "first");
    let started = std::time::Instant::now();
    let id = json!("late");
    gate.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "alpha.sleep", "arguments": {"ms": 30000}}}));
    let answer = gate
        .expect_within("the deadline's error", Duration::from_secs(10), |v| {
            v["id"] == "late"
        })
        .expect("the call's deadline passed without an answer");
    assert_error(&answer, -32001, "did not answer within 300 ms");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
}

#[test]
fn unknown_tools_and_bad_params_are_invalid_params() {
    let mut gate = Gate::ready(json!({ "alpha": example(&[]) }), json!({}));
    assert_error(&gate.call("alpha.nope", json!({})), -32602, "alpha.nope");
    let res = gate.call("echo", json!({}));
    assert_eq!(error_code(&res), -32602);
    let res = gate.request("tools/call", json!({"arguments": {}}));
    assert_eq!(error_code(&res), -32602);
    let res = gate.request("tools/call", json!([1, 2]));
    assert_eq!(error_code(&res), -32602);
    let res = gate.request("tools/list", json!({"cursor": "forged"}));
    assert_eq!(error_code(&res), -32602);
}

#[test]
fn requests_before_initialize_and_unknown_methods() {
    let mut gate = Gate::start(json!({ "alpha": example(&[]) }), json!({}));
    assert_eq!(gate.request("ping", json!({}))["result"], json!({}));
    assert_eq!(error_code(&gate.request("tools/list", json!({}))), -32004);
    assert_eq!(
        error_code(&gate.call("alpha.echo", json!({"message": "x"}))),
        -32004
    );
    assert_eq!(
        error_code(&gate.request("server/discover", json!({}))),
        -32601
    );
    assert_eq!(
        error_code(&gate.request("resources/list", json!({}))),
        -32004
    );
    assert_eq!(
        error_code(&gate.request("sampling/createMessage", json!({}))),
        -32601
    );
    gate.initialize();
    gate.assert_echo("alpha.echo", "x");
}

#[test]
fn malformed_input_gets_standard_errors_and_the_gate_keeps_serving() {
    let mut gate = Gate::ready(
        json!({ "alpha": example(&[]) }),
        json!({ "max_line_bytes": 4096 }),
    );
    gate.send_raw(b"{this is not json\n");
    let res = gate.expect("parse error", |v| v["error"]["code"] == -32700);
    assert_eq!(res["id"], Value::Null);
    gate.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]\n");
    gate.expect("batch refused", |v| {
        v["error"]["code"] == -32600 && v["id"].is_null()
    });
    gate.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}\n");
    gate.expect("float id refused", |v| v["error"]["code"] == -32600);
    gate.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":\"v1\",\"method\":\"ping\"}\n{\"jsonrpc\":\"1.0\",\"id\":\"v2\",\"method\":\"ping\"}\n");
    gate.expect("ping answered", |v| {
        v["id"] == "v1" && v["result"] == json!({})
    });
    gate.expect("wrong version refused", |v| {
        v["id"] == "v2" && v["error"]["code"] == -32600
    });
    let mut long =
        b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{\"pad\":\"".to_vec();
    long.resize(long.len() + 10_000, b'x');
    long.extend_from_slice(b"\"}}\n");
    gate.send_raw(&long);
    let res = gate.expect("over-long line refused", |v| v["error"]["code"] == -32600);
    assert!(res["error"]["message"].as_str().unwrap().contains("4096"));
    gate.assert_echo("alpha.echo", "alive");
}

#[test]
fn a_tool_list_change_is_announced_and_listed() {
    let mut gate = Gate::ready(json!({ "alpha": example(&[]) }), json!({}));
    assert!(!gate.tool_names().contains(&"alpha.surprise".to_owned()));
    assert_eq!(
        text(&gate.call("alpha.toggle", json!({}))),
        "surprise is on"
    );
    gate.expect_list_changed("list_changed");
    assert!(gate.tool_names().contains(&"alpha.surprise".to_owned()));
    assert_eq!(text(&gate.call("alpha.surprise", json!({}))), "surprise!");
}

#[test]
fn the_separator_is_configurable() {
    let mut gate = Gate::ready(
        json!({ "alpha": example(&[]) }),
        json!({ "separator": "__" }),
    );
    assert!(gate.tool_names().contains(&"alpha__echo".to_owned()));
    gate.assert_echo("alpha__echo", "x");
}

#[test]
fn provider_safe_names_route_exactly() {
    let mut gate = Gate::ready(
        json!({ "ex": example(&[]) }),
        json!({ "naming": "provider_safe" }),
    );
    let names = gate.tool_names();
    assert!(
        names.iter().all(|n| n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')),
        "{names:?}"
    );
    assert!(names.contains(&"ex__echo".to_owned()), "{names:?}");
    gate.assert_echo("ex__echo", "safe");
}

#[test]
fn a_child_sees_only_path_home_and_its_own_env() {
    let mut servers = json!({ "alpha": example(&[]) });
    servers["alpha"]["env"] = json!({ "OWN_VAR": "own value" });
    let mut gate = Gate::start_with_env(
        servers,
        json!({}),
        &[("AEGIS_TEST_GATE_ONLY", "gate secret")],
    );
    gate.initialize();
    let get =
        |gate: &mut Gate, name: &str| text(&gate.call("alpha.get_env", json!({ "name": name })));
    assert_eq!(get(&mut gate, "AEGIS_TEST_GATE_ONLY"), "(unset)");
    assert_eq!(get(&mut gate, "OWN_VAR"), "own value");
    assert_ne!(get(&mut gate, "PATH"), "(unset)");
}

#[test]
fn a_bad_config_is_a_clear_startup_error() {
    let dir = TempDir::new();
    let path = dir.path().join("mcp.json");
    for (body, needle) in [
        (
            json!({"mcpServers": {"bad name": {"command": "x"}}}),
            "server name",
        ),
        (
            json!({"mcpServers": {"a.b": {"command": "x"}}}),
            "may contain only",
        ),
        (
            json!({"mcpServers": {"a_b": {"command": "x"}}, "aegis": {"separator": "_"}}),
            "separator",
        ),
        (
            json!({"mcpServers": {"ok": {"args": []}}}),
            "no \"command\"",
        ),
        (
            json!({"mcpServers": {"ok": {"command": "x"}}, "aegis": {"typo": 1}}),
            "unknown field",
        ),
    ] {
        std::fs::write(&path, body.to_string()).unwrap();
        let out = gate(&["stdio", "--config"]).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{body}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

#[test]
fn piped_requests_are_all_answered_before_the_gate_exits() {
    // What the README's demo does: write everything, close stdin, read the answers.
    let dir = TempDir::new();
    let mut cmd = gate(&["stdio", "--demo", "--data-dir"]);
    cmd.arg(dir.path());
    let lines = [
        initialize_request(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        call_request(3, "hello.sleep", json!({"ms": 200})),
    ];
    let out = pipe_through(cmd, &lines);
    assert!(out.status.success());
    let answers: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    let tools = answers[1]["result"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "world.tool_1"));
    assert_eq!(text(&answers[2]), "slept 200 ms");
}

#[test]
fn a_call_cancelled_while_startup_holds_it_is_never_run() {
    let servers = json!({ "fast": example(&[]), "slow": example(&["--startup-delay-ms", "1500"]) });
    let mut gate = Gate::start(servers, json!({}));
    gate.send(
        &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                      "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
    );
    gate.send(&call_request(
        "held",
        "fast.echo",
        json!({"message": "must not run"}),
    ));
    gate.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": "held"}}),
    );
    gate.response(&json!("init"));
    gate.assert_echo("fast.echo", "after");
    assert!(gate.buffered_has_no_answer_to("held"));
}

/// Small answers leave from the thread that holds them when stdout has room, large ones through
/// the writer thread: whichever way, a call's progress comes before its answer, in step order.
#[test]
fn progress_and_answers_keep_their_order_on_stdout_under_load() {
    let servers = json!({ "alpha": example(&["--extra-tools", "40"]) });
    progress_keeps_its_order(Gate::ready(servers, json!({})));
}

/// The same with stdout a Unix stream socket, as Node's `child_process` gives it.
#[test]
fn progress_and_answers_keep_their_order_on_a_socket_stdout_under_load() {
    let servers = json!({ "alpha": example(&["--extra-tools", "40"]) });
    progress_keeps_its_order(Gate::ready_over_socket(servers, json!({})));
}

fn progress_keeps_its_order(mut gate: Gate) {
    // Within `max_in_flight` (64), so every call runs.
    let calls = 60;
    for n in 0..calls {
        gate.send(
            &json!({"jsonrpc": "2.0", "id": format!("p{n}"), "method": "tools/call",
            "params": {"name": "alpha.progress", "arguments": {"steps": 6, "interval_ms": 0},
                       "_meta": {"progressToken": n}}}),
        );
        // Over 4 KiB: these go through the queue, between the small lines.
        gate.send(&json!({"jsonrpc": "2.0", "id": format!("l{n}"), "method": "tools/list"}));
    }
    let mut steps = vec![0; calls];
    let mut answered = vec![false; calls];
    let mut lists = 0;
    while lists < calls || answered.iter().any(|a| !a) {
        let raw = gate.expect_raw("the next line", |_| true);
        let line: Value = serde_json::from_str(&raw).expect("every line is JSON");
        if line["method"] == "notifications/progress" {
            let n = line["params"]["progressToken"].as_u64().expect("token") as usize;
            assert!(!answered[n], "progress of call {n} after its answer");
            steps[n] += 1;
            assert_eq!(
                line["params"]["progress"], steps[n],
                "call {n}'s steps in order"
            );
        } else if let Some(id) = line["id"].as_str() {
            if let Some(n) = id.strip_prefix('p') {
                let n: usize = n.parse().expect("id");
                assert_eq!(steps[n], 6, "call {n} answered before its last step");
                assert_eq!(text(&line), "done after 6 steps");
                answered[n] = true;
            } else {
                assert!(raw.len() > 4096, "a tools/list answer is over PIPE_BUF");
                lists += 1;
            }
        }
    }
}

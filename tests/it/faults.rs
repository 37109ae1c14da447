//! Supervision: children that crash, hang, flood or lie, and teardown that leaves nothing behind.

use crate::support::{
    assert_error, example, group_of, live_group_members, process_exists, text, Gate,
};
use serde_json::{json, Value};
use std::time::Duration;

/// Fast supervision so faults are found and mended within a test's patience. Heartbeats stay slow
/// enough that a busy child on a loaded machine is not taken for a hung one; the hang test sets its
/// own.
fn fast() -> Value {
    json!({
        "heartbeat_interval_ms": 2000,
        "heartbeat_misses": 2,
        "backoff_min_ms": 50,
        "backoff_max_ms": 200,
        "breaker_failures": 50,
        "teardown_grace_ms": 500,
    })
}

fn faulty_and_healthy() -> Value {
    json!({ "faulty": example(&["--faults"]), "healthy": example(&[]) })
}

fn pid_of(gate: &mut Gate, server: &str) -> u32 {
    text(&gate.call(&format!("{server}.pid"), json!({})))
        .parse()
        .unwrap()
}

#[test]
fn a_child_that_crashes_mid_call_errors_that_call_and_comes_back() {
    let mut gate = Gate::ready(faulty_and_healthy(), fast());
    let before = pid_of(&mut gate, "faulty");
    let group = group_of(before).unwrap();
    assert_error(&gate.call("faulty.crash", json!({})), -32002, "exited");
    gate.assert_echo("healthy.echo", "ok");
    let after: u32 = text(&gate.call_until_ok("faulty.pid", json!({})))
        .parse()
        .unwrap();
    assert_ne!(before, after, "a new child serves");
    assert!(!process_exists(before));
    assert_eq!(live_group_members(group), Vec::<u32>::new());
}

#[test]
fn a_child_whose_stdin_is_gone_fails_the_next_call_and_comes_back() {
    let servers = json!({
        "faulty": example(&["--faults", "--ignore-eof"]),
        "healthy": example(&[]),
    });
    // No heartbeat for a minute: only the broken write itself can get the child replaced.
    let mut settings = fast();
    settings["heartbeat_interval_ms"] = json!(60000);
    let mut gate = Gate::ready(servers, settings);
    let before = pid_of(&mut gate, "faulty");
    assert_eq!(
        text(&gate.call("faulty.close_stdin", json!({}))),
        "stdin closed"
    );
    // Nothing is in flight to that server, so the thread that read the call writes it to the
    // child and finds the pipe broken; the connection's own thread must then restart the child
    // without waiting for anything else to wake it.
    assert_error(
        &gate.call("faulty.echo", json!({"message": "lost"})),
        -32002,
        "stdin write failed",
    );
    gate.wait_for_log("connection faulty: next start in");
    gate.assert_echo("healthy.echo", "ok");
    let after = text(&gate.call_until_ok("faulty.pid", json!({})));
    assert_ne!(after, before.to_string(), "a new child serves");
    assert!(!process_exists(before));
    // One failure, counted once (twice would double the backoff and feed the breaker).
    let restarts = gate
        .log()
        .matches("connection faulty: next start in")
        .count();
    assert_eq!(restarts, 1, "{}", gate.log());
}

#[test]
fn a_hung_child_is_found_by_heartbeat_and_restarted() {
    let mut settings = fast();
    settings["heartbeat_interval_ms"] = json!(200);
    let mut gate = Gate::ready(faulty_and_healthy(), settings);
    let before = pid_of(&mut gate, "faulty");
    assert_error(
        &gate.call("faulty.hang", json!({})),
        -32002,
        "missed 2 heartbeats",
    );
    let after = gate.call_until_ok("faulty.pid", json!({}));
    assert_ne!(text(&after), before.to_string());
    gate.wait_for_log("connection faulty: restarting -> starting");
}

#[test]
fn a_ten_mib_line_is_refused_without_buffering_and_the_child_restarted() {
    let mut gate = Gate::ready(faulty_and_healthy(), fast());
    assert_error(
        &gate.call("faulty.big_line", json!({"bytes": 10 * 1024 * 1024})),
        -32002,
        "byte limit",
    );
    gate.call_until_ok("faulty.echo", json!({"message": "back"}));
}

#[test]
fn a_child_writing_garbage_is_restarted() {
    let mut gate = Gate::ready(faulty_and_healthy(), fast());
    assert_error(
        &gate.call("faulty.garbage", json!({"lines": 100})),
        -32002,
        "invalid JSON-RPC lines",
    );
    gate.call_until_ok("faulty.echo", json!({"message": "back"}));
}

#[test]
fn a_stderr_flood_is_rate_limited_and_never_blocks_the_child() {
    // The child is busy writing for a while: heartbeats slow enough not to count that as a hang
    // on a loaded machine (this test is about the log, not about heartbeats).
    let mut settings = fast();
    settings["heartbeat_interval_ms"] = json!(5000);
    let mut gate = Gate::ready(faulty_and_healthy(), settings);
    let res = gate.call("faulty.stderr_flood", json!({"lines": 200_000}));
    assert_eq!(text(&res), "flooded stderr");
    gate.assert_echo("faulty.echo", "fine");
    // Sent after the flood, so once it is answered the gate has drained the flood.
    gate.wait_for_log("stderr lines suppressed");
    let logged = gate.log().matches("flood line").count();
    assert!(logged < 10_000, "{logged} flood lines reached the log");
}

#[test]
fn a_child_without_ping_is_watched_by_liveness_and_probe() {
    let mut settings = fast();
    settings["probe_interval_ms"] = json!(100);
    let mut gate = Gate::ready(json!({ "noping": example(&["--no-ping"]) }), settings);
    gate.wait_for_log("does not implement ping");
    let before = text(&gate.call("noping.echo", json!({"message": "a"})));
    assert_eq!(before, "a");
    // Several probe intervals later the child is still the same healthy one.
    gate.wait_for_log("connection noping: starting -> healthy");
    assert!(!gate
        .log()
        .contains("connection noping: healthy -> unhealthy"));
    gate.assert_echo("noping.echo", "b");
}

#[test]
fn a_broken_command_fails_fast_and_opens_the_breaker() {
    let mut settings = fast();
    settings["breaker_failures"] = json!(3);
    let servers = json!({
        "missing": { "command": "/nonexistent/aegis-test-binary" },
        "healthy": example(&[]),
    });
    let mut gate = Gate::ready(servers, settings);
    assert_eq!(
        gate.tool_names()
            .iter()
            .filter(|n| n.starts_with("healthy."))
            .count(),
        15
    );
    gate.wait_for_log("connection missing: unhealthy -> failed");
    assert!(gate.log().contains("cannot start"));
}

#[test]
fn stdin_eof_tears_down_every_child_and_grandchild() {
    let servers = json!({ "faulty": example(&["--faults"]), "stubborn": example(&["--faults", "--ignore-eof"]) });
    let mut gate = Gate::ready(servers, json!({ "teardown_grace_ms": 300 }));
    let servers = [pid_of(&mut gate, "faulty"), pid_of(&mut gate, "stubborn")];
    let groups = servers.map(|pid| group_of(pid).unwrap());
    let grandchild: u32 = text(&gate.call("faulty.spawn_grandchild", json!({})))
        .parse()
        .unwrap();
    assert!(process_exists(grandchild));
    gate.close_stdin();
    let status = gate.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    for pgid in groups {
        assert_eq!(
            live_group_members(pgid),
            Vec::<u32>::new(),
            "group {pgid} left behind"
        );
    }
    for server in servers {
        assert!(!process_exists(server), "server {server} left behind");
    }
    assert!(
        !process_exists(grandchild),
        "grandchild {grandchild} left behind"
    );
}

#[test]
fn sigterm_tears_down_and_exits_zero() {
    for signal in ["TERM", "INT"] {
        let servers = json!({ "stubborn": example(&["--faults", "--ignore-eof"]) });
        let mut gate = Gate::ready(servers, json!({ "teardown_grace_ms": 300 }));
        let child = pid_of(&mut gate, "stubborn");
        let group = group_of(child).unwrap();
        let grandchild: u32 = text(&gate.call("stubborn.spawn_grandchild", json!({})))
            .parse()
            .unwrap();
        gate.signal(signal);
        let status = gate.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert_eq!(live_group_members(group), Vec::<u32>::new());
        assert!(!process_exists(child));
        assert!(!process_exists(grandchild));
    }
}

#[test]
fn a_flood_of_list_changed_is_coalesced_into_a_listing_a_second() {
    let mut gate = Gate::ready(faulty_and_healthy(), fast());
    let start = std::time::Instant::now();
    assert_eq!(
        text(&gate.call("faulty.list_flood", json!({"count": 2000}))),
        "flooded list_changed"
    );
    // Once a later call is answered, the child has sent the whole flood and the gate has read it.
    let stats = text(&gate.call("faulty.stats", json!({})));
    let lists: u64 = stats.trim_start_matches("lists=").parse().unwrap();
    let allowed = start.elapsed().as_secs() + 3;
    assert!(
        lists <= allowed,
        "{lists} listings in {:?}",
        start.elapsed()
    );
    gate.assert_echo("healthy.echo", "ok");
}

#[test]
fn a_gate_killed_with_sigkill_takes_its_children_along() {
    let servers = json!({ "stubborn": example(&["--faults", "--ignore-eof"]) });
    let mut gate = Gate::ready(servers, json!({}));
    let child = pid_of(&mut gate, "stubborn");
    assert!(process_exists(child));
    // No teardown can run: only the kernel's parent-death signal stops a child that ignores EOF.
    gate.signal("KILL");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Reparented to an init that may not reap it: a zombie is gone for this purpose.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(") ")
                    .next()
                    .is_some_and(|rest| !rest.starts_with('Z'))
            })
            .unwrap_or(false)
    };
    while alive(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "child {child} outlived a SIGKILLed gate"
        );
        std::thread::yield_now();
    }
}

//! The official Python SDK client (`python_http_client.py`) through HAProxy, run from
//! `deploy/haproxy.cfg`, in front of two serve replicas sharing a redis-server (issue #18): in
//! the handshake era (`initialize`, one session, kept-alive pooled connections idle for seconds
//! between calls) every request of the session reaches the replica that created it; at
//! 2026-07-28 (no session) the calls spread over both replicas. `main.rs` runs this only when
//! every peer is there; `haproxy` and `redis-server` must be installed (the test fails naming
//! the package otherwise).

use crate::support::haproxy::{replica_args, Haproxy};
use crate::support::redis::free_port;
use crate::support::replicas::Replicas;
use crate::support::{repo_file, retry, Serve};
use crate::Peers;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// `tools/call`s each replica has answered over HTTP (its `/metrics`).
fn calls(node: &Serve) -> u64 {
    let (_, body) = node.get("/metrics").unwrap();
    body.lines()
        .filter(|l| l.starts_with("aegis_calls_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Runs `python_http_client.py` against `url` with `args`; its report.
fn run_client(peers: &Peers, url: &str, key: &str, args: &[&str], words: &[&str]) -> Value {
    let mut cmd = Command::new(&peers.python);
    cmd.arg(repo_file("tests/peers/python_http_client.py"))
        .args([
            "--url",
            url,
            "--header",
            &format!("Authorization:Bearer {key}"),
        ])
        .args(["--timeout", "60"])
        .args(args);
    for word in words {
        cmd.args(["--call", "ex.echo", &json!({ "message": word }).to_string()]);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let texts: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, words, "{report}");
    assert!(
        report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "ex.weather"),
        "{report}"
    );
    report
}

pub(crate) fn python_sdk_client_through_haproxy_in_front_of_two_replicas_in_both_eras(
    peers: &Peers,
) {
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let replicas = Replicas::start_with(2, &replica_args(&host));
    let addrs: Vec<&str> = replicas.nodes.iter().map(|n| n.addr.as_str()).collect();
    let lb = Haproxy::start(port, &addrs);
    let key = replicas.nodes[0].setup("ws-1");
    for node in &replicas.nodes {
        retry(Duration::from_millis(50), || {
            let view = node.admin("GET", "/workspaces/ws-1", None);
            match view.json()["connections"][0]["health"]["status"] == "healthy" {
                true => Ok(()),
                false => Err(view.body),
            }
        });
    }
    let url = format!("http://{}/mcp/ws-1", lb.addr);

    // Legacy: one session, its pooled connections idle 3 s between calls (kept alive: the
    // pool keeps them 60 s). Every call reaches the replica that holds the session.
    let before: Vec<u64> = replicas.nodes.iter().map(calls).collect();
    let words = ["one", "two", "three"];
    let args = [
        "--mode",
        "legacy",
        "--keepalive-expiry",
        "60",
        "--idle",
        "3",
        "--idle",
        "3",
    ];
    let report = run_client(peers, &url, &key, &args, &words);
    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    assert_eq!(report["handshake"], "initialize", "{report}");
    let legacy: Vec<u64> = replicas
        .nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| calls(n) - b)
        .collect();
    assert!(
        legacy == [3, 0] || legacy == [0, 3],
        "one session's calls per replica: {legacy:?}\n{}",
        lb.log()
    );

    // 2026-07-28: no session, so requests go round robin, and each is answered.
    let before: Vec<u64> = replicas.nodes.iter().map(calls).collect();
    let words = ["a", "b", "c", "d", "e", "f"];
    let report = run_client(
        peers,
        &url,
        &key,
        &["--mode", "2026-07-28", "--idle", "1"],
        &words,
    );
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    let modern: Vec<u64> = replicas
        .nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| calls(n) - b)
        .collect();
    assert_eq!(modern.iter().sum::<u64>(), 6, "{modern:?}");
    assert!(
        modern.iter().all(|&n| n > 0),
        "modern calls per replica: {modern:?}"
    );
}

//! The HTTP front of `aegis-gate serve`: the health and metrics routes, kept-alive connections
//! across idle gaps, logged 401s, and survival of hostile clients (slow clients that hold a
//! connection open, floods over the connection limits, and descriptor exhaustion).

use crate::support::http::{connect, head, read_message};
use crate::support::{retry, Serve};
use serde_json::json;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn health_routes_answer_json_and_unknown_routes_404() {
    let serve = Serve::in_temp(&[]);
    assert_eq!(
        serve.get("/healthz").unwrap(),
        (200, "{\"status\":\"ok\"}\n".to_owned())
    );
    assert_eq!(serve.get("/readyz").unwrap().0, 200);
    let (status, body) = serve.get("/nope").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"not_found\""), "{body}");
}

#[test]
fn metrics_count_connections_and_requests() {
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    client.call("ex.echo", json!({"message": "m"}));
    client.call("ex.fail", json!({}));
    let metrics_hold = |lines: &[&str]| {
        let metrics = serve.request("GET", "/metrics", &[], None).body;
        for line in lines {
            assert!(metrics.contains(line), "{metrics}");
        }
    };
    metrics_hold(&[
        "aegis_calls_total{outcome=\"ok\"} 1",
        "aegis_calls_total{outcome=\"tool_error\"} 1",
        "aegis_call_duration_seconds_count 2",
    ]);
    client.list();
    client.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}));
    metrics_hold(&[
        "aegis_merger_cache_total{workspace=\"ws-1\",result=\"hit\"} 1",
        "aegis_merger_cache_total{workspace=\"ws-1\",result=\"miss\"} 1",
    ]);
    retry(Duration::from_millis(50), || {
        let metrics = serve.request("GET", "/metrics", &[], None);
        assert_eq!(metrics.status, 200);
        if !metrics
            .body
            .contains("aegis_connections{status=\"healthy\"} 1")
        {
            return Err(metrics.body);
        }
        assert!(
            metrics
                .body
                .contains("aegis_http_requests_total{route=\"rest\",status=\"201\"} 2"),
            "{}",
            metrics.body
        );
        assert!(
            metrics
                .body
                .contains("aegis_connection_tools{workspace=\"ws-1\",connection=\"ex\"} 18"),
            "{}",
            metrics.body
        );
        Ok(())
    });
}

#[test]
fn a_slow_client_is_cut_off_by_the_io_timeout_and_others_are_served() {
    let serve = Serve::in_temp(&["--io-timeout-ms", "300"]);
    let mut slow = TcpStream::connect(&serve.addr).unwrap();
    // Half a request, then nothing: a slowloris client.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(
        serve.get("/healthz").unwrap().0,
        200,
        "others are served meanwhile"
    );
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    // The server gives up on the connection: EOF or a reset, not our own 10 s timeout.
    let res = slow.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "the slow client held its connection for {waited:?}: {res:?}"
    );
}

#[test]
fn descriptor_exhaustion_does_not_stop_the_listener_for_good() {
    let serve = Serve::under_ulimit(&["--io-timeout-ms", "2000"], 96);
    let first = serve.get("/healthz");
    assert!(matches!(first, Ok((200, _))), "{first:?}\n{}", serve.log());
    // Hold far more connections than the gate has descriptors, until an accept fails: the
    // admission's accept, its connect to tiny_http, or tiny_http's accept (whichever runs out
    // first).
    let mut held = Vec::new();
    let failed = |log: &str| {
        [
            "cannot accept",
            "cannot reach the private listener",
            "accept loop stopped",
        ]
        .iter()
        .any(|m| log.contains(m))
    };
    // The gate accepts on its own threads; give them a moment before checking the log again.
    retry(Duration::from_millis(20), || {
        let log = serve.log();
        if failed(&log) {
            return Ok(());
        }
        for _ in 0..16 {
            if let Ok(s) = TcpStream::connect(&serve.addr) {
                held.push(s);
            }
        }
        Err(format!("accept never failed:\n{log}"))
    });
    drop(held);
    // Descriptors come back as the gate notices the closed connections; then it serves again.
    served_again(&serve, Duration::from_millis(50));
    let log = serve.log();
    if log.contains("accept loop stopped") {
        assert!(log.contains("HTTP accept loop restarted"), "{log}");
    }
}

/// A connection that made one keep-alive request and stays open: admitted and counted.
fn held_connection(addr: &str) -> TcpStream {
    let mut stream = connect(addr, Duration::from_secs(10)).unwrap();
    write!(stream, "{}", head(addr, "GET", "/healthz", &[])).unwrap();
    let (answer, _) = read_message(&mut BufReader::new(stream.try_clone().unwrap()));
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.contains(" 200 "), "{status}");
    stream
}

/// Polls `/healthz` every `every` until it answers 200 (the gate notices closed connections on
/// its own thread).
fn served_again(serve: &Serve, every: Duration) {
    retry(every, || match serve.get("/healthz") {
        Ok((200, _)) => Ok(()),
        _ => Err(format!("never served again:\n{}", serve.log())),
    });
}

#[test]
fn connections_over_the_limit_get_503_and_a_freed_slot_serves_again() {
    let serve = Serve::in_temp(&["--io-timeout-ms", "60000", "--max-connections", "3"]);
    let mut held: Vec<TcpStream> = (0..3).map(|_| held_connection(&serve.addr)).collect();
    let (status, body) = serve.get("/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "too_many_connections");
    serve.assert_logged("limits: 3 in all");
    held.pop();
    served_again(&serve, Duration::from_millis(20));
}

#[test]
fn one_address_cannot_take_every_connection() {
    let serve = Serve::in_temp(&[
        "--io-timeout-ms",
        "60000",
        "--max-connections",
        "50",
        "--max-connections-per-peer",
        "2",
    ]);
    let mut held: Vec<TcpStream> = (0..2).map(|_| held_connection(&serve.addr)).collect();
    let (status, body) = serve.get("/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("from your address"), "{body}");
    held.clear();
    served_again(&serve, Duration::from_millis(20));
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_slowloris_flood_gets_503s_and_pins_no_more_threads_than_the_limit() {
    let serve = Serve::in_temp(&["--io-timeout-ms", "60000", "--max-connections", "8"]);
    assert_eq!(serve.get("/healthz").unwrap().0, 200);
    let before = threads_of(serve.child.id());
    // Half a request each, never finished: every admitted one would hold a thread for a minute.
    let slow = |addr: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s
    };
    let _admitted: Vec<TcpStream> = (0..8).map(|_| slow(&serve.addr)).collect();
    for _ in 0..40 {
        let mut refused = slow(&serve.addr);
        refused
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = refused.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
        assert!(answer.contains("Retry-After: 1"), "{answer}");
    }
    let after = threads_of(serve.child.id());
    assert!(
        after <= before + 8,
        "{before} threads before, {after} after 48 slow connections"
    );
}

#[test]
fn a_kept_alive_connection_is_served_after_idle_gaps_with_no_new_connection_meanwhile() {
    let serve = Serve::in_temp(&[]);
    // One connection, a request every 5 s for 30 s, and no other connection all along (the old
    // front lost its kept-alive connections after 15 s without a new one).
    let mut stream = connect(&serve.addr, Duration::from_secs(10)).unwrap();
    let local = stream.local_addr().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for n in 0..7 {
        if n > 0 {
            std::thread::sleep(Duration::from_secs(5)); // The idle gap under test.
        }
        write!(stream, "{}", head(&serve.addr, "GET", "/healthz", &[])).unwrap();
        let (answer, body) = read_message(&mut reader);
        let status = answer.lines().next().unwrap_or_default();
        assert!(
            status.contains(" 200 "),
            "request {n} ({} s in): {answer:?}\n{}",
            n * 5,
            serve.log()
        );
        assert_eq!(body, b"{\"status\":\"ok\"}\n");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // Every answer came on this one socket (the test opens no other, so nothing reconnected),
    // and the gate has not closed it since.
    assert_eq!(stream.local_addr().unwrap(), local);
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = stream.read(&mut buf);
    assert!(
        matches!(&open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{open:?}"
    );
}

#[test]
fn a_401_is_logged_without_the_credential() {
    let serve = Serve::in_temp(&[]);
    serve.setup("ws-1");
    let init = crate::support::initialize_request();
    let bad_key = "agk_0123456789abcdef-not-a-key";
    let refused = serve.mcp("ws-1", bad_key, None, &init);
    assert_eq!(refused.status, 401, "{}", refused.body);
    let bad_admin = "wrong-admin-token-5e1f";
    let auth = format!("Bearer {bad_admin}");
    let rest = serve.request(
        "GET",
        "/api/v1/aegis/agents",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(rest.status, 401);
    let log = retry(Duration::from_millis(20), || {
        let log = serve.log();
        match log.contains("without valid credentials (401)") {
            true => Ok(log),
            false => Err(format!("no 401 logged:\n{log}")),
        }
    });
    let line = log.lines().find(|l| l.contains("(401)")).unwrap();
    assert!(
        line.contains("127.0.0.1") && line.contains("/mcp/ws-1"),
        "{line}"
    );
    for secret in [bad_key, bad_admin] {
        assert!(!log.contains(secret), "the credential was logged:\n{log}");
    }
}

//! One HTTP connection's life with our own front (issue #11, and findings of a review of it):
//! bodies larger than a head's room on a kept-alive connection, pipelined requests from a client
//! that shut its side, and the first byte of a new connection due within the head deadline.

use crate::support::http::{connect, head, read_message};
use crate::support::Serve;
use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::time::Duration;

/// The status code of an answer head.
fn status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bodies_over_64_kib_on_a_kept_alive_connection_are_read_whole_every_time() {
    let serve = Serve::in_temp(&[]);
    let stream = connect(&serve.addr, Duration::from_secs(10)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let body = vec![b'x'; 200 * 1024];
    for n in 0..20 {
        // Head and body in one write: all of it is on the socket before the gate reads.
        let mut request = head(
            &serve.addr,
            "POST",
            "/healthz",
            &[
                // A credential, even a wrong one, has its body read (a request with none is
                // refused on its head, its connection closed).
                ("Authorization", "Bearer not-a-key"),
                ("Content-Type", "application/json"),
                ("Content-Length", &body.len().to_string()),
            ],
        )
        .into_bytes();
        request.extend_from_slice(&body);
        writer.write_all(&request).unwrap();
        let (answer, _) = read_message(&mut reader);
        // The route takes no POST: 405, on the same connection, for every request.
        assert_eq!(status(&answer), 405, "request {n}: {answer:?}");
    }
}

#[test]
fn pipelined_requests_of_a_client_that_shut_its_side_are_all_answered() {
    let serve = Serve::in_temp(&[]);
    let stream = connect(&serve.addr, Duration::from_secs(10)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let one = head(&serve.addr, "GET", "/healthz", &[]);
    writer.write_all(one.repeat(3).as_bytes()).unwrap();
    writer.shutdown(Shutdown::Write).unwrap();
    for n in 0..3 {
        let (answer, body) = read_message(&mut reader);
        assert_eq!(status(&answer), 200, "answer {n}: {answer:?}");
        assert_eq!(body, b"{\"status\":\"ok\"}\n");
    }
}

#[test]
fn a_new_connection_that_sends_nothing_is_closed_at_the_head_deadline() {
    let dir = crate::support::TempDir::new();
    let config = dir.path().join("gate.json");
    std::fs::write(
        &config,
        r#"{"mcpServers": {}, "aegis": {"http": {"head_timeout_ms": 500, "keep_alive_ms": 60000}}}"#,
    )
    .unwrap();
    let serve = Serve::in_temp(&["--config", config.to_str().unwrap()]);
    let silent = connect(&serve.addr, Duration::from_secs(20)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    // The gate closes it (EOF): well before the 60 s a kept-alive connection may idle.
    let read = std::io::Read::read(&mut &silent, &mut buf);
    assert!(matches!(read, Ok(0)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

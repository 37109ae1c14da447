//! The limits of serve's HTTP front, as a hostile or sloppy client meets them (issue #11): heads
//! too big to buffer are refused early and cost the gate no memory, dribbling heads lose their
//! slot at the head deadline, the process listens on one TCP socket only, and framing is strict.

use crate::support::http::{parse_response, read_message, send_raw, Response};
use crate::support::{initialize_request, retry, settings_file, Serve, TempDir, WAIT};
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// What one flooding client got: the server's answer, how many bytes the client had written when
/// the answer's first byte came (`None`: it never came while writing), and how far the gate's
/// resident memory rose above where it was before, at most, while the client wrote.
struct Flooded {
    answer: Response,
    sent_before_answer: Option<usize>,
    rss_growth: usize,
}

/// Writes `start`, then `filler` over and over up to `total` bytes, then `end`, on one
/// connection, and stops writing as soon as an answer comes or the server closes; reads the
/// whole answer. The socket is non-blocking so that each write is preceded by a look for the
/// answer: what was written is what the client had sent when the server answered.
fn flood(serve: &Serve, start: &[u8], filler: &[u8], total: usize, end: &[u8]) -> Flooded {
    let pid = serve.child.id();
    let before = status_kib(pid, "VmRSS:");
    let mut peak = before;
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream.write_all(start).unwrap();
    stream.set_nonblocking(true).unwrap();
    let chunk: Vec<u8> = filler.iter().copied().cycle().take(64 * 1024).collect();
    let (mut sent, mut ended) = (0, false);
    let mut sent_before_answer = None;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no answer and no close in {WAIT:?} after {sent} bytes"
        );
        peak = peak.max(status_kib(pid, "VmRSS:"));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sent_before_answer.get_or_insert(sent);
                answer.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // A reset after the answer: what came is what there is.
            Err(_) => break,
        }
        let pending: &[u8] = if sent_before_answer.is_some() || ended {
            &[]
        } else if sent < total {
            &chunk[..chunk.len().min(total - sent)]
        } else {
            end
        };
        let wrote = match pending.is_empty() {
            true => Err(ErrorKind::WouldBlock.into()),
            false => stream.write(pending),
        };
        match wrote {
            Ok(n) if sent < total => sent += n,
            Ok(n) => {
                // The end is small: it goes in one piece once the server has read the rest.
                assert_eq!(n, end.len(), "part of the end was written");
                ended = true;
            }
            // Nothing to write, or the server is not reading: look again in a moment.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            // The server closed while we wrote; its answer may still be there to read.
            Err(_) => ended = true,
        }
    }
    peak = peak.max(status_kib(pid, "VmRSS:"));
    Flooded {
        answer: parse_response(&String::from_utf8_lossy(&answer)),
        sent_before_answer,
        rss_growth: (peak.saturating_sub(before)) * 1024,
    }
}

#[test]
fn a_64_mib_header_line_or_request_line_is_refused_early_and_costs_no_memory() {
    let serve = Serve::in_temp(&[]);
    // Warm up: the first requests allocate what every request uses.
    for _ in 0..3 {
        assert_eq!(serve.get("/healthz").unwrap().0, 200);
    }
    let cases: [(&str, &[u8], u16); 2] = [
        (
            "a header line",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ",
            431,
        ),
        ("a request line", b"GET /healthz?q=", 414),
    ];
    for (what, start, status) in cases {
        let flooded = flood(&serve, start, b"a", 64 * MIB, b"\r\n\r\n");
        assert_eq!(
            flooded.answer.status, status,
            "{what}: {:?}",
            flooded.answer
        );
        let sent = flooded.sent_before_answer.unwrap();
        assert!(
            sent < 16 * MIB,
            "{what}: answered only after {sent} of 64 MiB"
        );
        assert!(
            flooded.rss_growth < 8 * MIB,
            "{what}: the gate grew by {} bytes",
            flooded.rss_growth
        );
    }
    assert_eq!(serve.get("/healthz").unwrap().0, 200, "still serving");
}

#[test]
fn twenty_thousand_headers_get_431_and_a_1_mb_url_gets_414() {
    let serve = Serve::in_temp(&[]);
    let headers = flood(
        &serve,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"X-Header: value\r\n",
        20_000 * 17,
        b"\r\n",
    );
    assert_eq!(headers.answer.status, 431, "{:?}", headers.answer);
    assert!(headers.answer.body.contains("header_too_large"));
    let url = flood(
        &serve,
        b"GET /healthz?q=",
        b"a",
        1_000_000,
        b" HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(url.answer.status, 414, "{:?}", url.answer);
    assert!(url.answer.body.contains("uri_too_long"));
}

#[test]
fn seventy_dribbling_connections_lose_their_slots_at_the_head_deadline() {
    let dir = TempDir::new();
    let config = settings_file(dir.path(), json!({"http": {"head_timeout_ms": 2000}}));
    let serve = Serve::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    // Each starts a request and sends one more header byte every 2 s, never finishing it.
    let started = Instant::now();
    let mut dribblers: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut s = TcpStream::connect(&serve.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    let mut dribbled = Instant::now();
    let mut dribble = |dribblers: &mut Vec<TcpStream>| {
        if dribbled.elapsed() >= Duration::from_secs(2) {
            for s in dribblers.iter_mut() {
                let _ = s.write_all(b"a");
            }
            dribbled = Instant::now();
        }
    };
    // 64 from one address are admitted (the default): the address is full.
    let (status, body) = serve.get("/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("from your address"), "{body}");
    // At the head deadline the dribblers are answered 408 and closed: the address is served.
    retry(Duration::from_millis(100), || {
        dribble(&mut dribblers);
        match serve.get("/healthz") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("never served again: {other:?}\n{}", serve.log())),
        }
    });
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2 + 6),
        "served again only after {waited:?}, with a head deadline of 2 s"
    );
    let mut answers = [0; 2];
    for s in &mut dribblers {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut seen = Vec::new();
        let _ = s.read_to_end(&mut seen);
        let seen = String::from_utf8_lossy(&seen);
        match seen.split(' ').nth(1) {
            Some("408") => answers[0] += 1,
            Some("503") => answers[1] += 1,
            _ => panic!("a dribbler got {seen:?}"),
        }
    }
    assert_eq!(answers, [64, 6], "408s and 503s");
}

/// The inodes of the sockets `pid` has open.
fn socket_inodes(pid: u32) -> HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect()
}

/// The local ports of the TCP sockets (v4 and v6) in LISTEN state among `inodes`.
fn listening_ports(inodes: &HashSet<String>) -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (Some(local), Some(&"0A"), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if inodes.contains(*inode) {
                let port = local.rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

#[test]
fn the_gate_listens_on_exactly_one_tcp_socket() {
    let serve = Serve::in_temp(&[]);
    // Everything that might open a socket of its own has run: MCP over HTTP, a stream, REST.
    let client = serve.setup_client("ws-1");
    client.call("ex.echo", json!({"message": "m"}));
    assert_eq!(serve.get("/metrics").unwrap().0, 200);
    let inodes = socket_inodes(serve.child.id());
    assert!(!inodes.is_empty());
    let port: u16 = serve.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(listening_ports(&inodes), vec![port]);
}

/// `bytes` as one request; the answer.
fn raw(serve: &Serve, bytes: &str) -> Response {
    send_raw(&serve.addr, bytes.as_bytes(), WAIT).unwrap()
}

#[test]
fn framing_is_strict_conflicts_and_bad_lengths_are_400_and_only_http_1_is_spoken() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let init = initialize_request().to_string();
    let post = |framing: &str, body: &str| {
        format!(
            "POST /mcp/ws-1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Connection: close\r\n{framing}\r\n{body}",
            serve.addr
        )
    };
    let n = init.len();
    for (framing, what) in [
        (
            format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
            "two lengths",
        ),
        ("Content-Length: -1\r\n".to_owned(), "a negative length"),
        (
            "Content-Length: 99999999999999999999999\r\n".to_owned(),
            "an overflowing length",
        ),
        (
            format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
            "chunked with a length",
        ),
    ] {
        let answer = raw(&serve, &post(&framing, &init));
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert!(answer.body.contains("bad_request"), "{what}: {answer:?}");
    }
    // A chunked body is read.
    let (first, second) = init.split_at(10);
    let chunked = format!(
        "{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let answer = raw(&serve, &post("Transfer-Encoding: chunked\r\n", &chunked));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["result"]["protocolVersion"], "2025-11-25");
    // JSON is application/json, parameters allowed.
    let auth = format!("Bearer {key}");
    let typed = |content_type: &str| {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", content_type),
            ("Accept", "application/json, text/event-stream"),
        ];
        serve.request("POST", "/mcp/ws-1", &headers, Some(&init))
    };
    assert_eq!(typed("application/jsonx").status, 415);
    assert_eq!(typed("text/plain").status, 415);
    assert_eq!(typed("application/json; charset=utf-8").status, 200);
    // HTTP/0.9 (no version) and HTTP/2.0 over this port are refused.
    let old = raw(&serve, "GET /healthz\r\n");
    assert_eq!(old.status, 400, "{old:?}");
    let two = raw(&serve, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(two.status, 505, "{two:?}");
    let ten = raw(&serve, "GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(ten.status, 200, "{ten:?}");
}

/// Sends `head` (a request whose body is not sent), reads the answer's head, then ends the
/// client's side and checks that the gate closes the connection.
fn head_only(serve: &Serve, head: &str) -> String {
    let mut stream = crate::support::http::connect(&serve.addr, WAIT).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // Nothing in time (an empty head) means the gate waited for the body instead.
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (answer, _) = read_message(&mut reader);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{answer}: then {rest:?}");
    answer
}

#[test]
fn a_request_without_credentials_is_refused_on_its_head_and_its_body_is_never_read() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup("ws-1");
    let request = |path: &str, extra: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 4000000\r\n{extra}\r\n",
            serve.addr
        )
    };
    for path in ["/mcp", "/mcp/ws-1", "/api/v1/aegis/connections"] {
        for expect in ["Expect: 100-continue\r\n", ""] {
            let answer = head_only(&serve, &request(path, expect));
            assert!(
                answer.starts_with("HTTP/1.1 401"),
                "{path} {expect:?}: {answer}"
            );
            let lower = answer.to_ascii_lowercase();
            assert!(lower.contains("connection: close"), "{path}: {answer}");
            assert!(!answer.contains("100 Continue"), "{path}: {answer}");
        }
    }
    // With a credential the body is awaited: a client that asks is told to send it.
    let auth = format!("Authorization: Bearer {key}\r\nExpect: 100-continue\r\n");
    let mut stream = crate::support::http::connect(&serve.addr, WAIT).unwrap();
    stream
        .write_all(request("/mcp/ws-1", &auth).as_bytes())
        .unwrap();
    let mut first = [0u8; 25];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    // A wrong credential is still refused, once its body has come (it is checked by a worker).
    let answer = send_raw(
        &serve.addr,
        format!(
            "POST /mcp/ws-1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer wrong\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Connection: close\r\nContent-Length: 2\r\n\r\n{{}}",
            serve.addr
        )
        .as_bytes(),
        WAIT,
    )
    .unwrap();
    assert_eq!(answer.status, 401, "{}", answer.headers);
}

#[test]
fn a_slow_upload_without_credentials_still_reads_its_401() {
    // The gate answers on the head and drains the body the client goes on sending: closing
    // with its bytes unread would reset the connection, and the client would never read the
    // answer. The client paces its upload over two seconds, past the usual one-second linger.
    let serve = Serve::in_temp(&[]);
    serve.setup("ws-1");
    let chunk = vec![b' '; 16 * 1024];
    let chunks = 20;
    let mut stream = crate::support::http::connect(&serve.addr, WAIT).unwrap();
    let head = format!(
        "POST /mcp/ws-1 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        serve.addr,
        chunk.len() * chunks
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let uploading = std::thread::spawn(move || {
        for _ in 0..chunks {
            writer.write_all(&chunk)?;
            // Pacing is the scenario (a slow link), not a wait for the gate.
            std::thread::sleep(Duration::from_millis(100));
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut reader = BufReader::new(stream);
    let (answer, _) = read_message(&mut reader);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    uploading
        .join()
        .unwrap()
        .expect("the whole body was taken, none of it refused by a reset");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

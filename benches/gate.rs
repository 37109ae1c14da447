//! `cargo bench --bench gate`: per-call latency and throughput of `tools/call` directly against
//! the example server and through the gate (1 and 8 in flight), the gate's RSS with 10
//! downstreams, and the time to the first merged `tools/list`. Prints a table; asserts nothing.
//! Set `AEGIS_BENCH_CALLS` to change the number of calls per run (default 20000), and
//! `AEGIS_BENCH_BIN` to measure another build (the static musl binary, or an older build to
//! compare with) in the stdio rows and the RSS row. `cargo bench --bench gate -- stdio` runs the
//! stdio rows only.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{pct, realistic_tool, HttpClient, Serve, BIN};

struct Peer {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    rx: mpsc::Receiver<(Instant, Value)>,
    _reader: std::thread::JoinHandle<()>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        Peer::spawn_bin(BIN, args)
    }

    fn spawn_bin(bin: &str, args: &[&str]) -> Peer {
        let mut child = common::spawn_piped(bin, args);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send((Instant::now(), v)).is_err() {
                    return;
                }
            }
        });
        let stdin = BufWriter::new(child.stdin.take().expect("stdin"));
        Peer {
            child,
            stdin,
            rx,
            _reader: reader,
        }
    }

    fn send(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").expect("write");
        self.stdin.flush().expect("flush");
    }

    fn wait_id(&mut self, id: i64) -> Value {
        loop {
            let (_, v) = self
                .rx
                .recv_timeout(Duration::from_secs(30))
                .expect("answer");
            if v["id"] == id {
                return v;
            }
        }
    }

    fn initialize(&mut self) {
        self.send(&json!({"jsonrpc":"2.0","id":0,"method":"initialize",
            "params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}));
        self.wait_id(0);
        self.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    }

    /// Runs `n` calls with `window` in flight; returns sorted latencies and the wall time.
    fn run_calls(&mut self, tool: &str, n: i64, window: i64) -> (Vec<Duration>, Duration) {
        let mut sent: HashMap<i64, Instant> = HashMap::new();
        let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let start = Instant::now();
        let mut next = 1;
        while next <= window.min(n) {
            sent.insert(next, Instant::now());
            self.send(&call(next, tool));
            next += 1;
        }
        while latencies.len() < usize::try_from(n).unwrap_or(0) {
            let (at, v) = self
                .rx
                .recv_timeout(Duration::from_secs(30))
                .expect("answer");
            let Some(id) = v["id"].as_i64() else { continue };
            assert!(v.get("result").is_some(), "call failed: {v}");
            if let Some(t) = sent.remove(&id) {
                latencies.push(at - t);
            }
            if next <= n {
                sent.insert(next, Instant::now());
                self.send(&call(next, tool));
                next += 1;
            }
        }
        let wall = start.elapsed();
        latencies.sort();
        (latencies, wall)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(id: i64, tool: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"message":"bench"}}})
}

fn config(dir: &std::path::Path, n_servers: usize) -> String {
    config_with(dir, n_servers, json!({}))
}

fn config_with(dir: &std::path::Path, n_servers: usize, settings: Value) -> String {
    let servers: serde_json::Map<String, Value> = (0..n_servers)
        .map(|i| {
            (
                format!("s{i}"),
                json!({"command": BIN, "args": ["example-server"]}),
            )
        })
        .collect();
    let path = dir.join(format!(
        "bench-{n_servers}-{}.json",
        settings.to_string().len()
    ));
    let body = json!({"mcpServers": servers, "aegis": settings});
    std::fs::write(&path, body.to_string()).expect("config");
    path.display().to_string()
}

fn main() {
    let n: i64 = std::env::var("AEGIS_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("aegis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("aegis-gate bench: {n} echo calls per row (release build, this machine)");
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "path", "p50", "p99", "calls/s"
    );
    // AEGIS_BENCH_BIN measures another build of the gate (the static musl one, say).
    let gate_bin = std::env::var("AEGIS_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    let mut p50s = HashMap::new();
    for window in [1, 8] {
        for (label, args, tool) in [
            (
                "direct example-server",
                vec!["example-server".to_owned()],
                "echo",
            ),
            (
                "through the gate",
                vec![
                    "stdio".into(),
                    "--config".into(),
                    config(&dir, 1),
                    "--data-dir".into(),
                    dir.join("data").display().to_string(),
                ],
                "s0.echo",
            ),
            (
                "through the gate, audit off",
                vec![
                    "stdio".into(),
                    "--config".into(),
                    config_with(&dir, 1, json!({"audit": false})),
                    "--data-dir".into(),
                    dir.join("data-off").display().to_string(),
                ],
                "s0.echo",
            ),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let bin = if label.starts_with("direct") {
                BIN
            } else {
                &gate_bin
            };
            let mut peer = Peer::spawn_bin(bin, &args);
            peer.initialize();
            peer.run_calls(tool, 500, window); // warm up
            let (lat, wall) = peer.run_calls(tool, n, window);
            let rate = n as f64 / wall.as_secs_f64();
            println!(
                "{:<36} {:>8.1}µs {:>8.1}µs {:>12.0}",
                format!("{label}, {window} in flight"),
                pct(&lat, 50).as_secs_f64() * 1e6,
                pct(&lat, 99).as_secs_f64() * 1e6,
                rate
            );
            p50s.insert((label, window), pct(&lat, 50));
        }
    }
    let stdio_only = std::env::args().any(|a| a == "stdio");
    if !stdio_only {
        http_calls(usize::try_from(n).unwrap_or(20_000));
    }
    let direct = p50s[&("direct example-server", 1)];
    let added = p50s[&("through the gate", 1)].saturating_sub(direct);
    let added_off = p50s[&("through the gate, audit off", 1)].saturating_sub(direct);
    println!(
        "added latency p50 (1 in flight): {:.1}µs with the audit trail, {:.1}µs without",
        added.as_secs_f64() * 1e6,
        added_off.as_secs_f64() * 1e6
    );
    if stdio_only {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let start = Instant::now();
    let mut gate = Peer::spawn_bin(&gate_bin, &["stdio", "--config", &config(&dir, 10)]);
    gate.initialize();
    gate.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    let list = gate.wait_id(1);
    let first_list = start.elapsed();
    let n_tools = list["result"]["tools"].as_array().map_or(0, Vec::len);
    gate.run_calls("s3.echo", 2000, 8);
    println!(
        "time to first merged tools/list, 10 servers ({n_tools} tools): {:.1} ms",
        first_list.as_secs_f64() * 1e3
    );
    println!(
        "gate RSS with 10 downstreams (children excluded), {gate_bin}: {:.1} MiB",
        gate.rss_kib() as f64 / 1024.0
    );
    drop(gate);

    sanitizer_throughput();
    rebuild_50_by_100();
    cache_hits_50_by_100(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn sanitizer_throughput() {
    use aegis_gate::sanitize::{sanitize_tool, Context, Limits};
    let tools: Vec<Value> = (0..2000).map(realistic_tool).collect();
    let bytes: usize = tools.iter().map(|t| t.to_string().len()).sum();
    let limits = Limits::default();
    let ctx = Context::new((0..49).map(|i| format!("s{i}")), ".");
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(2) {
        for t in &tools {
            std::hint::black_box(sanitize_tool(t, &limits, &ctx));
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes * rounds) as f64 / 1e6;
    println!(
        "sanitizer throughput on realistic tool definitions: {:.1} MB/s ({:.0} tools/s)",
        mb / secs,
        (tools.len() * rounds) as f64 / secs
    );
}

fn rebuild_50_by_100() {
    let settings = aegis_gate::config::Settings::default();
    let listings: Vec<(String, Vec<Value>)> = (0..50)
        .map(|s| (format!("s{s}"), (0..100).map(realistic_tool).collect()))
        .collect();
    for (label, rejudge) in [
        ("full rebuild with sanitization of all 50 servers", 50),
        ("one server's list changed (100 tools judged again)", 1),
        (
            "cache miss: entries already judged, view merged and paged",
            0,
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..10 {
            let (took, n) = aegis_gate::merger::rebuild_for_bench(&settings, &listings, rejudge);
            assert_eq!(n, 5000);
            times.push(took);
        }
        times.sort();
        println!(
            "merged view of 50 servers x 100 tools, {label}: p50 {:.1} ms, max {:.1} ms",
            pct(&times, 50).as_secs_f64() * 1e3,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    }
}

fn cache_hits_50_by_100(dir: &std::path::Path) {
    let servers: serde_json::Map<String, Value> = (0..50)
        .map(|i| {
            (
                format!("s{i}"),
                json!({"command": BIN, "args": ["example-server", "--tools-only", "--extra-tools", "93"]}),
            )
        })
        .collect();
    let path = dir.join("bench-50x100.json");
    let body = json!({"mcpServers": servers, "aegis": {"startup_timeout_ms": 60000}});
    std::fs::write(&path, body.to_string()).expect("config");
    let data = dir.join("data-50x100");
    let mut gate = Peer::spawn(&[
        "stdio",
        "--config",
        path.to_str().unwrap_or_default(),
        "--data-dir",
        data.to_str().unwrap_or_default(),
    ]);
    gate.initialize();
    let mut page_times = Vec::new();
    let mut listing_times = Vec::new();
    let mut n_tools = 0;
    for round in 0..100 {
        let listing_start = Instant::now();
        let mut cursor: Option<String> = None;
        let mut id = 10_000 + round * 100;
        loop {
            id += 1;
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let sent = Instant::now();
            gate.send(&json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":params}));
            let v = gate.wait_id(id);
            page_times.push(sent.elapsed());
            if round == 0 {
                n_tools += v["result"]["tools"].as_array().map_or(0, Vec::len);
            }
            match v["result"].get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        listing_times.push(listing_start.elapsed());
    }
    page_times.sort();
    listing_times.sort();
    println!("merged tools/list, 50 servers ({n_tools} tools), cache hit, one 100-tool page: p50 {:.2} ms, p99 {:.2} ms",
        pct(&page_times, 50).as_secs_f64() * 1e3, pct(&page_times, 99).as_secs_f64() * 1e3);
    println!("merged tools/list, 50 servers, cache hit, all pages one after another: p50 {:.1} ms, p99 {:.1} ms",
        pct(&listing_times, 50).as_secs_f64() * 1e3, pct(&listing_times, 99).as_secs_f64() * 1e3);
}

fn http_calls(n: usize) {
    let dir = std::env::temp_dir().join(format!("aegis-bench-http-{}", std::process::id()));
    let serve = Serve::start(&dir, &["--org-id", "bench-b"]);
    let addr = serve.addr.clone();
    let names: Vec<String> = (0..10)
        .map(|idx| {
            if idx == 0 {
                "ex".to_owned()
            } else {
                format!("ex{idx}")
            }
        })
        .collect();
    let key = serve.workspace("bench", &names, &[], 1).remove(0);
    let mut c = HttpClient::connect(&addr);
    let (_, head, _) = c.post("/mcp/bench", &[("Authorization", &key)], r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#);
    let session = common::session_id(&head);
    for clients in [1usize, 8] {
        let per_client = n / clients;
        let start = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (addr, key, session) = (addr.clone(), key.clone(), session.clone());
                std::thread::spawn(move || {
                    let mut c = HttpClient::connect(&addr);
                    let mut lat = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let body = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"b"}}}}}}"#);
                        let t = Instant::now();
                        let (status, _, _) = c.post("/mcp/bench", &[("Authorization", &key), ("Mcp-Session-Id", &session)], &body);
                        assert_eq!(status, 200);
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut lat: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("client"))
            .collect();
        let wall = start.elapsed();
        lat.sort();
        println!(
            "{:<36} {:>8.1}µs {:>8.1}µs {:>12.0}",
            format!("HTTP tools/call, {clients} clients"),
            pct(&lat, 50).as_secs_f64() * 1e6,
            pct(&lat, 99).as_secs_f64() * 1e6,
            (per_client * clients) as f64 / wall.as_secs_f64()
        );
    }
    lists_on_one_connection(&addr, &session, &key);
    delegated_calls(&addr, &session, &key, n.min(5_000));
    println!(
        "serve RSS with 10 active connections (children excluded): {} kB",
        serve.rss_kib()
    );
    serve.stop();
}

/// `tools/list` (the merged list of 10 servers, about 20 KB) again and again on one kept-alive
/// connection, next to the same request as the first on a new connection each time: a reused
/// connection must not wait for a delayed ACK (the 40 ms stall of Nagle's algorithm when an
/// answer leaves in two writes and the socket lacks `TCP_NODELAY`).
fn lists_on_one_connection(addr: &str, session: &str, key: &str) {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let headers = [("Authorization", key), ("Mcp-Session-Id", session)];
    let mut c = HttpClient::connect(addr);
    let mut size = 0;
    let mut reused = Vec::new();
    for i in 0..220 {
        let t = Instant::now();
        let (status, _, answer) = c.post("/mcp/bench", &headers, body);
        assert_eq!(status, 200);
        size = answer.len();
        if i >= 20 {
            reused.push(t.elapsed());
        }
    }
    let mut fresh = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let mut c = HttpClient::connect(addr);
        let (status, _, _) = c.post("/mcp/bench", &headers, body);
        assert_eq!(status, 200);
        fresh.push(t.elapsed());
    }
    reused.sort();
    fresh.sort();
    for (label, lat) in [
        ("reused connection", &reused),
        ("new connection each", &fresh),
    ] {
        println!(
            "HTTP tools/list ({:.1} KB), {label}: p50 {:.3} ms, p99 {:.3} ms",
            size as f64 / 1000.0,
            pct(lat, 50).as_secs_f64() * 1e3,
            pct(lat, 99).as_secs_f64() * 1e3
        );
    }
}

/// One client's `tools/call` with an agent key next to the same call delegated by a partner
/// (tokens signed beforehand: what is measured is the receiving gate's added work).
fn delegated_calls(addr: &str, agent_session: &str, agent_key: &str, n: usize) {
    use aegis_gate::delegation::{paserk, token};
    use aegis_gate::glob::Scope;
    let key = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let admin = [("Authorization", "Bearer bench")];
    let mut c = HttpClient::connect(addr);
    let partner = json!({"org_id": "bench-a", "workspace_id": "bench", "allow": ["ex.*"],
        "keys": [{"kid": "k1", "public_key": paserk::encode(&key.verifying_key())}],
        "rate": {"per_minute": 6_000_000, "burst": 1_000_000}});
    assert_eq!(
        c.post("/api/v1/aegis/partners", &admin, &partner.to_string())
            .0,
        201
    );
    let scope: Scope = serde_json::from_value(json!({"allow": ["ex.*"]})).expect("scope");
    let grant = token::Grant {
        iss: "bench-a",
        aud: "bench-b",
        sub: "bench",
        scope: &scope,
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let sign = |tool: &str, body: &str| {
        token::sign(&key, "k1", &grant, tool, body.as_bytes(), now(), 300).expect("sign")
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
    let (_, head, _) = c.post("/mcp/bench", &[("Aegis-Delegation", &sign("", init))], init);
    let session = common::session_id(&head);
    let bodies: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"b"}}}}}}"#))
        .collect();
    let tokens: Vec<String> = bodies.iter().map(|b| sign("ex.echo", b)).collect();
    let mut run = |delegated: bool| {
        let mut lat = Vec::with_capacity(n);
        for (body, token) in bodies.iter().zip(&tokens) {
            let headers = if delegated {
                vec![
                    ("Aegis-Delegation", token.as_str()),
                    ("Mcp-Session-Id", session.as_str()),
                ]
            } else {
                vec![
                    ("Authorization", agent_key),
                    ("Mcp-Session-Id", agent_session),
                ]
            };
            let t = Instant::now();
            let (status, _, answer) = c.post("/mcp/bench", &headers, body);
            assert_eq!(status, 200, "{answer}");
            lat.push(t.elapsed());
        }
        lat.sort();
        lat
    };
    let plain = run(false);
    let delegated = run(true);
    for (label, lat) in [
        ("HTTP call, agent key", &plain),
        ("HTTP call, delegated", &delegated),
    ] {
        println!(
            "{label:<36} {:>8.1}µs {:>8.1}µs",
            pct(lat, 50).as_secs_f64() * 1e6,
            pct(lat, 99).as_secs_f64() * 1e6
        );
    }
    println!(
        "delegation added latency p50 (1 client): {:.1}µs",
        (pct(&delegated, 50).as_secs_f64() - pct(&plain, 50).as_secs_f64()) * 1e6
    );
    // One core, no network: the verifier next to raw Ed25519 (its limit).
    let body = bodies[0].as_bytes();
    let lookup = |_: &str| {
        Some(token::PartnerKey {
            org_id: "bench-a".into(),
            key: key.verifying_key(),
            not_after: None,
        })
    };
    let inbound = token::Inbound {
        token: &tokens[0],
        body,
        tool: "ex.echo",
        our_org: "bench-b",
        now: now(),
    };
    let rounds = 20_000;
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(token::verify(&inbound, lookup).is_ok());
    }
    let verify_rate = rounds as f64 / t.elapsed().as_secs_f64();
    let message = vec![7u8; 600];
    let signature = ed25519_dalek::Signer::sign(&key, &message);
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(key
            .verifying_key()
            .verify_strict(&message, &signature)
            .is_ok());
    }
    let raw_rate = rounds as f64 / t.elapsed().as_secs_f64();
    println!("delegation token verifications/s, one core: {verify_rate:.0} (raw Ed25519 verify_strict of 600 bytes: {raw_rate:.0})");
}

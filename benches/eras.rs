//! `cargo bench --bench eras`: a `tools/call` of MCP 2026-07-28 (stateless, over HTTP) next to the
//! same call of the legacy era (one initialized session), #13 "Performance (benchmark)". Prints
//! tables; asserts nothing but the answers' shape and that the session table does not grow.
//!
//! One `aegis-gate serve` (release build) with one example-server connection `ex` in workspace
//! `bench` and one agent key. Three rows, each one client, one request in flight, keep-alive:
//!
//! - **legacy**: `POST /mcp/bench` `tools/call ex.echo` in one session opened by `initialize`
//!   (`Mcp-Session-Id`, `MCP-Protocol-Version: 2025-11-25`);
//! - **modern**: `POST /mcp/bench` `tools/call ex.echo` with `MCP-Protocol-Version: 2026-07-28`,
//!   `Mcp-Method: tools/call`, `Mcp-Name: ex.echo` and the envelope in `params._meta`
//!   (`io.modelcontextprotocol/protocolVersion`, `io.modelcontextprotocol/clientCapabilities`),
//!   no session;
//! - **direct**: `tools/call echo` to an example server over its pipes (no gate, no HTTP): the
//!   baseline of both.
//!
//! Both HTTP rows carry the same `Authorization: Bearer <agent key>`, `Accept` and
//! `Content-Type`. The rows are measured in interleaved blocks (every row a block in turn, the
//! order turned each block) so that the machine's drift hits them alike. A call is timed from
//! before its request is written to when its whole answer has been read (before the bench parses
//! it; the direct row's answer comes through a reader thread, as in `surface.rs`); calls/s is the
//! row's calls over the wall time of its blocks (bench's parsing included). Reported: p50 / p99,
//! calls/s, each against direct, and modern − legacy with the ratio.
//!
//! Then the gate's state: the serve process's VmRSS (children excluded) and, from `GET /metrics`,
//! `aegis_mcp_sessions` (the session table's entries; the legacy row's one session is open
//! throughout), before and after each of 3 rounds of 20 000 more modern calls, then after 20 000
//! legacy calls in the one session (the same reading for the era that keeps a session). A modern
//! call is a session of its own for the gate, numbered and never stored: the table must not
//! change (asserted), and RSS must not grow with the number of calls. A stored entry per call
//! would add at least some tens of bytes per call in every round alike; what the allocator keeps
//! (its arenas and their fragmentation, settling over the first 50 000 – 100 000 calls) comes in
//! steps and stops. With `AEGIS_ERAS_STATE_ROUNDS=24` (480 000 modern calls, about 70 s) RSS
//! stepped up to about 18.4 MB by the second round and then grew by 260 kB in all over the next
//! 440 000 modern calls (under 1 byte per call), and not at all over the legacy round
//! (`MALLOC_ARENA_MAX=1`: flat to the kB from 120 000 calls on).
//!
//! Environment: `AEGIS_ERAS_CALLS` (calls per row, default 20000), `AEGIS_ERAS_STATE_CALLS`
//! (modern calls per state round, and legacy calls after them, default 20000),
//! `AEGIS_ERAS_STATE_ROUNDS` (default 3). A client's connection that the gate closed while idle
//! (its keep-alive time, 60 s) is opened again between blocks, never within the timed calls.
//!
//! Last run, 2026-12-06, `flock -o /tmp/aegis-cargo.lock cargo bench --bench eras` (release
//! build, 2 cores shared with other sessions, load average 1.7; 21 s; modern − legacy p50 was
//! +1.0 to +13.8 µs over four runs of the day, compare rows within one run):
//!
//! | 1 client, 1 in flight, 20 000 each | p50 | p99 | calls/s | p50 / p99 vs direct |
//! |---|---|---|---|---|
//! | direct example-server (stdio) | 39.0 µs | 73.8 µs | 18 598 | |
//! | legacy, one session (HTTP) | 128.4 µs | 228.8 µs | 7 036 | +89.4 / +155.0 µs (3.29× / 3.10×) |
//! | modern, stateless (HTTP) | 142.2 µs | 244.0 µs | 6 312 | +103.2 / +170.2 µs (3.64× / 3.31×) |
//!
//! modern − legacy: p50 +13.8 µs (1.11×), p99 +15.2 µs (1.07×), calls/s −723 (0.90×).
//!
//! | reading | modern calls | VmRSS | vs previous | `aegis_mcp_sessions` |
//! |---|---|---|---|---|
//! | before (after warm-up and the rows) | 0 | 15 980 kB | | 1 |
//! | after modern round 1 | 20 000 | 16 084 kB | +104 kB | 1 |
//! | after modern round 2 | 40 000 | 16 392 kB | +308 kB | 1 |
//! | after modern round 3 | 60 000 | 16 668 kB | +276 kB | 1 |
//! | after 20 000 legacy calls | 60 000 | 16 732 kB | +64 kB | 1 |

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{loadavg, pct, HttpClient, Response, Serve, ADMIN, BIN};

/// How long one answer may take before the bench gives up (a hung gate must not hang the run).
const PATIENCE: Duration = Duration::from_secs(60);
const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";
const PATH: &str = "/mcp/bench";

/// The example server over its pipes, one request at a time (the direct row).
struct Direct {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    rx: mpsc::Receiver<(Instant, String)>,
    next_id: i64,
}

impl Direct {
    fn spawn() -> Direct {
        let mut child = common::spawn_piped(BIN, ["example-server"]);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let stdin = BufWriter::new(child.stdin.take().expect("stdin"));
        let mut direct = Direct {
            child,
            stdin,
            rx,
            next_id: 1,
        };
        let (_, init) = direct.exchange(
            "initialize",
            &json!({"protocolVersion": LEGACY, "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}),
        );
        assert!(init.get("result").is_some(), "initialize: {init}");
        writeln!(
            direct.stdin,
            "{}",
            json!({"jsonrpc":"2.0","method":"notifications/initialized"})
        )
        .expect("write");
        direct.stdin.flush().expect("flush");
        direct
    }

    /// One request: the time from before the write to the answer's line read, and the answer.
    fn exchange(&mut self, method: &str, params: &Value) -> (Duration, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
        let sent = Instant::now();
        writeln!(self.stdin, "{line}").expect("write");
        self.stdin.flush().expect("flush");
        loop {
            let (at, answer) = self.rx.recv_timeout(PATIENCE).expect("answer");
            let Ok(v) = serde_json::from_str::<Value>(&answer) else {
                continue;
            };
            if v["id"] == id {
                return (at - sent, v);
            }
        }
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client of the gate over HTTP, keep-alive, legacy (in a session) or modern (none).
struct Agent {
    http: HttpClient,
    addr: String,
    key: String,
    /// The legacy session's id; `None` for the modern client.
    session: Option<String>,
    next_id: i64,
}

impl Agent {
    fn legacy(addr: &str, key: &str) -> Agent {
        let mut http = HttpClient::connect(addr);
        let auth = [("Authorization", key)];
        let init = common::initialize_body(0, "bench-legacy");
        let r = http.request("POST", PATH, &auth, &init).expect("HTTP");
        assert_eq!(r.status, 200, "initialize: {}", r.text());
        let session = r
            .header("Mcp-Session-Id")
            .expect("Mcp-Session-Id")
            .to_owned();
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
        let headers = [
            ("Authorization", key),
            ("Mcp-Session-Id", session.as_str()),
            ("MCP-Protocol-Version", LEGACY),
        ];
        let r = http.request("POST", PATH, &headers, &note).expect("HTTP");
        assert_eq!(r.status, 202, "notifications/initialized: {}", r.text());
        Agent {
            http,
            addr: addr.to_owned(),
            key: key.to_owned(),
            session: Some(session),
            next_id: 1,
        }
    }

    fn modern(addr: &str, key: &str) -> Agent {
        Agent {
            http: HttpClient::connect(addr),
            addr: addr.to_owned(),
            key: key.to_owned(),
            session: None,
            next_id: 1,
        }
    }

    /// Connects again when the gate has closed the connection (it closes one idle for its
    /// keep-alive time, 60 s by default; the legacy session lives on in the gate). Called
    /// between blocks, never within the timed calls.
    fn reconnect_if_closed(&mut self) {
        if self.http.peer_closed() {
            self.http = HttpClient::connect(&self.addr);
        }
    }

    /// One `tools/call ex.echo`: the time from before the write to the whole answer read, the
    /// answer and its id.
    fn call(&mut self) -> (Duration, Response, i64) {
        let id = self.next_id;
        self.next_id += 1;
        let (took, response) = match &self.session {
            Some(session) => {
                let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
                    "name":"ex.echo","arguments":{"message":"bench"}}})
                .to_string();
                let headers = [
                    ("Authorization", self.key.as_str()),
                    ("Mcp-Session-Id", session.as_str()),
                    ("MCP-Protocol-Version", LEGACY),
                ];
                let t = Instant::now();
                let r = self.http.request("POST", PATH, &headers, &body);
                (t.elapsed(), r)
            }
            None => {
                let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
                    "name":"ex.echo","arguments":{"message":"bench"},
                    "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,
                        "io.modelcontextprotocol/clientCapabilities":{}}}})
                .to_string();
                let headers = [
                    ("Authorization", self.key.as_str()),
                    ("MCP-Protocol-Version", MODERN),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "ex.echo"),
                ];
                let t = Instant::now();
                let r = self.http.request("POST", PATH, &headers, &body);
                (t.elapsed(), r)
            }
        };
        (took, response.expect("HTTP"), id)
    }

    /// [`Agent::call`], checked: status 200 and the echo's text.
    fn checked_call(&mut self) -> Duration {
        let (took, r, id) = self.call();
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r
            .rpc(id)
            .unwrap_or_else(|| panic!("no answer {id}: {}", r.text()));
        assert_eq!(answer["result"]["content"][0]["text"], "bench", "{answer}");
        took
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `aegis_mcp_sessions` from `GET /metrics`.
fn sessions_gauge(addr: &str) -> u64 {
    let mut c = HttpClient::connect(addr);
    let admin = format!("Bearer {ADMIN}");
    let r = c
        .request("GET", "/metrics", &[("Authorization", admin.as_str())], "")
        .expect("HTTP");
    assert_eq!(r.status, 200, "/metrics: {}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("aegis_mcp_sessions "))
        .and_then(|v| v.trim().parse().ok())
        .expect("aegis_mcp_sessions in /metrics")
}

fn main() {
    let calls = env_num("AEGIS_ERAS_CALLS", 20_000).max(100);
    let state_calls = env_num("AEGIS_ERAS_STATE_CALLS", 20_000).max(1);
    let state_rounds = env_num("AEGIS_ERAS_STATE_ROUNDS", 3).max(1);
    println!(
        "aegis-gate eras bench (release build, this machine: {} cores, load average {})",
        std::thread::available_parallelism().map_or(0, usize::from),
        loadavg()
    );
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("aegis-bench-eras-{}", std::process::id()));
    let serve = Serve::start(&dir, &["--org-id", "bench-eras"]);
    let addr = serve.addr.clone();
    let key = serve
        .workspace("bench", &["ex".to_owned()], &[], 1)
        .remove(0);
    let mut direct = Direct::spawn();
    let mut legacy = Agent::legacy(&addr, &key);
    let mut modern = Agent::modern(&addr, &key);

    // Wait until the connection routes (its child starts in the background), then warm up.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, r, id) = legacy.call();
        let ok = r.status == 200
            && r.rpc(id)
                .is_some_and(|a| a["result"]["content"][0]["text"] == "bench");
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ex.echo never answered: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let echo = json!({"name": "echo", "arguments": {"message": "bench"}});
    for _ in 0..500 {
        let (_, a) = direct.exchange("tools/call", &echo);
        assert_eq!(a["result"]["content"][0]["text"], "bench", "{a}");
        legacy.checked_call();
        modern.checked_call();
    }
    let rss_warm = serve.rss_kib();

    // The three rows, interleaved.
    let labels = [
        "direct example-server (stdio)",
        "legacy, one session (HTTP)",
        "modern, stateless (HTTP)",
    ];
    let blocks = 20;
    let per_block = calls.div_ceil(blocks);
    let mut lat: Vec<Vec<Duration>> = vec![Vec::with_capacity(per_block * blocks); labels.len()];
    let mut wall = [Duration::ZERO; 3];
    for block in 0..blocks {
        let order: [usize; 3] = match block % 3 {
            0 => [0, 1, 2],
            1 => [1, 2, 0],
            _ => [2, 0, 1],
        };
        let order = if (block / 3) % 2 == 1 {
            [order[2], order[1], order[0]]
        } else {
            order
        };
        for row in order {
            legacy.reconnect_if_closed();
            modern.reconnect_if_closed();
            let t = Instant::now();
            for _ in 0..per_block {
                let took = match row {
                    0 => {
                        let (took, a) = direct.exchange("tools/call", &echo);
                        assert!(a.get("result").is_some(), "direct: {a}");
                        took
                    }
                    1 => legacy.checked_call(),
                    _ => modern.checked_call(),
                };
                lat[row].push(took);
            }
            wall[row] += t.elapsed();
        }
    }
    let timed = started.elapsed();

    // The gate's state around more calls: rounds of modern calls (the second shows whether what
    // the first added keeps growing), then as many legacy calls in the one session.
    let mut state: Vec<(&str, usize, u64, u64)> =
        vec![("before", 0usize, serve.rss_kib(), sessions_gauge(&addr))];
    let mut state_lat = Vec::with_capacity(state_rounds * state_calls);
    let t = Instant::now();
    let rounds: Vec<String> = (1..=state_rounds)
        .map(|r| format!("after modern round {r}"))
        .collect();
    for round in &rounds {
        modern.reconnect_if_closed();
        for _ in 0..state_calls {
            state_lat.push(modern.checked_call());
        }
        let done = state.last().map_or(0, |s| s.1) + state_calls;
        state.push((round.as_str(), done, serve.rss_kib(), sessions_gauge(&addr)));
    }
    let state_wall = t.elapsed();
    legacy.reconnect_if_closed();
    for _ in 0..state_calls {
        legacy.checked_call();
    }
    let done = state.last().map_or(0, |s| s.1);
    state.push((
        "after as many legacy calls",
        done,
        serve.rss_kib(),
        sessions_gauge(&addr),
    ));
    let threads = serve.threads();

    drop(direct);
    drop(legacy);
    drop(modern);
    serve.stop();

    println!();
    println!(
        "tools/call echo, 1 client, 1 in flight, keep-alive; {} calls per row in {blocks} \
         interleaved blocks (after 500 warm-up calls each); the gate's call is ex.echo, audit \
         trail on (the default)",
        per_block * blocks
    );
    println!(
        "   {:<31} {:>9} {:>9} {:>9} | {:>22} {:>22}",
        "row", "p50", "p99", "calls/s", "p50 vs direct", "p99 vs direct"
    );
    for row in &mut lat {
        row.sort();
    }
    let p = |row: usize, q: usize| pct(&lat[row], q);
    let rate = |row: usize| lat[row].len() as f64 / wall[row].as_secs_f64();
    for (row, label) in labels.iter().enumerate() {
        let vs = |q: usize| {
            if row == 0 {
                String::new()
            } else {
                format!(
                    "{:+.1}µs ({:.2}×)",
                    us(p(row, q)) - us(p(0, q)),
                    p(row, q).as_secs_f64() / p(0, q).as_secs_f64()
                )
            }
        };
        println!(
            "   {:<31} {:>7.1}µs {:>7.1}µs {:>9.0} | {:>22} {:>22}",
            label,
            us(p(row, 50)),
            us(p(row, 99)),
            rate(row),
            vs(50),
            vs(99)
        );
    }
    println!(
        "   modern − legacy: p50 {:+.1}µs ({:.2}×), p99 {:+.1}µs ({:.2}×), calls/s {:+.0} ({:.2}×)",
        us(p(2, 50)) - us(p(1, 50)),
        p(2, 50).as_secs_f64() / p(1, 50).as_secs_f64(),
        us(p(2, 99)) - us(p(1, 99)),
        p(2, 99).as_secs_f64() / p(1, 99).as_secs_f64(),
        rate(2) - rate(1),
        rate(2) / rate(1)
    );
    println!(
        "   added by the gate: legacy p50 {:+.1}µs / p99 {:+.1}µs, modern p50 {:+.1}µs / p99 \
         {:+.1}µs",
        us(p(1, 50)) - us(p(0, 50)),
        us(p(1, 99)) - us(p(0, 99)),
        us(p(2, 50)) - us(p(0, 50)),
        us(p(2, 99)) - us(p(0, 99))
    );

    state_lat.sort();
    println!();
    println!(
        "gate state around {state_rounds} × {state_calls} more modern calls (1 client; p50 {:.1}µs, p99 \
         {:.1}µs, {:.0} calls/s), then {state_calls} legacy calls in the one session; serve \
         process only, children excluded; VmRSS after warm-up {rss_warm} kB",
        us(pct(&state_lat, 50)),
        us(pct(&state_lat, 99)),
        state_lat.len() as f64 / state_wall.as_secs_f64()
    );
    println!(
        "   {:<27} {:>14} {:>10} {:>22} {:>19}",
        "reading", "modern calls", "VmRSS", "VmRSS vs previous", "aegis_mcp_sessions"
    );
    for (i, (label, done, rss, sessions)) in state.iter().enumerate() {
        let delta = if i == 0 {
            String::new()
        } else {
            let prev = state[i - 1].2;
            format!(
                "{:+} kB ({:+.1} B/call)",
                *rss as i64 - prev as i64,
                (*rss as f64 - prev as f64) * 1024.0 / state_calls as f64
            )
        };
        println!("   {label:<27} {done:>14} {rss:>7} kB {delta:>22} {sessions:>19}");
    }
    println!(
        "   threads at the end {threads}; the session table holds the legacy row's one session \
         throughout"
    );
    assert!(
        state.iter().all(|s| s.3 == state[0].3),
        "the session table changed with modern calls"
    );
    println!(
        "whole run {:.1} s (timed rows {:.1} s), load average at the end {}",
        started.elapsed().as_secs_f64(),
        timed.as_secs_f64(),
        loadavg()
    );
}

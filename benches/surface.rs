//! `cargo bench --bench surface`: the rest of the MCP surface through a stdio gate (#12,
//! "Performance (benchmark)"). Prints tables; asserts nothing but the answers' shape.
//!
//! 1. **Merged lists, cached.** One `aegis-gate stdio` with 50 example-server children (the full
//!    example server: 15 tools, 2 prompts, 2 resources, 1 template each). The gate never renames a
//!    URI and keeps the first of a URI two servers list, so 50 identical servers would merge into
//!    2 resources and 1 template; each child here is therefore wrapped in two `sed -u` that turn
//!    `example://` into `sN.example://` on the way out and back on the way in, so the merged lists
//!    hold 750 tools, 100 prompts, 100 resources and 50 templates. The gate's page size is its
//!    default (100). Each round walks `tools/list`, `prompts/list`, `resources/list` and
//!    `resources/templates/list`, one after another, every page (`nextCursor`); the first round is
//!    reported apart (it may wait for the children), the later ones are the cached figures: the
//!    first page alone and the whole walk, p50 / p99 each, for every list the same way.
//! 2. **Added latency of `resources/read` next to `tools/call`.** `resources/read
//!    example://readme` and `tools/call echo` sent to an example server directly (no gate) and
//!    through a stdio gate of 1 and of 50 plain example-server children (`s0` serves
//!    `example://readme`; the call is `s0.echo`), 1 in flight, the audit trail on (the default).
//!    The six rows are measured in interleaved blocks (every row a block in turn, again and again)
//!    so that the machine's drift hits them alike; reported: p50 / p99 and their difference and
//!    ratio against the direct figure of the same request.
//!
//! An answer is timed from before its request is written to when its line has been read (before
//! the bench parses it), so a list page's time is the gate's and the pipe's, not the bench's
//! parsing of 20 kB of JSON (`gate.rs`'s list rows time the answer after parsing it). A whole
//! walk is the sum of its pages' times.
//!
//! Environment: `AEGIS_SURFACE_ROUNDS` (list rounds after the first, default 1000),
//! `AEGIS_SURFACE_CALLS` (requests per row in part 2, default 20000).
//!
//! Last run, 2026-12-06 14:55 UTC, `flock -o /tmp/aegis-cargo.lock cargo bench --bench surface`
//! (release build, 2 cores shared with other sessions, load average 1.3 – 1.7; 14 s; expect
//! up to 2× between runs on this machine, compare rows within one run):
//!
//! | merged list, 50 servers, cached | entries | pages | page 1 p50 / p99 | whole walk p50 / p99 |
//! |---|---|---|---|---|
//! | `tools/list` | 750 | 8 | 68.1 / 116.7 µs | 659.1 / 926.7 µs |
//! | `prompts/list` | 100 | 1 | 79.1 / 127.3 µs | the same |
//! | `resources/list` | 100 | 1 | 71.6 / 109.7 µs | the same |
//! | `resources/templates/list` | 50 | 1 | 64.9 / 110.4 µs | the same |
//!
//! | 1 in flight, 20 000 each | direct p50 / p99 | gate of 1: p50 / p99 (added) | gate of 50: p50 / p99 (added) |
//! |---|---|---|---|
//! | `resources/read example://readme` | 16.8 / 31.0 µs | 56.1 / 110.4 µs (+39.3 / +79.4 µs, 3.3× / 3.6×) | 54.6 / 110.8 µs (+37.8 / +79.8 µs) |
//! | `tools/call echo` | 43.4 / 70.5 µs | 88.2 / 162.6 µs (+44.8 / +92.1 µs, 2.0× / 2.3×) | 81.8 / 153.3 µs (+38.4 / +82.8 µs) |

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{loadavg, pct, BIN};

/// How long one answer may take before the bench gives up (a hung gate must not hang the run).
const PATIENCE: Duration = Duration::from_secs(60);

/// A stdio peer (the example server or a gate) driven over its pipes, one request at a time.
struct Peer {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    rx: mpsc::Receiver<(Instant, String)>,
    next_id: i64,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        let mut child = common::spawn_piped(BIN, args);
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
        let mut peer = Peer {
            child,
            stdin,
            rx,
            next_id: 1,
        };
        peer.request(
            "initialize",
            json!({"protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"bench","version":"1"}}),
        );
        peer.notify("notifications/initialized");
        peer
    }

    fn notify(&mut self, method: &str) {
        writeln!(self.stdin, "{}", json!({"jsonrpc":"2.0","method":method})).expect("write");
        self.stdin.flush().expect("flush");
    }

    /// Sends one request and waits for its answer: the time from before the write to the
    /// answer's line read, the whole answer and its length in bytes.
    fn exchange(&mut self, method: &str, params: &Value) -> (Duration, Value, usize) {
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
                return (at - sent, v, answer.len());
            }
            // Else a notification (or a server's request): not what is timed.
        }
    }

    /// [`Peer::exchange`], the answer's `result`; panics on an error.
    fn request(&mut self, method: &str, params: Value) -> (Duration, Value, usize) {
        let (took, mut answer, bytes) = self.exchange(method, &params);
        let result = answer
            .get_mut("result")
            .map(Value::take)
            .unwrap_or_else(|| panic!("{method} failed: {answer}"));
        (took, result, bytes)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A stdio gate of `servers` (name, command, args) with its own data dir under `dir`.
fn gate(dir: &Path, label: &str, servers: &[(String, String, Vec<String>)]) -> Peer {
    let servers: serde_json::Map<String, Value> = servers
        .iter()
        .map(|(name, command, args)| (name.clone(), json!({"command": command, "args": args})))
        .collect();
    let config = dir.join(format!("{label}.json"));
    let body = json!({"mcpServers": servers, "aegis": {"startup_timeout_ms": 60000}});
    std::fs::write(&config, body.to_string()).expect("config");
    let data = dir.join(format!("data-{label}"));
    Peer::spawn(&[
        "stdio",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ])
}

fn main() {
    let rounds = env_num("AEGIS_SURFACE_ROUNDS", 1000).max(1);
    let calls = env_num("AEGIS_SURFACE_CALLS", 20_000).max(100);
    let dir = std::env::temp_dir().join(format!("aegis-bench-surface-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!(
        "aegis-gate surface bench (release build, this machine: {} cores, load average {})",
        std::thread::available_parallelism().map_or(0, usize::from),
        loadavg()
    );
    let started = Instant::now();
    merged_lists(&dir, rounds);
    added_latency(&dir, calls);
    println!(
        "whole run {:.1} s, load average at the end {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lists of part 1: method and the key of its entries.
const LISTS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// One walk of a list: the first page's time and bytes, the whole walk's time (the sum of its
/// pages' times: the bench's own parsing of a page, to find its cursor, is not the gate's), entries
/// and pages.
struct Walk {
    first_page: Duration,
    first_bytes: usize,
    whole: Duration,
    entries: usize,
    pages: usize,
}

fn walk(peer: &mut Peer, method: &str, key: &str) -> Walk {
    let mut cursor: Option<String> = None;
    let mut w = Walk {
        first_page: Duration::ZERO,
        first_bytes: 0,
        whole: Duration::ZERO,
        entries: 0,
        pages: 0,
    };
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let (took, result, bytes) = peer.request(method, params);
        if w.pages == 0 {
            w.first_page = took;
            w.first_bytes = bytes;
        }
        w.pages += 1;
        w.whole += took;
        w.entries += result[key].as_array().map_or(0, Vec::len);
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    w
}

fn merged_lists(dir: &Path, rounds: usize) {
    // What one example server offers, to know when the gate has all 50.
    let mut direct = Peer::spawn(&["example-server"]);
    let per_server: Vec<usize> = LISTS
        .iter()
        .map(|(method, key)| walk(&mut direct, method, key).entries)
        .collect();
    drop(direct);
    let n = 50;
    let servers: Vec<(String, String, Vec<String>)> = (0..n)
        .map(|i| {
            // sN.example://… to the agent, example://… to the server: distinct URIs per server.
            let script = format!(
                "sed -u 's|s{i}[.]example://|example://|g' | '{BIN}' example-server \
                 | sed -u 's|example://|s{i}.example://|g'"
            );
            (
                format!("s{i}"),
                "/bin/sh".to_owned(),
                vec!["-c".into(), script],
            )
        })
        .collect();
    let start = Instant::now();
    let mut gate = gate(dir, "lists", &servers);
    let initialized = start.elapsed();
    // The first round: the lists are complete once every child is in (the gate may answer
    // before the last child has listed).
    let mut first: Vec<Walk> = Vec::new();
    for ((method, key), one) in LISTS.iter().zip(&per_server) {
        loop {
            let w = walk(&mut gate, method, key);
            if w.entries >= one * n || start.elapsed() > PATIENCE {
                first.push(w);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let complete = start.elapsed();
    let mut pages: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); LISTS.len()];
    let mut walks: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); LISTS.len()];
    for _ in 0..rounds {
        for (i, (method, key)) in LISTS.iter().enumerate() {
            let w = walk(&mut gate, method, key);
            assert_eq!(
                w.entries, first[i].entries,
                "{method} changed during the run"
            );
            pages[i].push(w.first_page);
            walks[i].push(w.whole);
        }
    }
    drop(gate);
    println!();
    println!(
        "1. merged lists, one stdio gate, {n} example servers (URIs distinct per server), gate \
         page size 100 (default), cached: {rounds} rounds after the first, each list walked \
         whole in every round"
    );
    println!(
        "   gate started and initialized in {:.0} ms; every list complete {:.0} ms after start",
        initialized.as_secs_f64() * 1e3,
        complete.as_secs_f64() * 1e3
    );
    println!(
        "   {:<26} {:>7} {:>5} {:>8} | {:>10} {:>10} | {:>10} {:>10} | {:>12}",
        "list", "entries", "pages", "page 1 B", "page 1 p50", "p99", "walk p50", "p99", "1st walk"
    );
    for (i, (method, _)) in LISTS.iter().enumerate() {
        pages[i].sort();
        walks[i].sort();
        println!(
            "   {:<26} {:>7} {:>5} {:>8} | {:>8.1}µs {:>8.1}µs | {:>8.1}µs {:>8.1}µs | {:>10.1}µs",
            method,
            first[i].entries,
            first[i].pages,
            first[i].first_bytes,
            us(pct(&pages[i], 50)),
            us(pct(&pages[i], 99)),
            us(pct(&walks[i], 50)),
            us(pct(&walks[i], 99)),
            us(first[i].whole)
        );
    }
    let tools_page = pct(&pages[0], 99);
    let tools_walk = pct(&walks[0], 99);
    for (i, (method, _)) in LISTS.iter().enumerate().skip(1) {
        println!(
            "   {method} p99 next to tools/list's: first page {:.2}×, whole walk {:.2}×",
            pct(&pages[i], 99).as_secs_f64() / tools_page.as_secs_f64(),
            pct(&walks[i], 99).as_secs_f64() / tools_walk.as_secs_f64()
        );
    }
}

/// A request of part 2: how it is sent directly and through a gate.
struct Probe {
    label: &'static str,
    method: &'static str,
    direct: Value,
    gated: Value,
}

fn added_latency(dir: &Path, calls: usize) {
    let plain = |n: usize| -> Vec<(String, String, Vec<String>)> {
        (0..n)
            .map(|i| {
                (
                    format!("s{i}"),
                    BIN.to_owned(),
                    vec!["example-server".to_owned()],
                )
            })
            .collect()
    };
    let mut peers = vec![
        ("direct example-server", Peer::spawn(&["example-server"])),
        ("through the gate, 1 server", gate(dir, "one", &plain(1))),
        (
            "through the gate, 50 servers",
            gate(dir, "fifty", &plain(50)),
        ),
    ];
    let readme = json!({"uri": "example://readme"});
    let probes = [
        Probe {
            label: "resources/read example://readme",
            method: "resources/read",
            direct: readme.clone(),
            gated: readme,
        },
        Probe {
            label: "tools/call echo",
            method: "tools/call",
            direct: json!({"name": "echo", "arguments": {"message": "bench"}}),
            gated: json!({"name": "s0.echo", "arguments": {"message": "bench"}}),
        },
    ];
    // Wait until the 50-server gate routes both (its children start in the background), check
    // the answers are what is meant, and warm up.
    for (p, (_, peer)) in peers.iter_mut().enumerate() {
        for probe in &probes {
            let params = if p == 0 { &probe.direct } else { &probe.gated };
            let deadline = Instant::now() + PATIENCE;
            loop {
                let (_, answer, _) = peer.exchange(probe.method, params);
                if answer.get("result").is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "{}: {answer}", probe.label);
                std::thread::sleep(Duration::from_millis(20));
            }
            for _ in 0..500 {
                let (_, result, _) = peer.request(probe.method, params.clone());
                let ok = match probe.method {
                    "resources/read" => result["contents"][0]["text"].is_string(),
                    _ => result["content"][0]["text"] == "bench",
                };
                assert!(ok, "{}: {result}", probe.label);
            }
        }
    }
    let blocks = 20;
    let per_block = calls.div_ceil(blocks);
    let mut lat: Vec<Vec<Vec<Duration>>> =
        vec![vec![Vec::with_capacity(per_block * blocks); probes.len()]; peers.len()];
    for block in 0..blocks {
        // Alternate which request goes first in a block.
        let order = if block % 2 == 0 { [0, 1] } else { [1, 0] };
        for (p, (_, peer)) in peers.iter_mut().enumerate() {
            for q in order {
                let probe = &probes[q];
                let params = if p == 0 { &probe.direct } else { &probe.gated };
                for _ in 0..per_block {
                    let (took, answer, _) = peer.exchange(probe.method, params);
                    assert!(answer.get("result").is_some(), "{}: {answer}", probe.label);
                    lat[p][q].push(took);
                }
            }
        }
    }
    let labels: Vec<&str> = peers.iter().map(|(label, _)| *label).collect();
    drop(peers);
    println!();
    println!(
        "2. added latency, 1 in flight, {} requests per row in {blocks} interleaved blocks, \
         audit trail on; the gate's call is s0.echo, its read the same URI",
        per_block * blocks
    );
    println!(
        "   {:<34} {:<30} {:>9} {:>9} | {:>22} {:>22}",
        "request", "path", "p50", "p99", "p50 vs direct", "p99 vs direct"
    );
    let mut added = Vec::new();
    for (q, probe) in probes.iter().enumerate() {
        lat[0][q].sort();
        let (d50, d99) = (pct(&lat[0][q], 50), pct(&lat[0][q], 99));
        for (p, label) in labels.iter().enumerate() {
            lat[p][q].sort();
            let (p50, p99) = (pct(&lat[p][q], 50), pct(&lat[p][q], 99));
            let vs = |x: Duration, d: Duration| {
                if p == 0 {
                    String::new()
                } else {
                    format!(
                        "{:+.1}µs ({:.2}×)",
                        us(x) - us(d),
                        x.as_secs_f64() / d.as_secs_f64()
                    )
                }
            };
            println!(
                "   {:<34} {:<30} {:>7.1}µs {:>7.1}µs | {:>22} {:>22}",
                probe.label,
                label,
                us(p50),
                us(p99),
                vs(p50, d50),
                vs(p99, d99)
            );
            if p > 0 {
                added.push((probe.label, *label, us(p50) - us(d50), us(p99) - us(d99)));
            }
        }
    }
    for label in labels.iter().skip(1) {
        let row = |what: &str| {
            added
                .iter()
                .find(|(l, g, _, _)| l.starts_with(what) && g == label)
                .map_or((0.0, 0.0), |(_, _, a, b)| (*a, *b))
        };
        let (read50, read99) = row("resources/read");
        let (call50, call99) = row("tools/call");
        println!(
            "   added by the gate ({}): resources/read p50 {read50:+.1}µs / p99 {read99:+.1}µs, \
             tools/call p50 {call50:+.1}µs / p99 {call99:+.1}µs",
            label.trim_start_matches("through the gate, ")
        );
    }
}

//! `cargo bench --bench balanced`: `tools/call` throughput through HAProxy (run from the repo's
//! `deploy/haproxy.cfg`, its addresses replaced) in front of 1, 2 and 3 `serve --store`
//! replicas sharing one redis-server, against the same load sent straight to one replica in the
//! same round (issue #18). Needs `haproxy` and `redis-server` on the machine.
//!
//! The load: [`CLIENTS`] threads, each one keep-alive connection and one handshake-era session
//! (through the balancer: `initialize` round robin, the session's calls sticking to its
//! replica), calling the example server's `echo` one call after the other for the row's length.
//! Then the same with stateless 2026-07-28 calls (no session; through the balancer each call
//! may go to any replica), direct and through three replicas.
//! Rows are interleaved round by round, so a noisy moment of the machine spreads over all of
//! them; the ratio to the direct row of the same era is taken within each round.
//!
//! Prints one Markdown row per target: the median calls/s of the rounds (and their range), the
//! median ratio to the direct row, how busy the machine was, and the CPU time per call answered
//! by where it went (HAProxy, the gates, the example servers each replica runs, the load client,
//! the kernel's interrupts and softirqs, and other processes: redis and anything else running;
//! that last one is what is left of the machine's time, and a process's system time may
//! include softirq work counted under interrupts too, so on a quiet machine it is a few µs below
//! zero).
//! Then the figures of a back-of-the-envelope for large workspaces: a replica's memory per
//! session, the shared document's bytes per agent and per connection. Asserts nothing.
//! Environment: `AEGIS_BENCH_SECS` (per row and round, default 3), `AEGIS_BENCH_ROUNDS`
//! (default 3), `AEGIS_BENCH_CLIENTS` (default [`CLIENTS`]).

use serde_json::Value;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

mod common;

use common::cluster::{descendants, free_port, machine_busy_secs, process_secs, Haproxy, Redis};
use common::{HttpClient, Serve, ADMIN};

/// Sessions calling at once.
const CLIENTS: usize = 8;
/// The Fernet key every replica shares.
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const WS: &str = "bench";

fn main() {
    let secs = env_or("AEGIS_BENCH_SECS", 3);
    let rounds = env_or("AEGIS_BENCH_ROUNDS", 3);
    let clients = env_or("AEGIS_BENCH_CLIENTS", CLIENTS as u64) as usize;
    let dir = std::env::temp_dir().join(format!("aegis-bench-balanced-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");

    let redis = Redis::start(&dir);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // As deploy/haproxy.cfg asks: room for the balancers' connections, their Hosts allowed.
    let mut extra = vec!["--store".to_owned(), redis.url()];
    extra.extend(
        [
            "--max-connections",
            "2048",
            "--max-connections-per-peer",
            "1024",
        ]
        .map(String::from),
    );
    for port in &ports {
        extra.extend(["--allow-host".to_owned(), format!("127.0.0.1:{port}")]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let replicas: Vec<Serve> = (0..3)
        .map(|i| {
            Serve::start_with_env(
                &dir.join(format!("r{i}")),
                &extra,
                &[("AEGIS_FERNET_KEYS", FERNET_KEY)],
            )
        })
        .collect();
    let key = replicas[0]
        .workspace(WS, &["ex".to_owned()], &[], 1)
        .remove(0);
    for replica in &replicas {
        wait_running(&replica.addr);
    }
    session_memory(&replicas[2]);
    let balancers: Vec<Haproxy> = (1..=3)
        .map(|n| {
            let addrs: Vec<&str> = replicas[..n].iter().map(|r| r.addr.as_str()).collect();
            Haproxy::start(&dir.join(format!("lb{n}")), ports[n - 1], &addrs)
        })
        .collect();

    let mut targets = vec![Target {
        label: "direct to one replica".to_owned(),
        addr: replicas[0].addr.clone(),
        haproxy: None,
        modern: false,
        baseline: 0,
    }];
    for (n, lb) in balancers.iter().enumerate() {
        targets.push(Target {
            label: format!(
                "HAProxy, {} replica{}",
                n + 1,
                if n == 0 { "" } else { "s" }
            ),
            addr: lb.addr.clone(),
            haproxy: Some(lb.child.id()),
            modern: false,
            baseline: 0,
        });
    }
    // The stateless era: direct, and through the balancer of all three replicas, where each
    // call may go to another replica.
    let modern_base = targets.len();
    targets.push(Target {
        label: "2026-07-28, direct to one replica".to_owned(),
        addr: replicas[0].addr.clone(),
        haproxy: None,
        modern: true,
        baseline: modern_base,
    });
    targets.push(Target {
        label: "2026-07-28, HAProxy, 3 replicas".to_owned(),
        addr: balancers[2].addr.clone(),
        haproxy: Some(balancers[2].child.id()),
        modern: true,
        baseline: modern_base,
    });
    let gates: Vec<u32> = replicas.iter().map(|r| r.child.id()).collect();
    let servers: Vec<u32> = gates.iter().flat_map(|&pid| descendants(pid)).collect();
    let pids = Pids { gates, servers };
    let length = Duration::from_secs(secs);
    let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            runs[i].push(run(target, &pids, &key, clients, length));
        }
    }
    print_table(&targets, &runs, clients, secs, rounds);
    scale(&replicas[0], &redis);
    drop(balancers);
    drop(replicas);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where the load goes.
struct Target {
    label: String,
    addr: String,
    /// The balancer's pid, when the load goes through one.
    haproxy: Option<u32>,
    /// Stateless 2026-07-28 calls (no session: each call goes to any replica) instead of a
    /// handshake-era session's.
    modern: bool,
    /// The row (direct, same era) whose calls/s of the same round this one is a ratio to.
    baseline: usize,
}

/// One row's run: calls answered, calls answered otherwise, its length, and the CPU seconds
/// of each part (the machine's, HAProxy's, the gates', this process's).
struct Run {
    calls: u64,
    errors: u64,
    secs: f64,
    cpu: Cpu,
}

/// The processes whose CPU is counted apart: the replicas, and what they run (each replica's
/// example server and its supervisor).
struct Pids {
    gates: Vec<u32>,
    servers: Vec<u32>,
}

/// CPU seconds over one run.
#[derive(Default, Clone, Copy)]
struct Cpu {
    machine: f64,
    /// The machine's time in interrupts and softirqs (where loopback TCP is mostly handled).
    interrupts: f64,
    haproxy: f64,
    gates: f64,
    servers: f64,
    client: f64,
}

impl Cpu {
    fn now(haproxy: Option<u32>, pids: &Pids) -> Cpu {
        let sum = |list: &[u32]| list.iter().map(|pid| process_secs(&pid.to_string())).sum();
        let (machine, interrupts) = machine_busy_secs();
        Cpu {
            machine,
            interrupts,
            haproxy: haproxy.map_or(0.0, |pid| process_secs(&pid.to_string())),
            gates: sum(&pids.gates),
            servers: sum(&pids.servers),
            client: process_secs("self"),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        Cpu {
            machine: self.machine - start.machine,
            interrupts: self.interrupts - start.interrupts,
            haproxy: self.haproxy - start.haproxy,
            gates: self.gates - start.gates,
            servers: self.servers - start.servers,
            client: self.client - start.client,
        }
    }
}

/// `clients` sessions calling through `target` for `length`.
fn run(target: &Target, pids: &Pids, key: &str, clients: usize, length: Duration) -> Run {
    let ready = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, key, ready) = (target.addr.clone(), key.to_owned(), Arc::clone(&ready));
            let modern = target.modern;
            std::thread::spawn(move || match modern {
                false => client(&addr, &key, &ready, length),
                true => modern_client(&addr, &key, &ready, length),
            })
        })
        .collect();
    ready.wait();
    let (started, cpu_start) = (Instant::now(), Cpu::now(target.haproxy, pids));
    let (mut calls, mut errors) = (0, 0);
    for thread in threads {
        let (ok, bad) = thread.join().unwrap_or((0, 1));
        calls += ok;
        errors += bad;
    }
    let cpu = Cpu::now(target.haproxy, pids).since(cpu_start);
    Run {
        calls,
        errors,
        secs: started.elapsed().as_secs_f64(),
        cpu,
    }
}

/// One session: opened, then `echo` one call after the other for `length` from the moment
/// every client is ready, then ended (`DELETE`, so sessions do not pile up over the rounds).
fn client(addr: &str, key: &str, ready: &Barrier, length: Duration) -> (u64, u64) {
    let mut c = HttpClient::connect(addr);
    let auth = [("Authorization", key)];
    let path = format!("/mcp/{WS}");
    let (status, head, body) = c.post(&path, &auth, &common::initialize_body(1, "balanced"));
    let session = common::session_id(&head);
    ready.wait();
    if status != 200 || session.is_empty() {
        eprintln!("initialize: {status} {body}");
        return (0, 1);
    }
    let headers = [("Authorization", key), ("Mcp-Session-Id", session.as_str())];
    let until = Instant::now() + length;
    let (mut ok, mut bad, mut id) = (0, 0, 1);
    while Instant::now() < until {
        id += 1;
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"balanced"}}}}}}"#
        );
        match c.request("POST", &path, &headers, &call) {
            Ok(r) if r.status == 200 && r.text().contains(r#""text":"balanced""#) => ok += 1,
            Ok(_) => bad += 1,
            Err(_) => return (ok, bad + 1),
        }
    }
    let _ = c.request("DELETE", &path, &headers, "");
    (ok, bad)
}

/// Stateless 2026-07-28 calls, one after the other on one kept-alive connection, each with its
/// envelope and the era's headers, for `length` from the moment every client is ready.
fn modern_client(addr: &str, key: &str, ready: &Barrier, length: Duration) -> (u64, u64) {
    let mut c = HttpClient::connect(addr);
    let path = format!("/mcp/{WS}");
    let headers = [
        ("Authorization", key),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "ex.echo"),
    ];
    ready.wait();
    let until = Instant::now() + length;
    let (mut ok, mut bad, mut id) = (0, 0, 1);
    while Instant::now() < until {
        id += 1;
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"balanced"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"balanced","version":"1"}}}}}}}}"#
        );
        match c.request("POST", &path, &headers, &call) {
            Ok(r) if r.status == 200 && r.text().contains(r#""text":"balanced""#) => ok += 1,
            Ok(r) => {
                if bad == 0 {
                    eprintln!("2026-07-28 call: {} {}", r.status, r.text());
                }
                bad += 1;
            }
            Err(_) => return (ok, bad + 1),
        }
    }
    (ok, bad)
}

fn print_table(targets: &[Target], runs: &[Vec<Run>], clients: usize, secs: u64, rounds: u64) {
    println!(
        "\n{clients} sessions, one call at a time each, {secs} s per row, {rounds} rounds \
         interleaved; {} cores; CPU time per call answered, by where it was spent (medians)\n",
        cores()
    );
    println!(
        "| target | calls/s (median, range) | × direct | machine busy | CPU µs per call: all | \
         HAProxy | gates | example servers | load client | interrupts | other processes | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let capacity = cores() as f64;
    for (i, target) in targets.iter().enumerate() {
        let rate = |r: &Run| r.calls as f64 / r.secs;
        let rates: Vec<f64> = runs[i].iter().map(rate).collect();
        let ratios: Vec<f64> = runs[i]
            .iter()
            .zip(&runs[target.baseline])
            .map(|(r, direct)| rate(r) / rate(direct))
            .collect();
        let busy: Vec<f64> = runs[i]
            .iter()
            .map(|r| 100.0 * r.cpu.machine / (r.secs * capacity))
            .collect();
        let per_call = |part: fn(&Cpu) -> f64| {
            let costs: Vec<f64> = runs[i]
                .iter()
                .map(|r| 1e6 * part(&r.cpu) / r.calls.max(1) as f64)
                .collect();
            format!("{:.0}", median(&costs))
        };
        let other = |c: &Cpu| c.machine - c.interrupts - c.haproxy - c.gates - c.servers - c.client;
        let errors: u64 = runs[i].iter().map(|r| r.errors).sum();
        println!(
            "| {} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.0} % | {} | {} | {} | {} | {} | {} | {} | {errors} |",
            target.label,
            median(&rates),
            min(&rates),
            max(&rates),
            median(&ratios),
            median(&busy),
            per_call(|c| c.machine),
            per_call(|c| c.haproxy),
            per_call(|c| c.gates),
            per_call(|c| c.servers),
            per_call(|c| c.client),
            per_call(|c| c.interrupts),
            per_call(other),
        );
    }
    println!(
        "\nload average (1 min) after the runs: {}",
        common::loadavg()
    );
}

/// What a back-of-the-envelope for large workspaces needs, measured: the shared document's
/// bytes per agent and per connection (and redis's memory for it), a REST write's time at that
/// size, and a replica's memory per open session.
fn scale(replica: &Serve, redis: &Redis) {
    const AGENTS: usize = 1000;
    const CONNECTIONS: usize = 200;
    let admin = format!("Bearer {ADMIN}");
    let auth = [("Authorization", admin.as_str())];
    let mut c = HttpClient::connect(&replica.addr);
    let mut post = |path: &str, body: Value| {
        let started = Instant::now();
        let (status, _, text) = c.post(&format!("/api/v1/aegis{path}"), &auth, &body.to_string());
        assert!(status < 300, "{path}: {status} {text}");
        (started.elapsed(), text)
    };
    let (doc0, mem0) = (redis.document_bytes(), redis.used_memory());
    // In a workspace never activated: its connections start no child on any replica.
    let mut writes = Vec::new();
    for i in 0..AGENTS {
        let agent = serde_json::json!({"workspace_id": "scale", "name": format!("agent-{i}")});
        writes.push(post("/agents", agent).0);
    }
    let doc1 = redis.document_bytes();
    for i in 0..CONNECTIONS {
        let connection = serde_json::json!({"workspace_id": "scale", "name": format!("s{i}"),
            "command": [common::BIN, "example-server", "--tools-only"],
            "env": {"API_TOKEN": format!("tok-{i:040}")}});
        writes.push(post("/connections", connection).0);
    }
    let (doc2, mem2) = (redis.document_bytes(), redis.used_memory());
    let last: Vec<f64> = writes[writes.len() - 100..]
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    println!(
        "
shared document: {doc0} bytes at the start; {:.0} bytes per agent ({AGENTS} created), \
         {:.0} bytes per connection ({CONNECTIONS}, each with one secret env value); {doc2} bytes \
         in all; redis used_memory {:.1} → {:.1} MiB; a REST write at that size (the last 100): \
         median {:.1} ms, max {:.1} ms (three replicas following)",
        (doc1 - doc0) as f64 / AGENTS as f64,
        (doc2 - doc1) as f64 / CONNECTIONS as f64,
        mem0 as f64 / 1048576.0,
        mem2 as f64 / 1048576.0,
        median(&last),
        max(&last),
    );
}

/// A replica's memory per open session: `SESSION_AGENTS` agents open 100 sessions each (the
/// per-agent quota) on a replica that has served nothing yet, whose RSS is read before and after;
/// the sessions are ended afterwards.
fn session_memory(replica: &Serve) {
    const SESSIONS_PER_AGENT: usize = 100;
    // 2 000 in all: the default per-workspace quota.
    const SESSION_AGENTS: usize = 20;
    let admin = format!("Bearer {ADMIN}");
    let mut c = HttpClient::connect(&replica.addr);
    let keys: Vec<String> = (0..SESSION_AGENTS)
        .map(|i| {
            let agent = serde_json::json!({"workspace_id": WS, "name": format!("s-{i}")});
            let (status, _, text) = c.post(
                "/api/v1/aegis/agents",
                &[("Authorization", admin.as_str())],
                &agent.to_string(),
            );
            assert_eq!(status, 201, "{text}");
            let agent: Value = serde_json::from_str(&text).unwrap_or_default();
            format!("Bearer {}", agent["key"].as_str().unwrap_or_default())
        })
        .collect();
    let rss0 = replica.rss_kib();
    let mut opened = Vec::new();
    for key in &keys {
        for _ in 0..SESSIONS_PER_AGENT {
            let init = common::initialize_body(1, "scale");
            let (status, head, _) = c.post(&format!("/mcp/{WS}"), &[("Authorization", key)], &init);
            let id = common::session_id(&head);
            if status == 200 && !id.is_empty() {
                opened.push((key, id));
            }
        }
    }
    let rss1 = replica.rss_kib();
    println!(
        "\nsessions: {} opened on one replica, its RSS {:.1} → {:.1} MiB: {:.1} KiB per session",
        opened.len(),
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 / opened.len().max(1) as f64,
    );
    for (key, id) in &opened {
        let headers = [
            ("Authorization", key.as_str()),
            ("Mcp-Session-Id", id.as_str()),
        ];
        let _ = c.request("DELETE", &format!("/mcp/{WS}"), &headers, "");
    }
}

/// Waits (up to 30 s) until `addr` runs the workspace's connection.
fn wait_running(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let auth = format!("Bearer {ADMIN}");
    loop {
        let mut c = HttpClient::connect(addr);
        let r = c
            .request(
                "GET",
                &format!("/api/v1/aegis/workspaces/{WS}"),
                &[("Authorization", &auth)],
                "",
            )
            .expect("GET workspace");
        let view: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if view["connections"][0]["health"]["status"] == "healthy" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} does not run {WS}: {view}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

//! `cargo bench --bench soak`: serve mode over time and under held calls (issue #11). Prints
//! figures; asserts nothing.
//!
//! - **Soak**: `serve` with a workspace of the example server and 8 SDK-like clients, each with
//!   its own agent key, one keep-alive connection and one session (`initialize`,
//!   `notifications/initialized`, then bursts of 1–4 `tools/call` echo and one `tools/list`,
//!   a random idle gap of 0–20 s between bursts; seeded, so every run makes the same requests at
//!   the same times). A client reuses its connection and session; it reconnects only when the
//!   gate closed the connection (counted). Errors are any I/O error or timeout (30 s), any
//!   status but 200, any JSON-RPC error and any answer that is not the expected one. Reported:
//!   requests, errors, reconnects, latency next to a baseline of the same requests made back to
//!   back by one client on the quiet gate just before, and the gate's VmRSS and threads after
//!   warm-up, every tenth of the run, and at the end (every client still connected).
//! - **Held calls**: `serve --workers 16`, four example servers, 200 connections and sessions
//!   (four agents, each on its own loopback address, so the defaults of 64 connections per
//!   address, 100 sessions per agent and 64 calls in flight per server all hold) each making
//!   one `sleep` call of 5 s at once; meanwhile a fifth agent sends a `ping` and an `echo` call
//!   every 10 ms. Reported: their latency while the calls are held next to the same on the idle
//!   gate just before.
//!
//! Environment: `AEGIS_SOAK_SECS` (default 600), `AEGIS_SOAK_SEED` (default 11),
//! `AEGIS_SOAK_PHASE` (`soak`, `held` or `all`, the default), `AEGIS_HELD_RUNS` (default 1).

mod common;

use common::{initialize_body, loadavg, ms, noise_near, pct, HttpClient, Noise, Rng, Serve};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const MAX_GAP_MS: u64 = 20_000;
const TIMEOUT: Duration = Duration::from_secs(30);
const PROTOCOL: &str = "2025-11-25";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let phase = std::env::var("AEGIS_SOAK_PHASE").unwrap_or_else(|_| "all".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "aegis-gate soak bench (release build, {} cores; unix time {started})",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    if phase == "all" || phase == "soak" {
        soak(
            Duration::from_secs(env_num("AEGIS_SOAK_SECS", 600)),
            env_num("AEGIS_SOAK_SEED", 11),
        );
    }
    if phase == "all" || phase == "held" {
        for run in 1..=env_num("AEGIS_HELD_RUNS", 1) {
            held(run);
        }
    }
}

fn bench_dir(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("aegis-soak-{what}-{}", std::process::id()))
}

/// What one client saw.
#[derive(Default)]
struct Stats {
    calls: u64,
    lists: u64,
    errors: u64,
    /// The first few errors, said.
    said: Vec<String>,
    reconnects: u64,
    call_lat: Vec<Duration>,
    list_lat: Vec<Duration>,
    /// Every answered request of the measured part, when it was sent.
    timeline: Vec<Sample>,
}

/// One answered request of the soak.
#[derive(Clone, Copy)]
struct Sample {
    /// When it was sent, from the start of the soak.
    at: Duration,
    took: Duration,
    method: &'static str,
    /// The first request after an idle gap.
    first: bool,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.said.len() < 5 {
            self.said.push(what);
        }
    }

    fn merge(&mut self, other: Stats) {
        self.calls += other.calls;
        self.lists += other.lists;
        self.errors += other.errors;
        self.said.extend(other.said);
        self.reconnects += other.reconnects;
        self.call_lat.extend(other.call_lat);
        self.list_lat.extend(other.list_lat);
        self.timeline.extend(other.timeline);
    }
}

/// An SDK-like MCP client: one keep-alive connection, reused; one session.
struct Client {
    name: String,
    addr: String,
    source: Option<Ipv4Addr>,
    key: String,
    path: String,
    http: Option<HttpClient>,
    session: Option<String>,
    next_id: i64,
    stats: Stats,
    /// The start of the measured part, once it started.
    t0: Option<Instant>,
    /// The next request is the first after an idle gap.
    first: bool,
}

impl Client {
    fn new(name: String, addr: &str, source: Option<Ipv4Addr>, key: &str, path: &str) -> Client {
        Client {
            name,
            addr: addr.to_owned(),
            source,
            key: key.to_owned(),
            path: path.to_owned(),
            http: None,
            session: None,
            next_id: 0,
            stats: Stats::default(),
            t0: None,
            first: false,
        }
    }

    /// The connection, opened again when the gate closed it (counted).
    fn connection(&mut self) -> Result<&mut HttpClient, String> {
        if self.http.as_ref().is_some_and(HttpClient::peer_closed) {
            self.http = None;
            self.stats.reconnects += 1;
        }
        if self.http.is_none() {
            let http = HttpClient::try_connect(&self.addr, self.source, Some(TIMEOUT))
                .map_err(|e| format!("connect: {e}"))?;
            self.http = Some(http);
        }
        self.http.as_mut().ok_or_else(|| "no connection".to_owned())
    }

    /// One POST of a JSON-RPC message; the answer with `id` (None: a notification, 202).
    fn post(&mut self, body: &str, id: Option<i64>) -> Result<Value, String> {
        let mut headers = vec![("Authorization", self.key.clone())];
        if let Some(session) = &self.session {
            headers.push(("Mcp-Session-Id", session.clone()));
            headers.push(("MCP-Protocol-Version", PROTOCOL.to_owned()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = self.path.clone();
        let http = self.connection()?;
        let response = match http.request("POST", &path, &headers, body) {
            Ok(r) => r,
            Err(e) => {
                // Whatever state the connection is in, it is not usable: the next request opens
                // a new one (counted as a reconnect).
                self.http = None;
                self.stats.reconnects += 1;
                return Err(format!("I/O: {e}"));
            }
        };
        if response.closing {
            self.http = None;
            self.stats.reconnects += 1;
        }
        if let Some(session) = response.header("Mcp-Session-Id") {
            self.session = Some(session.to_owned());
        }
        let Some(id) = id else {
            return match response.status {
                202 => Ok(Value::Null),
                s => Err(format!("notification: status {s}: {}", response.text())),
            };
        };
        if response.status != 200 {
            return Err(format!("status {}: {}", response.status, response.text()));
        }
        let answer = response
            .rpc(id)
            .ok_or_else(|| format!("no answer with id {id} in {}", response.text()))?;
        if answer.get("error").is_some() {
            return Err(format!("JSON-RPC error: {answer}"));
        }
        Ok(answer)
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(&body.to_string(), Some(id))
    }

    fn initialize(&mut self) -> Result<(), String> {
        self.session = None;
        self.next_id += 1;
        let id = self.next_id;
        self.post(&initialize_body(id, &self.name), Some(id))?;
        if self.session.is_none() {
            return Err("initialize: no Mcp-Session-Id".into());
        }
        self.post(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            None,
        )?;
        Ok(())
    }

    fn sample(&mut self, sent: Instant, took: Duration, method: &'static str) {
        if let Some(t0) = self.t0 {
            self.stats.timeline.push(Sample {
                at: sent.saturating_duration_since(t0),
                took,
                method,
                first: self.first,
            });
        }
        self.first = false;
    }

    /// An echo call, checked, its latency recorded.
    fn echo(&mut self, tool: &str) {
        let message = format!("{} {}", self.name, self.next_id + 1);
        let t = Instant::now();
        let answer = self.request(
            "tools/call",
            json!({"name": tool, "arguments": {"message": message}}),
        );
        let took = t.elapsed();
        self.stats.calls += 1;
        match answer {
            Ok(v)
                if v["result"]["isError"] != true
                    && v["result"]["content"][0]["text"] == message.as_str() =>
            {
                self.stats.call_lat.push(took);
                self.sample(t, took, "tools/call");
            }
            Ok(v) => self
                .stats
                .error(format!("{}: echo answered {v}", self.name)),
            Err(e) => self.stats.error(format!("{}: tools/call: {e}", self.name)),
        }
    }

    /// A tools/list, checked, its latency recorded.
    fn list(&mut self) {
        let t = Instant::now();
        let answer = self.request("tools/list", json!({}));
        let took = t.elapsed();
        self.stats.lists += 1;
        match answer {
            Ok(v)
                if v["result"]["tools"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty()) =>
            {
                self.stats.list_lat.push(took);
                self.sample(t, took, "tools/list");
            }
            Ok(v) => self
                .stats
                .error(format!("{}: tools/list answered {v}", self.name)),
            Err(e) => self.stats.error(format!("{}: tools/list: {e}", self.name)),
        }
    }

    /// `DELETE` of the session, as an SDK client does when it closes.
    fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let key = self.key.clone();
        let path = self.path.clone();
        let deleted = self.connection().and_then(|http| {
            http.request(
                "DELETE",
                &path,
                &[("Authorization", &key), ("Mcp-Session-Id", &session)],
                "",
            )
            .map_err(|e| e.to_string())
        });
        match deleted {
            Ok(r) if r.status == 204 => {}
            Ok(r) => self
                .stats
                .error(format!("{}: DELETE: status {}", self.name, r.status)),
            Err(e) => self.stats.error(format!("{}: DELETE: {e}", self.name)),
        }
        self.http = None;
    }
}

fn latency_row(label: &str, lat: &mut [Duration], base: &mut [Duration]) {
    lat.sort();
    base.sort();
    let ratio = |p: usize| ms(pct(lat, p)) / ms(pct(base, p)).max(1e-9);
    println!(
        "  {label:<34} n {:>6}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms  | baseline p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms  | ratio p50 {:>4.2}  p99 {:>4.2}",
        lat.len(),
        ms(pct(lat, 50)),
        ms(pct(lat, 99)),
        ms(lat.last().copied().unwrap_or_default()),
        ms(pct(base, 50)),
        ms(pct(base, 99)),
        ms(base.last().copied().unwrap_or_default()),
        ratio(50),
        ratio(99)
    );
}

fn soak(duration: Duration, seed: u64) {
    let serve = Serve::start(&bench_dir("soak"), &[]);
    let keys = serve.workspace("soak", &["ex".to_owned()], &[], CLIENTS);
    let addr = serve.addr.clone();
    println!(
        "soak: {} s, {CLIENTS} clients (each its own agent, connection and session), bursts of 1-4 \
         ex.echo + 1 tools/list, idle gaps 0-{} s (seed {seed}); serve pid {}",
        duration.as_secs(),
        MAX_GAP_MS / 1000,
        serve.child.id()
    );

    // Baseline: the same requests back to back, one client, the gate otherwise quiet.
    let mut base = Client::new("baseline".into(), &addr, None, &keys[0], "/mcp/soak");
    if let Err(e) = base.initialize() {
        println!("soak: baseline initialize failed: {e}");
        return;
    }
    for i in 0..2200 {
        if i % 5 == 4 {
            base.list();
        } else {
            base.echo("ex.echo");
        }
        if i == 199 {
            base.stats = Stats::default(); // The first 200 warm up.
        }
    }
    base.close();
    let mut base = base.stats;
    if base.errors > 0 {
        println!("soak: baseline errors: {} {:?}", base.errors, base.said);
    }

    let ready = Arc::new(Barrier::new(CLIENTS + 1));
    let done = Arc::new(Barrier::new(CLIENTS + 1));
    let measured = Arc::new(Barrier::new(CLIENTS + 1));
    let go = Arc::new(Barrier::new(CLIENTS + 1));
    let start_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let clients: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (ready, go, done, measured, start_at) = (
                Arc::clone(&ready),
                Arc::clone(&go),
                Arc::clone(&done),
                Arc::clone(&measured),
                Arc::clone(&start_at),
            );
            let mut c = Client::new(format!("client-{i}"), &addr, None, key, "/mcp/soak");
            let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(i as u64));
            std::thread::spawn(move || {
                if let Err(e) = c.initialize() {
                    c.stats.error(format!("{}: initialize: {e}", c.name));
                }
                for _ in 0..10 {
                    c.echo("ex.echo");
                }
                c.list();
                c.stats = Stats {
                    errors: c.stats.errors,
                    said: std::mem::take(&mut c.stats.said),
                    ..Stats::default()
                };
                ready.wait();
                go.wait();
                let start = start_at
                    .lock()
                    .map_or_else(|_| Instant::now(), |s| s.unwrap_or_else(Instant::now));
                let end = start + duration;
                c.t0 = Some(start);
                while Instant::now() < end {
                    c.first = true;
                    let n_calls = 1 + rng.below(4);
                    let list_at = rng.below(n_calls + 1);
                    for k in 0..=n_calls {
                        if k == list_at {
                            c.list();
                        } else {
                            c.echo("ex.echo");
                        }
                    }
                    let gap = Duration::from_millis(rng.below(MAX_GAP_MS + 1));
                    let left = end.saturating_duration_since(Instant::now());
                    std::thread::sleep(gap.min(left));
                }
                done.wait();
                measured.wait();
                c.close();
                c.stats
            })
        })
        .collect();

    ready.wait();
    let rss_start = serve.rss_kib();
    let threads_start = serve.threads();
    let cpu_start = serve.cpu_secs();
    let start = Instant::now();
    let noise = Noise::start(start);
    if let Ok(mut s) = start_at.lock() {
        *s = Some(start);
    }
    go.wait();
    println!(
        "soak: warmed up; gate VmRSS {rss_start} kB, {threads_start} threads (children excluded)"
    );
    let interval = (duration / 10).max(Duration::from_secs(10));
    let mut next = start + interval;
    while next < start + duration {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        println!(
            "soak: t={:>4} s  VmRSS {} kB  threads {}  gate CPU {:.2} s  load average {}",
            start.elapsed().as_secs(),
            serve.rss_kib(),
            serve.threads(),
            serve.cpu_secs() - cpu_start,
            loadavg()
        );
        next += interval;
    }
    done.wait();
    let rss_end = serve.rss_kib();
    let threads_end = serve.threads();
    let cpu = serve.cpu_secs() - cpu_start;
    let wall = start.elapsed();
    let mut noise = noise.stop();
    measured.wait();
    let mut all = Stats::default();
    for c in clients {
        match c.join() {
            Ok(stats) => all.merge(stats),
            Err(_) => all.error("a client thread panicked".into()),
        }
    }
    println!(
        "soak: {:.0} s; {} tools/call + {} tools/list = {} requests; errors {}; reconnects {}",
        wall.as_secs_f64(),
        all.calls,
        all.lists,
        all.calls + all.lists,
        all.errors,
        all.reconnects
    );
    for said in &all.said {
        println!("  error: {said}");
    }
    latency_row("tools/call ex.echo", &mut all.call_lat, &mut base.call_lat);
    latency_row("tools/list", &mut all.list_lat, &mut base.list_lat);
    let mut base_all: Vec<Duration> = base
        .call_lat
        .iter()
        .chain(&base.list_lat)
        .copied()
        .collect();
    let split = |first: bool| -> Vec<Duration> {
        all.timeline
            .iter()
            .filter(|s| s.first == first)
            .map(|s| s.took)
            .collect()
    };
    latency_row(
        "first request after an idle gap",
        &mut split(true),
        &mut base_all,
    );
    latency_row(
        "later requests of a burst",
        &mut split(false),
        &mut base_all,
    );
    let mut overshoot: Vec<Duration> = noise.iter().map(|(_, o)| *o).collect();
    overshoot.sort();
    println!(
        "soak: machine noise (the bench's own 10 ms sleeps, {} of them, overshooting): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms; gate CPU {cpu:.2} s in {:.0} s",
        overshoot.len(),
        ms(pct(&overshoot, 50)),
        ms(pct(&overshoot, 99)),
        ms(overshoot.last().copied().unwrap_or_default()),
        wall.as_secs_f64()
    );
    all.timeline.sort_by_key(|s| std::cmp::Reverse(s.took));
    noise.sort_by_key(|(t, _)| *t);
    for s in all.timeline.iter().take(8) {
        println!(
            "  slow: t={:>7.3} s  {:<10} {:>8.3} ms  {}  largest sleep overshoot within 1 s: {:.3} ms",
            s.at.as_secs_f64(),
            s.method,
            ms(s.took),
            if s.first { "first after a gap" } else { "in a burst       " },
            ms(noise_near(&noise, s.at, Duration::from_secs(1)))
        );
    }
    println!(
        "soak: gate VmRSS {rss_start} kB after warm-up, {rss_end} kB at the end: {:+} kB; threads {threads_start} -> {threads_end}",
        rss_end as i64 - rss_start as i64
    );
    serve.stop();
}

/// The calls of the held phase.
const HELD_CALLS: usize = 200;
const HELD_GROUPS: usize = 4;
const SLEEP_MS: u64 = 5_000;
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// One probe round: a `ping` on one connection, an `echo` call on another; their latencies.
fn probe(
    ping: &mut Client,
    echo: &mut Client,
    pings: &mut Vec<Duration>,
    echoes: &mut Vec<Duration>,
) {
    let t = Instant::now();
    match ping.request("ping", json!({})) {
        Ok(v) if v.get("result").is_some() => pings.push(t.elapsed()),
        Ok(v) => ping.stats.error(format!("ping answered {v}")),
        Err(e) => ping.stats.error(format!("ping: {e}")),
    }
    let before = echo.stats.call_lat.len();
    echo.echo("ex0.echo");
    if let Some(took) = echo.stats.call_lat.get(before) {
        echoes.push(*took);
    }
}

fn held(run: u64) {
    let serve = Serve::start(&bench_dir("held"), &["--workers", "16"]);
    let names: Vec<String> = (0..HELD_GROUPS).map(|g| format!("ex{g}")).collect();
    let keys = serve.workspace("held", &names, &[], HELD_GROUPS + 1);
    let addr = serve.addr.clone();
    println!(
        "held run {run}: serve --workers 16, {HELD_CALLS} sessions on {HELD_CALLS} connections \
         ({HELD_GROUPS} agents from 127.0.0.2-{}), each one ex*.sleep {SLEEP_MS} ms call at once; \
         a fifth agent pings and echoes every {} ms; serve pid {}",
        1 + HELD_GROUPS,
        PROBE_EVERY.as_millis(),
        serve.child.id()
    );
    // The 200 sessions, opened before anything is measured.
    let mut callers = Vec::with_capacity(HELD_CALLS);
    for i in 0..HELD_CALLS {
        let group = i * HELD_GROUPS / HELD_CALLS;
        let source = Ipv4Addr::new(127, 0, 0, 2 + group as u8);
        let mut c = Client::new(
            format!("held-{i}"),
            &addr,
            Some(source),
            &keys[group],
            "/mcp/held",
        );
        if let Err(e) = c.initialize() {
            println!("held run {run}: session {i} could not start: {e}");
            return;
        }
        callers.push((group, c));
    }
    let probe_key = &keys[HELD_GROUPS];
    let mut ping = Client::new("ping".into(), &addr, None, probe_key, "/mcp/held");
    let mut echo = Client::new("echo".into(), &addr, None, probe_key, "/mcp/held");
    if let Err(e) = ping.initialize().and_then(|()| echo.initialize()) {
        println!("held run {run}: the probe sessions could not start: {e}");
        return;
    }
    let (mut idle_pings, mut idle_echoes) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        probe(&mut ping, &mut echo, &mut idle_pings, &mut idle_echoes); // Warm-up.
    }
    idle_pings.clear();
    idle_echoes.clear();
    let idle_until = Instant::now() + Duration::from_millis(SLEEP_MS);
    while Instant::now() < idle_until {
        let t = Instant::now();
        probe(&mut ping, &mut echo, &mut idle_pings, &mut idle_echoes);
        std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
    }
    let threads_idle = serve.threads();

    let go = Arc::new(Barrier::new(HELD_CALLS + 1));
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = callers
        .into_iter()
        .map(|(group, mut c)| {
            let (go, answered) = (Arc::clone(&go), Arc::clone(&answered));
            std::thread::spawn(move || {
                go.wait();
                let t = Instant::now();
                let answer = c.request(
                    "tools/call",
                    json!({"name": format!("ex{group}.sleep"), "arguments": {"ms": SLEEP_MS}}),
                );
                let took = t.elapsed();
                answered.fetch_add(1, Ordering::SeqCst);
                let result = match answer {
                    Ok(v) if v["result"]["isError"] != true => Ok(took),
                    Ok(v) => Err(format!("sleep answered {v}")),
                    Err(e) => Err(e),
                };
                c.close();
                result
            })
        })
        .collect();
    go.wait();
    let held_from = Instant::now();
    let noise = Noise::start(held_from);
    let (mut held_pings, mut held_echoes) = (Vec::new(), Vec::new());
    let mut threads_held = 0;
    let mut ping_at = Vec::new();
    while answered.load(Ordering::SeqCst) < HELD_CALLS && held_from.elapsed() < 2 * TIMEOUT {
        let t = Instant::now();
        let n = held_pings.len();
        probe(&mut ping, &mut echo, &mut held_pings, &mut held_echoes);
        if let Some(took) = held_pings.get(n) {
            ping_at.push((t - held_from, *took));
        }
        if threads_held == 0 && held_from.elapsed() > Duration::from_millis(SLEEP_MS / 2) {
            threads_held = serve.threads();
        }
        std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
    }
    let mut noise: Vec<Duration> = noise.stop().into_iter().map(|(_, o)| o).collect();
    noise.sort();
    let mut slow = Vec::new();
    let mut failed = Vec::new();
    for w in workers {
        match w.join() {
            Ok(Ok(took)) => slow.push(took),
            Ok(Err(e)) => failed.push(e),
            Err(_) => failed.push("a caller thread panicked".into()),
        }
    }
    slow.sort();
    println!(
        "held run {run}: sleep calls answered without error: {}/{HELD_CALLS}, latency min {:.0} ms, p50 {:.0} ms, max {:.0} ms; \
         probe errors {}; gate threads idle {threads_idle}, while held {threads_held}",
        slow.len(),
        ms(slow.first().copied().unwrap_or_default()),
        ms(pct(&slow, 50)),
        ms(slow.last().copied().unwrap_or_default()),
        ping.stats.errors + echo.stats.errors,
    );
    for e in failed
        .iter()
        .take(5)
        .chain(&ping.stats.said)
        .chain(&echo.stats.said)
    {
        println!("  error: {e}");
    }
    ping_at.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    let slowest: Vec<String> = ping_at
        .iter()
        .take(5)
        .map(|(at, took)| format!("{:.3} ms at t={:.3} s", ms(*took), at.as_secs_f64()))
        .collect();
    println!(
        "held run {run}: slowest pings (t from the moment the 200 calls were sent): {}",
        slowest.join(", ")
    );
    latency_row(
        "ping while held (vs idle)",
        &mut held_pings,
        &mut idle_pings,
    );
    latency_row(
        "ex0.echo while held (vs idle)",
        &mut held_echoes,
        &mut idle_echoes,
    );
    held_pings.sort();
    idle_pings.sort();
    println!(
        "held run {run}: ping added by the held calls: p50 {:+.3} ms, p99 {:+.3} ms, max {:+.3} ms",
        ms(pct(&held_pings, 50)) - ms(pct(&idle_pings, 50)),
        ms(pct(&held_pings, 99)) - ms(pct(&idle_pings, 99)),
        ms(held_pings.last().copied().unwrap_or_default())
            - ms(idle_pings.last().copied().unwrap_or_default()),
    );
    println!(
        "held run {run}: machine noise while held (the bench's own 10 ms sleeps overshooting): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms; load average {}",
        ms(pct(&noise, 50)),
        ms(pct(&noise, 99)),
        ms(noise.last().copied().unwrap_or_default()),
        loadavg()
    );
    ping.close();
    echo.close();
    serve.stop();
}

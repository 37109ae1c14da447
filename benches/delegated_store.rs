//! `cargo bench --bench delegated_store`: the latency a delegated `tools/call` adds with
//! `serve --store` (the replay cache and the GCRA rates in Valkey/Redis: one `SET NX PX` and one
//! script per call) against one node's in-memory checks, measured in the same run. Two serves
//! on this machine, one without a store and one over a `redis-server` the bench starts on a free
//! loopback port (persistence off first, then `appendfsync always`, as the replica tests run
//! it); the same calls on both, in alternating blocks so that the machine's drift falls on both
//! alike. Prints p50 and p99 with ratios to the in-memory baseline; asserts only each call's
//! 200. `AEGIS_BENCH_CALLS` sets the calls per kind and node (default 4000).

use aegis_gate::delegation::{paserk, token};
use aegis_gate::glob::Scope;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{pct, HttpClient, Serve, ADMIN};

/// The Fernet key of the replica (`--store` wants the operator's keys).
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
/// Calls per block before the bench moves to the other node or kind.
const BLOCK: usize = 100;

fn main() {
    let calls: usize = std::env::var("AEGIS_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let dir = std::env::temp_dir().join(format!("aegis-bench-dstore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let redis = RedisServer::start(&dir.join("redis"));
    let url = redis.url();
    let local = Node::new(Serve::start(&dir.join("local"), &["--org-id", "bench-b"]));
    let shared = Node::new(Serve::start_with_env(
        &dir.join("shared"),
        &["--org-id", "bench-b", "--store", &url],
        &[("AEGIS_FERNET_KEYS", FERNET_KEY)],
    ));
    let mut nodes = [local, shared];
    println!(
        "aegis-gate delegated calls with the shared store (this machine, 1 client, {calls} calls per row)"
    );
    println!(
        "store round trip (PING from the bench), p50: {:.1}µs",
        redis.ping_p50()
    );
    let rows = measure(&mut nodes, calls, true);
    print_rows(
        &[
            ("agent key, one node", &rows[0][0]),
            ("delegated, one node (in memory)", &rows[0][1]),
            ("agent key, --store", &rows[1][0]),
            ("delegated, --store (no fsync)", &rows[1][1]),
        ],
        &rows[0][1],
    );
    println!(
        "added by the shared store, p50: {:.1}µs (delegated over agent key: one node {:.1}µs, --store {:.1}µs)",
        micros(&rows[1][1], 50) - micros(&rows[0][1], 50),
        micros(&rows[0][1], 50) - micros(&rows[0][0], 50),
        micros(&rows[1][1], 50) - micros(&rows[1][0], 50),
    );
    redis.fsync_always();
    let rows = measure(&mut nodes, calls, false);
    print_rows(
        &[
            ("delegated, one node (in memory)", &rows[0][1]),
            ("delegated, --store (fsync always)", &rows[1][1]),
        ],
        &rows[0][1],
    );
    println!(
        "added by the shared store with appendfsync always, p50: {:.1}µs",
        micros(&rows[1][1], 50) - micros(&rows[0][1], 50)
    );
    for node in nodes {
        node.serve.stop();
    }
    redis.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One serve with a workspace of the example server, an agent session and a partner's session.
struct Node {
    serve: Serve,
    client: HttpClient,
    agent_key: String,
    agent_session: String,
    partner_session: String,
    partner: ed25519_dalek::SigningKey,
    next_id: u64,
}

impl Node {
    fn new(serve: Serve) -> Node {
        let agent_key = serve
            .workspace("bench", &["ex".to_owned()], &[], 1)
            .remove(0);
        let partner = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
        let mut client = HttpClient::connect(&serve.addr);
        let admin = format!("Bearer {ADMIN}");
        let registration = json!({"org_id": "bench-a", "workspace_id": "bench", "allow": ["ex.*"],
            "keys": [{"kid": "k1", "public_key": paserk::encode(&partner.verifying_key())}],
            "rate": {"per_minute": 6_000_000, "burst": 1_000_000}});
        let (status, _, body) = client.post(
            "/api/v1/aegis/partners",
            &[("Authorization", &admin)],
            &registration.to_string(),
        );
        assert_eq!(status, 201, "{body}");
        let init = common::initialize_body(1, "bench");
        let (status, head, body) =
            client.post("/mcp/bench", &[("Authorization", &agent_key)], &init);
        assert_eq!(status, 200, "{body}");
        let agent_session = common::session_id(&head);
        let mut node = Node {
            serve,
            client,
            agent_key,
            agent_session,
            partner_session: String::new(),
            partner,
            next_id: 10,
        };
        let token = node.sign("", &init);
        let (status, head, body) =
            node.client
                .post("/mcp/bench", &[("Aegis-Delegation", &token)], &init);
        assert_eq!(status, 200, "{body}");
        node.partner_session = common::session_id(&head);
        node
    }

    /// A token of agent `bench` at bench-a, naming `tool`, bound to `body`, signed now.
    fn sign(&self, tool: &str, body: &str) -> String {
        let scope: Scope = serde_json::from_value(json!({"allow": ["ex.*"]})).expect("scope");
        let grant = token::Grant {
            iss: "bench-a",
            aud: "bench-b",
            sub: "bench",
            scope: &scope,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        token::sign(&self.partner, "k1", &grant, tool, body.as_bytes(), now, 300).expect("sign")
    }

    /// `n` calls of `ex.echo`, delegated or with the agent key; each latency.
    fn calls(&mut self, n: usize, delegated: bool, into: &mut Vec<Duration>) {
        for _ in 0..n {
            self.next_id += 1;
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"b"}}}}}}"#,
                self.next_id
            );
            // Signed before the clock starts: the partner's work is not the receiver's.
            let token = delegated.then(|| self.sign("ex.echo", &body));
            let headers = match &token {
                Some(token) => [
                    ("Aegis-Delegation", token.as_str()),
                    ("Mcp-Session-Id", self.partner_session.as_str()),
                ],
                None => [
                    ("Authorization", self.agent_key.as_str()),
                    ("Mcp-Session-Id", self.agent_session.as_str()),
                ],
            };
            let t = Instant::now();
            let (status, _, answer) = self.client.post("/mcp/bench", &headers, &body);
            into.push(t.elapsed());
            assert_eq!(status, 200, "{answer}");
        }
    }
}

/// `calls` of each kind on each node, in blocks of [`BLOCK`] taking turns; sorted latencies by
/// node, then kind (agent key, delegated). Agent-key calls only when `with_agent`.
fn measure(nodes: &mut [Node; 2], calls: usize, with_agent: bool) -> [[Vec<Duration>; 2]; 2] {
    let mut rows: [[Vec<Duration>; 2]; 2] = Default::default();
    // A warm-up block each, not counted.
    for node in nodes.iter_mut() {
        node.calls(BLOCK, true, &mut Vec::new());
        node.calls(BLOCK, false, &mut Vec::new());
    }
    let mut done = 0;
    while done < calls {
        let n = BLOCK.min(calls - done);
        for (node, row) in nodes.iter_mut().zip(rows.iter_mut()) {
            if with_agent {
                node.calls(n, false, &mut row[0]);
            }
            node.calls(n, true, &mut row[1]);
        }
        done += n;
    }
    for row in rows.iter_mut() {
        for lat in row.iter_mut() {
            lat.sort();
        }
    }
    rows
}

fn micros(sorted: &[Duration], p: usize) -> f64 {
    pct(sorted, p).as_secs_f64() * 1e6
}

fn print_rows(rows: &[(&str, &Vec<Duration>)], baseline: &[Duration]) {
    println!("{:<36} {:>9} {:>9} {:>12}", "", "p50", "p99", "p50 ratio");
    for (label, lat) in rows {
        println!(
            "{label:<36} {:>7.1}µs {:>7.1}µs {:>11.2}x",
            micros(lat, 50),
            micros(lat, 99),
            micros(lat, 50) / micros(baseline, 50).max(f64::MIN_POSITIVE)
        );
    }
}

/// A `redis-server` of the bench's own on a free loopback port, persistence off.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(dir: &Path) -> RedisServer {
        std::fs::create_dir_all(dir).expect("redis dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut con = redis::Client::open(self.url())?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut con)?;
        Ok(con)
    }

    /// The p50 of 2000 `PING`s on one connection, µs.
    fn ping_p50(&self) -> f64 {
        let mut con = self.connection().expect("redis");
        let mut lat: Vec<Duration> = (0..2000)
            .map(|_| {
                let t = Instant::now();
                redis::cmd("PING").query::<String>(&mut con).expect("PING");
                t.elapsed()
            })
            .collect();
        lat.sort();
        micros(&lat, 50)
    }

    /// Turns the append-only file on with an fsync per write, once its first rewrite is done.
    fn fsync_always(&self) {
        let mut con = self.connection().expect("redis");
        let set = |con: &mut redis::Connection, k: &str, v: &str| {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(k)
                .arg(v)
                .query::<String>(con)
                .expect("CONFIG SET");
        };
        set(&mut con, "appendfsync", "always");
        set(&mut con, "appendonly", "yes");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut con)
                .expect("INFO");
            let busy = info.contains("aof_rewrite_in_progress:1")
                || info.contains("aof_rewrite_scheduled:1");
            if !busy {
                return;
            }
            assert!(Instant::now() < deadline, "the AOF rewrite did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

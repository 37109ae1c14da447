//! Serve replicas behind a real load balancer (HAProxy run from `deploy/haproxy.cfg`, issue #18):
//! a handshake-era session's requests reach the replica that created it, over kept-alive
//! connections, while new sessions and 2026-07-28 requests spread over the replicas; a session
//! id that reaches a replica without it is answered 404; a replica killed during REST writes
//! loses none of the writes answered 2xx, and the balancer takes it out of rotation.

use crate::support::haproxy::{replica_args, Haproxy};
use crate::support::http::{self, KeepAlive, Response};
use crate::support::redis::free_port;
use crate::support::replicas::Replicas;
use crate::support::{gate_bin, initialize_request, modern, retry, text, Serve, ADMIN, WAIT};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(20);
const WS: &str = "team";
/// The series of the MCP requests a replica answered 404 (a session it does not hold).
const MCP_404: &str = "aegis_http_requests_total{route=\"mcp\",status=\"404\"}";

/// N replicas over one store and HAProxy in front of them.
struct Balanced {
    replicas: Replicas,
    lb: Haproxy,
}

impl Balanced {
    fn start(n: usize) -> Balanced {
        // The replicas accept the Host clients send to the balancer and its many connections,
        // as deploy/haproxy.cfg tells an operator to start them.
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let replicas = Replicas::start_with(n, &replica_args(&host));
        let addrs: Vec<&str> = replicas.nodes.iter().map(|n| n.addr.as_str()).collect();
        let lb = Haproxy::start(port, &addrs);
        Balanced { replicas, lb }
    }

    /// A REST admin call through the balancer.
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        admin_at(&self.lb.addr, method, path, body)
    }

    /// Through the balancer: the example server registered in [`WS`], the workspace
    /// activated, an agent created (each request on whichever replica it lands); its key.
    fn setup(&self) -> String {
        let connection = json!({"workspace_id": WS, "name": "ex",
            "command": [gate_bin(), "example-server"]});
        let created = self.admin("POST", "/connections", Some(connection));
        assert_eq!(created.status, 201, "{}", created.body);
        let activated = self.admin("POST", &format!("/workspaces/{WS}/activate"), None);
        assert_eq!(activated.status, 200, "{}", activated.body);
        let agent = self.admin(
            "POST",
            "/agents",
            Some(json!({"workspace_id": WS, "name": "bot"})),
        );
        assert_eq!(agent.status, 201, "{}", agent.body);
        agent.json()["key"].as_str().unwrap().to_owned()
    }

    /// Kills replica `i` (SIGKILL: no goodbye to the store nor the balancer) and reaps it.
    fn kill(&mut self, i: usize) {
        let node = &mut self.replicas.nodes[i];
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }

    /// Waits until every replica runs the workspace with its connection healthy.
    fn wait_all_running(&self) {
        for node in &self.replicas.nodes {
            retry(EVERY, || {
                let view = node.admin("GET", &format!("/workspaces/{WS}"), None);
                match view.status == 200
                    && view.json()["connections"][0]["health"]["status"] == "healthy"
                {
                    true => Ok(()),
                    false => Err(format!("{}: {}\n{}", node.addr, view.body, node.log())),
                }
            });
        }
    }
}

/// An agent's MCP session of the handshake era through the balancer, on a kept-alive
/// connection of its own.
struct Session {
    conn: KeepAlive,
    key: String,
    id: String,
}

impl Session {
    /// Opens one through `lb` (retried while the replica it lands on does not know the agent).
    fn open(lb: &Haproxy, key: &str) -> Session {
        retry(EVERY, || {
            let mut conn = KeepAlive::connect(&lb.addr, WAIT).map_err(|e| e.to_string())?;
            let opened = post(&mut conn, key, None, &initialize_request());
            match opened.header("Mcp-Session-Id") {
                Some(id) if opened.status == 200 => Ok(Session {
                    conn,
                    key: key.to_owned(),
                    id,
                }),
                _ => Err(format!("{}: {}", opened.status, opened.body)),
            }
        })
    }

    /// `ex.echo` of `message` in the session; the text it answered (the answer must be a 200).
    fn echo(&mut self, message: &str) -> String {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": message}}});
        let answer = post(&mut self.conn, &self.key, Some(&self.id), &call);
        assert_eq!(answer.status, 200, "{}", answer.body);
        text(&answer.json())
    }
}

/// A REST admin call to `addr` (a connection of its own).
fn admin_at(addr: &str, method: &str, path: &str, body: Option<Value>) -> Response {
    let auth = format!("Bearer {ADMIN}");
    let text = body.map(|b| b.to_string());
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/api/v1/aegis{path}");
    http::send(addr, method, &path, &headers, text.as_deref(), WAIT).unwrap()
}

/// A POST of `message` to `/mcp/{WS}` on `conn` as agent `key`, in `session` when given.
fn post(conn: &mut KeepAlive, key: &str, session: Option<&str>, message: &Value) -> Response {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
    }
    let body = message.to_string();
    conn.send("POST", &format!("/mcp/{WS}"), &headers, Some(&body))
        .unwrap_or_else(|e| panic!("the kept-alive connection failed: {e}"))
}

/// The sum of the values of the `/metrics` series of `node` whose line starts with `series`.
fn metric(node: &Serve, series: &str) -> u64 {
    let (_, body) = node.get("/metrics").unwrap();
    body.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn sessions_stick_to_their_replica_over_kept_alive_connections_while_new_ones_spread() {
    let balanced = Balanced::start(2);
    let key = balanced.setup();
    balanced.wait_all_running();
    let (sessions, rounds) = (6, 20);
    let mut open: Vec<Session> = (0..sessions)
        .map(|_| Session::open(&balanced.lb, &key))
        .collect();
    // The sessions' requests interleave, each session on its kept-alive connection: a request
    // that reached a replica without the session would be answered 404.
    for round in 0..rounds {
        for (i, session) in open.iter_mut().enumerate() {
            let message = format!("s{i}-{round}");
            assert_eq!(session.echo(&message), message);
        }
    }
    // One client connection carrying every session's requests: each is routed on its own.
    let mut shared = KeepAlive::connect(&balanced.lb.addr, WAIT).unwrap();
    for (i, session) in open.iter().enumerate() {
        let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": format!("shared-{i}")}}});
        let answer = post(&mut shared, &key, Some(&session.id), &call);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(text(&answer.json()), format!("shared-{i}"));
    }

    // New sessions went to both replicas; each replica answered exactly the calls of the
    // sessions it holds, and no MCP request of a session was answered 404.
    let nodes = &balanced.replicas.nodes;
    let held: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "aegis_mcp_sessions"))
        .collect();
    assert!(
        held.iter().all(|&h| h > 0),
        "sessions per replica: {held:?}"
    );
    assert_eq!(held.iter().sum::<u64>(), sessions);
    for (node, held) in nodes.iter().zip(&held) {
        assert_eq!(
            metric(node, "aegis_calls_total"),
            held * (rounds + 1),
            "{}",
            node.get("/metrics").unwrap().1
        );
        assert_eq!(metric(node, MCP_404), 0);
    }
}

#[test]
fn a_session_id_at_a_replica_that_does_not_hold_it_is_answered_404_and_a_new_session_follows() {
    let mut balanced = Balanced::start(2);
    let key = balanced.setup();
    balanced.wait_all_running();
    let mut session = Session::open(&balanced.lb, &key);
    assert_eq!(session.echo("before"), "before");
    // Asked directly, the replica that holds the session answers; the other answers 404 (the
    // MCP spec's "session not found", after which a client starts a new session) to a POST,
    // a GET stream and a DELETE alike.
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let nodes = &balanced.replicas.nodes;
    let statuses: Vec<u16> = nodes
        .iter()
        .map(|n| n.mcp(WS, &key, Some(&session.id), &ping).status)
        .collect();
    let (holder, other) = match statuses.as_slice() {
        [200, 404] => (0, 1),
        [404, 200] => (1, 0),
        other => panic!("want one 200 and one 404: {other:?}"),
    };
    // What the stickiness test counts to find none.
    assert_eq!(metric(&nodes[other], MCP_404), 1);
    let auth = format!("Bearer {key}");
    for (method, accept) in [("GET", "text/event-stream"), ("DELETE", "*/*")] {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", accept),
            ("Mcp-Session-Id", session.id.as_str()),
        ];
        let answer = nodes[other].request(method, &format!("/mcp/{WS}"), &headers, None);
        assert_eq!(answer.status, 404, "{method}: {}", answer.body);
        assert!(
            answer.body.contains("unknown or ended session"),
            "{}",
            answer.body
        );
    }

    // The holder stops: through the balancer the session's next request reaches the other
    // replica and is answered 404 too; the client's new session there works.
    balanced.kill(holder);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "ex.echo", "arguments": {"message": "after"}}});
    let mut fresh = KeepAlive::connect(&balanced.lb.addr, WAIT).unwrap();
    let answer = post(&mut fresh, &key, Some(&session.id), &call);
    assert_eq!(answer.status, 404, "{}\n{}", answer.body, balanced.lb.log());
    session = Session::open(&balanced.lb, &key);
    assert_eq!(session.echo("after"), "after");
}

#[test]
fn what_is_registered_through_the_balancer_is_served_by_every_replica_in_either_era() {
    let balanced = Balanced::start(2);
    // Each REST request lands on whichever replica is next: the connection, the activation
    // and the agent are likely made on different ones.
    let key = balanced.setup();
    let nodes = &balanced.replicas.nodes;
    // Handshake-era sessions, opened until both replicas hold one; each calls the tool
    // (retried while its replica is still starting the workspace's connection).
    let mut opened = Vec::new();
    while nodes.iter().any(|n| metric(n, "aegis_mcp_sessions") == 0) {
        assert!(opened.len() < 8, "8 sessions and one replica holds none");
        let mut session = Session::open(&balanced.lb, &key);
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ex.echo", "arguments": {"message": "legacy"}}});
        let answer = retry(EVERY, || {
            let answer = post(&mut session.conn, &key, Some(&session.id), &call);
            match answer.status == 200 && answer.json()["result"].is_object() {
                true => Ok(answer.json()),
                false => Err(answer.body),
            }
        });
        assert_eq!(text(&answer), "legacy");
        opened.push(session);
    }
    // 2026-07-28 requests carry no session: on one kept-alive connection they go to any
    // replica, and each is answered.
    let before: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "aegis_calls_total"))
        .collect();
    let mut conn = KeepAlive::connect(&balanced.lb.addr, WAIT).unwrap();
    for i in 0..10 {
        let call = modern::request(
            i,
            "tools/call",
            json!({"name": "ex.echo", "arguments": {"message": format!("modern-{i}")}}),
        );
        let auth = format!("Bearer {key}");
        let computed = modern::headers_for(&call);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        headers.extend(computed.iter().map(|(k, v)| (*k, v.as_str())));
        let answer = conn
            .send(
                "POST",
                &format!("/mcp/{WS}"),
                &headers,
                Some(&call.to_string()),
            )
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(text(&answer.json()), format!("modern-{i}"));
    }
    let after: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "aegis_calls_total"))
        .collect();
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(served.iter().sum::<u64>(), 10, "{served:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "modern calls per replica: {served:?}"
    );
}

#[test]
fn a_replica_killed_during_rest_writes_loses_no_write_answered_2xx_and_the_other_serves_on() {
    let mut balanced = Balanced::start(2);
    let key = balanced.setup();
    balanced.wait_all_running();
    let mut session = Session::open(&balanced.lb, &key);
    let done: Mutex<Vec<(String, u16)>> = Mutex::new(Vec::new());
    let (stop, killed_at) = (AtomicBool::new(false), Mutex::new(None));
    let count = || done.lock().unwrap().len();
    let lb_addr = balanced.lb.addr.clone();
    std::thread::scope(|scope| {
        // One writer creating agents through the balancer, one request after the other, each
        // on a connection of its own, until told to stop.
        let writer = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{n}");
                let created = admin_at(
                    &lb_addr,
                    "POST",
                    "/agents",
                    Some(json!({"workspace_id": WS, "name": name})),
                );
                done.lock().unwrap().push((name, created.status));
                n += 1;
            }
        });
        retry(EVERY, || match count() {
            n if n >= 40 => Ok(()),
            n => Err(format!("{n} writes so far")),
        });
        // r2 dies mid-loop (a write may be in flight to it).
        balanced.kill(1);
        *killed_at.lock().unwrap() = Some(count());
        balanced.lb.wait_status("r2", "DOWN");
        let down_at = count();
        retry(EVERY, || match count() {
            n if n >= down_at + 40 => Ok(()),
            n => Err(format!("{n} writes so far, r2 down at {down_at}")),
        });
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        // Once the balancer has taken r2 out, every write is answered by r1.
        let after: Vec<_> = done.lock().unwrap()[down_at..].to_vec();
        assert!(
            after.iter().all(|(_, status)| *status == 201),
            "{after:?}\n{}",
            balanced.lb.log()
        );
    });
    let done = done.into_inner().unwrap();
    let killed_at = killed_at.into_inner().unwrap().unwrap();
    assert!(
        done[..killed_at.min(40)].iter().all(|(_, s)| *s == 201),
        "{done:?}"
    );
    let refused: Vec<_> = done.iter().filter(|(_, s)| *s != 201).collect();
    eprintln!(
        "{} writes, {} not 201 (around r2's death): {refused:?}",
        done.len(),
        refused.len()
    );
    // Every write answered 2xx is in the shared state: the survivor lists it.
    let survivor = &balanced.replicas.nodes[0];
    retry(EVERY, || {
        let list = survivor.admin("GET", &format!("/agents?workspace_id={WS}"), None);
        let names: Vec<String> = list.json()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<&String> = done
            .iter()
            .filter(|(name, status)| *status < 300 && !names.contains(name))
            .map(|(name, _)| name)
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(format!("answered 2xx, not in the state: {missing:?}")),
        }
    });
    // The survivor serves MCP through the balancer: a session it held goes on, or (it was
    // r2's) the next one opens there.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "ex.echo", "arguments": {"message": "on"}}});
    let answer = post(&mut session.conn, &key, Some(&session.id), &call);
    if answer.status == 404 {
        session = Session::open(&balanced.lb, &key);
    }
    assert_eq!(session.echo("on"), "on");
}

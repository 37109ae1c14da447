//! Inbound delegation across replicas of serve sharing one Valkey/Redis (`serve --store`, issue
//! #18): a partner's burst and a replayed token are refused across replicas exactly as on one
//! node, the store's keys expire, and without the store a delegated call is refused (503),
//! never admitted, until the store is back; and the store's rate script against the in-memory
//! limiter, decision by decision.

use crate::support::http::Response;
use crate::support::partner::{call_body, partner, post, OrgA};
use crate::support::redis::Redis;
use crate::support::replicas::Replicas;
use crate::support::{initialize_request, retry, unix_now, Serve, TempDir};
use aegis_gate::delegation::rate::{Limiter, Rate};
use serde_json::{json, Value};
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(20);

/// What org A's token may name.
const SCOPE: [&str; 1] = ["ex.echo"];

/// Org A registered at `node` (gate B, org-b, workspace ws-1 with the example server), granted
/// `ex.*` but `ex.get_env`, at `rate` per org and `agent_rate` per agent.
fn register_org_a(node: &Serve, rate: Value, agent_rate: Value) {
    node.setup("ws-1");
    let mut grant = partner("org-a", "a1", 4);
    grant["allow"] = json!(["ex.*"]);
    grant["rate"] = rate;
    grant["agent_rate"] = agent_rate;
    let made = node.admin("POST", "/partners", Some(grant));
    assert_eq!(made.status, 201, "{}", made.body);
}

/// A delegated session of org A on `node`, once `node` runs ws-1 and knows org A (a replica
/// may not have applied the registration yet).
fn session_of_org_a(node: &Serve, a: &OrgA) -> String {
    let init = initialize_request().to_string();
    let session = retry(EVERY, || {
        let opened = post(
            node,
            &a.token("org-b", &SCOPE, "", &init, unix_now()),
            None,
            &init,
        );
        match opened.header("Mcp-Session-Id") {
            Some(id) if opened.status == 200 => Ok(id),
            _ => Err(format!("{}: {}", opened.status, opened.body)),
        }
    });
    let ready = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let token = a.token("org-b", &SCOPE, "", &ready, unix_now());
    assert_eq!(post(node, &token, Some(&session), &ready).status, 202);
    session
}

/// One `ex.echo` call by agent `sub` of org A on `node`'s `session`, with a fresh token.
fn call(node: &Serve, session: &str, a: &OrgA, sub: &str, id: u64) -> Response {
    let body = call_body(id, "ex.echo");
    let token = a.token_as(sub, "org-b", &SCOPE, "ex.echo", &body, unix_now());
    post(node, &token, Some(session), &body)
}

/// The JSON-RPC error code of an answer (0 for none).
fn code(answer: &Response) -> i64 {
    answer.json()["error"]["code"].as_i64().unwrap_or(0)
}

/// Org A's calls, alternating over `nodes`, each with its session: the status of each, with
/// the `Retry-After` of a 429 checked against the error's `retry_after`. The org may make 3
/// calls at once and each agent 2 (a call every 10 s after that): the third call of one agent
/// is refused without charging the org, another agent's call uses the org's last one, and
/// every call after is refused.
fn burst_over(nodes: &[&Serve], sessions: &[String], a: &OrgA) -> Vec<u16> {
    let plan = [
        "agent-7", "agent-7", "agent-7", "agent-8", "agent-9", "agent-8",
    ];
    let mut statuses = Vec::new();
    for (n, sub) in plan.iter().enumerate() {
        let at = n % nodes.len();
        let answer = call(nodes[at], &sessions[at], a, sub, n as u64 + 10);
        if answer.status == 429 {
            assert_eq!(code(&answer), -32012, "{}", answer.body);
            let wait = answer.json()["error"]["data"]["retry_after"]
                .as_u64()
                .unwrap();
            assert!((1..=10).contains(&wait), "{}", answer.body);
            assert_eq!(answer.header("Retry-After"), Some(wait.to_string()));
        }
        statuses.push(answer.status);
    }
    statuses
}

fn org_a_rates() -> (Value, Value) {
    (
        json!({"per_minute": 6, "burst": 3}),
        json!({"per_minute": 6, "burst": 2}),
    )
}

#[test]
fn a_partners_burst_holds_across_replicas_exactly_as_on_one_node() {
    let a = OrgA::new();
    let (rate, agent_rate) = org_a_rates();
    let expected = [200, 200, 429, 200, 429, 429];

    // One node, no store: the in-memory limits.
    let dir = TempDir::new();
    let one = Serve::start_with(dir.path(), &["--org-id", "org-b"]);
    register_org_a(&one, rate.clone(), agent_rate.clone());
    let session = session_of_org_a(&one, &a);
    assert_eq!(burst_over(&[&one], &[session], &a), expected);

    // Two replicas over one store, the calls alternating between them: the same decisions.
    let replicas = Replicas::start_with(2, &["--org-id", "org-b"]);
    let nodes: Vec<&Serve> = replicas.nodes.iter().collect();
    register_org_a(nodes[0], rate, agent_rate);
    let sessions: Vec<String> = nodes.iter().map(|n| session_of_org_a(n, &a)).collect();
    let statuses = burst_over(&nodes, &sessions, &a);
    assert_eq!(
        statuses,
        expected,
        "A:\n{}\nB:\n{}",
        nodes[0].log(),
        nodes[1].log()
    );

    // The counters are the store's, each with an expiry: the org's time runs 3 calls at 10 s
    // ahead, so its key vanishes within 30 s of idleness (and a missing key is a fresh one).
    let mut con = redis::Client::open(replicas.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pttl = |key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(&mut con).unwrap() };
    let org = pttl("aegis:rate:org:org-a");
    assert!((20_000..=30_002).contains(&org), "{org}");
    let agent = pttl("aegis:rate:agent:org-a:agent-7");
    assert!((10_000..=20_002).contains(&agent), "{agent}");
}

#[test]
fn a_token_replayed_to_the_other_replica_is_refused() {
    let a = OrgA::new();
    let replicas = Replicas::start_with(2, &["--org-id", "org-b"]);
    let (node_a, node_b) = (&replicas.nodes[0], &replicas.nodes[1]);
    register_org_a(
        node_a,
        json!({"per_minute": 600, "burst": 50}),
        json!({"per_minute": 600, "burst": 50}),
    );
    let (on_a, on_b) = (session_of_org_a(node_a, &a), session_of_org_a(node_b, &a));
    let body = call_body(3, "ex.echo");
    let token = a.token("org-b", &SCOPE, "ex.echo", &body, unix_now());
    let first = post(node_a, &token, Some(&on_a), &body);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["result"]["content"][0]["text"], "hi");
    for (node, session) in [(node_b, &on_b), (node_a, &on_a)] {
        let again = post(node, &token, Some(session), &body);
        assert_eq!(
            (again.status, code(&again)),
            (401, -32010),
            "{}",
            again.body
        );
    }
    assert!(
        node_b.log().contains("jti seen before (replay)"),
        "{}",
        node_b.log()
    );

    // The token's id is kept until the token could no longer verify on any replica: its 120 s
    // plus the verifier's skew, plus the skew again for the replicas' clocks.
    let mut con = redis::Client::open(replicas.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("aegis:jti:org-a:*")
        .query(&mut con)
        .unwrap();
    // At least the handshake and the notification on each, and the call.
    assert!(keys.len() >= 5, "{keys:?}");
    for key in keys {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
        assert!((200_000..=240_000).contains(&pttl), "{key}: {pttl}");
    }
}

#[test]
fn without_the_store_a_delegated_call_is_refused_and_after_it_is_served_again() {
    let a = OrgA::new();
    let mut replicas = Replicas::start_with(2, &["--org-id", "org-b"]);
    register_org_a(
        &replicas.nodes[0],
        json!({"per_minute": 600, "burst": 50}),
        json!({"per_minute": 600, "burst": 50}),
    );
    let sessions: Vec<String> = replicas
        .nodes
        .iter()
        .map(|n| session_of_org_a(n, &a))
        .collect();
    replicas.redis.stop();
    for (node, session) in replicas.nodes.iter().zip(&sessions) {
        // Twice: the first call may be the one that finds the store gone, the second is
        // refused on the store's known state; neither is admitted.
        for id in [1, 2] {
            let refused = call(node, session, &a, "agent-7", id);
            assert_eq!(
                (refused.status, code(&refused)),
                (503, -32002),
                "{}\n{}",
                refused.body,
                node.log()
            );
            assert_eq!(refused.header("Retry-After").as_deref(), Some("1"));
            assert!(refused.json().get("result").is_none(), "{}", refused.body);
        }
        let log = node.log();
        assert!(
            log.contains("delegation refused (store error: the shared store"),
            "{log}"
        );
        assert!(
            !log.contains("accepted: iss=org-a sub=\"agent-7\" tool=\"ex.echo\""),
            "{log}"
        );
    }

    // The store comes back: each replica serves delegated calls again, without a restart.
    replicas.redis.start_again();
    for (node, session) in replicas.nodes.iter().zip(&sessions) {
        let answer = retry(EVERY, || {
            let answer = call(node, session, &a, "agent-7", 3);
            match answer.status {
                200 => Ok(answer),
                s => Err(format!("{s}: {}", answer.body)),
            }
        });
        assert_eq!(answer.json()["result"]["content"][0]["text"], "hi");
    }
}

/// The rate script the gate runs in the store.
const GCRA: &str = include_str!("../../src/store/shared/gcra.lua");

#[test]
fn the_stores_rate_script_decides_as_the_in_memory_limiter() {
    let dir = TempDir::new();
    let store = Redis::start(dir.path());
    let mut con = redis::Client::open(store.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let script = redis::Script::new(GCRA);
    // Rates of a call every 30 s or slower: the test's own milliseconds refill nothing, so both
    // decide on counts and bursts alone, the limiter at a fixed instant and the store on its
    // clock. Each key keeps its rate, as a partner's do.
    let keys = ["org:a", "agent:a:1", "agent:a:2", "org:b", "agent:b:1"];
    let rate = |k: usize| Rate {
        per_minute: [2, 1, 1, 2, 1][k],
        burst: [5, 2, 3, 1, 4][k],
    };
    let mut limiter = Limiter::new(100);
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        // splitmix64: the same sequence every run.
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        usize::try_from((z ^ (z >> 31)) % n).unwrap()
    };
    let started = std::time::Instant::now();
    let (mut allowed, mut refused) = (0, 0);
    for step in 0..300 {
        // One key (chatter) or an org and one of its agents (a call), as the gate charges.
        let picked: Vec<usize> = match next(3) {
            0 => vec![next(5)],
            1 => vec![0, 1 + next(2)],
            _ => vec![3, 4],
        };
        let local = limiter.check_all(
            &picked
                .iter()
                .map(|&k| (keys[k], rate(k)))
                .collect::<Vec<_>>(),
            0,
        );
        let mut invocation = script.prepare_invoke();
        for &k in &picked {
            invocation
                .key(format!("aegis:rate:test:{}", keys[k]))
                .arg(rate(k).interval_us())
                .arg(rate(k).allowance_us());
        }
        let wait_us: u64 = invocation.invoke(&mut con).unwrap();
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap();
        match (local, wait_us) {
            (Ok(()), 0) => allowed += 1,
            (Err(wait), shared) if shared > 0 => {
                // The store's wait is shorter by the time that passed since the first call.
                let local_us = u64::try_from(wait.as_micros()).unwrap();
                assert!(
                    local_us >= shared && local_us - shared <= elapsed_us + 1_000,
                    "step {step}: {local_us} µs in memory, {shared} µs in the store"
                );
                refused += 1;
            }
            (local, shared) => panic!("step {step} {picked:?}: {local:?} in memory, {shared} µs"),
        }
    }
    assert!(
        allowed > 5 && refused > 100,
        "{allowed} allowed, {refused} refused"
    );
    // Every key the script wrote expires: at its time, at most one burst of intervals ahead.
    let written: Vec<String> = redis::cmd("KEYS")
        .arg("aegis:rate:test:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(written.len(), keys.len(), "{written:?}");
    for key in written {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
        assert!((1..=300_002).contains(&pttl), "{key}: {pttl}");
    }
}

//! Approvals and the audit trail across replicas of serve sharing a store (`serve --store`,
//! issue #18): a call held on one replica is listed and decided through another, local
//! decisions go on while the store is away, and `audit verify --store` needs every replica's
//! trail, whole.

use crate::support::replicas::Replicas;
use crate::support::{error_of, gate, retry, Serve};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(20);

/// The signing key id of `node`: its replica id.
fn kid(node: &Serve) -> String {
    let identity = node.admin("GET", "/identity", None).json();
    identity["keys"][0]["kid"].as_str().unwrap().to_owned()
}

/// Makes `ex.add` wait for a person in workspace `ws` (through `node`, once it knows `ws`; for
/// every replica).
fn escalate_add(node: &Serve, ws: &str) {
    let policy = json!({"rules": [{"match": "ex.add", "verdict": "escalate"}], "webhooks": []});
    retry(EVERY, || {
        let set = node.admin(
            "PUT",
            &format!("/workspaces/{ws}/policy"),
            Some(policy.clone()),
        );
        match set.status {
            200 => Ok(()),
            status => Err(format!("{status}: {}", set.body)),
        }
    });
}

/// The record of approval `id` in `node`'s list, once it is there.
fn listed(node: &Serve, id: &str) -> Value {
    retry(EVERY, || {
        let list = node.admin("GET", "/approvals", None).json();
        list["approvals"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == id))
            .cloned()
            .ok_or(format!("{id} is not listed: {list}"))
    })
}

/// Waits until `node` no longer knows approval `id` (its holder released it).
fn forgotten(node: &Serve, id: &str) {
    retry(EVERY, || {
        let got = node.admin("GET", &format!("/approvals/{id}"), None);
        match got.status {
            404 => Ok(()),
            status => Err(format!("{status}: {}", got.body)),
        }
    });
}

#[test]
fn a_call_held_on_one_replica_is_listed_approved_and_denied_through_the_other() {
    let replicas = Replicas::start(2);
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let client = a.setup_client("team");
    escalate_add(a, "team");
    let holder = kid(a);
    assert_ne!(holder, kid(b), "each replica has a key of its own");
    let add = json!({"a": 40, "b": 2});

    // Approved through B: the call held on A completes there with the server's answer.
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        let id = a.pending_approval()["id"].as_str().unwrap().to_owned();
        let seen = listed(b, &id);
        assert_eq!(seen["replica"], holder.as_str(), "{seen}");
        assert_eq!(
            (&seen["status"], &seen["tool"]),
            (&json!("pending"), &json!("ex.add"))
        );
        let one = b.admin("GET", &format!("/approvals/{id}"), None);
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.json()["preview"]["a"], "number");
        let approved = b.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(approved.status, 202, "{}", approved.body);
        assert_eq!(approved.json()["replica"], holder.as_str());
        let answer = call.join().unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "42", "{answer}");
        // The holder decided it as it decides its own.
        let on_a = a.admin("GET", &format!("/approvals/{id}"), None).json();
        assert_eq!(on_a["status"], "approved", "{on_a}");
        forgotten(b, &id);
        let again = b.admin("POST", &format!("/approvals/{id}/deny"), None);
        assert_eq!(again.status, 404, "{}", again.body);
        assert_eq!(
            a.admin("POST", &format!("/approvals/{id}/deny"), None)
                .status,
            409
        );
    });

    // Denied through B: the agent is told, and the server never saw the call.
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", add.clone()));
        let id = a.pending_approval()["id"].as_str().unwrap().to_owned();
        listed(b, &id);
        let denied = b.admin("POST", &format!("/approvals/{id}/deny"), None);
        assert_eq!(denied.status, 202, "{}", denied.body);
        // At once, before the holder applied it: a second decision, through either replica,
        // finds the call decided (one decision per call, whoever is asked).
        // (404 once the holder released it and its record left the store.)
        let twice = b.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert!(matches!(twice.status, 404 | 409), "{}", twice.body);
        let on_holder = a.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(on_holder.status, 409, "{}", on_holder.body);
        let (code, message) = error_of(&call.join().unwrap());
        assert_eq!(code, -32013);
        assert!(message.contains("denied by a person"), "{message}");
    });
    a.assert_logged("deny taken on replica");
}

#[test]
fn without_the_store_local_decisions_go_on_remote_ones_are_refused_and_the_mirror_catches_up() {
    let mut replicas = Replicas::start(2);
    let client = replicas.nodes[0].setup_client("team");
    escalate_add(&replicas.nodes[0], "team");
    replicas.redis.stop();
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", json!({"a": 1, "b": 2})));
        let id = a.pending_approval()["id"].as_str().unwrap().to_owned();
        let remote = b.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(remote.status, 503, "{}", remote.body);
        let error = &remote.json()["error"];
        assert_eq!(error["code"], "store_unavailable");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("not held by this replica"), "{message}");
        let local = a.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(local.status, 200, "{}", local.body);
        let answer = call.join().unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "3", "{answer}");
    });
    let list = b.admin("GET", "/approvals", None).json();
    assert!(list["incomplete"].is_string(), "{list}");

    // A call held while the store is away reaches it once it is back, and B decides it.
    std::thread::scope(|s| {
        let call = s.spawn(|| client.call("ex.add", json!({"a": 2, "b": 2})));
        let id = a.pending_approval()["id"].as_str().unwrap().to_owned();
        replicas.redis.start_again();
        listed(b, &id);
        let approved = b.admin("POST", &format!("/approvals/{id}/approve"), None);
        assert_eq!(approved.status, 202, "{}", approved.body);
        let answer = call.join().unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "4", "{answer}");
    });
}

/// The audit heads the store records, by key id, as `{seq, …}`.
fn heads(url: &str) -> HashMap<String, Value> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("aegis:audit:heads")
        .query(&mut con)
        .unwrap();
    all.into_iter()
        .map(|(kid, head)| (kid, serde_json::from_str(&head).unwrap()))
        .collect()
}

/// The seq of `kid`'s head once the store records one past `after`.
fn head_past(url: &str, kid: &str, after: u64) -> u64 {
    retry(EVERY, || {
        let seq = heads(url).get(kid).and_then(|h| h["seq"].as_u64());
        match seq {
            Some(seq) if seq > after => Ok(seq),
            other => Err(format!("head of {kid}: {other:?}")),
        }
    })
}

fn verify_across(url: &str, trails: &[&Path]) -> (bool, String) {
    let out = gate(&["audit", "verify", "--store", url])
        .args(trails)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn audit_verify_with_the_store_needs_every_replicas_whole_trail() {
    let mut replicas = Replicas::start(2);
    let url = replicas.redis.url();
    let (a, b) = (&replicas.nodes[0], &replicas.nodes[1]);
    let (kid_a, kid_b) = (kid(a), kid(b));
    a.setup("team");
    head_past(&url, &kid_a, 0);
    // Two batches on B, so its trail can be cut back to the first.
    escalate_add(b, "team");
    let first = head_past(&url, &kid_b, 0);
    b.agent("team", "x");
    head_past(&url, &kid_b, first);
    let dirs: Vec<PathBuf> = replicas.nodes.iter().map(|n| n.data.clone()).collect();
    for node in replicas.nodes.drain(..) {
        assert!(node.stop().success());
    }

    let (ok, text) = verify_across(&url, &[&dirs[0], &dirs[1]]);
    assert!(ok, "{text}");
    assert!(text.contains("all 2 replica key(s)"), "{text}");

    let (ok, text) = verify_across(&url, &[&dirs[0]]);
    assert!(!ok, "{text}");
    assert!(text.contains(&kid_b) && text.contains("missing"), "{text}");
    assert!(!text.contains(&kid_a), "{text}");

    // B's last batch cut off: its chain still verifies, but stops short of its head.
    let live = dirs[1].join("audit.log");
    let lines: Vec<String> = std::fs::read_to_string(&live)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let signed: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].contains("\"sig\""))
        .collect();
    assert!(signed.len() >= 2, "{lines:?}");
    let keep = signed[signed.len() - 2] + 1;
    std::fs::write(&live, lines[..keep].join("\n") + "\n").unwrap();
    let (ok, text) = verify_across(&url, &[&dirs[0], &dirs[1]]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&kid_b) && text.contains("stops at seq"),
        "{text}"
    );
}

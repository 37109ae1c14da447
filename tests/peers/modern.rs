//! MCP 2026-07-28 upstream of the gate, seen by the official Python SDK client: pinned to that
//! version (`mode="2026-07-28"`: no `initialize`, no `server/discover`, the `_meta` envelope on
//! every request) and in auto mode (which adopts it through the gate's `server/discover`),
//! with server-everything (legacy only), mcp-server-time and the gate's own example server
//! behind one gate, over stdio (`aegis-gate stdio --config`) and over Streamable HTTP
//! (`aegis-gate serve`). `python_modern.py` lists, calls, reads, gets, completes, listens
//! (`subscriptions/listen`: the example server's `toggle` and `bump`) and answers
//! server-everything's sampling and elicitation through `input_required` results. Then a legacy
//! client and a modern one in one workspace at once. `main.rs` runs these only when every peer
//! is there.

use crate::support::{gate_bin, repo_file, retry, Serve, TempDir};
use crate::surface::{serve_with, Report, Script, Via};
use crate::Peers;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long a script may take in all (its own `--timeout`).
const SCRIPT_TIMEOUT: &str = "90";
const DOCUMENT: &str = "demo://resource/static/document/architecture.md";
const README: &str = "example://readme";
const COUNTER: &str = "example://counter";

/// The three servers as `mcpServers` entries of a stdio config.
fn stdio_servers(peers: &Peers) -> Value {
    json!({
        "everything": { "command": "node", "args": [peers.everything_js, "stdio"] },
        "time": { "command": peers.python, "args": ["-m", "mcp_server_time"], "env": { "TZ": "UTC" } },
        "ex": { "command": gate_bin(), "args": ["example-server"] },
    })
}

/// A serve whose workspace `ws` holds the three servers, and the key of an agent of it.
fn serve_with_three_servers(peers: &Peers) -> (Serve, String) {
    let python = peers.python.to_str().unwrap();
    serve_with(
        peers,
        &[
            json!({"name": "everything", "command": ["node", peers.everything_js, "stdio"]}),
            json!({"name": "time", "command": [python, "-m", "mcp_server_time"], "env": {"TZ": "UTC"}}),
            json!({"name": "ex", "command": [gate_bin(), "example-server"]}),
        ],
    )
}

/// Runs `python_modern.py` in `mode` to its end over `via`; its report.
fn run_modern(peers: &Peers, via: &Via, dir: &Path, mode: &str, tag: &str) -> Report {
    let mut cmd = Command::new(&peers.python);
    cmd.arg(repo_file("tests/peers/python_modern.py"))
        .args(["--mode", mode, "--tag", tag, "--timeout", SCRIPT_TIMEOUT])
        .args(["--call", "time.get_current_time", r#"{"timezone": "UTC"}"#])
        .args(["--call", "everything.echo"])
        .arg(json!({ "message": format!("hi-{tag}") }).to_string());
    via.add_to(&mut cmd);
    let what = format!("python_modern.py --mode {mode} --tag {tag}");
    Script::spawn(what, cmd, via, &dir.join(format!("{tag}.stderr"))).report()
}

/// What a client of the stateless era sees of the three servers through the gate, `mode` being
/// how it came to it: the version, tools of all three under their prefixes, what the calls,
/// reads, prompts and completions gave, the listen stream's events, and the tool results that
/// carry this run's answers to server-everything's sampling and elicitation.
fn assert_modern_surface(report: &Report, mode: &str, tag: &str) {
    let json = &report.json;
    report.check(json["tag"] == tag, || format!("tag is not {tag}"));
    report.check(json["protocol_version"] == "2026-07-28", || {
        "the negotiated version is not 2026-07-28".into()
    });
    match mode {
        // The SDK sent no server/discover: it adopted a discover result of its own making.
        "2026-07-28" => report.check(json["handshake"] == "pinned", || "handshake".into()),
        // It asked the gate, which said who it is.
        _ => report.check(
            json["handshake"] == "discover" && json["server_info"]["name"] == "aegis-gate",
            || "auto mode did not adopt the era through the gate's server/discover".into(),
        ),
    }

    // Tools: all three servers', each under its prefix.
    let tools = report.strings("/tools");
    for expected in [
        "everything.echo",
        "everything.trigger-sampling-request",
        "everything.trigger-elicitation-request",
        "time.get_current_time",
        "time.convert_time",
        "ex.echo",
        "ex.toggle",
        "ex.bump",
    ] {
        report.check(tools.iter().any(|t| t == expected), || {
            format!("tool {expected} not listed: {tools:?}")
        });
    }
    let unprefixed: Vec<&String> = tools
        .iter()
        .filter(|t| {
            !["everything.", "time.", "ex."]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .collect();
    report.check(unprefixed.is_empty(), || {
        format!("tools without a server's prefix: {unprefixed:?}")
    });
    let echo = report.text("/calls/everything.echo/text");
    report.check(
        echo == format!("Echo: hi-{tag}") && json["calls"]["everything.echo"]["is_error"] == false,
        || format!("everything.echo gave {echo:?}"),
    );
    let now = report.text("/calls/time.get_current_time/text");
    report.check(
        json["calls"]["time.get_current_time"]["is_error"] == false
            && now.contains("\"timezone\": \"UTC\""),
        || format!("time.get_current_time gave {now:?}"),
    );

    // Resources: server-everything's documents and template, the example server's own.
    let uris = report.strings("/checks/resources/uris");
    for uri in [DOCUMENT, README, COUNTER] {
        report.check(uris.iter().any(|u| u == uri), || {
            format!("resource {uri} not listed: {uris:?}")
        });
    }
    let templates = report.strings("/checks/resources/uri_templates");
    for template in [
        "demo://resource/dynamic/text/{resourceId}",
        "example://items/{id}",
    ] {
        report.check(templates.iter().any(|t| t == template), || {
            format!("template {template} not listed: {templates:?}")
        });
    }
    let reads = &json["checks"]["resources"]["reads"];
    report.check(
        reads[DOCUMENT]
            .as_str()
            .is_some_and(|t| t.starts_with("# Everything Server")),
        || format!("resources/read {DOCUMENT} (server-everything's)"),
    );
    report.check(
        reads[README]
            .as_str()
            .is_some_and(|t| t.starts_with("The Aegis example server")),
        || format!("resources/read {README} (the example server's)"),
    );
    report.check(
        reads["demo://resource/dynamic/text/7"]
            .as_str()
            .is_some_and(|t| t.starts_with("Resource 7: This is a plaintext resource")),
        || "resources/read of a URI of server-everything's text template".into(),
    );

    // Prompts and completion.
    let prompts = report.strings("/checks/prompts/names");
    for name in [
        "everything.simple-prompt",
        "everything.args-prompt",
        "everything.completable-prompt",
        "ex.greet",
    ] {
        report.check(prompts.iter().any(|p| p == name), || {
            format!("prompt {name} not listed: {prompts:?}")
        });
    }
    report.check(
        json["checks"]["prompts"]["args_prompt_texts"]
            == json!([format!("What's weather in Paris-{tag}, TX?")]),
        || "prompts/get everything.args-prompt with city and state".into(),
    );
    report.check(
        json["checks"]["completion"]["department"] == json!(["Engineering"])
            && json["checks"]["completion"]["name_for_sales"] == json!(["David", "Eve", "Frank"]),
        || "completion of everything.completable-prompt".into(),
    );

    // The listen stream: acknowledged as asked, then the toggle's and the bump's events.
    let listen = &json["checks"]["listen"];
    report.check(
        listen["honored"] == json!({"toolsListChanged": true, "resourceSubscriptions": [COUNTER]}),
        || "subscriptions/listen was not acknowledged with what it asked for".into(),
    );
    let events = report.strings("/checks/listen/events");
    for event in ["ToolsListChanged", &format!("ResourceUpdated {COUNTER}")] {
        report.check(events.iter().any(|e| e == event), || {
            format!("no {event} on the listen stream: {events:?}")
        });
    }
    let on = listen["surprise_listed_after"] == true;
    report.check(
        listen["surprise_listed_before"] != listen["surprise_listed_after"]
            && listen["toggle"]
                == if on {
                    "surprise is on"
                } else {
                    "surprise is off"
                },
        || "ex.toggle's change is not what tools/list showed after its event".into(),
    );
    report.check(listen["counter"] == listen["bump"], || {
        format!("{COUNTER} does not read what ex.bump returned")
    });

    // server-everything's requests to the client, which the stateless era carries only inside
    // input_required results: this client's callbacks answered each once, and the tool
    // results carry their answers.
    let asked = format!("Resource trigger-sampling-request context: aegis-sampling-{tag}");
    report.check(
        report.strings("/sampling_requests") == [asked.clone()],
        || format!("the sampling callback did not answer exactly [{asked:?}]"),
    );
    let sampled = report.text("/checks/sampling/text");
    report.check(
        json["checks"]["sampling"]["is_error"] == false
            && sampled.contains(&format!("aegis sampled reply for {tag} to <{asked}>")),
        || format!("the sampling tool's result does not carry the callback's reply: {sampled:?}"),
    );
    report.check(report.strings("/elicitation_requests").len() == 1, || {
        "the elicitation callback did not answer exactly once".into()
    });
    let elicited = report.text("/checks/elicitation/text");
    report.check(
        json["checks"]["elicitation"]["is_error"] == false
            && elicited.contains(&format!("- Name: aegis-{tag}\n")),
        || {
            format!(
                "the elicitation tool's result does not carry the callback's answer: {elicited:?}"
            )
        },
    );
}

/// Over stdio: the client pinned to 2026-07-28, then one in auto mode, each starting a gate.
pub(crate) fn python_sdk_client_at_2026_07_28_uses_three_servers_through_stdio(peers: &Peers) {
    let dir = TempDir::new();
    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({ "mcpServers": stdio_servers(peers) }).to_string(),
    )
    .unwrap();
    for (mode, tag) in [("2026-07-28", "pinned"), ("auto", "auto")] {
        let data = dir.path().join(format!("data-{tag}"));
        let via = Via::Stdio {
            config: &config,
            data: &data,
        };
        let report = run_modern(peers, &via, dir.path(), mode, tag);
        assert_modern_surface(&report, mode, tag);
    }
}

/// Over HTTP: the client pinned to 2026-07-28, then one in auto mode, one after the other in
/// one workspace (the second's toggle takes back the first's).
pub(crate) fn python_sdk_client_at_2026_07_28_uses_three_servers_through_serve_over_http(
    peers: &Peers,
) {
    let dir = TempDir::new();
    let (serve, key) = serve_with_three_servers(peers);
    let via = Via::Http {
        serve: &serve,
        key: &key,
    };
    for (mode, tag) in [("2026-07-28", "pinned"), ("auto", "auto")] {
        let report = run_modern(peers, &via, dir.path(), mode, tag);
        assert_modern_surface(&report, mode, tag);
    }
}

/// A legacy client (2025-11-25, an HTTP session with its GET stream) and a modern one (pinned to
/// 2026-07-28, stateless) in one workspace at once: each lists and calls, then waits with its
/// session open (the modern one on a listen stream) until a third session's `ex.toggle` changes
/// the tools; each hears of it its era's way, and both listed the same tools, before and after.
pub(crate) fn a_legacy_and_a_modern_python_sdk_client_on_one_workspace_at_once_list_the_same_tools(
    peers: &Peers,
) {
    let dir = TempDir::new();
    let (serve, key) = serve_with_three_servers(peers);
    // Every server started and listed (server-everything's own list changes after its
    // handshake are over), so that the only change the clients can hear of is the toggle's.
    let other = serve.client("ws", &key);
    retry(Duration::from_millis(100), || {
        let listed = other.list().json();
        let names: Vec<&str> = listed["result"]["tools"]
            .as_array()
            .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        // server-everything registers simulate-research-query last of the tools it adds after
        // its handshake, each with a list change of its own.
        let ready = [
            "everything.simulate-research-query",
            "time.get_current_time",
            "ex.toggle",
        ]
        .iter()
        .all(|t| names.contains(t));
        ready.then_some(()).ok_or(format!(
            "not every server listed yet: {listed}\n{}",
            serve.log()
        ))
    });
    let via = Via::Http {
        serve: &serve,
        key: &key,
    };
    let start = |mode: &str| {
        let mut cmd = Command::new(&peers.python);
        cmd.arg(repo_file("tests/peers/python_http_client.py"))
            .args([
                "--mode",
                mode,
                "--timeout",
                SCRIPT_TIMEOUT,
                "--await-list-change",
            ])
            .args(["--call", "ex.echo"])
            .arg(json!({ "message": format!("from {mode}") }).to_string())
            .args(["--call", "time.get_current_time", r#"{"timezone": "UTC"}"#]);
        via.add_to(&mut cmd);
        let what = format!("python_http_client.py --mode {mode}");
        Script::spawn(what, cmd, &via, &dir.path().join(format!("{mode}.stderr")))
    };
    let mut legacy = start("legacy");
    let mut modern = start("2026-07-28");
    // Both have listed and called, and wait, their sessions open.
    legacy.expect_line(&json!({ "awaiting_list_change": true }));
    modern.expect_line(&json!({ "awaiting_list_change": true }));
    let toggled = other.call("ex.toggle", json!({}));
    assert_eq!(
        toggled["result"]["content"][0]["text"],
        "surprise is on",
        "{toggled}\n{}",
        serve.log()
    );
    let legacy = legacy.report();
    let modern = modern.report();
    for (report, mode, version, via) in [
        (&legacy, "legacy", "2025-11-25", "session"),
        (&modern, "2026-07-28", "2026-07-28", "listen"),
    ] {
        let json = &report.json;
        report.check(json["protocol_version"] == version, || {
            format!("the negotiated version is not {version}")
        });
        report.check(json["list_changed_via"] == via, || {
            format!("it did not hear of the toggle through its {via}")
        });
        report.check(
            json["calls"]["ex.echo"]["text"] == format!("from {mode}")
                && json["calls"]["time.get_current_time"]["is_error"] == false,
            || "its calls".into(),
        );
        report.check(
            report
                .strings("/tools_after")
                .iter()
                .any(|t| t == "ex.surprise"),
            || "ex.surprise is not listed after the toggle".into(),
        );
    }
    for pointer in ["/tools", "/tools_after"] {
        let (old, new) = (legacy.strings(pointer), modern.strings(pointer));
        assert_eq!(
            old, new,
            "{pointer}: the legacy client (left) and the modern client (right) listed different tools\n\
             --- legacy report ---\n{}\n--- modern report ---\n{}\n--- the serve's log ---\n{}",
            legacy.json,
            modern.json,
            serve.log()
        );
    }
    let tools = legacy.strings("/tools");
    for expected in ["everything.echo", "time.get_current_time", "ex.toggle"] {
        legacy.check(tools.iter().any(|t| t == expected), || {
            format!("tool {expected} not listed: {tools:?}")
        });
    }
}

/// A remote 2026-07-28 server (`modern_server.py http PORT`, the official Python SDK's
/// `MCPServer` over Streamable HTTP) as a `url` entry with `"era": "modern"`: the gate's bridge
/// speaks that era to it (no session, its headers), and a legacy and a modern client each call
/// its tools, one of which asks the client for input (an `input_required` round through the
/// bridge, answered by each client's own callback).
pub(crate) fn a_remote_2026_07_28_server_is_used_by_a_legacy_and_a_modern_client(peers: &Peers) {
    let dir = TempDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let server = Command::new(&peers.python)
        .arg(repo_file("tests/peers/modern_server.py"))
        .args(["http", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("modern_server.py starts");
    let _stop = KillOnDrop(server);
    retry(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| format!("modern_server.py does not listen on {port}: {e}"))
    });
    let config = dir.path().join("gate.json");
    let entry = json!({ "mcpServers": { "asker": {
        "url": format!("http://127.0.0.1:{port}/mcp"), "era": "modern" } } });
    std::fs::write(&config, entry.to_string()).expect("config written");
    for mode in ["legacy", "2026-07-28"] {
        let tag = mode.replace('-', "");
        let out = Command::new(&peers.python)
            .arg(repo_file("tests/peers/python_asker.py"))
            .args(["--mode", mode, "--tag", &tag, "--gate", gate_bin()])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(format!("data-{tag}")))
            .output()
            .expect("python_asker.py runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "python_asker.py --mode {mode}: {stderr}"
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("report of --mode {mode}: {e}; {stderr}"));
        assert_eq!(
            report["tools"],
            json!(["asker.add", "asker.ask_name"]),
            "{report}"
        );
        assert_eq!(report["add"], "5", "{report}");
        assert_eq!(report["ask"], format!("hello octo-{tag}"), "{report}");
    }
}

/// Stops a child process when dropped (SIGKILL, then reaped).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

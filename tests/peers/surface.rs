//! The whole MCP surface through the gate, seen by clients someone else wrote: the official
//! Python and TypeScript SDK clients (`python_surface.py`, `ts_surface.mjs`: tools, resources,
//! templates, prompts, completion, logging and the servers' requests to the client, each answered
//! by the client's own callbacks) and the MCP Inspector's CLI, with three real servers behind one
//! gate: server-everything (prompts, resources, templates, sampling, elicitation, roots),
//! server-memory (tools and one resource) and mcp-server-time (tools). Over stdio
//! (`aegis-gate stdio --config`) and over Streamable HTTP (`aegis-gate serve`), one client at a
//! time, then two clients in one workspace, each of which must get only its own server requests.
//! `main.rs` runs these only when every peer is there.

use crate::support::{gate_bin, repo_file, wait_exit, Serve, TempDir, WAIT};
use crate::Peers;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Every check of the surface scripts, in their order.
const CHECKS: [&str; 11] = [
    "capabilities",
    "tools",
    "resources",
    "templates",
    "template_read",
    "prompts",
    "completion",
    "logging",
    "sampling",
    "elicitation",
    "roots",
];
/// server-memory's one resource, read through the gate to show routing by URI to a second server.
const MEMORY_GRAPH: &str = "memory://knowledge-graph";
/// How long a surface script may take in all (its own `--timeout`), and how long the test waits
/// for one line of it.
const SCRIPT_TIMEOUT: &str = "90";
const LINE_WAIT: Duration = Duration::from_secs(120);

/// The three servers as `mcpServers` entries of a stdio config; server-memory keeps its graph in
/// `dir` (it starts empty).
fn stdio_servers(peers: &Peers, dir: &Path) -> Value {
    json!({
        "everything": { "command": "node", "args": [peers.everything_js, "stdio"] },
        "memory": {
            "command": "node",
            "args": [peers.memory_js],
            "env": { "MEMORY_FILE_PATH": dir.join("memory.jsonl") },
        },
        "time": { "command": peers.python, "args": ["-m", "mcp_server_time"], "env": { "TZ": "UTC" } },
    })
}

/// A serve whose workspace `ws` holds the three servers as connections, active, and the key of
/// an agent of it; server-memory keeps its graph in `dir`.
fn serve_with_three_servers(peers: &Peers, dir: &Path) -> (Serve, String) {
    let python = peers.python.to_str().unwrap();
    serve_with(
        peers,
        &[
            json!({"name": "everything", "command": ["node", peers.everything_js, "stdio"]}),
            json!({"name": "memory", "command": ["node", peers.memory_js],
                   "env": {"MEMORY_FILE_PATH": dir.join("memory.jsonl")}}),
            json!({"name": "time", "command": [python, "-m", "mcp_server_time"], "env": {"TZ": "UTC"}}),
        ],
    )
}

/// A serve whose workspace `ws` holds `connections` (started by `node`, by the venv's
/// `python -m mcp_server_*` or by the gate binary), active, and the key of an agent of it.
pub(crate) fn serve_with(peers: &Peers, connections: &[Value]) -> (Serve, String) {
    let python = peers.python.to_str().unwrap();
    let serve = Serve::in_temp(&[
        "--allow-command",
        "node",
        "--allow-command",
        &format!("{python} -m mcp_server_*"),
    ]);
    for connection in connections {
        let r = serve.connect("ws", connection.clone());
        assert_eq!(r.status, 201, "{connection}: {}\n{}", r.body, serve.log());
    }
    serve.activate("ws");
    let key = serve.agent("ws", "bot")["key"].as_str().unwrap().to_owned();
    (serve, key)
}

/// Which SDK's surface script.
#[derive(Clone, Copy)]
enum Sdk {
    Python,
    TypeScript,
}

impl Sdk {
    fn name(self) -> &'static str {
        match self {
            Sdk::Python => "python_surface.py (Python SDK)",
            Sdk::TypeScript => "ts_surface.mjs (TypeScript SDK)",
        }
    }

    /// The script's command line up to its own arguments.
    fn command(self, peers: &Peers) -> Command {
        match self {
            Sdk::Python => {
                let mut cmd = Command::new(&peers.python);
                cmd.arg(repo_file("tests/peers/python_surface.py"));
                cmd
            }
            Sdk::TypeScript => {
                let mut cmd = Command::new("node");
                cmd.arg(repo_file("tests/peers/ts_surface.mjs"))
                    .arg("--sdk")
                    .arg(&peers.ts_sdk);
                cmd
            }
        }
    }
}

/// Where a script reaches the gate.
pub(crate) enum Via<'a> {
    /// It starts `aegis-gate stdio` with this config and data dir.
    Stdio { config: &'a Path, data: &'a Path },
    /// It posts to this serve's `/mcp/ws` with this agent key.
    Http { serve: &'a Serve, key: &'a str },
}

impl Via<'_> {
    /// The script arguments that reach the gate this way: `--command` and `--arg`s (the stdio
    /// gate at debug level), or `--url` and the `--header` of the key.
    pub(crate) fn add_to(&self, cmd: &mut Command) {
        match self {
            Via::Stdio { config, data } => {
                cmd.args(["--command", gate_bin()])
                    .args(["--arg=--log-level", "--arg", "debug"])
                    .args(["--arg", "stdio", "--arg=--config", "--arg"])
                    .arg(config)
                    .args(["--arg=--data-dir", "--arg"])
                    .arg(data);
            }
            Via::Http { serve, key } => {
                cmd.args(["--url", &format!("http://{}/mcp/ws", serve.addr)])
                    .args(["--header", &format!("Authorization:Bearer {key}")]);
            }
        }
    }
}

/// What one run of a surface script is asked to do besides its checks.
struct Run<'a> {
    tag: &'a str,
    skip: &'a [&'a str],
    wait_before: &'a [&'a str],
}

/// A script of a peer running (a surface script, `python_modern.py`, `python_http_client.py`):
/// its stdout read line by line, its stdin held (for `--wait-before`), its stderr (with the stdio
/// gate's log, which passes through it) in a file.
pub(crate) struct Script<'s> {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: PathBuf,
    /// The serve it talks to, whose log goes into failure messages (HTTP only).
    serve: Option<&'s Serve>,
}

impl<'s> Script<'s> {
    /// Starts `sdk`'s script against the gate (`via`), with server-everything as `everything`,
    /// the calls and the read that show the other two servers, and `run`'s tag, skips and waits.
    fn start(sdk: Sdk, peers: &Peers, via: &Via<'s>, run: &Run, dir: &Path) -> Script<'s> {
        let mut cmd = sdk.command(peers);
        cmd.args(["--tag", run.tag, "--prefix", "everything."])
            .args(["--timeout", SCRIPT_TIMEOUT])
            .args(["--call", "time.get_current_time", r#"{"timezone": "UTC"}"#])
            .args(["--call", "memory.read_graph", "{}"])
            .args(["--read", MEMORY_GRAPH]);
        for check in run.skip {
            cmd.args(["--skip", check]);
        }
        for step in run.wait_before {
            cmd.args(["--wait-before", step]);
        }
        via.add_to(&mut cmd);
        let what = format!("{} --tag {}", sdk.name(), run.tag);
        Script::spawn(what, cmd, via, &dir.join(format!("{}.stderr", run.tag)))
    }

    /// Starts `cmd` (a script that reaches the gate through `via`, its arguments for that
    /// already given), named `what` in failure messages, its stderr written to `stderr`.
    pub(crate) fn spawn(
        what: String,
        mut cmd: Command,
        via: &Via<'s>,
        stderr: &Path,
    ) -> Script<'s> {
        let serve = match via {
            Via::Stdio { .. } => None,
            Via::Http { serve, .. } => Some(*serve),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("stdout of {what}"))
            .spawn(move || {
                for line in stdout.lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .unwrap();
        Script {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: stderr.to_owned(),
            serve,
        }
    }

    /// What to show when it failed: its stderr (with the stdio gate's log), and serve's log.
    fn diagnostics(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let mut out = format!("--- stderr of {} ---\n{stderr}", self.what);
        if let Some(serve) = self.serve {
            out.push_str(&format!("--- the serve's log ---\n{}", serve.log()));
        }
        out
    }

    /// Its next line on stdout, within [`LINE_WAIT`]; fails (with its stderr) when it ends first.
    fn next_line(&mut self, waiting_for: &str) -> String {
        match self.lines.recv_timeout(LINE_WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!(
                    "{} wrote no line within {LINE_WAIT:?} (waiting for {waiting_for})\n{}",
                    self.what,
                    self.diagnostics()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = wait_exit(&mut self.child, WAIT, || self.what.clone());
                panic!(
                    "{} ended ({status}) before {waiting_for}\n{}",
                    self.what,
                    self.diagnostics()
                )
            }
        }
    }

    /// Waits until it stops at `--wait-before STEP`, which it says on stdout.
    fn expect_waiting(&mut self, step: &str) {
        self.expect_line(&json!({ "waiting": step }));
    }

    /// Waits for its next line on stdout, which must be the JSON object `want`.
    pub(crate) fn expect_line(&mut self, want: &Value) {
        let line = self.next_line(&want.to_string());
        let said: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: {e}: {line}\n{}", self.what, self.diagnostics()));
        assert_eq!(
            &said,
            want,
            "{} said something else\n{}",
            self.what,
            self.diagnostics()
        );
    }

    /// Lets it go on past the step it waits at.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }

    /// Its report (the last line it writes), once it exited successfully.
    pub(crate) fn report(mut self) -> Report {
        let line = self.next_line("its report");
        drop(self.stdin.take());
        let what = self.what.clone();
        let status = wait_exit(&mut self.child, WAIT, || what.clone());
        let diagnostics = self.diagnostics();
        assert!(
            status.success(),
            "{} failed ({status})\n{diagnostics}",
            self.what
        );
        let json = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: {e}: {line}\n{diagnostics}", self.what));
        Report {
            what: self.what.clone(),
            json,
            diagnostics,
        }
    }
}

impl Drop for Script<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A script's report, with what to show when an assertion on it fails.
pub(crate) struct Report {
    what: String,
    pub(crate) json: Value,
    diagnostics: String,
}

impl Report {
    fn fail(&self, why: String) -> ! {
        panic!(
            "{}: {why}\n--- its report ---\n{}\n{}",
            self.what, self.json, self.diagnostics
        )
    }

    pub(crate) fn strings(&self, pointer: &str) -> Vec<String> {
        match self.json.pointer(pointer).and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
            None => self.fail(format!("no list at {pointer}")),
        }
    }

    pub(crate) fn text(&self, pointer: &str) -> String {
        match self.json.pointer(pointer).and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => self.fail(format!("no text at {pointer}")),
        }
    }

    pub(crate) fn check(&self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fail(why());
        }
    }
}

/// What a user of the gate sees of the three servers, and that every check of `tag`'s run but
/// those of `skip` passed: names with their server's prefix, the texts the servers and the
/// client's callbacks gave, the tag in every answer to a server request, nobody else's.
fn assert_merged_surface(report: &Report, tag: &str, skip: &[&str]) {
    let json = &report.json;
    report.check(json["tag"] == tag, || format!("tag is not {tag}"));
    report.check(json["protocol_version"] == "2025-11-25", || {
        "protocol version".into()
    });
    report.check(json["server_info"]["name"] == "aegis-gate", || {
        "the server it talked to is not the gate".into()
    });
    report.check(json["skipped"] == json!(skip), || {
        format!("skipped is not {skip:?}")
    });
    for check in CHECKS.iter().filter(|c| !skip.contains(c)) {
        report.check(json["checks"][check].is_object(), || {
            format!("check {check} did not run")
        });
    }

    // Tools: all three servers', each under its prefix.
    let tools = report.strings("/tools");
    for expected in [
        "everything.echo",
        "everything.get-sum",
        "everything.trigger-sampling-request",
        "everything.trigger-elicitation-request",
        "everything.get-roots-list",
        "memory.create_entities",
        "memory.read_graph",
        "memory.search_nodes",
        "time.get_current_time",
        "time.convert_time",
    ] {
        report.check(tools.iter().any(|t| t == expected), || {
            format!("tool {expected} not listed: {tools:?}")
        });
    }
    let unprefixed: Vec<&String> = tools
        .iter()
        .filter(|t| {
            !["everything.", "memory.", "time."]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .collect();
    report.check(unprefixed.is_empty(), || {
        format!("tools without a server's prefix: {unprefixed:?}")
    });

    // Prompts: only server-everything has any.
    let prompts = report.strings("/checks/prompts/names");
    for short in [
        "simple-prompt",
        "args-prompt",
        "completable-prompt",
        "resource-prompt",
    ] {
        let name = format!("everything.{short}");
        report.check(prompts.contains(&name), || {
            format!("prompt {name} not listed: {prompts:?}")
        });
    }
    report.check(prompts.iter().all(|p| p.starts_with("everything.")), || {
        format!("a prompt that is not server-everything's: {prompts:?}")
    });
    let args_prompt = report.text("/checks/prompts/args_prompt_text");
    report.check(
        args_prompt == format!("What's weather in Paris-{tag}, TX?"),
        || format!("prompts/get everything.args-prompt gave {args_prompt:?}"),
    );
    report.check(
        json["checks"]["completion"]["department"] == json!(["Engineering"]),
        || "completion of everything.completable-prompt".into(),
    );

    // Resources: server-everything's documents and server-memory's graph, URIs as written.
    let resources = report.strings("/checks/resources/uris");
    report.check(
        resources
            .iter()
            .any(|u| u == "demo://resource/static/document/architecture.md"),
        || format!("server-everything's documents not listed: {resources:?}"),
    );
    report.check(resources.iter().any(|u| u == MEMORY_GRAPH), || {
        format!("server-memory's {MEMORY_GRAPH} not listed: {resources:?}")
    });
    let strangers: Vec<&String> = resources
        .iter()
        .filter(|u| !u.starts_with("demo://resource/static/document/") && *u != MEMORY_GRAPH)
        .collect();
    report.check(strangers.is_empty(), || {
        format!("resources of nobody's: {strangers:?}")
    });
    let templates = report.strings("/checks/templates/uri_templates");
    report.check(
        templates
            == [
                "demo://resource/dynamic/text/{resourceId}",
                "demo://resource/dynamic/blob/{resourceId}",
            ],
        || format!("templates are not server-everything's two: {templates:?}"),
    );
    let empty_graph = json!({"entities": [], "relations": []});
    let graph = report.text(&format!("/reads/{}", MEMORY_GRAPH.replace('/', "~1")));
    report.check(
        serde_json::from_str::<Value>(&graph).ok() == Some(empty_graph.clone()),
        || format!("resources/read {MEMORY_GRAPH} (server-memory's) gave {graph:?}"),
    );

    // Calls routed to the other two servers.
    let now = report.text("/calls/time.get_current_time/text");
    report.check(
        json["calls"]["time.get_current_time"]["is_error"] == false
            && now.contains("\"timezone\": \"UTC\""),
        || format!("time.get_current_time gave {now:?}"),
    );
    let read_graph = report.text("/calls/memory.read_graph/text");
    report.check(
        serde_json::from_str::<Value>(&read_graph).ok() == Some(empty_graph),
        || format!("memory.read_graph gave {read_graph:?}"),
    );

    // Logs name the server they came from.
    let loud = format!("demo://resource/dynamic/text/loud-{tag}");
    if !skip.contains(&"logging") {
        let logs = json["logs"].as_array().cloned().unwrap_or_default();
        let ours = logs
            .iter()
            .find(|l| l["data"].as_str().is_some_and(|d| d.contains(&loud)));
        report.check(
            ours.is_some_and(|l| l["logger"] == "everything" && l["level"] == "info"),
            || format!("no info log of logger everything naming {loud}: {logs:?}"),
        );
    }

    // The server's requests: every one this client answered was its own call's.
    if !skip.contains(&"sampling") {
        let sampled = report.strings("/sampling_requests");
        let ours = format!("Resource trigger-sampling-request context: aegis-sampling-{tag}");
        report.check(sampled == [ours.clone()], || {
            format!("sampling requests answered: {sampled:?}, want only [{ours:?}]")
        });
    }
    if !skip.contains(&"elicitation") {
        let elicited = report.strings("/elicitation_requests");
        report.check(elicited.len() == 1, || {
            format!(
                "{} elicitation requests answered, want 1: {elicited:?}",
                elicited.len()
            )
        });
    }
}

/// Runs `sdk`'s script to its end over `via`, every check but `skip`; its report.
fn run_once(sdk: Sdk, peers: &Peers, via: &Via, dir: &Path, tag: &str, skip: &[&str]) -> Report {
    let run = Run {
        tag,
        skip,
        wait_before: &[],
    };
    let report = Script::start(sdk, peers, via, &run, dir).report();
    assert_merged_surface(&report, tag, skip);
    report
}

fn over_stdio(sdk: Sdk, peers: &Peers) {
    let dir = TempDir::new();
    let config = dir.path().join("mcp.json");
    let servers = stdio_servers(peers, dir.path());
    std::fs::write(&config, json!({ "mcpServers": servers }).to_string()).unwrap();
    let data = dir.path().join("data");
    let via = Via::Stdio {
        config: &config,
        data: &data,
    };
    run_once(sdk, peers, &via, dir.path(), "a", &[]);
}

fn over_http(sdk: Sdk, peers: &Peers) {
    let dir = TempDir::new();
    let (serve, key) = serve_with_three_servers(peers, dir.path());
    let via = Via::Http {
        serve: &serve,
        key: &key,
    };
    run_once(sdk, peers, &via, dir.path(), "a", &[]);
}

pub(crate) fn python_sdk_client_sees_three_servers_merged_through_stdio(peers: &Peers) {
    over_stdio(Sdk::Python, peers);
}

pub(crate) fn typescript_sdk_client_sees_three_servers_merged_through_stdio(peers: &Peers) {
    over_stdio(Sdk::TypeScript, peers);
}

pub(crate) fn python_sdk_client_sees_three_servers_merged_through_serve_over_http(peers: &Peers) {
    over_http(Sdk::Python, peers);
}

pub(crate) fn typescript_sdk_client_sees_three_servers_merged_through_serve_over_http(
    peers: &Peers,
) {
    over_http(Sdk::TypeScript, peers);
}

/// Two clients in one workspace of one serve, both sessions open throughout: their checks up to
/// logging run at once; then the Python client's sampling and elicitation while the TypeScript
/// client waits idle, then the TypeScript client's while the Python one waits. The gate sends a
/// server's request to the only session with a call in flight at that server and refuses it while
/// calls of two sessions are (it never guesses), so the turns come from the scripts saying where
/// they wait (`--wait-before`), not from sleeps. Each must get its own requests and nobody
/// else's, over the whole run. Roots are left out: server-everything caches the first roots
/// answer it gets, one cache per connection to it, so the second client would read the first's.
pub(crate) fn two_sdk_clients_on_one_gate_each_answer_only_their_own_server_requests(
    peers: &Peers,
) {
    let dir = TempDir::new();
    let (serve, key) = serve_with_three_servers(peers, dir.path());
    let via = Via::Http {
        serve: &serve,
        key: &key,
    };
    let skip: &[&str] = &["roots"];
    let steps: &[&str] = &["sampling", "end"];
    let run = |tag| Run {
        tag,
        skip,
        wait_before: steps,
    };
    let mut python = Script::start(Sdk::Python, peers, &via, &run("py"), dir.path());
    let mut typescript = Script::start(Sdk::TypeScript, peers, &via, &run("ts"), dir.path());
    python.expect_waiting("sampling");
    typescript.expect_waiting("sampling");
    // The Python client's turn: the TypeScript session is open, with no call in flight.
    python.go();
    python.expect_waiting("end");
    // The TypeScript client's turn, the Python session still open.
    typescript.go();
    typescript.expect_waiting("end");
    python.go();
    typescript.go();
    let python = python.report();
    let typescript = typescript.report();
    assert_merged_surface(&python, "py", skip);
    assert_merged_surface(&typescript, "ts", skip);
    // The tool results carry each client's own answers (checked by the scripts too).
    for (report, tag) in [(&python, "py"), (&typescript, "ts")] {
        report.check(report.json["checks"]["sampling"]["requests"] == 1, || {
            format!("the sampling check of {tag} saw other requests")
        });
        report.check(
            report.json["checks"]["elicitation"]["requests"] == 1,
            || format!("the elicitation check of {tag} saw other requests"),
        );
    }
}

/// `inspector --cli URL/mcp --transport http --header "Authorization: Bearer KEY" ARGS`: its exit
/// status, the result it wrote (JSON) and its stderr.
fn inspector(peers: &Peers, serve: &Serve, key: &str, dir: &Path, args: &[&str]) -> Value {
    let (result, stderr) = (dir.join("result.json"), dir.join("inspector.stderr"));
    let _ = std::fs::remove_file(&result);
    let mut child = Command::new(&peers.node22)
        .arg(&peers.inspector)
        .args(["--cli", &format!("http://{}/mcp", serve.addr)])
        .args(["--transport", "http", "--header"])
        .arg(format!("Authorization: Bearer {key}"))
        .args(args)
        .arg("--output")
        .arg(&result)
        // Its catalog and OAuth state go under HOME: the temp dir, not the user's.
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let log = || {
        format!(
            "--- the inspector's stderr ---\n{}\n--- the serve's log ---\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default(),
            serve.log()
        )
    };
    let status = wait_exit(&mut child, WAIT * 3, log);
    assert!(status.success(), "inspector {args:?}: {status}\n{}", log());
    let written = std::fs::read_to_string(&result)
        .unwrap_or_else(|e| panic!("inspector {args:?} wrote no result: {e}\n{}", log()));
    serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("inspector {args:?}: {e}: {written}\n{}", log()))
}

/// The values of `key` of the objects in `list`.
fn field<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i[key].as_str()).collect())
        .unwrap_or_default()
}

pub(crate) fn mcp_inspector_cli_lists_and_reads_resources_templates_and_prompts_over_mcp(
    peers: &Peers,
) {
    let dir = TempDir::new();
    let (serve, key) = serve_with_three_servers(peers, dir.path());
    let inspect = |args: &[&str]| inspector(peers, &serve, &key, dir.path(), args);

    let listed = inspect(&["--method", "resources/list"]);
    let uris = field(&listed["resources"], "uri");
    for uri in [
        "demo://resource/static/document/architecture.md",
        MEMORY_GRAPH,
    ] {
        assert!(uris.contains(&uri), "resource {uri} not listed: {listed}");
    }
    let templates = inspect(&["--method", "resources/templates/list"]);
    assert_eq!(
        field(&templates["resourceTemplates"], "uriTemplate"),
        [
            "demo://resource/dynamic/text/{resourceId}",
            "demo://resource/dynamic/blob/{resourceId}"
        ],
        "{templates}"
    );
    let prompts = inspect(&["--method", "prompts/list"]);
    let names = field(&prompts["prompts"], "name");
    for name in [
        "everything.simple-prompt",
        "everything.args-prompt",
        "everything.completable-prompt",
    ] {
        assert!(names.contains(&name), "prompt {name} not listed: {prompts}");
    }
    assert!(
        names.iter().all(|n| n.starts_with("everything.")),
        "a prompt that is not server-everything's: {prompts}"
    );

    let got = inspect(&[
        "--method",
        "prompts/get",
        "--prompt-name",
        "everything.args-prompt",
        "--prompt-args",
        "city=Lyon",
        "state=TX",
    ]);
    assert_eq!(
        got["messages"][0]["content"]["text"], "What's weather in Lyon, TX?",
        "{got}"
    );
    let graph = inspect(&["--method", "resources/read", "--uri", MEMORY_GRAPH]);
    let text = graph["contents"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(text).ok(),
        Some(json!({"entities": [], "relations": []})),
        "{graph}"
    );
    let dynamic = inspect(&[
        "--method",
        "resources/read",
        "--uri",
        "demo://resource/dynamic/text/3",
    ]);
    let text = dynamic["contents"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Resource 3: This is a plaintext resource"),
        "{dynamic}"
    );
}

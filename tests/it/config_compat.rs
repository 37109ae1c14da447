//! Config files as users already have them (issue #17, items 4 and 5, and `doctor`), through the
//! binary, asserting on the words a user reads: an unknown key in a server entry is warned about
//! with a suggestion while the server still starts; `type` is checked against `command` and
//! `url`; VS Code's `{"servers": …}` serves tools; `${env:NAME}`/`${NAME}` expand from the
//! gate's environment, an unset one is an error naming it and no value; `envFile` is read;
//! `aegis-gate doctor` prints `fail` lines and exits 1 on a broken setup, 0 on a good one.

use crate::support::{
    call_request, example, gate, gate_bin, initialize_request, last_answer, pipe_through, run_cli,
    text, write_file, Gate, Serve, TempDir, SECRET,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// `stdio --config` on `config` (written to `dir`), with `env` added, stdin closed at once.
fn stdio_once(dir: &Path, config: &Value, env: &[(&str, &str)]) -> Output {
    let path = write_file(dir, "mcp.json", &config.to_string());
    gate(&["stdio", "--config"])
        .arg(path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Asserts that `out` is the config error exit (2) with `needle` in its stderr.
fn assert_refused(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    stderr
}

#[test]
fn a_typo_in_a_server_entry_is_warned_with_a_suggestion_and_the_server_still_starts() {
    let mut typo = example(&[]);
    typo["arg"] = json!(["--extra-tools", "1"]);
    let mut other_clients = example(&[]);
    for (key, value) in [
        ("type", json!("stdio")),
        ("autoApprove", json!(["echo"])),
        ("alwaysAllow", json!(["add"])),
        ("timeout", json!(60)),
        ("description", json!("keys Cline and Cursor write")),
    ] {
        other_clients[key] = value;
    }
    let servers = json!({
        "typo": typo,
        "quiet": other_clients,
        "off": {"disabled": true, "command": "/nonexistent", "bogus": 1},
    });
    let mut gate = Gate::ready(servers, json!({}));
    let names = gate.tool_names();
    assert!(names.contains(&"typo.echo".to_owned()), "{names:?}");
    assert!(names.contains(&"quiet.echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("off.")), "{names:?}");
    let log = gate.log();
    assert!(
        log.contains(r#"server "typo": unknown key "arg" is ignored; did you mean "args"?"#),
        "{log}"
    );
    assert!(
        log.contains("The keys of a server entry: command, args, env, envFile, cwd, url"),
        "{log}"
    );
    // Keys other clients write, and a disabled entry, are not warned about.
    assert_eq!(log.matches("unknown key").count(), 1, "{log}");
}

#[test]
fn type_is_checked_against_command_and_url_and_an_sse_server_is_refused_clearly() {
    let dir = TempDir::new();
    let cases = [
        (
            json!({"type": "sse", "url": "http://127.0.0.1:9/sse"}),
            "\"type\": \"sse\" is the older HTTP+SSE transport, which the gate's bridge does not \
             speak (it speaks Streamable HTTP)",
        ),
        (
            json!({"type": "http", "command": gate_bin(), "args": ["example-server"]}),
            "\"type\": \"http\" needs a \"url\"",
        ),
        (
            json!({"type": "stdio", "url": "http://127.0.0.1:9/mcp"}),
            "\"type\": \"stdio\" needs a \"command\"",
        ),
        (
            json!({"type": "websocket", "command": gate_bin(), "args": ["example-server"]}),
            "\"type\": \"websocket\" is not one of \"stdio\", \"http\", \"streamable-http\", \"sse\"",
        ),
    ];
    for (entry, needle) in cases {
        let out = stdio_once(dir.path(), &json!({"mcpServers": {"s": entry}}), &[]);
        assert_refused(&out, &format!("config error: server \"s\": {needle}"));
    }
}

#[test]
fn vs_code_servers_format_serves_tools() {
    let dir = TempDir::new();
    let config = json!({
        "inputs": [{"type": "promptString", "id": "token", "password": true}],
        "servers": {"ex": {"type": "stdio", "command": gate_bin(), "args": ["example-server"]}},
    });
    let path = write_file(dir.path(), "mcp.json", &config.to_string());
    let mut cmd = gate(&["stdio", "--config"]);
    cmd.arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let message = json!({"message": "from a VS Code file"});
    let out = pipe_through(
        cmd,
        &[initialize_request(), call_request(2, "ex.echo", message)],
    );
    let answer = last_answer(&out);
    assert_eq!(text(&answer), "from a VS Code file", "{answer}");
}

#[test]
fn both_formats_in_one_file_and_a_vs_code_prompt_are_refused_by_name() {
    let dir = TempDir::new();
    let both = json!({"mcpServers": {}, "servers": {}});
    let out = stdio_once(dir.path(), &both, &[]);
    assert_refused(&out, "has both \"mcpServers\" and \"servers\"; keep one");
    let neither = json!({"aegis": {}});
    let out = stdio_once(dir.path(), &neither, &[]);
    assert_refused(
        &out,
        "no \"mcpServers\" object (VS Code's \"servers\" is read too)",
    );
    let prompt = json!({"servers": {"ex": {"command": gate_bin(),
        "env": {"API_KEY": "${input:token}"}}}});
    let out = stdio_once(dir.path(), &prompt, &[]);
    assert_refused(
        &out,
        "server \"ex\": env API_KEY: ${input:token} asks VS Code to prompt for a value, which \
         the gate cannot do: set a variable in the gate's environment and write ${env:NAME}",
    );
}

#[test]
fn variables_expand_from_the_gates_environment_and_are_never_logged() {
    let secret = "expanded-secret-91c";
    let servers = json!({"ex": {
        "command": "${env:AEGIS_IT_BIN}",
        "args": ["example-server"],
        "cwd": "${AEGIS_IT_DIR}",
        "env": {
            "BOTH": "${AEGIS_IT_SECRET}/${env:AEGIS_IT_SECRET}",
            "LITERAL": "$${AEGIS_IT_SECRET}",
            "DOLLAR": "a$b $$",
        },
    }});
    let tmp = std::env::temp_dir();
    let env = [
        ("AEGIS_IT_BIN", gate_bin()),
        ("AEGIS_IT_DIR", tmp.to_str().unwrap()),
        ("AEGIS_IT_SECRET", secret),
    ];
    let mut gate = Gate::start_with_env(servers, json!({}), &env);
    gate.initialize();
    let mut get = |name: &str| text(&gate.call("ex.get_env", json!({ "name": name })));
    assert_eq!(get("BOTH"), format!("{secret}/{secret}"));
    assert_eq!(get("LITERAL"), "${AEGIS_IT_SECRET}");
    assert_eq!(get("DOLLAR"), "a$b $$");
    assert!(!gate.log().contains(secret), "{}", gate.log());
}

#[test]
fn an_unset_variable_is_an_error_naming_it_and_no_value() {
    let dir = TempDir::new();
    let set = ("AEGIS_IT_SET", "set-secret-55");
    let local = json!({"mcpServers": {"ex": {"command": gate_bin(), "args": ["example-server"],
        "env": {"A_FIRST": "${env:AEGIS_IT_SET}", "B_SECOND": "${env:AEGIS_IT_UNSET_91}"}}}});
    let out = stdio_once(dir.path(), &local, &[set]);
    let stderr = assert_refused(
        &out,
        "config error: server \"ex\": env B_SECOND: variable AEGIS_IT_UNSET_91 is not set in \
         the gate's environment",
    );
    assert!(!stderr.contains(set.1), "{stderr}");
    let remote = json!({"mcpServers": {"far": {"url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer ${AEGIS_IT_UNSET_91}", "X-Set": "${AEGIS_IT_SET}"}}}});
    let out = stdio_once(dir.path(), &remote, &[set]);
    let stderr = assert_refused(
        &out,
        "server \"far\": headers Authorization: variable AEGIS_IT_UNSET_91 is not set",
    );
    assert!(!stderr.contains(set.1), "{stderr}");
}

#[test]
fn an_env_file_gives_the_child_variables_and_the_entrys_env_wins() {
    let dir = TempDir::new();
    // A relative envFile is found next to the config file, not in the gate's working directory.
    write_file(
        dir.path(),
        "ex.env",
        "# for ex\nexport FROM_FILE=\"file value\"\nBOTH=from file\n",
    );
    let config = json!({"mcpServers": {"ex": {"command": gate_bin(), "args": ["example-server"],
        "envFile": "ex.env", "env": {"BOTH": "from env"}}}});
    let path = write_file(dir.path(), "mcp.json", &config.to_string());
    let mut cmd = gate(&["stdio", "--config"]);
    cmd.arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir("/");
    let get = |id: i64, name: &str| call_request(id, "ex.get_env", json!({ "name": name }));
    let out = pipe_through(
        cmd,
        &[initialize_request(), get(2, "FROM_FILE"), get(3, "BOTH")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answer = |id: i64| {
        let found = answers.iter().find(|a| a["id"] == id);
        text(found.unwrap_or_else(|| panic!("no answer {id}: {stdout}")))
    };
    assert_eq!(answer(2), "file value");
    assert_eq!(answer(3), "from env");
}

/// `doctor ARGS`: (exit code, stdout), stdout also showing stderr when an assertion fails.
fn doctor(args: &[&str]) -> (i32, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_cli(&all);
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    (code, format!("{stdout}\n-- stderr --\n{stderr}"))
}

#[test]
fn doctor_on_a_broken_setup_prints_fail_lines_and_exits_1() {
    let dir = TempDir::new();
    let mut typo = example(&[]);
    typo["arg"] = json!([]);
    let config = json!({"mcpServers": {
        "ex": typo,
        "gone": {"command": "aegis-it-no-such-program"},
        "old": {"type": "sse", "url": "http://127.0.0.1:9/sse"},
        "far": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "${AEGIS_IT_UNSET_91}"}},
    }});
    let config = write_file(dir.path(), "mcp.json", &config.to_string());
    let not_a_dir = write_file(dir.path(), "file", "");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let (code, out) = doctor(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        not_a_dir.to_str().unwrap(),
        "--listen",
        &listen,
    ]);
    assert_eq!(code, 1, "{out}");
    for line in [
        "warn config: server \"ex\": unknown key \"arg\" is ignored; did you mean \"args\"?",
        "fail server \"gone\": command \"aegis-it-no-such-program\" is not found on PATH: \
         install it, or write its full path in \"command\"",
        "fail config error: server \"old\": \"type\": \"sse\" is the older HTTP+SSE transport",
        "fail config error: server \"far\": headers Authorization: variable AEGIS_IT_UNSET_91",
        "is not a directory: pass --data-dir with a directory",
        &format!("fail listen {listen}: already in use"),
        "serve takes connections over REST, so its config's servers must be empty",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(out.contains("doctor: 6 failed, 1 warned"), "{out}");
}

#[test]
fn doctor_on_a_good_setup_prints_ok_lines_and_exits_0() {
    let dir = TempDir::new();
    let config = json!({"servers": {"ex": {"type": "stdio", "command": gate_bin(),
        "args": ["example-server"], "autoApprove": []}}});
    let config = write_file(dir.path(), "mcp.json", &config.to_string());
    let data = dir.path().join("data");
    let (code, out) = doctor(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "ok   config ",
        ": VS Code's \"servers\" format, 1 server entry",
        &format!(
            "ok   server \"ex\": command {:?} is an executable file",
            gate_bin()
        ),
        "does not exist yet; the first start creates it (mode 0700)",
        "doctor: 0 failed, 0 warned",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(!out.contains("fail "), "{out}");
}

#[test]
fn doctor_checks_stored_connections_against_the_allowlist_and_the_key() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws");
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let data = data.to_str().unwrap();
    let allowed = ["--data-dir", data, "--listen", "127.0.0.1:0"];
    let (code, out) = doctor(&[&allowed[..], &["--allow-command", gate_bin()]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   connection \"ex\" of workspace \"ws\": its secrets decrypt; the allowlist allows it"),
        "{out}"
    );
    assert!(
        out.contains("state.json: parses: 1 workspace, 1 connection"),
        "{out}"
    );
    let (code, out) = doctor(&[&allowed[..], &["--allow-command", "/bin/true"]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("fail connection \"ex\" of workspace \"ws\": serve would refuse it:"),
        "{out}"
    );
    assert!(out.contains("is not on the allowlist"), "{out}");
    // Another valid key: the stored secret no longer decrypts.
    let other_key = format!("{}=", "A".repeat(43));
    std::fs::write(Path::new(data).join("fernet.key"), other_key).unwrap();
    let (code, out) = doctor(&["--data-dir", data]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("fail connection \"ex\" of workspace \"ws\": MY_SECRET does not decrypt"),
        "{out}"
    );
    assert!(
        out.contains("restore the fernet.key (or AEGIS_FERNET_KEYS)"),
        "{out}"
    );
}

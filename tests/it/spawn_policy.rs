//! The spawn policy through the binary: every bypass an attacker with an admin token tried is
//! refused at registration (so no marker file is ever written), variables are refused unless a template allows them, a stored
//! command the allowlist no longer allows does not start, and the operator's own config file
//! obeys the environment rules. That the ordinary forms of real servers still start and serve is
//! an interop test (`tests/peers/spawn_policy.rs`).

use crate::support::{gate_bin, run_cli, Serve, TempDir};
use serde_json::{json, Value};
use std::path::Path;

/// Code that writes `marker` in Python and in JavaScript.
fn payloads(marker: &Path) -> (String, String) {
    let m = marker.display();
    (
        format!("open('{m}','w').write('ran')"),
        format!("require('fs').writeFileSync('{m}','ran')"),
    )
}

#[test]
fn every_reported_bypass_is_refused_and_runs_nothing() {
    let dir = TempDir::new();
    let marker = dir.path().join("marker");
    let (py, js) = payloads(&marker);
    let script = dir.path().join("server.js");
    let preload = dir.path().join("x.js");
    std::fs::write(&script, "// a server\n").unwrap();
    std::fs::write(&preload, format!("{js};\n")).unwrap();
    std::fs::write(dir.path().join("evilmod.py"), format!("{py}\n")).unwrap();
    let (script, preload, d) = (
        script.to_str().unwrap(),
        preload.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    );
    let serve = Serve::in_temp(&["--allow-command", "python3", "--allow-command", "node"]);
    // The workspace is active: a command that were accepted would start at once.
    serve.setup("ws");
    let commands: Vec<(Value, Value, &str)> = vec![
        (json!(["python3", format!("-c{py}")]), json!({}), "-c"),
        (json!(["python3", "-Ic", py]), json!({}), "-Ic"),
        (
            json!(["python3", "-m", "timeit", "-n1", "-r1", "-s", py, "pass"]),
            json!({}),
            "timeit",
        ),
        (json!(["node", format!("--eval={js}")]), json!({}), "--eval"),
        (json!(["node", "-pe", js]), json!({}), "-pe"),
        (
            json!([
                "node",
                format!("--import=data:text/javascript,{js}"),
                script
            ]),
            json!({}),
            "--import",
        ),
        (
            json!(["node", "--require", preload, script]),
            json!({}),
            "--require",
        ),
        (
            json!(["node", script]),
            json!({"NODE_OPTIONS": format!("--require {preload}")}),
            "NODE_OPTIONS",
        ),
        (
            json!(["node", script]),
            json!({"LD_PRELOAD": format!("{d}/x.so")}),
            "LD_PRELOAD",
        ),
        (
            json!(["python3", "-m", "evilmod"]),
            json!({"PYTHONPATH": d}),
            "PYTHONPATH",
        ),
        (
            json!(["python3", "-m", "mcp_server_time"]),
            json!({"PYTHONWARNINGS": "ignore::antigravity.Foo", "BROWSER": format!("sh -c \"{py}\"")}),
            "BROWSER",
        ),
        (json!(["node", script]), json!({"TZ": "U\u{0}TC"}), "NUL"),
        (json!(["node", format!("{script}\u{0}")]), json!({}), "NUL"),
        (
            json!(["sh", "-c", format!("echo ran > {}", marker.display())]),
            json!({}),
            "not on the allowlist",
        ),
    ];
    for (i, (command, env, named)) in commands.into_iter().enumerate() {
        let r = serve.connect(
            "ws",
            json!({"name": format!("c{i}"), "command": command, "env": env}),
        );
        assert!(
            [400, 403, 422].contains(&r.status),
            "{command} with {env} must be refused: {} {}",
            r.status,
            r.body
        );
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(named),
            "{command}: the refusal names {named:?}: {message}"
        );
        assert!(
            !message.contains("ignore::antigravity"),
            "a value is echoed: {message}"
        );
    }
    // The same rules guard a change of a registered connection.
    let id = serve
        .admin("GET", "/connections?workspace_id=ws", None)
        .json()["connections"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = serve.admin(
        "PATCH",
        &format!("/connections/{id}"),
        Some(json!({"command": ["node", "-e", js]})),
    );
    assert_eq!(patched.status, 403, "{}", patched.body);
    let listed = serve
        .admin("GET", "/connections?workspace_id=ws", None)
        .json();
    assert_eq!(
        listed["connections"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert!(!marker.exists(), "a refused command ran");
}

#[test]
fn a_refused_variable_is_allowed_only_for_the_template_that_names_it() {
    let dir = TempDir::new();
    let config = dir.path().join("serve.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {}, "aegis": {"allow_commands": [
            {"command": "node /opt/mcp/*/index.js", "allow_env": ["NODE_OPTIONS"]}
        ]}})
        .to_string(),
    )
    .unwrap();
    let gate_template = format!("{} example-server", gate_bin());
    let serve = Serve::in_temp(&[
        "--allow-command",
        &gate_template,
        "--allow-env",
        "PYTHONPATH",
        "--config",
        config.to_str().unwrap(),
    ]);
    let ok = serve.connect(
        "ws",
        json!({"name": "a", "command": [gate_bin(), "example-server"], "env": {"PYTHONPATH": "/srv"}}),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let ok = serve.connect(
        "ws",
        json!({"name": "b", "command": ["node", "/opt/mcp/x/index.js"], "env": {"NODE_OPTIONS": "--no-warnings"}}),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let refused = serve.connect(
        "ws",
        json!({"name": "c", "command": ["node", "/opt/mcp/x/index.js"], "env": {"PYTHONPATH": "/srv"}}),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "env_not_allowed");
    // The gate's own binary runs only the example server, even on its bare allowlist entry.
    let refused = serve.connect(
        "ws",
        json!({"name": "d", "command": [gate_bin(), "bridge", "--url", "http://127.0.0.1:1/mcp"]}),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[test]
fn a_stored_command_the_allowlist_no_longer_allows_does_not_start() {
    let dir = TempDir::new();
    let first = Serve::start_with(dir.path(), &["--allow-command", "node"]);
    let r = first.connect(
        "ws",
        json!({"name": "old", "command": ["node", "/opt/mcp/server.js"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    first.stop();
    let second = Serve::start(dir.path());
    let activated = second.admin("POST", "/workspaces/ws/activate", None);
    assert_eq!(activated.status, 409, "{}", activated.body);
    let message = activated.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("\"old\"") && message.contains("allowlist"),
        "{message}"
    );
}

#[test]
fn the_operators_config_file_obeys_the_environment_rules() {
    let dir = TempDir::new();
    let config = dir.path().join("mcp.json");
    let server = |env: Value, aegis: Value| {
        json!({"mcpServers": {"ex": {"command": gate_bin(), "args": ["example-server"], "env": env}},
               "aegis": aegis})
        .to_string()
    };
    std::fs::write(
        &config,
        server(json!({"LD_PRELOAD": "/tmp/x.so"}), json!({})),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = |c: &Path| {
        vec![
            "stdio".to_owned(),
            "--config".to_owned(),
            c.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ]
    };
    let argv = args(&config);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (code, _, stderr) = run_cli(&argv);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("server \"ex\"")
            && stderr.contains("LD_PRELOAD")
            && stderr.contains("allow_env"),
        "{stderr}"
    );
    assert!(!stderr.contains("/tmp/x.so"), "a value is echoed: {stderr}");
    // Allowed by the file: the gate starts (and stops at once, stdin being empty).
    std::fs::write(
        &config,
        server(
            json!({"LD_PRELOAD": ""}),
            json!({"allow_env": ["LD_PRELOAD"]}),
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&argv);
    assert_eq!(code, 0, "{stderr}");
}

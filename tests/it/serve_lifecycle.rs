//! `serve` from start to stop: settings from a config file, `--demo`, SIGTERM, restarts that
//! bring every workspace back, changes that survive `kill -9`, and a stored workspace served over
//! stdio once serve has stopped.

use crate::support::http::send;
use crate::support::{
    call_request, gate, gate_bin, retry, settings_file, stdio_call, text, write_file, Serve,
    TempDir, ADMIN, SECRET, WAIT,
};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

#[test]
fn sigterm_stops_serving_and_exits_zero() {
    let serve = Serve::in_temp(&[]);
    assert_eq!(serve.get("/healthz").unwrap().0, 200);
    let log = serve.log();
    let status = serve.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn live_changes_and_a_restart_bring_everything_back() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    let key = serve.setup("ws-1");
    let second = serve.connect(
        "ws-1",
        json!({"name": "more", "command": [gate_bin(), "example-server", "--extra-tools", "1"]}),
    );
    assert_eq!(second.status, 201);
    let client = serve.client("ws-1", &key);
    // The new child is starting; polling its readiness, bounded by the deadline.
    retry(Duration::from_millis(50), || {
        let r = client.send(&call_request(9, "more.tool_0", json!({"message": "live"})));
        match r.json()["result"].is_object() {
            true => Ok(()),
            false => Err(format!("the added connection never served: {}", r.body)),
        }
    });
    let tools = serve.admin("GET", "/workspaces/ws-1/tools", None).json();
    let held = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ex.poisoned_add")
        .unwrap()
        .clone();
    assert_eq!(held["verdict"], "held");
    assert!(serve.stop().success());

    let serve = Serve::start(dir.path());
    retry(Duration::from_millis(50), || {
        let ws = serve.admin("GET", "/workspaces/ws-1", None).json();
        let healthy = ws["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["health"]["status"] == "healthy")
            .count();
        match healthy == 2 {
            true => Ok(()),
            false => Err(format!("not back after restart: {ws}")),
        }
    });
    let client = serve.client("ws-1", &key);
    assert_eq!(
        text(&client.call("ex.get_env", json!({"name": "MY_SECRET"}))),
        SECRET
    );
}

#[test]
fn every_change_answered_2xx_survives_kill_9() {
    let dir = TempDir::new();
    let mut answered: Vec<String> = Vec::new();
    for round in 0..4 {
        let mut serve = Serve::start(dir.path());
        // Changes as fast as the gate takes them; the gate is killed while they flow.
        let addr = serve.addr.clone();
        let writer = std::thread::spawn(move || {
            let mut done = Vec::new();
            let auth = format!("Bearer {ADMIN}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            for i in 0..1000 {
                let name = format!("r{round}-a{i}");
                let body = json!({"workspace_id": "ws-d", "name": name}).to_string();
                let path = "/api/v1/aegis/agents";
                match send(&addr, "POST", path, &headers, Some(&body), WAIT) {
                    Ok(answer) if answer.status == 201 => done.push(name),
                    _ => break,
                }
            }
            done
        });
        // Let some changes through, then kill without warning.
        let a3 = format!("r{round}-a3\"");
        retry(Duration::from_millis(5), || match std::fs::read_to_string(
            serve.data.join("state.json"),
        )
        .unwrap_or_default()
        .contains(&a3)
        {
            true => Ok(()),
            false => Err("no change reached the disk".to_owned()),
        });
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        answered.extend(writer.join().unwrap());
    }
    let serve = Serve::start(dir.path());
    let agents = serve.admin("GET", "/agents", None).json();
    let stored: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|n| !stored.contains(&n.as_str()))
        .collect();
    assert!(missing.is_empty(), "answered 2xx but lost: {missing:?}");
    // a3 on disk means the client had read a0..a2's answers (it sends one change at a time);
    // a3's own answer may have been cut off by the kill.
    assert!(
        answered.len() >= 12,
        "only {} changes went through",
        answered.len()
    );
}

#[test]
fn serve_demo_prints_commands_that_work() {
    let dir = TempDir::new();
    let (serve, printed) = Serve::demo(&dir.path().join("data"));
    assert!(printed.contains("admin token (shown once"), "{printed}");
    let key = printed
        .split("Bearer agk_")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let client = serve.client("demo", &format!("agk_{key}"));
    assert_eq!(
        text(&client.call("hello.echo", json!({"message": "hi"}))),
        "hi"
    );
    // One state file: the workspace, its agent and the pins of its tools.
    let state: Value =
        serde_json::from_slice(&std::fs::read(serve.data.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["workspaces"]["demo"]["active"], true);
    assert_eq!(state["agents"].as_object().unwrap().len(), 1);
    assert_eq!(
        state["pins"]["demo"]["hello"]["echo"]["approved"]["by"],
        "first use"
    );
    assert!(!serve.data.join("pins.json").exists());
}

#[test]
fn the_demo_commands_work_pasted_into_a_shell_on_a_later_start() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have curl (.ci/run installs it)"
        );
        eprintln!("skipped: no curl");
        return;
    }
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let (first, printed) = Serve::demo(&data);
    let token = printed
        .split("admin token (shown once, only its hash is kept): ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("{printed}"))
        .to_owned();
    drop(first);
    // A later start shows `$AEGIS_ADMIN_TOKEN` in place of the token it no longer knows.
    let (later, printed) = Serve::demo(&data);
    assert!(!printed.contains(&token), "{printed}");
    let commands: String = printed
        .split_once("Paste these in another terminal:")
        .unwrap_or_else(|| panic!("{printed}"))
        .1
        .to_owned();
    let shell = Command::new("sh")
        .args(["-c", &commands])
        .env("AEGIS_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    drop(later);
    let out = String::from_utf8_lossy(&shell.stdout);
    assert!(shell.status.success(), "{out}");
    assert!(
        out.contains(r#""id":"demo""#),
        "the admin call failed: {out}"
    );
    assert!(out.contains("hello.echo"), "no tool list: {out}");
    assert!(out.contains(r#""text":"hi""#), "no call result: {out}");
}

#[test]
fn serve_takes_its_settings_from_a_config_file() {
    let dir = TempDir::new();
    let config = settings_file(dir.path(), json!({"separator": "__"}));
    let serve = Serve::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let client = serve.setup_client("ws-1");
    assert_eq!(
        text(&client.call("ex__echo", json!({"message": "sep"}))),
        "sep"
    );
    // A connection name holding the separator would make merged names ambiguous.
    let ambiguous = serve.connect(
        "ws-1",
        json!({"name": "a__b", "command": [gate_bin(), "example-server"]}),
    );
    assert_eq!(ambiguous.status, 422, "{}", ambiguous.body);
    std::fs::write(&config, r#"{"mcpServers": {"x": {"command": "true"}}}"#).unwrap();
    let refused = gate(&["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("mcpServers must be empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_stored_workspace_is_served_over_stdio() {
    let dir = TempDir::new();
    let serve = Serve::start(dir.path());
    serve.setup("ws-1");
    let data = serve.data.clone();
    assert!(serve.stop().success());
    let secret = json!({"name": "MY_SECRET"});
    let last = stdio_call(&data, "ws-1", &[], "ex.get_env", secret.clone());
    assert_eq!(text(&last), SECRET);
    let missing = gate(&["stdio", "--workspace", "nope", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no workspace \"nope\""));
    // A config file gives the settings; the connections stay the stored ones.
    let config = settings_file(dir.path(), json!({"separator": "__"}));
    let config = config.to_str().unwrap();
    let last = stdio_call(&data, "ws-1", &["--config", config], "ex__get_env", secret);
    assert_eq!(text(&last), SECRET);
    let servers = r#"{"mcpServers": {"x": {"command": "true"}}}"#;
    let servers = write_file(dir.path(), "servers.json", servers);
    let refused = gate(&["stdio", "--workspace", "ws-1", "--config"])
        .arg(servers)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("mcpServers must be empty"));
}

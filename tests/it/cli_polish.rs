//! The command line as a person reads it (#17): help pages with examples, `help [COMMAND]`, usage
//! errors that point at the subcommand's help and read alike, a failure reported once, shell
//! completions and the man page made from the help texts, startup progress in the log, what
//! changed in a quarantined tool (`tools show` and REST), and the README kept true (its commands,
//! its first command, the interop peers' layout), and the interop harness saying what it skipped.

use crate::support::{example, repo_file, retry, run_cli, Gate, Serve, TempDir};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// The command names the top-level help lists under `COMMANDS:`.
fn listed_commands() -> Vec<String> {
    let (code, help, _) = run_cli(&["--help"]);
    assert_eq!(code, 0);
    let section = help.split_once("COMMANDS:\n").unwrap().1;
    section
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_help_page_has_an_example_and_help_command_prints_it() {
    let commands = listed_commands();
    for expected in ["stdio", "serve", "tools", "help", "completions", "man"] {
        assert!(commands.iter().any(|c| c == expected), "{commands:?}");
    }
    let (_, top, _) = run_cli(&["--help"]);
    assert_eq!(run_cli(&["help"]).1, top);
    assert!(top.contains("EXAMPLES:\n    aegis-gate "), "{top}");
    for command in &commands {
        let (code, page, err) = run_cli(&[command, "--help"]);
        assert_eq!(code, 0, "{command}: {err}");
        let examples = page
            .split_once("EXAMPLES:\n")
            .unwrap_or_else(|| panic!("{command} --help has no EXAMPLES:\n{page}"))
            .1;
        assert!(
            examples.contains(&format!("aegis-gate {command}")),
            "{command}'s examples do not run it:\n{page}"
        );
        assert_eq!(run_cli(&["help", command]).1, page, "help {command}");
    }
    let (code, _, err) = run_cli(&["help", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown command \"nope\""), "{err}");
}

#[test]
fn a_usage_error_points_at_the_help_of_its_subcommand() {
    for (args, command) in [
        (&["serve", "--bogus"][..], "serve"),
        (&["stdio", "--max-line-bytes", "x"][..], "stdio"),
        (&["tools", "frob"][..], "tools"),
        (&["example-server", "--nope"][..], "example-server"),
    ] {
        let (code, _, err) = run_cli(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!("Run `aegis-gate {command} --help` for usage.")),
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = run_cli(&["sever"]);
    assert_eq!(code, 2);
    assert!(err.contains("Run `aegis-gate --help` for usage."), "{err}");
    assert!(err.contains("the commands are stdio, serve"), "{err}");
}

#[test]
fn wrong_words_are_refused_in_one_wording() {
    let dir = TempDir::new();
    let data = dir.path().to_str().unwrap();
    for (args, expected) in [
        (
            vec!["tools", "frob"],
            "tools takes list, show NAME or approve NAME, not \"frob\"",
        ),
        (vec!["keys"], "keys takes show or rotate"),
        (
            vec!["keys", "nope"],
            "keys takes show or rotate, not \"nope\"",
        ),
        (
            vec!["partners", "frob", "x"],
            "partners takes list, show ORG, add FILE or remove ORG, not \"frob x\"",
        ),
        (
            vec!["audit", "check"],
            "audit takes verify [FILE...], not \"check\"",
        ),
        (
            vec!["approvals"],
            "approvals takes list, approve ID or deny ID",
        ),
        (
            vec!["completions", "tcsh"],
            "completions takes bash, zsh or fish, not \"tcsh\"",
        ),
        (
            vec!["stdio"],
            "stdio takes --config FILE, --demo or --workspace ID",
        ),
    ] {
        let mut args = args.clone();
        if !matches!(args[0], "approvals" | "completions" | "stdio") {
            args.extend(["--data-dir", data]);
        }
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("aegis-gate: {expected}\n")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_runtime_failure_is_reported_once() {
    let dir = TempDir::new();
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&["audit", "verify", "--data-dir", data]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "one line, not a log line and an aegis-gate: line:\n{err}"
    );
    assert!(err.starts_with("aegis-gate: no signing.key in "), "{err}");
}

#[test]
fn log_level_is_documented_for_stdio_and_taken_by_serve() {
    let (_, stdio, _) = run_cli(&["stdio", "--help"]);
    assert!(stdio.contains("--log-level LEVEL"), "{stdio}");
    let (_, serve_help, _) = run_cli(&["serve", "--help"]);
    assert!(serve_help.contains("--log-level LEVEL"), "{serve_help}");
    // The harness starts `--log-level debug serve …`; serve's own flag wins over it.
    let serve = Serve::in_temp(&["--log-level", "warn"]);
    let _ = serve.admin("GET", "/workspaces", None);
    let log = serve.log();
    assert!(!log.contains(" INFO ") && !log.contains(" DEBUG "), "{log}");
}

#[test]
fn example_server_help_names_every_tool_it_offers() {
    let (_, help, _) = run_cli(&["example-server", "--help"]);
    for tool in [
        "pid",
        "stats",
        "list_flood",
        "crash",
        "echo",
        "get_env",
        "weather",
    ] {
        assert!(help.contains(tool), "{tool} missing:\n{help}");
    }
}

#[test]
fn bash_completion_made_from_the_help_texts_completes_commands_actions_and_flags() {
    let (code, script, err) = run_cli(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let complete = |words: &str, cword: usize| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; _aegis_gate; \
                 echo \"${{COMPREPLY[*]}}\""
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("aegis-gate se", 1), "serve");
    assert_eq!(
        complete("aegis-gate --log-level debug tools ''", 4),
        "list show approve --data-dir --workspace --store --help"
    );
    let serve = complete("aegis-gate serve --allow-", 2);
    assert_eq!(
        serve,
        "--allow-command --allow-env --allow-origin --allow-host"
    );
    let (_, zsh, _) = run_cli(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef aegis-gate\n"), "{zsh}");
    assert!(
        zsh.contains("tools) compadd -- list show approve --data-dir"),
        "{zsh}"
    );
    let (_, fish, _) = run_cli(&["completions", "fish"]);
    assert!(
        fish.contains("complete -c aegis-gate -n '__fish_seen_subcommand_from serve' -l listen"),
        "{fish}"
    );
}

#[test]
fn the_man_page_is_roff_made_from_every_help_text() {
    let (code, page, err) = run_cli(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.starts_with(".TH AEGIS-GATE 1 "), "{page}");
    for command in listed_commands() {
        assert!(
            page.contains(&format!(".SS {}\n", command.replace('-', "\\-"))),
            "{command}"
        );
    }
    assert!(
        page.contains("\\-\\-allow\\-command TEMPLATE"),
        "serve's help is in it"
    );
    // Every line that reads as a roff request is one of ours; help text lines are escaped.
    let requests = [".TH", ".SH", ".SS", ".nf", ".fi", ".TP", ".B"];
    for line in page
        .lines()
        .filter(|l| l.starts_with('.') || l.starts_with('\''))
    {
        let request = line.split_whitespace().next().unwrap_or_default();
        assert!(requests.contains(&request), "unescaped line {line:?}");
    }
}

#[test]
fn startup_logs_each_server_as_it_becomes_ready_and_the_time_to_ready() {
    let servers = json!({
        "a": example(&[]),
        "b": example(&["--extra-tools", "2"]),
        "slow": example(&["--startup-delay-ms", "300"]),
    });
    let gate = Gate::ready(servers, json!({}));
    gate.wait_for_log("workspace default: 3 of 3 servers ready");
    let log = gate.log();
    for server in ["a", "b", "slow"] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("server {server}: ready after ")))
            .collect();
        assert_eq!(lines.len(), 1, "{server}:\n{log}");
    }
    let summary: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("workspace default: "))
        .collect();
    assert_eq!(summary.len(), 1, "{log}");
    assert!(
        summary[0].contains(" tools, after ") && summary[0].ends_with(" s"),
        "{log}"
    );
}

/// Waits until `tools show` of `name` says it changed; its output.
fn shown_when_changed(data: &str, name: &str) -> String {
    retry(Duration::from_millis(50), || {
        let (code, out, err) = run_cli(&["tools", "show", name, "--data-dir", data]);
        match code == 0 && out.contains("pin: changed") {
            true => Ok(out),
            false => Err(format!("{name} never changed: {out}{err}")),
        }
    })
}

#[test]
fn tools_show_prints_what_changed_since_the_approval() {
    let mut gate = Gate::ready(json!({ "wx": example(&["--poison"]) }), json!({}));
    gate.call("wx.rug_pull", json!({}));
    gate.expect_list_changed("list_changed");
    let data_dir = gate.data_dir();
    let shown = shown_when_changed(data_dir.to_str().unwrap(), "wx.weather");
    let diff = shown
        .split_once("changed since approval (- approved, + current, both sanitized):\n")
        .unwrap_or_else(|| panic!("no diff:\n{shown}"))
        .1;
    let removed: Vec<&str> = diff.lines().filter(|l| l.starts_with("  - ")).collect();
    let added: Vec<&str> = diff.lines().filter(|l| l.starts_with("  + ")).collect();
    assert_eq!(
        removed,
        ["  -   \"description\": \"Gets the weather for a city.\","],
        "{shown}"
    );
    assert_eq!(added.len(), 1, "{shown}");
    assert!(added[0].contains("Before calling this tool"), "{shown}");
}

#[test]
fn the_rest_tool_view_carries_the_diff_of_a_changed_tool() {
    let serve = Serve::in_temp(&[]);
    let client = serve.setup_client("ws-1");
    client.call("ex.rug_pull", json!({}));
    let weather = retry(Duration::from_millis(50), || {
        let tools: Value = serve.admin("GET", "/workspaces/ws-1/tools", None).json();
        let weather = tools["tools"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "ex.weather").cloned());
        match weather {
            Some(w) if w["pin"] == "changed" => Ok(w),
            other => Err(format!("ex.weather never changed: {other:?}")),
        }
    });
    let diff: Vec<&str> = weather["diff"]
        .as_array()
        .unwrap_or_else(|| panic!("no diff: {weather}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        diff.contains(&"-   \"description\": \"Gets the weather for a city.\","),
        "{diff:#?}"
    );
    assert!(
        diff.iter()
            .any(|l| l.starts_with("+   \"description\": ") && l.contains("Before calling")),
        "{diff:#?}"
    );
    let tools: Value = serve.admin("GET", "/workspaces/ws-1/tools", None).json();
    let echo = tools["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "ex.echo").cloned())
        .unwrap();
    assert_eq!(echo.get("diff"), None, "an unchanged tool has no diff");
}

/// The text of README's section `heading` (up to the next heading of its level or above).
fn readme_section(heading: &str) -> String {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let start = readme.find(heading).unwrap_or_else(|| panic!("{heading}"));
    let rest = &readme[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[test]
fn readme_commands_name_every_command_and_the_first_command_shows_the_build() {
    let commands = readme_section("## Commands");
    for command in listed_commands() {
        assert!(
            commands.contains(&format!("`aegis-gate {command}")),
            "README's ## Commands lacks {command}"
        );
    }
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    assert_eq!(first.trim(), "cargo run -- serve --demo", "{first}");
}

#[test]
fn readme_names_the_peers_layout_and_the_command_that_installs_it() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let harness = std::fs::read_to_string(repo_file("tests/peers/main.rs")).unwrap();
    // Every directory the harness looks in (`root.join("…")`) is named in the README.
    for part in harness.split("root.join(").skip(1) {
        let path = part
            .trim_start()
            .trim_start_matches('"')
            .split('"')
            .next()
            .unwrap();
        let top = path.split('/').next().unwrap();
        assert!(readme.contains(top), "README does not name {top} ({path})");
    }
    for needle in [
        "AEGIS_PEERS_DIR",
        ".ci/peers",
        "npm/node_modules",
        "venv/bin/python",
    ] {
        assert!(readme.contains(needle), "README does not name {needle}");
    }
}

/// The `peers` test binary cargo built next to this one (the newest, if several).
fn peers_harness() -> std::path::PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("peers-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "no peers test binary in {}: `cargo test` builds it (`cargo test --test it` \
                 alone does not; add `--test peers`)",
                deps.display()
            )
        })
}

#[test]
fn without_peers_the_interop_harness_ends_naming_the_skipped_tests() {
    let harness = peers_harness();
    let empty = TempDir::new();
    let run = |ci: &str| {
        Command::new(&harness)
            .env("AEGIS_PEERS_DIR", empty.path())
            .env("CI", ci)
            .output()
            .unwrap()
    };
    let out = run("false");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "test real_peers::python_sdk_client_in_legacy_mode_calls_through_the_gate ... skipped"
        ),
        "{stdout}"
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.starts_with("skipped 19 interop tests (real MCP peers missing): run `.ci/peers`")
            && last.contains("AEGIS_PEERS_DIR"),
        "{stdout}"
    );
    let under_ci = run("true");
    assert!(
        !under_ci.status.success(),
        "a missing peer fails under CI=true"
    );
}

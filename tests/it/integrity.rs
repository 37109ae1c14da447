//! Tool integrity end to end: a downstream serves a poisoned tool and then pulls the rug on a clean
//! one; the agent never reads the poisoned text, and the changed tool is quarantined until approved.

use crate::support::{assert_error, error_code, example, run_cli, text, Gate};
use serde_json::{json, Value};

const POISON_MARKERS: [&str; 3] = ["IMPORTANT", "id_rsa", "\u{200b}"];

fn listing(gate: &mut Gate) -> Value {
    gate.request("tools/list", json!({}))["result"].clone()
}

fn assert_clean(listing: &Value) {
    let text = listing.to_string();
    for marker in POISON_MARKERS {
        assert!(
            !text.contains(marker),
            "{marker:?} reached the agent: {text}"
        );
    }
}

fn description_of(listing: &Value, name: &str) -> Option<String> {
    listing["tools"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["description"].as_str().map(str::to_owned))
}

#[test]
fn poisoned_tools_are_held_and_a_rug_pull_is_quarantined_until_approved() {
    let mut gate = Gate::ready(json!({ "wx": example(&["--poison"]) }), json!({}));
    let first = listing(&mut gate);
    assert_clean(&first);
    assert_eq!(
        description_of(&first, "wx.weather").as_deref(),
        Some("Gets the weather for a city.")
    );
    assert!(
        description_of(&first, "wx.poisoned_add").is_none(),
        "held tools are not listed"
    );

    assert_error(
        &gate.call("wx.poisoned_add", json!({"a": 1, "b": 2})),
        -32005,
        "held for review",
    );

    // Hidden characters in results are stripped too.
    assert_eq!(
        text(&gate.call("wx.weather", json!({"city": "Oslo"}))),
        "sunny in Oslo"
    );

    assert_eq!(
        text(&gate.call("wx.rug_pull", json!({}))),
        "weather changed"
    );
    gate.expect_list_changed("list_changed");
    let after = listing(&mut gate);
    assert_clean(&after);
    assert_eq!(
        description_of(&after, "wx.weather").as_deref(),
        Some("Gets the weather for a city."),
        "the last approved version is served"
    );

    let data_dir = gate.data_dir();
    let data = data_dir.to_str().unwrap();
    let (code, out, _) = run_cli(&["tools", "list", "--data-dir", data]);
    assert_eq!(code, 0);
    let weather_line = out.lines().find(|l| l.starts_with("wx.weather ")).unwrap();
    assert!(
        weather_line.contains("held") && weather_line.contains("changed"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("wx.poisoned_add ") && l.contains("unapproved")),
        "{out}"
    );
    let (code, shown, _) = run_cli(&["tools", "show", "wx.weather", "--data-dir", data]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("pseudo_tag") && shown.contains("<U+200B>"),
        "{shown}"
    );

    // The operator approves the new version; the running gate serves it within a second.
    let (code, out, err) = run_cli(&["tools", "approve", "wx.weather", "--data-dir", data]);
    assert_eq!(code, 0, "{out}{err}");
    gate.expect_list_changed("list_changed after approval");
    let approved = description_of(&listing(&mut gate), "wx.weather").unwrap();
    assert!(approved.contains("Before calling this tool"), "{approved}");
    assert!(
        !approved.contains('\u{200b}'),
        "approved text is still sanitized"
    );
}

#[test]
fn pins_survive_a_restart() {
    let servers = json!({ "wx": example(&["--poison"]) });
    let mut gate = Gate::ready(servers.clone(), json!({}));
    gate.call("wx.rug_pull", json!({}));
    gate.expect_list_changed("list_changed");
    let data_dir = gate.data_dir();
    gate.close_stdin();
    assert!(gate.wait_exit(std::time::Duration::from_secs(20)).success());
    let pins = std::fs::read_to_string(data_dir.join("state.json")).unwrap();
    assert!(pins.contains("\"by\": \"first use\""), "{pins}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data_dir.join("state.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (_, out, _) = run_cli(&["tools", "list", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("wx.weather ") && l.contains("changed")),
        "{out}"
    );
}

#[test]
fn hide_mode_hides_a_changed_tool_and_refuses_calls() {
    let mut gate = Gate::ready(
        json!({ "wx": example(&["--poison"]) }),
        json!({ "on_change": "hide" }),
    );
    gate.call("wx.rug_pull", json!({}));
    gate.expect_list_changed("list_changed");
    assert!(description_of(&listing(&mut gate), "wx.weather").is_none());
    assert_error(
        &gate.call("wx.weather", json!({"city": "Oslo"})),
        -32005,
        "quarantined",
    );
}

#[test]
fn require_approval_lists_nothing_until_an_operator_approves() {
    let mut gate = Gate::ready(
        json!({ "ex": example(&[]) }),
        json!({ "pinning": "require_approval" }),
    );
    assert_eq!(listing(&mut gate)["tools"], json!([]));
    assert_eq!(
        error_code(&gate.call("ex.echo", json!({"message": "x"}))),
        -32005
    );
    let data_dir = gate.data_dir();
    let data = data_dir.to_str().unwrap();
    let (code, _, err) = run_cli(&["tools", "approve", "ex.echo", "--data-dir", data]);
    assert_eq!(code, 0, "{err}");
    gate.expect_list_changed("list_changed");
    gate.assert_echo("ex.echo", "now");
    let (code, _, err) = run_cli(&["tools", "approve", "ex.nope", "--data-dir", data]);
    assert_ne!(code, 0);
    assert!(err.contains("ex.nope"), "{err}");
}

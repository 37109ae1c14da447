//! A hostile server's prompts and resources (`example-server --poison`): a poisoned prompt is
//! held, hidden text is stripped from what prompts and resources return, a poisoned resource is
//! hidden and refused, and a prompt changed under the gate (a rug pull) is quarantined until an
//! operator approves it, on the command line or over REST.

use crate::support::{assert_error, example, gate_bin, retry, run_cli, Gate, Serve};
use serde_json::{json, Value};
use std::time::Duration;

/// Zero-width and Unicode tag characters: text no person sees.
fn hidden_chars(text: &str) -> Vec<String> {
    text.chars()
        .filter(
            |c| matches!(*c as u32, 0x200B..=0x200F | 0x2060..=0x2064 | 0xFEFF | 0xE0000..=0xE007F),
        )
        .map(|c| format!("U+{:04X}", c as u32))
        .collect()
}

fn prompt<'a>(prompts: &'a [Value], name: &str) -> Option<&'a Value> {
    prompts.iter().find(|p| p["name"] == name)
}

fn prompts_changed(v: &Value) -> bool {
    v["method"] == "notifications/prompts/list_changed"
}

const CLEAN: &str = "Suggests a name for a pet.";

#[test]
fn poisoned_prompts_and_resources_are_held_and_hidden_text_is_stripped() {
    let mut gate = Gate::ready(json!({ "p": example(&["--poison"]) }), json!({}));
    let prompts = gate.list_all("prompts/list", "prompts");
    let listing = Value::Array(prompts.clone()).to_string();
    for name in ["p.greet", "p.clean_prompt", "p.hidden_messages"] {
        assert!(
            prompt(&prompts, name).is_some(),
            "{name} missing: {listing}"
        );
    }
    assert!(
        prompt(&prompts, "p.poisoned_prompt").is_none(),
        "a held prompt is listed: {listing}"
    );
    assert!(!listing.contains("IMPORTANT"), "{listing}");
    assert_eq!(hidden_chars(&listing), Vec::<String>::new(), "{listing}");
    assert_error(
        &gate.request("prompts/get", json!({"name": "p.poisoned_prompt"})),
        -32005,
        "held for review",
    );
    let hidden = gate.request("prompts/get", json!({"name": "p.hidden_messages"}));
    let said = hidden["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{hidden}"));
    assert_eq!(said, "Remind me of the meeting at 10.", "{hidden}");
    assert_eq!(hidden_chars(&hidden.to_string()), Vec::<String>::new());

    let resources = gate.list_all("resources/list", "resources");
    let uris: Vec<&str> = resources
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(uris.contains(&"example://hidden"), "{uris:?}");
    assert!(
        !uris.contains(&"example://poisoned"),
        "a poisoned resource is listed: {uris:?}"
    );
    let refused = gate.request("resources/read", json!({"uri": "example://poisoned"}));
    assert_error(&refused, -32005, "example://poisoned");
    let read = gate.request("resources/read", json!({"uri": "example://hidden"}));
    assert_eq!(
        hidden_chars(&read.to_string()),
        Vec::<String>::new(),
        "{read}"
    );
    assert_eq!(
        read["result"]["contents"][0]["text"], "Release 1.0 is out.\n",
        "{read}"
    );
}

#[test]
fn a_rug_pulled_prompt_keeps_its_approved_definition_until_approved_on_the_command_line() {
    let mut gate = Gate::ready(json!({ "p": example(&["--poison"]) }), json!({}));
    let before = gate.list_all("prompts/list", "prompts");
    assert_eq!(
        prompt(&before, "p.clean_prompt").unwrap()["description"],
        CLEAN
    );
    assert_eq!(
        crate::support::text(&gate.call("p.rug_pull", json!({}))),
        "weather changed"
    );
    gate.expect("prompts/list_changed", prompts_changed);
    let after = gate.list_all("prompts/list", "prompts");
    assert_eq!(
        prompt(&after, "p.clean_prompt").map(|p| p["description"].clone()),
        Some(json!(CLEAN)),
        "the last approved definition is served"
    );
    // What the agent reads of it carries no hidden text.
    let got = gate.request("prompts/get", json!({"name": "p.clean_prompt"}));
    assert_eq!(
        hidden_chars(&got.to_string()),
        Vec::<String>::new(),
        "{got}"
    );

    let data_dir = gate.data_dir();
    let data = data_dir.to_str().unwrap();
    let (code, out, err) = run_cli(&["tools", "list", "--data-dir", data]);
    assert_eq!(code, 0, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
            .to_owned()
    };
    assert!(line("prompt:p.clean_prompt").contains("changed"), "{out}");
    assert!(
        line("prompt:p.poisoned_prompt").contains("unapproved"),
        "{out}"
    );
    assert!(line("prompt:p.greet").contains("approved"), "{out}");
    let (code, out, err) = run_cli(&[
        "tools",
        "approve",
        "prompt:p.clean_prompt",
        "--data-dir",
        data,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    gate.expect("prompts/list_changed after approval", prompts_changed);
    let approved = gate.list_all("prompts/list", "prompts");
    let description = prompt(&approved, "p.clean_prompt").unwrap()["description"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(description.contains("Before answering"), "{description}");
    assert_eq!(hidden_chars(&description), Vec::<String>::new());
}

#[test]
fn a_rug_pulled_prompts_changed_definition_does_not_reach_the_agent_through_prompts_get() {
    let mut gate = Gate::ready(json!({ "p": example(&["--poison"]) }), json!({}));
    gate.call("p.rug_pull", json!({}));
    gate.expect("prompts/list_changed", prompts_changed);
    let listed = gate.list_all("prompts/list", "prompts");
    assert_eq!(
        prompt(&listed, "p.clean_prompt").unwrap()["description"],
        CLEAN
    );
    // The changed definition is quarantined: the list shows the approved one, and prompts/get
    // (served, or refused) must not hand the agent the changed one either.
    let got = gate.request("prompts/get", json!({"name": "p.clean_prompt"}));
    let described = got["result"]["description"].as_str().unwrap_or_default();
    assert!(
        !described.contains("id_rsa") && !described.contains("IMPORTANT"),
        "the quarantined definition reached the agent through prompts/get: {got}"
    );
}

#[test]
fn in_hide_mode_a_rug_pulled_prompt_is_hidden_and_refused() {
    let mut gate = Gate::ready(
        json!({ "p": example(&["--poison"]) }),
        json!({ "on_change": "hide" }),
    );
    gate.call("p.rug_pull", json!({}));
    gate.expect("prompts/list_changed", prompts_changed);
    let prompts = gate.list_all("prompts/list", "prompts");
    assert!(prompt(&prompts, "p.clean_prompt").is_none(), "{prompts:?}");
    assert!(prompt(&prompts, "p.greet").is_some(), "{prompts:?}");
    assert_error(
        &gate.request("prompts/get", json!({"name": "p.clean_prompt"})),
        -32005,
        "quarantined",
    );
}

#[test]
fn a_rug_pulled_prompt_is_shown_changed_over_rest_and_approved_there() {
    let serve = Serve::in_temp(&[]);
    let key = serve.setup_with(
        "ws-1",
        json!({"name": "ex", "command": [gate_bin(), "example-server", "--poison"]}),
    );
    let client = serve.client("ws-1", &key);
    let description = || {
        let listed = client.request("prompts/list", json!({}));
        listed["result"]["prompts"]
            .as_array()
            .unwrap_or_else(|| panic!("{listed}"))
            .iter()
            .find(|p| p["name"] == "ex.clean_prompt")
            .map(|p| p["description"].as_str().unwrap().to_owned())
    };
    assert_eq!(description().as_deref(), Some(CLEAN));
    let pinned = |name: &str| {
        let view = serve.admin("GET", "/workspaces/ws-1/prompts", None);
        assert_eq!(view.status, 200, "{}", view.body);
        let view = view.json();
        view["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {view}"))
    };
    assert_eq!(pinned("ex.clean_prompt")["pin"], "approved");
    assert_eq!(pinned("ex.poisoned_prompt")["pin"], "unapproved");
    assert_eq!(pinned("ex.poisoned_prompt")["verdict"], "held");
    assert!(client.call("ex.rug_pull", json!({}))["result"].is_object());
    // The child lists again within a second of its announcement; polled, with a deadline.
    let changed = retry(Duration::from_millis(50), || {
        let entry = pinned("ex.clean_prompt");
        match entry["pin"] == "changed" {
            true => Ok(entry),
            false => Err(format!("never changed: {entry}")),
        }
    });
    let diff = changed["diff"].to_string();
    assert!(diff.contains("Before answering"), "{changed}");
    assert_eq!(description().as_deref(), Some(CLEAN));

    let approved = serve.admin(
        "POST",
        "/workspaces/ws-1/prompts/ex.clean_prompt/approve",
        None,
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(
        approved.json()["approved"],
        "ex.clean_prompt",
        "{}",
        approved.body
    );
    retry(Duration::from_millis(50), || match description() {
        Some(d) if d.contains("Before answering") => Ok(()),
        other => Err(format!("the approved version is not served: {other:?}")),
    });
    let unknown = serve.admin("POST", "/workspaces/ws-1/prompts/ex.nope/approve", None);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

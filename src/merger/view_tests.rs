//! Unit tests of `view.rs`.

use super::*;
use serde_json::json;

const DOT: Namer = Namer {
    separator: Separator::Dot,
    naming: Naming::Plain,
};

fn entry(name: &str) -> ToolEntry {
    ToolEntry::visible(name.into(), json!({"name": name, "description": "d"}))
}

fn server(name: &str, tools: Vec<ToolEntry>) -> ServerTools<&'static str> {
    ServerTools {
        tools,
        ..ServerTools::empty(name.into(), "conn")
    }
}

#[test]
fn a_definition_written_once_gives_the_text_of_a_value_and_the_pairs_but_its_name() {
    let definitions = [
        json!({"name": "t", "description": "d \"q\" \u{1}", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}}),
        // `name` first and last in the map's order, alone, and missing.
        json!({"annotations": {}, "name": "a"}),
        json!({"name": "z", "zz": [1, 2.5, null]}),
        json!({"name": "only"}),
        json!({"description": "no name"}),
        json!({}),
    ];
    for definition in definitions {
        let (entry, text) = ToolEntry::visible_with_text("t".into(), &definition);
        assert_eq!(text, JsonText::new(&definition));
        let mut without = definition.clone();
        without.as_object_mut().unwrap().remove("name");
        let whole = without.to_string();
        let pairs = &whole[1..whole.len() - 1];
        assert_eq!(entry.shown.as_deref(), Some(pairs), "{definition}");
        assert_eq!(
            entry.annotations.is_some(),
            definition.get("annotations").is_some()
        );
    }
}

#[test]
fn names_are_prefixed_with_the_config_key_and_hidden_tools_still_route() {
    let held = ToolEntry::hidden("held".into(), "held for review".into());
    let servers = [
        server("a", vec![entry("echo"), held]),
        server("b", vec![entry("echo")]),
    ];
    let merged = merge(&servers, DOT, false);
    let routes = routes(&merged, &[], ResourceRoutes::default(), Vec::new());
    assert_eq!(routes.get("b.echo").map(|r| r.tool.as_str()), Some("echo"));
    assert_eq!(
        routes.get("a.held").and_then(|r| r.blocked.as_deref()),
        Some("held for review")
    );
    assert_eq!(routes.callable(), 2);
    let view = MergedView::build(&merged, 10);
    let page: Value = serde_json::from_str(view.page(None).unwrap().get()).unwrap();
    let names: Vec<&str> = page["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.echo", "b.echo"]);
    assert_eq!(
        page["tools"][0],
        json!({"name": "a.echo", "description": "d"})
    );
}

#[test]
fn colliding_names_keep_the_first() {
    let namer = Namer {
        separator: Separator::Underscore,
        naming: Naming::Plain,
    };
    let servers = [
        server("a", vec![entry("b_c")]),
        server("a_b", vec![entry("c")]),
    ];
    let merged = merge(&servers, namer, false);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].server.name, "a");
}

#[test]
fn provider_safe_names_match_the_pattern_and_stay_distinct() {
    let namer = Namer {
        separator: Separator::Dot,
        naming: Naming::ProviderSafe,
    };
    let long_a = format!("{}.a", "x".repeat(80));
    let long_b = format!("{}.b", "x".repeat(80));
    let names = [
        namer.merged_name("srv", "salesforce.read_account"),
        namer.merged_name("srv", &long_a),
        namer.merged_name("srv", &long_b),
    ];
    assert_eq!(names[0], "srv__salesforce_read_account");
    for n in &names {
        assert!(
            n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{n}"
        );
    }
    assert_ne!(names[1], names[2]);
    assert_eq!(names[1], namer.merged_name("srv", &long_a), "deterministic");
}

#[test]
fn pages_chain_by_cursor() {
    let servers = [server(
        "s",
        (0..5).map(|i| entry(&format!("t{i}"))).collect(),
    )];
    let merged = merge(&servers, DOT, false);
    let view = MergedView::build(&merged, 2);
    let mut cursor: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let page: Value =
            serde_json::from_str(view.page(cursor.as_deref()).unwrap().get()).unwrap();
        for t in page["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["s.t0", "s.t1", "s.t2", "s.t3", "s.t4"]);
    assert!(view.page(Some("bogus")).is_none());
    let empty = MergedView::build::<&str>(&[], 2);
    assert_eq!(empty.page(None).unwrap().get(), r#"{"tools":[]}"#);
}

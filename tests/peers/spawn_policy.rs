//! The spawn policy with real servers: the ordinary forms of starting them (`node` with a script,
//! `python -m module`, `npx -y package` from the npm prefix) pass the allowlist, start and serve.

use crate::support::{retry, Serve};
use crate::Peers;
use serde_json::json;
use std::time::Duration;

pub(crate) fn ordinary_forms_of_real_servers_start_and_serve(peers: &Peers) {
    let (npm, everything) = (&peers.npm, &peers.everything_js);
    let python = peers.python.to_str().unwrap();
    // From the npm prefix, npx finds server-memory locally: no network.
    let serve = Serve::in_temp_at(
        npm,
        &[
            "--allow-command",
            "node",
            "--allow-command",
            &format!("{python} -m mcp_server_*"),
            "--allow-command",
            "npx -y @modelcontextprotocol/server-*",
        ],
    );
    for (name, command) in [
        ("everything", json!(["node", everything, "stdio"])),
        ("time", json!([python, "-m", "mcp_server_time"])),
        (
            "memory",
            json!(["npx", "-y", "@modelcontextprotocol/server-memory"]),
        ),
    ] {
        let r = serve.connect(
            "ws",
            json!({"name": name, "command": command, "env": {"TZ": "UTC"}}),
        );
        assert_eq!(r.status, 201, "{name}: {}", r.body);
    }
    serve.activate("ws");
    let key = serve.agent("ws", "bot")["key"].as_str().unwrap().to_owned();
    let client = serve.client("ws", &key);
    retry(Duration::from_millis(200), || {
        let list = client.list().body;
        let all = [
            "everything.echo",
            "time.get_current_time",
            "memory.create_entities",
        ];
        match all.iter().all(|t| list.contains(&format!("\"{t}\""))) {
            true => Ok(()),
            false => Err(format!(
                "not every server serves yet: {list}\n{}",
                serve.log()
            )),
        }
    });
    let echoed = client.call(
        "everything.echo",
        json!({"message": "through the allowlist"}),
    );
    assert!(
        echoed.to_string().contains("through the allowlist"),
        "{echoed}"
    );
}

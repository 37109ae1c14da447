//! Whole-tree containment (#15, items 3 and 4): every process a server starts, however it
//! detaches, is gone after the connection's DELETE, the workspace's deactivation, the gate's
//! SIGTERM (once or twice) and the gate's SIGKILL; an orphan that exits while the connection
//! runs is reaped at once. Checked in /proc, polled with a deadline. Linux only (the supervisor).
//!
//! The server is a `/bin/sh` script that starts a grandchild in a session of its own (out of the
//! process group; it ignores SIGTERM, so only SIGKILL after the grace ends it) and a daemon
//! (forked twice, so an orphan, and in a session of its own), writes their pids and its own,
//! then `exec`s the example server.

use crate::support::{
    gate_bin, group_of, retry, settings_file, signal, text, write_file, Gate, Serve, TempDir, WAIT,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// `tree.sh DIR GATE [EXAMPLE-SERVER FLAGS…]`.
const TREE: &str = r#"dir=$1 gate=$2
shift 2
setsid sh -c 'trap "" TERM; echo $$ > "$1/setsid.tmp"; mv "$1/setsid.tmp" "$1/setsid.pid"; exec sleep 1000' sh "$dir" </dev/null >/dev/null 2>&1 &
sh -c 'setsid sh -c "echo \$\$ > \"\$1/daemon.tmp\"; mv \"\$1/daemon.tmp\" \"\$1/daemon.pid\"; exec sleep 1000" sh "$1" </dev/null >/dev/null 2>&1 &' sh "$dir"
echo $$ > "$dir/server.tmp"; mv "$dir/server.tmp" "$dir/server.pid"
exec "$gate" example-server "$@"
"#;

/// `orphan.sh DIR GATE`: an orphan that waits on a FIFO, then exits.
const ORPHAN: &str = r#"dir=$1 gate=$2
mkfifo "$dir/go"
( sh -c 'echo $$ > "$1/orphan.tmp"; mv "$1/orphan.tmp" "$1/orphan.pid"; read line < "$1/go"' sh "$dir" </dev/null >/dev/null 2>&1 & )
exec "$gate" example-server
"#;

/// The settings of every gate here: the supervisor's grace is half of this.
const TEARDOWN_GRACE_MS: u64 = 600;

/// A process's state letter and parent, from /proc; `None` once it is gone.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Still there: a zombie left to an init that may never reap it counts as gone.
fn alive(pid: u32) -> bool {
    match state_and_parent(pid) {
        None => false,
        Some(('Z', 1)) => false,
        Some(_) => true,
    }
}

/// The tree of one server: the supervisor, the server, and the two grandchildren.
struct Tree {
    supervisor: u32,
    server: u32,
    setsid: u32,
    daemon: u32,
}

impl Tree {
    /// Reads the pids the script wrote in `dir` (waiting for them) and checks that the tree is
    /// the one this test is about: grandchildren out of the group, the daemon adopted.
    fn read(dir: &Path, supervisor: u32) -> Tree {
        let pid = |name: &str| -> u32 {
            let path = dir.join(format!("{name}.pid"));
            retry(Duration::from_millis(20), || {
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or(format!("{} never written", path.display()))
            })
        };
        let tree = Tree {
            supervisor,
            server: pid("server"),
            setsid: pid("setsid"),
            daemon: pid("daemon"),
        };
        assert_eq!(
            state_and_parent(tree.server).map(|s| s.1),
            Some(supervisor),
            "the server runs under its supervisor"
        );
        for grandchild in [tree.setsid, tree.daemon] {
            assert_ne!(group_of(grandchild), Some(supervisor), "left the group");
        }
        // The daemon's parent exited at once: the supervisor, the nearest subreaper, adopted it.
        retry(Duration::from_millis(20), || {
            match state_and_parent(tree.daemon).map(|s| s.1) {
                Some(parent) if parent == supervisor => Ok(()),
                other => Err(format!("daemon's parent is {other:?}, not {supervisor}")),
            }
        });
        tree
    }

    fn pids(&self) -> [u32; 4] {
        [self.supervisor, self.server, self.setsid, self.daemon]
    }

    fn assert_alive(&self) {
        for pid in self.pids() {
            assert!(alive(pid), "{pid} of {:?} is not running", self.pids());
        }
    }

    /// Waits until no process of the tree is left; `log` says why when one is.
    fn assert_gone(&self, after: &str, log: impl Fn() -> String) {
        retry(Duration::from_millis(20), || {
            let left: Vec<(u32, Option<(char, u32)>)> = self
                .pids()
                .into_iter()
                .filter(|pid| alive(*pid))
                .map(|pid| (pid, state_and_parent(pid)))
                .collect();
            match left.is_empty() {
                true => Ok(()),
                false => Err(format!("left after {after}: {left:?}\n{}", log())),
            }
        });
    }
}

/// A serve whose `/bin/sh` is allowed, with a quick teardown, and `dir` for the script's pids.
fn serve_with_tree() -> (Serve, TempDir) {
    let dir = TempDir::new();
    let config = settings_file(
        dir.path(),
        json!({ "teardown_grace_ms": TEARDOWN_GRACE_MS }),
    );
    let serve = Serve::in_temp(&[
        "--allow-command",
        "/bin/sh",
        "--config",
        config.to_str().unwrap(),
    ]);
    (serve, dir)
}

/// Registers the tree in workspace `ws`, activates it; the connection's id and its tree.
fn start_tree(serve: &Serve, dir: &Path, ws: &str) -> (String, Tree) {
    let script = write_file(dir, "tree.sh", TREE);
    let created = serve.connect(
        ws,
        json!({"name": "tree", "command": ["/bin/sh", script, dir, gate_bin()]}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    serve.activate(ws);
    let supervisor = retry(Duration::from_millis(20), || {
        let health = serve
            .admin("GET", &format!("/connections/{id}"), None)
            .json();
        match (
            &health["health"]["status"],
            health["health"]["pid"].as_u64(),
        ) {
            (Value::String(s), Some(pid)) if s == "healthy" => Ok(u32::try_from(pid).unwrap()),
            _ => Err(format!(
                "the tree never got ready: {health}\n{}",
                serve.log()
            )),
        }
    });
    let tree = Tree::read(dir, supervisor);
    tree.assert_alive();
    (id, tree)
}

#[test]
fn delete_of_a_connection_stops_its_whole_tree() {
    let (serve, dir) = serve_with_tree();
    let (id, tree) = start_tree(&serve, dir.path(), "ws-1");
    let deleted = serve.admin("DELETE", &format!("/connections/{id}"), None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    tree.assert_gone("DELETE", || serve.log());
}

#[test]
fn deactivation_stops_the_whole_tree() {
    let (serve, dir) = serve_with_tree();
    let (_, tree) = start_tree(&serve, dir.path(), "ws-1");
    let stopped = serve.admin("POST", "/workspaces/ws-1/deactivate", None);
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    tree.assert_gone("deactivation", || serve.log());
}

#[test]
fn sigterm_of_serve_stops_the_whole_tree() {
    let (serve, dir) = serve_with_tree();
    let (_, tree) = start_tree(&serve, dir.path(), "ws-1");
    let status = serve.stop();
    assert_eq!(status.code(), Some(0));
    tree.assert_gone("SIGTERM of serve", String::new);
}

#[test]
fn sigkill_of_serve_stops_the_whole_tree() {
    let (serve, dir) = serve_with_tree();
    let (_, tree) = start_tree(&serve, dir.path(), "ws-1");
    // No teardown runs: the supervisor's parent-death signal is all that is left.
    assert!(signal(serve.child.id(), "KILL"));
    tree.assert_gone("SIGKILL of serve", || serve.log());
}

#[test]
fn a_stopped_supervisor_still_takes_its_tree_along() {
    let (serve, dir) = serve_with_tree();
    let (id, tree) = start_tree(&serve, dir.path(), "ws-1");
    // A stopped supervisor cannot tear its tree down: the gate's last resort, SIGKILL after two
    // graces, must then kill what left the group itself, before the supervisor.
    assert!(signal(tree.supervisor, "STOP"));
    let deleted = serve.admin("DELETE", &format!("/connections/{id}"), None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    tree.assert_gone("DELETE with the supervisor stopped", || serve.log());
}

/// A stdio gate (config file) whose one server `tree` is the script with `flags` for the example
/// server, and its tree.
fn stdio_tree(flags: &[&str]) -> (Gate, TempDir, Tree) {
    let dir = TempDir::new();
    let script = write_file(dir.path(), "tree.sh", TREE);
    let mut args = vec![json!(script), json!(dir.path()), json!(gate_bin())];
    args.extend(flags.iter().map(|f| json!(f)));
    let servers = json!({ "tree": { "command": "/bin/sh", "args": args } });
    let mut gate = Gate::ready(servers, json!({ "teardown_grace_ms": TEARDOWN_GRACE_MS }));
    assert_eq!(
        text(&gate.call("tree.echo", json!({"message": "up"}))),
        "up"
    );
    let supervisor = supervisor_of(&gate, "tree");
    let tree = Tree::read(dir.path(), supervisor);
    tree.assert_alive();
    (gate, dir, tree)
}

/// The pid the gate logged for connection `name`'s child: its supervisor.
fn supervisor_of(gate: &Gate, name: &str) -> u32 {
    let needle = format!("connection {name}: child pid ");
    gate.wait_for_log(&needle);
    let log = gate.log();
    let pid = log
        .lines()
        .filter_map(|l| l.split(&needle).nth(1))
        .next_back()
        .and_then(|rest| rest.trim().parse().ok());
    pid.unwrap_or_else(|| panic!("no pid logged:\n{log}"))
}

#[test]
fn stdin_eof_of_a_stdio_gate_stops_the_whole_tree() {
    let (mut gate, _dir, tree) = stdio_tree(&[]);
    gate.close_stdin();
    assert!(gate.wait_exit(WAIT).success());
    tree.assert_gone("stdin EOF", || gate.log());
}

#[test]
fn a_second_sigterm_of_a_stdio_gate_stops_the_whole_tree_at_once() {
    // The server ignores stdin EOF, so the first signal's teardown is still waiting out its
    // grace when the second signal comes.
    let (mut gate, _dir, tree) = stdio_tree(&["--ignore-eof"]);
    gate.signal("TERM");
    gate.wait_for_log("shutting down");
    gate.signal("TERM");
    let status = gate.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{}", gate.log());
    tree.assert_gone("a second SIGTERM", || gate.log());
}

#[test]
fn sigkill_of_a_stdio_gate_stops_the_whole_tree() {
    let (mut gate, _dir, tree) = stdio_tree(&["--ignore-eof"]);
    gate.signal("KILL");
    gate.wait_exit(WAIT);
    tree.assert_gone("SIGKILL of the gate", || gate.log());
}

#[test]
fn an_orphan_that_exits_is_reaped_at_once() {
    let dir = TempDir::new();
    let script = write_file(dir.path(), "orphan.sh", ORPHAN);
    let servers = json!({ "orphans": {
        "command": "/bin/sh",
        "args": [script, dir.path(), gate_bin()],
    }});
    let mut gate = Gate::ready(servers, json!({}));
    let supervisor = supervisor_of(&gate, "orphans");
    let orphan_file = dir.path().join("orphan.pid");
    let orphan: u32 = retry(Duration::from_millis(20), || {
        std::fs::read_to_string(&orphan_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or("no orphan.pid".to_owned())
    });
    assert_eq!(
        state_and_parent(orphan).map(|s| s.1),
        Some(supervisor),
        "the orphan was adopted by the supervisor"
    );
    // Let the orphan go: it reads one line from the FIFO and exits.
    let go = dir.path().join("go");
    retry(Duration::from_millis(20), || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&go)
            .map_err(|e| format!("the orphan is not reading the FIFO: {e}"))?;
        fifo.write_all(b"go\n").map_err(|e| e.to_string())
    });
    // Reaped while the connection runs, not at its teardown: no zombie stays behind.
    retry(Duration::from_millis(5), || {
        match state_and_parent(orphan) {
            None => Ok(()),
            Some(state) => Err(format!("orphan {orphan} still there: {state:?}")),
        }
    });
    assert_eq!(
        text(&gate.call("orphans.echo", json!({"message": "still"}))),
        "still"
    );
    let zombies: Vec<u32> = supervisor_children(supervisor)
        .into_iter()
        .filter(|pid| state_and_parent(*pid).is_some_and(|s| s.0 == 'Z'))
        .collect();
    assert!(
        zombies.is_empty(),
        "zombies under the supervisor: {zombies:?}"
    );
}

/// The children of `pid`, from /proc.
fn supervisor_children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| state_and_parent(*child).is_some_and(|s| s.1 == pid))
        .collect()
}

//! The allowlist against the bypasses an attacker with an admin token tried, and the ordinary
//! forms that must keep working, over a fake file system.

use super::{check_env, Allowlist, Refusal, Resolve};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `PATH` holds `/usr/bin`; symlinks as on a Debian host.
struct Fake {
    links: BTreeMap<&'static str, &'static str>,
    files: BTreeSet<&'static str>,
}

fn fake() -> Fake {
    Fake {
        links: BTreeMap::from([
            ("/usr/bin/python3", "/usr/bin/python3.12"),
            ("/venv/bin/python", "/usr/bin/python3.12"),
            ("/usr/bin/sh", "/usr/bin/dash"),
            ("/usr/bin/nc", "/usr/bin/busybox"),
            ("/opt/mcp/link/dist/index.js", "/srv/elsewhere/index.js"),
            ("/usr/bin/npx", "/usr/lib/node_modules/npm/bin/npx-cli.js"),
        ]),
        files: BTreeSet::from([
            "/usr/bin/python3.12",
            "/usr/bin/node",
            "/usr/bin/npx",
            "/usr/bin/dash",
            "/usr/bin/bash",
            "/usr/bin/busybox",
            "/usr/bin/env",
            "/usr/lib/node_modules/npm/bin/npx-cli.js",
            "/usr/lib/python3.12/timeit.py",
            "/home/u/.pyenv/versions/3.11.7/lib/python3.11/timeit.py",
            "/usr/bin/sensible-editor",
            "/usr/bin/bun",
            "/usr/local/bin/aegis-gate",
            "/opt/mcp/time/dist/index.js",
            "/srv/elsewhere/index.js",
            "/srv/server.py",
            "/srv/app.ts",
            "/tmp/x.js",
        ]),
    }
}

impl Resolve for Fake {
    fn which(&self, name: &str) -> Option<PathBuf> {
        let path = format!("/usr/bin/{name}");
        self.canonical(Path::new(&path))
            .map(|_| PathBuf::from(path))
    }
    fn absolute(&self, path: &Path) -> PathBuf {
        Path::new("/work").join(path)
    }
    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        let text = path.to_str()?;
        // Lexical `..` is enough for these cases.
        let mut parts: Vec<&str> = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let joined = format!("/{}", parts.join("/"));
        if let Some(target) = self.links.get(joined.as_str()) {
            return Some(PathBuf::from(target));
        }
        self.files
            .contains(joined.as_str())
            .then(|| PathBuf::from(joined))
    }
    fn gate(&self) -> Option<PathBuf> {
        Some(PathBuf::from("/usr/local/bin/aegis-gate"))
    }
}

fn list(templates: &[&str]) -> Allowlist {
    let mut list = Allowlist::default();
    for t in templates {
        list.allow(t).expect("a valid template");
    }
    list
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn check(list: &Allowlist, words: &[&str]) -> Result<(), Refusal> {
    list.check_with(&argv(words), [], &fake())
}

fn check_env_of(list: &Allowlist, words: &[&str], env: &[(&str, &str)]) -> Result<(), Refusal> {
    list.check_with(&argv(words), env.iter().copied(), &fake())
}

#[test]
fn every_reported_bypass_of_a_bare_runtime_is_refused() {
    let list = list(&["python3", "node"]);
    let bypasses: &[&[&str]] = &[
        &["python3", "-cimport os"],
        &["python3", "-Ic", "import os"],
        &["python3", "-c", "import os"],
        &[
            "python3",
            "-m",
            "timeit",
            "-n1",
            "-r1",
            "-s",
            "import os",
            "pass",
        ],
        &["python3", "-mtimeit"],
        &["python3", "-m", "pip", "install", "evil"],
        &[
            "python3",
            "-W",
            "ignore::antigravity.X",
            "-m",
            "mcp_server_time",
        ],
        &["python3", "-"],
        &["python3"],
        &["python3", "/proc/self/environ"],
        &["/usr/bin/python3", "-uc", "x"],
        &["node", "--eval=require('fs')"],
        &["node", "-pe", "1"],
        &["node", "-e", "1"],
        &[
            "node",
            "--import=data:text/javascript,1",
            "/opt/mcp/time/dist/index.js",
        ],
        &[
            "node",
            "--require",
            "/tmp/x.js",
            "/opt/mcp/time/dist/index.js",
        ],
        &["node", "-r", "/tmp/x.js", "/opt/mcp/time/dist/index.js"],
        &[
            "node",
            "--inspect=0.0.0.0:9229",
            "/opt/mcp/time/dist/index.js",
        ],
        &["node", "--env-file=/tmp/env", "/opt/mcp/time/dist/index.js"],
        &["node", "inspect", "/tmp/x.js"],
        &["node", "data:text/javascript,1"],
        &["node"],
        // Scripts of the host that run what they are given (found by an attack review).
        &["node", "/usr/bin/npx", "-c", "touch /tmp/m"],
        &[
            "node",
            "/usr/lib/node_modules/npm/bin/npx-cli.js",
            "-c",
            "x",
        ],
        &[
            "python3",
            "/usr/lib/python3.12/timeit.py",
            "-s",
            "x",
            "pass",
        ],
        &[
            "python3",
            "/home/u/.pyenv/versions/3.11.7/lib/python3.11/timeit.py",
            "-s",
            "x",
        ],
        &["python3", "-m", "mailcap", "text/x", "/etc/hostname"],
        &["python3", "/../dev/stdin"],
        &["python3", "-W", "ignore::antigravity.Foo", "/srv/server.py"],
        &["python3", "-X", "pycache_prefix=/tmp", "/srv/server.py"],
    ];
    for words in bypasses {
        let res = check(&list, words);
        assert!(
            matches!(res, Err(Refusal::Runtime { .. })),
            "{words:?} must be refused, got {res:?}"
        );
    }
}

#[test]
fn ordinary_forms_of_a_bare_runtime_still_run() {
    let list = list(&["python3", "node", "/venv/bin/python"]);
    for words in [
        &[
            "python3",
            "-m",
            "mcp_server_time",
            "--local-timezone",
            "UTC",
        ][..],
        &[
            "python3",
            "-u",
            "/srv/server.py",
            "-c",
            "anything: the script's own args",
        ],
        &["python3", "-uB", "-m", "mcp_server_time"],
        &["/usr/bin/python3", "-m", "mcp_server_time"],
        &["/venv/bin/python", "-m", "mcp_server_time"],
        &[
            "node",
            "/opt/mcp/time/dist/index.js",
            "stdio",
            "-e",
            "script arg",
        ],
        &[
            "node",
            "--max-old-space-size=256",
            "/opt/mcp/time/dist/index.js",
        ],
        &["node", "--no-warnings", "--", "/opt/mcp/time/dist/index.js"],
        &[
            "node",
            "--max_old_space_size=256",
            "/opt/mcp/time/dist/index.js",
        ],
        &["python3", "-X", "utf8", "-W", "ignore", "/srv/server.py"],
        &[
            "python3",
            "-Xdev",
            "-Wignore::DeprecationWarning",
            "-m",
            "mcp_server_time",
        ],
    ] {
        assert_eq!(check(&list, words), Ok(()), "{words:?}");
    }
}

#[test]
fn a_template_names_the_leading_words_and_the_rest_goes_to_the_program() {
    let list = list(&[
        "python3 -m mcp_server_*",
        "node /opt/mcp/*/dist/index.js",
        "npx -y @modelcontextprotocol/server-*",
    ]);
    assert_eq!(
        check(&list, &["python3", "-m", "mcp_server_time", "-c", "x"]),
        Ok(())
    );
    assert_eq!(
        check(
            &list,
            &["node", "/opt/mcp/time/dist/index.js", "--eval", "x"]
        ),
        Ok(())
    );
    assert_eq!(
        check(&list, &["npx", "-y", "@modelcontextprotocol/server-memory"]),
        Ok(())
    );
    assert_eq!(
        check(
            &list,
            &[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/tmp"
            ]
        ),
        Ok(())
    );
    // A symlink under the glob is judged by what it names.
    assert_eq!(
        check(&list, &["node", "/opt/mcp/link/dist/index.js"]),
        Ok(())
    );
    for words in [
        &["python3", "-m", "evilmod"][..],
        &["python3", "-c", "x"],
        &["npx", "-y", "evil-package"],
        &["npx", "-y", "@modelcontextprotocol/server-x/../../evil"],
        &[
            "npx",
            "-y",
            "@modelcontextprotocol/server-x@npm:cross-env",
            "touch",
            "/tmp/m",
        ],
        &["npx", "-y", "@modelcontextprotocol/server-x@file:/tmp/evil"],
        &["npx", "-c", "sh"],
        &["node", "/opt/mcp/../../tmp/x.js"],
        &["node", "/opt/mcp/time/dist/../../../../tmp/x.js"],
    ] {
        let res = check(&list, words);
        assert!(
            matches!(res, Err(Refusal::Runtime { .. })),
            "{words:?}: {res:?}"
        );
    }
}

#[test]
fn a_launcher_runs_only_what_its_template_names() {
    let bare = list(&["npx", "env", "/usr/bin/busybox"]);
    for words in [
        &["npx", "-y", "anything"][..],
        &["env", "LD_PRELOAD=/tmp/x.so", "/usr/bin/node"],
        &["/usr/bin/busybox", "sh", "-c", "x"],
    ] {
        let res = check(&bare, words);
        assert!(
            matches!(res, Err(Refusal::Runtime { .. })),
            "{words:?}: {res:?}"
        );
    }
    // An option-only template does not name the package: the rest may not choose one.
    let options_only = list(&["npx -y"]);
    assert!(check(&options_only, &["npx", "-y", "evil"]).is_err());
}

#[test]
fn another_name_of_a_multi_call_binary_is_not_the_allowed_one() {
    // /usr/bin/sh is dash here; /usr/bin/nc is busybox: allowing sh must not allow nc.
    let list = list(&["sh", "/usr/bin/busybox"]);
    assert!(matches!(
        check(&list, &["/usr/bin/nc", "-l"]),
        Err(Refusal::NotAllowed { .. })
    ));
    assert_eq!(check(&list, &["/usr/bin/dash", "/srv/server.sh"]), Ok(()));
    assert!(matches!(
        check(&list, &["sh", "-c", "x"]),
        Err(Refusal::Runtime { .. })
    ));
    assert!(matches!(
        check(&list, &["sh", "-ec", "x"]),
        Err(Refusal::Runtime { .. })
    ));
    assert!(matches!(
        check(&list, &["sh", "-s"]),
        Err(Refusal::Runtime { .. })
    ));
}

#[test]
fn a_program_named_like_a_runtime_is_not_taken_for_one() {
    // php-cs-fixer is not php: its flags are its own.
    let list = list(&["/usr/local/bin/php-cs-fixer"]);
    let fake = Fake {
        links: BTreeMap::new(),
        files: BTreeSet::from(["/usr/local/bin/php-cs-fixer"]),
    };
    let argv = argv(&["/usr/local/bin/php-cs-fixer", "fix", "--dry-run"]);
    assert_eq!(list.check_with(&argv, [], &fake), Ok(()));
}

#[test]
fn the_gate_binary_runs_only_the_example_server() {
    let list = list(&["/usr/local/bin/aegis-gate"]);
    assert_eq!(
        check(
            &list,
            &[
                "/usr/local/bin/aegis-gate",
                "example-server",
                "--extra-tools",
                "2"
            ]
        ),
        Ok(())
    );
    for words in [
        &[
            "/usr/local/bin/aegis-gate",
            "stdio",
            "--config",
            "/tmp/c.json",
        ][..],
        &["/usr/local/bin/aegis-gate", "bridge", "--url", "http://x"],
        &["/usr/local/bin/aegis-gate"],
    ] {
        assert!(
            matches!(check(&list, words), Err(Refusal::Runtime { .. })),
            "{words:?}"
        );
    }
}

#[test]
fn bun_and_deno_choose_only_files() {
    let list = list(&["bun", "/usr/bin/deno"]);
    assert_eq!(check(&list, &["bun", "/srv/app.ts"]), Ok(()));
    assert_eq!(check(&list, &["bun", "run", "/srv/app.ts"]), Ok(()));
    for words in [
        &["bun", "x", "evil"][..],
        &["bun", "run", "build"],
        &["bun", "-e", "1"],
    ] {
        assert!(check(&list, words).is_err(), "{words:?}");
    }
}

#[test]
fn a_program_that_is_not_a_runtime_takes_any_arguments_and_others_are_not_allowed() {
    let list = list(&["/srv/server.py"]);
    assert_eq!(check(&list, &["/srv/server.py", "-c", "whatever"]), Ok(()));
    let res = check(&list, &["/usr/bin/node", "/srv/server.py"]);
    assert!(matches!(res, Err(Refusal::NotAllowed { .. })), "{res:?}");
    let message = res.map_err(|e| e.to_string()).expect_err("refused");
    assert!(
        message.contains("--allow-command /usr/bin/node"),
        "{message}"
    );
}

#[test]
fn the_refusal_names_the_word_and_a_template_that_would_allow_it() {
    let list = list(&["python3"]);
    let message = check(&list, &["python3", "-m", "timeit", "-s", "x"])
        .map_err(|e| e.to_string())
        .expect_err("refused");
    assert!(message.contains("\"timeit\""), "{message}");
    assert!(
        message.contains("--allow-command 'python3 -m timeit'"),
        "{message}"
    );
}

#[test]
fn variables_that_run_code_are_refused_unless_the_template_allows_them() {
    let mut list = list(&["python3 -m mcp_server_*"]);
    let cmd = &["python3", "-m", "mcp_server_time"];
    for name in [
        "LD_PRELOAD",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "PYTHONWARNINGS",
        "BROWSER",
        "PATH",
        "HOME",
        "GIT_SSH_COMMAND",
        "npm_config_registry",
        "BASH_ENV",
        "JAVA_TOOL_OPTIONS",
        "ld_preload",
    ] {
        let res = check_env_of(&list, cmd, &[(name, "x")]);
        assert!(
            matches!(&res, Err(Refusal::Variable { name: n, .. }) if n == name),
            "{name}: {res:?}"
        );
        assert!(!res
            .map_err(|e| e.to_string())
            .expect_err("refused")
            .contains("=x"));
    }
    assert_eq!(
        check_env_of(&list, cmd, &[("TZ", "UTC"), ("PYTHONUNBUFFERED", "1")]),
        Ok(())
    );
    assert!(list.allow_env_for_last("PYTHONPATH"));
    assert_eq!(check_env_of(&list, cmd, &[("PYTHONPATH", "/srv")]), Ok(()));
}

#[test]
fn nul_bytes_and_malformed_names_are_refused_before_anything_else() {
    let list = list(&["python3"]);
    assert_eq!(
        check(&list, &["python3", "/srv/a\0b.py"]),
        Err(Refusal::Nul { at: 1 })
    );
    assert!(matches!(
        check_env_of(&list, &["python3", "/srv/server.py"], &[("TZ", "U\0")]),
        Err(Refusal::BadVariable { .. })
    ));
    assert!(matches!(
        check_env_of(&list, &["python3", "/srv/server.py"], &[("A=B", "x")]),
        Err(Refusal::BadVariable { .. })
    ));
    assert_eq!(check(&list, &[]), Err(Refusal::Empty));
}

#[test]
fn the_config_file_rules_name_the_variable() {
    let allowed = BTreeSet::from(["NODE_OPTIONS".to_owned()]);
    assert_eq!(check_env(["TZ", "NODE_OPTIONS"], &allowed), Ok(()));
    let (name, why) = check_env(["LD_PRELOAD"], &allowed).expect_err("refused");
    assert_eq!(name, "LD_PRELOAD");
    assert!(why.contains("loader"));
}

#[test]
fn templates_are_checked_when_given() {
    let mut list = Allowlist::default();
    assert!(list.allow("").is_err());
    assert!(list.allow("node '/opt/x").is_err());
    assert!(list.allow("node /opt/**/x.js").is_err());
    assert!(!list.allow_env_for_last("X"));
    assert!(list.allow("node '/opt/my mcp/index.js'").is_ok());
    assert_eq!(check(&list, &["node", "/opt/my mcp/index.js"]), Ok(()));
}

#[test]
fn every_refused_variable_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for name in super::env::listed() {
        assert!(
            readme.contains(&format!("`{name}")),
            "README does not list {name}"
        );
    }
}

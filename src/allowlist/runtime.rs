//! The runtime rules: for a program that runs code it is given (an interpreter, a shell, a
//! package runner), which arguments may follow the operator's template.
//!
//! Owns: [`check`]: past the words the template names, only harmless flags and then a script
//! path (or `-m MODULE`, `-jar FILE`, …) may come; every inline-code option in every spelling
//! (`-c CODE`, `-cCODE`, `-Ic`, `--eval=CODE`), code-running modules, programs read from stdin
//! and special files are refused. A launcher (`env`, `sudo`, `npx`, `docker`, …) accepts nothing
//! its template does not name. The tables it reads are in `known.rs`.
//! Never: decides anything for a program it does not know (a program that is not a runtime runs
//! with whatever arguments it is given), or reads the file system beyond the [`Resolve`] it is
//! handed.

use super::known::{syntax, Runtime, ScriptRule, Syntax, CODE_MODULES};
use super::Resolve;
use std::path::{Component, Path, PathBuf};

/// Why the arguments past a template were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Index in argv of the word refused (argv.len() when something is missing).
    pub(crate) at: usize,
    /// What is wrong with it.
    pub(crate) why: &'static str,
}

/// Checks what `argv` adds past the first `covered` words (the template's) for `runtime`.
/// `names_target`: the template names what a launcher runs (a word past the program that is not
/// an option, like the package of `npx -y @modelcontextprotocol/server-*`).
pub(crate) fn check(
    runtime: Runtime,
    argv: &[String],
    covered: usize,
    names_target: bool,
    resolve: &dyn Resolve,
) -> Result<(), Refused> {
    match runtime {
        Runtime::Launcher if names_target => Ok(()),
        Runtime::Launcher if argv.len() > covered => Err(Refused {
            at: covered,
            why: "it runs whatever its arguments name",
        }),
        Runtime::Launcher => Ok(()),
        Runtime::Gate => match argv.get(1).map(String::as_str) {
            Some("example-server") => Ok(()),
            _ if covered >= 2 => Ok(()),
            _ => Err(Refused {
                at: 1,
                why: "the gate's own binary runs only `example-server` as a connection",
            }),
        },
        Runtime::Interpreter(id) => Scan {
            syntax: syntax(id),
            argv,
            covered,
            resolve,
        }
        .run(),
    }
}

struct Scan<'a> {
    syntax: &'static Syntax,
    argv: &'a [String],
    covered: usize,
    resolve: &'a dyn Resolve,
}

impl Scan<'_> {
    fn run(&self) -> Result<(), Refused> {
        let mut idx = 1;
        let mut subcommand_seen = false;
        while let Some(word) = self.argv.get(idx) {
            let covered = idx < self.covered;
            if word == "--" {
                return self.script(idx + 1);
            }
            if word.len() > 1
                && (word.starts_with('-')
                    || (word.starts_with('+') && self.syntax.clusters && !covered))
            {
                match self.option(idx, covered)? {
                    Step::Next(next) => idx = next,
                    Step::Chosen => return Ok(()),
                }
                continue;
            }
            if !subcommand_seen && self.syntax.subcommands.contains(&word.as_str()) {
                subcommand_seen = true;
                idx += 1;
                continue;
            }
            if self.syntax.subcommand_required && !subcommand_seen && !covered {
                return Err(self.refuse(idx, "only its `run` subcommand may be chosen"));
            }
            return self.script(idx);
        }
        // The template names every word (`python3 -c 'CODE'` is the operator's own choice).
        if self.covered > 1 && idx <= self.covered {
            return Ok(());
        }
        Err(self.refuse(idx, "with no script it reads its program from stdin"))
    }

    fn refuse(&self, at: usize, why: &'static str) -> Refused {
        Refused { at, why }
    }

    /// One option word at `idx`; `covered` when the template names it.
    fn option(&self, idx: usize, covered: bool) -> Result<Step, Refused> {
        let word = self.argv.get(idx).map(String::as_str).unwrap_or_default();
        let s = self.syntax;
        if let Some(long) = word
            .strip_prefix("--")
            .map(|_| word)
            .or((!s.clusters).then_some(word))
        {
            let (name, joined) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            // node takes `--max_old_space_size` for `--max-old-space-size`.
            let spelled = format!("--{}", name.trim_start_matches('-').replace('_', "-"));
            let name = if name.starts_with("--") {
                spelled.as_str()
            } else {
                name
            };
            if s.file_selector.contains(&name) {
                let value_at = if joined { idx } else { idx + 1 };
                return self
                    .file_value(value_at, joined, word)
                    .map(|()| Step::Chosen);
            }
            if s.long_flags.contains(&name) {
                return Ok(Step::Next(idx + 1));
            }
            if s.long_with_value.contains(&name) {
                return Ok(Step::Next(if joined { idx + 1 } else { idx + 2 }));
            }
            if !s.clusters && is_jvm_memory(name) {
                return Ok(Step::Next(idx + 1));
            }
            if covered {
                return Ok(Step::Next(idx + 1));
            }
            return Err(self.refuse(
                idx,
                "this option is not one the allowlist knows to be harmless (it may run code)",
            ));
        }
        // A cluster of short flags: `-uB`, `-Ic`, `-cCODE`, `-mmodule`.
        let letters = word.get(1..).unwrap_or_default();
        for (pos, letter) in letters.char_indices() {
            if s.short_flags.contains(letter) {
                continue;
            }
            let rest = letters.get(pos + letter.len_utf8()..).unwrap_or_default();
            let value_at = if rest.is_empty() { idx + 1 } else { idx };
            if Some(letter) == s.short_selector {
                let module = if rest.is_empty() {
                    self.argv.get(idx + 1).map(String::as_str)
                } else {
                    Some(rest)
                };
                if value_at < self.covered {
                    return Ok(Step::Chosen);
                }
                return self.module(value_at, module).map(|()| Step::Chosen);
            }
            if Some(letter) == s.short_file {
                return self
                    .file_value(value_at, !rest.is_empty(), word)
                    .map(|()| Step::Chosen);
            }
            if s.short_with_value.contains(letter) {
                let value = if rest.is_empty() {
                    self.argv.get(idx + 1).map(String::as_str)
                } else {
                    Some(rest)
                };
                if value.is_some_and(|v| (s.harmless_value)(letter, v)) {
                    return Ok(Step::Next(if rest.is_empty() { idx + 2 } else { idx + 1 }));
                }
            }
            if covered {
                let takes_value = s.short_with_value.contains(letter);
                return Ok(Step::Next(if takes_value && rest.is_empty() {
                    idx + 2
                } else {
                    idx + 1
                }));
            }
            return Err(self.refuse(
                idx,
                if s.short_with_value.contains(letter) {
                    "this option runs code given on the command line or loads code from elsewhere"
                } else {
                    "this option is not one the allowlist knows to be harmless (it may run code)"
                },
            ));
        }
        Ok(Step::Next(idx + 1))
    }

    /// The file named by `-jar FILE` / `-f FILE` (or joined).
    fn file_value(&self, at: usize, joined: bool, word: &str) -> Result<(), Refused> {
        if at < self.covered {
            return Ok(());
        }
        let value = if joined {
            word.split_once('=')
                .map(|(_, v)| v)
                .or_else(|| word.get(2..))
        } else {
            self.argv.get(at).map(String::as_str)
        };
        match value {
            Some(path) if !path.is_empty() => self.script_path(at, path),
            _ => Err(self.refuse(at, "the option needs a file")),
        }
    }

    /// The first positional at `idx`: a script path.
    fn script(&self, idx: usize) -> Result<(), Refused> {
        if idx < self.covered {
            return Ok(());
        }
        match self.argv.get(idx) {
            None => Err(self.refuse(idx, "with no script it reads its program from stdin")),
            Some(word) if self.syntax.not_scripts.contains(&word.as_str()) => Err(self.refuse(
                idx,
                "this subcommand is not a script (it runs a debugger or a tool)",
            )),
            Some(word) => self.script_path(idx, word),
        }
    }

    fn script_path(&self, at: usize, path: &str) -> Result<(), Refused> {
        if path == "-" {
            return Err(self.refuse(at, "`-` reads the program from stdin"));
        }
        if has_scheme(path) {
            return Err(self.refuse(at, "the script must be a file, not a URL or inline data"));
        }
        let written = Path::new(path);
        let resolved = self.resolve.canonical(written);
        // `/../dev/stdin` is `/dev/stdin`: compared without `..`, and as the file it names.
        let forms: Vec<PathBuf> = [
            Some(lexical(&self.resolve.absolute(written))),
            resolved.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if forms.iter().any(|p| under(p, SPECIAL)) {
            return Err(self.refuse(
                at,
                "the script cannot be a special file (/proc, /dev, /sys)",
            ));
        }
        if forms
            .iter()
            .any(|p| under(p, SYSTEM) || is_runtime_tooling(p))
        {
            return Err(self.refuse(
                at,
                "a bare runtime does not run the host's own programs and libraries (/usr, /bin, \
                 /lib, /etc, a python standard library, npm's own scripts); name the script in \
                 a template",
            ));
        }
        match self.syntax.script {
            ScriptRule::Path => Ok(()),
            ScriptRule::ExistingFile if resolved.is_some() => Ok(()),
            ScriptRule::ExistingFile => Err(self.refuse(at, "the script must be an existing file")),
            ScriptRule::Suffix(suffix) if path.ends_with(suffix) => Ok(()),
            ScriptRule::Suffix(_) => {
                Err(self.refuse(at, "only a source file or `-jar FILE` may be chosen"))
            }
        }
    }

    /// python's `-m MODULE`.
    fn module(&self, at: usize, module: Option<&str>) -> Result<(), Refused> {
        let Some(module) = module.filter(|m| !m.is_empty()) else {
            return Err(self.refuse(at, "-m needs a module"));
        };
        let valid = module.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        });
        if !valid {
            return Err(self.refuse(at, "not a module name"));
        }
        let top = module.split('.').next().unwrap_or(module);
        if CODE_MODULES.contains(&top) {
            return Err(self.refuse(at, "this module runs code it is given or installs packages"));
        }
        Ok(())
    }
}

enum Step {
    /// Go on at this index.
    Next(usize),
    /// The code to run is chosen and acceptable: the rest belongs to it.
    Chosen,
}

/// Special files: a script there is the gate's stdin, a process's memory or environment.
const SPECIAL: &[&str] = &["/proc", "/dev", "/sys"];

/// Where the host keeps its own programs and libraries: scripts there (npm's CLI, the python
/// standard library's `timeit.py`, `sensible-editor`) run code they are given.
const SYSTEM: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local/lib",
    "/usr/share",
    "/lib",
    "/lib64",
    "/etc",
];

fn under(path: &Path, roots: &[&str]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// A python standard library or site-packages (`…/lib/python3.11/…`), or the package managers'
/// own scripts (`…/node_modules/npm/…`), wherever they are installed (pyenv, nvm).
fn is_runtime_tooling(path: &Path) -> bool {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect();
    parts.windows(2).any(|w| match w {
        ["lib" | "lib64", dir] => dir.starts_with("python") || dir.starts_with("pypy"),
        ["node_modules", pkg] => ["npm", "corepack", "pnpm", "yarn", "npx"].contains(pkg),
        _ => false,
    })
}

/// `path` with `.` and `..` folded away, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `-Xmx512m`, `-Xms…`, `-Xss…`: heap and stack sizes.
fn is_jvm_memory(word: &str) -> bool {
    ["-Xmx", "-Xms", "-Xss"].iter().any(|p| {
        word.strip_prefix(p)
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

/// `data:…`, `http://…`, `npm:…`: a scheme before any `/`.
fn has_scheme(text: &str) -> bool {
    match text.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && !scheme.contains('/')
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

//! The allowlist: which commands `POST /connections` may start, and with which environment.
//!
//! Owns: [`Allowlist`] (the operator's argv templates, `serve --allow-command` and the config's
//! `allow_commands`, each with the refused variables it lets through), [`Allowlist::check`] (a
//! command and its environment names, before anything runs), and [`check_env`] (the environment
//! rules alone, for the operator's own config file). The parts: `template.rs` matches the leading
//! words; `runtime.rs` judges what a runtime is given past them, with the tables of `known.rs`; `env.rs` is the one list of
//! variables that make a runtime or the loader run other code.
//! Never: runs or starts anything; puts an environment value in a refusal (only names); claims
//! to be a sandbox: an allowed script still does whatever its code does.

mod env;
mod known;
mod runtime;
mod template;
#[cfg(test)]
mod tests;

pub use template::TemplateError;

use known::Runtime;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use template::Template;

/// The file-system questions matching asks, behind a trait so tests can answer them.
pub(crate) trait Resolve {
    /// Where `name` (no `/`) is found on the gate's `PATH`, which children inherit.
    fn which(&self, name: &str) -> Option<PathBuf>;
    /// `path` made absolute against the gate's working directory (children share it).
    fn absolute(&self, path: &Path) -> PathBuf;
    /// The file `path` names, symlinks resolved; `None` when it does not exist.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
    /// The gate's own executable, resolved.
    fn gate(&self) -> Option<PathBuf>;
}

/// The real file system.
pub(crate) struct Host;

impl Resolve for Host {
    fn which(&self, name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
    }

    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn gate(&self) -> Option<PathBuf> {
        std::env::current_exe().ok()?.canonicalize().ok()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One allowed template and the refused variables it may still set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    template: Template,
    allow_env: BTreeSet<String>,
}

/// The commands connections may run. Empty allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

/// Why a command or its environment was refused. The message names the word or variable and
/// what would allow it; never a variable's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `command` is empty or its program is empty.
    Empty,
    /// An argument holds a NUL byte (no program can receive it).
    Nul {
        /// Index of the argument.
        at: usize,
    },
    /// A variable name is unusable, or its value holds a NUL byte.
    BadVariable {
        /// The name, as given (names are not secret).
        name: String,
        /// Why.
        why: &'static str,
    },
    /// No template names this program.
    NotAllowed {
        /// argv[0].
        program: String,
    },
    /// A template names the program, but what follows it could run code of the caller's choice.
    Runtime {
        /// argv up to and including the word refused (shortened), for the message.
        command: String,
        /// The word refused, shortened.
        word: String,
        /// Why.
        why: &'static str,
        /// The template that would allow it.
        template: String,
    },
    /// A variable that makes a runtime or the loader run other code.
    Variable {
        /// Its name.
        name: String,
        /// Why it is refused.
        why: &'static str,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => f.write_str("command must be a non-empty argv array"),
            Refusal::Nul { at } => write!(f, "command[{at}] holds a NUL byte"),
            Refusal::BadVariable { name, why } => write!(f, "env {name:?}: {why}"),
            Refusal::NotAllowed { program } => write!(
                f,
                "{program:?} is not on the allowlist; an operator can allow it with \
                 serve --allow-command {}",
                quote(program)
            ),
            Refusal::Runtime {
                command,
                word,
                why,
                template,
            } => write!(
                f,
                "`{command}`: {word:?}: {why}; only harmless flags and then a script path (or \
                 -m MODULE for python) may follow an allowed runtime; a template that names \
                 this command would allow it: serve --allow-command {}",
                quote(template)
            ),
            Refusal::Variable { name, why } => write!(
                f,
                "env {name} is refused: {why}; an operator can allow it for one template with \
                 serve --allow-command TEMPLATE --allow-env {name}"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// `text` as one shell word, for a message to paste.
fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@=:,+".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Longest word quoted back in a refusal.
const MAX_WORD: usize = 80;

fn shorten(word: &str) -> String {
    if word.chars().count() <= MAX_WORD {
        return word.to_owned();
    }
    let mut out: String = word.chars().take(MAX_WORD).collect();
    out.push('…');
    out
}

impl Allowlist {
    /// Adds a template (`--allow-command`); `~/` expands to the gate's `HOME`.
    pub fn allow(&mut self, text: &str) -> Result<(), TemplateError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let template = Template::parse(text, home.as_deref())?;
        self.entries.push(Entry {
            template,
            allow_env: BTreeSet::new(),
        });
        Ok(())
    }

    /// Lets the last template added set `name` (`--allow-env` after its `--allow-command`);
    /// `false` when there is no template yet.
    pub fn allow_env_for_last(&mut self, name: &str) -> bool {
        match self.entries.last_mut() {
            Some(entry) => entry.allow_env.insert(name.to_ascii_uppercase()),
            None => false,
        }
    }

    /// Adds every template of `other` after these.
    pub fn extend(&mut self, other: Allowlist) {
        self.entries.extend(other.entries);
    }

    /// The templates as written, in order.
    pub fn templates(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.template.as_str())
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a connection's argv and environment against the real file system.
    pub(crate) fn check<'a>(
        &self,
        argv: &[String],
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), Refusal> {
        self.check_with(argv, env, &Host)
    }

    pub(crate) fn check_with<'a>(
        &self,
        argv: &[String],
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        resolve: &dyn Resolve,
    ) -> Result<(), Refusal> {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Refusal::Empty);
        }
        if let Some(at) = argv.iter().position(|a| a.contains('\0')) {
            return Err(Refusal::Nul { at });
        }
        for (name, value) in &env {
            let why = env::malformed_name(name).or_else(|| {
                value
                    .contains('\0')
                    .then_some("a value cannot hold a NUL byte")
            });
            if let Some(why) = why {
                return Err(Refusal::BadVariable {
                    name: (*name).to_owned(),
                    why,
                });
            }
        }
        self.allowing_entry(argv, &env, resolve)
    }

    /// Succeeds when some entry allows `argv` and every refused variable of `env`; else the
    /// most telling refusal: a variable's when a template allows the command, then a runtime's
    /// when a template names the program, else "not on the allowlist".
    fn allowing_entry(
        &self,
        argv: &[String],
        env: &[(&str, &str)],
        resolve: &dyn Resolve,
    ) -> Result<(), Refusal> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let mut variable: Option<Refusal> = None;
        let mut command: Option<Refusal> = None;
        for entry in &self.entries {
            if let Some(at) = entry.template.mismatch(argv, resolve) {
                if command.is_none() && at > 0 {
                    command = Some(refusal_at(
                        argv,
                        at,
                        "the allowed command has other words here",
                    ));
                }
                continue;
            }
            if let Err(r) = runtime_check(entry, argv, resolve) {
                command.get_or_insert(r);
                continue;
            }
            match refused_variable(entry, env) {
                None => return Ok(()),
                Some(r) => {
                    variable.get_or_insert(r);
                }
            }
        }
        Err(variable.or(command).unwrap_or_else(|| Refusal::NotAllowed {
            program: shorten(program),
        }))
    }
}

/// What a runtime's rules say of the words past `entry`'s template (nothing for a program that
/// is not a runtime).
fn runtime_check(entry: &Entry, argv: &[String], resolve: &dyn Resolve) -> Result<(), Refusal> {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let resolved = template::locate(program, resolve).and_then(|p| resolve.canonical(&p));
    let gate = resolve.gate();
    let Some(kind) = Runtime::of(Path::new(program), resolved.as_deref(), gate.as_deref()) else {
        return Ok(());
    };
    let covered = entry.template.len();
    let names_target = entry.template.names_target();
    runtime::check(kind, argv, covered, names_target, resolve)
        .map_err(|r| refusal_at(argv, r.at, r.why))
}

/// The first variable of `env` the rules refuse and `entry` does not allow.
fn refused_variable(entry: &Entry, env: &[(&str, &str)]) -> Option<Refusal> {
    env.iter().find_map(|(name, _)| {
        let why = env::refused(name)?;
        (!entry.allow_env.contains(&name.to_ascii_uppercase())).then(|| Refusal::Variable {
            name: (*name).to_owned(),
            why,
        })
    })
}

/// A runtime refusal of word `at` of `argv`.
fn refusal_at(argv: &[String], at: usize, why: &'static str) -> Refusal {
    Refusal::Runtime {
        command: argv
            .iter()
            .take(at + 1)
            .map(|w| shorten(w))
            .collect::<Vec<_>>()
            .join(" "),
        word: shorten(argv.get(at).map(String::as_str).unwrap_or("(nothing)")),
        why,
        template: suggestion(argv, at),
    }
}

/// The template naming `argv` up to and including word `at` (the rest then goes to the program).
fn suggestion(argv: &[String], at: usize) -> String {
    argv.iter()
        .take(at + 1)
        .map(|w| quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The environment rules alone, for a server entry of the operator's own config file:
/// `Err((name, why))` for the first refused variable not in `allowed` (compared in upper case).
pub(crate) fn check_env<'a>(
    env: impl IntoIterator<Item = &'a str>,
    allowed: &BTreeSet<String>,
) -> Result<(), (String, &'static str)> {
    for name in env {
        if let Some(why) = env::malformed_name(name) {
            return Err((name.to_owned(), why));
        }
        if let Some(why) = env::refused(name) {
            if !allowed.contains(&name.to_ascii_uppercase()) {
                return Err((name.to_owned(), why));
            }
        }
    }
    Ok(())
}

//! One allowlist entry as the operator wrote it: an argv template such as
//! `python3 -m mcp_server_*` or `node /opt/mcp/*/dist/index.js`, and whether a command's leading
//! words match it.
//!
//! Owns: splitting the text into words (whitespace; `'…'` or `"…"` keeps spaces), the glob of
//! each word, and the word rules: the program word matches the program the command would run
//! (looked up on `PATH` and resolved through symlinks, so `python3` matches `/usr/bin/python3`);
//! a path word (starting with `/`, `./`, `../` or `~/`) matches a path naming the same file, or
//! for a glob, a path whose resolved or normalised form matches; any other word matches the
//! argument as written. No wildcard crosses a `/`, and in a word that is not a path none matches
//! `@`, `:`, `#`, `=`, `\` or a space (npm aliases, URLs and file specs).
//! Never: touches the file system itself (a [`Resolve`] does, so tests can fake it), or judges
//! what follows the template's words (the runtime rules do).

use super::Resolve;
use std::fmt;
use std::path::{Component, Path, PathBuf};

const OPTIONS: ::glob::MatchOptions = ::glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Characters a wildcard of a word that is not a path never matches (only the template's own
/// may appear): they turn a package name into an alias, a version range, a URL or a file
/// (`@modelcontextprotocol/server-x@npm:other`, `…@file:/tmp/x`).
const SPEC_CHARS: &[char] = &['@', ':', '/', '#', '=', '\\', ' '];

/// Longest template accepted.
const MAX_LEN: usize = 4096;

/// A checked argv template.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Template {
    text: String,
    words: Vec<Word>,
}

#[derive(Clone, PartialEq, Eq)]
struct Word {
    text: String,
    /// `Some` when the word has a wildcard.
    pattern: Option<::glob::Pattern>,
    /// A path word: compared as the file it names.
    path: bool,
}

/// Why a template was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// No words.
    Empty,
    /// Longer than [`MAX_LEN`] or holding a NUL byte.
    Unusable,
    /// A quote is not closed.
    UnclosedQuote,
    /// `**` (no recursive wildcard) or a pattern `glob` cannot parse.
    BadPattern(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => f.write_str("an allowed command cannot be empty"),
            TemplateError::Unusable => {
                write!(
                    f,
                    "an allowed command is at most {MAX_LEN} bytes, without NUL"
                )
            }
            TemplateError::UnclosedQuote => f.write_str("a quote is not closed"),
            TemplateError::BadPattern(why) => write!(f, "not a valid pattern: {why}"),
        }
    }
}

impl std::error::Error for TemplateError {}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.text)
    }
}

impl Template {
    /// Checks and compiles `text`; `home` expands a leading `~/`.
    pub(crate) fn parse(text: &str, home: Option<&Path>) -> Result<Template, TemplateError> {
        if text.len() > MAX_LEN || text.contains('\0') {
            return Err(TemplateError::Unusable);
        }
        let words = split(text)?
            .into_iter()
            .enumerate()
            .map(|(idx, word)| Word::new(word, idx == 0, home))
            .collect::<Result<Vec<_>, _>>()?;
        if words.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(Template {
            text: text.to_owned(),
            words,
        })
    }

    /// The template as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// How many leading words of a command it names.
    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// `None` when the leading words of `argv` match, word by word; else the index of the first
    /// word that does not (`argv.len()` when `argv` is shorter than the template).
    pub(crate) fn mismatch(&self, argv: &[String], resolve: &dyn Resolve) -> Option<usize> {
        for (idx, word) in self.words.iter().enumerate() {
            let Some(arg) = argv.get(idx) else {
                return Some(idx);
            };
            let matched = if idx == 0 {
                word.matches_program(arg, resolve)
            } else {
                word.matches_arg(arg, resolve)
            };
            if !matched {
                return Some(idx);
            }
        }
        None
    }

    /// Whether a word past the program is not an option: the template names what a launcher
    /// runs (`npx -y @modelcontextprotocol/server-*`), not only how.
    pub(crate) fn names_target(&self) -> bool {
        self.words.iter().skip(1).any(|w| !w.text.starts_with('-'))
    }
}

impl Word {
    fn new(text: String, program: bool, home: Option<&Path>) -> Result<Word, TemplateError> {
        let text = match (text.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => home.join(rest).display().to_string(),
            _ => text,
        };
        if text.contains("**") {
            return Err(TemplateError::BadPattern("`**` is not allowed".to_owned()));
        }
        let pattern = if text.contains(['*', '?', '[']) {
            Some(
                ::glob::Pattern::new(&text)
                    .map_err(|e| TemplateError::BadPattern(e.msg.to_owned()))?,
            )
        } else {
            None
        };
        let path = is_path_word(&text) || (program && text.contains('/'));
        Ok(Word {
            text,
            pattern,
            path,
        })
    }

    fn matches_program(&self, program: &str, resolve: &dyn Resolve) -> bool {
        let Some(found) = locate(program, resolve) else {
            return false;
        };
        let found_canonical = resolve.canonical(&found);
        if self.path {
            return match &self.pattern {
                Some(pattern) => candidates(&found, found_canonical.as_deref())
                    .any(|c| pattern.matches_path_with(c, OPTIONS)),
                None => same_program(&found, found_canonical.as_deref(), &self.text, resolve),
            };
        }
        match &self.pattern {
            // A bare pattern (`python3*`) names programs found on PATH by such a name.
            Some(pattern) => {
                let name = file_name(&found);
                pattern.matches_with(name, OPTIONS)
                    && resolve.which(name).is_some_and(|on_path| {
                        resolve.canonical(&on_path).as_deref() == found_canonical.as_deref()
                    })
            }
            None => same_program(&found, found_canonical.as_deref(), &self.text, resolve),
        }
    }

    fn matches_arg(&self, arg: &str, resolve: &dyn Resolve) -> bool {
        if !self.path {
            return match &self.pattern {
                Some(pattern) => {
                    pattern.matches_with(arg, OPTIONS)
                        && SPEC_CHARS
                            .iter()
                            .all(|c| arg.matches(*c).count() == self.text.matches(*c).count())
                }
                None => self.text == arg,
            };
        }
        let written = Path::new(arg);
        let canonical = resolve.canonical(written);
        match &self.pattern {
            Some(pattern) => candidates(written, canonical.as_deref())
                .any(|c| pattern.matches_path_with(c, OPTIONS)),
            None => {
                self.text == arg
                    || canonical.is_some_and(|c| {
                        resolve.canonical(Path::new(&self.text)).as_deref() == Some(c.as_path())
                    })
            }
        }
    }
}

/// Whether `found` (argv[0] located) is the program `template` names: the same path as written,
/// or the same file under the same name (or the file's own name), so that one name of a
/// multi-call binary (busybox) does not admit its other names.
fn same_program(
    found: &Path,
    found_canonical: Option<&Path>,
    template: &str,
    resolve: &dyn Resolve,
) -> bool {
    let Some(named) = locate(template, resolve) else {
        return false;
    };
    if named == found {
        return true;
    }
    let (Some(a), Some(b)) = (found_canonical, resolve.canonical(&named)) else {
        return false;
    };
    let name = file_name(found);
    a == b && (name == file_name(&named) || name == file_name(a))
}

/// Where `program` would be found: a path as written (made absolute), else on `PATH`.
pub(super) fn locate(program: &str, resolve: &dyn Resolve) -> Option<PathBuf> {
    if program.contains('/') {
        Some(resolve.absolute(Path::new(program)))
    } else {
        resolve.which(program)
    }
}

/// The forms of a path a glob may match: the resolved file, and the path as written when it is
/// absolute and has no `.` or `..` (which would let `/opt/mcp/*` reach outside `/opt/mcp`).
fn candidates<'a>(
    written: &'a Path,
    canonical: Option<&'a Path>,
) -> impl Iterator<Item = &'a Path> {
    let plain = written.is_absolute()
        && written
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    canonical.into_iter().chain(plain.then_some(written))
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

fn is_path_word(text: &str) -> bool {
    text.starts_with('/')
        || text.starts_with("./")
        || text.starts_with("../")
        || text.starts_with("~/")
}

/// Whitespace-separated words; `'…'` and `"…"` keep what they enclose as one word.
fn split(text: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.get_or_insert_with(String::new).push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            None if c.is_whitespace() => words.extend(word.take()),
            None => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(TemplateError::UnclosedQuote);
    }
    words.extend(word);
    Ok(words)
}

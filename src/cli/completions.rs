//! `aegis-gate completions bash|zsh|fish`: shell completion scripts made from the help texts.
//!
//! Owns: reading each subcommand's help text for the words a shell may complete after it (its
//! actions, from the `aegis-gate COMMAND ACTION` lines of its usage and examples, and every
//! `--flag` it mentions), and writing them as a bash, zsh or fish script.
//! Never: keeps a second list of flags: a flag missing from a help text is missing here too, and a
//! flag in a help text completes; completes values (a shell's file completion stays on for them).

use super::{args, CliError, Command, COMMANDS, HELP_TAIL};
use lexopt::prelude::*;

/// Runs `aegis-gate completions SHELL` and prints the script.
pub(super) fn run(parser: &mut lexopt::Parser, _log_level: Option<&str>) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let script = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bash"] => bash(),
        ["zsh"] => zsh(),
        ["fish"] => fish(),
        _ => return Err(args::takes("completions", "bash, zsh or fish", &words)),
    };
    print!("{script}");
    Ok(())
}

pub(super) const HELP: &str = "\
aegis-gate completions: print a shell completion script, made from the help texts

USAGE:
    aegis-gate completions bash
    aegis-gate completions zsh
    aegis-gate completions fish

Commands, their actions (tools list, keys rotate, ...) and their flags complete; values
complete as file names.

EXAMPLES:
    aegis-gate completions bash > ~/.local/share/bash-completion/completions/aegis-gate
    aegis-gate completions zsh > ~/.zfunc/_aegis-gate
    aegis-gate completions fish > ~/.config/fish/completions/aegis-gate.fish
";

/// What may follow one subcommand.
struct Words {
    command: &'static str,
    /// Bare words such as `list` (for `help`, the command names).
    actions: Vec<String>,
    /// `--flag`s, `--help` included.
    flags: Vec<String>,
}

impl Words {
    /// The actions then the flags, space-separated, as the scripts list them.
    fn joined(&self) -> String {
        let all: Vec<&str> = self
            .actions
            .iter()
            .chain(&self.flags)
            .map(String::as_str)
            .collect();
        all.join(" ")
    }
}

/// The words of every subcommand, in the order of [`COMMANDS`].
fn all_words() -> Vec<Words> {
    COMMANDS.iter().map(words).collect()
}

fn words(command: &Command) -> Words {
    let mut actions: Vec<String> = Vec::new();
    if command.name == "help" {
        actions.extend(COMMANDS.iter().map(|c| c.name.to_owned()));
    }
    let prefix = format!("aegis-gate {} ", command.name);
    for line in command.help.lines() {
        let Some((_, rest)) = line.split_once(prefix.as_str()) else {
            continue;
        };
        let word = rest.split_whitespace().next().unwrap_or_default();
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()) {
            push_new(&mut actions, word);
        }
    }
    let mut flags = flags_of(command.help);
    push_new(&mut flags, "--help");
    Words {
        command: command.name,
        actions,
        flags,
    }
}

/// Every `--flag` a text mentions, in order, once.
fn flags_of(text: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for (at, _) in text.match_indices("--") {
        let before = text.get(..at).and_then(|t| t.chars().last());
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text
            .get(at + 2..)
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            push_new(&mut flags, &format!("--{name}"));
        }
    }
    flags
}

fn push_new(list: &mut Vec<String>, word: &str) {
    if !list.iter().any(|w| w == word) {
        list.push(word.to_owned());
    }
}

/// What completes before any command: the commands and the global flags.
fn top_words() -> Vec<String> {
    let mut words: Vec<String> = COMMANDS.iter().map(|c| c.name.to_owned()).collect();
    words.extend(global_flags());
    words
}

/// The flags of the top-level help's `GLOBAL OPTIONS` (its examples name other commands' flags).
fn global_flags() -> Vec<String> {
    let section = HELP_TAIL
        .split_once("GLOBAL OPTIONS:")
        .map_or("", |(_, rest)| {
            rest.split("\n\n").next().unwrap_or_default()
        });
    flags_of(section)
}

/// The shell loop that finds the command among the words typed so far (skipping `--log-level`'s
/// value); bash and zsh read it alike.
const FIND_COMMAND: &str = r#"    local command="" i
    for ((i = FIRST; i < LAST; i++)); do
        case ${WORDS[i]} in
            --log-level) ((i++)) ;;
            -*) ;;
            *) command=${WORDS[i]}; break ;;
        esac
    done
"#;

fn bash() -> String {
    let mut out = String::from(
        "# bash completion for aegis-gate, made by `aegis-gate completions bash` from its help texts\n\
         _aegis_gate() {\n    local cur=${COMP_WORDS[COMP_CWORD]}\n",
    );
    out.push_str(
        &FIND_COMMAND
            .replace("FIRST", "1")
            .replace("LAST", "COMP_CWORD")
            .replace("WORDS", "COMP_WORDS"),
    );
    out.push_str("    local words\n    case $command in\n");
    out.push_str(&format!(
        "        \"\") words=\"{}\" ;;\n",
        top_words().join(" ")
    ));
    for w in all_words() {
        out.push_str(&format!(
            "        {}) words=\"{}\" ;;\n",
            w.command,
            w.joined()
        ));
    }
    out.push_str(
        "        *) words=\"\" ;;\n    esac\n    \
         COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n\
         complete -o default -o bashdefault -F _aegis_gate aegis-gate\n",
    );
    out
}

fn zsh() -> String {
    let mut out = String::from(
        "#compdef aegis-gate\n\
         # zsh completion for aegis-gate, made by `aegis-gate completions zsh` from its help texts\n\
         _aegis_gate() {\n",
    );
    out.push_str(
        &FIND_COMMAND
            .replace("FIRST", "2")
            .replace("LAST", "CURRENT")
            .replace("WORDS", "words"),
    );
    out.push_str("    case $command in\n");
    out.push_str(&format!(
        "        \"\") compadd -- {} ;;\n",
        top_words().join(" ")
    ));
    for w in all_words() {
        out.push_str(&format!(
            "        {}) compadd -- {}; _files ;;\n",
            w.command,
            w.joined()
        ));
    }
    out.push_str(
        "        *) _files ;;\n    esac\n}\n\
         if [ \"$funcstack[1]\" = \"_aegis-gate\" ]; then\n    _aegis_gate \"$@\"\n\
         else\n    compdef _aegis_gate aegis-gate\nfi\n",
    );
    out
}

fn fish() -> String {
    let mut out = String::from(
        "# fish completion for aegis-gate, made by `aegis-gate completions fish` from its help texts\n",
    );
    for command in COMMANDS {
        let summary = command
            .summary
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "complete -c aegis-gate -n __fish_use_subcommand -a {} -d {}\n",
            command.name,
            fish_quote(&summary)
        ));
    }
    for flag in global_flags() {
        out.push_str(&format!(
            "complete -c aegis-gate -n __fish_use_subcommand -l {}\n",
            flag.trim_start_matches('-')
        ));
    }
    for w in all_words() {
        let when = fish_quote(&format!("__fish_seen_subcommand_from {}", w.command));
        if !w.actions.is_empty() {
            let actions = fish_quote(&w.actions.join(" "));
            out.push_str(&format!("complete -c aegis-gate -n {when} -a {actions}\n"));
        }
        for flag in &w.flags {
            let flag = flag.trim_start_matches('-');
            out.push_str(&format!("complete -c aegis-gate -n {when} -l {flag}\n"));
        }
    }
    out
}

/// `text` in fish's single quotes (only `\` and `'` are escaped there).
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

//! Flag parsing shared by the subcommands: numbers and their bounds, the data dir, bare words.
//!
//! Owns: the usage errors every subcommand words alike (`--FLAG takes a number, not "x"`, `a value
//! must be greater than 0`, a timeout of at most one day, `COMMAND takes FORMS, not "x"`),
//! resolving `--data-dir`, and the argument loop of the offline subcommands that take bare words
//! and `--data-dir` (keys, audit, partners).
//! Never: knows what a subcommand means; prints anything but the help text it is handed.

use super::CliError;
use crate::{logging, store};
use lexopt::prelude::*;
use std::path::{Path, PathBuf};

/// The value of `flag` as a number; a usage error naming the flag otherwise.
pub(super) fn parse_number<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
) -> Result<T, CliError> {
    let text = parser.value()?.string()?;
    text.parse()
        .map_err(|_| CliError::Usage(format!("{flag} takes a number, not {text:?}")))
}

/// The one wording of a subcommand given words it does not take: `tools takes list, show NAME or
/// approve NAME, not "frob"` (or without the `not` part when nothing was given).
pub(super) fn takes(command: &str, forms: &str, words: &[String]) -> CliError {
    if words.is_empty() {
        CliError::Usage(format!("{command} takes {forms}"))
    } else {
        CliError::Usage(format!(
            "{command} takes {forms}, not {:?}",
            words.join(" ")
        ))
    }
}

/// `n`, unless it is zero.
pub(super) fn positive<T: PartialEq + Default>(n: T) -> Result<T, CliError> {
    if n == T::default() {
        Err(CliError::Usage("a value must be greater than 0".into()))
    } else {
        Ok(n)
    }
}

/// `ms`, unless it is longer than a day.
pub(super) fn at_most_a_day(ms: u64) -> Result<u64, CliError> {
    if ms > 86_400_000 {
        Err(CliError::Usage(
            "a timeout must be at most 86400000 ms (one day)".into(),
        ))
    } else {
        Ok(ms)
    }
}

/// The data dir of `--data-dir`, else the default one; a configuration error when neither works.
pub(super) fn data_dir(flag: Option<&Path>) -> Result<PathBuf, CliError> {
    store::resolve_data_dir(flag).map_err(|e| CliError::Config(e.to_string()))
}

/// The arguments of the offline subcommands (keys, audit, partners): bare
/// words and the resolved data dir, with logging started. `None` when --help
/// was asked for and printed.
pub(super) fn words_and_data_dir(
    parser: &mut lexopt::Parser,
    help: &str,
    log_level: Option<&str>,
) -> Result<Option<(Vec<String>, PathBuf)>, CliError> {
    let mut words: Vec<String> = Vec::new();
    let mut data_dir: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) => words.push(word.string()?),
            Long("data-dir") => data_dir = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                print!("{help}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    logging::init(log_level);
    let data_dir = self::data_dir(data_dir.as_deref())?;
    Ok(Some((words, data_dir)))
}

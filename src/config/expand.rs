//! Variables in a server entry: `${env:NAME}` and `${NAME}` become the value of `NAME` in the
//! gate's environment; `$${` is a literal `${`; any other `$` stays as it is.
//!
//! Owns: [`expand`], one value of the file turned into its expanded text, and the grammar above
//! (a name is ASCII letters, digits and `_`, not starting with a digit).
//! Never: reads the environment itself (the caller hands in the lookup, so tests need no process
//! environment); logs; puts a value into an error (a [`VariableProblem`] names the variable only).

use super::error::VariableProblem;
use std::ffi::OsString;

/// `text` with every `${…}` replaced by its variable's value from `lookup`.
pub(super) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> Result<String, VariableProblem> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(inside_and_more) = after.strip_prefix('{') {
            let end = inside_and_more
                .find('}')
                .ok_or(VariableProblem::Unterminated)?;
            out.push_str(&value_of(&inside_and_more[..end], lookup)?);
            rest = &inside_and_more[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value `${inside}` stands for.
fn value_of(
    inside: &str,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> Result<String, VariableProblem> {
    let name = match inside.split_once(':') {
        None => inside,
        Some(("env", name)) => name,
        Some(("input", id)) => return Err(VariableProblem::Input(shorten(id))),
        Some(_) => return Err(VariableProblem::Unsupported(shorten(inside))),
    };
    if !is_name(name) {
        return Err(VariableProblem::BadName(shorten(inside)));
    }
    lookup(name)
        .ok_or_else(|| VariableProblem::Unset(name.to_owned()))?
        .into_string()
        .map_err(|_| VariableProblem::NotUnicode(name.to_owned()))
}

/// Whether `name` is a variable name: ASCII letters, digits and `_`, not starting with a digit.
pub(super) fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Longest text of the file quoted back in a problem.
const MAX_QUOTED: usize = 64;

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_QUOTED).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<OsString> {
        match name {
            "HOME" => Some("/home/me".into()),
            "TOKEN" => Some("t0k".into()),
            "EMPTY" => Some("".into()),
            _ => None,
        }
    }

    #[test]
    fn both_forms_expand_and_the_escape_is_literal() {
        let cases = [
            ("${HOME}/x", "/home/me/x"),
            ("Bearer ${env:TOKEN}", "Bearer t0k"),
            ("${TOKEN}${TOKEN}", "t0kt0k"),
            ("a${EMPTY}b", "ab"),
            ("$${HOME}", "${HOME}"),
            ("$$${HOME}", "$${HOME}"),
            ("cost: $5 and $", "cost: $5 and $"),
            ("$$", "$$"),
            ("no variables", "no variables"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text, &env).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn problems_name_the_variable_and_never_a_value() {
        let cases = [
            ("${NOPE}", VariableProblem::Unset("NOPE".into())),
            ("${env:NOPE}", VariableProblem::Unset("NOPE".into())),
            ("${input:api-key}", VariableProblem::Input("api-key".into())),
            (
                "${config:a.b}",
                VariableProblem::Unsupported("config:a.b".into()),
            ),
            ("x ${HOME", VariableProblem::Unterminated),
            ("${}", VariableProblem::BadName("".into())),
            ("${1X}", VariableProblem::BadName("1X".into())),
            ("${env:a b}", VariableProblem::BadName("env:a b".into())),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text, &env), Err(want.clone()), "{text}");
            assert!(!want.to_string().contains("t0k"));
        }
    }
}

//! A server entry's `envFile`: variables for the child read from a dotenv file.
//!
//! Owns: [`parse`], the dotenv subset the gate reads: one `NAME=VALUE` a line, an optional
//! `export ` before the name, blank lines and lines starting with `#` skipped, a value in single
//! or double quotes taken as it is between them, an unquoted value trimmed and cut at ` #` (a
//! comment). No escapes, no values over several lines, no `${…}` inside values.
//! Never: reads the file (the caller does, naming it in its error); puts a line's text or a value
//! into an error (only its line number).

use super::expand::is_name;
use std::collections::BTreeMap;

/// The variables of a dotenv file's `text`; `Err` names the first line that is not `NAME=VALUE`.
pub(super) fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, value) = line
            .split_once('=')
            .map(|(name, value)| (name.trim(), value.trim()))
            .filter(|(name, _)| is_name(name))
            .ok_or_else(|| format!("line {} is not NAME=VALUE", idx + 1))?;
        vars.insert(name.to_owned(), unquote(value).to_owned());
    }
    Ok(vars)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    match value.find(" #") {
        Some(at) => value[..at].trim_end(),
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_subset_is_read() {
        let text = "# comment\n\nA=1\nexport B = two words \nC=\"quoted # kept\"\n\
                    D='single'\nE=x # a comment\nF=\nG=a=b\n";
        let vars = parse(text).unwrap();
        let want = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "quoted # kept"),
            ("D", "single"),
            ("E", "x"),
            ("F", ""),
            ("G", "a=b"),
        ];
        assert_eq!(vars.len(), want.len());
        for (name, value) in want {
            assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
        }
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_not_its_text() {
        for text in ["A=1\nsecret-value\n", "A=1\n1X=2\n", "A=1\n=x\n"] {
            let err = parse(text).unwrap_err();
            assert_eq!(err, "line 2 is not NAME=VALUE");
        }
    }
}

//! Scope globs: the one pattern language for tool names, wherever a pattern appears (delegation
//! scopes and partner grants now; policies and agent scopes use the same type).
//!
//! Semantics: a pattern matches the whole merged name (anchored) and is case-sensitive. `.`
//! separates segments. `*` matches any run of characters inside one segment, the empty run
//! included, and never crosses a `.`; `?` matches one character of a segment; `[abc]`, `[a-z]`
//! and `[!abc]` match one character of a class (never a `.`). `**` is refused: there is no
//! recursive wildcard. So `salesforce.read_*` matches `salesforce.read_account` but neither
//! `salesforce.read_x.delete` nor `salesforceXread_a`; `*.read` matches `crm.read`, not
//! `a.crm.read`; `*` alone matches only one-segment names.
//!
//! Built on the `glob` crate, whose `*` crosses `.`: names and patterns are matched with `.`
//! mapped to `/` and `require_literal_separator`, so `*`, `?` and classes stop at segment borders.
//! A `/` in a pattern is refused and a name with `/` never matches, so the mapping is exact.
//! Never: matches case-insensitively; lets any wildcard cross a `.`.

use serde::{Deserialize, Serialize};
use std::fmt;

const OPTIONS: ::glob::MatchOptions = ::glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Longest pattern accepted (merged names are at most a few hundred bytes).
const MAX_LEN: usize = 512;

/// A checked pattern over merged tool names.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob {
    text: String,
    pattern: ::glob::Pattern,
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// The empty string matches nothing useful and is always a mistake.
    Empty,
    /// Longer than [`MAX_LEN`].
    TooLong,
    /// `**`: no recursive wildcard.
    DoubleStar,
    /// `/` (tool names have none; it would also break the mapping).
    Slash,
    /// `glob` could not parse it (an unclosed `[`, …).
    Invalid(String),
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::Empty => f.write_str("a pattern cannot be empty"),
            GlobError::TooLong => write!(f, "a pattern is at most {MAX_LEN} bytes"),
            GlobError::DoubleStar => {
                f.write_str("`**` is not allowed: `*` matches within one dot-separated segment")
            }
            GlobError::Slash => f.write_str("`/` is not allowed in a tool pattern"),
            GlobError::Invalid(why) => write!(f, "not a valid pattern: {why}"),
        }
    }
}

impl std::error::Error for GlobError {}

impl Glob {
    /// Checks and compiles `text`.
    pub fn new(text: &str) -> Result<Glob, GlobError> {
        if text.is_empty() {
            return Err(GlobError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(GlobError::TooLong);
        }
        if text.contains("**") {
            return Err(GlobError::DoubleStar);
        }
        if text.contains('/') {
            return Err(GlobError::Slash);
        }
        let pattern = ::glob::Pattern::new(&text.replace('.', "/"))
            .map_err(|e| GlobError::Invalid(e.msg.to_owned()))?;
        Ok(Glob {
            text: text.to_owned(),
            pattern,
        })
    }

    /// Whether `name` (a merged tool name) matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        !name.contains('/') && self.pattern.matches_with(&name.replace('.', "/"), OPTIONS)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl TryFrom<String> for Glob {
    type Error = GlobError;
    fn try_from(text: String) -> Result<Glob, GlobError> {
        Glob::new(&text)
    }
}

impl From<Glob> for String {
    fn from(glob: Glob) -> String {
        glob.text
    }
}

/// Allow and deny patterns: a name is permitted when some allow pattern matches it and no deny
/// pattern does (deny always wins).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Names that may be used.
    #[serde(default)]
    pub allow: Vec<Glob>,
    /// Names that may never be used, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<Glob>,
}

impl Scope {
    /// Whether `name` is allowed and not denied.
    pub fn permits(&self, name: &str) -> bool {
        self.allow.iter().any(|g| g.matches(name)) && !self.deny.iter().any(|g| g.matches(name))
    }

    /// Whether both scopes permit `name` (an intersection: each one's deny list applies).
    pub fn both_permit(&self, other: &Scope, name: &str) -> bool {
        self.permits(name) && other.permits(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn star_stays_inside_one_segment() {
        assert!(m("salesforce.read_*", "salesforce.read_account"));
        assert!(m("salesforce.read_*", "salesforce.read_"));
        assert!(!m("salesforce.read_*", "salesforce.read_x.delete"));
        assert!(!m("salesforce.read_*", "salesforceXread_a"));
        assert!(!m("salesforce.read_*", "salesforce.delete_account"));
        assert!(m("*.read", "crm.read"));
        assert!(!m("*.read", "a.crm.read"));
        assert!(m("*", "echo"));
        assert!(!m("*", "hello.echo"));
        assert!(m("*.*", "hello.echo"));
        assert!(m(
            "partner_b.salesforce.*",
            "partner_b.salesforce.read_account"
        ));
    }

    #[test]
    fn matching_is_anchored_and_case_sensitive() {
        assert!(!m("salesforce.read", "salesforce.read_account"));
        assert!(!m("read_*", "salesforce.read_account"));
        assert!(!m("Salesforce.*", "salesforce.read"));
        assert!(m("salesforce.read", "salesforce.read"));
    }

    #[test]
    fn question_marks_and_classes_never_match_a_dot() {
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a.c"));
        assert!(m("a[xb]c", "abc"));
        assert!(!m("a[.]c", "a.c"));
        assert!(!m("a[!x]c", "a.c"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("a.**"), Err(GlobError::DoubleStar));
        assert_eq!(Glob::new("***"), Err(GlobError::DoubleStar));
        assert_eq!(Glob::new("a/b"), Err(GlobError::Slash));
        assert!(matches!(Glob::new("a[b"), Err(GlobError::Invalid(_))));
        assert_eq!(Glob::new(&"a".repeat(600)), Err(GlobError::TooLong));
        assert!(!m("a*", "a/b"), "a name with / never matches");
    }

    #[test]
    fn deny_wins_and_both_scopes_must_permit() {
        let scope: Scope =
            serde_json::from_str(r#"{"allow": ["salesforce.*"], "deny": ["salesforce.delete_*"]}"#)
                .unwrap();
        assert!(scope.permits("salesforce.read_account"));
        assert!(!scope.permits("salesforce.delete_account"));
        assert!(!scope.permits("slack.post"));
        let narrow: Scope = serde_json::from_str(r#"{"allow": ["salesforce.read_*"]}"#).unwrap();
        assert!(scope.both_permit(&narrow, "salesforce.read_account"));
        assert!(!scope.both_permit(&narrow, "salesforce.update_account"));
        assert!(serde_json::from_str::<Scope>(r#"{"allow": ["a.**"]}"#).is_err());
        assert!(serde_json::from_str::<Scope>(r#"{"allow": [], "extra": 1}"#).is_err());
    }
}

//! The last lines a child wrote on stderr, kept so that the reason of its failure shows its own
//! words (`exited (exit status: 1); stderr: ModuleNotFoundError: …`), and the redaction of the
//! connection's secrets from every stderr line the gate repeats.
//!
//! Owns: [`Tail`]: at most [`LINES`] lines of the current child, each cut to [`LINE_CHARS`]
//! characters, and [`Tail::redact`]: each value of the connection's env (and each string value
//! of an env value that is a JSON object, as the bridge's headers are) replaced by
//! `[redacted]` wherever it appears. Values shorter than [`MIN_SECRET`] bytes are not treated as
//! secrets (`1`, `on`: redacting them would garble every line).
//! Never: keeps a secret: a line is redacted whole before it is cut, so no part of a value
//! survives the cut; reads a clock or touches a pipe.

use std::collections::{BTreeMap, VecDeque};

/// Lines kept.
pub(super) const LINES: usize = 5;
/// Characters kept of each line; a longer one ends with `…`.
pub(super) const LINE_CHARS: usize = 200;
/// Shorter env values are not redacted.
pub(super) const MIN_SECRET: usize = 4;
/// What a secret is replaced with.
const REDACTED: &str = "[redacted]";

/// The last stderr lines of one child, redacted and bounded.
pub(super) struct Tail {
    lines: VecDeque<String>,
    /// The values to redact, longest first (a value that holds another goes whole).
    secrets: Vec<String>,
}

impl Tail {
    /// An empty tail that redacts the values of `env`.
    pub(super) fn new(env: &BTreeMap<String, String>) -> Tail {
        let mut secrets: Vec<String> = Vec::new();
        for value in env.values() {
            secrets.push(value.clone());
            if let Ok(serde_json::Value::Object(inner)) = serde_json::from_str(value) {
                secrets.extend(inner.values().filter_map(|v| v.as_str().map(str::to_owned)));
            }
        }
        secrets.retain(|s| s.len() >= MIN_SECRET);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Tail {
            lines: VecDeque::with_capacity(LINES),
            secrets,
        }
    }

    /// `line` with every secret replaced by `[redacted]`.
    pub(super) fn redact(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Keeps `line` (already redacted), cut to [`LINE_CHARS`]; drops the oldest beyond [`LINES`].
    pub(super) fn push(&mut self, redacted: &str) {
        let trimmed = redacted.trim_end();
        if trimmed.trim().is_empty() {
            return;
        }
        let mut kept: String = trimmed.chars().take(LINE_CHARS).collect();
        if kept.len() < trimmed.len() {
            kept.push('…');
        }
        if self.lines.len() == LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(kept);
    }

    /// Forgets the lines (a new child starts).
    pub(super) fn clear(&mut self) {
        self.lines.clear();
    }

    /// `stderr: line | line`, oldest first; `None` when the child wrote nothing.
    pub(super) fn summary(&self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        Some(format!("stderr: {}", lines.join(" | ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(env: &[(&str, &str)]) -> Tail {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Tail::new(&env)
    }

    #[test]
    fn secrets_are_redacted_before_the_cut_and_short_values_are_not_secrets() {
        let secret = "s3cret-value-7f3a";
        let t = tail(&[("TOKEN", secret), ("DEBUG", "1")]);
        assert_eq!(
            t.redact(&format!("bad token {secret} (1 try)")),
            "bad token [redacted] (1 try)"
        );
        // A value that would straddle the cut is gone before the cut.
        let mut t = t;
        let line = format!("{}{secret}", "x".repeat(LINE_CHARS - 3));
        t.push(&t.redact(&line));
        let summary = t.summary().unwrap_or_default();
        assert!(!summary.contains("s3c"), "{summary}");
    }

    #[test]
    fn json_object_values_are_secrets_too() {
        let t = tail(&[(
            "AEGIS_BRIDGE_HEADERS",
            r#"{"Authorization":"Bearer abc123"}"#,
        )]);
        assert_eq!(t.redact("sent Bearer abc123"), "sent [redacted]");
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut t = tail(&[]);
        assert_eq!(t.summary(), None);
        for n in 0..(LINES + 3) {
            t.push(&format!("line {n}"));
        }
        t.push("   ");
        t.push(&"é".repeat(LINE_CHARS * 2));
        let summary = t.summary().unwrap_or_default();
        assert!(summary.starts_with("stderr: line 4 | "), "{summary}");
        assert!(summary.ends_with('…'), "{summary}");
        assert_eq!(summary.matches(" | ").count(), LINES - 1);
        t.clear();
        assert_eq!(t.summary(), None);
    }
}

//! Serve mode's HTTP settings: the limits on what a client may send before the gate answers,
//! the deadlines of a connection, and the session quotas; the `"http"` object of the config
//! file's `"aegis"` settings.
//!
//! Owns: [`HttpSettings`] with its defaults (one place) and the ranges each accepts.
//! Never: reads a file; accepts a zero limit or duration, a duration over one day, or an
//! unknown field.

use super::error::Error;
use serde::Deserialize;
use std::time::Duration;

/// What serve mode's HTTP front and session table allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Longest request line (method, target, version). Default 8 KiB; longer: 414.
    pub max_request_line: usize,
    /// Longest header line. Default 8 KiB; longer: 431.
    pub max_header_line: usize,
    /// Largest request head (request line and every header). Default 64 KiB; larger: 431.
    pub max_head: usize,
    /// Most header fields. Default 100; more: 431.
    pub max_headers: usize,
    /// Largest request body. Default 4 MiB; larger: 413.
    pub max_body: usize,
    /// From a request's first byte to the end of its head. Default 10 s; later: 408.
    pub head_timeout: Duration,
    /// From the end of a head to the end of its body. Default 30 s; later: 408.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests. Default 60 s.
    pub keep_alive: Duration,
    /// MCP sessions open at once, in all. Default 10 000; more: 503.
    pub max_sessions: usize,
    /// MCP sessions open at once per workspace. Default 2 000; more: 429.
    pub max_sessions_per_workspace: usize,
    /// MCP sessions open at once per agent (or partner). Default 100; more: 429.
    pub max_sessions_per_agent: usize,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            max_request_line: 8 * 1024,
            max_header_line: 8 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
            max_body: 4 * 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(60),
            max_sessions: 10_000,
            max_sessions_per_workspace: 2_000,
            max_sessions_per_agent: 100,
        }
    }
}

/// The `"http"` object of the `"aegis"` settings; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSettingsFile {
    max_request_line: Option<usize>,
    max_header_line: Option<usize>,
    max_head: Option<usize>,
    max_headers: Option<usize>,
    max_body: Option<usize>,
    head_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    keep_alive_ms: Option<u64>,
    max_sessions: Option<usize>,
    max_sessions_per_workspace: Option<usize>,
    max_sessions_per_agent: Option<usize>,
}

impl HttpSettingsFile {
    /// The settings, defaults filled in, each checked.
    pub(super) fn settings(&self) -> Result<HttpSettings, Error> {
        let d = HttpSettings::default();
        let (n, ms) = (super::check::count, super::check::millis);
        let settings = HttpSettings {
            max_request_line: n(
                self.max_request_line,
                d.max_request_line,
                "http.max_request_line",
            )?,
            max_header_line: n(
                self.max_header_line,
                d.max_header_line,
                "http.max_header_line",
            )?,
            max_head: n(self.max_head, d.max_head, "http.max_head")?,
            max_headers: n(self.max_headers, d.max_headers, "http.max_headers")?,
            max_body: n(self.max_body, d.max_body, "http.max_body")?,
            head_timeout: ms(self.head_timeout_ms, d.head_timeout, "http.head_timeout_ms")?,
            body_timeout: ms(self.body_timeout_ms, d.body_timeout, "http.body_timeout_ms")?,
            keep_alive: ms(self.keep_alive_ms, d.keep_alive, "http.keep_alive_ms")?,
            max_sessions: n(self.max_sessions, d.max_sessions, "http.max_sessions")?,
            max_sessions_per_workspace: n(
                self.max_sessions_per_workspace,
                d.max_sessions_per_workspace,
                "http.max_sessions_per_workspace",
            )?,
            max_sessions_per_agent: n(
                self.max_sessions_per_agent,
                d.max_sessions_per_agent,
                "http.max_sessions_per_agent",
            )?,
        };
        if settings.max_request_line > settings.max_head
            || settings.max_header_line > settings.max_head
        {
            return Err(Error::InvalidSetting {
                name: "http.max_head",
                reason: "must be at least max_request_line and max_header_line".into(),
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_and_unknown_fields_are_refused_and_defaults_fill_the_rest() {
        let file: HttpSettingsFile =
            serde_json::from_value(serde_json::json!({"max_headers": 0})).unwrap();
        assert!(file
            .settings()
            .unwrap_err()
            .to_string()
            .contains("http.max_headers"));
        assert!(
            serde_json::from_value::<HttpSettingsFile>(serde_json::json!({"max_header": 1}))
                .is_err()
        );
        let file: HttpSettingsFile =
            serde_json::from_value(serde_json::json!({"head_timeout_ms": 2500})).unwrap();
        let settings = file.settings().unwrap();
        assert_eq!(settings.head_timeout, Duration::from_millis(2500));
        assert_eq!(settings.max_head, 64 * 1024);
    }
}

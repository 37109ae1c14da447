//! The gate's settings: [`Settings`] with every limit, timeout and interval and its default, the
//! config file's `"aegis"` object that overrides them ([`SettingsFile`], checked by
//! [`settings_from`]), and the naming rules of merged tools ([`Separator`], [`Naming`],
//! [`validate_server_name`]).
//!
//! Owns: the defaults (in [`Settings::default`], one place) and the ranges each setting accepts.
//! Never: reads a file (the caller hands in the parsed `"aegis"` object); never accepts a
//! duration of zero or above one day, or an unknown field; imports nothing of `config` but
//! [`Error`], the range checks ([`super::check`]) and the HTTP settings ([`super::http`]).

use super::error::Error;
use serde::Deserialize;
use std::time::Duration;

/// How merged tool names join the server prefix and the tool name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Separator {
    /// `server.tool` (the default).
    Dot,
    /// `server__tool`, for clients that reject dots.
    DoubleUnderscore,
    /// `server_tool`.
    Underscore,
    /// `server-tool`.
    Dash,
}

impl Separator {
    /// The separator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Separator::Dot => ".",
            Separator::DoubleUnderscore => "__",
            Separator::Underscore => "_",
            Separator::Dash => "-",
        }
    }

    /// Parses `.`, `__`, `_` or `-`.
    pub fn parse(text: &str) -> Option<Separator> {
        match text {
            "." => Some(Separator::Dot),
            "__" => Some(Separator::DoubleUnderscore),
            "_" => Some(Separator::Underscore),
            "-" => Some(Separator::Dash),
            _ => None,
        }
    }
}

/// How merged names are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `server` + separator + `tool` (the default).
    Plain,
    /// Names that match `^[A-Za-z0-9_-]{1,64}$` (OpenAI, Bedrock, Claude Desktop): dots become `_`,
    /// a `.` separator becomes `__`, long names are cut and get a short hash.
    ProviderSafe,
}

/// What agents see of a pinned tool that changed, until an operator approves the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChange {
    /// The last approved sanitized version (the default).
    ServeLastApproved,
    /// Nothing: the tool is hidden and calls to it are refused.
    Hide,
}

/// Every limit, timeout and interval of the gate. See [`Settings::default`] for the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Longest JSON-RPC line accepted from an agent or a child. Default 4 MiB.
    pub max_line_bytes: usize,
    /// Longest `resources/read` result passed to an agent; a longer one is refused with an
    /// error that says so. Default 2 MiB.
    pub max_read_bytes: usize,
    /// Deadline of the `initialize` handshake with a child. Default 30 s.
    pub init_timeout: Duration,
    /// Deadline of an agent's `tools/call` (and of any other forwarded request). Default 60 s.
    pub call_timeout: Duration,
    /// Deadline of each `tools/list` page fetched from a child. Default 30 s.
    pub list_timeout: Duration,
    /// Agent requests in flight to one child; more get an immediate error. Default 64.
    pub max_in_flight: usize,
    /// Interval of `ping` heartbeats to each child. Default 15 s.
    pub heartbeat_interval: Duration,
    /// Consecutive unanswered heartbeats that make a child unhealthy. Default 2.
    pub heartbeat_misses: u32,
    /// Interval of the `tools/list` probe for a child that does not implement `ping`. Default 60 s.
    pub probe_interval: Duration,
    /// How long the first `initialize` answer waits for every child's first listing. Default 10 s.
    pub startup_timeout: Duration,
    /// First restart delay; it doubles per failure, with jitter. Default 500 ms.
    pub backoff_min: Duration,
    /// Longest restart delay. Default 30 s.
    pub backoff_max: Duration,
    /// Failures within `breaker_window` that open the breaker (state `failed`). Default 5.
    pub breaker_failures: u32,
    /// Window for counting failures. Default 60 s.
    pub breaker_window: Duration,
    /// How long an open breaker waits before the next try. Default 60 s.
    pub breaker_cooldown: Duration,
    /// Each teardown step's wait (stdin closed, then SIGTERM, then SIGKILL). Default 2 s.
    pub teardown_grace: Duration,
    /// How long requests already received may still finish after the agent closes stdin. Default 5 s.
    pub drain_timeout: Duration,
    /// Consecutive invalid lines from a child that make it unhealthy. Default 16.
    pub invalid_line_limit: u32,
    /// Merged-name separator. Default `.`.
    pub separator: Separator,
    /// Tools per `tools/list` page sent to an agent. Default 100.
    pub page_size: usize,
    /// Age after which a cached merged view triggers a re-fetch from the children. Default 300 s.
    pub cache_ttl: Duration,
    /// Pages read from one child's `tools/list` before giving up. Default 64.
    pub max_list_pages: usize,
    /// Tools accepted from one child. Default 4096.
    pub max_tools_per_server: usize,
    /// How merged names are made. Default plain.
    pub naming: Naming,
    /// First sight of a clean tool: trust on first use (default) or wait for approval.
    pub pinning: crate::store::pins::Pinning,
    /// A pinned tool that changed: serve the last approved version (default) or hide it.
    pub on_change: OnChange,
    /// This gate's organization id for delegation (`serve`; `--org-id` wins). Default none.
    pub org_id: Option<String>,
    /// The local caller's identity in stdio mode (what policies' `agents` lists match).
    pub agent: Option<String>,
    /// The policy applied to stdio calls (serve keeps one per workspace instead).
    pub policy: Option<crate::policy::Policy>,
    /// Whether a stdio gate records its calls in the data dir's audit trail. Default true.
    pub audit: bool,
    /// Serve mode's HTTP limits, deadlines and session quotas.
    pub http: super::http::HttpSettings,
    /// Commands `POST /connections` may run, besides `serve --allow-command`. Default none.
    pub allow_commands: crate::allowlist::Allowlist,
    /// Refused variables this file's own servers may still set (upper case). Default none.
    pub allow_env: std::collections::BTreeSet<String>,
    /// The learned detection stage's thresholds. Default: the trained model's.
    pub guard: super::guard::GuardThresholds,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_line_bytes: 4 * 1024 * 1024,
            max_read_bytes: 2 * 1024 * 1024,
            init_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
            list_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            heartbeat_interval: Duration::from_secs(15),
            heartbeat_misses: 2,
            probe_interval: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            breaker_failures: 5,
            breaker_window: Duration::from_secs(60),
            breaker_cooldown: Duration::from_secs(60),
            teardown_grace: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(5),
            invalid_line_limit: 16,
            separator: Separator::Dot,
            page_size: 100,
            cache_ttl: Duration::from_secs(300),
            max_list_pages: 64,
            max_tools_per_server: 4096,
            naming: Naming::Plain,
            pinning: crate::store::pins::Pinning::TrustOnFirstUse,
            on_change: OnChange::ServeLastApproved,
            org_id: None,
            agent: None,
            policy: None,
            audit: true,
            http: super::http::HttpSettings::default(),
            allow_commands: crate::allowlist::Allowlist::default(),
            allow_env: std::collections::BTreeSet::new(),
            guard: super::guard::GuardThresholds::default(),
        }
    }
}

/// The `"aegis"` object of the config file; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsFile {
    max_line_bytes: Option<usize>,
    max_read_bytes: Option<usize>,
    init_timeout_ms: Option<u64>,
    call_timeout_ms: Option<u64>,
    list_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    heartbeat_interval_ms: Option<u64>,
    heartbeat_misses: Option<u32>,
    probe_interval_ms: Option<u64>,
    startup_timeout_ms: Option<u64>,
    backoff_min_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    breaker_failures: Option<u32>,
    breaker_window_ms: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
    teardown_grace_ms: Option<u64>,
    drain_timeout_ms: Option<u64>,
    invalid_line_limit: Option<u32>,
    separator: Option<String>,
    page_size: Option<usize>,
    cache_ttl_ms: Option<u64>,
    max_list_pages: Option<usize>,
    max_tools_per_server: Option<usize>,
    naming: Option<String>,
    pinning: Option<String>,
    on_change: Option<String>,
    org_id: Option<String>,
    agent: Option<String>,
    policy: Option<crate::policy::Policy>,
    audit: Option<bool>,
    http: Option<super::http::HttpSettingsFile>,
    allow_commands: Option<Vec<super::spawn::AllowCommand>>,
    allow_env: Option<Vec<String>>,
    guard_hold: Option<f64>,
    guard_flag: Option<f64>,
}

/// The documented pattern of server names: `^[A-Za-z0-9_-]{1,64}$`, without the separator.
pub fn validate_server_name(name: &str, separator: Separator) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("may contain only ASCII letters, digits, '_' and '-'".into());
    }
    if name.contains(separator.as_str()) {
        return Err(format!(
            "must not contain the separator {:?}",
            separator.as_str()
        ));
    }
    Ok(())
}

pub(super) fn settings_from(file: SettingsFile) -> Result<Settings, Error> {
    let d = Settings::default();
    let ms = super::check::millis;
    let positive = super::check::count;
    let separator = match file.separator {
        None => d.separator,
        Some(text) => Separator::parse(&text).ok_or(Error::InvalidSetting {
            name: "separator",
            reason: format!("{text:?} is not one of \".\", \"__\", \"_\", \"-\""),
        })?,
    };
    let settings = Settings {
        max_line_bytes: positive(file.max_line_bytes, d.max_line_bytes, "max_line_bytes")?,
        max_read_bytes: positive(file.max_read_bytes, d.max_read_bytes, "max_read_bytes")?,
        init_timeout: ms(file.init_timeout_ms, d.init_timeout, "init_timeout_ms")?,
        call_timeout: ms(file.call_timeout_ms, d.call_timeout, "call_timeout_ms")?,
        list_timeout: ms(file.list_timeout_ms, d.list_timeout, "list_timeout_ms")?,
        max_in_flight: positive(file.max_in_flight, d.max_in_flight, "max_in_flight")?,
        heartbeat_interval: ms(
            file.heartbeat_interval_ms,
            d.heartbeat_interval,
            "heartbeat_interval_ms",
        )?,
        heartbeat_misses: file.heartbeat_misses.unwrap_or(d.heartbeat_misses).max(1),
        probe_interval: ms(
            file.probe_interval_ms,
            d.probe_interval,
            "probe_interval_ms",
        )?,
        startup_timeout: ms(
            file.startup_timeout_ms,
            d.startup_timeout,
            "startup_timeout_ms",
        )?,
        backoff_min: ms(file.backoff_min_ms, d.backoff_min, "backoff_min_ms")?,
        backoff_max: ms(file.backoff_max_ms, d.backoff_max, "backoff_max_ms")?,
        breaker_failures: file.breaker_failures.unwrap_or(d.breaker_failures).max(1),
        breaker_window: ms(
            file.breaker_window_ms,
            d.breaker_window,
            "breaker_window_ms",
        )?,
        breaker_cooldown: ms(
            file.breaker_cooldown_ms,
            d.breaker_cooldown,
            "breaker_cooldown_ms",
        )?,
        teardown_grace: ms(
            file.teardown_grace_ms,
            d.teardown_grace,
            "teardown_grace_ms",
        )?,
        drain_timeout: ms(file.drain_timeout_ms, d.drain_timeout, "drain_timeout_ms")?,
        invalid_line_limit: file
            .invalid_line_limit
            .unwrap_or(d.invalid_line_limit)
            .max(1),
        separator,
        page_size: positive(file.page_size, d.page_size, "page_size")?,
        cache_ttl: ms(file.cache_ttl_ms, d.cache_ttl, "cache_ttl_ms")?,
        max_list_pages: positive(file.max_list_pages, d.max_list_pages, "max_list_pages")?,
        max_tools_per_server: positive(
            file.max_tools_per_server,
            d.max_tools_per_server,
            "max_tools_per_server",
        )?,
        naming: d.naming,
        pinning: d.pinning,
        on_change: d.on_change,
        org_id: None,
        agent: None,
        policy: None,
        audit: true,
        http: match &file.http {
            Some(http) => http.settings()?,
            None => super::http::HttpSettings::default(),
        },
        allow_commands: super::spawn::allowlist(file.allow_commands.unwrap_or_default())?,
        allow_env: super::spawn::allowed_env(file.allow_env.unwrap_or_default()),
        guard: super::guard::GuardThresholds::parse(file.guard_hold, file.guard_flag)?,
    };
    let mut settings = settings;
    settings.naming = match file.naming.as_deref() {
        None | Some("plain") => Naming::Plain,
        Some("provider_safe") => Naming::ProviderSafe,
        Some(other) => return Err(invalid("naming", other, "\"plain\", \"provider_safe\"")),
    };
    settings.pinning = match file.pinning.as_deref() {
        None | Some("trust_on_first_use") => crate::store::pins::Pinning::TrustOnFirstUse,
        Some("require_approval") => crate::store::pins::Pinning::RequireApproval,
        Some(other) => {
            return Err(invalid(
                "pinning",
                other,
                "\"trust_on_first_use\", \"require_approval\"",
            ))
        }
    };
    settings.on_change = match file.on_change.as_deref() {
        None | Some("serve_last_approved") => OnChange::ServeLastApproved,
        Some("hide") => OnChange::Hide,
        Some(other) => {
            return Err(invalid(
                "on_change",
                other,
                "\"serve_last_approved\", \"hide\"",
            ))
        }
    };
    settings.org_id = file.org_id.clone();
    settings.agent = file.agent.clone();
    settings.policy = file.policy.clone();
    settings.audit = file.audit.unwrap_or(true);
    if settings.backoff_min > settings.backoff_max {
        return Err(Error::InvalidSetting {
            name: "backoff_min_ms",
            reason: "must not exceed backoff_max_ms".into(),
        });
    }
    Ok(settings)
}

fn invalid(name: &'static str, value: &str, allowed: &str) -> Error {
    Error::InvalidSetting {
        name,
        reason: format!("{value:?} is not one of {allowed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused() {
        for (key, value) in [
            ("call_timeout_ms", 0u64),
            ("call_timeout_ms", 86_400_001),
            ("page_size", 0),
        ] {
            let file: SettingsFile =
                serde_json::from_value(serde_json::json!({ key: value })).unwrap();
            assert!(settings_from(file).is_err(), "{key}={value}");
        }
        let file: SettingsFile =
            serde_json::from_value(serde_json::json!({"naming": "fancy"})).unwrap();
        assert!(settings_from(file)
            .unwrap_err()
            .to_string()
            .contains("provider_safe"));
    }

    #[test]
    fn server_names_follow_the_documented_pattern() {
        assert!(validate_server_name("slack", Separator::Dot).is_ok());
        assert!(validate_server_name("my-server_2", Separator::Dot).is_ok());
        assert!(validate_server_name("", Separator::Dot).is_err());
        assert!(validate_server_name("a.b", Separator::Dot).is_err());
        assert!(validate_server_name("my_server", Separator::Underscore).is_err());
        assert!(validate_server_name(&"x".repeat(65), Separator::Dot).is_err());
    }
}

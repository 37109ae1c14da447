//! What a sanitizer found, how bad it is, and the verdict it adds up to.
//!
//! Owns: [`Finding`], [`Kind`] with its [`Severity`], and [`Verdict`].
//! Never: decides anything by itself beyond the fixed mapping kind → severity → verdict.

use std::fmt;

/// How much a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A cosmetic change (whitespace, a markdown link unwrapped, a truncation).
    Cosmetic,
    /// Shown to a reviewer, but the definition stays usable: the learned stage scored it between
    /// its flag and hold thresholds, or a weak detector fired where the model reads benign text.
    Flag,
    /// Hidden content was removed or a detector fired: the definition is held for review.
    Hold,
    /// A structural violation: the definition is rejected.
    Reject,
}

/// The kinds of findings. Each has one severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ANSI escape sequences removed.
    AnsiEscape,
    /// C0/C1 control characters removed.
    ControlChar,
    /// Zero-width or invisible characters removed.
    Invisible,
    /// Bidi embedding/override/isolate controls removed.
    Bidi,
    /// Bidi marks (LRM, RLM, ALM) removed; they are common in RTL text.
    BidiMark,
    /// Unicode tag characters (U+E0000 block) removed; the detail decodes them.
    TagChars,
    /// A run of variation selectors removed; the detail decodes them as bytes.
    VariationSelectors,
    /// Private-use characters removed.
    PrivateUse,
    /// Noncharacters removed.
    Noncharacter,
    /// Line separators normalized to `\n`.
    LineSeparator,
    /// Whitespace collapsed.
    Whitespace,
    /// A long whitespace run that pushes text out of view.
    Padding,
    /// NFKC changed the text.
    Compatibility,
    /// An HTML comment removed.
    HtmlComment,
    /// A markdown image removed (a zero-click fetch).
    MarkdownImage,
    /// A markdown link turned into its text.
    MarkdownLink,
    /// Text cut at the length cap.
    Truncated,
    /// `<IMPORTANT>`, `<system>`, chat-template tokens.
    PseudoTag,
    /// "Ignore previous instructions" and kin.
    Override,
    /// "Do not tell the user" and kin.
    Concealment,
    /// "Before using this tool, read…" and kin.
    Coercion,
    /// `~/.ssh`, `.aws/credentials`, `mcp.json`, `.env`…
    SensitivePath,
    /// Asking for keys, tokens, passwords.
    CredentialHarvest,
    /// Sending data to a URL or an address.
    Exfiltration,
    /// `curl … | sh` and kin.
    RemoteExecution,
    /// Raw HTML or markdown that loads or hides something when rendered (`<img>`, `<script>`,
    /// reference-style images, `display:none`).
    ActiveMarkup,
    /// An HTML element that can load or style something (`<img>`, `<style>`, `<form>`…) named
    /// without a remote address: API documentation quotes them ("a src attribute, such as
    /// `<IMG src='cid:…'>`"), so the model decides. With an address, or a script, it is
    /// [`Kind::ActiveMarkup`].
    MarkupMention,
    /// "You are now…", `system:` lines.
    RolePlay,
    /// Instructions about other tools or servers.
    Shadowing,
    /// A long base64 run.
    Base64,
    /// A word mixing Latin with look-alike letters of other scripts.
    MixedScript,
    /// A JSON Schema keyword outside the allowlist was dropped.
    DroppedKeyword,
    /// A field the gate does not pass on (unknown, or not in the shape MCP defines) was dropped.
    DroppedField,
    /// An icon with a URI other than `https:` or `data:` was dropped.
    IconRemoved,
    /// A name (tool, prompt, property or prompt argument) outside the allowed pattern, given
    /// twice, or reading as an instruction where it goes back to the server as a key.
    InvalidName,
    /// A resource's `uri` or a template's `uriTemplate` that is empty, over its length limit, or
    /// holds a hidden or control character (an address is passed on as sent or not at all).
    InvalidUri,
    /// A `$ref` that is not local (`#/…`).
    RemoteRef,
    /// A `$schema` that is not a known dialect.
    UnknownDialect,
    /// A bound on depth, node count, size or properties was exceeded.
    Bounds,
    /// A value has the wrong JSON type for its place.
    WrongType,
    /// The learned stage scored a text as written to steer the model; the detail gives the
    /// score, the window and the features that weighed most.
    Model,
}

impl Kind {
    /// The severity of this kind.
    pub fn severity(self) -> Severity {
        use Kind::*;
        match self {
            BidiMark | LineSeparator | Whitespace | Compatibility | MarkdownLink | Truncated
            | DroppedKeyword | DroppedField | IconRemoved => Severity::Cosmetic,
            AnsiEscape | ControlChar | Invisible | Bidi | TagChars | VariationSelectors
            | PrivateUse | Noncharacter | Padding | HtmlComment | MarkdownImage | PseudoTag
            | Override | Concealment | Coercion | SensitivePath | CredentialHarvest
            | Exfiltration | RemoteExecution | ActiveMarkup | MarkupMention | RolePlay
            | Shadowing | Base64 | MixedScript | Model => Severity::Hold,
            InvalidName | InvalidUri | RemoteRef | UnknownDialect | Bounds | WrongType => {
                Severity::Reject
            }
        }
    }

    /// A stable snake_case name for logs, APIs and tests.
    pub fn as_str(self) -> &'static str {
        use Kind::*;
        match self {
            AnsiEscape => "ansi_escape",
            ControlChar => "control_char",
            Invisible => "invisible",
            Bidi => "bidi",
            BidiMark => "bidi_mark",
            TagChars => "tag_chars",
            VariationSelectors => "variation_selectors",
            PrivateUse => "private_use",
            Noncharacter => "noncharacter",
            LineSeparator => "line_separator",
            Whitespace => "whitespace",
            Padding => "padding",
            Compatibility => "compatibility",
            HtmlComment => "html_comment",
            MarkdownImage => "markdown_image",
            MarkdownLink => "markdown_link",
            Truncated => "truncated",
            PseudoTag => "pseudo_tag",
            Override => "override",
            Concealment => "concealment",
            Coercion => "coercion",
            SensitivePath => "sensitive_path",
            CredentialHarvest => "credential_harvest",
            Exfiltration => "exfiltration",
            RemoteExecution => "remote_execution",
            ActiveMarkup => "active_markup",
            MarkupMention => "markup_mention",
            RolePlay => "role_play",
            Shadowing => "shadowing",
            Base64 => "base64",
            MixedScript => "mixed_script",
            DroppedKeyword => "dropped_keyword",
            DroppedField => "dropped_field",
            IconRemoved => "icon_removed",
            InvalidName => "invalid_name",
            InvalidUri => "invalid_uri",
            RemoteRef => "remote_ref",
            UnknownDialect => "unknown_dialect",
            Bounds => "bounds",
            WrongType => "wrong_type",
            Model => "model",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a sanitizer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Where: `description`, `inputSchema.properties.note.description`, `instructions`…
    pub location: String,
    /// What.
    pub kind: Kind,
    /// Evidence for a reviewer: the matched phrase, decoded hidden text (bounded).
    pub detail: String,
    /// Kept as a flag: shown, but it does not hold the definition (see [`Severity::Flag`]).
    pub flagged: bool,
}

impl Finding {
    /// A finding with its detail cut to a reviewable length.
    pub fn new(location: &str, kind: Kind, detail: impl Into<String>) -> Finding {
        let detail: String = detail.into();
        let detail = if detail.chars().count() > MAX_DETAIL_CHARS {
            let mut cut: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
            cut.push('…');
            cut
        } else {
            detail
        };
        Finding {
            location: location.to_owned(),
            kind,
            detail,
            flagged: false,
        }
    }

    /// The same finding kept as a flag: shown to a reviewer, not holding the definition.
    pub fn flagged(mut self) -> Finding {
        self.flagged = true;
        self
    }

    /// The finding's severity: its kind's, or [`Severity::Flag`] for a flagged one.
    pub fn severity(&self) -> Severity {
        match self.kind.severity() {
            Severity::Hold if self.flagged => Severity::Flag,
            s => s,
        }
    }

    /// Which stage found it: `cleaner` (hidden or cosmetic text), `detector` (a phrase pattern),
    /// `model` (the learned stage) or `structure` (names, schema, bounds).
    pub fn stage(&self) -> &'static str {
        use Kind::*;
        match self.kind {
            Model => "model",
            PseudoTag | Override | Concealment | Coercion | SensitivePath | CredentialHarvest
            | Exfiltration | RemoteExecution | ActiveMarkup | MarkupMention | RolePlay
            | Shadowing | Base64 | MixedScript => "detector",
            InvalidName | InvalidUri | RemoteRef | UnknownDialect | Bounds | WrongType
            | DroppedKeyword | DroppedField | IconRemoved => "structure",
            _ => "cleaner",
        }
    }

    /// `hold`, `flag`, `reject` or `cosmetic`, for logs and APIs.
    pub fn severity_str(&self) -> &'static str {
        match self.severity() {
            Severity::Cosmetic => "cosmetic",
            Severity::Flag => "flag",
            Severity::Hold => "hold",
            Severity::Reject => "reject",
        }
    }
}

const MAX_DETAIL_CHARS: usize = 240;

/// What the gate does with a definition (a tool, a prompt, a resource or a resource template).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Clean: passed on untouched.
    Pass,
    /// Cosmetic changes only: passed on cleaned.
    Sanitized,
    /// A detector fired or hidden content was removed: not listed, not callable (a prompt not
    /// fetched, a resource not read), until approved.
    Held,
    /// A structural violation: not listed, not callable (nor fetched, nor read).
    Rejected,
}

impl Verdict {
    /// The verdict the findings add up to; `changed` says whether cleaning changed anything.
    pub fn from_findings(findings: &[Finding], changed: bool) -> Verdict {
        match findings.iter().map(Finding::severity).max() {
            Some(Severity::Reject) => Verdict::Rejected,
            Some(Severity::Hold) => Verdict::Held,
            Some(Severity::Cosmetic | Severity::Flag) if changed => Verdict::Sanitized,
            Some(Severity::Cosmetic) => Verdict::Sanitized,
            Some(Severity::Flag) => Verdict::Pass,
            None if changed => Verdict::Sanitized,
            None => Verdict::Pass,
        }
    }

    /// Whether agents may see and use (call, fetch, read) a definition with this verdict.
    pub fn is_usable(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Sanitized)
    }

    /// The lowercase name used in logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Sanitized => "sanitized",
            Verdict::Held => "held",
            Verdict::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! Detectors: phrase patterns that mark text written to steer the model rather than describe a tool.
//!
//! Owns: the patterns (one list, each with its [`Kind`]), the confusable fold (UTS #39 skeleton of
//! each non-ASCII letter that looks like an ASCII one), mixed-script words, base64 runs.
//! Never: changes text; detection runs on cleaned text, on its confusable fold and on whatever hidden
//! text the cleaner removed, and only adds findings.
//!
//! The patterns paraphrase public research on tool poisoning (Invariant Labs, CyberArk, Trail of
//! Bits) and Cisco's mcp-scanner YARA rules (Apache-2.0). They are deliberately narrow: ordinary prose
//! such as "Important: backups are split" or "do not use during peak hours" must pass.

use super::finding::{Finding, Kind};
use regex::{Regex, RegexSet};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::OnceLock;
use unicode_security::MixedScript;

/// Minimum length of a base64 run worth flagging.
const BASE64_RUN: usize = 40;

/// (kind, pattern) over lowercased, confusable-folded text.
const PATTERNS: &[(Kind, &str)] = &[
    (
        Kind::PseudoTag,
        r"</?\s*(important|system|instructions?|admin|critical|urgent|secret|hidden|assistant|tool_description|context|prompt|override|sys)\s*>",
    ),
    (
        Kind::PseudoTag,
        r"<\|[a-z_]{2,20}\|>|\[/?inst\]|<<\s*/?sys\s*>>|(\[\[\[|\|\|\|)\s*(system|admin|hidden|internal)|\[(hidden|internal|secret|private)\s+(instruction|directive|command)\]",
    ),
    (
        Kind::Override,
        r"\b(ignore|disregard|forget|bypass|override)\s+((all|any|every|each|of|the|your|my|these|those|previous|prior|above|earlier|preceding|safety|existing|other)\s+)*(instructions?|prompts?|rules|guidelines|directives|context|messages?|guardrails)\b",
    ),
    (
        Kind::Override,
        r"\b(reveal|print|show|output|leak|dump|repeat)\s+(the\s+|your\s+)?(system\s+prompt|hidden\s+instructions)|\bnew\s+(instructions|directives?|guidelines)\s*:|\b(developer|god|jailbreak|unrestricted)\s+mode\b|\byou\s+(will\s+|must\s+)?(now\s+)?obey\b|\bdo\s+not\s+(follow|obey)\b|\byou\s+are\s+now\s+unrestricted\b",
    ),
    (
        Kind::Concealment,
        r"\b(never|don'?t|do\s+not|must\s+not|should\s+not|shouldn'?t)\s+(tell|inform|mention|notify|alert|reveal|disclose|show)\b[^.\n]{0,40}?\b(user|them|anyone|human)\b",
    ),
    (
        Kind::Concealment,
        r"\bwithout\s+(telling|informing|notifying|alerting|asking)\b|\b(hide|conceal)\s+(this|it|that)\s+from\b|\bkeep\s+(this|it)\s+(a\s+)?(secret|hidden|confidential)\b|\b(user|they)\s+(must|should)\s+not\s+(know|see|notice)\b|\btell\s+(the\s+)?user\s+only\b|\b(silently|secretly|covertly|invisibly|quietly)\s+(send|upload|transmit|forward|copy|add|include|read|collect|call|run|execute|delete|modify|change|record|log|share|post|email)\b|\bnever\s+mention\b",
    ),
    (
        Kind::Coercion,
        r"\b(before|prior\s+to)\s+(using|calling|invoking|running|executing|accessing)\b[^.\n]{0,40}?\b(read|call|run|send|include|fetch|open|paste|provide|execute|invoke|add)\b",
    ),
    (
        Kind::Coercion,
        r"\balways\s+(call|use|run|invoke|execute|consult|trigger)\s+this\s+(tool|function)|\b(call|use|run|invoke)\s+this\s+tool\s+(first|before)\b|\bbefore\s+any\s+other\s+(tool|action|function)|\bmust\s+(first\s+)?(be\s+)?(called|read|invoked|executed)\b|\byou\s+must\s+(first\s+)?(call|read|run|invoke|execute|include|send)\b|\bafter\s+reading\s+this\b|\btool\s+will\s+not\s+work\s+unless\b|\botherwise\s+the\s+tool\s+(fails|will\s+fail)\b|\brequired\s+for\s+(compliance|security|auditing)\b|\b(append|add|include)\s+(the\s+)?(contents?|text)\s+of\b",
    ),
    (
        Kind::SensitivePath,
        r"~/\.ssh|\.ssh/|\bssh\s+(private\s+)?keys?\b|\bid[_ \t\n-]?(rsa|dsa|ecdsa|ed25519)\b|\.aws/(credentials|config)|\bmcp\.json\b|claude_desktop_config|\.cursor/|(^|[ \t\n'`(/])\.env\b|/etc/(passwd|shadow)\b|\.netrc\b|\.pgpass\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b|\.kube/config\b|\.docker/config\.json|\.(bash|zsh)_history\b|\bwallet\.dat\b|\b(credentials|service_account)\.json\b",
    ),
    (
        Kind::CredentialHarvest,
        r"\b(include|send|provide|paste|share|give|append|attach|forward|upload|collect|dump|reveal|list|show|read|extract|harvest)\b[^.\n]{0,40}?\b(api[_ \t\n-]?keys?|access[_ \t\n-]?tokens?|secret[_ \t\n-]?keys?|passwords?|passphrases?|private[_ \t\n-]?keys?|seed\s+phrases?|credentials|session\s+cookies?|bearer\s+tokens?|auth\s+tokens?)\b|\b(openai|anthropic|github|aws|slack|stripe)_(api_)?(key|token|secret)",
    ),
    (
        Kind::Exfiltration,
        r"\b(send|sends|forward|forwards|post|upload|transmit|exfiltrate|email|e-mail|bcc|cc|leak|relay|export|transfer|copy)\b[^\n]{0,60}?(https?://|\b[a-z0-9_.+-]+@[a-z0-9_-]+\.[a-z]{2,}|\bto\s+[a-z0-9_-]+\.(example|com|net|org|io|xyz|ru|cn|site|top)\b)",
    ),
    (
        Kind::Exfiltration,
        r"\bbcc\s*:|\b(conversation|chat)\s+(history|log|transcript)\b|\bfull\s+conversation\b|\bentire\s+conversation\b",
    ),
    (
        Kind::RemoteExecution,
        r"\b(curl|wget)\s[^\n|]*\|\s*(sudo\s+)?(sh|bash|zsh|python3?)\b|\brm\s+-rf\s+[/~]|\bchmod\s+\+x\s",
    ),
    (
        Kind::RolePlay,
        r"(^|\n)\s*(system|assistant|developer|model|human)\s*:|\byou\s+are\s+now\b|\bfrom\s+now\s+on\b|\bact\s+as\s+(an?\s+|the\s+)?(admin|root|system|unrestricted|different)|\bpretend\s+(to\s+be|you)\b|\brole[ \t\n-]?play\b|\byour\s+new\s+(role|persona|instructions)\b",
    ),
    (
        Kind::Shadowing,
        r"\bwhen\s+(the\s+)?[a-z0-9_.-]+\s+tool\s+is\s+(used|called|invoked)|\b(before|after|instead\s+of)\s+(using\s+|calling\s+)?(any\s+)?other\s+tools?\b|\btools?\s+(from|of)\s+other\s+servers?\b|\b(all|every)\s+other\s+tools?\b|\binstead\s+of\s+(using\s+|calling\s+)?the\s+[a-z0-9_.-]+\s+tool\b",
    ),
];

struct Compiled {
    /// All patterns at once: one pass says which fired.
    set: RegexSet,
    /// Each pattern alone, compiled the first time the set says it fired (to find the phrase).
    each: Vec<OnceLock<Option<Regex>>>,
    sources: Vec<String>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let sources: Vec<String> = PATTERNS.iter().map(|(_, p)| ascii_classes(p)).collect();
        // The patterns are constants of this file; a unit test compiles every one of them.
        let set = RegexSet::new(&sources).unwrap_or_else(|_| RegexSet::empty());
        let each = sources.iter().map(|_| OnceLock::new()).collect();
        Compiled { set, each, sources }
    })
}

impl Compiled {
    fn pattern(&self, idx: usize) -> Option<&Regex> {
        let cell = self.each.get(idx)?;
        cell.get_or_init(|| self.sources.get(idx).and_then(|p| Regex::new(p).ok()))
            .as_ref()
    }
}

/// The phrases are English: ASCII word boundaries and classes are enough, and keep the automata
/// (and the gate's memory) small. Non-ASCII look-alikes are folded to ASCII before matching.
fn ascii_classes(pattern: &str) -> String {
    pattern
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\s", r"(?-u:\s)")
        .replace(r"\w", r"(?-u:\w)")
}

/// What the detectors need to know beyond the text: the other servers, for shadowing.
#[derive(Debug, Default)]
pub struct Context {
    other_servers: HashSet<String>,
    separator: String,
    /// Set by `sanitize_tool` for the duration of one tool when a single pass over all its text
    /// found nothing a detector could fire on (printable ASCII only); the per-string passes are
    /// then skipped. Reset before `sanitize_tool` returns.
    quiet: Cell<bool>,
}

impl Context {
    /// A context naming the other configured servers and the merged-name separator, so that text
    /// mentioning `other_server<separator>tool` is flagged as shadowing.
    pub fn new<S: AsRef<str>>(
        other_servers: impl IntoIterator<Item = S>,
        separator: &str,
    ) -> Context {
        Context {
            other_servers: other_servers
                .into_iter()
                .map(|s| s.as_ref().to_lowercase())
                .collect(),
            separator: separator.to_owned(),
            quiet: Cell::new(false),
        }
    }

    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.quiet.set(quiet);
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet.get()
    }
}

/// Runs every detector over `text` (and its confusable fold), appending findings.
pub(crate) fn detect(text: &str, location: &str, ctx: &Context, findings: &mut Vec<Finding>) {
    if ctx.quiet.get() {
        return;
    }
    let lower = text.to_lowercase();
    let mut seen = Vec::new();
    run_patterns(&lower, location, findings, &mut seen);
    let folded = if lower.is_ascii() {
        None
    } else {
        Some(fold_confusables(&lower))
    };
    if let Some(folded) = folded.as_deref().filter(|f| *f != lower) {
        run_patterns(folded, location, findings, &mut seen);
    }
    if let Some(phrase) = other_server_mention(folded.as_deref().unwrap_or(&lower), ctx) {
        findings.push(Finding::new(location, Kind::Shadowing, phrase));
    }
    mixed_script(&lower, location, findings);
    base64_runs(text, location, findings);
}

/// One pass over all of a tool's text (lowercased, printable ASCII): could any detector fire?
/// False means the per-string detection can be skipped without missing anything.
pub(crate) fn suspicious(lower: &str, original: &str, ctx: &Context) -> bool {
    compiled().set.is_match(lower)
        || other_server_mention(lower, ctx).is_some()
        || has_base64_run(original)
}

/// `other_server<separator>…` in `lower`: the word before each separator, looked up.
fn other_server_mention(lower: &str, ctx: &Context) -> Option<String> {
    if ctx.other_servers.is_empty() || ctx.separator.is_empty() {
        return None;
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut from = 0;
    while let Some(pos) = lower
        .get(from..)
        .and_then(|rest| rest.find(ctx.separator.as_str()))
    {
        let at = from + pos;
        let before = lower.get(..at).unwrap_or_default();
        let start = before.rfind(|c: char| !is_name(c)).map_or(0, |i| i + 1);
        let word = before.get(start..).unwrap_or_default();
        if !word.is_empty() && ctx.other_servers.contains(word) {
            return Some(
                lower
                    .get(start..)
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect(),
            );
        }
        from = at + ctx.separator.len();
    }
    None
}

fn run_patterns(text: &str, location: &str, findings: &mut Vec<Finding>, seen: &mut Vec<Kind>) {
    let compiled = compiled();
    let matches = compiled.set.matches(text);
    if !matches.matched_any() {
        return;
    }
    for idx in matches.iter() {
        let (Some((kind, _)), Some(regex)) = (PATTERNS.get(idx), compiled.pattern(idx)) else {
            continue;
        };
        if seen.contains(kind) {
            continue;
        }
        if let Some(m) = regex.find(text) {
            seen.push(*kind);
            findings.push(Finding::new(location, *kind, m.as_str().trim()));
        }
    }
}

/// Replaces every non-ASCII letter whose UTS #39 skeleton is one ASCII letter or digit by it.
pub(crate) fn fold_confusables(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    text.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    if c.is_ascii() || !c.is_alphabetic() {
        return c;
    }
    let mut buf = [0u8; 4];
    let mut skeleton = unicode_security::skeleton(c.encode_utf8(&mut buf));
    match (skeleton.next(), skeleton.next()) {
        (Some(s), None) if s.is_ascii_alphanumeric() => s.to_ascii_lowercase(),
        _ => c,
    }
}

/// A word with ASCII letters and a non-ASCII look-alike of one (Cyrillic "і" in "іgnore"), or a
/// word mixing scripts where one is expected.
fn mixed_script(lower: &str, location: &str, findings: &mut Vec<Finding>) {
    if lower.is_ascii() {
        return;
    }
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        let has_ascii = word.chars().any(|c| c.is_ascii_alphabetic());
        let has_lookalike = word.chars().any(|c| !c.is_ascii() && fold_char(c) != c);
        if has_ascii && has_lookalike && !word.is_single_script() {
            findings.push(Finding::new(location, Kind::MixedScript, word));
            return;
        }
    }
}

/// Runs that look like base64. URLs and paths are not: tokens with `://` are skipped, and a run
/// needs mixed case and a digit (or to be one repeated character, a padding trick).
fn base64_candidates(text: &str) -> impl Iterator<Item = &str> {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    let tokens = text.split_whitespace().filter(|t| !t.contains("://"));
    tokens
        .flat_map(move |t| t.split(move |c: char| !is_b64(c)))
        .filter(|run| {
            if run.len() < BASE64_RUN {
                return false;
            }
            let has_upper = run.bytes().any(|b| b.is_ascii_uppercase());
            let has_lower = run.bytes().any(|b| b.is_ascii_lowercase());
            let has_digit = run.bytes().any(|b| b.is_ascii_digit() || b == b'+');
            let all_same = run.bytes().all(|b| Some(&b) == run.as_bytes().first());
            all_same || has_upper && has_lower && has_digit
        })
}

fn has_base64_run(text: &str) -> bool {
    base64_candidates(text).next().is_some()
}

/// Flags long base64 runs; decodes them and runs the detectors on the result too.
fn base64_runs(text: &str, location: &str, findings: &mut Vec<Finding>) {
    if let Some(run) = base64_candidates(text).next() {
        let preview: String = run.chars().take(60).collect();
        findings.push(Finding::new(
            location,
            Kind::Base64,
            format!("{} chars: {preview}", run.len()),
        ));
        if let Some(decoded) = decode_base64(run).filter(|d| !d.is_empty()) {
            let mut inner = Vec::new();
            run_patterns(
                &decoded.to_lowercase(),
                location,
                &mut inner,
                &mut Vec::new(),
            );
            for mut finding in inner {
                finding.detail = format!("in decoded base64: {}", finding.detail);
                findings.push(finding);
            }
        }
    }
}

/// Standard base64 to UTF-8 text, when it is that.
fn decode_base64(run: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut n_bits = 0;
    let mut out = Vec::with_capacity(run.len() * 3 / 4);
    for b in run.bytes().take_while(|&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push(u8::try_from((bits >> n_bits) & 0xff).ok()?);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for (kind, p) in PATTERNS {
            assert!(Regex::new(&ascii_classes(p)).is_ok(), "{kind}: {p}");
        }
        assert_eq!(compiled().set.len(), PATTERNS.len());
        assert!((0..PATTERNS.len()).all(|i| compiled().pattern(i).is_some()));
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(
            decode_base64("aGVsbG8gd29ybGQ=").as_deref(),
            Some("hello world")
        );
        assert_eq!(decode_base64("a*b"), None);
    }

    #[test]
    fn cyrillic_i_folds_to_latin_i() {
        assert_eq!(fold_confusables("\u{456}gnore"), "ignore");
        assert_eq!(fold_confusables("日本語"), "日本語");
    }
}

//! Detectors: phrase patterns that mark text written to steer the model rather than describe a tool.
//!
//! Owns: the patterns (one list, each with its [`Kind`]), mentions of other servers' tools,
//! mixed-script words, long base64 runs, and the scoring of decoded views. The texts it reads
//! (the confusable fold, the Cyrillic fold, the reading view) are `fold.rs`'s.
//! Never: changes text; detection runs on cleaned text, on its confusable fold, on a reading view
//! without emphasis, on whatever hidden text the cleaner removed and on each decoded view of the
//! text (`decode/`: rot13, reversed, leetspeak, spaced letters, percent and HTML-entity
//! encoding, base64 and hex runs of 16 characters or more, regional-indicator letters), and only
//! adds findings. A finding from a decoded view names its decoding (`… (decoded: rot13)`); a kind
//! already found in the text itself is not reported again from a view.
//!
//! The patterns paraphrase public research on tool poisoning (Invariant Labs, CyberArk, Trail of
//! Bits) and Cisco's mcp-scanner YARA rules (Apache-2.0). They are deliberately narrow: ordinary prose
//! such as "Important: backups are split" or "do not use during peak hours" must pass.

use super::decode::{self, Decoding};
use super::finding::{Finding, Kind};
use super::fold::views;
use super::fold::{fold_char, fold_confusables};
use regex::Regex;
use screen::Screen;
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::OnceLock;
use unicode_security::MixedScript;

mod screen;

/// Minimum length of a base64 run worth flagging.
const BASE64_RUN: usize = 40;

/// (kind, pattern) over lowercased, confusable-folded text.
const PATTERNS: &[(Kind, &str)] = &[
    (
        Kind::PseudoTag,
        r"</?\s*(important|system|instructions?|admin|critical|urgent|secret|hidden|assistant|tool_description|context|prompt|override|sys)\s*>|</?\s*[a-z_]*(instruction|override|system_?prompt)[a-z_]*\s*>",
    ),
    (
        Kind::PseudoTag,
        r"<\|[a-z_]{2,20}\|>|\[/?inst\]|<<\s*/?sys\s*>>|(\[\[\[|\|\|\|)\s*(system|admin|hidden|internal)|\[(hidden|internal|secret|private)\s+(instruction|directive|command)\]|\[system\]\s*:|#+\s*system\s+(notice|message|instruction|override)",
    ),
    (
        Kind::Override,
        r"\b(ignore|disregard|forget|bypass|override)\s+((all|any|every|each|of|the|your|my|these|those|previous|prior|above|earlier|preceding|safety|existing|original|system)\s+)*(instructions?|prompts?|guidelines|directives|guardrails|guidance)\b",
    ),
    (
        Kind::Override,
        r"\b(ignore|disregard|forget)\s+(all\s+|everything\s+)?(the\s+)?(above|before|previous|prior)\b|\b(ignore|disregard|forget)\s+everything\b|\b(previous|prior|above|earlier|original)\s+(instructions|rules|guidelines|guidance)\s+(no\s+longer\s+apply|are\s+void|are\s+cancelled)",
    ),
    (
        Kind::Override,
        r"\b(reveal|print|show|output|leak|dump|repeat)\s+(the\s+|your\s+)?(system\s+prompt|hidden\s+instructions)|\bnew\s+(instructions|directives?|guidelines)\s*:|\b(god|jailbreak|dan|unrestricted)\s+mode\b|\byou\s+are\s+(now\s+)?in\s+developer\s+mode\b|\byou\s+(will\s+|must\s+)?(now\s+)?obey\b|\bdo\s+not\s+(follow|obey)\s+(the\s+|any\s+|your\s+)?(previous\s+|prior\s+|original\s+|system\s+)?(instructions|rules|guidelines|prompts?)\b|\byou\s+are\s+now\s+unrestricted\b",
    ),
    (
        // "Ignore all previous instructions" in 13 other languages: instruction nouns only (not
        // "rules": a firewall "ignores the previous rules") and imperative forms (a word that is also
        // a present tense, French "ignore", Spanish "ignora", only with "all"). Over the lowercased
        // text, before folding.
        Kind::Override,
        r"\b(ignorez|oubliez|oublie)\s+(toutes\s+)?(les\s+|tes\s+|vos\s+)?(instructions|consignes)\s+(précédentes|precedentes|antérieures|anterieures|ci-dessus)|\bignore\s+toutes\s+(les\s+|tes\s+|vos\s+)?(instructions|consignes)\s+(précédentes|precedentes|antérieures|anterieures|ci-dessus)|\b(ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte)\s+(alle\s+)?(die\s+)?(vorherigen|bisherigen|früheren|fruheren|obigen|vorigen)\s+(anweisungen|instruktionen|befehle)|\b(ignore|ignoren|olvida|olvide|olviden)\s+(todas\s+)?(las\s+)?(instrucciones|indicaciones)\s+(anteriores|previas)|\bignora\s+todas\s+las\s+(instrucciones|indicaciones)\s+(anteriores|previas)|\b(ignorate|dimentica|dimenticate)\s+(tutte\s+)?(le\s+)?(istruzioni|indicazioni)\s+(precedenti|anteriori)|\bignora\s+tutte\s+le\s+(istruzioni|indicazioni)\s+(precedenti|anteriori)|\b(ignorem|esqueça|esqueca|esqueçam|desconsidere)\s+(todas\s+)?(as\s+)?(instruções|instrucoes|orientações|orientacoes)\s+(anteriores|prévias|previas)|\b(ignora|ignore)\s+todas\s+as\s+(instruções|instrucoes|orientações|orientacoes)\s+(anteriores|prévias|previas)|\b(negeer|vergeet)\s+(alle\s+)?(de\s+)?(eerdere|vorige|voorgaande)\s+(instructies|aanwijzingen|opdrachten)|\b(zignoruj|ignoruj|zapomnij)\s+(wszystkie\s+)?(poprzednie|wcześniejsze|wczesniejsze)\s+(instrukcje|polecenia)|(игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте|ігноруй|ігноруйте|проігноруй)\s+(все\s+|всі\s+)?(предыдущие|прежние|попередні)\s+(инструкции|указания|інструкції|вказівки)|(忽略|无视|忽视|忘记|忘掉|不要理会)掉?(之前|以前|先前|上面|上述|前面|此前)的?(所有|全部|一切)?的?(指令|指示|提示词)|(忽略|无视|忽视|忘记)(所有|全部|一切)(之前|以前|先前|上面|上述|前面)的?(指令|指示|提示词)|(以前|これまで|上記)の(すべての|全ての)?(指示|命令)(を|は)(すべて|全て)?(無視|忘れ)|(이전의?|앞의|위의)\s*(모든\s+)?(지시|지침|명령).{0,2}\s*(무시\s*(하|해)|잊어)|(önceki|onceki)\s+(tüm\s+|tum\s+)?(talimatları|talimatlari)\s+(yok\s+say(ın|in)?|unut|görmezden\s+gel|gormezden\s+gel)(\s|[.,;!]|$)",
    ),
    (
        // The same override in other word orders and turns of phrase: the adjective first
        // ("ignora las anteriores instrucciones"), "ne tiens pas compte de", "Anweisungen davor",
        // the instructions named before the verb in Chinese, "инструкции выше". The same rules:
        // instruction nouns and imperatives only.
        Kind::Override,
        r"\b(ignore|ignoren|olvida|olvide|olviden)\s+(todas\s+)?(las\s+)?(anteriores|previas)\s+(instrucciones|indicaciones)|\bignora\s+todas\s+las\s+(anteriores|previas)\s+(instrucciones|indicaciones)|\bno\s+(hagas|haga|hagan)\s+caso\s+(a|de)\s+(todas\s+)?(las\s+)?(instrucciones|indicaciones)\s+(anteriores|previas)|\b(ignorez|oubliez|oublie)\s+(toutes\s+)?(les\s+|tes\s+|vos\s+)?(précédentes|precedentes)\s+(instructions|consignes)|\bne\s+(tiens|tenez)\s+(pas|plus)\s+compte\s+(des|de\s+toutes\s+les|de\s+vos|de\s+tes)\s+(instructions|consignes)\s+(précédentes|precedentes|antérieures|anterieures|ci-dessus)|\b(fais|faites)\s+abstraction\s+(des|de\s+toutes\s+les)\s+(instructions|consignes)\s+(précédentes|precedentes|antérieures|anterieures|ci-dessus)|\b(ignorate|dimentica|dimenticate)\s+(tutte\s+)?(le\s+)?precedenti\s+(istruzioni|indicazioni)|\bnon\s+tenere\s+conto\s+(delle|di\s+tutte\s+le)\s+(istruzioni|indicazioni)\s+(precedenti|anteriori)|\b(ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte)\s+(alle\s+)?(die\s+)?(anweisungen|instruktionen|befehle)\s+(davor|von\s+vorher|von\s+zuvor|zuvor|von\s+oben)\b|(把|将)(之前|以前|先前|上面|上述|前面|此前)的?(所有|全部|一切)?的?(指令|指示|提示词)(都|全部|统统)?(忽略|无视|忽视|忘记|忘掉)|(之前|以前|先前|上面|上述|前面|此前)的?(所有|全部|一切)?的?(指令|指示|提示词)(都|全部|统统|一律)(忽略|无视|忽视|忘记|忘掉|不要理会|别管)|(不要|别)(理会|管|遵循|遵守)(之前|以前|先前|上面|上述|前面|此前)的?(所有|全部|一切)?的?(指令|指示|提示词)|(игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте)\s+(все\s+)?(инструкции|указания)\s+(выше|ранее|до\s+этого)",
    ),
    (
        // Scavenging: "set q to whatever ghp_ token appears". A tool that needs a credential names
        // it; it does not send the model looking for one. Keys and tokens only with a word that
        // makes them credentials (a Redis key or a lexer token is not one).
        Kind::Coercion,
        r"\bwhatever\s+([a-z0-9_.-]+\s+){0,2}(api[ _-]?keys?|(access|secret|private|ssh|auth|bearer|session|github|gh[pousr]_[a-z0-9_]*)\s+(tokens?|keys?)|gh[pousr]_[a-z0-9_]*|passwords?|credentials?|secrets?)\s+(appears?|shows?\s+up|you\s+(can\s+)?(find|see|locate)|(is|are)\s+(in|on)\s+(the\s+)?(workspace|environment|machine|disk|repo|repository))\b",
    ),
    (
        // "Any API key you can find": scavenging too, but a secret scanner says "report any
        // exposed credentials you find", so the model decides.
        Kind::CredentialHarvest,
        r"\b(any|every|all)\s+([a-z0-9_.-]+\s+){0,2}(api[ _-]?keys?|(access|secret|private|ssh|auth|bearer|session|github)\s+(tokens?|keys?)|passwords?|credentials?)\s+(that\s+|which\s+)?you\s+(can\s+|may\s+|might\s+)?(find|see|locate|get\s+hold\s+of|come\s+across|discover)\b",
    ),
    (
        Kind::Concealment,
        r"\b(never|don'?t|do\s+not|must\s+not|should\s+not|shouldn'?t)\s+(tell|inform|mention|notify|alert|reveal|disclose|show)\b[^.\n]{0,40}?\b(user|them|anyone|human)\b|\b(don'?t|do\s+not|never)\s+let\s+(the\s+)?user\s+(know|see)\b|\bno\s+need\s+to\s+(mention|tell|inform)\b|\bomit\b[^.\n]{0,40}\bfrom\s+(your|the)\s+(reply|answer|response)",
    ),
    (
        Kind::Concealment,
        r"\bwithout\s+(telling|informing|notifying|alerting|asking)\s+(the\s+)?(user|human|them)\b|\b(hide|conceal)\s+(this|it|that)\s+from\b|\bkeep\s+(this|it)\s+(a\s+)?(secret|hidden|confidential)\b|\b(user|they)\s+(must|should)\s+not\s+(know|see|notice)\b|\btell\s+(the\s+)?user\s+only\b|\b(silently|secretly|covertly|invisibly|quietly)\s+(send|upload|transmit|forward|copy|add|include|read|collect|call|run|execute|delete|modify|change|record|log|share|post|email)\b|\bnever\s+mention\b",
    ),
    (
        Kind::Coercion,
        r"\b(before|prior\s+to)\s+(using|calling|invoking|running|executing|accessing)\b[^.\n]{0,40}?\b(read|call|run|send|include|fetch|open|paste|provide|execute|invoke|add)\b",
    ),
    (
        Kind::Coercion,
        r"\balways\s+(call|use|run|invoke|execute|consult|trigger)\s+this\s+(tool|function)|\b(call|use|run|invoke)\s+this\s+tool\s+(first|before)\b|\bbefore\s+any\s+other\s+(tool|action|function)|\bmust\s+(first\s+be|be\s+(called|read|invoked|executed)\s+(first|before))\b|\bmust\s+first\s+(call|read|run|invoke|execute)\b|\byou\s+must\s+(first\s+)?(call|read|run|invoke|execute|include|send)\b|\bafter\s+reading\s+this\b|\btool\s+will\s+not\s+work\s+unless\b|\botherwise\s+the\s+tool\s+(fails|will\s+fail)\b|\brequired\s+for\s+(compliance|security|auditing)\b|\b(append|add|include|paste|put)\s+(the\s+)?(contents?|text)\s+of\b[^\n]{0,40}(\.env|~/|/etc/|id_rsa|credential|secret|\bkeys?\b|token)|\bassume\s+the\s+role\s+of\b",
    ),
    (
        Kind::SensitivePath,
        r"~/\.ssh|\.ssh/|\bssh\s+(private\s+)?keys?\b|\bid[_ \t\n-]?(rsa|dsa|ecdsa|ed25519)\b|\.aws/(credentials|config)|\bmcp\.json\b|claude_desktop_config|\.cursor/|(^|[ \t\n'`(/])\.env\b|/etc/(passwd|shadow)\b|\.netrc\b|\.pgpass\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b|\.kube/config\b|\.docker/config\.json|\.(bash|zsh)_history\b|\bwallet\.dat\b|\b(credentials|service_account)\.json\b|~/\.config/gh\b|~/\.gnupg\b|/proc/self/environ\b",
    ),
    (
        Kind::CredentialHarvest,
        r"\b(include|send|paste|share|give|append|attach|forward|upload|collect|dump|reveal|read|extract|harvest|pass)\b[^.\n]{0,40}?\b(api[_ \t\n-]?keys?|access[_ \t\n-]?tokens?|secret[_ \t\n-]?keys?|passwords?|passphrases?|private[_ \t\n-]?keys?|seed\s+phrases?|credentials|session\s+cookies?|bearer\s+tokens?|auth\s+tokens?|github\s+tokens?|personal\s+access\s+tokens?|gh\s+pat)\b|\bpaste\s+(the\s+|your\s+)?(gh\s+)?pat\b",
    ),
    (
        Kind::Exfiltration,
        r"\bbcc\b[^\n]{0,30}[a-z0-9_.+-]+@[a-z0-9-]+\.[a-z]{2,}|[a-z0-9_.+-]+@[a-z0-9-]+\.[a-z]{2,}[^\n]{0,20}\bbcc\b|\b(include|add|append|attach|insert|put|paste|send|forward)\b[^.\n]{0,30}\b(full|entire|whole|complete)\s+(conversation|chat|history|context|transcript)|\bsend[^.\n]{0,30}\b(conversation|chat)\s+(history|log|transcript)|https?://[^ \t\n]*[?&][a-z_]*=\{",
    ),
    (
        Kind::RemoteExecution,
        r"\b(curl|wget)\s[^\n|]*\|\s*(sudo\s+)?(sh|bash|zsh|python3?)\b|\brm\s+-rf\s+[/~]|\bchmod\s+\+x\s",
    ),
    (
        Kind::RolePlay,
        r"(^|\n)\s*(system|assistant)\s*:\s*(you|ignore|from\s+now|always|never|do\s+not|new)\b|\byou\s+are\s+now\b|\bfrom\s+now\s+on\b|\bact\s+as\s+(an?\s+|the\s+)?(admin|root|system|unrestricted|different)|\bpretend\s+(to\s+be|you)\b|\brole[ \t\n-]?play\b|\byour\s+new\s+(role|persona|instructions)\b",
    ),
    (
        Kind::Shadowing,
        r"\bwhen\s+(the\s+)?[a-z0-9_.-]+\s+tool\s+is\s+(used|called|invoked)|\b(before|after|instead\s+of)\s+(using\s+|calling\s+)?(any\s+)?other\s+tools?\b|\btools?\s+(from|of)\s+other\s+servers?\b|\b(all|every)\s+other\s+tools?\b|\binstead\s+of\s+(using\s+|calling\s+)?the\s+[a-z0-9_.-]+\s+tool\b",
    ),
    (
        // Markup that runs, hides, or loads from an address when rendered.
        Kind::ActiveMarkup,
        r"<\s*(script|iframe|object|embed)\b|<\s*(img|style|svg|link|meta|video|audio|source|form|details)\b[^>]{0,300}?(https?:|//|\{)|!\[[^\]\n]*\]\s*\[[^\]\n]*\]|!\[[^\]]{0,200}\]\s*\(|<!\[cdata\[|display\s*:\s*none|javascript:",
    ),
    (
        // The same elements named without an address: documentation quotes them, the model
        // decides (see `Kind::MarkupMention`).
        Kind::MarkupMention,
        r"<\s*(img|style|svg|link|meta|video|audio|source|form|details)\b",
    ),
];

/// Sending verbs and targets (a URL or an address); they count as exfiltration only in a line that
/// also names data the model holds, so "Send a message to a Slack channel" and documentation links
/// pass.
const SEND_TO_TARGET: &str = r"\b(send|sends|forward|forwards|post|upload|transmit|exfiltrate|email|e-mail|cc|leak|relay|export|transfer|copy|mirror|submit|notify)\b[^\n]{0,60}?(https?://|\b[a-z0-9_.+-]+@[a-z0-9_-]+\.[a-z]{2,}|\bto\s+[a-z0-9_-]+\.(example|com|net|org|io|xyz|ru|cn|site|top)\b)";
const HELD_DATA: &str = r"\b(conversation|history|messages?|results?|contents?|files?|keys?|tokens?|credentials|secrets?|passwords?|everything|notes?|output|answers?|replies|context|summary|chat|transcript|prompt)\b";

struct Compiled {
    /// All patterns in two sets: one pass of each says which could fire; `None` if they failed to
    /// compile.
    screen: Option<Screen>,
    send_to_target: Option<Regex>,
    held_data: Option<Regex>,
    /// Each pattern alone, compiled the first time the screen says it fired (to find the phrase).
    each: Vec<OnceLock<Option<Regex>>>,
    sources: Vec<String>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let sources: Vec<String> = PATTERNS.iter().map(|(_, p)| ascii_classes(p)).collect();
        // The patterns are constants of this file; a unit test compiles every one of them. Should
        // one fail anyway, detection fails closed (every text is held), never open.
        let screen = Screen::new(&sources);
        let each = sources.iter().map(|_| OnceLock::new()).collect();
        Compiled {
            screen,
            send_to_target: Regex::new(&ascii_classes(SEND_TO_TARGET)).ok(),
            held_data: Regex::new(&ascii_classes(HELD_DATA)).ok(),
            each,
            sources,
        }
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
    /// The learned stage's model when not the embedded one (the trainer's candidate).
    model: Option<std::sync::Arc<super::model::Model>>,
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
            model: None,
        }
    }

    /// The same context scoring with `model` instead of the embedded one.
    pub fn with_model(mut self, model: std::sync::Arc<super::model::Model>) -> Context {
        self.model = Some(model);
        self
    }

    /// The learned stage's model; `None` only if the embedded one does not load.
    pub(crate) fn model(&self) -> Option<&super::model::Model> {
        match &self.model {
            Some(model) => Some(model),
            None => super::model::embedded(),
        }
    }

    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.quiet.set(quiet);
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet.get()
    }
}

/// Runs every detector over `text` (its confusable fold, its reading view and each decoded view),
/// appending findings.
pub(crate) fn detect(text: &str, location: &str, ctx: &Context, findings: &mut Vec<Finding>) {
    if ctx.quiet.get() {
        return;
    }
    let lower = text.to_lowercase();
    let mut seen = Vec::new();
    for variant in views(&lower) {
        score(&variant, None, location, findings, &mut seen);
    }
    let folded = fold_confusables(&lower);
    let mut shadowing = other_server_mention(&folded, ctx).map(|phrase| (phrase, None));
    for (how, variant) in folded_views(text) {
        score(&variant, Some(how), location, findings, &mut seen);
        if shadowing.is_none() {
            shadowing = other_server_mention(&variant, ctx).map(|phrase| (phrase, Some(how)));
        }
    }
    if let Some((phrase, how)) = shadowing {
        findings.push(Finding::new(
            location,
            Kind::Shadowing,
            tagged(&phrase, how),
        ));
    }
    mixed_script(&lower, location, findings);
    base64_runs(text, location, findings);
}

/// One pass over all of a tool's text (lowercased, printable ASCII): could any detector fire?
/// False means the per-string detection can be skipped without missing anything.
pub(crate) fn suspicious(lower: &str, original: &str, ctx: &Context) -> bool {
    let Some(screen) = &compiled().screen else {
        return true;
    };
    let fires = |v: &str| screen.is_match(v) || exfiltration_line(v).is_some();
    views(lower).iter().any(|v| fires(v))
        || other_server_mention(lower, ctx).is_some()
        || has_base64_run(original)
        // Beyond what decoding reads, the per-string passes decide (each string is shorter).
        || original.len() > decode::MAX_INPUT_BYTES
        || folded_views(original)
            .any(|(_, variant)| fires(&variant) || other_server_mention(&variant, ctx).is_some())
}

/// Each decoded view of `text` as the detectors read it (lowercased, confusables folded), with
/// the decoding it came from.
fn folded_views(text: &str) -> impl Iterator<Item = (Decoding, String)> {
    decode::decoded_views(text)
        .into_iter()
        .map(|d| (d.how, fold_confusables(&d.text.to_lowercase())))
}

/// Runs the patterns and the exfiltration check over one view; `how` names the decoding the view
/// came from, if any, in the findings' detail.
fn score(
    variant: &str,
    how: Option<Decoding>,
    location: &str,
    findings: &mut Vec<Finding>,
    seen: &mut Vec<Kind>,
) {
    run_patterns(variant, how, location, findings, seen);
    if !seen.contains(&Kind::Exfiltration) {
        if let Some(line) = exfiltration_line(variant) {
            seen.push(Kind::Exfiltration);
            findings.push(Finding::new(
                location,
                Kind::Exfiltration,
                tagged(&line, how),
            ));
        }
    }
}

/// A finding's evidence, with the decoding that revealed it: `ignore all previous instructions
/// (decoded: rot13)`. The evidence is cut first, so that the decoding is always shown.
fn tagged(evidence: &str, how: Option<Decoding>) -> String {
    match how {
        None => evidence.to_owned(),
        Some(how) => {
            let cut: String = evidence.chars().take(200).collect();
            format!("{cut} (decoded: {})", how.as_str())
        }
    }
}

/// A line that sends something the model holds to a URL or an address.
fn exfiltration_line(text: &str) -> Option<String> {
    let compiled = compiled();
    let (Some(send), Some(data)) = (&compiled.send_to_target, &compiled.held_data) else {
        return None;
    };
    // Both patterns over the whole text first: neither is anchored and each line is a part of the
    // text cut at non-word bytes, so a line can match only where the text does. Most texts stop
    // here, after two searches instead of two per line.
    if !send.is_match(text) || !data.is_match(text) {
        return None;
    }
    text.split(['\n', ';'])
        .flat_map(|line| line.split(". "))
        .find(|line| send.is_match(line) && data.is_match(line))
        .map(|line| line.trim().chars().take(120).collect())
}

/// `other_server<separator>tool` in `lower`, found in one left-to-right pass over the words.
/// A server name inside a domain (`hooks.slack.com`, `slack.com`) is not a mention.
fn other_server_mention(lower: &str, ctx: &Context) -> Option<String> {
    if ctx.other_servers.is_empty() || ctx.separator.is_empty() {
        return None;
    }
    let sep = ctx.separator.as_str();
    let sep_is_name = sep
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    // Bytes, not chars: a name is ASCII, and a byte of a longer char only ends an empty word.
    let bytes = lower.as_bytes();
    let mut start = 0;
    for idx in 0..=bytes.len() {
        if bytes.get(idx).is_some_and(|&b| is_name(char::from(b))) {
            continue;
        }
        let word_start = start;
        start = idx + 1;
        if idx == word_start {
            continue;
        }
        let word = lower.get(word_start..idx).unwrap_or_default();
        let before = word_start.checked_sub(1).and_then(|at| bytes.get(at));
        if matches!(before, Some(b'.' | b'/' | b'@')) {
            continue;
        }
        // The cheap test first (is the separator there?), the server lookup only then: this
        // runs for every word of every text.
        let mention = if sep_is_name {
            // `server<sep>tool` inside the word: at every place the separator starts with a
            // tool after it, the part before looked up.
            word.contains(sep)
                && (1..word.len()).any(|i| {
                    word.is_char_boundary(i)
                        && word[i..].starts_with(sep)
                        && word.len() > i + sep.len()
                        && ctx.other_servers.contains(&word[..i])
                })
        } else {
            let after = lower.get(idx..).unwrap_or_default();
            after.strip_prefix(sep).is_some_and(|rest| {
                let tool = &rest[..rest.find(|c: char| !is_name(c)).unwrap_or(rest.len())];
                !tool.is_empty() && !is_tld(tool) && ctx.other_servers.contains(word)
            })
        };
        if mention {
            return Some(
                lower
                    .get(word_start..)
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect(),
            );
        }
    }
    None
}

fn is_tld(segment: &str) -> bool {
    matches!(
        segment,
        "com" | "org" | "net" | "io" | "dev" | "app" | "co" | "ai" | "cloud" | "so"
    )
}

fn run_patterns(
    text: &str,
    how: Option<Decoding>,
    location: &str,
    findings: &mut Vec<Finding>,
    seen: &mut Vec<Kind>,
) {
    let compiled = compiled();
    let Some(screen) = &compiled.screen else {
        if !seen.contains(&Kind::Override) {
            seen.push(Kind::Override);
            findings.push(Finding::new(
                location,
                Kind::Override,
                "detectors unavailable: held by default",
            ));
        }
        return;
    };
    for idx in screen.matches(text) {
        let (Some((kind, _)), Some(regex)) = (PATTERNS.get(idx), compiled.pattern(idx)) else {
            continue;
        };
        // Markup that loads from an address says all a mention of the element would.
        let said = *kind == Kind::MarkupMention && seen.contains(&Kind::ActiveMarkup);
        if seen.contains(kind) || said {
            continue;
        }
        if let Some(m) = regex.find(text) {
            seen.push(*kind);
            findings.push(Finding::new(
                location,
                *kind,
                tagged(m.as_str().trim(), how),
            ));
        }
    }
}

/// A word with ASCII letters and a non-ASCII look-alike of one (Cyrillic "і" in "іgnore"), or a
/// word mixing scripts where one is expected.
fn mixed_script(lower: &str, location: &str, findings: &mut Vec<Finding>) {
    if lower.is_ascii() {
        return;
    }
    // Words end at spaces and punctuation only: a combining mark does not split a word.
    for word in lower.split(|c: char| c.is_whitespace() || c.is_ascii_punctuation()) {
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
    // A token shorter than a run holds none: the address test only for the others.
    let tokens = text
        .split_whitespace()
        .filter(|t| t.len() >= BASE64_RUN && !t.contains("://"));
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
            if all_same {
                return true;
            }
            if !(has_upper && has_lower && has_digit) {
                return false;
            }
            // Paths and keys with slashes are base64-shaped; only text that decodes to prose is
            // an encoded message.
            !run.contains('/')
                || decode::decode_base64(run)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .is_some_and(|d| decode::mostly_printable(&d))
        })
}

fn has_base64_run(text: &str) -> bool {
    base64_candidates(text).next().is_some()
}

/// Flags a long base64 run, whatever it decodes to (what it decodes to is read as the base64
/// view, with every run of 16 characters or more).
fn base64_runs(text: &str, location: &str, findings: &mut Vec<Finding>) {
    if let Some(run) = base64_candidates(text).next() {
        let preview: String = run.chars().take(60).collect();
        findings.push(Finding::new(
            location,
            Kind::Base64,
            format!("{} chars: {preview}", run.len()),
        ));
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;

//! The learned stage: a linear model over hashed n-grams that scores the text of a definition
//! for instructions aimed at the model, after the cleaner and the detectors.
//!
//! Owns: the embedded model (`guard.model`, written by `cargo run --release --example
//! guard_train`), the score of a text (the highest of its one- and two-sentence windows), the
//! score of a definition (the highest of its texts), and the stage's verdict: a `model` finding
//! that holds at or above the hold threshold and is shown but does not hold at or above the flag
//! threshold; and the weak detector findings (phrases that benign tools also use: a path, "do not
//! notify the user", "before any other action") held only when the model agrees at least as far
//! as the flag threshold, and otherwise kept as flags.
//! Never: changes text, reads the network or the disk, or learns at run time: the same text
//! always gets the same score.

pub mod features;
mod texts;
pub mod weights;

use super::decode;
use super::detect::{self, Context};
use super::finding::{Finding, Kind, Severity};
use super::Limits;
use features::Name;
use std::borrow::Cow;
use std::sync::OnceLock;
pub use texts::model_texts;
pub use weights::{FormatError, Weights};

static EMBEDDED: &[u8] = include_bytes!("guard.model");

/// A trained model.
#[derive(Clone)]
pub struct Model {
    weights: Weights,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hold, flag) = self.thresholds();
        write!(f, "Model {{ hold: {hold}, flag: {flag} }}")
    }
}

/// The model built into the binary. Should its bytes not parse (a unit test parses them), every
/// text scores 1: the stage fails closed.
pub fn embedded() -> Option<&'static Model> {
    static MODEL: OnceLock<Option<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| Model::from_bytes(Cow::Borrowed(EMBEDDED)).ok())
        .as_ref()
}

/// One window of text and what it is made of.
#[derive(Clone, Debug, Default)]
pub struct Vector {
    /// The bucket of every text feature occurrence.
    pub text: Vec<usize>,
    /// The detector kinds that fired on the window.
    pub hits: Vec<Kind>,
    /// Its words.
    pub words: usize,
}

/// Fewest words in a window the model scores: a shorter one (a property name, an enum value)
/// has too few features for its score to mean anything, and is left to the detectors.
pub const MIN_WORDS: usize = 4;

/// The highest-scoring window of a text.
#[derive(Clone, Debug, PartialEq)]
pub struct TextScore {
    /// The probability the model gives the window of being written to steer a model.
    pub p: f32,
    /// The window.
    pub window: String,
}

impl Model {
    /// A model from its bytes.
    pub fn from_bytes(bytes: Cow<'static, [u8]>) -> Result<Model, FormatError> {
        Ok(Model {
            weights: Weights::parse(bytes)?,
        })
    }

    /// The thresholds the trainer chose: (hold, flag).
    pub fn thresholds(&self) -> (f32, f32) {
        (self.weights.hold, self.weights.flag)
    }

    /// The probability of one window.
    pub fn probability(&self, v: &Vector) -> f32 {
        let text: f32 = v.text.iter().map(|&b| self.weights.get(b)).sum();
        sigmoid(self.margin(text, v.text.len(), self.hit_sum(&v.hits)))
    }

    fn margin(&self, text_sum: f32, n: usize, hit_sum: f32) -> f32 {
        self.weights.bias + text_sum / (n.max(1) as f32).sqrt() + hit_sum
    }

    fn hit_sum(&self, hits: &[Kind]) -> f32 {
        hits.iter()
            .map(|&k| self.weights.get(features::detector_bucket(k)))
            .sum()
    }

    /// The sum of the weights of a sentence's text features, how many there were, and how many
    /// words.
    fn sentence_sum(&self, sentence: &str) -> (f32, usize, usize) {
        let mut sum = 0f32;
        let mut words = 0;
        let n = features::each_text_feature(&features::normalize(sentence), &mut |b, name| {
            sum += self.weights.get(b);
            words += name.words();
        });
        (sum, n, words)
    }

    /// The highest-scoring window of `text` (see [`windows`]), `hits` being the detector kinds
    /// that fired on the text. Same scores as [`windows`] and [`Model::probability`], without
    /// building a vector per window.
    pub fn score_text(&self, text: &str, hits: &[Kind]) -> TextScore {
        if features::fewer_words_than(text, MIN_WORDS) {
            // Names and enum values, mostly: nothing to score.
            return TextScore {
                p: 0.0,
                window: String::new(),
            };
        }
        let hit_sum = self.hit_sum(hits);
        let sentences = features::sentences(text);
        let sums: Vec<(f32, usize, usize)> =
            sentences.iter().map(|s| self.sentence_sum(s)).collect();
        let mut best = (f32::NEG_INFINITY, 0, 0);
        for (i, &(sum, n, words)) in sums.iter().enumerate() {
            let m = self.margin(sum, n, hit_sum);
            if words >= MIN_WORDS && m > best.0 {
                best = (m, i, i);
            }
        }
        for (i, pair) in sums.windows(2).enumerate() {
            let m = self.margin(pair[0].0 + pair[1].0, pair[0].1 + pair[1].1, hit_sum);
            if pair[0].2 + pair[1].2 >= MIN_WORDS && m > best.0 {
                best = (m, i, i + 1);
            }
        }
        if best.0 == f32::NEG_INFINITY {
            return TextScore {
                p: 0.0,
                window: String::new(),
            };
        }
        TextScore {
            p: sigmoid(best.0),
            window: sentences[best.1..=best.2].join(" "),
        }
    }

    /// What made a window score high: its largest positive contributions, largest first.
    pub fn explain(&self, window: &str, hits: &[Kind], top: usize) -> Vec<String> {
        let normalized = features::normalize(window);
        let mut named: Vec<(String, f32)> = Vec::new();
        let n = features::each_text_feature(&normalized, &mut |b, name| {
            named.push((name.to_string(), self.weights.get(b)));
        });
        let scale = 1.0 / (n.max(1) as f32).sqrt();
        named.iter_mut().for_each(|(_, w)| *w *= scale);
        for &kind in hits {
            let w = self.weights.get(features::detector_bucket(kind));
            named.push((Name::Detector(kind).to_string(), w));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        named.retain(|(_, w)| *w > 0.0);
        named.sort_by(|a, b| b.1.total_cmp(&a.1));
        named
            .into_iter()
            .take(top)
            .map(|(name, w)| format!("{name} +{w:.2}"))
            .collect()
    }
}

/// A window of a text: its text and its vector.
#[derive(Clone, Debug)]
pub struct Window {
    /// The sentences, joined by a space.
    pub text: String,
    /// Its features.
    pub vector: Vector,
}

/// The windows the model scores in a text: each sentence, then each two sentences in a row,
/// those of at least [`MIN_WORDS`] words; every window carries `hits`, the detector kinds that
/// fired on the whole text.
pub fn windows(text: &str, hits: &[Kind]) -> Vec<Window> {
    let sentences = features::sentences(text);
    let vectors: Vec<Vector> = sentences.iter().map(|s| vector(s, hits)).collect();
    let mut out: Vec<Window> = sentences
        .iter()
        .zip(&vectors)
        .map(|(s, v)| Window {
            text: (*s).to_owned(),
            vector: v.clone(),
        })
        .collect();
    for i in 1..sentences.len() {
        let mut v = vectors[i - 1].clone();
        v.text.extend_from_slice(&vectors[i].text);
        v.words += vectors[i].words;
        out.push(Window {
            text: format!("{} {}", sentences[i - 1], sentences[i]),
            vector: v,
        });
    }
    out.retain(|w| w.vector.words >= MIN_WORDS);
    out
}

/// The vector of one piece of text read as one window, with `hits`.
pub fn vector(text: &str, hits: &[Kind]) -> Vector {
    let normalized = features::normalize(text);
    let mut v = Vector::default();
    features::each_text_feature(&normalized, &mut |b, name| {
        v.text.push(b);
        v.words += name.words();
    });
    v.hits = hits.to_vec();
    v
}

/// The kinds of the holding detector findings on a text, as the sanitizer's own pass would find
/// them at the text's location (for the trainer, whose texts have no findings yet).
pub fn text_hits(text: &str, ctx: &Context) -> Vec<Kind> {
    let mut found = Vec::new();
    detect::detect(text, "", ctx, &mut found);
    hit_kinds(found.iter())
}

/// The distinct kinds of holding detector findings, in a stable order.
fn hit_kinds<'a>(findings: impl Iterator<Item = &'a Finding>) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = findings
        .filter(|f| f.kind.severity() >= Severity::Hold && f.stage() == "detector")
        // A weak phrase holds only when the model, reading the text, agrees: were the phrase
        // also a feature, the model would be agreeing with the phrase itself.
        .filter(|f| !is_weak(f.kind))
        .map(|f| f.kind)
        .collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    kinds
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Detector kinds that benign tools also trip (a path they work on, a `bcc` field, a password
/// they read, `rm -rf` they refuse): on their own they are evidence for the model, not a
/// verdict. Overrides, concealment from the user and coercion ("after reading this, call…") are
/// not among them: they hold whatever the model says.
pub fn is_weak(kind: Kind) -> bool {
    use Kind::*;
    matches!(
        kind,
        SensitivePath
            | Shadowing
            | RemoteExecution
            | CredentialHarvest
            | Exfiltration
            | PseudoTag
            | RolePlay
            | Base64
            | MixedScript
            | MarkupMention
    )
}

/// The score below which the model reads a text as benign.
const EVEN_ODDS: f32 = 0.5;

/// A finding's location is a value a schema or a definition carries rather than prose: a
/// `title`, `default`, `const`, an `examples` or `enum` item.
fn in_value_slot(location: &str) -> bool {
    let last = location.rsplit('.').next().unwrap_or(location);
    let last = last.split('[').next().unwrap_or(last);
    matches!(last, "title" | "default" | "const" | "examples" | "enum")
}

/// The learned stage over a definition's texts (location, text), with the findings the cleaner
/// and the detectors made: adds its finding and decides whether the weak detector findings hold.
pub(crate) fn judge<T: AsRef<str>>(
    texts: &[(String, T)],
    limits: &Limits,
    ctx: &Context,
    findings: &mut Vec<Finding>,
) {
    let model = ctx.model();
    let (hold, flag) = limits.guard_thresholds(model);
    let best = match model {
        Some(model) => best_text(model, texts, findings),
        // The embedded model did not load: fail closed.
        None => Some(Best {
            location: String::new(),
            p: 1.0,
            window: String::new(),
            hits: Vec::new(),
            decoded: None,
        }),
    };
    let Some(Best {
        location,
        p,
        window,
        hits,
        decoded,
    }) = best
    else {
        return;
    };
    let weak = findings.iter().any(|f| is_weak(f.kind));
    // Between the thresholds the model's score is shown only as evidence for a weak phrase it
    // upholds: on its own, a score there is too common in benign tools to be worth a reviewer's
    // time.
    if p >= hold || (p >= flag && weak) {
        let top = model.map_or_else(Vec::new, |m| m.explain(&window, &hits, 4));
        let shown: String = window.chars().take(60).collect();
        let how = decoded.map_or(String::new(), |d| format!(" (decoded: {d})"));
        let detail = format!("score {p:.2} on {shown:?}{how}; top: {}", top.join(", "));
        let finding = Finding::new(&location, Kind::Model, detail);
        findings.push(if p >= hold {
            finding
        } else {
            finding.flagged()
        });
        return;
    }
    if p >= flag {
        return;
    }
    // Below the flag threshold the model reads the definition as benign: weak phrases alone are
    // shown to a reviewer, not held.
    for f in findings.iter_mut() {
        // A title, default, example or enum value has no business instructing anyone: there a
        // weak phrase holds unless the model reads the definition as benign (below even odds).
        let in_value = in_value_slot(&f.location) && p >= EVEN_ODDS;
        if is_weak(f.kind) && f.severity() == Severity::Hold && !from_decoded_view(f) && !in_value {
            f.flagged = true;
        }
    }
}

/// A finding the detectors made in a decoded view (its detail ends `(decoded: how)`): a benign
/// tool has no reason to encode a path or a credential word, so such a finding is never weak.
fn from_decoded_view(f: &Finding) -> bool {
    f.detail.ends_with(')') && f.detail.contains("(decoded: ")
}

/// The highest-scoring text of a definition.
#[derive(Clone, Debug)]
pub struct Best {
    /// Where the text is.
    pub location: String,
    /// Its score.
    pub p: f32,
    /// The window that scored it.
    pub window: String,
    /// The text's detector kinds.
    pub hits: Vec<Kind>,
    /// The decoding whose view scored highest (`rot13`, `base64`…), if not the text as written.
    pub decoded: Option<&'static str>,
}

/// The text with the highest score, each text read as written and in each of its decoded views
/// (see `decode/`); `findings` are the cleaner's and the detectors' on the same definition
/// (flagged or not).
pub fn best_text<T: AsRef<str>>(
    model: &Model,
    texts: &[(String, T)],
    findings: &[Finding],
) -> Option<Best> {
    let mut best: Option<Best> = None;
    for (location, text) in texts {
        let text = text.as_ref();
        let hits = hit_kinds(findings.iter().filter(|f| &f.location == location));
        let mut consider = |s: TextScore, decoded: Option<&'static str>| {
            if best.as_ref().is_none_or(|b| s.p > b.p) {
                best = Some(Best {
                    location: location.clone(),
                    p: s.p,
                    window: s.window,
                    hits: hits.clone(),
                    decoded,
                });
            }
        };
        consider(model.score_text(text, &hits), None);
        for view in decode::decoded_views(text) {
            consider(model.score_text(&view.text, &hits), Some(view.how.as_str()));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_loads() {
        let model = embedded().expect("guard.model parses");
        let (hold, flag) = model.thresholds();
        assert!(flag <= hold && hold < 1.0 && flag > 0.0);
    }

    #[test]
    fn windows_are_sentences_and_pairs() {
        let w = windows("One two. Three four five six. Seven.", &[]);
        let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Three four five six.",
                "One two. Three four five six.",
                "Three four five six. Seven."
            ]
        );
    }
}

//! The screen: every detector pattern in two sets, so that one pass of each says which patterns
//! could fire on a text; each of those is then run alone to find its phrase.
//!
//! Owns: which set a pattern goes in, its gaps widened for screening, and the sets' engine
//! settings.
//! Never: decides a finding (each pattern alone does, in `detect.rs`) or lets a text through that
//! a pattern matches: a set matches wherever one of its patterns does.
//!
//! Why two sets and not one: a set's lazy DFA holds, in each state, the partial matches of all
//! its patterns at once, so its states are their products. The patterns with a gap that runs to
//! the end of a sentence or a line (`[^.\n]*` after "read", "send", "never tell", "before
//! using"…) stay open over most of a long description, and on the real servers' tools of the
//! guard corpus one set of every pattern needed about 9.5 MB of states: over the 2 MB cache
//! the regex crate gives a set, it was rebuilt again and again (building states took more of a
//! `perf` profile than the searches themselves). Split this way the sets need about 2.3 and 1.8 MB; each gets a
//! 4 MB cache, and a pass of both over those texts took 52–57 ms where the one set took
//! 665–733 ms (a probe, 2026-12-08).

use regex::Regex;
use regex_automata::meta::{self, Regex as Set};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::{Input, MatchKind, PatternSet};
use std::sync::OnceLock;

/// The lazy DFA cache of each set, per search running at once (the merger and the judge threads).
/// A set keeps each cache it made in its pool, for the next search.
const CACHE_BYTES: usize = 4 << 20;

/// The patterns, in two sets, each with the index in the pattern list of each of its members.
pub(super) struct Screen {
    sets: Vec<(Set, Vec<usize>)>,
}

impl Screen {
    /// The screen of `patterns`; `None` if a set does not compile, and detection then fails
    /// closed.
    pub(super) fn new(patterns: &[String]) -> Option<Screen> {
        Screen::with_cache(patterns, CACHE_BYTES)
    }

    /// The same with `cache_bytes` of lazy DFA cache per set (a test gives it too little, so that
    /// the sets fall back to their NFA).
    fn with_cache(patterns: &[String], cache_bytes: usize) -> Option<Screen> {
        let widened: Vec<String> = patterns.iter().map(|p| widened_gaps(p)).collect();
        let (long, short): (Vec<usize>, Vec<usize>) =
            (0..widened.len()).partition(|&i| widened.get(i).is_some_and(|p| open_to_the_end(p)));
        let sets = [short, long]
            .into_iter()
            .filter(|members| !members.is_empty())
            .map(|members| {
                let sources: Vec<&str> = members
                    .iter()
                    .filter_map(|&i| widened.get(i).map(String::as_str))
                    .collect();
                Some((build(&sources, cache_bytes)?, members))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Screen { sets })
    }

    /// Whether any pattern could fire on `text`.
    pub(super) fn is_match(&self, text: &str) -> bool {
        self.sets.iter().any(|(set, _)| set.is_match(text))
    }

    /// The index of every pattern that could fire on `text`, in the list's order.
    pub(super) fn matches(&self, text: &str) -> Vec<usize> {
        let mut found = Vec::new();
        for (set, members) in &self.sets {
            let mut fired = PatternSet::new(set.pattern_len());
            set.which_overlapping_matches(&Input::new(text), &mut fired);
            found.extend(fired.iter().filter_map(|id| members.get(id.as_usize())));
        }
        found.sort_unstable();
        found
    }

    /// How many patterns it screens for, in each set.
    #[cfg(test)]
    pub(super) fn sizes(&self) -> Vec<usize> {
        self.sets.iter().map(|(_, m)| m.len()).collect()
    }

    /// Whether pattern `idx` is in the second set (that of gaps open to the end).
    #[cfg(test)]
    pub(super) fn in_the_second_set(&self, idx: usize) -> bool {
        self.sets.get(1).is_some_and(|(_, m)| m.contains(&idx))
    }

    /// The same screen with a lazy DFA cache too small to be used: every search runs on the
    /// sets' NFA.
    #[cfg(test)]
    pub(super) fn without_dfa(patterns: &[String]) -> Option<Screen> {
        Screen::with_cache(patterns, 0)
    }
}

/// One set as `regex::RegexSet` builds one (every match reported, for `matches`; no capture
/// groups, which a set never reports and whose slots would make its NFA fallback's cache far
/// larger), with a cache of `cache_bytes` and no literal prefilter: the screen reads every text
/// whole, and the words the patterns start with ("the", "any", "read", "send", `<`) are
/// everywhere; a prefilter stopped at each and made a pass two to three times slower.
fn build(sources: &[&str], cache_bytes: usize) -> Option<Set> {
    let config = meta::Config::new()
        .match_kind(MatchKind::All)
        .which_captures(WhichCaptures::None)
        .auto_prefilter(false)
        .hybrid_cache_capacity(cache_bytes);
    Set::builder().configure(config).build_many(sources).ok()
}

/// A gap that runs to the end of a sentence or a line.
fn open_to_the_end(widened: &str) -> bool {
    widened.contains(r"[^.\n]*") || widened.contains(r"[^\n]*")
}

/// The pattern with each bounded gap of a negated class (`[^.\n]{0,40}?`) unbounded
/// (`[^.\n]*`), for the screen: it matches wherever the pattern does (and a little more), and
/// each pattern alone then decides what is found. A gap counted to 40 is 40 states of every
/// pattern that has one, and a set's lazy DFA holds their products.
pub(super) fn widened_gaps(pattern: &str) -> String {
    static GAP: OnceLock<Option<Regex>> = OnceLock::new();
    let gap = GAP.get_or_init(|| Regex::new(r"(\[\^(?:\\.|[^\]\\])*\])\{0,[0-9]+\}\??").ok());
    match gap {
        Some(gap) => gap.replace_all(pattern, "${1}*").into_owned(),
        None => pattern.to_owned(),
    }
}

//! What the example server's prompts and resources show at one moment, and hidden text.
//!
//! Owns: `Catalog` (the flags and the state that change the prompts and resources: `--poison`,
//! the rug pull, `toggle_surface`, the counter, `--big-resource`), which `prompts.rs`,
//! `resources.rs` and `completion.rs` read, and `hidden_tags`, the invisible text of the hostile
//! prompts and resources.
//! Never: changes; `surface.rs` builds a new `Catalog` for each request.

/// What the prompts and resources show now.
pub(super) struct Catalog {
    /// `--poison`: the hostile prompts and resources are offered.
    pub(super) poison: bool,
    /// `rug_pull` was called: `clean_prompt` is poisoned.
    pub(super) pulled: bool,
    /// `toggle_surface` has the prompt `surprise` and the resource `example://surprise` on.
    pub(super) surprise: bool,
    /// `example://counter`'s value.
    pub(super) counter: u64,
    /// `--big-resource`: the size of `example://big`.
    pub(super) big_resource: Option<usize>,
}

/// `text` written in Unicode tag characters (U+E0000 plus each ASCII character): invisible to
/// a person, read by a model.
pub(super) fn hidden_tags(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii)
        .filter_map(|c| char::from_u32(0xE0000 + u32::from(c)))
        .collect()
}

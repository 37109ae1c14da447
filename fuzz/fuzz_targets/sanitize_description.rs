//! Fuzz target: the description sanitizer.
//! Properties: never panics; idempotent; no forbidden code point survives; the cap holds.
#![no_main]

use aegis_gate::sanitize::{self, Context, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits { description_chars: 256, ..Limits::default() };
    let ctx = Context::new(["other"], ".");
    let (once, _) = sanitize::description(text, &limits, &ctx);
    assert!(once.chars().count() <= limits.description_chars);
    assert!(!once.chars().any(sanitize::is_forbidden), "{once:?}");
    let (twice, _) = sanitize::description(&once, &limits, &ctx);
    assert_eq!(once, twice, "not idempotent");
});

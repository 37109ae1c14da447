//! glibc's malloc tuned for a long-running gate (the arena cap, a fixed mmap threshold) and its
//! free pages handed back after a burst; on musl, nothing to do.
//!
//! Owns: the settings the gate gives malloc, and when a user's own (`MALLOC_*`, `GLIBC_TUNABLES`)
//! wins. Never: sets anything after the gate's threads have started (the caller's part).
#![allow(unsafe_code)] // Reason: mallopt and malloc_trim, which std does not offer.

/// Tunes glibc's malloc for a long-running gate, each setting unless its `MALLOC_*` variable
/// or its `GLIBC_TUNABLES` entry says otherwise. Called before the gate starts its threads. musl has one heap and no such
/// settings: nothing to do there.
///
/// - Arenas: two per core. glibc gives threads up to eight arenas per core, each keeping the
///   memory its threads freed; a gate runs a thread per connection, so each arena held on to
///   megabytes that no other thread could reuse.
/// - The mmap threshold: fixed at 128 KiB. glibc raises it to the size of every large block
///   freed (up to 32 MiB), so after the first `state.json` of a few megabytes was written, the
///   next ones were built inside the heap, and the heap kept their pages between live
///   allocations. Fixed, a block of 128 KiB or more is always mapped on its own and handed back
///   whole when freed (`benches/mem.py serve-100`: 31 – 44 MiB without, 31 – 34 MiB with).
pub(crate) fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // A setting given as a tunable (`GLIBC_TUNABLES=glibc.malloc.arena_max=…`) is the
        // user's too.
        let tuned =
            |name: &str| std::env::var("GLIBC_TUNABLES").is_ok_and(|t| names_tunable(&t, name));
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() && !tuned("arena_max") {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt takes two integers; M_ARENA_MAX only caps arenas created later.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() && !tuned("mmap_threshold") {
            // SAFETY: mallopt takes two integers; setting the threshold also stops glibc from
            // moving it (and the trim threshold) by itself.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        }
    }
}

/// Blocks at least this large are mapped on their own (glibc's own starting value, kept).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Whether `tunables` (a `GLIBC_TUNABLES` value: `name=value` entries separated by `:`) sets
/// `glibc.malloc.<name>`: the whole name, not a part of another.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn names_tunable(tunables: &str, name: &str) -> bool {
    tunables.split(':').any(|entry| {
        let key = entry.split_once('=').map_or(entry, |(key, _)| key);
        key.strip_prefix("glibc.malloc.") == Some(name)
    })
}

/// Hands the pages that glibc's malloc holds free back to the system (`malloc_trim`): after a
/// burst (every server's tools judged at once) the freed memory would otherwise stay resident,
/// between live allocations where the heap cannot shrink. musl returns memory by itself.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only walks malloc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
#[path = "malloc_tests.rs"]
mod tests;

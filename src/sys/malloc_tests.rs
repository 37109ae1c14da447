//! Tests of the malloc settings: which `GLIBC_TUNABLES` entries count as the user's own.

use super::names_tunable;

#[test]
fn a_tunable_is_named_whole_and_only_as_a_malloc_tunable() {
    assert!(names_tunable("glibc.malloc.arena_max=2", "arena_max"));
    assert!(names_tunable(
        "glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=65536",
        "mmap_threshold"
    ));
    // A name that only begins or ends like it, or sits in a value, is another tunable.
    assert!(!names_tunable("glibc.malloc.arena_max_x=2", "arena_max"));
    assert!(!names_tunable("glibc.malloc.arena_test=2", "arena_max"));
    assert!(!names_tunable(
        "glibc.elision.enable=glibc.malloc.arena_max",
        "arena_max"
    ));
    assert!(!names_tunable("x.glibc.malloc.arena_max=2", "arena_max"));
    assert!(!names_tunable("", "arena_max"));
}

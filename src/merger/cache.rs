//! The cache of merged views: an LRU of [`CACHE_ENTRIES`] views keyed by [`ViewKey`], each stamped
//! when built and stale once older than the settings' `cache_ttl`, plus the hit and miss counters
//! the metrics read.
//!
//! Owns: the LRU, the timestamps, the freshness rule and [`CacheStats`].
//! Never: builds a view or asks a child for its list (a lookup only says that an entry expired;
//! the merger's state builds and refreshes); never reads the clock (callers pass `now`); never
//! blocks a reader of the counters (they are relaxed atomics shared with `MergerHandle`).

use super::request::ViewKey;
use super::view::MergedView;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Merged views kept in the cache.
const CACHE_ENTRIES: usize = 64;

/// Cache hits and misses of merged views (for the metrics).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// `tools/list` answered from a cached view.
    pub hits: std::sync::atomic::AtomicU64,
    /// `tools/list` that built the view (absent or expired).
    pub misses: std::sync::atomic::AtomicU64,
}

struct CachedView {
    built_at: Instant,
    view: Arc<MergedView>,
}

/// What a lookup found; every lookup counts as exactly one hit or one miss.
pub(super) enum Lookup {
    /// A view built less than the TTL ago (a hit).
    Fresh(Arc<MergedView>),
    /// A view older than the TTL (a miss): the children's lists may be stale too.
    Expired,
    /// No view for the key (a miss).
    Absent,
}

/// The LRU of merged views with their build times.
pub(super) struct ViewCache {
    entries: LruCache<ViewKey, CachedView>,
    ttl: Duration,
    stats: Arc<CacheStats>,
}

impl ViewCache {
    /// An empty cache whose entries live `ttl`, counting into `stats`.
    pub(super) fn new(ttl: Duration, stats: Arc<CacheStats>) -> ViewCache {
        let capacity = NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        ViewCache {
            entries: LruCache::new(capacity),
            ttl,
            stats,
        }
    }

    /// The view of `key` if it is fresh at `now`. A lookup marks the entry as recently used even
    /// when it expired (current behaviour: the caller replaces it right away).
    pub(super) fn lookup(&mut self, key: &ViewKey, now: Instant) -> Lookup {
        let fresh = self
            .entries
            .get(key)
            .filter(|c| now.duration_since(c.built_at) < self.ttl)
            .map(|c| Arc::clone(&c.view));
        if let Some(view) = fresh {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(view);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        if self.entries.contains(key) {
            Lookup::Expired
        } else {
            Lookup::Absent
        }
    }

    /// Keeps `view` for `key`, built at `built_at` (evicting the least recently used when full).
    pub(super) fn insert(&mut self, key: ViewKey, view: Arc<MergedView>, built_at: Instant) {
        self.entries.put(key, CachedView { built_at, view });
    }

    /// Forgets every view (the merged view changed).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

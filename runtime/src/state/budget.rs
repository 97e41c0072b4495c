//! The memory budget shared by every operator cache, and cache counters.
//!
//! One process-wide budget in bytes (`--state-cache-size`). Every cache adds
//! the bytes of what it holds to [`used`] and evicts its least recently used
//! entries (by a global clock, so "least recently" compares across
//! operators) while the total is over the budget. Evicted state stays in
//! RocksDB and is read back when touched again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static CAPACITY: AtomicUsize = AtomicUsize::new(1 << 30);
static USED: AtomicUsize = AtomicUsize::new(0);
static CLOCK: AtomicU64 = AtomicU64::new(1);
/// The bytes an epoch's writes may reach before the engine ends the epoch
/// early (without waiting for the next checkpoint tick), so the memory of
/// the write set, and of its commit, stays bounded however fast rows
/// arrive. 8 MiB: small epochs commit on the committer thread while the
/// engine works on the next one (the benchmarks in `docs/benchmarks.md` ran
/// best between 4 and 16 MiB), and every epoch fits the smallest memtable.
pub const EPOCH_WRITE_LIMIT: usize = 8 << 20;

/// Sets the budget for all operator caches, in bytes.
pub fn set_cache_budget(bytes: usize) {
    CAPACITY.store(bytes, Ordering::Relaxed);
}

/// The budget in bytes.
pub fn capacity() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}

/// Bytes held by all caches now.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}

/// Whether the caches hold more than the budget.
pub fn over() -> bool {
    used() > capacity()
}

pub(crate) fn charge(bytes: usize) {
    USED.fetch_add(bytes, Ordering::Relaxed);
}

pub(crate) fn release(bytes: usize) {
    // Saturating: a release never exceeds what was charged, but be safe.
    let _ = USED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
        Some(u.saturating_sub(bytes))
    });
}

/// A new, larger stamp for a cache entry's last use.
pub(crate) fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::Relaxed)
}

/// Hits and misses of one state table's cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl CacheStats {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

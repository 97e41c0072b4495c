//! Per-reader counters and the last skipped records, readable through SQL.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::ReaderKey;

/// How many skipped records each reader remembers.
const KEEP_ERRORS: usize = 100;

/// One record a reader skipped.
#[derive(Debug, Clone)]
pub struct SourceErrorRecord {
    /// Partition (Kafka) or split; -1 when not applicable.
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub at: SystemTime,
}

/// Counters of one reader.
#[derive(Debug)]
pub struct SourceStats {
    pub source: String,
    /// The views (or the table) the reader feeds: a source's shared reader
    /// feeds every view that reads it.
    owners: Mutex<Vec<String>>,
    /// Rows handed to the engine.
    pub rows: AtomicU64,
    pub skipped: AtomicU64,
    /// A bounded reader (a generator with an end, a file source without
    /// monitoring) has handed the engine its last row.
    pub finished: AtomicBool,
    errors: Mutex<VecDeque<SourceErrorRecord>>,
    last_log: Mutex<Option<Instant>>,
}

impl SourceStats {
    pub fn new(source: &str, owner: &str) -> SourceStats {
        SourceStats {
            source: source.to_string(),
            owners: Mutex::new(if owner.is_empty() {
                Vec::new()
            } else {
                vec![owner.to_string()]
            }),
            rows: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            errors: Mutex::new(VecDeque::new()),
            last_log: Mutex::new(None),
        }
    }

    /// Records a skipped record; logs at most one line per 5 seconds.
    pub fn skip(&self, partition: i32, offset: i64, reason: String) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if let Ok(mut last) = self.last_log.lock() {
            if last.is_none_or(|t| now.duration_since(t) > Duration::from_secs(5)) {
                *last = Some(now);
                tracing::warn!(
                    source = %self.source,
                    partition,
                    offset,
                    skipped = self.skipped.load(Ordering::Relaxed),
                    "skipped a record: {reason}"
                );
            }
        }
        if let Ok(mut e) = self.errors.lock() {
            if e.len() == KEEP_ERRORS {
                e.pop_front();
            }
            e.push_back(SourceErrorRecord {
                partition,
                offset,
                reason,
                at: SystemTime::now(),
            });
        }
    }

    /// The views (or the table) the reader feeds, in name order.
    pub fn owners(&self) -> Vec<String> {
        let mut o = self.owners.lock().map(|o| o.clone()).unwrap_or_default();
        o.sort();
        o
    }

    pub fn add_owner(&self, owner: &str) {
        if let Ok(mut o) = self.owners.lock() {
            if !o.iter().any(|x| x == owner) {
                o.push(owner.to_string());
            }
        }
    }

    pub fn remove_owner(&self, owner: &str) {
        if let Ok(mut o) = self.owners.lock() {
            o.retain(|x| x != owner);
        }
    }

    pub fn errors(&self) -> Vec<SourceErrorRecord> {
        self.errors
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Every live reader's stats.
#[derive(Debug, Clone, Default)]
pub struct StatsRegistry(Arc<Mutex<BTreeMap<ReaderKey, Arc<SourceStats>>>>);

impl StatsRegistry {
    pub fn insert(&self, key: ReaderKey, stats: Arc<SourceStats>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, stats);
        }
    }

    pub fn remove_owner(&self, owner: freshet_storage::TableId) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| k.owner != owner);
        }
    }

    pub fn all(&self) -> Vec<(ReaderKey, Arc<SourceStats>)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }
}

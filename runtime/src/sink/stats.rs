//! Per-sink counters (records, bytes, delivered epoch, errors), readable
//! through `SHOW SINKS`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use freshet_storage::TableId;

/// Counters of one sink, shared by its operator and delivery thread.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub name: String,
    /// Records and bytes the target acknowledged.
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// The last epoch the target committed (0: none yet).
    pub delivered_epoch: AtomicU64,
    /// The last epoch written to the sink's log (committed with it).
    pub logged_epoch: AtomicU64,
    /// Failed delivery attempts (each is retried).
    pub errors: AtomicU64,
    /// Deletes a PLAIN sink dropped (`force_append_only`).
    pub dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SinkStats {
    pub fn new(name: &str) -> Self {
        SinkStats {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn error(&self, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e.to_string());
        }
    }

    /// The last delivery error, cleared by a successful delivery.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }

    pub fn clear_error(&self) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = None;
        }
    }

    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Every running sink's counters, by sink id.
#[derive(Debug, Clone, Default)]
pub struct SinkStatsRegistry(Arc<Mutex<BTreeMap<TableId, Arc<SinkStats>>>>);

impl SinkStatsRegistry {
    pub fn get(&self, id: TableId, name: &str) -> Arc<SinkStats> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id)
            .or_insert_with(|| Arc::new(SinkStats::new(name)))
            .clone()
    }

    pub fn remove(&self, id: TableId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    pub fn all(&self) -> Vec<(TableId, Arc<SinkStats>)> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

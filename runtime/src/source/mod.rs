//! Source connectors: what a `CREATE SOURCE` / connector table reads from
//! (Kafka, files, datagen, nexmark), how records become Arrow rows, and the reader
//! threads that feed the engine.
//!
//! # Exactly once
//!
//! A reader owns a *split state*: for Kafka the next offset of each
//! partition, for the generators the number of rows produced. Every chunk a
//! reader sends carries the split state *after* that chunk, and the state
//! commits in the same RocksDB write as the chunk's effects (a source's
//! shared reader: through its hub, [`crate::dataflow::SourceHub`]). On
//! restart a reader starts from the committed state, so nothing is lost and
//! nothing is read twice. A catch-up reader ([`ReaderCtx::until`]) reads a
//! bounded stretch and ends.
//!
//! Readers are threads that block on bounded channels (the fragments' of
//! the views they feed, or the engine's): a slow view slows the readers and
//! nothing buffers without bound.

pub mod datagen;
pub mod decode;
pub mod file;
pub mod kafka;
pub mod nexmark;
pub(crate) mod options;
mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::state::layout;
use datafusion::arrow::array::RecordBatch;
use freshet_storage::TableId;

pub use options::{
    Connector, DatagenOptions, Encode, FileOptions, Format, KafkaOptions, NexmarkOptions,
    NexmarkTable, Options, SourceSpec, StartupMode,
};
pub use stats::{SourceErrorRecord, SourceStats, StatsRegistry};

/// Errors of source definitions and connectors.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A bad or missing option value (SQLSTATE 22023).
    #[error("{0}")]
    Option(String),
    /// A connector, format or combination Freshet does not support (0A000).
    #[error("{0}")]
    Unsupported(String),
    /// The external system cannot be reached (08001).
    #[error("{0}")]
    Connect(String),
    /// The named topic (or similar object) does not exist (42704).
    #[error("{0}")]
    Missing(String),
    /// A file or directory cannot be found or read (58P01).
    #[error("{0}")]
    File(String),
}

/// Split state: split name (`p0`, `offset`, ...) -> position.
pub type SplitState = BTreeMap<String, i64>;

/// Identifies one reader: the view (or connector table) that owns it and
/// the scan slot within that view's plan (0 for a table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReaderKey {
    pub owner: TableId,
    pub slot: u32,
}

impl ReaderKey {
    /// Meta key prefix under which this reader's split state is stored.
    pub fn state_prefix(&self) -> Vec<u8> {
        layout::reader_positions(self.owner, self.slot)
    }

    /// Meta key prefix of every reader of `owner`.
    pub fn owner_prefix(owner: TableId) -> Vec<u8> {
        layout::reader_positions_of(owner)
    }

    pub fn state_key(&self, split: &str) -> Vec<u8> {
        layout::split(self.state_prefix(), split)
    }

    /// Meta key prefix of a catch-up reader's end positions (see
    /// [`ReaderCtx::until`]).
    pub fn until_prefix(&self) -> Vec<u8> {
        layout::catch_up_ends(self.owner, self.slot)
    }

    /// Meta key prefix of the end positions of every catch-up reader of `owner`.
    pub fn owner_until_prefix(owner: TableId) -> Vec<u8> {
        layout::catch_up_ends_of(owner)
    }

    pub fn until_key(&self, split: &str) -> Vec<u8> {
        layout::split(self.until_prefix(), split)
    }
}

/// Where a view's catch-up reader starts: the view's own start positions,
/// with the settings a generator keeps in its state (Nexmark's base time)
/// taken from the shared reader, so both produce the same rows.
pub fn catch_up_from(spec: &SourceSpec, own: &SplitState, shared: &SplitState) -> SplitState {
    let mut from = own.clone();
    if let Connector::Nexmark(_) = spec.connector {
        if let Some(t) = shared.get(nexmark::BASE_TIME) {
            from.insert(nexmark::BASE_TIME.to_string(), *t);
        }
    }
    from
}

/// Whether a reader starting at `from` has anything to read before
/// `until` (a split missing from `from` starts at its beginning).
pub fn behind(spec: &SourceSpec, from: &SplitState, until: &SplitState) -> bool {
    until.iter().any(|(split, &end)| {
        let setting =
            matches!(spec.connector, Connector::Nexmark(_)) && split == nexmark::BASE_TIME;
        !setting && from.get(split).copied().unwrap_or(0) < end
    })
}

/// What to do with one decoded row of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// Insert (append-only sources) or insert-or-replace by primary key.
    Upsert,
    /// Delete by primary key; only the key columns are meaningful.
    Delete,
}

/// Rows decoded from a run of records, in the source's column order.
#[derive(Debug)]
pub struct SourceChunk {
    pub rows: RecordBatch,
    /// Per-row operations; `None` means every row is an `Upsert`.
    pub ops: Option<Vec<RowOp>>,
}

/// One message from a reader to the engine.
#[derive(Debug)]
pub struct Ingest {
    pub key: ReaderKey,
    pub chunk: Option<SourceChunk>,
    /// Split positions after this chunk.
    pub state: Vec<(String, i64)>,
    /// The reader's watermark after this chunk (sources with `WATERMARK FOR`).
    pub watermark: Option<datafusion::common::ScalarValue>,
    /// A catch-up reader has read everything before its end positions:
    /// this is its last message.
    pub done: bool,
}

/// A reader's watermark from its splits' event times: each split's largest
/// event time minus the delay, combined as the minimum over the splits that
/// are not idle. A split is idle once it has been read to its end and has
/// had no record for `idle`; it counts again as soon as it has records. A
/// split that still has unread records never turns idle, however slow its
/// first fetch, so a slow start cannot make its records late.
#[derive(Debug)]
pub struct SplitWatermarks {
    def: Option<crate::time::WatermarkDef>,
    idle: std::time::Duration,
    started: std::time::Instant,
    splits: BTreeMap<String, SplitMark>,
    sent: Option<datafusion::common::ScalarValue>,
}

/// One split's part of a [`SplitWatermarks`].
#[derive(Debug, Default)]
struct SplitMark {
    /// The split's largest event time minus the delay.
    wm: Option<datafusion::common::ScalarValue>,
    /// When it last had a record.
    last: Option<std::time::Instant>,
    /// Read to its end since its last record.
    at_end: bool,
}

impl SplitWatermarks {
    pub fn new(spec: &SourceSpec) -> Self {
        SplitWatermarks {
            def: spec.watermark,
            idle: spec.idle_timeout,
            started: std::time::Instant::now(),
            splits: BTreeMap::new(),
            sent: None,
        }
    }

    /// Declares a split (an assigned partition) that has had no record yet.
    pub fn add_split(&mut self, split: &str) {
        self.splits.entry(split.to_string()).or_default();
    }

    /// Takes note of `rows` read from `split`.
    pub fn observe(&mut self, split: &str, rows: Option<&RecordBatch>) {
        let Some(def) = self.def else {
            return;
        };
        let e = self.splits.entry(split.to_string()).or_default();
        e.last = Some(std::time::Instant::now());
        e.at_end = false;
        if let Some(rows) = rows {
            if let Ok(Some(v)) = crate::time::watermark_of(&def, rows.column(def.col)) {
                crate::time::advance(&mut e.wm, v);
            }
        }
    }

    /// Takes note that `split` has been read to its end: from now on it
    /// turns idle when it stays without records for the idle timeout.
    pub fn reached_end(&mut self, split: &str) {
        if let Some(e) = self.splits.get_mut(split) {
            e.at_end = true;
        }
    }

    /// The combined watermark, if it moved since the last call that
    /// returned one.
    pub fn poll(&mut self) -> Option<datafusion::common::ScalarValue> {
        self.def?;
        let now = std::time::Instant::now();
        let mut min: Option<datafusion::common::ScalarValue> = None;
        for s in self.splits.values() {
            let quiet = now.duration_since(s.last.unwrap_or(self.started)) >= self.idle;
            if s.at_end && quiet {
                continue;
            }
            let wm = s.wm.as_ref()?; // an active split without a watermark holds it back
            if min
                .as_ref()
                .is_none_or(|m| wm.partial_cmp(m) == Some(std::cmp::Ordering::Less))
            {
                min = Some(wm.clone());
            }
        }
        let min = min?;
        crate::time::advance(&mut self.sent, min.clone()).then_some(min)
    }

    /// Whether the source declares a watermark.
    pub fn has_watermark(&self) -> bool {
        self.def.is_some()
    }
}

/// Sends a quiet reader's watermark when it moved without records (its
/// splits turned idle); `false` once the engine is gone.
pub(crate) fn send_idle_watermark(ctx: &ReaderCtx, wms: &mut SplitWatermarks) -> bool {
    let Some(wm) = wms.poll() else {
        return true;
    };
    ctx.sink.send(Ingest {
        key: ctx.key,
        chunk: None,
        state: Vec::new(),
        watermark: Some(wm),
        done: false,
    })
}

/// Where a reader sends its chunks; `send` blocks while the engine is busy
/// and returns `false` once the engine is gone.
pub trait IngestSink: Send + 'static {
    fn send(&self, msg: Ingest) -> bool;
}

/// Stop flag shared by a reader and the engine.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a reader thread needs.
pub struct ReaderCtx {
    pub key: ReaderKey,
    pub spec: Arc<SourceSpec>,
    pub state: SplitState,
    pub sink: Box<dyn IngestSink>,
    pub stop: StopFlag,
    pub stats: Arc<SourceStats>,
    /// A catch-up reader's end: it reads each split listed here up to its
    /// position (and no split that is not listed), then reports `done` and
    /// ends. `None` for a reader that runs on.
    pub until: Option<SplitState>,
}

impl ReaderCtx {
    /// A catch-up reader's last message: it has read up to its end.
    pub(crate) fn finish_catch_up(&self) {
        self.stats.finished.store(true, Ordering::SeqCst);
        self.sink.send(Ingest {
            key: self.key,
            chunk: None,
            state: Vec::new(),
            watermark: None,
            done: true,
        });
    }

    /// A catch-up reader's end position of `split` (`None`: no bound; a
    /// catch-up reader does not read a split without one, `Some(0)`).
    pub(crate) fn end_of(&self, split: &str) -> Option<i64> {
        self.until
            .as_ref()
            .map(|u| u.get(split).copied().unwrap_or(0))
    }
}

/// Starts the reader thread for `ctx.spec`'s connector.
pub fn spawn_reader(ctx: ReaderCtx) -> std::io::Result<()> {
    let name = format!("src-{}-{}", ctx.key.owner.0, ctx.key.slot);
    std::thread::Builder::new().name(name).spawn(move || {
        let spec = ctx.spec.clone();
        let r = match &spec.connector {
            Connector::Kafka(k) => kafka::run(ctx, k),
            Connector::File(f) => file::run(ctx, f),
            Connector::Datagen(d) => datagen::run(ctx, d),
            Connector::Nexmark(n) => nexmark::run(ctx, n),
        };
        if let Err(e) = r {
            tracing::error!(source = %spec.name, "source reader stopped: {e}");
        }
    })?;
    Ok(())
}

/// Split state a new reader starts from, resolved once when its view or
/// table is created and committed with it (so `latest` and timestamps mean
/// the moment of creation, also across restarts). Kafka is contacted here,
/// so an unreachable broker or a missing topic fails the `CREATE`.
pub fn initial_state(spec: &SourceSpec) -> Result<SplitState, SourceError> {
    match &spec.connector {
        Connector::Kafka(k) => kafka::initial_state(k),
        Connector::File(_) => Ok(SplitState::new()),
        Connector::Datagen(_) => Ok(SplitState::new()),
        Connector::Nexmark(n) => Ok(nexmark::initial_state(n)),
    }
}

/// Checks that a source can be read: for Kafka, the broker answers and the
/// topic exists.
pub fn validate(spec: &SourceSpec) -> Result<(), SourceError> {
    match &spec.connector {
        Connector::Kafka(k) => kafka::check_topic(k).map(|_| ()),
        Connector::File(f) => file::check(f),
        Connector::Datagen(d) => datagen::check(spec, d),
        Connector::Nexmark(n) => nexmark::check(spec, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nexmark_spec() -> SourceSpec {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let with = vec![("connector".to_string(), "nexmark".to_string())];
        SourceSpec::parse("s", schema, None, false, &with, None, None, &vec![])
            .expect("a nexmark source")
    }

    #[test]
    fn a_catch_up_starts_at_the_views_start_with_the_generators_settings() {
        let spec = nexmark_spec();
        let own: SplitState = [("offset".into(), 0), (nexmark::BASE_TIME.into(), 5)].into();
        let shared: SplitState = [("offset".into(), 700), (nexmark::BASE_TIME.into(), 1)].into();
        let from = catch_up_from(&spec, &own, &shared);
        assert_eq!(from.get(nexmark::BASE_TIME), Some(&1));
        assert_eq!(from.get("offset"), Some(&0));
        assert!(behind(&spec, &from, &shared));
        assert!(!behind(&spec, &shared, &shared));
        // A split the view has no position for starts at its beginning.
        let kafka_like: SplitState = [("p0".into(), 3), ("p1".into(), 0)].into();
        assert!(behind(&spec, &SplitState::new(), &kafka_like));
        let at: SplitState = [("p0".into(), 3)].into();
        assert!(!behind(&spec, &at, &kafka_like));
    }
}

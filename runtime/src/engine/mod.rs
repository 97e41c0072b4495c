//! The engine: one dedicated thread that coordinates the dataflow, owns
//! the tables and decides every epoch.
//!
//! # Design
//!
//! Commands (DDL, DML, reads of current table state, barriers, connector
//! tables' source chunks) arrive over a bounded channel and run one at a
//! time, so the engine is the single writer of tables and the order of
//! commands is the order of their effects. A DML command validates first (constraints,
//! keys), then writes table rows into the engine's [`WriteSet`] and sends
//! the change batch to every view fragment that scans the table.
//!
//! Each materialized view (and sink) runs as a fragment on a thread of its
//! own ([`crate::dataflow`]): its operators, its writes, a bounded channel
//! in. What a view emits goes straight to the fragments of the views that
//! read it. The bounded channels are the backpressure: a slow view slows
//! the engine's sends to it, and so DML and sources.
//!
//! A source is read once: its reader hands each chunk to every view of it
//! through the source's hub ([`sources`]).
//!
//! A barrier ends the epoch: holding every source's hub, the engine sends
//! it to every fragment (so it sits at one point of each source in all
//! views) and writes the sources' positions; a fragment ends the epoch once the barrier came on all its inputs (the
//! engine's and those of the views it reads), reports its writes and
//! parks. When every fragment reported ([`crate::dataflow::EpochTracker`]),
//! the epoch commits in one RocksDB write with the engine's own writes
//! (table rows, source offsets, catalog) and the epoch number; then the
//! fragments resume. A fragment whose operator failed reports that
//! instead: its view is marked failed (kept across restarts, shown by
//! `SHOW MATERIALIZED VIEWS`), with every view that reads it, and the rest
//! go on.
//!
//! If anything fails in the engine's own work after a command has started
//! mutating state, the engine refuses all further work (it is "poisoned")
//! instead of committing a half-applied epoch; a restart recovers the last
//! committed epoch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::state::layout::{relation as table_prefix, table_row as row_key};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use freshet_storage::codec::encode_datum;
use freshet_storage::store::merge_pending;
use freshet_storage::{Epoch, Store, TableId, WriteSet};
use tokio::sync::{mpsc, oneshot};

use crate::change::ChangeBatch;
use crate::dataflow::Message;
use crate::error::{Result, RuntimeError};
use crate::operators::{build_operator, decode_view_rows, EpochCtx, Operator};
use crate::plan::{NodeKind, StreamPlan};
use crate::source::{
    spawn_reader, Ingest, IngestSink, ReaderCtx, ReaderKey, RowOp, SourceChunk, SourceSpec,
    SourceStats, SplitState, StatsRegistry, StopFlag,
};
use crate::table::{decode_table_values, decode_table_with_rowkey, encode_values, TableDef};
use crate::time::{TimeRegistry, TimeStats, Watermark};

mod backfill;
mod ddl;
mod dml;
mod fragments;
mod ingest;
mod sources;
mod subscribe;

pub use subscribe::{SubscribeMsg, Subscription};

const BACKFILL_CHUNK: usize = 8192;

/// A materialized view as the runtime sees it.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// Where the view's rows live; state slot `i` lives in table `id + 1 + i`.
    pub id: TableId,
    pub name: String,
    pub plan: StreamPlan,
}

impl ViewDef {
    pub fn state_table(&self, slot: u32) -> TableId {
        TableId(self.id.0 + 1 + slot)
    }

    pub fn schema(&self) -> SchemaRef {
        self.plan.nodes[self.plan.root()].schema.clone()
    }

    /// The view's stream key, when its rows are stored by it.
    pub fn key(&self) -> Option<&[usize]> {
        match &self.plan.nodes[self.plan.root()].kind {
            NodeKind::Materialize { key } => key.as_deref(),
            _ => None,
        }
    }

    /// Whether the view's rows are stored by key (not as a multiset).
    pub fn keyed(&self) -> bool {
        self.key().is_some()
    }
}

/// A data change to one table.
#[derive(Debug)]
pub enum DmlOp {
    /// Rows in the table's column order.
    Insert(Vec<RecordBatch>),
    /// Storage keys (`_rowkey`) of rows to delete.
    Delete(Vec<Vec<u8>>),
    /// Storage keys of the old rows and the new rows, in the same order.
    Update {
        keys: Vec<Vec<u8>>,
        rows: Vec<RecordBatch>,
    },
}

/// Catalog bytes to write (key, Some(value)) or delete (key, None) in the
/// same commit as a DDL command.
pub type CatalogWrite = (Vec<u8>, Option<Vec<u8>>);

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    CreateTable {
        def: TableDef,
        catalog: Vec<CatalogWrite>,
        reply: Reply<()>,
    },
    CreateView {
        def: ViewDef,
        catalog: Vec<CatalogWrite>,
        fresh: bool,
        reply: Reply<()>,
    },
    Drop {
        id: TableId,
        catalog: Vec<CatalogWrite>,
        reply: Reply<()>,
    },
    /// Catalog writes alone (objects without dataflow, such as plain views).
    Catalog {
        catalog: Vec<CatalogWrite>,
        reply: Reply<()>,
    },
    Dml {
        table: TableId,
        op: DmlOp,
        reply: Reply<u64>,
    },
    ReadTables {
        tables: Vec<(TableId, Option<Vec<Vec<u8>>>)>,
        reply: Reply<Vec<RecordBatch>>,
    },
    Barrier {
        reply: Option<Reply<Epoch>>,
    },
    WriteMeta {
        writes: Vec<CatalogWrite>,
        reply: Reply<()>,
    },
    /// A reader's chunk, stamped with the reader's generation.
    Ingest(Ingest, u64),
    Subscribe {
        view: TableId,
        snapshot: bool,
        as_of: Option<Epoch>,
        tx: subscribe::SubscribeTx,
        reply: Reply<(Epoch, u64)>,
    },
    Unsubscribe {
        node: u64,
    },
    /// Recovery is over: start the readers it held back.
    StartSources {
        reply: Reply<()>,
    },
}

/// Cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Command>,
    /// Set by [`Engine::tick`]; the engine ends the epoch after the command
    /// at hand (a tick is never lost to a full command channel).
    tick: Arc<AtomicBool>,
    stats: StatsRegistry,
    time: TimeRegistry,
    sinks: crate::sink::SinkStatsRegistry,
    failed: FailedViews,
}

/// The views that failed at run time, with their errors (shared with the
/// engine's handle, for `SHOW MATERIALIZED VIEWS`).
#[derive(Clone, Default)]
pub struct FailedViews(Arc<std::sync::Mutex<BTreeMap<TableId, String>>>);

impl FailedViews {
    pub fn get(&self, view: TableId) -> Option<String> {
        self.0.lock().ok()?.get(&view).cloned()
    }

    pub fn contains(&self, view: TableId) -> bool {
        self.get(view).is_some()
    }

    fn insert(&self, view: TableId, why: String) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(view, why);
        }
    }

    fn remove(&self, view: TableId) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&view);
        }
    }
}

/// A reader's handle into the engine's command channel. The generation
/// tells a live reader from a stopped one whose last chunk was still in
/// flight (its view may be gone and its id reused).
struct EngineSink(mpsc::Sender<Command>, u64);

impl IngestSink for EngineSink {
    fn send(&self, msg: Ingest) -> bool {
        self.0.blocking_send(Command::Ingest(msg, self.1)).is_ok()
    }
}

/// Where a reader's rows go.
#[derive(Debug, Clone)]
enum ReaderTarget {
    /// A connector table.
    Table(TableId),
    /// Every view of source `.0`, through its hub (the shared reader).
    Shared(TableId),
    /// View `view`'s scans `entries` of a source, up to where the shared
    /// reader was when the view joined it (the catch-up reader).
    CatchUp { view: TableId, entries: Vec<u64> },
}

struct ReaderRt {
    generation: u64,
    target: ReaderTarget,
    stop: StopFlag,
    stats: Arc<SourceStats>,
}

struct TableRt {
    def: TableDef,
    subscribers: Vec<u64>,
    /// The table's watermark (tables with `WATERMARK FOR`).
    watermark: Option<ScalarValue>,
    time: Option<Arc<TimeStats>>,
}

struct ViewRt {
    def: ViewDef,
    nodes: Vec<u64>,
    root: u64,
}

struct Worker {
    store: Store,
    epoch: Epoch,
    writes: WriteSet,
    /// Each running view's fragment.
    fragments: BTreeMap<TableId, fragments::FragmentRt>,
    /// Node -> the view whose fragment runs it.
    node_fragment: HashMap<u64, TableId>,
    /// Where fragments report the end of an epoch.
    reports: (
        std::sync::mpsc::Sender<crate::dataflow::Report>,
        std::sync::mpsc::Receiver<crate::dataflow::Report>,
    ),
    failed: FailedViews,
    /// Until the server says recovery is over, readers of recovered
    /// objects wait here (see [`Engine::start_sources`]).
    recovering: bool,
    held_readers: Vec<(ReaderKey, Arc<SourceSpec>, String, ReaderTarget)>,
    next_node: u64,
    tables: HashMap<TableId, TableRt>,
    views: HashMap<TableId, ViewRt>,
    next_row_id: i64,
    row_id_dirty: bool,
    poisoned: Option<String>,
    readers: HashMap<ReaderKey, ReaderRt>,
    next_generation: u64,
    stats: StatsRegistry,
    time: TimeRegistry,
    sinks: crate::sink::SinkStatsRegistry,
    /// Source scan node -> its event-time column (sources with a watermark).
    source_watermarks: HashMap<u64, usize>,
    /// Each source being read: its shared reader's hub.
    hubs: BTreeMap<TableId, sources::HubRt>,
    /// Table scans of new views still being backfilled, by scan node.
    backfills: BTreeMap<u64, backfill::Backfill>,
    /// New views whose `CREATE` waits for their backfill.
    creating: HashMap<TableId, backfill::Creating>,
    tx: mpsc::WeakSender<Command>,
    /// The checkpoint timer's request (see [`Engine::tick`]).
    tick: Arc<AtomicBool>,
    /// Subscription node -> the view it reads.
    subscriptions: HashMap<u64, TableId>,
    /// Per subscribed view: its retaining node and recent changes.
    retained: HashMap<TableId, (u64, Arc<std::sync::Mutex<subscribe::Retained>>)>,
}

impl Engine {
    /// Starts the engine thread over `store`, resuming at its committed epoch.
    pub fn start(store: Store) -> Result<(Engine, std::thread::JoinHandle<()>)> {
        let epoch = store.committed_epoch()?;
        let next_row_id = match store.get(&crate::state::layout::next_row_id())? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                i64::from_be_bytes(b)
            }
            _ => 1,
        };
        let (tx, rx) = mpsc::channel(256);
        let stats = StatsRegistry::default();
        let time = TimeRegistry::default();
        let sinks = crate::sink::SinkStatsRegistry::default();
        let tick = Arc::new(AtomicBool::new(false));
        let failed = FailedViews::default();
        let worker = Worker {
            sinks: sinks.clone(),
            subscriptions: HashMap::new(),
            retained: HashMap::new(),
            tick: tick.clone(),
            time: time.clone(),
            source_watermarks: HashMap::new(),
            hubs: BTreeMap::new(),
            backfills: BTreeMap::new(),
            creating: HashMap::new(),
            readers: HashMap::new(),
            next_generation: 1,
            stats: stats.clone(),
            tx: tx.downgrade(),
            store,
            epoch,
            writes: WriteSet::default(),
            fragments: BTreeMap::new(),
            node_fragment: HashMap::new(),
            reports: std::sync::mpsc::channel(),
            failed: failed.clone(),
            recovering: true,
            held_readers: Vec::new(),
            next_node: 1,
            tables: HashMap::new(),
            views: HashMap::new(),
            next_row_id,
            row_id_dirty: false,
            poisoned: None,
        };
        let handle = std::thread::Builder::new()
            .name("freshet-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| RuntimeError::Internal(format!("cannot start engine thread: {e}")))?;
        Ok((
            Engine {
                tx,
                tick,
                stats,
                time,
                sinks,
                failed,
            },
            handle,
        ))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| RuntimeError::EngineStopped)?;
        rx.await.map_err(|_| RuntimeError::EngineStopped)?
    }

    /// Registers a table; `catalog` writes commit with it (empty on recovery).
    pub async fn create_table(&self, def: TableDef, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.call(|reply| Command::CreateTable {
            def,
            catalog,
            reply,
        })
        .await
    }

    /// Starts a view. Fresh views are backfilled from their inputs and
    /// committed before this returns; recovered views resume their state.
    pub async fn create_view(
        &self,
        def: ViewDef,
        catalog: Vec<CatalogWrite>,
        fresh: bool,
    ) -> Result<()> {
        self.call(|reply| Command::CreateView {
            def,
            catalog,
            fresh,
            reply,
        })
        .await
    }

    /// Drops a table or view and all its stored data.
    /// Commits catalog writes that create or drop no dataflow object.
    pub async fn write_catalog(&self, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.call(|reply| Command::Catalog { catalog, reply }).await
    }

    pub async fn drop_object(&self, id: TableId, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.call(|reply| Command::Drop { id, catalog, reply })
            .await
    }

    /// Applies a DML change; returns the number of rows affected. The change
    /// is visible to SELECT after the next commit.
    pub async fn dml(&self, table: TableId, op: DmlOp) -> Result<u64> {
        self.call(|reply| Command::Dml { table, op, reply }).await
    }

    /// Current contents (committed plus this epoch's writes) of tables, each
    /// with the hidden `_rowkey` column; what DML statements read. A table
    /// given with keys is read only at those encoded primary keys.
    pub async fn read_tables(
        &self,
        tables: Vec<(TableId, Option<Vec<Vec<u8>>>)>,
    ) -> Result<Vec<RecordBatch>> {
        self.call(|reply| Command::ReadTables { tables, reply })
            .await
    }

    /// Ends recovery: every recovered table and view is in place, so their
    /// source readers start (none reads before, so no row reaches some
    /// views and not others).
    pub async fn start_sources(&self) -> Result<()> {
        self.call(|reply| Command::StartSources { reply }).await
    }

    /// Ends the epoch and waits until it has committed.
    pub async fn flush(&self) -> Result<Epoch> {
        self.call(|reply| Command::Barrier { reply: Some(reply) })
            .await
    }

    /// Writes metadata in the running epoch (committed at its barrier).
    pub async fn write_meta(&self, writes: Vec<CatalogWrite>) -> Result<()> {
        self.call(|reply| Command::WriteMeta { writes, reply })
            .await
    }

    /// Counters and recent errors of every running source reader.
    pub fn source_stats(&self) -> Vec<(ReaderKey, Arc<SourceStats>)> {
        self.stats.all()
    }

    /// Why view `view` failed, if it did (it then no longer changes).
    pub fn view_error(&self, view: TableId) -> Option<String> {
        self.failed.get(view)
    }

    /// Counters of every running sink, by sink id.
    pub fn sink_stats(&self) -> Vec<(TableId, Arc<crate::sink::SinkStats>)> {
        self.sinks.all()
    }

    /// Watermarks and late-event counts of tables, source readers and views.
    pub fn time_stats(&self) -> Vec<Arc<TimeStats>> {
        self.time.all()
    }

    /// Asks for a barrier without waiting (the checkpoint timer). The flag
    /// is seen after the command the engine is on, however many are queued
    /// (a source keeps the channel full); the message wakes an idle engine.
    pub fn tick(&self) {
        // One wake-up in the queue at a time: while epochs take longer than
        // the interval, ticks would pile up ahead of DML and FLUSH.
        if !self.tick.swap(true, Ordering::Relaxed) {
            let _ = self.tx.try_send(Command::Barrier { reply: None });
        }
    }
}

use crate::state::layout::table_watermark as watermark_key;

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            // While a view backfills, its chunks go between commands.
            let cmd = if self.backfilling() && self.poisoned.is_none() {
                match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if !self.backfill_tick() {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(cmd) => cmd,
                    None => break,
                }
            };
            // A panic in an operator must not take the process down; it stops
            // the engine instead, and the caller sees its reply dropped.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(cmd)));
            if r.is_err() {
                tracing::error!("engine panicked; refusing further work until restart");
                self.poisoned = Some("an internal panic".into());
            }
            // A tick that found the channel full is seen here.
            self.end_epoch_if_due();
            if self.backfilling() && self.poisoned.is_none() {
                // A busy command channel must not starve a backfill.
                self.backfill_tick();
            }
            if self.poisoned.is_some() {
                // Views still being created fail (their callers hear so).
                self.backfills.clear();
                self.creating.clear();
            }
        }
        // Channel closed: commit what is pending so a clean shutdown loses nothing.
        if self.poisoned.is_none() {
            if let Err(e) = self.barrier(true) {
                tracing::error!("final commit failed: {e}");
            }
        }
        self.stop_all();
        tracing::info!(epoch = self.epoch.0, "engine stopped");
    }

    /// One round of backfill chunks; whether any scan moved.
    fn backfill_tick(&mut self) -> bool {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let r = self.mutate(|w| w.backfill_step());
            self.end_epoch_if_due();
            r
        }));
        match r {
            Ok(r) => r.unwrap_or(false),
            Err(_) => {
                tracing::error!("engine panicked; refusing further work until restart");
                self.poisoned = Some("an internal panic".into());
                false
            }
        }
    }

    fn guard(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(RuntimeError::Internal(format!("engine stopped after an earlier failure ({why}); restart the server to recover the last committed epoch"))),
            None => Ok(()),
        }
    }

    /// Runs a mutating step; any error poisons the engine.
    fn mutate<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.guard()?;
        let r = f(self);
        if let Err(e) = &r {
            tracing::error!("engine failed: {e}");
            self.poisoned = Some(e.to_string());
        }
        r
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::CreateTable {
                def,
                catalog,
                reply,
            } => {
                let r = self.mutate(|w| {
                    let fresh = !catalog.is_empty();
                    let (id, name, connector) = (def.id, def.name.clone(), def.connector.clone());
                    let time = def.watermark.map(|_| w.time.get("table", &def.name, ""));
                    let watermark = match (&def.watermark, w.store.get(&watermark_key(def.id))?) {
                        (Some(wd), Some(v)) if v.len() == 8 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&v);
                            let ty = def.schema.field(wd.col).data_type().clone();
                            Some(crate::time::timestamp_scalar(&ty, i64::from_be_bytes(b))?)
                        }
                        _ => None,
                    };
                    if let (Some(t), Some(v)) = (&time, &watermark) {
                        t.set_watermark(v);
                    }
                    w.tables.insert(
                        def.id,
                        TableRt {
                            def,
                            subscribers: Vec::new(),
                            watermark,
                            time,
                        },
                    );
                    if fresh {
                        w.apply_catalog(catalog);
                        w.barrier(true)?;
                    }
                    if let Some(spec) = connector {
                        let key = ReaderKey { owner: id, slot: 0 };
                        w.start_reader(key, spec, &name, ReaderTarget::Table(id))?;
                    }
                    Ok(())
                });
                let _ = reply.send(r);
            }
            Command::CreateView {
                def,
                catalog,
                fresh,
                reply,
            } => {
                let id = def.id;
                match self.mutate(|w| w.create_view(def, catalog, fresh)) {
                    Ok(Some((catalog, readers))) => {
                        self.creating.insert(
                            id,
                            backfill::Creating {
                                catalog,
                                readers,
                                reply,
                            },
                        );
                    }
                    Ok(None) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Drop { id, catalog, reply } => {
                let r = self.mutate(|w| w.drop_object(id, catalog));
                let _ = reply.send(r);
            }
            Command::Catalog { catalog, reply } => {
                let r = self.mutate(|w| {
                    w.apply_catalog(catalog);
                    w.barrier(true).map(|_| ())
                });
                let _ = reply.send(r);
            }
            Command::Dml { table, op, reply } => {
                let r = self.guard().and_then(|_| self.dml(table, op));
                let _ = reply.send(r);
                self.end_epoch_if_due();
            }
            Command::ReadTables { tables, reply } => {
                let r = self.guard().and_then(|_| {
                    tables
                        .iter()
                        .map(|(t, k)| self.read_table_current(*t, k.as_deref()))
                        .collect()
                });
                let _ = reply.send(r);
            }
            Command::Barrier { reply } => {
                let force = reply.is_some();
                if !force && !self.tick.load(Ordering::Relaxed) {
                    // A timer tick an epoch end since has served: while
                    // barriers are slow, ticks queue up and must not hold
                    // a FLUSH or DML behind them.
                    return;
                }
                let r = self.mutate(|w| w.barrier(force));
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Command::WriteMeta { writes, reply } => {
                let r = self.guard().map(|_| self.apply_catalog(writes));
                let _ = reply.send(r);
            }
            Command::Ingest(msg, generation) => {
                let _ = self.mutate(|w| w.ingest(msg, generation));
                self.end_epoch_if_due();
            }
            Command::Subscribe {
                view,
                snapshot,
                as_of,
                tx,
                reply,
            } => {
                let r = self
                    .guard()
                    .and_then(|_| self.subscribe(view, snapshot, as_of, tx));
                let _ = reply.send(r);
            }
            Command::Unsubscribe { node } => self.unsubscribe(node),
            Command::StartSources { reply } => {
                let r = self.mutate(|w| {
                    w.recovering = false;
                    for (key, spec, owner, target) in std::mem::take(&mut w.held_readers) {
                        w.start_reader(key, spec, &owner, target)?;
                    }
                    Ok(())
                });
                let _ = reply.send(r);
            }
        }
    }

    fn apply_catalog(&mut self, catalog: Vec<CatalogWrite>) {
        for (k, v) in catalog {
            match v {
                Some(v) => self.writes.put(k, v),
                None => self.writes.delete(k),
            }
        }
    }

    /// Ends the epoch when the checkpoint timer asked for it, or early once
    /// its writes reach [`crate::state::budget::EPOCH_WRITE_LIMIT`].
    fn end_epoch_if_due(&mut self) {
        let due = self.tick.load(Ordering::Relaxed)
            || self.pending_bytes() >= crate::state::budget::EPOCH_WRITE_LIMIT;
        if self.poisoned.is_none() && due {
            let _ = self.mutate(|w| w.barrier(false));
        }
    }
}

/// Convenience for tests: an `Arc`'d schema with every field nullable.
pub fn nullable(schema: &SchemaRef) -> SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                // Field metadata (a jsonb column's marker) is kept.
                Field::new(f.name(), f.data_type().clone(), true)
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
    ))
}

//! The dataflow engine: one dedicated thread that owns every operator.
//!
//! # Design
//!
//! Commands (DDL, DML, reads of current table state, barriers) arrive over a
//! bounded channel and run one at a time, so the engine is the single writer
//! of tables, operator state and views, and the order of commands is the
//! order of their effects. A DML command validates first (constraints,
//! keys), then writes table rows into the epoch's [`WriteSet`] and pushes the
//! change batch through every view that reads the table, depth first.
//!
//! A barrier ends the epoch: every operator's `on_barrier` runs in
//! topological order (node ids grow as views are created, and a view's nodes
//! only read from older nodes), and what they emit flows downstream before
//! downstream operators see their own barrier. Then everything the epoch
//! wrote commits in one RocksDB write together with the epoch number.
//!
//! Barrier alignment is trivial here because one thread runs the whole DAG;
//! bounded channels between operator tasks come with sources that produce
//! on their own (Kafka). The bounded command channel is the backpressure for
//! DML today.
//!
//! If anything fails after a command has started mutating state, the engine
//! refuses all further work (it is "poisoned") instead of committing a
//! half-applied epoch; a restart recovers the last committed epoch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use freshet_storage::codec::encode_datum;
use freshet_storage::keys::{meta_key, row_key, table_prefix};
use freshet_storage::store::merge_pending;
use freshet_storage::{Epoch, Store, TableId, WriteSet};
use tokio::sync::{mpsc, oneshot};

use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::operators::{build_operator, decode_view_rows, EpochCtx, Operator};
use crate::plan::{NodeKind, StreamPlan};
use crate::source::{
    spawn_reader, Ingest, IngestSink, ReaderCtx, ReaderKey, RowOp, SourceChunk, SourceSpec,
    SourceStats, SplitState, StatsRegistry, StopFlag,
};
use crate::table::{decode_table_values, decode_table_with_rowkey, encode_values, TableDef};
use crate::time::{TimeRegistry, TimeStats, Watermark};

const NEXT_ROW_ID: &str = "next_row_id";
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
#[derive(Debug, Clone, Copy)]
enum ReaderTarget {
    /// The `SourceScan` node of a view.
    Node(u64),
    /// A connector table.
    Table(TableId),
}

struct ReaderRt {
    generation: u64,
    target: ReaderTarget,
    stop: StopFlag,
    stats: Arc<SourceStats>,
    /// The reader's watermark and late-event counter (sources with `WATERMARK FOR`).
    watermark: Option<ScalarValue>,
    time: Option<Arc<TimeStats>>,
}

struct Node {
    op: Box<dyn Operator>,
    consumers: Vec<(u64, usize)>,
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
    nodes: BTreeMap<u64, Node>,
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
    /// Source scan node -> its event-time column (sources with a watermark).
    source_watermarks: HashMap<u64, usize>,
    tx: mpsc::WeakSender<Command>,
    /// The checkpoint timer's request (see [`Engine::tick`]).
    tick: Arc<AtomicBool>,
}

impl Engine {
    /// Starts the engine thread over `store`, resuming at its committed epoch.
    pub fn start(store: Store) -> Result<(Engine, std::thread::JoinHandle<()>)> {
        let epoch = store.committed_epoch()?;
        let next_row_id = match store.get(&meta_key(NEXT_ROW_ID))? {
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
        let tick = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            tick: tick.clone(),
            time: time.clone(),
            source_watermarks: HashMap::new(),
            readers: HashMap::new(),
            next_generation: 1,
            stats: stats.clone(),
            tx: tx.downgrade(),
            store,
            epoch,
            writes: WriteSet::default(),
            nodes: BTreeMap::new(),
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

    /// Watermarks and late-event counts of tables, source readers and views.
    pub fn time_stats(&self) -> Vec<Arc<TimeStats>> {
        self.time.all()
    }

    /// Asks for a barrier without waiting (the checkpoint timer). The flag
    /// is seen after the command the engine is on, however many are queued
    /// (a source keeps the channel full); the message wakes an idle engine.
    pub fn tick(&self) {
        self.tick.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Command::Barrier { reply: None });
    }
}

fn push(
    nodes: &mut BTreeMap<u64, Node>,
    store: &Store,
    writes: &mut WriteSet,
    epoch: Epoch,
    from: u64,
    batch: &ChangeBatch,
) -> Result<()> {
    let consumers = match nodes.get(&from) {
        Some(n) => n.consumers.clone(),
        None => return Ok(()),
    };
    for (c, input) in consumers {
        let outs = {
            let node = nodes
                .get_mut(&c)
                .ok_or_else(|| RuntimeError::Internal(format!("missing node {c}")))?;
            let mut ctx = EpochCtx {
                store,
                writes: &mut *writes,
                epoch,
            };
            node.op.process(input, batch.clone(), &mut ctx)?
        };
        for o in outs {
            if !o.is_empty() {
                push(nodes, store, writes, epoch, c, &o)?;
            }
        }
    }
    Ok(())
}

/// Delivers watermarks emitted by node `from` to its consumers, then what
/// they release, depth first.
fn push_watermarks(
    nodes: &mut BTreeMap<u64, Node>,
    store: &Store,
    writes: &mut WriteSet,
    epoch: Epoch,
    from: u64,
    wms: Vec<Watermark>,
) -> Result<()> {
    if wms.is_empty() {
        return Ok(());
    }
    let consumers = match nodes.get(&from) {
        Some(n) => n.consumers.clone(),
        None => return Ok(()),
    };
    for (c, input) in consumers {
        for wm in &wms {
            let (batches, out) = {
                let node = nodes
                    .get_mut(&c)
                    .ok_or_else(|| RuntimeError::Internal(format!("missing node {c}")))?;
                let mut ctx = EpochCtx {
                    store,
                    writes: &mut *writes,
                    epoch,
                };
                node.op.on_watermark(input, wm.clone(), &mut ctx)?
            };
            for o in batches {
                if !o.is_empty() {
                    push(nodes, store, writes, epoch, c, &o)?;
                }
            }
            push_watermarks(nodes, store, writes, epoch, c, out)?;
        }
    }
    Ok(())
}

/// Meta key of a table's persisted watermark.
fn watermark_key(table: TableId) -> Vec<u8> {
    meta_key(&format!("wm/{}", table.0))
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            // A panic in an operator must not take the process down; it stops
            // the engine instead, and the caller sees its reply dropped.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(cmd)));
            if r.is_err() {
                tracing::error!("engine panicked; refusing further work until restart");
                self.poisoned = Some("an internal panic".into());
            }
        }
        // Channel closed: commit what is pending so a clean shutdown loses nothing.
        if self.poisoned.is_none() {
            if let Err(e) = self.barrier(true) {
                tracing::error!("final commit failed: {e}");
            }
        }
        tracing::info!(epoch = self.epoch.0, "engine stopped");
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
                let r = self.mutate(|w| w.create_view(def, catalog, fresh));
                let _ = reply.send(r);
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
            || self.writes.approx_bytes() >= crate::state::budget::EPOCH_WRITE_LIMIT;
        if self.poisoned.is_none() && due {
            let _ = self.mutate(|w| w.barrier(false));
        }
    }

    /// Ends the epoch: flush every operator in topological order, then commit.
    fn barrier(&mut self, force: bool) -> Result<Epoch> {
        self.tick.store(false, Ordering::Relaxed);
        let epoch = Epoch(self.epoch.0 + 1);
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let outs = {
                let Some(node) = self.nodes.get_mut(&id) else {
                    continue;
                };
                let mut ctx = EpochCtx {
                    store: &self.store,
                    writes: &mut self.writes,
                    epoch,
                };
                node.op.on_barrier(&mut ctx)?
            };
            for o in outs {
                push(
                    &mut self.nodes,
                    &self.store,
                    &mut self.writes,
                    epoch,
                    id,
                    &o,
                )?;
            }
            let wms = match self.nodes.get_mut(&id) {
                Some(n) => n.op.take_watermarks(),
                None => Vec::new(),
            };
            push_watermarks(
                &mut self.nodes,
                &self.store,
                &mut self.writes,
                epoch,
                id,
                wms,
            )?;
        }
        if self.row_id_dirty {
            self.writes.put(
                meta_key(NEXT_ROW_ID),
                self.next_row_id.to_be_bytes().to_vec(),
            );
            self.row_id_dirty = false;
        }
        if self.writes.is_empty() && !force {
            return Ok(self.epoch);
        }
        let writes = std::mem::take(&mut self.writes);
        if force {
            // FLUSH (or shutdown) is acknowledged only once the epoch is in.
            self.store.commit(writes, epoch)?;
        } else {
            // A periodic barrier: the write runs on the committer thread
            // while this thread goes on; every read waits for it.
            self.store.commit_async(writes, epoch)?;
        }
        self.epoch = epoch;
        tracing::debug!(epoch = epoch.0, "committed");
        Ok(epoch)
    }

    fn table(&self, id: TableId) -> Result<&TableRt> {
        self.tables
            .get(&id)
            .ok_or_else(|| RuntimeError::UnknownObject(format!("table {}", id.0)))
    }

    fn current_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.pending(key) {
            Some(v) => Ok(v.map(|v| v.to_vec())),
            None => Ok(self.store.get(key)?),
        }
    }

    fn read_table_current(&self, id: TableId, keys: Option<&[Vec<u8>]>) -> Result<RecordBatch> {
        let t = self.table(id)?;
        let entries = match keys {
            Some(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let key = row_key(id, k);
                    if let Some(v) = self.current_value(&key)? {
                        out.push((key, v));
                    }
                }
                out
            }
            None => {
                let prefix = table_prefix(id);
                let committed = self.store.scan_prefix(&prefix)?;
                merge_pending(committed, &self.writes, &prefix)
            }
        };
        decode_table_with_rowkey(&entries, &t.def)
    }

    /// Conforms a batch to the table schema (casting where types differ).
    fn conform(def: &TableDef, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = def.schema.fields().len();
        if batch.num_columns() < n {
            return Err(RuntimeError::Internal(format!(
                "expected {n} columns for table {}",
                def.name
            )));
        }
        let cols = def
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let c = batch.column(i);
                Ok(if c.data_type() != f.data_type() {
                    cast(c, f.data_type())?
                } else {
                    c.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            def.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    fn new_row_keys(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut k = Vec::with_capacity(9);
            encode_datum(&mut k, &ScalarValue::Int64(Some(self.next_row_id)))?;
            self.next_row_id += 1;
            out.push(k);
        }
        self.row_id_dirty = true;
        Ok(out)
    }

    fn dml(&mut self, table: TableId, op: DmlOp) -> Result<u64> {
        let def = self.table(table)?.def.clone();
        // 1. Validate and compute every write; nothing is mutated yet.
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        let mut changes: Vec<ChangeBatch> = Vec::new();
        let mut count = 0u64;
        let (old_keys, new_batches) = match op {
            DmlOp::Insert(b) => (Vec::new(), b),
            DmlOp::Delete(k) => (k, Vec::new()),
            DmlOp::Update { keys, rows } => (keys, rows),
        };
        let is_update = !old_keys.is_empty() && !new_batches.is_empty();
        if def.append_only && !old_keys.is_empty() {
            return Err(RuntimeError::AppendOnly(def.name.clone()));
        }
        // Old rows being removed.
        let mut old_vals = Vec::with_capacity(old_keys.len());
        let mut removed: HashSet<Vec<u8>> = HashSet::new();
        for k in &old_keys {
            if let Some(v) = self.current_value(&row_key(table, k))? {
                old_vals.push(v);
                removed.insert(k.clone());
                deletes.push(row_key(table, k));
            } else {
                old_vals.push(Vec::new());
            }
        }
        if !old_keys.is_empty() {
            let present: Vec<&[u8]> = old_vals
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.as_slice())
                .collect();
            let old = decode_table_values(present, &def.schema)?;
            if !is_update {
                count += old.num_rows() as u64;
            }
            if old.num_rows() > 0 {
                changes.push(ChangeBatch::deletes(old));
            }
        }
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut key_cursor = 0usize;
        for b in &new_batches {
            let b = Self::conform(&def, b)?;
            def.check_not_null(&b)?;
            let keys = match def.pk_keys(&b)? {
                Some(k) => k,
                None if is_update => {
                    let k = old_keys[key_cursor..key_cursor + b.num_rows()].to_vec();
                    key_cursor += b.num_rows();
                    k
                }
                None => self.new_row_keys(b.num_rows())?,
            };
            let vals = encode_values(&b)?;
            let full: Vec<Vec<u8>> = keys.iter().map(|k| row_key(table, k)).collect();
            if def.pk.is_some() {
                // Unique check: within the statement, then against current rows
                // (pending writes first, one batched read for the rest).
                let mut to_read = Vec::new();
                for (k, fk) in keys.iter().zip(&full) {
                    if !seen.insert(k.clone()) {
                        return Err(RuntimeError::UniqueViolation {
                            table: def.name.clone(),
                        });
                    }
                    if removed.contains(k) {
                        continue;
                    }
                    match self.writes.pending(fk) {
                        Some(Some(_)) => {
                            return Err(RuntimeError::UniqueViolation {
                                table: def.name.clone(),
                            })
                        }
                        Some(None) => {}
                        None => to_read.push(fk.clone()),
                    }
                }
                if self.store.multi_get(&to_read)?.iter().any(Option::is_some) {
                    return Err(RuntimeError::UniqueViolation {
                        table: def.name.clone(),
                    });
                }
            }
            puts.extend(full.into_iter().zip(vals));
            count += b.num_rows() as u64;
            if b.num_rows() > 0 {
                changes.push(ChangeBatch::inserts(b));
            }
        }
        // 2. Apply: from here on a failure poisons the engine.
        self.mutate(|w| {
            for k in deletes {
                w.writes.delete(k);
            }
            for (k, v) in puts {
                w.writes.put(k, v);
            }
            let subs = w
                .tables
                .get(&table)
                .map(|t| t.subscribers.clone())
                .unwrap_or_default();
            for c in &changes {
                for s in &subs {
                    push(
                        &mut w.nodes,
                        &w.store,
                        &mut w.writes,
                        Epoch(w.epoch.0 + 1),
                        *s,
                        c,
                    )?;
                }
            }
            w.table_watermark(table, &changes, None)?;
            Ok(count)
        })
    }

    fn create_view(&mut self, def: ViewDef, catalog: Vec<CatalogWrite>, fresh: bool) -> Result<()> {
        if fresh {
            // Commit pending changes so the backfill reads exactly the current state.
            self.barrier(false)?;
        }
        let epoch = Epoch(self.epoch.0 + 1);
        let mut gids = Vec::with_capacity(def.plan.nodes.len());
        let mut scans: Vec<(u64, crate::table::ReadTarget)> = Vec::new();
        let mut constants: Vec<(u64, datafusion::arrow::array::RecordBatch)> = Vec::new();
        let mut sources = Vec::new();
        let append_only = crate::stream_key::append_only(&def.plan);
        for (idx, node) in def.plan.nodes.iter().enumerate() {
            let gid = self.next_node;
            self.next_node += 1;
            gids.push(gid);
            let input_types: Vec<Vec<datafusion::arrow::datatypes::DataType>> = node
                .inputs
                .iter()
                .map(|&i| {
                    def.plan.nodes[i]
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.data_type().clone())
                        .collect()
                })
                .collect();
            let op = build_operator(
                node,
                !node.inputs.is_empty() && node.inputs.iter().all(|&i| append_only[i]),
                &input_types,
                &def.name,
                def.id,
                |slot| def.state_table(slot),
                &self.time,
            );
            self.nodes.insert(
                gid,
                Node {
                    op,
                    consumers: Vec::new(),
                },
            );
            for (pos, &input) in node.inputs.iter().enumerate() {
                let from = gids[input];
                if let Some(n) = self.nodes.get_mut(&from) {
                    n.consumers.push((gid, pos));
                }
            }
            match &node.kind {
                NodeKind::TableScan { table, .. } => {
                    let t = self
                        .tables
                        .get_mut(table)
                        .ok_or_else(|| RuntimeError::UnknownObject(format!("table {}", table.0)))?;
                    t.subscribers.push(gid);
                    scans.push((
                        gid,
                        crate::table::ReadTarget::Table {
                            id: *table,
                            schema: t.def.schema.clone(),
                            keys: None,
                        },
                    ));
                }
                NodeKind::ViewScan { view, .. } => {
                    let v = self
                        .views
                        .get(view)
                        .ok_or_else(|| RuntimeError::UnknownObject(format!("view {}", view.0)))?;
                    let (root, schema, keyed) = (v.root, v.def.schema(), v.def.keyed());
                    if let Some(n) = self.nodes.get_mut(&root) {
                        n.consumers.push((gid, 0));
                    }
                    scans.push((
                        gid,
                        crate::table::ReadTarget::View {
                            id: *view,
                            schema,
                            keyed,
                            keys: None,
                        },
                    ));
                }
                NodeKind::Values { rows } => constants.push((gid, rows.clone())),
                NodeKind::SourceScan { spec, .. } => {
                    if let Some(wd) = spec.watermark {
                        self.source_watermarks.insert(gid, wd.col);
                    }
                    let key = ReaderKey {
                        owner: def.id,
                        slot: idx as u32,
                    };
                    sources.push((key, spec.clone(), gid));
                }
                _ => {}
            }
        }
        for gid in &gids {
            if let Some(n) = self.nodes.get_mut(gid) {
                let mut ctx = EpochCtx {
                    store: &self.store,
                    writes: &mut self.writes,
                    epoch,
                };
                n.op.on_start(&mut ctx, fresh)?;
            }
        }
        let root = *gids
            .last()
            .ok_or_else(|| RuntimeError::Internal("empty plan".into()))?;
        let view_id = def.id;
        self.views.insert(
            def.id,
            ViewRt {
                def,
                nodes: gids,
                root,
            },
        );
        if fresh {
            for (gid, rows) in constants {
                push(
                    &mut self.nodes,
                    &self.store,
                    &mut self.writes,
                    epoch,
                    gid,
                    &ChangeBatch::inserts(rows),
                )?;
            }
            for (gid, target) in scans {
                let entries = match &target {
                    crate::table::ReadTarget::Table { id, .. }
                    | crate::table::ReadTarget::View { id, .. } => {
                        self.store.scan_prefix(&table_prefix(*id))?
                    }
                };
                for chunk in entries.chunks(BACKFILL_CHUNK) {
                    let batch = match &target {
                        crate::table::ReadTarget::Table { schema, .. } => {
                            decode_table_values(chunk.iter().map(|(_, v)| v.as_ref()), schema)?
                        }
                        crate::table::ReadTarget::View { schema, keyed, .. } => {
                            decode_view_rows(chunk, schema, *keyed)?
                        }
                    };
                    let cb = ChangeBatch::inserts(batch);
                    push(
                        &mut self.nodes,
                        &self.store,
                        &mut self.writes,
                        epoch,
                        gid,
                        &cb,
                    )?;
                }
            }
        }
        // Tables' current watermarks reach the new view's scans (after the
        // backfill, so its rows are not late).
        let table_scans: Vec<(u64, TableId)> = self
            .views
            .get(&view_id)
            .map(|v| {
                v.def
                    .plan
                    .nodes
                    .iter()
                    .zip(&v.nodes)
                    .filter_map(|(n, g)| match &n.kind {
                        NodeKind::TableScan { table, .. } => Some((*g, *table)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (gid, table) in table_scans {
            let Some(t) = self.tables.get(&table) else {
                continue;
            };
            if let (Some(wd), Some(wm)) = (t.def.watermark, t.watermark.clone()) {
                push_watermarks(
                    &mut self.nodes,
                    &self.store,
                    &mut self.writes,
                    epoch,
                    gid,
                    vec![Watermark {
                        col: wd.col,
                        value: wm,
                    }],
                )?;
            }
        }
        if fresh {
            self.apply_catalog(catalog);
            self.barrier(true)?;
        }
        let name = self
            .views
            .get(&view_id)
            .map(|v| v.def.name.clone())
            .unwrap_or_default();
        for (key, spec, gid) in sources {
            self.start_reader(key, spec, &name, ReaderTarget::Node(gid))?;
        }
        Ok(())
    }

    fn drop_object(&mut self, id: TableId, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.readers.retain(|k, r| {
            if k.owner == id {
                r.stop.stop();
                false
            } else {
                true
            }
        });
        self.stats.remove_owner(id);
        self.writes.delete_prefix(&ReaderKey::owner_prefix(id));
        // A table's watermark lives in the metadata keyspace: it must go
        // with the table, or a new object reusing the id would inherit it.
        self.writes.delete(watermark_key(id));
        if let Some(t) = self.tables.remove(&id) {
            self.time.remove(&t.def.name);
            self.writes.delete_prefix(&table_prefix(id));
        } else if let Some(v) = self.views.remove(&id) {
            let doomed: HashSet<u64> = v.nodes.iter().copied().collect();
            for g in &v.nodes {
                self.nodes.remove(g);
                self.source_watermarks.remove(g);
            }
            self.time.remove(&v.def.name);
            for n in self.nodes.values_mut() {
                n.consumers.retain(|(c, _)| !doomed.contains(c));
            }
            for t in self.tables.values_mut() {
                t.subscribers.retain(|s| !doomed.contains(s));
            }
            self.writes.delete_prefix(&table_prefix(id));
            for slot in 0..v.def.plan.state_slots {
                self.writes
                    .delete_prefix(&table_prefix(v.def.state_table(slot)));
            }
        }
        self.apply_catalog(catalog);
        self.barrier(true)?;
        Ok(())
    }
}

impl Worker {
    /// Starts the reader `key` at its committed split state.
    fn start_reader(
        &mut self,
        key: ReaderKey,
        spec: Arc<SourceSpec>,
        owner: &str,
        target: ReaderTarget,
    ) -> Result<()> {
        let prefix = key.state_prefix();
        let mut state = SplitState::new();
        for (k, v) in self.store.scan_prefix(&prefix)? {
            if v.len() == 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                let split = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                state.insert(split, i64::from_be_bytes(b));
            }
        }
        let Some(tx) = self.tx.upgrade() else {
            return Err(RuntimeError::EngineStopped);
        };
        let stop = StopFlag::default();
        let stats = Arc::new(SourceStats::new(&spec.name, owner));
        self.stats.insert(key, stats.clone());
        let generation = self.next_generation;
        self.next_generation += 1;
        if let Some(old) = self.readers.insert(
            key,
            ReaderRt {
                watermark: None,
                time: spec
                    .watermark
                    .map(|_| self.time.get("source", &spec.name, owner)),
                generation,
                target,
                stop: stop.clone(),
                stats: stats.clone(),
            },
        ) {
            old.stop.stop();
        }
        spawn_reader(ReaderCtx {
            key,
            spec,
            state,
            sink: Box::new(EngineSink(tx, generation)),
            stop,
            stats,
        })
        .map_err(|e| RuntimeError::Internal(format!("cannot start source reader: {e}")))
    }

    /// Applies one reader chunk and its split positions to the running epoch.
    fn ingest(&mut self, msg: Ingest, generation: u64) -> Result<()> {
        let Some(r) = self
            .readers
            .get(&msg.key)
            .filter(|r| r.generation == generation)
        else {
            return Ok(()); // a stopped reader (its object was dropped)
        };
        let (target, stats) = (r.target, r.stats.clone());
        let (reader_wm, time) = (r.watermark.clone(), r.time.clone());
        let wm_col = self
            .readers
            .get(&msg.key)
            .and_then(|_| self.reader_watermark_col(target));
        if let Some(chunk) = msg.chunk {
            match target {
                ReaderTarget::Node(gid) => {
                    if let (Some(col), Some(wm), Some(t)) = (wm_col, &reader_wm, &time) {
                        let late = crate::time::below(chunk.rows.column(col), wm)?;
                        t.late(late.true_count() as u64);
                    }
                    let cb = ChangeBatch::inserts(chunk.rows);
                    push(
                        &mut self.nodes,
                        &self.store,
                        &mut self.writes,
                        Epoch(self.epoch.0 + 1),
                        gid,
                        &cb,
                    )?;
                }
                ReaderTarget::Table(t) => {
                    self.apply_table_chunk(t, chunk, &stats, msg.watermark.clone())?
                }
            }
        } else if let (ReaderTarget::Table(t), Some(wm)) = (target, &msg.watermark) {
            self.table_watermark(t, &[], Some(wm.clone()))?;
        }
        if let (ReaderTarget::Node(gid), Some(col), Some(wm)) = (target, wm_col, msg.watermark) {
            let mut cur = reader_wm;
            if crate::time::advance(&mut cur, wm.clone()) {
                if let Some(r) = self.readers.get_mut(&msg.key) {
                    r.watermark = cur;
                }
                if let Some(t) = &time {
                    t.set_watermark(&wm);
                }
                push_watermarks(
                    &mut self.nodes,
                    &self.store,
                    &mut self.writes,
                    Epoch(self.epoch.0 + 1),
                    gid,
                    vec![Watermark { col, value: wm }],
                )?;
            }
        }
        for (split, off) in msg.state {
            self.writes
                .put(msg.key.state_key(&split), off.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// The event-time column of what a reader feeds, if it has a watermark.
    fn reader_watermark_col(&self, target: ReaderTarget) -> Option<usize> {
        match target {
            ReaderTarget::Table(t) => self.tables.get(&t)?.def.watermark.map(|w| w.col),
            ReaderTarget::Node(gid) => self.source_watermarks.get(&gid).copied(),
        }
    }

    /// Counts the late rows of `changes` against table `table`'s
    /// watermark, then advances it to `external` (a reader's) or to what
    /// the rows imply, and sends it to the table's subscribers.
    fn table_watermark(
        &mut self,
        table: TableId,
        changes: &[ChangeBatch],
        external: Option<ScalarValue>,
    ) -> Result<()> {
        let Some(t) = self.tables.get(&table) else {
            return Ok(());
        };
        let Some(wd) = t.def.watermark else {
            return Ok(());
        };
        let mut cur = t.watermark.clone();
        let mut next = cur.clone();
        for c in changes
            .iter()
            .filter(|c| c.weights.values().iter().all(|w| *w > 0))
        {
            let col = c.data.column(wd.col);
            if let (Some(wm), Some(time)) = (&cur, &t.time) {
                time.late(crate::time::below(col, wm)?.true_count() as u64);
            }
            if external.is_none() {
                if let Some(v) = crate::time::watermark_of(&wd, col)? {
                    crate::time::advance(&mut next, v);
                }
            }
        }
        if let Some(e) = external {
            crate::time::advance(&mut next, e);
        }
        let Some(new) = next else {
            return Ok(());
        };
        if !crate::time::advance(&mut cur, new.clone()) {
            return Ok(());
        }
        if let Some(time) = &t.time {
            time.set_watermark(&new);
        }
        let subs = t.subscribers.clone();
        if let Some((raw, _)) = crate::time::timestamp_parts(&new) {
            self.writes
                .put(watermark_key(table), raw.to_be_bytes().to_vec());
        }
        if let Some(t) = self.tables.get_mut(&table) {
            t.watermark = Some(new.clone());
        }
        for s in subs {
            push_watermarks(
                &mut self.nodes,
                &self.store,
                &mut self.writes,
                Epoch(self.epoch.0 + 1),
                s,
                vec![Watermark {
                    col: wd.col,
                    value: new.clone(),
                }],
            )?;
        }
        Ok(())
    }

    /// Upserts and deletes rows of a connector table by primary key (or
    /// appends them, for a table without one), then pushes the net change.
    fn apply_table_chunk(
        &mut self,
        table: TableId,
        chunk: SourceChunk,
        stats: &SourceStats,
        watermark: Option<ScalarValue>,
    ) -> Result<()> {
        let def = self.table(table)?.def.clone();
        let rows = Self::conform(&def, &chunk.rows)?;
        let n = rows.num_rows();
        let ops = chunk.ops.unwrap_or_else(|| vec![RowOp::Upsert; n]);
        // Rows that break NOT NULL are skipped, not applied (deletes need only the key).
        let mut keep = vec![true; n];
        for &c in &def.not_null {
            let col = rows.column(c);
            let is_key = def.pk.as_ref().is_some_and(|pk| pk.contains(&c));
            if col.null_count() == 0 {
                continue;
            }
            for i in 0..n {
                if keep[i] && col.is_null(i) && (is_key || ops[i] == RowOp::Upsert) {
                    keep[i] = false;
                    stats.skip(
                        -1,
                        -1,
                        format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                            def.schema.field(c).name(),
                            def.name
                        ),
                    );
                }
            }
        }
        let (rows, ops) = if keep.iter().all(|k| *k) {
            (rows, ops)
        } else {
            let mask = datafusion::arrow::array::BooleanArray::from(keep.clone());
            let rows = datafusion::arrow::compute::filter_record_batch(&rows, &mask)?;
            let ops = ops
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(o, _)| o)
                .collect();
            (rows, ops)
        };
        let n = rows.num_rows();
        if n == 0 {
            return self.table_watermark(table, &[], watermark);
        }
        let vals = encode_values(&rows)?;
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        let mut inserts: Vec<u32> = Vec::new();
        match def.pk_keys(&rows)? {
            None => {
                let keys = self.new_row_keys(n)?;
                for (i, (k, v)) in keys.into_iter().zip(vals).enumerate() {
                    self.writes.put(row_key(table, &k), v);
                    inserts.push(i as u32);
                }
            }
            Some(keys) => {
                // Net effect per key: its value before the chunk and after it.
                let mut last: HashMap<&[u8], Option<usize>> = HashMap::new();
                let mut order: Vec<&[u8]> = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    if last
                        .insert(k.as_slice(), (ops[i] == RowOp::Upsert).then_some(i))
                        .is_none()
                    {
                        order.push(k.as_slice());
                    }
                }
                let full: Vec<Vec<u8>> = order.iter().map(|k| row_key(table, k)).collect();
                let mut before: Vec<Option<Vec<u8>>> = Vec::with_capacity(full.len());
                let mut to_read = Vec::new();
                for fk in &full {
                    match self.writes.pending(fk) {
                        Some(v) => before.push(v.map(|v| v.to_vec())),
                        None => {
                            to_read.push(fk.clone());
                            before.push(None);
                        }
                    }
                }
                let mut read = self.store.multi_get(&to_read)?.into_iter();
                for (fk, b) in full.iter().zip(before.iter_mut()) {
                    if self.writes.pending(fk).is_none() {
                        *b = read.next().flatten();
                    }
                }
                for ((k, fk), old) in order.iter().zip(full).zip(before) {
                    let new = last.get(k).copied().flatten();
                    if let (Some(o), Some(i)) = (&old, new) {
                        if o == &vals[i] {
                            continue;
                        }
                    }
                    if let Some(o) = old {
                        deletes.push(o);
                        if new.is_none() {
                            self.writes.delete(fk.clone());
                        }
                    }
                    if let Some(i) = new {
                        self.writes.put(fk, vals[i].clone());
                        inserts.push(i as u32);
                    }
                }
            }
        }
        let mut changes = Vec::new();
        if !deletes.is_empty() {
            let old = decode_table_values(deletes.iter().map(|v| v.as_slice()), &def.schema)?;
            changes.push(ChangeBatch::deletes(old));
        }
        if !inserts.is_empty() {
            let idx = datafusion::arrow::array::UInt32Array::from(inserts);
            let cols = rows
                .columns()
                .iter()
                .map(|c| datafusion::arrow::compute::take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let b = RecordBatch::try_new_with_options(
                def.schema.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(idx.len())),
            )?;
            changes.push(ChangeBatch::inserts(b));
        }
        let subs = self
            .tables
            .get(&table)
            .map(|t| t.subscribers.clone())
            .unwrap_or_default();
        let epoch = Epoch(self.epoch.0 + 1);
        for c in &changes {
            for s in &subs {
                push(&mut self.nodes, &self.store, &mut self.writes, epoch, *s, c)?;
            }
        }
        self.table_watermark(table, &changes, watermark)
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

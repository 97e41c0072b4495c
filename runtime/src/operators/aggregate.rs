//! Retractable hash aggregate: `GROUP BY` with count, sum, avg, min and max.
//!
//! Each group keeps, per aggregate call, state that supports both adding and
//! removing rows:
//! - `count(*)`, `count(x)`: a signed count;
//! - `sum`, `avg`: an exact `i128` sum for integers and decimals (or an `f64`
//!   for floats) plus the count of non-NULL inputs (all-NULL sums are NULL);
//! - `min`, `max`: a multiset of values ordered by their memcomparable
//!   encoding, so deleting the current minimum finds the next one.
//!
//! Changes update groups as they arrive; output is held back until the
//! barrier, when each touched group emits a retraction of the row it emitted
//! last and its new row (nothing if unchanged). A group whose row count drops
//! to zero disappears, except the single group of a global aggregate, which
//! always has a row, as in SQL.
//!
//! State layout (one state-table entry per group):
//! `state table | vnode | memcomparable(group key) -> FORMAT_VERSION | rows |
//! per-call state`. Groups are cached decoded in memory, within the shared
//! state budget (`--state-cache-size`): after each barrier the least
//! recently touched clean groups are dropped while the budget is exceeded,
//! and read back with one batched `multi_get` when touched again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{
    decode_datum, decode_row, encode_datum, encode_rows, scalars_to_columns, FORMAT_VERSION,
};
use freshet_storage::keys::{row_key, table_prefix};
use freshet_storage::TableId;

use super::expr::eval;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::numeric::exact_avg;
use crate::plan::{AggCall, AggKind};

/// How a sum or average accumulates its input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NumKind {
    Int,
    Float,
    Decimal,
}

fn num_kind(t: &DataType) -> NumKind {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => NumKind::Float,
        DataType::Decimal128(_, _) => NumKind::Decimal,
        _ => NumKind::Int,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum AggState {
    Count(i64),
    Sum { int: i128, float: f64, n: i64 },
    MinMax(MultiSet),
}

/// A multiset of encoded values, ordered by their memcomparable bytes.
///
/// Most groups hold few distinct values, so it starts as a sorted `Vec`
/// (one small allocation) and turns into a `BTreeMap` past
/// [`MultiSet::SMALL`] entries, keeping inserts logarithmic for big groups.
#[derive(Debug, Clone, PartialEq)]
enum MultiSet {
    Small(Vec<(Vec<u8>, i64)>),
    Large(BTreeMap<Vec<u8>, i64>),
}

impl Default for MultiSet {
    fn default() -> Self {
        MultiSet::Small(Vec::new())
    }
}

impl MultiSet {
    const SMALL: usize = 32;

    /// Adds `w` copies (negative: removes), dropping values whose count is 0.
    fn add(&mut self, v: Vec<u8>, w: i64) {
        match self {
            MultiSet::Small(vec) => match vec.binary_search_by(|(k, _)| k.as_slice().cmp(&v)) {
                Ok(i) => {
                    vec[i].1 += w;
                    if vec[i].1 == 0 {
                        vec.remove(i);
                    }
                }
                Err(i) => {
                    vec.insert(i, (v, w));
                    if vec.len() > Self::SMALL {
                        *self = MultiSet::Large(std::mem::take(vec).into_iter().collect());
                    }
                }
            },
            MultiSet::Large(m) => match m.get_mut(&v) {
                Some(c) => {
                    *c += w;
                    if *c == 0 {
                        m.remove(&v);
                    }
                }
                None => {
                    m.insert(v, w);
                }
            },
        }
    }

    /// Keeps only the smallest (`min`) or largest value: all a min or max
    /// over append-only input needs, since no value is ever removed.
    fn keep_extreme(&mut self, min: bool) {
        if self.len() <= 1 {
            return;
        }
        let kept = match std::mem::take(self) {
            MultiSet::Small(mut v) => {
                if min {
                    v.swap_remove(0)
                } else {
                    v.pop().unwrap_or_default()
                }
            }
            MultiSet::Large(mut m) => {
                let e = if min { m.pop_first() } else { m.pop_last() };
                e.unwrap_or_default()
            }
        };
        *self = MultiSet::Small(vec![kept]);
    }

    fn first(&self) -> Option<&Vec<u8>> {
        match self {
            MultiSet::Small(v) => v.first().map(|(k, _)| k),
            MultiSet::Large(m) => m.keys().next(),
        }
    }

    fn last(&self) -> Option<&Vec<u8>> {
        match self {
            MultiSet::Small(v) => v.last().map(|(k, _)| k),
            MultiSet::Large(m) => m.keys().next_back(),
        }
    }

    fn len(&self) -> usize {
        match self {
            MultiSet::Small(v) => v.len(),
            MultiSet::Large(m) => m.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&Vec<u8>, &i64)> + '_> {
        match self {
            MultiSet::Small(v) => Box::new(v.iter().map(|(k, c)| (k, c))),
            MultiSet::Large(m) => Box::new(m.iter()),
        }
    }
}

/// A state-table write: group key and its encoded state (`None` deletes).
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// One group's state. The group's key values are not kept: they are decoded
/// from its (memcomparable) key when a row is emitted.
#[derive(Debug, Clone)]
struct Group {
    rows: i64,
    states: Vec<AggState>,
    /// Approximate bytes held (key, encoded state, overhead), as charged to
    /// the state budget.
    bytes: u32,
    /// Budget clock at the last barrier that touched the group.
    stamp: u64,
}

pub struct AggregateOperator {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggCall>,
    schema: SchemaRef,
    group_types: Vec<DataType>,
    table: TableId,
    groups: HashMap<Vec<u8>, Group>,
    /// Groups touched this epoch, with the row they had emitted before it.
    dirty: HashMap<Vec<u8>, Option<Vec<ScalarValue>>>,
    /// Event-time windows, when group key 0 follows a watermarked column.
    window: Option<WindowClose>,
    /// Bytes of `groups` charged to the state budget.
    cached_bytes: usize,
    /// Every group of the state is in `groups` (a fresh operator that has
    /// evicted nothing yet): a group not cached is new, so it is not read.
    complete: bool,
    /// Per call: `Some(true)` for a min, `Some(false)` for a max whose input
    /// is append-only, so its state keeps the extreme value alone.
    extreme_only: Vec<Option<bool>>,
    pub stats: Arc<crate::state::CacheStats>,
}

/// Window closing: group key 0 (a window bound) is a non-decreasing
/// function of input column `col`, which carries a watermark. Groups whose
/// key 0 falls below the watermark's image are complete: they are emitted
/// (`EMIT ON WINDOW CLOSE`) and their state deleted; rows for them that
/// arrive later are late and dropped.
struct WindowClose {
    col: usize,
    input_schema: SchemaRef,
    emit_on_close: bool,
    /// Latest watermark on group key 0.
    wm: Option<ScalarValue>,
    /// The watermark up to which groups were closed (persisted).
    closed: Option<ScalarValue>,
    late: Arc<crate::time::TimeStats>,
    out: Vec<crate::time::Watermark>,
}

/// One aggregate's input column, pre-cast once per batch.
enum Input {
    None,
    Int(ArrayRef),
    Float(ArrayRef),
    Decimal(ArrayRef),
    Any(ArrayRef),
    /// Multiset elements of a value aggregate (see `agg_values`).
    Elements(Vec<Option<Vec<u8>>>),
}

impl AggregateOperator {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggs: Vec<AggCall>,
        schema: SchemaRef,
        table: TableId,
    ) -> Self {
        let group_types = schema
            .fields()
            .iter()
            .take(group_exprs.len())
            .map(|f| f.data_type().clone())
            .collect();
        AggregateOperator {
            group_exprs,
            aggs,
            schema,
            group_types,
            table,
            groups: HashMap::new(),
            dirty: HashMap::new(),
            window: None,
            cached_bytes: 0,
            extreme_only: Vec::new(),
            complete: false,
            stats: Arc::new(crate::state::CacheStats::default()),
        }
    }

    /// The input is append-only (rows are never deleted): min and max keep
    /// only their current extreme instead of every value.
    pub fn append_only_input(mut self, yes: bool) -> Self {
        self.extreme_only = self
            .aggs
            .iter()
            .map(|a| match (yes, a.kind, a.distinct) {
                (true, AggKind::Min, false) => Some(true),
                (true, AggKind::Max, false) => Some(false),
                _ => None,
            })
            .collect();
        self
    }

    /// Closes windows by the watermark on input column `col` (see
    /// [`WindowClose`]); with `emit_on_close`, groups are emitted once,
    /// when closed, instead of updated as rows arrive.
    pub fn with_window(
        mut self,
        col: usize,
        input_schema: SchemaRef,
        emit_on_close: bool,
        late: Arc<crate::time::TimeStats>,
    ) -> Self {
        self.window = Some(WindowClose {
            col,
            input_schema,
            emit_on_close,
            wm: None,
            closed: None,
            late,
            out: Vec::new(),
        });
        self
    }

    /// Where a group's state lives. Windowed groups are stored in key
    /// order (one fixed vnode) so the closed ones are one range scan.
    fn state_key(&self, key: &[u8]) -> Vec<u8> {
        if self.window.is_some() {
            let mut k = window_prefix(self.table);
            k.extend_from_slice(key);
            k
        } else {
            row_key(self.table, key)
        }
    }

    /// Drops rows whose window is already closed, counting them as late.
    fn drop_late(&self, batch: ChangeBatch) -> Result<ChangeBatch> {
        let Some(w) = &self.window else {
            return Ok(batch);
        };
        let Some(wm) = &w.wm else {
            return Ok(batch);
        };
        let key0 = eval(&self.group_exprs[0], &batch.data)?;
        let late = crate::time::below(&key0, wm)?;
        let n = late.true_count();
        if n == 0 {
            return Ok(batch);
        }
        w.late.late(n as u64);
        let keep = datafusion::arrow::compute::not(&late)?;
        batch.filter(&keep)
    }

    /// Emits (`EMIT ON WINDOW CLOSE`) and deletes every group below the
    /// watermark; returns the rows emitted.
    fn close_windows(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<(Vec<ScalarValue>, i64)>> {
        let Some(w) = &self.window else {
            return Ok(Vec::new());
        };
        let Some(wm) = w.wm.clone() else {
            return Ok(Vec::new());
        };
        if w.closed.as_ref() == Some(&wm) {
            return Ok(Vec::new());
        }
        let emit = w.emit_on_close;
        let mut bound = Vec::new();
        encode_datum(&mut bound, &wm.cast_to(&self.group_types[0])?)?;
        let prefix = window_prefix(self.table);
        let mut closed: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .groups
            .keys()
            .filter(|k| !k.is_empty() && k.as_slice() < bound.as_slice())
            .map(|k| (k.clone(), None))
            .collect();
        let mut upper = prefix.clone();
        upper.extend_from_slice(&bound);
        ctx.store.scan_below_while(&prefix, &upper, |k, v| {
            let key = &k[prefix.len()..];
            closed
                .entry(key.to_vec())
                .or_insert_with(|| Some(v.to_vec()));
            Ok(true)
        })?;
        let mut out = Vec::new();
        for (key, stored) in closed {
            let g = match self.groups.remove(&key) {
                Some(g) => {
                    self.release(g.bytes as usize);
                    Some(g)
                }
                None => stored.map(|v| self.decode_group(&key, &v)).transpose()?,
            };
            if let (true, Some(g)) = (emit, g) {
                if let Some(row) = self.output_row(&key, &g)? {
                    out.push((row, 1));
                }
            }
            ctx.writes.delete(self.state_key(&key));
        }
        crate::time::save_operator_wm(ctx.writes, self.table, &wm)?;
        if let Some(w) = &mut self.window {
            w.closed = Some(wm.clone());
            w.out.push(crate::time::Watermark { col: 0, value: wm });
        }
        Ok(out)
    }

    fn is_global(&self) -> bool {
        self.group_exprs.is_empty()
    }

    fn empty_states(&self) -> Vec<AggState> {
        self.aggs
            .iter()
            .map(|a| match a.kind {
                _ if a.distinct => AggState::MinMax(MultiSet::default()),
                AggKind::CountStar | AggKind::Count => AggState::Count(0),
                AggKind::Sum | AggKind::Avg => AggState::Sum {
                    int: 0,
                    float: 0.0,
                    n: 0,
                },
                AggKind::Min | AggKind::Max => AggState::MinMax(MultiSet::default()),
                _ => AggState::MinMax(MultiSet::default()),
            })
            .collect()
    }

    fn prepare_input(&self, a: &AggCall, batch: &RecordBatch) -> Result<Input> {
        let Some(arg) = &a.arg else {
            return Ok(Input::None);
        };
        let arr = eval(arg, batch)?;
        Ok(match a.kind {
            k if super::agg_values::is_value_agg(k) => {
                Input::Elements(super::agg_values::elements(a, &arr, batch)?)
            }
            _ if a.distinct => Input::Any(arr),
            AggKind::CountStar => Input::None,
            AggKind::Count | AggKind::Min | AggKind::Max => Input::Any(arr),
            AggKind::Sum | AggKind::Avg => match num_kind(arr.data_type()) {
                NumKind::Int => Input::Int(cast(&arr, &DataType::Int64)?),
                NumKind::Float => Input::Float(cast(&arr, &DataType::Float64)?),
                NumKind::Decimal => Input::Decimal(arr),
            },
            _ => Input::Any(arr),
        })
    }

    /// The encoded group key of every row of `batch`.
    fn keys_of(&self, batch: &ChangeBatch) -> Result<Vec<Vec<u8>>> {
        let n = batch.num_rows();
        let key_cols = self
            .group_exprs
            .iter()
            .map(|e| eval(e, &batch.data))
            .collect::<Result<Vec<_>>>()?;
        Ok(encode_rows(&key_cols, n)?)
    }

    /// Applies one change batch to the groups (the pure state transition).
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.keys_of(batch)?;
        self.apply_keyed(batch, keys)
    }

    /// Loads the groups of `keys` that are not cached from committed state.
    fn load(&mut self, keys: &[Vec<u8>], ctx: &EpochCtx<'_>) -> Result<()> {
        let mut missing: Vec<&Vec<u8>> = Vec::new();
        for k in keys {
            if self.groups.contains_key(k) {
                self.stats.hit();
            } else {
                missing.push(k);
            }
        }
        if self.complete || missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        missing.dedup();
        for _ in &missing {
            self.stats.miss();
        }
        let full: Vec<Vec<u8>> = missing.iter().map(|k| self.state_key(k)).collect();
        for (k, v) in missing.into_iter().zip(ctx.store.multi_get(&full)?) {
            if let Some(v) = v {
                let mut g = self.decode_group(k, &v)?;
                g.bytes = group_bytes(k, v.len());
                self.charge(g.bytes as usize);
                self.groups.insert(k.clone(), g);
            }
        }
        Ok(())
    }

    fn charge(&mut self, bytes: usize) {
        self.cached_bytes += bytes;
        crate::state::budget::charge(bytes);
    }

    fn release(&mut self, bytes: usize) {
        let b = bytes.min(self.cached_bytes);
        self.cached_bytes -= b;
        crate::state::budget::release(b);
    }

    /// Drops the least recently touched clean groups while the shared state
    /// budget is exceeded (they stay in storage). One pass over the groups
    /// frees at least an eighth of this aggregate's cache, so the pass is
    /// amortized over many barriers.
    fn evict(&mut self) {
        if !crate::state::budget::over() || self.groups.len() <= 1 {
            return;
        }
        let excess = crate::state::budget::used() - crate::state::budget::capacity();
        let target = excess.max(self.cached_bytes / 8).min(self.cached_bytes);
        let mut victims: Vec<(u64, &Vec<u8>, u32)> = self
            .groups
            .iter()
            .filter(|(k, _)| !k.is_empty() && !self.dirty.contains_key(*k))
            .map(|(k, g)| (g.stamp, k, g.bytes))
            .collect();
        victims.sort_unstable_by_key(|(s, _, _)| *s);
        let mut freed = 0usize;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        for (_, k, b) in victims {
            if freed >= target {
                break;
            }
            freed += b as usize;
            doomed.push(k.clone());
        }
        if !doomed.is_empty() {
            self.complete = false;
        }
        for k in doomed {
            self.groups.remove(&k);
        }
        self.release(freed);
    }

    fn apply_keyed(&mut self, batch: &ChangeBatch, keys: Vec<Vec<u8>>) -> Result<()> {
        let inputs = self
            .aggs
            .iter()
            .map(|a| self.prepare_input(a, &batch.data))
            .collect::<Result<Vec<_>>>()?;
        let filters: Vec<Option<BooleanArray>> = self
            .aggs
            .iter()
            .map(|a| match &a.filter {
                None => Ok(None),
                Some(f) => Ok(Some(
                    cast(&eval(f, &batch.data)?, &DataType::Boolean)?
                        .as_boolean()
                        .clone(),
                )),
            })
            .collect::<Result<_>>()?;
        let empty = self.empty_states();
        for (row, key) in keys.into_iter().enumerate() {
            let w = batch.weights.value(row);
            if w == 0 {
                continue;
            }
            if !self.dirty.contains_key(&key) {
                let before = match self.groups.get(&key) {
                    Some(g) => self.output_row(&key, g)?,
                    None => None,
                };
                self.dirty.insert(key.clone(), before);
            }
            if !self.groups.contains_key(&key) {
                self.groups.insert(
                    key.clone(),
                    Group {
                        rows: 0,
                        states: empty.clone(),
                        bytes: 0,
                        stamp: 0,
                    },
                );
            }
            let group = self
                .groups
                .get_mut(&key)
                .ok_or_else(|| RuntimeError::Internal("group vanished".into()))?;
            group.rows += w;
            for (i, state) in group.states.iter_mut().enumerate() {
                if let Some(f) = &filters[i] {
                    if !f.is_valid(row) || !f.value(row) {
                        continue;
                    }
                }
                update(state, &inputs[i], row, w)?;
                if let (Some(Some(min)), AggState::MinMax(m)) =
                    (self.extreme_only.get(i), &mut *state)
                {
                    m.keep_extreme(*min);
                }
            }
        }
        Ok(())
    }

    fn output_row(&self, key: &[u8], g: &Group) -> Result<Option<Vec<ScalarValue>>> {
        if g.rows <= 0 && !self.is_global() {
            return Ok(None);
        }
        let mut row = decode_row(key, &self.group_types)?;
        for (a, s) in self.aggs.iter().zip(&g.states) {
            row.push(finish(a, s, g.rows)?);
        }
        Ok(Some(row))
    }

    fn encode_group(&self, g: &Group) -> Result<Vec<u8>> {
        let mut v = vec![FORMAT_VERSION];
        v.extend_from_slice(&g.rows.to_be_bytes());
        for s in &g.states {
            match s {
                AggState::Count(c) => v.extend_from_slice(&c.to_be_bytes()),
                AggState::Sum { int, float, n } => {
                    v.extend_from_slice(&int.to_be_bytes());
                    v.extend_from_slice(&float.to_bits().to_be_bytes());
                    v.extend_from_slice(&n.to_be_bytes());
                }
                AggState::MinMax(m) => {
                    v.extend_from_slice(&(m.len() as u32).to_be_bytes());
                    for (val, c) in m.iter() {
                        v.extend_from_slice(&(val.len() as u32).to_be_bytes());
                        v.extend_from_slice(val);
                        v.extend_from_slice(&c.to_be_bytes());
                    }
                }
            }
        }
        Ok(v)
    }

    fn decode_group(&self, key: &[u8], mut v: &[u8]) -> Result<Group> {
        fn take<'a>(v: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
            if v.len() < n {
                return Err(RuntimeError::Internal("truncated aggregate state".into()));
            }
            let (h, t) = v.split_at(n);
            *v = t;
            Ok(h)
        }
        fn int<const N: usize>(v: &mut &[u8]) -> Result<[u8; N]> {
            let mut a = [0u8; N];
            a.copy_from_slice(take(v, N)?);
            Ok(a)
        }
        if take(&mut v, 1)?[0] != FORMAT_VERSION {
            return Err(RuntimeError::Internal(
                "unknown aggregate state version".into(),
            ));
        }
        let rows = i64::from_be_bytes(int::<8>(&mut v)?);
        let mut states = self.empty_states();
        for s in states.iter_mut() {
            match s {
                AggState::Count(c) => *c = i64::from_be_bytes(int::<8>(&mut v)?),
                AggState::Sum { int: i, float, n } => {
                    *i = i128::from_be_bytes(int::<16>(&mut v)?);
                    *float = f64::from_bits(u64::from_be_bytes(int::<8>(&mut v)?));
                    *n = i64::from_be_bytes(int::<8>(&mut v)?);
                }
                AggState::MinMax(m) => {
                    let len = u32::from_be_bytes(int::<4>(&mut v)?);
                    for _ in 0..len {
                        let l = u32::from_be_bytes(int::<4>(&mut v)?) as usize;
                        let val = take(&mut v, l)?.to_vec();
                        let c = i64::from_be_bytes(int::<8>(&mut v)?);
                        m.add(val, c);
                    }
                }
            }
        }
        let _ = key;
        Ok(Group {
            rows,
            states,
            bytes: 0,
            stamp: 0,
        })
    }

    fn rows_to_batch(&self, rows: Vec<(Vec<ScalarValue>, i64)>) -> Result<ChangeBatch> {
        let types: Vec<DataType> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (vals, weights): (Vec<Vec<ScalarValue>>, Vec<i64>) = rows.into_iter().unzip();
        let cols = scalars_to_columns(&vals, &types)?;
        ChangeBatch::from_columns(self.schema.clone(), cols, weights)
    }

    /// Emits retractions and new rows for every touched group (the pure part
    /// of the barrier), returning the state writes to make.
    pub fn flush(&mut self) -> Result<(Option<ChangeBatch>, Vec<StateWrite>)> {
        let mut out = Vec::new();
        let mut writes = Vec::new();
        let mut dirty: Vec<(Vec<u8>, Option<Vec<ScalarValue>>)> = self.dirty.drain().collect();
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        let stamp = crate::state::budget::tick();
        let (mut charged, mut released) = (0usize, 0usize);
        for (key, before) in dirty {
            let Some(g) = self.groups.get(&key) else {
                continue;
            };
            let new = self.output_row(&key, g)?;
            if before != new {
                if let Some(old) = before {
                    out.push((old, -1));
                }
                if let Some(new) = new {
                    out.push((new, 1));
                }
            }
            if g.rows == 0 && !self.is_global() {
                if let Some(g) = self.groups.remove(&key) {
                    released += g.bytes as usize;
                }
                writes.push((key, None));
            } else {
                let v = self.encode_group(g)?;
                let bytes = group_bytes(&key, v.len());
                if let Some(g) = self.groups.get_mut(&key) {
                    released += g.bytes as usize;
                    charged += bytes as usize;
                    g.bytes = bytes;
                    g.stamp = stamp;
                }
                writes.push((key, Some(v)));
            }
        }
        self.charge(charged);
        self.release(released);
        let batch = if out.is_empty() {
            None
        } else {
            Some(self.rows_to_batch(out)?)
        };
        Ok((batch, writes))
    }
}

/// Bytes a cached group is charged: its key, its encoded state, overhead.
fn group_bytes(key: &[u8], encoded: usize) -> u32 {
    (key.len() + encoded * 2 + 96).min(u32::MAX as usize) as u32
}

/// Prefix of a windowed aggregate's groups (one fixed vnode: key order).
fn window_prefix(table: TableId) -> Vec<u8> {
    let mut k = table_prefix(table);
    k.extend_from_slice(&[0, 0]);
    k
}

fn update(state: &mut AggState, input: &Input, row: usize, w: i64) -> Result<()> {
    match (state, input) {
        (AggState::Count(c), Input::None) => *c += w,
        (AggState::Count(c), Input::Any(a)) => {
            if a.is_valid(row) {
                *c += w
            }
        }
        (AggState::Sum { int, n, .. }, Input::Int(a)) => {
            if a.is_valid(row) {
                *int += i128::from(a.as_primitive::<Int64Type>().value(row)) * i128::from(w);
                *n += w;
            }
        }
        (AggState::Sum { int, n, .. }, Input::Decimal(a)) => {
            if a.is_valid(row) {
                *int += a.as_primitive::<Decimal128Type>().value(row) * i128::from(w);
                *n += w;
            }
        }
        (AggState::Sum { float, n, .. }, Input::Float(a)) => {
            if a.is_valid(row) {
                *float += a.as_primitive::<Float64Type>().value(row) * w as f64;
                *n += w;
                if *n == 0 {
                    // Reset accumulated rounding error when the sum is empty.
                    *float = 0.0;
                }
            }
        }
        (AggState::MinMax(m), Input::Elements(e)) => {
            if let Some(Some(k)) = e.get(row) {
                m.add(k.clone(), w);
            }
        }
        (AggState::MinMax(m), Input::Any(a)) => {
            if a.is_valid(row) {
                let mut k = Vec::new();
                encode_datum(&mut k, &ScalarValue::try_from_array(a.as_ref(), row)?)?;
                m.add(k, w);
            }
        }
        _ => {
            return Err(RuntimeError::Internal(
                "aggregate input does not match its state".into(),
            ))
        }
    }
    Ok(())
}

/// `count`, `sum` or `avg` over the distinct values of a group.
fn distinct_value(a: &AggCall, m: &MultiSet) -> Result<ScalarValue> {
    let n = m.len() as i64;
    if a.kind == AggKind::Count {
        return Ok(ScalarValue::Int64(Some(n)));
    }
    if n == 0 {
        return Ok(ScalarValue::try_from(&a.output_type)?);
    }
    let mut int: i128 = 0;
    let mut float: f64 = 0.0;
    for (k, _) in m.iter() {
        match decode_datum(&mut k.as_slice(), &a.input_type)? {
            ScalarValue::Decimal128(Some(v), _, _) => int += v,
            v if num_kind(&a.input_type) == NumKind::Float => {
                if let ScalarValue::Float64(Some(f)) = v.cast_to(&DataType::Float64)? {
                    float += f;
                }
            }
            v => {
                if let ScalarValue::Int64(Some(i)) = v.cast_to(&DataType::Int64)? {
                    int += i128::from(i);
                }
            }
        }
    }
    let sum_state = AggState::Sum { int, float, n };
    let plain = AggCall {
        distinct: false,
        ..a.clone()
    };
    finish(&plain, &sum_state, n)
}

fn finish(a: &AggCall, s: &AggState, rows: i64) -> Result<ScalarValue> {
    let out = &a.output_type;
    let v = match (a.kind, s) {
        (k, AggState::MinMax(m)) if super::agg_values::is_value_agg(k) => {
            super::agg_values::finish(a, m.iter())?
        }
        (AggKind::Count | AggKind::Sum | AggKind::Avg, AggState::MinMax(m)) if a.distinct => {
            distinct_value(a, m)?
        }
        (AggKind::CountStar, _) => ScalarValue::Int64(Some(rows)),
        (AggKind::Count, AggState::Count(c)) => ScalarValue::Int64(Some(*c)),
        (AggKind::Sum, AggState::Sum { int, float, n }) => {
            if *n == 0 {
                ScalarValue::try_from(out)?
            } else {
                match num_kind(&a.input_type) {
                    NumKind::Int => {
                        // Out of bigint range: NULL (and a warning), never a stopped view.
                        ScalarValue::Int64(i64::try_from(*int).ok().or_else(|| {
                            tracing::warn!(agg = %a.display, "sum out of bigint range; the view shows NULL");
                            None
                        }))
                    }
                    NumKind::Float => ScalarValue::Float64(Some(*float)),
                    NumKind::Decimal => match out {
                        DataType::Decimal128(p, s) => ScalarValue::Decimal128(Some(*int), *p, *s),
                        _ => {
                            return Err(RuntimeError::Internal(
                                "sum of decimal is not decimal".into(),
                            ))
                        }
                    },
                }
            }
        }
        (AggKind::Avg, AggState::Sum { int, float, n }) => {
            if *n == 0 {
                ScalarValue::try_from(out)?
            } else {
                match (num_kind(&a.input_type), out) {
                    // PostgreSQL's numeric average: exact, rounded half
                    // away from zero at the output's scale.
                    (NumKind::Int, DataType::Decimal128(p, s2)) => {
                        ScalarValue::Decimal128(exact_avg(*int, *n, (*s2).max(0) as u32), *p, *s2)
                    }
                    (NumKind::Int, _) => ScalarValue::Float64(Some(*int as f64 / *n as f64)),
                    (NumKind::Float, _) => ScalarValue::Float64(Some(*float / *n as f64)),
                    (NumKind::Decimal, DataType::Decimal128(p, s2)) => {
                        let s1 = match &a.input_type {
                            DataType::Decimal128(_, s) => *s,
                            _ => 0,
                        };
                        ScalarValue::Decimal128(
                            exact_avg(*int, *n, (*s2 - s1).max(0) as u32),
                            *p,
                            *s2,
                        )
                    }
                    _ => {
                        return Err(RuntimeError::Internal(
                            "avg of decimal is not decimal".into(),
                        ))
                    }
                }
            }
        }
        (AggKind::Min, AggState::MinMax(m)) | (AggKind::Max, AggState::MinMax(m)) => {
            let entry = if a.kind == AggKind::Min {
                m.first()
            } else {
                m.last()
            };
            match entry {
                None => ScalarValue::try_from(out)?,
                Some(k) => decode_datum(&mut k.as_slice(), &a.input_type)?,
            }
        }
        _ => {
            return Err(RuntimeError::Internal(
                "aggregate state does not match its call".into(),
            ))
        }
    };
    if &v.data_type() != out {
        Ok(v.cast_to(out)?)
    } else {
        Ok(v)
    }
}

impl Drop for AggregateOperator {
    fn drop(&mut self) {
        crate::state::budget::release(self.cached_bytes);
    }
}

impl Operator for AggregateOperator {
    fn on_start(&mut self, ctx: &mut EpochCtx<'_>, fresh: bool) -> Result<()> {
        if let Some(w) = &mut self.window {
            let wm = crate::time::load_operator_wm(ctx.store, self.table, &self.group_types[0])?;
            w.wm = wm.clone();
            w.closed = wm;
        }
        // A new aggregate starts with all of its (empty) state in memory.
        self.complete = fresh;
        // Groups are loaded when first touched; a global aggregate's one
        // group is loaded now.
        if !fresh && self.is_global() {
            self.load(&[Vec::new()], ctx)?;
        }
        if self.is_global() && self.groups.is_empty() {
            let g = Group {
                rows: 0,
                states: self.empty_states(),
                bytes: 0,
                stamp: 0,
            };
            self.groups.insert(Vec::new(), g);
            // Never emitted: the barrier emits the initial row.
            self.dirty.insert(Vec::new(), None);
        }
        Ok(())
    }

    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let batch = self.drop_late(batch)?;
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let keys = self.keys_of(&batch)?;
        self.load(&keys, ctx)?;
        self.apply_keyed(&batch, keys)?;
        Ok(vec![])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let (mut out, writes) = self.flush()?;
        for (k, v) in writes {
            let key = self.state_key(&k);
            match v {
                Some(v) => ctx.writes.put(key, v),
                None => ctx.writes.delete(key),
            }
        }
        if self.window.as_ref().is_some_and(|w| w.emit_on_close) {
            out = None; // results leave only when their window closes
        }
        let closed = self.close_windows(ctx)?;
        if !closed.is_empty() {
            let b = self.rows_to_batch(closed)?;
            out = Some(match out {
                Some(o) => ChangeBatch::concat(&self.schema, &[o, b])?,
                None => b,
            });
        }
        self.evict();
        Ok(out.into_iter().collect())
    }

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        let Some(w) = &self.window else {
            return Ok((Vec::new(), Vec::new()));
        };
        if wm.col != w.col {
            return Ok((Vec::new(), Vec::new()));
        }
        let v = super::project::eval_at(&self.group_exprs[0], &w.input_schema, w.col, &wm.value)?;
        if let Some(w) = &mut self.window {
            if !v.is_null() {
                crate::time::advance(&mut w.wm, v);
            }
        }
        Ok((Vec::new(), Vec::new()))
    }

    fn take_watermarks(&mut self) -> Vec<crate::time::Watermark> {
        self.window
            .as_mut()
            .map(|w| std::mem::take(&mut w.out))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::col;

    fn call(kind: AggKind, arg: Option<Arc<dyn PhysicalExpr>>) -> AggCall {
        AggCall {
            kind,
            arg,
            filter: None,
            distinct: false,
            order: Vec::new(),
            separator: None,
            input_jsonb: false,
            input_type: DataType::Int64,
            output_type: DataType::Int64,
            display: format!("{kind:?}"),
        }
    }

    #[test]
    fn multiset_grows_and_shrinks() {
        let mut m = MultiSet::default();
        for i in (0..100u8).rev() {
            m.add(vec![i], 2);
        }
        assert!(matches!(m, MultiSet::Large(_)));
        assert_eq!(m.first(), Some(&vec![0]));
        assert_eq!(m.last(), Some(&vec![99]));
        m.add(vec![0], -2);
        m.add(vec![99], -1);
        assert_eq!(m.first(), Some(&vec![1]));
        assert_eq!(m.last(), Some(&vec![99]));
        assert_eq!(m.len(), 99);
        let mut s = MultiSet::default();
        s.add(vec![5], 1);
        s.add(vec![3], 1);
        s.add(vec![5], -1);
        assert_eq!(s, MultiSet::Small(vec![(vec![3], 1)]));
    }

    #[test]
    fn min_max_count_sum_under_deletes() {
        let input = ChangeBatch::from_pretty("T I\n+ a 5\n+ a 3\n+ a 9\n+ b 1");
        let s = input.schema();
        let out = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
            Field::new("mn", DataType::Int64, true),
            Field::new("mx", DataType::Int64, true),
        ]));
        let v = col("c1", &s).unwrap();
        let mut op = AggregateOperator::new(
            vec![col("c0", &s).unwrap()],
            vec![
                call(AggKind::CountStar, None),
                call(AggKind::Sum, Some(v.clone())),
                call(AggKind::Min, Some(v.clone())),
                call(AggKind::Max, Some(v)),
            ],
            out,
            TableId(9),
        );
        op.apply(&input).unwrap();
        let (b, _) = op.flush().unwrap();
        assert_eq!(
            b.unwrap().to_pretty_lines(),
            vec!["+1 a 3 17 3 9", "+1 b 1 1 1 1"]
        );
        op.apply(&ChangeBatch::from_pretty("T I\n- a 3\n- b 1"))
            .unwrap();
        let (b, writes) = op.flush().unwrap();
        assert_eq!(
            b.unwrap().to_pretty_lines(),
            vec!["+1 a 2 14 5 9", "-1 a 3 17 3 9", "-1 b 1 1 1 1"]
        );
        assert_eq!(
            writes.iter().filter(|(_, v)| v.is_none()).count(),
            1,
            "group b is deleted"
        );
        // State survives encoding.
        let g = op.groups.values().next().unwrap().clone();
        let enc = op.encode_group(&g).unwrap();
        let key = op.groups.keys().next().unwrap().clone();
        assert_eq!(op.decode_group(&key, &enc).unwrap().states, g.states);
    }
}

//! Retractable hash aggregate: `GROUP BY` with count, sum, avg, min, max,
//! `DISTINCT` and the value aggregates (see [`super::agg_state`] for what
//! each group keeps).
//!
//! Changes update groups as they arrive; output is held back until the
//! barrier, when each group whose state changed emits a retraction of the
//! row it emitted last and its new row (nothing if the row is the same). A
//! group whose row count drops to zero disappears, except the single group
//! of a global aggregate, which always has a row, as in SQL.
//!
//! State: a [`ValueTable`] of groups keyed by the memcomparable group key,
//! cached within the shared state budget; windowed aggregates keep it in
//! key order, so the windows a watermark closes are one range scan.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_datum, encode_rows};
use freshet_storage::TableId;

use super::agg_state::{num_kind, update, AggState, GroupCodec, NumKind};
use super::expr::eval;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;
use crate::plan::{AggCall, AggKind};
use crate::state::{KeyLayout, ValueTable};

pub struct AggregateOperator {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggCall>,
    schema: SchemaRef,
    group_types: Vec<DataType>,
    table_id: TableId,
    groups: ValueTable<GroupCodec>,
    /// Event-time windows, when group key 0 follows a watermarked column.
    window: Option<WindowClose>,
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

/// One aggregate's input column, pre-cast or pre-encoded once per batch.
pub(super) enum Input {
    None,
    Int(ArrayRef),
    Float(ArrayRef),
    Decimal(ArrayRef),
    Any(ArrayRef),
    /// Multiset elements (memcomparable values, or see `agg_values`);
    /// `None` for a NULL, which the aggregate skips.
    Elements(Vec<Option<Vec<u8>>>),
}

impl AggregateOperator {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggs: Vec<AggCall>,
        schema: SchemaRef,
        table: TableId,
    ) -> Self {
        let group_types: Vec<DataType> = schema
            .fields()
            .iter()
            .take(group_exprs.len())
            .map(|f| f.data_type().clone())
            .collect();
        let codec = GroupCodec::new(aggs.clone(), group_types.clone());
        let groups = ValueTable::new(table, KeyLayout::Hashed, codec);
        let stats = groups.stats.clone();
        AggregateOperator {
            group_exprs,
            aggs,
            schema,
            group_types,
            table_id: table,
            groups,
            window: None,
            extreme_only: Vec::new(),
            stats,
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
        let codec = GroupCodec::new(self.aggs.clone(), self.group_types.clone());
        self.groups = ValueTable::new(self.table_id, KeyLayout::Ordered, codec);
        self.stats = self.groups.stats.clone();
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
    fn close_windows(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Emit> {
        let mut out = Emit::new(self.aggs.len());
        let Some(w) = &self.window else {
            return Ok(out);
        };
        let Some(wm) = w.wm.clone() else {
            return Ok(out);
        };
        if w.closed.as_ref() == Some(&wm) {
            return Ok(out);
        }
        let emit = w.emit_on_close;
        let mut bound = Vec::new();
        encode_datum(&mut bound, &wm.cast_to(&self.group_types[0])?)?;
        let closed = self.groups.take_below(ctx.store, ctx.writes, &bound)?;
        if emit {
            for (key, g) in closed {
                if let Some(vals) = self.groups.codec().values(&g)? {
                    out.push(&key, vals, 1);
                }
            }
        }
        crate::time::save_operator_wm(ctx.writes, self.table_id, &wm)?;
        if let Some(w) = &mut self.window {
            w.closed = Some(wm.clone());
            w.out.push(crate::time::Watermark { col: 0, value: wm });
        }
        Ok(out)
    }

    fn is_global(&self) -> bool {
        self.group_exprs.is_empty()
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
            AggKind::CountStar => Input::None,
            AggKind::Count if !a.distinct => Input::Any(arr),
            AggKind::Sum | AggKind::Avg if !a.distinct => match num_kind(arr.data_type()) {
                NumKind::Int => Input::Int(cast(&arr, &DataType::Int64)?),
                NumKind::Float => Input::Float(cast(&arr, &DataType::Float64)?),
                NumKind::Decimal => Input::Decimal(arr),
            },
            // min, max and DISTINCT keep a multiset of encoded values,
            // encoded here a column at a time.
            _ => {
                let enc = encode_rows(std::slice::from_ref(&arr), arr.len())?;
                Input::Elements(
                    enc.into_iter()
                        .enumerate()
                        .map(|(i, e)| arr.is_valid(i).then_some(e))
                        .collect(),
                )
            }
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

    /// Applies one change batch to the groups (the pure state transition;
    /// the groups it touches must be loaded).
    pub fn apply(&mut self, batch: &ChangeBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.keys_of(batch)?;
        self.apply_keyed(batch, keys)
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
        for (row, key) in keys.into_iter().enumerate() {
            let w = batch.weights.value(row);
            if w == 0 {
                continue;
            }
            let group = self.groups.touch(&key)?;
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

    fn to_batch(&self, out: Emit) -> Result<ChangeBatch> {
        out.into_batch(&self.schema, &self.group_types)
    }

    /// Ends the epoch: writes the changed groups into `writes` and returns
    /// a retraction of each one's previous row and its new row.
    pub fn flush(&mut self, writes: &mut freshet_storage::WriteSet) -> Result<Option<ChangeBatch>> {
        let global = self.is_global();
        let mut out = Emit::new(self.aggs.len());
        self.groups.flush(
            writes,
            |g| global || g.rows != 0,
            |codec, c| {
                let old = c.before.flatten();
                let new = match c.after {
                    Some(g) => codec.values(g)?,
                    None => None,
                };
                if old != new {
                    if let Some(old) = old {
                        out.push(c.key, old, -1);
                    }
                    if let Some(new) = new {
                        out.push(c.key, new, 1);
                    }
                }
                Ok(())
            },
        )?;
        if out.is_empty() {
            Ok(None)
        } else {
            Ok(Some(self.to_batch(out)?))
        }
    }
}

/// Output rows gathered a column at a time: each row's group key still
/// encoded (decoded into key columns in one pass at the end), its weight,
/// and one value per call.
struct Emit {
    keys: Vec<Vec<u8>>,
    weights: Vec<i64>,
    values: Vec<Vec<ScalarValue>>,
}

impl Emit {
    fn new(calls: usize) -> Self {
        Emit {
            keys: Vec::new(),
            weights: Vec::new(),
            values: vec![Vec::new(); calls],
        }
    }

    fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    fn push(&mut self, key: &[u8], vals: Vec<ScalarValue>, w: i64) {
        self.keys.push(key.to_vec());
        self.weights.push(w);
        for (col, v) in self.values.iter_mut().zip(vals) {
            col.push(v);
        }
    }

    fn into_batch(self, schema: &SchemaRef, group_types: &[DataType]) -> Result<ChangeBatch> {
        let mut cols = decode_rows(self.keys.iter().map(|k| k.as_slice()), group_types)?;
        let value_fields = schema.fields().iter().skip(group_types.len());
        for (vals, f) in self.values.into_iter().zip(value_fields) {
            let arr = if vals.is_empty() {
                new_empty_array(f.data_type())
            } else {
                ScalarValue::iter_to_array(vals)?
            };
            cols.push(if arr.data_type() != f.data_type() {
                cast(&arr, f.data_type())?
            } else {
                arr
            });
        }
        ChangeBatch::from_columns(schema.clone(), cols, self.weights)
    }
}

impl Operator for AggregateOperator {
    fn on_start(&mut self, ctx: &mut EpochCtx<'_>, fresh: bool) -> Result<()> {
        if let Some(w) = &mut self.window {
            let wm = crate::time::load_operator_wm(ctx.store, self.table_id, &self.group_types[0])?;
            w.wm = wm.clone();
            w.closed = wm;
        }
        // A new aggregate starts with all of its (empty) state in memory;
        // otherwise groups are loaded when first touched.
        self.groups.set_complete(fresh);
        if self.is_global() {
            // The one group always has a row: a new one emits its initial
            // row at the first barrier.
            self.groups.load(ctx.store, &[Vec::new()])?;
            if self.groups.get(&[]).is_none() {
                self.groups.touch(&[])?;
            }
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
        self.groups.load(ctx.store, &keys)?;
        self.apply_keyed(&batch, keys)?;
        Ok(vec![])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let mut out = self.flush(ctx.writes)?;
        if self.window.as_ref().is_some_and(|w| w.emit_on_close) {
            out = None; // results leave only when their window closes
        }
        let closed = self.close_windows(ctx)?;
        if !closed.is_empty() {
            let b = self.to_batch(closed)?;
            out = Some(match out {
                Some(o) => ChangeBatch::concat(&self.schema, &[o, b])?,
                None => b,
            });
        }
        self.groups.evict();
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
    use freshet_storage::WriteSet;

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
        let mut ws = WriteSet::default();
        let b = op.flush(&mut ws).unwrap();
        assert_eq!(
            b.unwrap().to_pretty_lines(),
            vec!["+1 a 3 17 3 9", "+1 b 1 1 1 1"]
        );
        assert_eq!(ws.len(), 2);
        op.apply(&ChangeBatch::from_pretty("T I\n- a 3\n- b 1"))
            .unwrap();
        let mut ws = WriteSet::default();
        let b = op.flush(&mut ws).unwrap();
        assert_eq!(
            b.unwrap().to_pretty_lines(),
            vec!["+1 a 2 14 5 9", "-1 a 3 17 3 9", "-1 b 1 1 1 1"]
        );
        assert_eq!(ws.len(), 2, "group a is rewritten, group b deleted");
        // A change that nets out emits nothing.
        op.apply(&ChangeBatch::from_pretty("T I\n+ a 4\n- a 4"))
            .unwrap();
        let mut ws = WriteSet::default();
        assert!(op.flush(&mut ws).unwrap().is_none());
    }
}

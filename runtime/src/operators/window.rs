//! OVER window functions (`ROW_NUMBER`, `RANK`, `LAG`, `FIRST_VALUE`,
//! aggregates over `ROWS` / `RANGE` frames, ...), maintained per partition.
//!
//! Rows live in sorted state ([`super::sorted`]). At the barrier, for each
//! partition the epoch touched, the functions are evaluated by DataFusion's
//! own window evaluators over the part of the partition a change can reach,
//! once over the committed rows and once with the epoch's changes, and the
//! difference is emitted.
//!
//! When every function looks at a bounded number of rows around the current
//! one (`LAG`, `LEAD`, `ROWS` frames with offsets), with `reach` rows before
//! plus after in all, that part is the changed key range plus `reach` rows
//! on each side: a row further out sees the same rows in both evaluations,
//! gets the same values, and cancels in the difference. Otherwise (ranks,
//! running totals, whole-partition frames) the whole partition is read,
//! though only rows whose values changed are emitted.
//!
//! Session windows (`SESSION(...)`, the `session_start` / `session_end`
//! functions) follow the watermark of their time column: rows behind it are
//! late and dropped, and once a session ends at or before it (its last row
//! plus the gap), no later row can reach it, so its rows leave the state.
//! The output's `window_end` then carries the watermark onwards.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::physical_expr::window::WindowExpr;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_rows};
use freshet_storage::TableId;

use datafusion::common::ScalarValue;
use freshet_storage::codec::decode_datum;

use super::sorted::SortedRows;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::time::{SessionClose, TimeStats};

pub struct WindowOperator {
    funcs: Vec<Arc<dyn WindowExpr>>,
    reach: Option<usize>,
    input_schema: SchemaRef,
    input_types: Vec<DataType>,
    out_types: Vec<DataType>,
    schema: SchemaRef,
    rows: SortedRows,
    sessions: Option<Sessions>,
    /// Whole-partition functions: each partition's function values as of
    /// its last barrier, so the next diff evaluates only the new side.
    last: LastValues,
}

/// Function values per partition (one encoded row per copy, in order),
/// charged to the shared state budget and dropped whole when it is over.
#[derive(Default)]
struct LastValues {
    map: std::collections::HashMap<Vec<u8>, Vec<Vec<u8>>>,
    bytes: usize,
}

impl LastValues {
    fn size(part: &[u8], vals: &[Vec<u8>]) -> usize {
        part.len() + 64 + vals.iter().map(|v| v.len() + 32).sum::<usize>()
    }

    /// The values of `part` if they cover exactly `copies` rows.
    fn take(&mut self, part: &[u8], copies: usize) -> Option<Vec<Vec<u8>>> {
        let v = self.map.remove(part)?;
        let b = Self::size(part, &v).min(self.bytes);
        self.bytes -= b;
        crate::state::budget::release(b);
        (v.len() == copies).then_some(v)
    }

    fn put(&mut self, part: Vec<u8>, vals: Vec<Vec<u8>>) {
        let b = Self::size(&part, &vals);
        self.bytes += b;
        crate::state::budget::charge(b);
        if let Some(old) = self.map.insert(part.clone(), vals) {
            let ob = Self::size(&part, &old).min(self.bytes);
            self.bytes -= ob;
            crate::state::budget::release(ob);
        }
    }

    fn forget(&mut self, part: &[u8]) {
        let _ = self.take(part, usize::MAX);
    }

    fn trim(&mut self) {
        if crate::state::budget::over() {
            crate::state::budget::release(self.bytes);
            self.bytes = 0;
            self.map = Default::default();
        }
    }
}

impl Drop for LastValues {
    fn drop(&mut self) {
        crate::state::budget::release(self.bytes);
    }
}

/// Session closing state (see the module doc).
struct Sessions {
    spec: SessionClose,
    wm: Option<ScalarValue>,
    /// The watermark state was last cleaned at.
    cleaned: Option<ScalarValue>,
    late: Arc<TimeStats>,
    /// The output watermark, held until the barrier sends the rows that
    /// precede it (this operator emits only at barriers).
    out: Vec<crate::time::Watermark>,
}

/// A partition's encoded key and its rows' (full state key, event time),
/// in time order.
type PartitionTimes = (Vec<u8>, Vec<(Vec<u8>, Option<i64>)>);

/// A partition's row (its bytes) with its copies.
type SortedRow<'a> = (&'a [u8], i64);

/// The row bytes of an entry `sort key | row` whose sort key is `sort_len`
/// bytes long.
fn row_part(entry: &[u8], sort_len: u32) -> &[u8] {
    entry.get(sort_len as usize..).unwrap_or(&[])
}

/// A committed entry: full key, copies, sort key length.
type Entry = (Vec<u8>, i64, u32);

/// (row bytes, encoded function values) with a weight.
type Changed = ((Vec<u8>, Vec<u8>), i64);

impl WindowOperator {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        funcs: Vec<Arc<dyn WindowExpr>>,
        reach: Option<usize>,
        input_types: Vec<DataType>,
        state: TableId,
        schema: SchemaRef,
    ) -> Self {
        let n = input_types.len();
        let input_schema = Arc::new(Schema::new(
            schema.fields().iter().take(n).cloned().collect::<Vec<_>>(),
        ));
        let out_types = schema
            .fields()
            .iter()
            .skip(n)
            .map(|f| f.data_type().clone())
            .collect();
        WindowOperator {
            funcs,
            reach,
            input_schema,
            input_types,
            out_types,
            schema,
            // Whole-partition functions (rank, ...) read every row of a
            // changed partition: keep partitions cached. Bounded frames read
            // a few rows around each change from the store.
            rows: SortedRows::new(partition, order, state, reach.is_none()),
            sessions: None,
            last: LastValues::default(),
        }
    }

    /// Session windows closed by the watermark of `spec.ts_col`.
    pub fn with_sessions(mut self, spec: SessionClose, late: Arc<TimeStats>) -> Self {
        self.sessions = Some(Sessions {
            spec,
            wm: None,
            cleaned: None,
            late,
            out: Vec::new(),
        });
        self
    }

    /// Deletes the committed rows of sessions that ended at or before the
    /// watermark, except in partitions this epoch changed (they are cleaned
    /// at a later watermark, once their changes are committed).
    fn retire_sessions(
        &mut self,
        touched: &std::collections::BTreeSet<Vec<u8>>,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<()> {
        let Some(ss) = &self.sessions else {
            return Ok(());
        };
        let Some(wm) = ss.wm.clone() else {
            return Ok(());
        };
        let mut cur = ss.cleaned.clone();
        if !crate::time::advance(&mut cur, wm.clone()) {
            return Ok(());
        }
        let spec = ss.spec;
        let Some((wm_raw, unit)) = crate::time::timestamp_parts(&wm) else {
            return Ok(());
        };
        let per = crate::time::unit_ns(&unit);
        let gap = (spec.gap_ns / per).max(1);
        let part_types: Vec<DataType> = self.rows.partition_types(&self.input_types)?;
        // (partition bytes, [(entry after the partition, ts)]) in key
        // order: time order within a partition.
        let mut parts: Vec<PartitionTimes> = Vec::new();
        let input_types = &self.input_types;
        self.rows
            .table
            .scan_all_while(ctx.store, |body, _, sort_len| {
                let mut buf = body;
                for t in &part_types {
                    decode_datum(&mut buf, t)?;
                }
                let plen = body.len() - buf.len();
                let part = &body[..plen];
                let rest = &body[plen..];
                let mut row = rest.get(sort_len as usize..).unwrap_or(&[]);
                let mut ts = ScalarValue::Null;
                for t in &input_types[..=spec.ts_col] {
                    ts = decode_datum(&mut row, t)?;
                }
                let ts = crate::time::timestamp_parts(&ts).map(|(x, _)| x);
                match parts.last_mut() {
                    Some((p, rows)) if p.as_slice() == part => rows.push((rest.to_vec(), ts)),
                    _ => parts.push((part.to_vec(), vec![(rest.to_vec(), ts)])),
                }
                Ok(true)
            })?;
        let mut retired = false;
        for (part, rows) in parts {
            if touched.contains(&part) {
                continue;
            }
            // Runs of rows less than `gap` apart; a run whose last row plus
            // the gap is at or before the watermark is closed.
            let mut i = 0;
            while i < rows.len() {
                let mut j = i;
                while j + 1 < rows.len() {
                    match (rows[j].1, rows[j + 1].1) {
                        (Some(a), Some(b)) if b - a < gap => j += 1,
                        _ => break,
                    }
                }
                if let Some(last) = rows[j].1 {
                    if last.saturating_add(gap) <= wm_raw {
                        for (rest, _) in &rows[i..=j] {
                            self.rows.table.remove(ctx.writes, &part, rest);
                        }
                        self.last.forget(&part);
                        retired = true;
                    }
                }
                i = j + 1;
            }
        }
        let _ = retired;
        crate::time::save_operator_wm(ctx.writes, self.rows.state, &wm)?;
        if let Some(ss) = &mut self.sessions {
            ss.cleaned = cur;
        }
        Ok(())
    }

    /// The committed entries a change under `prefix` can reach, in order.
    fn read_committed(
        &mut self,
        part: &[u8],
        pend: &[(Vec<u8>, i64, u32)],
        ctx: &EpochCtx<'_>,
    ) -> Result<Vec<Entry>> {
        let mut out: Vec<Entry> = Vec::new();
        let Some(reach) = self.reach else {
            self.rows
                .table
                .visit_committed(ctx.store, part, |rest, c, l| {
                    out.push((rest.to_vec(), c, l));
                })?;
            return Ok(out);
        };
        let (Some(first), Some(last)) = (pend.first(), pend.last()) else {
            return Ok(out);
        };
        let (kmin, kmax) = (first.0.as_slice(), last.0.as_slice());
        let reach = reach as i64;
        let mut copies = 0i64;
        self.rows
            .table
            .scan_group_rev_before(ctx.store, part, kmin, |rest, c, l| {
                if copies >= reach {
                    return false;
                }
                copies += c.max(0);
                out.push((rest.to_vec(), c, l));
                true
            })?;
        out.reverse();
        let mut after = 0i64;
        self.rows
            .table
            .scan_group_from(ctx.store, part, kmin, |rest, c, l| {
                let beyond = rest > kmax;
                if beyond && after >= reach {
                    return false;
                }
                if beyond {
                    after += c.max(0);
                }
                out.push((rest.to_vec(), c, l));
                true
            })?;
        Ok(out)
    }

    /// Evaluates the functions over `rows` (one partition slice, in
    /// order, as (row bytes, copies)): the encoded function values of every
    /// copy, in order.
    fn evaluate(&self, rows: &[SortedRow<'_>]) -> Result<Vec<Vec<u8>>> {
        let expanded: Vec<&[u8]> = rows
            .iter()
            .flat_map(|(r, c)| std::iter::repeat_n(*r, (*c).max(0) as usize))
            .collect();
        let n = expanded.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let cols = decode_rows(expanded.iter().copied(), &self.input_types)?;
        let batch = RecordBatch::try_new_with_options(
            self.input_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let mut outs: Vec<ArrayRef> = Vec::with_capacity(self.funcs.len());
        for (f, ty) in self.funcs.iter().zip(&self.out_types) {
            let mut a = f.evaluate(&batch)?;
            if a.len() != n {
                return Err(RuntimeError::Internal(format!(
                    "window function {} returned {} values for {n} rows",
                    f.name(),
                    a.len()
                )));
            }
            if a.data_type() != ty {
                a = datafusion::arrow::compute::cast(&a, ty)?;
            }
            outs.push(a);
        }
        Ok(encode_rows(&outs, n)?)
    }
}

/// The difference between a partition slice's old and new rows with their
/// function values: both lists are in key order, so one merge walk pairs
/// each row's old and new copies; a row whose values did not change emits
/// nothing.
type Slice<'a> = (&'a [SortedRow<'a>], &'a [&'a [u8]], &'a [Vec<u8>]);

fn diff_slices(
    (old, old_keys, old_vals): Slice<'_>,
    (new, new_keys, new_vals): Slice<'_>,
    out: &mut Vec<Changed>,
) {
    let (mut i, mut j, mut oi, mut nj) = (0usize, 0usize, 0usize, 0usize);
    let copies = |r: &SortedRow<'_>| r.1.max(0) as usize;
    let emit = |row: &[u8], vals: &[Vec<u8>], w: i64, out: &mut Vec<Changed>| {
        for v in vals {
            out.push(((row.to_vec(), v.clone()), w));
        }
    };
    while i < old.len() || j < new.len() {
        let ord = match (old_keys.get(i), new_keys.get(j)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let c = copies(&old[i]);
                emit(old[i].0, &old_vals[oi..oi + c], -1, out);
                oi += c;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let c = copies(&new[j]);
                emit(new[j].0, &new_vals[nj..nj + c], 1, out);
                nj += c;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (co, cn) = (copies(&old[i]), copies(&new[j]));
                let (ov, nv) = (&old_vals[oi..oi + co], &new_vals[nj..nj + cn]);
                if ov != nv {
                    emit(old[i].0, ov, -1, out);
                    emit(new[j].0, nv, 1, out);
                }
                oi += co;
                nj += cn;
                i += 1;
                j += 1;
            }
        }
    }
}

impl Operator for WindowOperator {
    fn on_start(&mut self, ctx: &mut EpochCtx<'_>, _fresh: bool) -> Result<()> {
        let ts_type = self
            .sessions
            .as_ref()
            .map(|s| self.input_types[s.spec.ts_col].clone());
        if let (Some(ss), Some(ty)) = (&mut self.sessions, ts_type) {
            let wm = crate::time::load_operator_wm(ctx.store, self.rows.state, &ty)?;
            ss.wm = wm.clone();
            ss.cleaned = wm;
        }
        Ok(())
    }

    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let batch = match &self.sessions {
            Some(Sessions {
                spec,
                wm: Some(wm),
                late,
                ..
            }) => {
                let mask = crate::time::below(batch.data.column(spec.ts_col), wm)?;
                let n = mask.true_count();
                if n > 0 {
                    late.late(n as u64);
                    batch.filter(&datafusion::arrow::compute::not(&mask)?)?
                } else {
                    batch
                }
            }
            _ => batch,
        };
        self.rows.add(&batch)?;
        Ok(vec![])
    }

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        let Some(ss) = &mut self.sessions else {
            return Ok((Vec::new(), Vec::new()));
        };
        if wm.col != ss.spec.ts_col || !crate::time::advance(&mut ss.wm, wm.value.clone()) {
            return Ok((Vec::new(), Vec::new()));
        }
        // Every later output row belongs to a session still open, which
        // ends after the watermark.
        let end_type = self.schema.field(ss.spec.end_col).data_type().clone();
        ss.out = vec![crate::time::Watermark {
            col: ss.spec.end_col,
            value: wm.value.cast_to(&end_type)?,
        }];
        Ok((Vec::new(), Vec::new()))
    }

    fn take_watermarks(&mut self) -> Vec<crate::time::Watermark> {
        self.sessions
            .as_mut()
            .map(|s| std::mem::take(&mut s.out))
            .unwrap_or_default()
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let touched = if self.sessions.is_some() {
            self.rows.dirty.clone()
        } else {
            Default::default()
        };
        let out = self.diff_partitions(ctx)?;
        self.retire_sessions(&touched, ctx)?;
        Ok(out)
    }
}

impl WindowOperator {
    /// Emits the difference of every partition this epoch changed.
    fn diff_partitions(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        // Changed (row, values) with weights; one partition's difference is
        // built at a time, so memory holds one partition plus the changes.
        let mut changed: Vec<Changed> = Vec::new();
        for part in std::mem::take(&mut self.rows.dirty) {
            // Entries after the partition (sort key | row), in order.
            let pend: Vec<(Vec<u8>, i64, u32)> = self.rows.table.pending_group(&part);
            if pend.is_empty() {
                continue;
            }
            let committed = self.read_committed(&part, &pend, ctx)?;
            // Rows with their full keys, in key order.
            let mut old: Vec<SortedRow<'_>> = Vec::with_capacity(committed.len());
            let mut old_keys: Vec<&[u8]> = Vec::with_capacity(committed.len());
            for (k, c, l) in &committed {
                if *c > 0 {
                    old.push((row_part(k, *l), *c));
                    old_keys.push(k);
                }
            }
            // Merge the epoch's changes into the committed slice.
            let mut new: Vec<SortedRow<'_>> = Vec::with_capacity(old.len() + pend.len());
            let mut new_keys: Vec<&[u8]> = Vec::with_capacity(old.len() + pend.len());
            let mut pi = 0usize;
            fn push<'a>(k: &'a [u8], c: i64, l: u32, new: &mut Vec<SortedRow<'a>>) -> bool {
                if c > 0 {
                    new.push((row_part(k, l), c));
                    true
                } else {
                    false
                }
            }
            for (k, c, l) in &committed {
                while pi < pend.len() && pend[pi].0.as_slice() < k.as_slice() {
                    if push(&pend[pi].0, pend[pi].1, pend[pi].2, &mut new) {
                        new_keys.push(&pend[pi].0);
                    }
                    pi += 1;
                }
                let mut c = *c;
                if pi < pend.len() && pend[pi].0.as_slice() == k.as_slice() {
                    c += pend[pi].1;
                    pi += 1;
                }
                if push(k, c, *l, &mut new) {
                    new_keys.push(k);
                }
            }
            for p in &pend[pi..] {
                if push(&p.0, p.1, p.2, &mut new) {
                    new_keys.push(&p.0);
                }
            }
            let whole = self.reach.is_none();
            let old_copies: usize = old.iter().map(|(_, c)| (*c).max(0) as usize).sum();
            let old_vals = match self.last.take(&part, old_copies).filter(|_| whole) {
                Some(v) => v,
                None => self.evaluate(&old)?,
            };
            let new_vals = self.evaluate(&new)?;
            diff_slices(
                (&old, &old_keys, &old_vals),
                (&new, &new_keys, &new_vals),
                &mut changed,
            );
            if whole {
                self.last.put(part, new_vals);
            }
        }
        self.last.trim();
        self.rows.flush(ctx)?;
        if changed.is_empty() {
            return Ok(vec![]);
        }
        let mut cols = decode_rows(
            changed.iter().map(|((r, _), _)| r.as_slice()),
            &self.input_types,
        )?;
        cols.extend(decode_rows(
            changed.iter().map(|((_, v), _)| v.as_slice()),
            &self.out_types,
        )?);
        Ok(vec![ChangeBatch::from_columns(
            self.schema.clone(),
            cols,
            changed.into_iter().map(|(_, w)| w).collect(),
        )?])
    }
}

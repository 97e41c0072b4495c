//! Equi-joins (inner, left, right, full outer): a symmetric hash join whose
//! two sides live in state.
//!
//! Each side is a multiset of rows stored by join key:
//! `side table | vnode(key) | memcomparable(key) | memcomparable(row) ->
//! count` (a [`MultisetTable`] grouped by join key, its groups cached), so
//! the rows matching a key are one cached group or one prefix scan.
//! A change on one side joins against the other side's current contents
//! (committed state plus this epoch's deltas) and is then added to its own
//! side: `Δ(L ⋈ R) = ΔL ⋈ R + L' ⋈ ΔR`, which holds for any interleaving of
//! batches because one thread runs the whole DAG. Deltas are summed in
//! memory during the epoch and written at its barrier as blind count
//! merges; the groups lookups read stay cached within the shared state
//! budget, so join state is bounded by RocksDB, not RAM.
//!
//! Rows with a NULL in the key never match (SQL `=`), unless the join
//! compares keys with `IS NOT DISTINCT FROM`; they are not stored.
//!
//! Outer joins: a preserved side's row is emitted padded with NULLs while its
//! key has no match on the other side. When the other side's count for a key
//! goes from zero to non-zero the padded rows are retracted, and emitted again
//! when it drops back to zero; both are decided per key from the counts read
//! for the join itself, so no extra state is kept.
//!
//! A residual `filter` (conditions in `ON` other than the key equalities, for
//! outer, semi and anti joins) makes "matched" a property of each row rather
//! than of its key: a row's match count is the number of other-side rows of
//! its key that pass the filter with it, found by evaluating the filter on
//! the pairs of the key's rows. NULL padding (outer) and passing (semi, anti)
//! follow that count's moves to and from zero.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_rows};
use freshet_storage::TableId;

use super::join_expiry::Expiry;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;
use crate::state::MultisetTable;
use crate::time::StateBound;

pub struct JoinOperator {
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    types: [Vec<DataType>; 2],
    schema: SchemaRef,
    nulls_match: bool,
    /// Per side: whether its unmatched rows are kept (padded with NULLs).
    outer: [bool; 2],
    /// Semi or anti join: `(kept side, anti)`; the output is the kept side's
    /// rows whose key has (semi) or has no (anti) match on the other side.
    semi: Option<(usize, bool)>,
    /// `NOT IN` semantics for a left anti join on one key column: no row
    /// passes once the right side holds a NULL key; every row passes while
    /// the right side is empty.
    null_aware: bool,
    /// Conditions besides the key equalities, over (left row, right row).
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Schema of a (left row, right row) pair, for evaluating `filter`.
    pair_schema: SchemaRef,
    /// Per side: the side's rows by join key.
    tables: [MultisetTable; 2],
    /// Interval join: when stored rows expire.
    expiry: Expiry,
}

/// An output row: a row of the batch by index and an encoded row of the
/// other side, either of which may be NULL padding, with a weight.
type OutRow = (Option<u32>, Option<Vec<u8>>, i64);

impl JoinOperator {
    pub fn new(
        keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
        types: [Vec<DataType>; 2],
        state: [TableId; 2],
        schema: SchemaRef,
        nulls_match: bool,
        outer: [bool; 2],
    ) -> Self {
        let pair_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            types[0]
                .iter()
                .chain(&types[1])
                .enumerate()
                .map(|(i, t)| {
                    datafusion::arrow::datatypes::Field::new(format!("c{i}"), t.clone(), true)
                })
                .collect::<Vec<_>>(),
        ));
        JoinOperator {
            keys,
            types,
            schema,
            nulls_match,
            outer,
            semi: None,
            null_aware: false,
            filter: None,
            pair_schema,
            tables: [
                MultisetTable::cached(state[0], false),
                MultisetTable::cached(state[1], false),
            ],
            expiry: Expiry::new(Vec::new()),
        }
    }

    /// Deletes stored rows once the other side's watermark makes them
    /// unreachable (interval joins).
    pub fn with_bounds(mut self, bounds: Vec<StateBound>) -> Self {
        self.expiry = Expiry::new(bounds);
        self
    }

    /// The types of `side`'s key columns.
    fn key_types(&self, side: usize) -> Result<Vec<DataType>> {
        let schema = crate::operators::schema_of(&self.types[side]);
        self.keys[side]
            .iter()
            .map(|e| Ok(e.data_type(&schema)?))
            .collect()
    }

    /// Adds a residual condition over (left row, right row).
    pub fn with_filter(mut self, filter: Option<Arc<dyn PhysicalExpr>>) -> Self {
        self.filter = filter;
        self
    }

    /// `filter` over every pair of `a` rows of `side` (as columns) and the
    /// encoded rows `theirs` of the other side: `pass[i * theirs.len() + j]`.
    fn pass_matrix(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        side: usize,
        mine: &[ArrayRef],
        a: usize,
        theirs: &[(Vec<u8>, i64)],
    ) -> Result<Vec<bool>> {
        let b = theirs.len();
        if a == 0 || b == 0 {
            return Ok(Vec::new());
        }
        let their_cols = decode_rows(
            theirs.iter().map(|(r, _)| r.as_slice()),
            &self.types[1 - side],
        )?;
        let mi: UInt32Array = (0..a as u32)
            .flat_map(|i| std::iter::repeat_n(i, b))
            .collect();
        let ti: UInt32Array = (0..a).flat_map(|_| 0..b as u32).collect();
        let take_all = |cols: &[ArrayRef], ix: &UInt32Array| {
            cols.iter()
                .map(|c| take(c.as_ref(), ix, None))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let (m, t) = (take_all(mine, &mi)?, take_all(&their_cols, &ti)?);
        let cols: Vec<ArrayRef> = if side == 0 {
            m.into_iter().chain(t).collect()
        } else {
            t.into_iter().chain(m).collect()
        };
        let pairs = RecordBatch::try_new_with_options(
            self.pair_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(a * b)),
        )?;
        let v = filter.evaluate(&pairs)?.into_array(a * b)?;
        let v = v
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BooleanArray>()
            .ok_or_else(|| {
                crate::error::RuntimeError::Internal("join filter is not boolean".into())
            })?;
        Ok((0..a * b).map(|k| v.is_valid(k) && v.value(k)).collect())
    }

    /// The rows of a batch with a non-zero weight, grouped by key in
    /// first-seen order, and apart those whose key holds a NULL (they never
    /// match unless `nulls_match`).
    #[allow(clippy::type_complexity)]
    fn group_rows<'a>(
        &self,
        keys: &'a [Vec<u8>],
        weights: &[i64],
        key_cols: &[ArrayRef],
    ) -> (Vec<&'a [u8]>, HashMap<&'a [u8], Vec<usize>>, Vec<usize>) {
        let mut order: Vec<&[u8]> = Vec::new();
        let mut groups: HashMap<&[u8], Vec<usize>> = HashMap::new();
        let mut null_rows = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if weights[i] == 0 {
                continue;
            }
            if !self.nulls_match && key_cols.iter().any(|c| c.is_null(i)) {
                null_rows.push(i);
                continue;
            }
            groups
                .entry(key.as_slice())
                .or_insert_with(|| {
                    order.push(key.as_slice());
                    Vec::new()
                })
                .push(i);
        }
        (order, groups, null_rows)
    }

    /// Outer, semi and anti joins with a residual filter (see the module doc).
    fn process_filtered(
        &mut self,
        filter: Arc<dyn PhysicalExpr>,
        side: usize,
        batch: &ChangeBatch,
        keys: &[Vec<u8>],
        key_cols: &[ArrayRef],
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let other = 1 - side;
        let n = batch.num_rows();
        let w = batch.weights.values();
        let rows = encode_rows(batch.columns(), n)?;
        // How a side's rows are emitted by their match count:
        // Some(emitted while the count is zero?).
        let (semi, outer) = (self.semi, self.outer);
        let mode = move |t: usize| -> Option<bool> {
            match semi {
                Some((keep, anti)) => (t == keep).then_some(anti),
                None => outer[t].then_some(true),
            }
        };
        let pairs = self.semi.is_none();
        let mut out: Vec<OutRow> = Vec::new();
        let mut mine_alone: Vec<(u32, i64)> = Vec::new();
        let mut theirs_alone: Vec<(Vec<u8>, i64)> = Vec::new();
        let (order, groups, null_rows) = self.group_rows(keys, w, key_cols);
        if mode(side) == Some(true) {
            mine_alone.extend(null_rows.into_iter().map(|i| (i as u32, w[i])));
        }
        for key in &order {
            let idx = &groups[key];
            let matches = self.lookup(other, key, ctx)?;
            let b = matches.len();
            let ix: UInt32Array = idx.iter().map(|&i| i as u32).collect();
            let mine = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &ix, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let p = self.pass_matrix(&filter, side, &mine, idx.len(), &matches)?;
            for (ii, &i) in idx.iter().enumerate() {
                let mut count = 0i64;
                for (j, (r, c)) in matches.iter().enumerate() {
                    if p[ii * b + j] {
                        count += c;
                        if pairs {
                            out.push((Some(i as u32), Some(r.clone()), w[i] * c));
                        }
                    }
                }
                if let Some(when_zero) = mode(side) {
                    if (count == 0) == when_zero {
                        mine_alone.push((i as u32, w[i]));
                    }
                }
            }
            if let (Some(when_zero), true) = (mode(other), b > 0) {
                let stored = self.lookup(side, key, ctx)?;
                let stored_cols =
                    decode_rows(stored.iter().map(|(r, _)| r.as_slice()), &self.types[side])?;
                let q = self.pass_matrix(&filter, side, &stored_cols, stored.len(), &matches)?;
                for (j, (r, c)) in matches.iter().enumerate() {
                    let before: i64 = stored
                        .iter()
                        .enumerate()
                        .filter(|(s, _)| q[s * b + j])
                        .map(|(_, (_, sc))| sc)
                        .sum();
                    let after = before
                        + idx
                            .iter()
                            .enumerate()
                            .filter(|(ii, _)| p[ii * b + j])
                            .map(|(_, &i)| w[i])
                            .sum::<i64>();
                    let (e0, e1) = ((before == 0) == when_zero, (after == 0) == when_zero);
                    if e0 != e1 {
                        theirs_alone.push((r.clone(), if e1 { *c } else { -c }));
                    }
                }
            }
        }
        for key in &order {
            for &i in &groups[key] {
                self.tables[side].add(key, &rows[i], w[i], 0);
            }
        }
        if pairs {
            out.extend(mine_alone.into_iter().map(|(i, w)| (Some(i), None, w)));
            out.extend(theirs_alone.into_iter().map(|(r, w)| (None, Some(r), w)));
            return self.assemble(side, batch, out);
        }
        Ok(self
            .picked(batch, mine_alone)?
            .into_iter()
            .chain(self.stored(other, theirs_alone)?)
            .collect())
    }

    /// Makes this a semi join (or anti join, `anti`) that keeps side `keep`.
    pub fn semi(mut self, keep: usize, anti: bool) -> Self {
        self.semi = Some((keep, anti));
        self
    }

    /// Makes a left anti join follow `NOT IN`'s NULL semantics.
    pub fn null_aware(mut self) -> Self {
        self.null_aware = true;
        self
    }

    /// The right side's total row count, committed plus pending (kept as
    /// the entry with empty group and rest, which no real row has).
    fn right_total(&self, ctx: &EpochCtx<'_>) -> Result<i64> {
        self.tables[1].count(ctx.store, &[], &[])
    }

    /// `x NOT IN (right)`: a left anti join whose outcome also depends on
    /// whether the right side is empty or holds a NULL. Both sides' rows are
    /// stored, NULL keys included (a NULL key encodes as the single byte 0).
    fn process_not_in(
        &mut self,
        side: usize,
        batch: &ChangeBatch,
        keys: &[Vec<u8>],
        key_cols: &[ArrayRef],
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        const NULL_KEY: &[u8] = &[0];
        let n = batch.num_rows();
        let weights = batch.weights.values();
        let rows = encode_rows(batch.columns(), n)?;
        let is_null = |i: usize| key_cols.iter().any(|c| c.is_null(i));
        let total = self.right_total(ctx)?;
        let nulls: i64 = self.lookup(1, NULL_KEY, ctx)?.iter().map(|(_, c)| c).sum();
        // 0: right empty (all pass), 1: right has a NULL (none pass), 2: normal.
        let regime = |total: i64, nulls: i64| match (total == 0, nulls != 0) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        let pass = |regime: u8, null: bool, matched: i64| match regime {
            0 => true,
            1 => false,
            _ => !null && matched == 0,
        };
        let mut out_rows: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut mine: Vec<(u32, i64)> = Vec::new();
        if side == 0 {
            let r = regime(total, nulls);
            for i in 0..n {
                if weights[i] == 0 {
                    continue;
                }
                let null = is_null(i);
                let matched = if null || r != 2 {
                    0
                } else {
                    self.lookup(1, &keys[i], ctx)?.iter().map(|(_, c)| c).sum()
                };
                if pass(r, null, matched) {
                    mine.push((i as u32, weights[i]));
                }
            }
        } else {
            let mut delta: BTreeMap<&[u8], i64> = BTreeMap::new();
            for i in 0..n {
                *delta.entry(keys[i].as_slice()).or_insert(0) += weights[i];
            }
            let d_total: i64 = weights.iter().sum();
            let d_nulls = delta.get(NULL_KEY).copied().unwrap_or(0);
            let (r0, r1) = (
                regime(total, nulls),
                regime(total + d_total, nulls + d_nulls),
            );
            let left_keys: Vec<Vec<u8>> = if r0 != r1 {
                // Every left row may flip: walk the whole left side.
                // (entries as group | rest, committed and pending)
                let mut all: Vec<Vec<u8>> = Vec::new();
                self.tables[0].scan_all_while(ctx.store, |body, _, _| {
                    all.push(body.to_vec());
                    Ok(true)
                })?;
                all.extend(self.tables[0].pending_entries());
                let key_type = self.key_type(0)?;
                let mut ks: Vec<Vec<u8>> = Vec::new();
                for body in &all {
                    let mut rest = body.as_slice();
                    freshet_storage::codec::decode_datum(&mut rest, &key_type)?;
                    ks.push(body[..body.len() - rest.len()].to_vec());
                }
                ks.sort();
                ks.dedup();
                ks
            } else if r0 == 2 {
                delta
                    .keys()
                    .filter(|k| **k != NULL_KEY)
                    .map(|k| k.to_vec())
                    .collect()
            } else {
                Vec::new()
            };
            for key in left_keys {
                let null = key.as_slice() == NULL_KEY;
                let before: i64 = if null {
                    0
                } else {
                    self.lookup(1, &key, ctx)?.iter().map(|(_, c)| c).sum()
                };
                let after = before
                    + if null {
                        0
                    } else {
                        delta.get(key.as_slice()).copied().unwrap_or(0)
                    };
                let (p0, p1) = (pass(r0, null, before), pass(r1, null, after));
                if p0 != p1 {
                    let sign = if p1 { 1 } else { -1 };
                    for (r, c) in self.lookup(0, &key, ctx)? {
                        out_rows.push((r, sign * c));
                    }
                }
            }
            self.tables[1].add(&[], &[], d_total, 0);
        }
        for i in 0..n {
            if weights[i] != 0 {
                self.tables[side].add(&keys[i], &rows[i], weights[i], 0);
            }
        }
        Ok(self
            .picked(batch, mine)?
            .into_iter()
            .chain(self.stored(0, out_rows)?)
            .collect())
    }

    /// Rows of this batch picked by index, with weights.
    fn picked(&self, batch: &ChangeBatch, picks: Vec<(u32, i64)>) -> Result<Option<ChangeBatch>> {
        if picks.is_empty() {
            return Ok(None);
        }
        let ix: UInt32Array = picks.iter().map(|(i, _)| Some(*i)).collect();
        let cols = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &ix, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.output(cols, picks.into_iter().map(|(_, w)| w).collect())
            .map(Some)
    }

    /// Stored rows of `side` (encoded), with weights; zero weights dropped.
    fn stored(&self, side: usize, mut rows: Vec<(Vec<u8>, i64)>) -> Result<Option<ChangeBatch>> {
        rows.retain(|(_, w)| *w != 0);
        if rows.is_empty() {
            return Ok(None);
        }
        let cols = decode_rows(rows.iter().map(|(r, _)| r.as_slice()), &self.types[side])?;
        self.output(cols, rows.into_iter().map(|(_, w)| w).collect())
            .map(Some)
    }

    /// A change batch of the output schema from columns and weights.
    fn output(&self, cols: Vec<ArrayRef>, weights: Vec<i64>) -> Result<ChangeBatch> {
        ChangeBatch::from_columns(self.schema.clone(), cols, weights)
    }

    /// The type of `side`'s single key column.
    fn key_type(&self, side: usize) -> Result<DataType> {
        let schema = datafusion::arrow::datatypes::Schema::new(
            self.types[side]
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    datafusion::arrow::datatypes::Field::new(format!("c{i}"), t.clone(), true)
                })
                .collect::<Vec<_>>(),
        );
        let e = self.keys[side]
            .first()
            .ok_or_else(|| crate::error::RuntimeError::Internal("NOT IN without a key".into()))?;
        Ok(e.data_type(&schema)?)
    }

    /// Semi and anti joins: the kept side's rows pass while the other side's
    /// count for their key is non-zero (semi) or zero (anti).
    #[allow(clippy::too_many_arguments)]
    fn process_semi(
        &mut self,
        side: usize,
        keep: usize,
        anti: bool,
        batch: &ChangeBatch,
        keys: &[Vec<u8>],
        key_cols: &[ArrayRef],
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let other = 1 - side;
        let n = batch.num_rows();
        let weights = batch.weights.values();
        let rows = encode_rows(batch.columns(), n)?;
        let mut idx: Vec<u32> = Vec::new();
        let mut idx_w: Vec<i64> = Vec::new();
        let mut from_state: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut seen: HashMap<&[u8], i64> = HashMap::new();
        let mut order: Vec<&[u8]> = Vec::new();
        for i in 0..n {
            if weights[i] == 0 {
                continue;
            }
            let null_key = !self.nulls_match && key_cols.iter().any(|c| c.is_null(i));
            if null_key {
                // Never matches: passes an anti join, never a semi join.
                if side == keep && anti {
                    idx.push(i as u32);
                    idx_w.push(weights[i]);
                }
                continue;
            }
            let k = keys[i].as_slice();
            if !seen.contains_key(k) {
                order.push(k);
            }
            *seen.entry(k).or_insert(0) += weights[i];
        }
        for key in &order {
            if side == keep {
                let matched: i64 = self.lookup(other, key, ctx)?.iter().map(|(_, c)| c).sum();
                if (matched != 0) != anti {
                    for i in 0..n {
                        if weights[i] != 0 && keys[i].as_slice() == *key {
                            idx.push(i as u32);
                            idx_w.push(weights[i]);
                        }
                    }
                }
            } else {
                let before: i64 = self.lookup(side, key, ctx)?.iter().map(|(_, c)| c).sum();
                let after = before + seen[key];
                if (before == 0) != (after == 0) {
                    // Matching started (+) or stopped (-) for this key.
                    let started = before == 0;
                    let sign = if started != anti { 1 } else { -1 };
                    for (r, c) in self.lookup(keep, key, ctx)? {
                        from_state.push((r, sign * c));
                    }
                }
            }
        }
        for i in 0..n {
            if weights[i] == 0 || (!self.nulls_match && key_cols.iter().any(|c| c.is_null(i))) {
                continue;
            }
            self.tables[side].add(&keys[i], &rows[i], weights[i], 0);
        }
        let picks: Vec<(u32, i64)> = idx.into_iter().zip(idx_w).collect();
        Ok(self
            .picked(batch, picks)?
            .into_iter()
            .chain(self.stored(keep, from_state)?)
            .collect())
    }

    /// Output rows (this batch's row, the other side's row; either may be
    /// NULL padding) as one change batch in (left, right) column order.
    fn assemble(
        &self,
        side: usize,
        batch: &ChangeBatch,
        mut out: Vec<OutRow>,
    ) -> Result<Vec<ChangeBatch>> {
        let other = 1 - side;
        out.retain(|(_, _, w)| *w != 0);
        if out.is_empty() {
            return Ok(vec![]);
        }
        let idx: UInt32Array = out.iter().map(|(i, _, _)| *i).collect();
        let mine = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let present: Vec<&[u8]> = out.iter().filter_map(|(_, r, _)| r.as_deref()).collect();
        let decoded = decode_rows(present.iter().copied(), &self.types[other])?;
        let mut next = 0u32;
        let pos: UInt32Array = out
            .iter()
            .map(|(_, r, _)| {
                r.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let theirs = decoded
            .iter()
            .map(|c| take(c.as_ref(), &pos, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let cols: Vec<ArrayRef> = if side == 0 {
            mine.into_iter().chain(theirs).collect()
        } else {
            theirs.into_iter().chain(mine).collect()
        };
        let w: Vec<i64> = out.iter().map(|(_, _, w)| *w).collect();
        Ok(vec![self.output(cols, w)?])
    }

    /// Rows of `side` whose key is `key`, with their multiplicities.
    fn lookup(
        &mut self,
        side: usize,
        key: &[u8],
        ctx: &EpochCtx<'_>,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        Ok(self.tables[side]
            .current(ctx.store, key)?
            .into_iter()
            .map(|(r, c, _)| (r, c))
            .collect())
    }
}

impl Operator for JoinOperator {
    fn process(
        &mut self,
        input: usize,
        batch: ChangeBatch,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let side = input.min(1);
        let other = 1 - side;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let key_cols = self.keys[side]
            .iter()
            .map(|e| e.evaluate(&batch.data)?.into_array(n))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let keys = encode_rows(&key_cols, n)?;
        if let Some(f) = self.filter.clone() {
            return self.process_filtered(f, side, &batch, &keys, &key_cols, ctx);
        }
        if self.null_aware {
            return self.process_not_in(side, &batch, &keys, &key_cols, ctx);
        }
        if let Some((keep, anti)) = self.semi {
            return self.process_semi(side, keep, anti, &batch, &keys, &key_cols, ctx);
        }
        let rows = encode_rows(batch.columns(), n)?;
        let weights = batch.weights.values();
        // Group the batch's rows by key, in first-seen order.
        let (order, groups, null_rows) = self.group_rows(&keys, weights, &key_cols);
        // Output rows: (row of this batch, row of the other side), either
        // may be NULL padding, with a weight.
        let mut out: Vec<OutRow> = Vec::new();
        if self.outer[side] {
            out.extend(
                null_rows
                    .into_iter()
                    .map(|i| (Some(i as u32), None, weights[i])),
            );
        }
        for key in &order {
            let rows_here = &groups[key];
            let matches = self.lookup(other, key, ctx)?;
            let matched: i64 = matches.iter().map(|(_, c)| c).sum();
            for &i in rows_here {
                for (r, c) in &matches {
                    out.push((Some(i as u32), Some(r.clone()), weights[i] * c));
                }
                if self.outer[side] && matched == 0 {
                    out.push((Some(i as u32), None, weights[i]));
                }
            }
            if self.outer[other] && !matches.is_empty() {
                // The other side's rows of this key lose or regain their
                // NULL-padded partner when this side's count leaves or
                // reaches zero.
                let before: i64 = self.lookup(side, key, ctx)?.iter().map(|(_, c)| c).sum();
                let after = before + rows_here.iter().map(|&i| weights[i]).sum::<i64>();
                let sign = match (before == 0, after == 0) {
                    (true, false) => -1,
                    (false, true) => 1,
                    _ => 0,
                };
                if sign != 0 {
                    for (r, c) in &matches {
                        out.push((None, Some(r.clone()), sign * c));
                    }
                }
            }
        }
        // This batch now belongs to its side.
        for key in &order {
            for &i in &groups[key] {
                self.tables[side].add(key, &rows[i], weights[i], 0);
            }
        }
        self.assemble(side, &batch, out)
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        if !self.expiry.is_empty() {
            self.expiry.before_flush(&mut self.tables, &self.types)?;
        }
        for t in &mut self.tables {
            t.flush(ctx.writes);
        }
        if !self.expiry.is_empty() {
            let key_types = [self.key_types(0)?, self.key_types(1)?];
            self.expiry
                .after_flush(&mut self.tables, &self.types, &key_types, ctx)?;
        }
        Ok(vec![])
    }

    fn on_watermark(
        &mut self,
        input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        self.expiry.on_watermark(input.min(1), wm.col, wm.value);
        Ok((Vec::new(), Vec::new()))
    }
}
